/* `weft run JOBFILE`: runs a DAG of jobs (shell commands or built-in kinds) on the hybrid
 * scheduler (weft/sched.h). The job file is checked whole before anything runs; each job's output
 * goes to its own log file; a terminal gets a live display, anything else plain line logs; the
 * outcome of every job can be saved and a failed run resumed. See docs/run.md.
 *
 * Threads: the main thread reads the job file, submits the graph and then only watches. The
 * runners report each attempt's start and end, and a completion callback on each job's future
 * its outcome, as events (exec.c: a queue, and a socket for runners in worker processes); the
 * main thread sleeps in poll() until events come, prints one line per event with the time it
 * happened, appends outcomes to the state journal (journal.c), redraws the live display
 * (display.c) at most 10 times a second and writes --stats-json snapshots. Jobs run on the
 * scheduler's executors.
 */
#include "run/run.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <weft/err.h>
#include <weft/hash.h>
#include <weft/htab.h>
#include <weft/sys.h>

#include "common/cli-int.h"

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    interrupted = sig; /* the exit status is then 128 + sig, as make and the shells give */
}

static void usage(FILE *f)
{
    fprintf(
        f, "usage: weft run [OPTIONS] JOBFILE\n\n"
           "Runs the jobs of a YAML job file (a DAG of shell commands and built-in kinds) on the\n"
           "hybrid scheduler: CPU jobs on processes, I/O jobs on threads or the event loop,\n"
           "AUTO jobs where their measured CPU time says (the AUTO shell jobs of a class start\n"
           "one per CPU until three have finished, then go where measured). The whole file is\n"
           "checked before anything runs. Each job's output goes to LOGDIR/NAME.log.\n\n"
           "Options:\n"
           "  -n, --dry-run        print the plan (dependencies first) and exit\n"
           "  -j N, -jN            N worker processes and N threads (overrides 'pools')\n"
           "      --procs=N        worker processes (default: usable CPUs, adaptive)\n"
           "      --threads=N      threads (default: adaptive, CPUs..64)\n"
           "      --log-dir DIR    where job logs go (default: weft-run.logs)\n"
           "      --state FILE     journal every job's outcome to FILE as it finishes (synced\n"
           "                       to disk, so even a run killed with kill -9 can be resumed)\n"
           "      --resume STATE   rerun only the jobs that did not succeed in STATE, or whose\n"
           "                       definition changed since (then STATE is updated, unless\n"
           "                       --state names another file)\n"
           "      --stats-json F   append a JSON snapshot of the scheduler to F every second\n"
           "      --plain          line logs even on a terminal\n"
           "      --broker URL     run on `weft worker`s through Redis (redis://HOST:PORT):\n"
           "                       shell and sleep jobs only; the live display or plain log\n"
           "                       names each job's worker;\n"
           "                       --resume (any value) resumes from the broker's state\n"
           "      --ns NAME        the broker namespace the workers serve (default weft)\n"
           "  -h, --help           this text\n\n"
           "Job file (see docs/run.md):\n"
           "  defaults: {type: auto, retries: 1, timeout: 10m}   # optional\n"
           "  pools: {processes: 2, threads: 16}                  # optional\n"
           "  jobs:\n"
           "    fetch: {kind: http-get, url: 'http://127.0.0.1:8080/', type: io}\n"
           "    build: {run: 'make -j2', type: cpu, deps: [fetch], timeout: 5m}\n"
           "    test:  {run: 'make test', deps: build, retries: 2, retry-on: [exit]}\n"
           "  Job keys: run, kind (shell, sleep, cpu-burn, http-get), type (cpu, io, mixed,\n"
           "  auto), deps, priority, retries, retry-on (timeout, crash, signal, exit, http, io,\n"
           "  refused, reset, dns, slow), backoff, timeout, duration, url, cwd (relative to\n"
           "  the job file's directory), env, class. Merge keys (<<: *base) share settings;\n"
           "  top-level keys starting with x- are ignored (a place for anchors).\n\n"
           "Exit status: 0 every job succeeded (or had succeeded before --resume), 1 some job\n"
           "failed, was skipped or cancelled, 2 bad command line or job file (nothing ran),\n"
           "3 internal error, 130 interrupted by Ctrl-C (143 by SIGTERM) after stopping the jobs.\n"
           "Files for --state and --stats-json are checked before anything runs. Each command\n"
           "runs in its own process group, which is killed when the command exits and when\n"
           "weft run dies (even by SIGKILL): no job leaves processes behind.\n"
           "Options take their value as '--opt VALUE' or '--opt=VALUE', and may follow JOBFILE.\n");
}

struct run {
    struct jobfile jf;
    struct job_exec *x;
    weft_sched_t *s;
    weft_sched_graph_t *g;
    weft_sched_info_t *last; /* what was last reported per job */
    bool *reported;          /* final state printed */
    size_t finished;         /* jobs whose final state was printed */
    int *starts;             /* attempts started, from the events */
    bool *retry_told;        /* the retry of the current attempt was printed */
    struct run_events *q;
    bool sweep;        /* an outcome event may be missing: look at the graph too */
    uint64_t drawn_ns; /* when the live display was last drawn */
    /* Measuring AUTO shell jobs (plan_gates): */
    weft_future_t **gate; /* completed when job i finished, or its class was measured */
    int *wait_on;         /* the job whose gate job i waits for, or -1 */
    int *gate_cls;        /* job i's class, or -1: not gated */
    int *next_in_cls;     /* the next job of its class, or -1 */
    struct gclass *gcls;
    size_t ngcls;
    bool tty;
    FILE *ev; /* where event lines go */
    int live_lines;
    uint64_t t0;
    const char *log_dir;
    uint64_t *fp;      /* fingerprint of each job's definition */
    bool *carried;     /* succeeded in the run being resumed, with the same fingerprint */
    struct journal jr; /* the state file (path NULL: none) */
};

/* Marks the carried jobs as resumed in the graph. weft_sched_graph_resume reads a file in the
 * scheduler's format; we hand it the verified subset through a memfd. */
static int mark_resumed(struct run *r)
{
    int fd = memfd_create("weft-run-resume", MFD_CLOEXEC);
    if (fd < 0) return -errno;
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        return -ENOMEM;
    }
    fprintf(f, "weft-sched-state 1\n");
    for (size_t i = 0; i < r->jf.n; i++)
        if (r->carried[i]) fprintf(f, "ok\t0\t0\t%s\n", r->jf.jobs[i].name);
    int rc = fflush(f) == 0 ? 0 : -errno;
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    if (rc == 0) rc = weft_sched_graph_resume(r->g, path, NULL);
    fclose(f);
    return rc;
}

static double since(const struct run *r)
{
    return (double)(weft_now_ns() - r->t0) / 1e9;
}

static int read_file(const char *path, char **text, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "re");
    if (!f) return -errno;
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        if (f != stdin) fclose(f);
        return -EISDIR; /* fopen succeeds on a directory; reading it would say "I/O error" */
    }
    weft_buf_t b;
    weft_buf_init(&b, 16u << 20);
    char chunk[65536];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if ((rc = weft_buf_append(&b, chunk, n)) < 0) break;
    if (ferror(f)) rc = errno ? -errno : -EIO;
    if (f != stdin) fclose(f);
    if (rc < 0) {
        weft_buf_free(&b);
        return rc;
    }
    *text = weft_buf_steal(&b, len);
    if (!*text) *text = strdup("");
    weft_buf_free(&b);
    return *text ? 0 : -ENOMEM;
}

static int mkdir_p(const char *dir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            if (mkdir(p, 0755) < 0 && errno != EEXIST) return -errno;
            *s = '/';
        }
    if (mkdir(p, 0755) < 0 && errno != EEXIST) return -errno;
    return 0;
}

/* The last line of a job's log, for the live display. */
static void log_tail(const char *path, char *out, size_t n)
{
    out[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char buf[512];
    off_t end = lseek(fd, 0, SEEK_END);
    off_t from = end > (off_t)sizeof buf - 1 ? end - (off_t)sizeof buf + 1 : 0;
    ssize_t got = pread(fd, buf, sizeof buf - 1, from);
    close(fd);
    if (got <= 0) return;
    buf[got] = '\0';
    while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == '\r')) buf[--got] = '\0';
    const char *nl = strrchr(buf, '\n'), *src = nl ? nl + 1 : buf;
    if (strncmp(src, "== weft run", 11) == 0) return; /* our own header: nothing printed yet */
    size_t l = strlen(src);
    if (l >= n) l = n - 1;
    memcpy(out, src, l);
    out[l] = '\0';
}

static const char *short_state(weft_sched_state_t st)
{
    switch (st) {
    case WEFT_TASK_DONE:
        return "ok";
    case WEFT_TASK_FAILED:
        return "FAILED";
    case WEFT_TASK_SKIPPED:
        return "skipped";
    case WEFT_TASK_CANCELLED:
        return "cancelled";
    case WEFT_TASK_RESUMED:
        return "resumed";
    default:
        return weft_sched_state_name(st);
    }
}

static bool final_state(weft_sched_state_t st)
{
    return st >= WEFT_TASK_DONE;
}

static void clear_live(struct run *r)
{
    if (r->tty) run_live_clear(stderr, &r->live_lines);
}

/* AUTO (and MIXED) shell jobs are routed by measurement: the scheduler runs the first ones of a
 * class on threads and compares their CPU time (the commands' rusage) with their wall time. If
 * all of them started at once - 40 sha256sum on 2 cores - each would get a sliver of a CPU, the
 * ratio would read as waiting, and the class would be judged io-bound with everything already
 * routed to threads. So, per class, jobs start about one per CPU until the class has
 * MEASURE_RUNS finished runs (what the scheduler needs to classify it; see its policy): the k-th
 * job of a class (in dependency order) waits for a "gate" future that completes when the
 * (k - window)-th job finishes, and every gate of the class opens once it is measured; the
 * rest are then routed as measured (cpu-bound: processes). A job waits only for a job earlier in
 * dependency order, so gates cannot deadlock; the scheduler routes a task when it becomes
 * ready, after its gate. */
#define MEASURE_RUNS 3

struct gclass {
    const char *name;
    size_t members, finished;
    int head, tail; /* the class's jobs, in dependency order, through next_in_cls */
    int *ring;      /* the last `window` members */
    bool open;
};

static bool gclass_eq(uint64_t v, const void *key, const void *ctx)
{
    const struct gclass *c = ctx;
    return strcmp(c[v].name, key) == 0;
}

static int plan_gates(struct run *r, int window)
{
    size_t n = r->jf.n;
    int cpus = weft_cpu_count();
    if (window <= 0 || window > cpus) window = cpus;
    if (window < 1) window = 1;
    r->gate = calloc(n, sizeof *r->gate);
    r->wait_on = malloc(n * sizeof *r->wait_on);
    r->gate_cls = malloc(n * sizeof *r->gate_cls);
    r->next_in_cls = malloc(n * sizeof *r->next_in_cls);
    r->gcls = calloc(n, sizeof *r->gcls);
    if (!r->gate || !r->wait_on || !r->gate_cls || !r->next_in_cls || !r->gcls) return -ENOMEM;
    weft_htab_t classes = WEFT_HTAB_INIT;
    int rc = 0;
    for (size_t k = 0; k < n && rc == 0; k++) {
        int i = r->jf.order[k];
        const struct job *j = &r->jf.jobs[i];
        r->wait_on[i] = r->gate_cls[i] = r->next_in_cls[i] = -1;
        if (j->kind != JOB_SHELL || r->carried[i] ||
            (j->type != WEFT_SCHED_AUTO && j->type != WEFT_SCHED_MIXED))
            continue;
        const char *name = j->cls ? j->cls : "shell";
        bool added;
        uint64_t *v =
            weft_htab_put(&classes, weft_hash_str(name), gclass_eq, name, r->gcls, &added);
        if (!v) {
            rc = -ENOMEM;
            break;
        }
        if (added) {
            *v = r->ngcls++;
            struct gclass *c = &r->gcls[*v];
            c->name = name;
            c->head = c->tail = -1;
            c->ring = malloc((size_t)window * sizeof *c->ring);
            if (!c->ring) rc = -ENOMEM;
        }
        struct gclass *c = &r->gcls[*v];
        if (!(r->gate[i] = weft_future_create())) rc = -ENOMEM;
        if (rc) break;
        r->gate_cls[i] = (int)*v;
        if (c->tail >= 0)
            r->next_in_cls[c->tail] = i;
        else
            c->head = i;
        c->tail = i;
        size_t slot = c->members % (size_t)window;
        if (c->members >= (size_t)window) r->wait_on[i] = c->ring[slot];
        c->ring[slot] = i;
        c->members++;
    }
    weft_htab_free(&classes);
    return rc;
}

static void open_gate(struct run *r, int i)
{
    if (r->gate && r->gate[i]) weft_future_complete(r->gate[i], 0, NULL, 0, NULL); /* or EALREADY */
}

/* Job i finished: its gate opens, and its class's if the class is now measured. */
static void gate_finished(struct run *r, size_t i, weft_sched_state_t st)
{
    int cid = r->gate_cls ? r->gate_cls[i] : -1;
    if (cid < 0) return;
    open_gate(r, (int)i);
    struct gclass *c = &r->gcls[cid];
    if (c->open || (st != WEFT_TASK_DONE && st != WEFT_TASK_FAILED)) return;
    if (++c->finished < MEASURE_RUNS) return;
    c->open = true;
    for (int k = c->head; k >= 0; k = r->next_in_cls[k]) open_gate(r, k);
}

static void open_all_gates(struct run *r)
{
    for (size_t i = 0; r->gate && i < r->jf.n; i++) open_gate(r, (int)i);
}

static double at(const struct run *r, uint64_t t_ns)
{
    return t_ns > r->t0 ? (double)(t_ns - r->t0) / 1e9 : 0.0;
}

static void print_retry(struct run *r, size_t i, uint64_t t_ns, int attempt, int rc)
{
    const struct job *j = &r->jf.jobs[i];
    clear_live(r);
    fprintf(r->ev, "[%7.2fs] retry    %s: attempt %d failed (%s); %d left\n", at(r, t_ns), j->name,
            attempt, weft_err_name(rc), j->retries + 1 - attempt);
    r->retry_told[i] = true;
}

static void report_final(struct run *r, size_t i, uint64_t t_ns)
{
    weft_sched_info_t in;
    weft_sched_graph_info(r->g, (int)i, &in);
    if (!final_state(in.state) || r->reported[i]) return;
    r->reported[i] = true;
    r->finished++;
    r->last[i] = in;
    gate_finished(r, i, in.state);
    const struct job *j = &r->jf.jobs[i];
    if (r->jr.path && in.state != WEFT_TASK_RESUMED)
        journal_add(&r->jr, in.state == WEFT_TASK_DONE ? "ok" : weft_sched_state_name(in.state),
                    in.status, in.attempts, r->fp[i], j->name);
    clear_live(r);
    if (in.finished_ns) t_ns = in.finished_ns; /* the scheduler's own time of the outcome */
    weft_future_t *f = weft_sched_graph_future(r->g, (int)i);
    const char *m = f ? weft_future_message(f) : NULL;
    double took = in.finished_ns > in.started_ns && in.started_ns
                      ? (double)(in.finished_ns - in.started_ns) / 1e9
                      : 0;
    if (in.state == WEFT_TASK_DONE) {
        fprintf(r->ev, "[%7.2fs] ok       %s (%.2f s%s)\n", at(r, t_ns), j->name, took,
                in.attempts > 1 ? ", after a retry" : "");
    } else if (in.state == WEFT_TASK_RESUMED) {
        fprintf(r->ev, "[%7.2fs] resumed  %s (succeeded in the earlier run)\n", at(r, t_ns),
                j->name);
    } else {
        fprintf(r->ev, "[%7.2fs] %-8s %s: ", at(r, t_ns), short_state(in.state), j->name);
        if (m && in.state == WEFT_TASK_SKIPPED && strncmp(m, "skipped: ", 9) == 0) m += 9;
        weft_cli_put_safe(r->ev, m ? m : weft_strerror(in.status), 300);
        if (in.state == WEFT_TASK_FAILED) fprintf(r->ev, " (log: %s)", r->x[i].log_path);
        fputc('\n', r->ev);
    }
}

/* Prints one event: an attempt's start, a failed attempt that will be retried, an outcome. */
static void report_event(struct run *r, const struct run_event *e)
{
    size_t i = (size_t)e->job;
    const struct job *j = &r->jf.jobs[i];
    if (e->type == EV_START) {
        r->starts[i]++;
        if (r->starts[i] > 1 && !r->retry_told[i]) {
            /* The attempt before ended where we could not see it (a worker or a thread that
             * the scheduler timed out): its error is in the task's record. */
            weft_sched_info_t in;
            weft_sched_graph_info(r->g, (int)i, &in);
            int k = r->starts[i] - 2;
            print_retry(r, i, e->t_ns, r->starts[i] - 1,
                        k < in.nerrors && k < WEFT_SCHED_KEPT_ERRORS ? in.errors[k] : -ETIMEDOUT);
        }
        r->retry_told[i] = false;
        r->last[i].state = WEFT_TASK_RUNNING;
        r->last[i].route = (weft_sched_route_t)e->route;
        r->last[i].started_ns = e->t_ns;
        if (!r->tty)
            fprintf(r->ev, "[%7.2fs] start    %s (%s on %s%s)\n", at(r, e->t_ns), j->name,
                    weft_sched_type_name(j->type),
                    weft_sched_route_name((weft_sched_route_t)e->route),
                    r->starts[i] > 1 ? ", again" : "");
    } else if (e->type == EV_END) {
        if (!r->reported[i] && job_will_retry(j, r->starts[i], e->rc))
            print_retry(r, i, e->t_ns, r->starts[i], e->rc);
    } else {
        report_final(r, i, e->t_ns);
    }
}

static void on_finish(weft_future_t *f, void *arg)
{
    (void)f;
    struct job_exec *x = arg;
    run_events_push(x->events, x->index, EV_FINISH, 0, 0);
}

/* The live display's view of the jobs: states from the scheduler (the plain log needs none). */
static void refresh_states(struct run *r)
{
    for (size_t i = 0; i < r->jf.n; i++)
        if (!r->reported[i]) weft_sched_graph_info(r->g, (int)i, &r->last[i]);
}

static void draw_live(struct run *r)
{
    if (!r->tty) return;
    clear_live(r);
    refresh_states(r);
    int rows, cols;
    run_live_size(&rows, &cols);
    size_t counts[WEFT_TASK_STATE_COUNT] = {0};
    for (size_t i = 0; i < r->jf.n; i++) counts[r->last[i].state]++;
    weft_sched_stats_t st;
    weft_sched_stats(r->s, &st);
    struct live_job jobs[256];
    struct live_view v = {
        .n = r->jf.n,
        .finished = r->finished,
        .ok = counts[WEFT_TASK_DONE] + counts[WEFT_TASK_RESUMED],
        .failed = counts[WEFT_TASK_FAILED],
        .skipped = counts[WEFT_TASK_SKIPPED] + counts[WEFT_TASK_CANCELLED],
        .running = counts[WEFT_TASK_RUNNING],
        .waiting = counts[WEFT_TASK_WAITING] + counts[WEFT_TASK_QUEUED] + counts[WEFT_TASK_BACKOFF],
        .t_s = since(r),
        .procs_busy = st.exec[WEFT_ROUTE_PROCS].running,
        .procs = st.exec[WEFT_ROUTE_PROCS].workers,
        .threads_busy = st.exec[WEFT_ROUTE_THREADS].running,
        .threads = st.exec[WEFT_ROUTE_THREADS].workers,
        .loop_busy = st.exec[WEFT_ROUTE_LOOP].running,
        .jobs = jobs,
        .now_ns = weft_now_ns(),
    };
    size_t want = rows > 0 && (size_t)rows < 256 ? (size_t)rows : 256; /* more cannot show */
    for (size_t i = 0; i < r->jf.n && v.njobs < want; i++) {
        const weft_sched_info_t *in = &r->last[i];
        if (in->state != WEFT_TASK_RUNNING) continue;
        const struct job *j = &r->jf.jobs[i];
        struct live_job *lj = &jobs[v.njobs++];
        lj->name = j->name;
        lj->route = weft_sched_route_name(in->route);
        lj->elapsed_s = in->started_ns && v.now_ns > in->started_ns
                            ? (double)(v.now_ns - in->started_ns) / 1e9
                            : 0;
        uint64_t total = j->duration_ns ? j->duration_ns : j->timeout_ns;
        lj->total_s = (double)total / 1e9;
        log_tail(r->x[i].log_path, lj->tail, sizeof lj->tail);
    }
    r->live_lines = run_live_draw(stderr, &v, rows, cols);
    fflush(stderr);
}

static void stats_snapshot(struct run *r, const char *path)
{
    weft_buf_t b;
    weft_buf_init(&b, 0);
    size_t counts[WEFT_TASK_STATE_COUNT] = {0};
    for (size_t i = 0; i < r->jf.n; i++) counts[r->last[i].state]++;
    weft_buf_printf(&b, "{\"t_s\":%.3f,\"jobs\":{", since(r));
    for (int st = 0; st < WEFT_TASK_STATE_COUNT; st++)
        weft_buf_printf(&b, "%s\"%s\":%zu", st ? "," : "",
                        weft_sched_state_name((weft_sched_state_t)st), counts[st]);
    weft_buf_printf(&b, "},\"scheduler\":");
    int rc = weft_sched_stats_json(r->s, &b);
    if (rc == 0) rc = weft_buf_printf(&b, "}\n");
    FILE *f = rc == 0 ? fopen(path, "ae") : NULL;
    if (f) {
        fwrite(b.data, 1, b.len, f);
        fclose(f);
    }
    weft_buf_free(&b);
}

static void dry_run(struct run *r)
{
    size_t n = r->jf.n;
    int *order = malloc(n * sizeof *order);
    if (!order || weft_sched_graph_order(r->g, order, NULL, NULL, NULL) != 0) {
        free(order);
        return;
    }
    printf("plan for %s: %zu jobs, dependencies first\n", r->jf.path, n);
    for (size_t k = 0; k < n; k++) {
        int i = order[k];
        const struct job *j = &r->jf.jobs[i];
        weft_sched_info_t in;
        weft_sched_graph_info(r->g, i, &in);
        static const char *const kinds[] = {"shell", "sleep", "cpu-burn", "http-get"};
        printf("%4zu  %-20s %-8s %-5s prio %-3d", k + 1, j->name, kinds[j->kind],
               weft_sched_type_name(j->type), j->priority);
        if (j->ndeps) {
            printf(" after ");
            for (size_t d = 0; d < j->ndeps; d++) printf("%s%s", d ? "," : "", j->deps[d]);
        }
        if (j->kind == JOB_SHELL) {
            printf("  $ ");
            weft_cli_put_safe(stdout, j->run, 60);
        }
        putchar('\n');
    }
    free(order);
}

static int cmd_run(int argc, char **argv)
{
    const char *file = NULL, *state_out = NULL, *resume = NULL, *stats_json = NULL;
    const char *log_dir = "weft-run.logs";
    bool dry = false, plain = false;
    long procs = 0, threads = 0;
    const char *broker = NULL, *ns = NULL;
    bool resume_broker = false;
    enum {
        OPT_PROCS = 256,
        OPT_THREADS,
        OPT_LOG_DIR,
        OPT_STATE,
        OPT_RESUME,
        OPT_STATS,
        OPT_PLAIN,
        OPT_BROKER,
        OPT_NS
    };
    static const struct option longs[] = {{"help", no_argument, NULL, 'h'},
                                          {"dry-run", no_argument, NULL, 'n'},
                                          {"procs", required_argument, NULL, OPT_PROCS},
                                          {"threads", required_argument, NULL, OPT_THREADS},
                                          {"log-dir", required_argument, NULL, OPT_LOG_DIR},
                                          {"state", required_argument, NULL, OPT_STATE},
                                          {"resume", required_argument, NULL, OPT_RESUME},
                                          {"stats-json", required_argument, NULL, OPT_STATS},
                                          {"plain", no_argument, NULL, OPT_PLAIN},
                                          {"broker", required_argument, NULL, OPT_BROKER},
                                          {"ns", required_argument, NULL, OPT_NS},
                                          {NULL, 0, NULL, 0}};
    /* getopt_long: "-j2", "-j 2", "--procs=2" and "--procs 2" all work, options may follow the
     * job file, and "--" ends the options. */
    optind = 0; /* a full reset (glibc), in case a caller parsed before us */
    opterr = 0;
    int o, li;
    while ((o = getopt_long(argc, argv, ":hnj:", longs, &li)) != -1) {
        const char *a = argv[optind - 1];
        switch (o) {
        case 'h':
            usage(stdout);
            return WEFT_EXIT_OK;
        case 'n':
            dry = true;
            break;
        case OPT_PLAIN:
            plain = true;
            break;
        case 'j':
        case OPT_PROCS:
        case OPT_THREADS: {
            long n;
            const char *name = o == 'j' ? "-j" : o == OPT_PROCS ? "--procs" : "--threads";
            if (weft_cli_parse_int(optarg, 1, 256, &n) < 0)
                return weft_cli_usage_error("run", "bad %s '%s' (1..256)", name, optarg);
            if (o != OPT_THREADS) procs = n;
            if (o != OPT_PROCS) threads = n;
            break;
        }
        case OPT_BROKER:
        case OPT_NS:
            if (!*optarg) return weft_cli_usage_error("run", "--%s needs a value", longs[li].name);
            if (o == OPT_BROKER) broker = optarg;
            if (o == OPT_NS) ns = optarg;
            break;
        case OPT_LOG_DIR:
        case OPT_STATE:
        case OPT_RESUME:
        case OPT_STATS:
            if (!*optarg) return weft_cli_usage_error("run", "--%s needs a value", longs[li].name);
            if (o == OPT_LOG_DIR) log_dir = optarg;
            if (o == OPT_STATE) state_out = optarg;
            if (o == OPT_RESUME) resume = optarg;
            if (o == OPT_STATS) stats_json = optarg;
            break;
        case ':':
            return weft_cli_usage_error("run", "%s needs a value", a);
        default:
            if (optopt && optopt < 256)
                return weft_cli_usage_error("run", "unknown option '-%c'", optopt);
            return weft_cli_usage_error("run", "unknown option '%s'", a);
        }
    }
    for (int i = optind; i < argc; i++) {
        if (file)
            return weft_cli_usage_error("run", "one job file at a time ('%s' and '%s')", file,
                                        argv[i]);
        file = argv[i];
    }
    if (!file) return weft_cli_usage_error("run", "no job file given");
    if (broker && resume) { /* --resume with a broker: its state is in Redis */
        resume_broker = true;
    }
    if (resume && !state_out) state_out = resume;

    struct run r;
    memset(&r, 0, sizeof r);
    r.log_dir = log_dir;
    char *text = NULL;
    size_t len = 0;
    int rc = read_file(file, &text, &len);
    if (rc == -EISDIR) return weft_cli_error("run", WEFT_EXIT_USAGE, "%s: is a directory", file);
    if (rc < 0)
        return weft_cli_error("run", WEFT_EXIT_USAGE, "cannot read %s: %s", file, strerror(-rc));
    weft_buf_t err;
    weft_buf_init(&err, 0);
    rc = jobfile_parse(file, text, len, &r.jf, &err);
    free(text);
    if (rc < 0) {
        int code = rc == WEFT_EPARSE ? WEFT_EXIT_USAGE : WEFT_EXIT_INTERNAL;
        weft_cli_error("run", code, "%s", err.data ? err.data : weft_strerror(rc));
        weft_buf_free(&err);
        return code;
    }
    weft_buf_free(&err);
    if (broker && !dry) {
        bool tty = !plain && isatty(STDERR_FILENO) && getenv("WEFT_NO_PROGRESS") == NULL;
        int code = run_broker(&r.jf, broker, ns, resume_broker, log_dir, tty);
        jobfile_free(&r.jf);
        return code;
    }

    int exit_code = WEFT_EXIT_INTERNAL;
    size_t n = r.jf.n;
    r.x = calloc(n, sizeof *r.x);
    r.last = calloc(n, sizeof *r.last);
    r.reported = calloc(n, sizeof *r.reported);
    r.starts = calloc(n, sizeof *r.starts);
    r.retry_told = calloc(n, sizeof *r.retry_told);
    if (!r.x || !r.last || !r.reported || !r.starts || !r.retry_told ||
        weft_sched_graph_create(&r.g) < 0 || run_events_open(&r.q) < 0)
        goto out;
    /* Fingerprints of the jobs' definitions, for --resume to notice an edited job. */
    r.fp = calloc(n, sizeof *r.fp);
    r.carried = calloc(n, sizeof *r.carried);
    if (!r.fp || !r.carried || job_fingerprints(&r.jf, r.jf.order, r.fp) < 0) goto out;
    if (resume) {
        weft_buf_t why;
        weft_buf_init(&why, 0);
        size_t changed = 0;
        rc = journal_load(resume, &r.jf, r.fp, r.carried, &changed, &why);
        if (rc < 0) {
            exit_code = weft_cli_error("run", WEFT_EXIT_USAGE, "--resume: %s",
                                       why.data ? why.data : weft_strerror(rc));
            weft_buf_free(&why);
            goto out;
        }
        weft_buf_free(&why);
        if (changed)
            printf("weft run: %zu job%s changed since %s succeeded: run again\n", changed,
                   changed == 1 ? "" : "s", changed == 1 ? "it" : "they");
    }
    if (!dry && plan_gates(&r, threads ? (int)threads : (int)procs) < 0) goto out;
    char cancel_path[4200];
    snprintf(cancel_path, sizeof cancel_path, "%s/.cancel", log_dir);
    for (size_t i = 0; i < n; i++) {
        struct job_exec *x = &r.x[i];
        x->job = &r.jf.jobs[i];
        x->index = (int)i;
        x->events = r.q;
        size_t plen = strlen(log_dir) + strlen(x->job->name) + 8;
        x->log_path = malloc(plen);
        x->cancel_path = strdup(cancel_path);
        if (!x->log_path || !x->cancel_path) goto out;
        snprintf(x->log_path, plen, "%s/%s.log", log_dir, x->job->name);
        weft_sched_task_t t;
        if (job_exec_task(x, &t) < 0) goto out;
        if (r.wait_on && r.wait_on[i] >= 0) {
            t.dep_futures = &r.gate[r.wait_on[i]];
            t.ndep_futures = 1;
        }
        if (weft_sched_graph_add(r.g, x->job->name, &t) < 0) goto out;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t d = 0; d < r.jf.jobs[i].ndeps; d++)
            weft_sched_graph_depend(r.g, (int)i, jobfile_find(&r.jf, r.jf.jobs[i].deps[d]));
    if (resume && (rc = mark_resumed(&r)) < 0) {
        exit_code = weft_cli_error("run", WEFT_EXIT_INTERNAL, "--resume: %s", weft_strerror(rc));
        goto out;
    }
    if (dry) {
        dry_run(&r);
        exit_code = WEFT_EXIT_OK;
        goto out;
    }
    /* Every file the run writes is checked before anything runs. */
    if (state_out && (rc = journal_create(&r.jr, state_out, &r.jf, r.fp, r.carried)) < 0) {
        exit_code = weft_cli_error("run", WEFT_EXIT_USAGE, "cannot write state %s: %s", state_out,
                                   strerror(-rc));
        goto out;
    }
    if (stats_json) {
        int fd = open(stats_json, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) {
            exit_code = weft_cli_error("run", WEFT_EXIT_USAGE, "cannot write --stats-json %s: %s",
                                       stats_json, strerror(errno));
            goto out;
        }
        close(fd);
    }
    if ((rc = mkdir_p(log_dir)) < 0) {
        exit_code = weft_cli_error("run", WEFT_EXIT_USAGE, "cannot create log directory %s: %s",
                                   log_dir, strerror(-rc));
        goto out;
    }
    unlink(cancel_path);
    for (size_t i = 0; i < n; i++) /* each run's logs are its own (a resumed job keeps its log) */
        if (!r.carried[i]) unlink(r.x[i].log_path);

    weft_sched_opts_t so = {.name = "run"};
    if (!procs) procs = r.jf.procs;
    if (!threads) threads = r.jf.threads;
    so.procs = (int)procs;
    if (threads) so.threads_min = so.threads_max = (int)threads;
    rc = weft_sched_create(&r.s, &so);
    if (rc < 0) {
        exit_code = weft_cli_error("run", WEFT_EXIT_INTERNAL, "cannot start the scheduler: %s",
                                   weft_strerror(rc));
        goto out;
    }
    r.tty = !plain && isatty(STDERR_FILENO) && getenv("WEFT_NO_PROGRESS") == NULL;
    r.ev = r.tty ? stderr : stdout;
    struct sigaction sa = {.sa_handler = on_sigint}, old_int, old_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    r.t0 = weft_now_ns();
    for (size_t i = 0; i < n; i++) r.last[i].state = WEFT_TASK_WAITING;
    weft_buf_t why;
    weft_buf_init(&why, 0);
    rc = weft_sched_graph_submit(r.s, r.g, &why);
    if (rc < 0) {
        exit_code = weft_cli_error("run", WEFT_EXIT_INTERNAL, "cannot submit: %s",
                                   why.data ? why.data : weft_strerror(rc));
        weft_buf_free(&why);
        goto restore;
    }
    weft_buf_free(&why);
    for (size_t i = 0; i < n; i++) {
        weft_future_t *f = weft_sched_graph_future(r.g, (int)i);
        if (f && weft_future_on_complete(f, on_finish, &r.x[i]) < 0) r.sweep = true;
    }
    uint64_t next_stats = 0;
    bool cancelled = false;
    struct run_event *evs = NULL;
    size_t evcap = 0;
    int fds[2];
    run_events_fds(r.q, fds);
    while (r.finished < n) {
        /* Events wake us as they come; the timeout is for the live display, the stats and, if
         * an outcome callback could not be registered (out of memory), a look at the graph. */
        struct pollfd p[2] = {{.fd = fds[0], .events = POLLIN}, {.fd = fds[1], .events = POLLIN}};
        poll(p, 2, r.tty || stats_json || r.sweep ? 100 : 1000); /* EINTR on Ctrl-C: fine */
        if (interrupted && !cancelled) {
            cancelled = true;
            clear_live(&r);
            fprintf(stderr, "weft run: interrupted: stopping the running jobs\n");
            int fd = open(cancel_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
            if (fd >= 0) close(fd);
            weft_sched_shutdown(r.s, WEFT_SHUTDOWN_CANCEL);
            open_all_gates(&r); /* jobs waiting at a gate are cancelled too */
        }
        bool lost = false;
        size_t k = run_events_take(r.q, n, &evs, &evcap, &lost);
        if (lost) r.sweep = true;
        for (size_t e = 0; e < k; e++) report_event(&r, &evs[e]);
        if (r.sweep && weft_sched_graph_wait(r.g, 0) != -ETIMEDOUT)
            for (size_t i = 0; i < n; i++) report_final(&r, i, weft_now_ns());
        fflush(r.ev);
        if (r.jr.path) journal_sync(&r.jr); /* errors: reported at the end */
        if (stats_json && weft_now_ns() >= next_stats) {
            refresh_states(&r);
            stats_snapshot(&r, stats_json);
            next_stats = weft_now_ns() + 1000000000u;
        }
        if (r.finished < n && weft_now_ns() - r.drawn_ns >= 100000000u) { /* 10 a second */
            draw_live(&r);
            r.drawn_ns = weft_now_ns();
        }
    }
    free(evs);
    clear_live(&r);
    if (stats_json) stats_snapshot(&r, stats_json);
    size_t counts[WEFT_TASK_STATE_COUNT] = {0};
    for (size_t i = 0; i < n; i++) counts[r.last[i].state]++;
    double t = since(&r);
    size_t ok = counts[WEFT_TASK_DONE] + counts[WEFT_TASK_RESUMED];
    printf("weft run: %zu jobs: %zu ok", n, ok);
    if (counts[WEFT_TASK_RESUMED]) printf(" (%zu from the earlier run)", counts[WEFT_TASK_RESUMED]);
    printf(", %zu failed, %zu skipped, %zu cancelled in %.2f s (%.1f jobs/s)\n",
           counts[WEFT_TASK_FAILED], counts[WEFT_TASK_SKIPPED], counts[WEFT_TASK_CANCELLED], t,
           t > 0 ? (double)(n - counts[WEFT_TASK_RESUMED]) / t : 0.0);
    if (ok < n) printf("logs: %s/\n", log_dir);
    exit_code = ok == n ? WEFT_EXIT_OK : WEFT_EXIT_FAILED;
    if (cancelled) exit_code = 128 + (int)interrupted;
    if (state_out) {
        rc = journal_sync(&r.jr);
        if (rc < 0) {
            weft_cli_error("run", WEFT_EXIT_INTERNAL, "cannot write state %s: %s", state_out,
                           strerror(-rc));
            exit_code = WEFT_EXIT_INTERNAL;
        } else if (ok < n) {
            printf("state: %s (rerun the rest with: weft run --resume %s %s)\n", state_out,
                   state_out, file);
        }
    }
    unlink(cancel_path);
restore:
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
out:
    open_all_gates(&r);            /* nothing may wait at a gate now */
    weft_sched_graph_destroy(r.g); /* waits for its jobs, if submitted */
    weft_sched_destroy(r.s);
    if (r.x)
        for (size_t i = 0; i < n; i++) job_exec_free(&r.x[i]);
    free(r.x);
    free(r.last);
    free(r.reported);
    for (size_t i = 0; r.gate && i < n; i++) weft_future_release(r.gate[i]);
    for (size_t c = 0; c < r.ngcls; c++) free(r.gcls[c].ring);
    free(r.gate);
    free(r.wait_on);
    free(r.gate_cls);
    free(r.next_in_cls);
    free(r.gcls);
    free(r.starts);
    free(r.retry_told);
    free(r.fp);
    free(r.carried);
    if (r.jr.path) journal_close(&r.jr);
    run_events_close(r.q); /* after the graph and the scheduler: their callbacks push events */
    jobfile_free(&r.jf);
    return exit_code;
}

WEFT_COMMAND("run", cmd_run, "run a DAG of jobs (YAML) on the hybrid scheduler, with live display")
