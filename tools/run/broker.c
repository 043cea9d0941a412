/* `weft run --broker URL`: the job file's DAG submitted to Redis (weft/broker.h) and run by
 * `weft worker`s anywhere; the plain log is fed from the workers' event stream and says which
 * worker ran each job. Only shell and sleep jobs can run remotely (they name no code). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <weft/broker.h>
#include <weft/err.h>
#include <weft/hash.h>
#include <weft/sys.h>

#include "common/cli-int.h"
#include "run/run.h"

static volatile sig_atomic_t stop_req;
static void on_sig(int sig)
{
    (void)sig;
    stop_req = 1;
}

/* Appends `s` single-quoted for /bin/sh. */
static int quote(weft_buf_t *b, const char *s)
{
    int rc = weft_buf_append(b, "'", 1);
    for (; rc == 0 && *s; s++)
        rc = *s == '\'' ? weft_buf_append(b, "'\\''", 4) : weft_buf_append(b, s, 1);
    return rc ? rc : weft_buf_append(b, "'", 1);
}

/* The command a worker runs for job j: its directory and environment, then the command. A
 * relative cwd (the job file's directory named relative to here) is made absolute: the worker
 * runs elsewhere, so it would be relative to the worker's directory (same path on every machine:
 * a shared or copied directory). */
static int remote_command(const struct job *j, weft_buf_t *b)
{
    int rc = 0;
    if (j->cwd) {
        rc = weft_buf_append(b, "cd ", 3);
        char here[4096], *abs = NULL;
        if (j->cwd[0] != '/' && getcwd(here, sizeof here)) {
            size_t l = strlen(here) + strlen(j->cwd) + 2;
            if (!(abs = malloc(l))) return -ENOMEM;
            snprintf(abs, l, "%s/%s", here, j->cwd);
        }
        if (rc == 0) rc = quote(b, abs ? abs : j->cwd);
        free(abs);
        if (rc == 0) rc = weft_buf_append(b, " || exit 126; ", 14);
    }
    for (size_t e = 0; rc == 0 && e < j->nenv; e++) {
        const char *eq = strchr(j->env[e], '=');
        if (!eq) continue;
        rc = weft_buf_printf(b, "export %.*s=", (int)(eq - j->env[e]), j->env[e]);
        if (rc == 0) rc = quote(b, eq + 1);
        if (rc == 0) rc = weft_buf_append(b, "; ", 2);
    }
    if (rc) return rc;
    if (j->kind == JOB_SHELL) return weft_buf_printf(b, "%s", j->run);
    return weft_buf_printf(b, "sleep %.3f", (double)j->duration_ns / 1e9);
}

static bool id_eq(uint64_t val, const void *key, const void *ctx)
{
    char *const *ids = ctx;
    return strcmp(ids[val], key) == 0;
}

static double at(uint64_t t0_ms, uint64_t ms)
{
    return ms > t0_ms ? (double)(ms - t0_ms) / 1000.0 : 0.0;
}

/* What the live display knows of a job, from the event stream. */
struct bjob {
    bool running;
    uint64_t seen_ns;  /* when its running event was read (local clock) */
    uint64_t start_ms; /* the running event's time (Redis' clock) */
    char worker[64];
};

/* The live display (a terminal): the local run's, with the workers in place of the pools and
 * each running job's worker in place of its route. */
static void draw(const struct jobfile *jf, const struct bjob *bj, const size_t *counts,
                 size_t finished, size_t running, double t_s, int workers, int *lines)
{
    int rows, cols;
    run_live_size(&rows, &cols);
    struct live_job jobs[256];
    char pools[160];
    snprintf(pools, sizeof pools, "workers %d live   %zu jobs running on them", workers, running);
    size_t n = jf->n;
    struct live_view v = {
        .n = n,
        .finished = finished,
        .ok = counts[WEFT_BROKER_DONE],
        .failed = counts[WEFT_BROKER_FAILED],
        .skipped = counts[WEFT_BROKER_SKIPPED] + counts[WEFT_BROKER_CANCELLED],
        .running = running,
        .waiting = n - finished - running,
        .t_s = t_s,
        .pools = pools,
        .jobs = jobs,
        .now_ns = weft_now_ns(),
    };
    size_t want = rows > 0 && (size_t)rows < 256 ? (size_t)rows : 256;
    for (size_t i = 0; i < n && v.njobs < want; i++) {
        if (!bj[i].running) continue;
        const struct job *j = &jf->jobs[i];
        struct live_job *lj = &jobs[v.njobs++];
        memset(lj, 0, sizeof *lj);
        lj->name = j->name;
        lj->route = bj[i].worker;
        lj->elapsed_s = v.now_ns > bj[i].seen_ns ? (double)(v.now_ns - bj[i].seen_ns) / 1e9 : 0;
        uint64_t total = j->duration_ns ? j->duration_ns : j->timeout_ns;
        lj->total_s = (double)total / 1e9;
    }
    run_live_clear(stderr, lines);
    *lines = run_live_draw(stderr, &v, rows, cols);
    fflush(stderr);
}

int run_broker(const struct jobfile *jf, const char *url, const char *ns, bool resume,
               const char *log_dir, bool tty)
{
    size_t n = jf->n;
    for (size_t i = 0; i < n; i++)
        if (jf->jobs[i].kind != JOB_SHELL && jf->jobs[i].kind != JOB_SLEEP)
            return weft_cli_error("run", WEFT_EXIT_USAGE,
                                  "job '%s': only shell and sleep jobs run on a broker",
                                  jf->jobs[i].name);
    weft_broker_opts_t bo = {.ns = ns};
    weft_broker_t *b;
    int rc = weft_broker_create(&b, url, &bo);
    if (rc < 0)
        return weft_cli_error("run", WEFT_EXIT_USAGE, "cannot use broker %s: %s", url,
                              weft_strerror(rc));
    int exit_code = WEFT_EXIT_INTERNAL;
    /* Task ids: the job file's path (absolute) and the job's name, so that --resume finds them. */
    char real[4096];
    if (!realpath(jf->path, real)) snprintf(real, sizeof real, "%s", jf->path);
    char prefix[24];
    snprintf(prefix, sizeof prefix, "%016llx", (unsigned long long)weft_hash_str(real));
    char **ids = calloc(n, sizeof *ids);
    weft_broker_task_t *t = calloc(n, sizeof *t);
    const char ***deps = calloc(n, sizeof *deps);
    weft_buf_t *cmds = calloc(n, sizeof *cmds);
    bool *reported = calloc(n, sizeof *reported);
    int *starts = calloc(n, sizeof *starts);
    struct bjob *bj = calloc(n, sizeof *bj);
    weft_htab_t byid = WEFT_HTAB_INIT;
    FILE *out = tty ? stderr : stdout; /* the log: above the live display on a terminal */
    int lines = 0, workers = 0;
    size_t running = 0;
    uint64_t drawn_ns = 0, counted_ns = 0;
    if (!ids || !t || !deps || !cmds || !reported || !starts || !bj) goto out;
    for (size_t i = 0; i < n; i++) {
        const struct job *j = &jf->jobs[i];
        size_t l = strlen(prefix) + strlen(j->name) + 2;
        ids[i] = malloc(l);
        if (!ids[i]) goto out;
        snprintf(ids[i], l, "%s/%s", prefix, j->name);
        weft_buf_init(&cmds[i], 0);
        if (remote_command(j, &cmds[i]) < 0) goto out;
        bool added;
        uint64_t *v = weft_htab_put(&byid, weft_hash_str(ids[i]), id_eq, ids[i], ids, &added);
        if (!v) goto out;
        *v = i;
    }
    for (size_t k = 0; k < n; k++) { /* dependencies first */
        size_t i = (size_t)jf->order[k];
        const struct job *j = &jf->jobs[i];
        deps[k] = calloc(j->ndeps + 1, sizeof *deps[k]);
        if (!deps[k]) goto out;
        for (size_t d = 0; d < j->ndeps; d++) deps[k][d] = ids[jobfile_find(jf, j->deps[d])];
        t[k] = (weft_broker_task_t){.id = ids[i],
                                    .cmd = cmds[i].data,
                                    .priority = j->priority,
                                    .deps = deps[k],
                                    .ndeps = j->ndeps,
                                    .attempts = j->retries + 1,
                                    .backoff_ms = j->backoff_ns / 1000000,
                                    .timeout_ms = (j->timeout_ns + 999999) / 1000000};
    }
    char after[32];
    if ((rc = weft_broker_events_last(b, after)) < 0) goto fail;
    size_t resumed = 0;
    if (resume) {
        rc = weft_broker_resume(b, (const char *const *)ids, n);
        if (rc < 0) goto fail;
    } else {
        rc = weft_broker_forget(b, (const char *const *)ids, n);
        if (rc == -EBUSY) {
            weft_cli_error("run", WEFT_EXIT_USAGE,
                           "jobs of %s still run on the broker (use --resume to follow them)",
                           jf->path);
            exit_code = WEFT_EXIT_USAGE;
            goto out;
        }
        if (rc < 0) goto fail;
    }
    if ((rc = weft_broker_submit(b, t, n)) < 0) goto fail;
    struct sigaction sa = {0}, old_int, old_term;
    sa.sa_handler = on_sig;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    mkdir(log_dir, 0755);
    uint64_t t0 = weft_now_ns(), t0_ms = strtoull(after, NULL, 10);
    size_t finished = 0, counts[WEFT_BROKER_CANCELLED + 1] = {0};
    /* Jobs that finished before (resume, or known): report them now. */
    for (size_t i = 0; i < n; i++) {
        weft_broker_result_t res;
        if (weft_broker_result(b, ids[i], &res) == 0 && res.state == WEFT_BROKER_DONE) {
            fprintf(out, "[%7.2fs] resumed  %s (succeeded in the earlier run, on %s)\n", 0.0,
                    jf->jobs[i].name, res.worker);
            reported[i] = true;
            finished++, resumed++;
            counts[WEFT_BROKER_DONE]++;
        }
        weft_broker_result_free(&res);
    }
    weft_broker_event_t ev[128];
    bool cancelled = false;
    while (finished < n) {
        if (stop_req && !cancelled) {
            cancelled = true;
            if (tty) run_live_clear(stderr, &lines);
            fprintf(stderr, "weft run: interrupted: cancelling the jobs on the broker\n");
            for (size_t i = 0; i < n; i++)
                if (!reported[i]) weft_broker_cancel(b, ids[i]);
        }
        int k = weft_broker_events(b, after, ev, 128, tty ? 100 : 200);
        if (k < 0) {
            rc = k;
            goto restore;
        }
        if (t0_ms == 0 && k > 0) t0_ms = ev[0].ms;
        if (k > 0 && tty) run_live_clear(stderr, &lines);
        for (int e = 0; e < k; e++) {
            snprintf(after, sizeof after, "%s", ev[e].stream_id);
            const uint64_t *v =
                weft_htab_find(&byid, weft_hash_str(ev[e].id), id_eq, ev[e].id, ids);
            if (!v || reported[*v]) continue;
            size_t idx = (size_t)*v;
            const struct job *j = &jf->jobs[idx];
            double ts = at(t0_ms, ev[e].ms);
            struct bjob *x = &bj[idx];
            if (x->running && ev[e].state != WEFT_BROKER_RUNNING) {
                x->running = false;
                running--;
            }
            switch (ev[e].state) {
            case WEFT_BROKER_RUNNING:
                if (!x->running) running++;
                x->running = true;
                x->seen_ns = weft_now_ns();
                x->start_ms = ev[e].ms;
                snprintf(x->worker, sizeof x->worker, "%s", ev[e].worker);
                if (!tty) /* as a local run: on a terminal the display shows what runs */
                    fprintf(out, "[%7.2fs] start    %s (%s on %s%s)\n", ts, j->name,
                            weft_sched_type_name(j->type), ev[e].worker,
                            starts[idx]++ ? ", again" : "");
                break;
            case WEFT_BROKER_BACKOFF:
                fprintf(out, "[%7.2fs] retry    %s: attempt %d failed (%s); %d left\n", ts, j->name,
                        ev[e].attempts, weft_err_name(ev[e].status),
                        j->retries + 1 - ev[e].attempts);
                break;
            case WEFT_BROKER_DONE:
            case WEFT_BROKER_FAILED:
            case WEFT_BROKER_SKIPPED:
            case WEFT_BROKER_CANCELLED: {
                reported[idx] = true;
                finished++;
                counts[ev[e].state]++;
                weft_broker_result_t res;
                weft_broker_result(b, ids[idx], &res);
                char path[4096];
                snprintf(path, sizeof path, "%s/%s.log", log_dir, j->name);
                if (res.value.len) {
                    FILE *f = fopen(path, "w");
                    if (f) {
                        fwrite(res.value.data, 1, res.value.len, f);
                        fclose(f);
                    }
                }
                if (ev[e].state == WEFT_BROKER_DONE) {
                    double took = x->start_ms && ev[e].ms > x->start_ms
                                      ? (double)(ev[e].ms - x->start_ms) / 1000.0
                                      : 0.0;
                    fprintf(out, "[%7.2fs] ok       %s (%.2f s on %s%s)\n", ts, j->name, took,
                            ev[e].worker, ev[e].attempts > 1 ? ", after a retry" : "");
                } else {
                    static const char *const names[] = {[WEFT_BROKER_FAILED] = "failed",
                                                        [WEFT_BROKER_SKIPPED] = "skipped",
                                                        [WEFT_BROKER_CANCELLED] = "cancel"};
                    fprintf(out, "[%7.2fs] %-8s %s: ", ts, names[ev[e].state], j->name);
                    const char *m = res.error.len ? res.error.data : weft_strerror(ev[e].status);
                    if (strncmp(m, "skipped: ", 9) == 0) m += 9;
                    weft_cli_put_safe(out, m, 300);
                    if (ev[e].worker[0]) fprintf(out, " (on %s)", ev[e].worker);
                    if (ev[e].state == WEFT_BROKER_FAILED) fprintf(out, " (log: %s)", path);
                    fputc('\n', out);
                }
                weft_broker_result_free(&res);
                break;
            }
            default:
                break;
            }
        }
        fflush(out);
        uint64_t now = weft_now_ns();
        if (tty && now - counted_ns >= 1000000000u) { /* the workers, once a second */
            weft_buf_t list;
            weft_buf_init(&list, 0);
            int live = weft_broker_workers(b, &list);
            weft_buf_free(&list);
            if (live >= 0) workers = live;
            counted_ns = now;
        }
        if (tty && finished < n && now - drawn_ns >= 100000000u) { /* 10 a second */
            draw(jf, bj, counts, finished, running, (double)(now - t0) / 1e9, workers, &lines);
            drawn_ns = now;
        }
    }
    if (tty) run_live_clear(stderr, &lines);
    double secs = (double)(weft_now_ns() - t0) / 1e9;
    size_t ok = counts[WEFT_BROKER_DONE];
    printf("weft run: %zu jobs: %zu ok", n, ok);
    if (resumed) printf(" (%zu from the earlier run)", resumed);
    printf(", %zu failed, %zu skipped, %zu cancelled in %.2f s (%.1f jobs/s)\n",
           counts[WEFT_BROKER_FAILED], counts[WEFT_BROKER_SKIPPED], counts[WEFT_BROKER_CANCELLED],
           secs, secs > 0 ? (double)(n - resumed) / secs : 0.0);
    if (ok < n)
        printf("rerun the rest with: weft run --broker %s --resume broker %s\n", url, jf->path);
    exit_code = ok == n ? WEFT_EXIT_OK : WEFT_EXIT_FAILED;
    if (cancelled) exit_code = 130;
    rc = 0;
restore:
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
fail:
    if (rc < 0)
        exit_code =
            weft_cli_error("run", WEFT_EXIT_INTERNAL, "broker %s: %s", url, weft_strerror(rc));
out:
    for (size_t i = 0; ids && i < n; i++) {
        free(ids[i]);
        if (cmds) weft_buf_free(&cmds[i]);
        if (deps) free(deps[i]);
    }
    weft_htab_free(&byid);
    free(ids);
    free(t);
    free(deps);
    free(cmds);
    free(reported);
    free(starts);
    free(bj);
    weft_broker_destroy(b);
    return exit_code;
}
