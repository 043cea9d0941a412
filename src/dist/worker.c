/* worker.c - a broker worker (weft/broker.h): takes tasks from the Redis streams, runs them on
 * its local hybrid scheduler, records the outcomes.
 *
 * DESIGN
 * Threads: the worker's own thread (the one in weft_broker_worker_run) is the only one that
 * talks to Redis; the scheduler's threads and process workers run the tasks. A finished task's
 * future calls on_done (in the scheduler thread that completed it), which moves the job to the
 * `done` list under `mu` and signals `cv`; the worker thread takes the whole list, records all of
 * it in one script call (one round trip) and only then acknowledges the entries (the script does
 * both atomically). A job is owned by the worker thread except between submit and on_done, when
 * the task (cmd_run) writes its output buffer; on_done is the hand-back.
 *
 * Loop, each turn: record finished jobs; every heartbeat refresh the worker's hash, refresh the
 * idle time of the entries it holds (XCLAIM JUSTID, so a live worker's long task is never taken
 * over), look for cancel flags of running tasks, promote due retries, reclaim dead workers'
 * entries (XAUTOCLAIM, min idle = the lease); then, if slots are free, read at most that many
 * entries, highest band first (no prefetch: a slow worker holds only what it runs; the recording
 * call already did this read when it had outcomes to record and the own pending list is done),
 * and start them on the scheduler with one submit_many (the process pool gets the batch at
 * once). With nothing to run it blocks in one XREADGROUP over its streams. At start the worker
 * reads its own pending entries (ID 0) before new ones (">"): a restarted worker finishes what
 * it had.
 *
 * Round trips per task, batched: one completion script per batch (record, release dependents,
 * XACK, then XREADGROUP + claim of the next batch for the slots it freed), and a fetch script
 * only when nothing was recorded; Redis calls per task inside the scripts: 3 at submit (EXISTS,
 * HSET of the fields not at their default, XADD), 2 at claim (HMGET, HSET; the running event
 * only while someone follows the events), 4 at completion (HMGET, HSET, the done event, EXPIRE;
 * LRANGE of the dependents only if it has some).
 *
 * A lost connection is not fatal: the worker reconnects with backoff and keeps the finished jobs
 * until they are recorded; tasks run on meanwhile. Lock order: only `mu`.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <weft/err.h>
#include <weft/sched.h>
#include <weft/sys.h>

#include "core/alloc.h"
#include "dist/broker-int.h"

#define OUT_MAX 4096

typedef struct job {
    struct job *next;          /* on `done` or `unrecorded` */
    struct job *rnext, *rprev; /* on `running` (unlinked in O(1) when recorded) */
    weft_broker_worker_t *w;
    char entry[48];
    char *id;
    char *cmd;
    int band, tries, att;
    uint64_t bo, to_ms;
    weft_future_t *f;
    weft_buf_t out; /* cmd output; written by cmd_run until the future is DONE */
    int status;
    char err[256];
    bool cancel_sent;
} job_t;

struct weft_broker_worker {
    weft__broker_conf_t conf;
    weft_broker_worker_opts_t o;
    char name[64];
    char host[64];
    char prefix[80];
    char ttl[24];
    redisContext *c;
    char sha[WEFT__S_COUNT][41];
    weft_sched_t *s;
    job_t *running; /* worker thread only */
    int nrunning;
    unsigned long long ndone;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job_t *done;       /* under mu */
    job_t *unrecorded; /* worker thread only: taken from done, not yet recorded */
    atomic_int stop;
    uint64_t rng;
    char autoclaim[WEFT__BROKER_BANDS][48];
    char pending[WEFT__BROKER_BANDS][48]; /* own pending list read so far; "" once drained */
    char last[48];                        /* the last entry id take() saw */
    char bands[4];                        /* "110": '1' for each band it takes new tasks from */
    char qkey[WEFT__BROKER_BANDS][96];    /* the streams it takes new tasks from */
    int nq;                               /* how many */
    bool reread_pending;                  /* set on (re)connecting */
};

static void job_free(job_t *j)
{
    weft_future_release(j->f);
    weft_buf_free(&j->out);
    weft__free(j->id);
    weft__free(j->cmd);
    weft__free(j);
}

/* ---- running a shell command (the thread form) ---- */

/* Runs j->cmd with /bin/sh -c in its own process group, output (stdout and stderr, at most
 * OUT_MAX bytes kept) into j->out. On cancel or timeout (the scheduler sets the token) it kills
 * the group. */
static int cmd_run(void *arg, weft_ctx_t *ctx)
{
    job_t *j = arg;
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int e = -errno;
        close(p[0]);
        close(p[1]);
        return e;
    }
    if (pid == 0) {
        setpgid(0, 0);
        dup2(p[1], 1);
        dup2(p[1], 2);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        execl("/bin/sh", "sh", "-c", j->cmd, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid); /* also here: no race with the kill below */
    close(p[1]);
    bool killed = false, eof = false;
    int status = 0;
    for (;;) {
        if (!killed && weft_ctx_cancelled(ctx)) {
            kill(-pid, SIGKILL);
            killed = true;
        }
        if (!eof) {
            struct pollfd pf = {p[0], POLLIN, 0};
            if (poll(&pf, 1, 20) > 0) {
                char buf[4096];
                ssize_t n = read(p[0], buf, sizeof buf);
                if (n > 0) {
                    size_t room = OUT_MAX > j->out.len ? OUT_MAX - j->out.len : 0;
                    weft_buf_append(&j->out, buf, (size_t)n < room ? (size_t)n : room);
                } else if (n == 0 || errno != EINTR) {
                    eof = true;
                }
            }
        }
        pid_t r = waitpid(pid, &status, eof ? 0 : WNOHANG);
        if (r == pid) break;
        if (r < 0 && errno != EINTR) break;
        if (eof && killed) continue;
        if (eof) {
            /* Output closed but the command runs on: wait in small steps to see a cancel. */
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    kill(-pid, SIGKILL); /* whatever the command left behind in its group */
    close(p[0]);
    if (killed) return -ECANCELED;
    if (WIFEXITED(status)) {
        if (WEXITSTATUS(status) == 0) return 0;
        snprintf(j->err, sizeof j->err, "exit status %d", WEXITSTATUS(status));
        return WEFT_EEXIT;
    }
    snprintf(j->err, sizeof j->err, "killed by signal %d", WTERMSIG(status));
    return WEFT_ESIGNAL;
}

/* Completion callback (a scheduler thread): hand the job back to the worker thread. */
static void on_done(weft_future_t *f, void *arg)
{
    (void)f;
    job_t *j = arg;
    weft_broker_worker_t *w = j->w;
    pthread_mutex_lock(&w->mu);
    j->next = w->done;
    w->done = j;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* ---- Redis ---- */

static void drop_conn(weft_broker_worker_t *w)
{
    redisFree(w->c);
    w->c = NULL;
}

/* Returns a reply or NULL (the connection is dropped on I/O errors; protocol errors keep it). */
static redisReply *wcmd(weft_broker_worker_t *w, const char *fmt, ...)
{
    if (!w->c) return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(w->c, fmt, ap);
    va_end(ap);
    if (!r || w->c->err) {
        if (r) freeReplyObject(r);
        drop_conn(w);
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        /* NOSCRIPT, LOADING, NOGROUP after a restart without data: start over on a new
         * connection, which loads the scripts and makes the groups. */
        freeReplyObject(r);
        drop_conn(w);
        return NULL;
    }
    return r;
}

static redisReply *wcmd_argv(weft_broker_worker_t *w, int argc, const char **argv,
                             const size_t *argl)
{
    if (!w->c) return NULL;
    redisReply *r = redisCommandArgv(w->c, argc, argv, argl);
    if (!r || w->c->err || r->type == REDIS_REPLY_ERROR) {
        if (getenv("WEFT_BROKER_DEBUG"))
            fprintf(stderr, "broker %s: %s\n", w->name, r ? r->str : w->c->errstr);
        if (r) freeReplyObject(r);
        drop_conn(w);
        return NULL;
    }
    return r;
}

static bool stopping(weft_broker_worker_t *w)
{
    return atomic_load_explicit(&w->stop, memory_order_relaxed) != 0;
}

/* Connects (again) with backoff until it works or the worker stops. */
static void ensure_conn(weft_broker_worker_t *w)
{
    int failures = 0;
    while (!w->c && !stopping(w)) {
        if (weft__broker_connect(&w->conf, &w->c, w->sha) == 0) {
            /* A claim whose reply was lost with the old connection left entries in our
             * pending list that we do not run: read it again (what we run is skipped). */
            for (int b = 0; b < WEFT__BROKER_BANDS; b++) {
                strcpy(w->autoclaim[b], "0-0");
                strcpy(w->pending[b], "0");
            }
            w->reread_pending = true;
            return;
        }
        uint64_t ms = 50 + weft_backoff(100, 2000, ++failures, &w->rng);
        struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* ---- taking tasks ---- */

/* A batch of claimed tasks being started: the jobs and their scheduler tasks, submitted to the
 * scheduler together (weft_sched_submit_many: one lock round, and the process pool gets the
 * whole batch at once instead of waking its worker for each task). */
typedef struct launch {
    job_t **jobs;
    weft_sched_task_t *tasks;
    size_t n, cap;
} launch_t;

static void launch_init(launch_t *l, size_t cap)
{
    l->jobs = weft__malloc(cap * sizeof *l->jobs);
    l->tasks = weft__malloc(cap * sizeof *l->tasks);
    l->n = 0;
    l->cap = l->jobs && l->tasks ? cap : 0;
}

/* Hands a job whose task could not be submitted to the recording (as a failure). */
static void fail_job(job_t *j, const weft_sched_task_t *t, int rc)
{
    /* Not runnable here (say, an unregistered function): record the failure. */
    j->status = rc == -EINVAL && t->proc_fn ? WEFT_ENOFUNC : rc;
    snprintf(j->err, sizeof j->err, "%s: %s", t->proc_fn ? t->proc_fn : "cmd",
             weft_strerror(j->status));
    j->f = NULL;
    on_done(NULL, j);
}

static void watch_job(job_t *j)
{
    if (weft_future_on_complete(j->f, on_done, j) != 0) {
        weft_future_wait(j->f, -1);
        on_done(j->f, j);
    }
}

/* Submits the batch: all at once, or (if that fails: one task is not runnable here) one by one,
 * so that each task gets its own outcome. Every job ends on `done` through on_done. */
static void launch_flush(weft_broker_worker_t *w, launch_t *l)
{
    size_t n = l->n;
    l->n = 0;
    if (n == 0) return;
    weft_future_t *small[64], **futs = n <= 64 ? small : weft__malloc(n * sizeof *futs);
    if (futs && weft_sched_submit_many(w->s, l->tasks, n, NULL, futs) == 0) {
        for (size_t i = 0; i < n; i++) l->jobs[i]->f = futs[i];
        for (size_t i = 0; i < n; i++) watch_job(l->jobs[i]);
    } else {
        for (size_t i = 0; i < n; i++) {
            int rc = weft_sched_submit(w->s, &l->tasks[i], NULL, &l->jobs[i]->f);
            if (rc)
                fail_job(l->jobs[i], &l->tasks[i], rc);
            else
                watch_job(l->jobs[i]);
        }
    }
    if (futs != small) weft__free(futs);
}

static void launch_free(launch_t *l)
{
    weft__free(l->jobs);
    weft__free(l->tasks);
}

/* Makes the job of one claim row and adds it to the batch (started at once if the batch could
 * not be allocated). The task's strings point into the job (name, cmd) or into the reply (fn,
 * arg): flush the batch before the reply is freed. */
static int start_job(weft_broker_worker_t *w, launch_t *l, int band, const redisReply *e)
{
    /* {entry, id, action, fn, cmd, arg, to, tries, att, bo, band} */
    const char *act = e->element[2]->str;
    if (strcmp(act, "run") != 0) return 0;
    job_t *j = weft__calloc(1, sizeof *j);
    if (!j) return -ENOMEM;
    j->w = w;
    j->band = band;
    snprintf(j->entry, sizeof j->entry, "%s", e->element[0]->str);
    j->id = weft__strdup(e->element[1]->str);
    weft_buf_init(&j->out, OUT_MAX + 1);
    j->to_ms = strtoull(e->element[6]->str, NULL, 10);
    j->tries = atoi(e->element[7]->str);
    j->att = atoi(e->element[8]->str);
    j->bo = strtoull(e->element[9]->str, NULL, 10);
    const redisReply *fn = e->element[3], *cmdr = e->element[4], *arg = e->element[5];
    weft_sched_task_t t = {0};
    t.name = j->id;
    t.timeout_ns = j->to_ms * 1000000ull;
    if (fn->len > 0) {
        t.type = WEFT_SCHED_CPU;
        t.proc_fn = fn->str;
        t.proc_arg = arg->str;
        t.proc_len = arg->len;
    } else {
        j->cmd = weft__strdup(cmdr->str);
        t.type = WEFT_SCHED_IO;
        t.fn = cmd_run;
        t.arg = j;
        t.cls = "cmd";
    }
    if (!j->id || (fn->len == 0 && !j->cmd)) {
        job_free(j);
        return -ENOMEM;
    }
    j->rnext = w->running;
    if (w->running) w->running->rprev = j;
    w->running = j;
    w->nrunning++;
    if (l->n < l->cap) {
        l->jobs[l->n] = j;
        l->tasks[l->n++] = t;
        return 0;
    }
    int rc = weft_sched_submit(w->s, &t, NULL, &j->f);
    if (rc)
        fail_job(j, &t, rc);
    else
        watch_job(j);
    return 0;
}

/* True if this worker runs the task of entry `entry` of band `band` now (an XAUTOCLAIM or an own
 * pending read may hand it back: it must not start twice here). Entry ids are per stream: one
 * script that queues tasks in two bands gives both entries the same id. */
static bool holding(const weft_broker_worker_t *w, int band, const char *entry)
{
    for (const job_t *j = w->running; j; j = j->rnext)
        if (j->band == band && strcmp(j->entry, entry) == 0) return true;
    return false;
}

/* Runs the claim script over the entries of one stream reply (an array of [id, fields]) and
 * starts the tasks it hands over. Returns entries taken (run or acknowledged), -1 on a lost
 * connection. */
static int take(weft_broker_worker_t *w, int band, const redisReply *entries)
{
    size_t n = entries->elements;
    if (n == 0) return 0;
    const char **argv = weft__malloc((9 + 2 * n) * sizeof *argv);
    size_t *argl = weft__malloc((9 + 2 * n) * sizeof *argl);
    if (!argv || !argl) {
        weft__free(argv);
        weft__free(argl);
        return 0; /* they stay pending and come back by our ID 0 read or a reclaim */
    }
    char maxr[16], bandstr[12];
    snprintf(maxr, sizeof maxr, "%d", w->conf.max_redeliveries);
    snprintf(bandstr, sizeof bandstr, "%d", band);
    size_t k = 0;
    argv[k++] = "EVALSHA", argv[k++] = w->sha[WEFT__S_CLAIM], argv[k++] = "0";
    argv[k++] = w->prefix, argv[k++] = w->ttl, argv[k++] = maxr, argv[k++] = w->name;
    argv[k++] = WEFT__BROKER_GROUP, argv[k++] = bandstr;
    size_t nk = 0;
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = entries->element[i];
        /* XAUTOCLAIM gives nil for entries deleted meanwhile. */
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
            e->element[1]->type != REDIS_REPLY_ARRAY)
            continue;
        const redisReply *f = e->element[1];
        snprintf(w->last, sizeof w->last, "%s", e->element[0]->str);
        const char *id = NULL;
        for (size_t x = 0; x + 1 < f->elements; x += 2)
            if (strcmp(f->element[x]->str, "id") == 0) id = f->element[x + 1]->str;
        if (!id || holding(w, band, e->element[0]->str)) continue;
        argv[k++] = e->element[0]->str;
        argv[k++] = id;
        nk++;
    }
    for (size_t i = 0; i < k; i++) argl[i] = strlen(argv[i]);
    int got = 0;
    if (nk > 0) {
        redisReply *r = wcmd_argv(w, (int)k, argv, argl);
        if (!r) {
            got = -1;
        } else {
            launch_t l;
            launch_init(&l, r->elements);
            for (size_t i = 0; i < r->elements; i++)
                if (r->element[i]->type == REDIS_REPLY_ARRAY && r->element[i]->elements == 11)
                    start_job(w, &l, band, r->element[i]);
            launch_flush(w, &l);
            launch_free(&l);
            got = (int)r->elements;
            freeReplyObject(r);
        }
    }
    weft__free(argv);
    weft__free(argl);
    return got;
}

/* XREADGROUP on one band; id "0" (own pending) or ">". Returns entries taken, -1 lost. */
static int read_band(weft_broker_worker_t *w, int band, const char *id, int count, int block_ms)
{
    redisReply *r =
        block_ms > 0
            ? wcmd(w,
                   "XREADGROUP GROUP " WEFT__BROKER_GROUP
                   " %s COUNT %d BLOCK %d STREAMS %s:q:%d %s",
                   w->name, count, block_ms, w->prefix, band, id)
            : wcmd(w, "XREADGROUP GROUP " WEFT__BROKER_GROUP " %s COUNT %d STREAMS %s:q:%d %s",
                   w->name, count, w->prefix, band, id);
    if (!r) return -1;
    int got = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1)
        got = take(w, band, r->element[0]->element[1]);
    freeReplyObject(r);
    return got;
}

/* Idle: one blocking XREADGROUP over all its streams, COUNT 1, for at most block_ms. The streams
 * are separate arguments (each key and each ">"): a formatted "%s" would send them as one and
 * Redis would refuse the command, dropping the connection at every idle turn. Returns the reply
 * or NULL (connection lost or dropped). */
static redisReply *idle_read(weft_broker_worker_t *w, int block_ms)
{
    char ms[16];
    snprintf(ms, sizeof ms, "%d", block_ms);
    const char *argv[9 + 2 * WEFT__BROKER_BANDS] = {
        "XREADGROUP", "GROUP", WEFT__BROKER_GROUP, w->name, "COUNT", "1", "BLOCK", ms, "STREAMS"};
    size_t argl[9 + 2 * WEFT__BROKER_BANDS];
    int k = 9;
    for (int i = 0; i < w->nq; i++) argv[k++] = w->qkey[i];
    for (int i = 0; i < w->nq; i++) argv[k++] = ">";
    for (int i = 0; i < k; i++) argl[i] = strlen(argv[i]);
    return wcmd_argv(w, k, argv, argl);
}

/* Starts the tasks of the claim rows of a fetch (the fetch or the completion script). Returns
 * entries taken. */
static int start_rows(weft_broker_worker_t *w, const redisReply *r)
{
    int got = 0;
    launch_t l;
    launch_init(&l, r->type == REDIS_REPLY_ARRAY ? r->elements : 0);
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 11) continue;
        int band = atoi(e->element[10]->str);
        if (band >= 0 && band < WEFT__BROKER_BANDS) start_job(w, &l, band, e);
        got++;
    }
    launch_flush(w, &l);
    launch_free(&l);
    return got;
}

/* Reads up to `count` new entries, highest band first, and claims them: one script, one round
 * trip. Returns entries taken, -1 on a lost connection. */
static int fetch(weft_broker_worker_t *w, int count)
{
    redisReply *r =
        wcmd(w, "EVALSHA %s 0 %s %s %d %s " WEFT__BROKER_GROUP " %d %s", w->sha[WEFT__S_FETCH],
             w->prefix, w->ttl, w->conf.max_redeliveries, w->name, count, w->bands);
    if (!r) return -1;
    int got = start_rows(w, r);
    freeReplyObject(r);
    return got;
}

/* ---- recording ---- */

static bool retryable(int status)
{
    static const int set[] = {-ETIMEDOUT,    WEFT_ECRASHED, -EAGAIN,    -EIO,       -ECONNRESET,
                              -ECONNREFUSED, -EPIPE,        WEFT_EHTTP, WEFT_EEXIT, WEFT_ESIGNAL};
    for (size_t i = 0; i < sizeof set / sizeof *set; i++)
        if (set[i] == status) return true;
    return false;
}

/* Records every job on w->unrecorded in one script call; with `then_fetch`, the same call then
 * takes as many new tasks as the slots freed allow (as fetch() does) and *fetched is set.
 * Returns the entries taken (0 if none or no fetch), or -1 on a lost connection (the jobs stay
 * on the list). */
static int record(weft_broker_worker_t *w, bool then_fetch, bool *fetched)
{
    *fetched = false;
    size_t n = 0;
    for (job_t *j = w->unrecorded; j; j = j->next) n++;
    if (n == 0) return 0;
    int count = w->o.slots - (w->nrunning - (int)n);
    if (count > w->o.batch) count = w->o.batch;
    if (!then_fetch || count < 0) count = 0;
    char maxr[16], cnt[16];
    snprintf(maxr, sizeof maxr, "%d", w->conf.max_redeliveries);
    snprintf(cnt, sizeof cnt, "%d", count);
    size_t argc = 10 + 7 * n;
    const char **argv = weft__malloc(argc * sizeof *argv);
    size_t *argl = weft__malloc(argc * sizeof *argl);
    char(*nums)[3][24] = weft__malloc(n * sizeof *nums);
    if (!argv || !argl || !nums) {
        weft__free(argv);
        weft__free(argl);
        weft__free(nums);
        return 0; /* try again next turn */
    }
    size_t k = 0, i = 0;
#define ARG(s, l) (argv[k] = (s), argl[k] = (l), k++)
    ARG("EVALSHA", 7);
    ARG(w->sha[WEFT__S_COMPLETE], 40);
    ARG("0", 1);
    ARG(w->prefix, strlen(w->prefix));
    ARG(w->ttl, strlen(w->ttl));
    ARG(w->name, strlen(w->name));
    ARG(WEFT__BROKER_GROUP, strlen(WEFT__BROKER_GROUP));
    ARG(maxr, strlen(maxr));
    ARG(cnt, strlen(cnt));
    ARG(w->bands, strlen(w->bands));
    for (job_t *j = w->unrecorded; j; j = j->next, i++) {
        int status = j->f ? weft_future_status(j->f) : j->status;
        const char *val = "";
        size_t vlen = 0;
        if (j->cmd) {
            val = j->out.data ? j->out.data : "", vlen = j->out.len;
        } else if (j->f) {
            const void *v = weft_future_value(j->f, &vlen);
            if (v)
                val = v;
            else
                vlen = 0;
        }
        if (status != 0 && !j->err[0]) {
            const char *m = j->f ? weft_future_message(j->f) : NULL;
            snprintf(j->err, sizeof j->err, "%s", m ? m : weft_strerror(status));
        }
        /* The worker knows the attempt number: it draws the backoff (full jitter). */
        long long delay = -1;
        if (status != 0 && retryable(status))
            delay = (long long)weft_backoff(j->bo, 30000, j->tries + 1, &w->rng);
        snprintf(nums[i][0], 24, "%d", j->band);
        snprintf(nums[i][1], 24, "%d", status);
        snprintf(nums[i][2], 24, "%lld", delay);
        ARG(nums[i][0], strlen(nums[i][0]));
        ARG(j->entry, strlen(j->entry));
        ARG(j->id, strlen(j->id));
        ARG(nums[i][1], strlen(nums[i][1]));
        ARG(val, vlen);
        ARG(j->err, strlen(j->err));
        ARG(nums[i][2], strlen(nums[i][2]));
    }
#undef ARG
    redisReply *r = wcmd_argv(w, (int)k, argv, argl);
    weft__free(argv);
    weft__free(argl);
    weft__free(nums);
    if (!r) return -1;
    while (w->unrecorded) {
        job_t *j = w->unrecorded;
        w->unrecorded = j->next;
        /* Unlink from running. */
        if (j->rprev)
            j->rprev->rnext = j->rnext;
        else
            w->running = j->rnext;
        if (j->rnext) j->rnext->rprev = j->rprev;
        w->nrunning--;
        w->ndone++;
        job_free(j);
    }
    int got = count > 0 ? start_rows(w, r) : 0;
    *fetched = count > 0;
    freeReplyObject(r);
    return got;
}

/* Moves finished jobs from `done` to `unrecorded`; waits up to wait_ms for one if none. */
static void collect(weft_broker_worker_t *w, int wait_ms)
{
    pthread_mutex_lock(&w->mu);
    if (!w->done && wait_ms > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)wait_ms * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    }
    job_t *d = w->done;
    w->done = NULL;
    pthread_mutex_unlock(&w->mu);
    while (d) {
        job_t *j = d;
        d = d->next;
        j->next = w->unrecorded;
        w->unrecorded = j;
    }
}

/* ---- heartbeat ---- */

static void heartbeat(weft_broker_worker_t *w)
{
    weft_buf_t tasks;
    weft_buf_init(&tasks, 1024);
    int shown = 0;
    for (job_t *j = w->running; j; j = j->rnext) {
        if (shown++ < 8) weft_buf_printf(&tasks, "%s%s", shown > 1 ? "," : "", j->id);
        /* A live worker's entries never reach the lease: reset their idle time. */
        redisAppendCommand(w->c, "XCLAIM %s:q:%d " WEFT__BROKER_GROUP " %s 0 %s JUSTID", w->prefix,
                           j->band, w->name, j->entry);
        redisAppendCommand(w->c, "HGET %s:t:%s cx", w->prefix, j->id);
    }
    int sent = 0;
    for (job_t *j = w->running; j; j = j->rnext) {
        redisReply *r = NULL;
        for (int x = 0; x < 2; x++) {
            if (redisGetReply(w->c, (void **)&r) != REDIS_OK) {
                drop_conn(w);
                weft_buf_free(&tasks);
                return;
            }
            if (x == 1 && r->type == REDIS_REPLY_STRING && strcmp(r->str, "1") == 0 &&
                !j->cancel_sent && j->f) {
                /* Cancel reaches the running task: the scheduler sets its cancel token (the
                 * command runner kills the process group) or drops it if not started. */
                weft_future_cancel(j->f);
                j->cancel_sent = true;
                sent++;
            }
            freeReplyObject(r);
        }
    }
    uint64_t ttl_ms = w->o.lease_ms * 3;
    redisAppendCommand(w->c,
                       "HSET %s:w:%s host %s pid %d slots %d running %d done %llu tasks %s "
                       "seen %llu",
                       w->prefix, w->name, w->host, (int)getpid(), w->o.slots, w->nrunning,
                       w->ndone, tasks.data ? tasks.data : "-",
                       (unsigned long long)(weft_now_ns() / 1000000));
    redisAppendCommand(w->c, "PEXPIRE %s:w:%s %llu", w->prefix, w->name,
                       (unsigned long long)ttl_ms);
    redisAppendCommand(w->c, "SADD %s:workers %s", w->prefix, w->name);
    for (int x = 0; x < 3; x++) {
        redisReply *r = NULL;
        if (redisGetReply(w->c, (void **)&r) != REDIS_OK) {
            drop_conn(w);
            break;
        }
        freeReplyObject(r);
    }
    weft_buf_free(&tasks);
}

/* Takes over entries idle longer than the lease (their worker died). */
static int reclaim(weft_broker_worker_t *w, int band, int count)
{
    redisReply *r =
        wcmd(w, "XAUTOCLAIM %s:q:%d " WEFT__BROKER_GROUP " %s %llu %s COUNT %d", w->prefix, band,
             w->name, (unsigned long long)w->o.lease_ms, w->autoclaim[band], count);
    if (!r) return -1;
    int got = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
        snprintf(w->autoclaim[band], sizeof w->autoclaim[band], "%s", r->element[0]->str);
        got = take(w, band, r->element[1]);
    }
    freeReplyObject(r);
    return got;
}

/* ---- public ---- */

int weft_broker_worker_create(weft_broker_worker_t **out, const char *url,
                              const weft_broker_opts_t *bopts,
                              const weft_broker_worker_opts_t *wopts)
{
    if (!out) return -EINVAL;
    *out = NULL;
    weft_broker_worker_t *w = weft__calloc(1, sizeof *w);
    if (!w) return -ENOMEM;
    int rc = weft__broker_conf(&w->conf, url, bopts);
    if (rc) {
        weft__free(w);
        return rc;
    }
    if (wopts) w->o = *wopts;
    if (w->o.queues & ~7u) {
        weft__free(w);
        return -EINVAL;
    }
    if (w->o.procs == 0) w->o.procs = 1;
    if (w->o.threads <= 0) w->o.threads = 4;
    if (w->o.slots <= 0) w->o.slots = (w->o.procs > 0 ? w->o.procs : 0) + w->o.threads;
    if (w->o.lease_ms == 0) w->o.lease_ms = 5000;
    if (w->o.heartbeat_ms == 0) w->o.heartbeat_ms = w->o.lease_ms / 5 ? w->o.lease_ms / 5 : 1;
    if (w->o.batch <= 0) w->o.batch = 128;
    gethostname(w->host, sizeof w->host - 1);
    if (w->o.name) {
        if (!*w->o.name || strlen(w->o.name) >= sizeof w->name || strpbrk(w->o.name, " \t\n")) {
            weft__free(w);
            return -EINVAL;
        }
        snprintf(w->name, sizeof w->name, "%s", w->o.name);
    } else {
        snprintf(w->name, sizeof w->name, "%.40s:%d", w->host, (int)getpid());
    }
    w->o.name = NULL; /* borrowed for the call only */
    snprintf(w->prefix, sizeof w->prefix, "weft:%s", w->conf.ns);
    snprintf(w->ttl, sizeof w->ttl, "%llu", (unsigned long long)w->conf.ttl_s);
    w->rng = weft_now_ns() ^ (uint64_t)getpid();
    rc = weft__broker_connect(&w->conf, &w->c, w->sha);
    if (rc == 0) {
        weft_sched_opts_t so = {0};
        so.procs = w->o.procs;
        so.threads_min = so.threads_max = w->o.threads;
        so.loop_max = -1;
        so.fixed_routes = true;
        so.name = "bworker";
        rc = weft_sched_create(&w->s, &so);
    }
    if (rc) {
        redisFree(w->c);
        weft__free(w);
        return rc;
    }
    for (int b = 0; b < WEFT__BROKER_BANDS; b++) {
        strcpy(w->autoclaim[b], "0-0");
        strcpy(w->pending[b], "0");
    }
    /* Its queues: the streams of the bands it takes new tasks from, for fetch and the blocking
     * read. */
    unsigned q = w->o.queues & 7 ? w->o.queues & 7 : 7;
    for (int b = 0; b < WEFT__BROKER_BANDS; b++) {
        w->bands[b] = q & (1u << b) ? '1' : '0';
        if (q & (1u << b)) snprintf(w->qkey[w->nq++], sizeof w->qkey[0], "%s:q:%d", w->prefix, b);
    }
    w->bands[WEFT__BROKER_BANDS] = 0;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    *out = w;
    return 0;
}

void weft_broker_worker_stop(weft_broker_worker_t *w)
{
    if (w) atomic_store_explicit(&w->stop, 1, memory_order_relaxed);
}

int weft_broker_worker_run(weft_broker_worker_t *w)
{
    if (!w) return -EINVAL;
    bool own_pending = true; /* first drain our own pending list (ID 0) */
    uint64_t next_hb = 0, next_promote = 0;
    int free_slots;
    while (!stopping(w) || w->nrunning > 0) {
        ensure_conn(w);
        if (!w->c) break; /* stopping without Redis: what runs is reclaimed after the lease */
        if (w->reread_pending) {
            w->reread_pending = false;
            own_pending = true;
        }
        collect(w, 0);
        /* Recording also fetches what the freed slots can take (not while the own pending list
         * comes first). */
        bool fetched;
        int pre = record(w, !own_pending && !stopping(w), &fetched);
        if (pre < 0) continue;
        uint64_t now = weft_now_ns();
        if (now >= next_hb) {
            next_hb = now + w->o.heartbeat_ms * 1000000ull;
            heartbeat(w);
            if (!w->c) continue;
            free_slots = w->o.slots - w->nrunning;
            for (int b = 0; b < WEFT__BROKER_BANDS && free_slots > 0 && !stopping(w); b++) {
                if (w->bands[b] != '1') continue; /* not its queue */
                int got = reclaim(w, b, free_slots);
                if (got < 0) break;
                free_slots -= got;
            }
            if (!w->c) continue;
        }
        if (now >= next_promote) { /* retries whose backoff is over go back to their stream */
            next_promote = now + 50000000ull;
            redisReply *r =
                wcmd(w, "EVALSHA %s 0 %s %s", w->sha[WEFT__S_PROMOTE], w->prefix, w->ttl);
            if (!r) continue;
            freeReplyObject(r);
        }
        free_slots = w->o.slots - w->nrunning;
        if (stopping(w) || free_slots <= 0) {
            /* Full (or finishing): wait for a task to end, at most until the heartbeat. */
            collect(w, (int)(w->o.heartbeat_ms < 50 ? w->o.heartbeat_ms : 50));
            if (stopping(w) && w->nrunning == 0 && !w->unrecorded) break;
            continue;
        }
        int count = free_slots < w->o.batch ? free_slots : w->o.batch;
        int got = 0;
        if (own_pending) {
            /* What this consumer name held when it stopped (a restart): from ID 0 on, once. */
            own_pending = false;
            for (int b = 0; b < WEFT__BROKER_BANDS && count > 0; b++) {
                if (!w->pending[b][0]) continue;
                w->last[0] = 0;
                int g = read_band(w, b, w->pending[b], count, 0);
                if (g < 0) break;
                if (w->last[0]) {
                    snprintf(w->pending[b], sizeof w->pending[b], "%s", w->last);
                    own_pending = true;
                    count -= g;
                } else {
                    w->pending[b][0] = 0;
                }
            }
            if (!w->c || own_pending) continue;
            count = free_slots < w->o.batch ? free_slots : w->o.batch;
        }
        got = fetched ? pre : fetch(w, count);
        if (got != 0) continue;
        if (w->nrunning > 0) {
            collect(w, 20); /* tasks run: wake up for their ends, poll the streams again */
        } else {
            /* Idle: block on every band at once, COUNT 1. A blocked read is served from the
             * one stream that got an entry; only if entries arrive in two bands between the
             * reads above and this one does it return one of each (at most 2 extra). */
            int block = (int)(w->o.heartbeat_ms < 100 ? w->o.heartbeat_ms : 100);
            redisReply *r = idle_read(w, block ? block : 1);
            if (!r) continue;
            for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
                const redisReply *st = r->element[i];
                const char *key = st->element[0]->str;
                int band = key[strlen(key) - 1] - '0';
                if (band >= 0 && band < WEFT__BROKER_BANDS) take(w, band, st->element[1]);
            }
            freeReplyObject(r);
        }
    }
    /* Finish: record what is left if the connection allows. */
    collect(w, 0);
    bool fetched;
    if (w->unrecorded && w->c) record(w, false, &fetched);
    return 0;
}

void weft_broker_worker_destroy(weft_broker_worker_t *w)
{
    if (!w) return;
    weft_sched_destroy(w->s);
    collect(w, 0);
    while (w->unrecorded) {
        job_t *j = w->unrecorded;
        w->unrecorded = j->next;
        job_free(j);
    }
    redisFree(w->c);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    weft__free(w);
}
