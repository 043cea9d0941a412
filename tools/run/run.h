/* `weft run`: the job file (YAML), the jobs' executors and the command. See docs/run.md. */
#ifndef WEFT_TOOLS_RUN_H
#define WEFT_TOOLS_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <weft/buf.h>
#include <weft/htab.h>
#include <weft/sched.h>

enum job_kind { JOB_SHELL = 0, JOB_SLEEP, JOB_CPU_BURN, JOB_HTTP_GET };

struct job {
    char *name;
    int line; /* of the job's name in the file */
    enum job_kind kind;
    char *run;  /* shell command (JOB_SHELL) */
    char *url;  /* JOB_HTTP_GET */
    char *cwd;  /* NULL: the current directory */
    char **env; /* "NAME=value" added to the environment */
    size_t nenv;
    char *cls;            /* NULL: the kind's name */
    uint64_t duration_ns; /* JOB_SLEEP, JOB_CPU_BURN */
    weft_sched_type_t type;
    int priority;
    int retries;      /* extra attempts */
    int retry_on[16]; /* statuses; n_retry_on == 0: every failure */
    size_t n_retry_on;
    uint64_t backoff_ns;
    uint64_t timeout_ns; /* 0: none */
    char **deps;
    int *dep_lines;
    size_t ndeps;
};

struct jobfile {
    char *path;
    struct job *jobs;
    size_t n;
    int procs, threads; /* pools: 0 = default */
    weft_htab_t names;  /* job name -> index into jobs */
    int *order;         /* the jobs' indexes, dependencies first */
};

/* Parses a job file's text. On failure appends "PATH:LINE: reason" to `err` and returns
 * WEFT_EPARSE (or -ENOMEM); `out` is then empty. Checks everything that can be checked before
 * running: YAML syntax, unknown keys, missing commands, bad values, unknown dependencies and
 * cycles (named). Ownership: fills `out`; free with jobfile_free. */
int jobfile_parse(const char *path, const char *text, size_t len, struct jobfile *out,
                  weft_buf_t *err);
void jobfile_free(struct jobfile *jf);

/* The index of the job named `name`, or -1. O(1). */
int jobfile_find(const struct jobfile *jf, const char *name);

/* Parses "250ms", "2s", "1.5m", "1h", "100us" or a bare number of seconds. Returns 0 or -EINVAL. */
int run_parse_duration(const char *s, uint64_t *ns);

/* ---- the state file: a journal of finished jobs (journal.c) ---- */

/* Fills fp[i] with the fingerprint of job i's definition (what it runs, where, with which
 * environment, and its dependencies' fingerprints), visiting jobs in `order` (dependencies
 * first). Returns 0 or -ENOMEM. */
int job_fingerprints(const struct jobfile *jf, const int *order, uint64_t *fp);

/* Reads a state file (a journal, or a state file of an earlier version): ok[i] tells whether job
 * i succeeded with the same fingerprint; *changed counts jobs that succeeded with another
 * definition. Torn or damaged records are ignored. Returns 0, a negative errno or WEFT_EPARSE,
 * with a one-line reason in `why`. */
int journal_load(const char *path, const struct jobfile *jf, const uint64_t *fp, bool *ok,
                 size_t *changed, weft_buf_t *why);

struct journal {
    int fd;
    char *path;
    weft_buf_t pending; /* records not yet written */
    int err;            /* first write error */
};

/* Creates (replaces, atomically) the journal at `path` with a record for each job whose
 * carried[i] is true (carried may be NULL): done before anything runs, so that an unwritable
 * path fails early. Returns 0 or a negative errno. Free with journal_close. */
int journal_create(struct journal *jr, const char *path, const struct jobfile *jf,
                   const uint64_t *fp, const bool *carried);
/* Queues a record of a finished job; journal_sync writes the queued records and syncs them to
 * disk. Returns 0 or the first write error (later records are then still attempted). */
void journal_add(struct journal *jr, const char *state, int status, int attempts, uint64_t fp,
                 const char *name);
int journal_sync(struct journal *jr);
void journal_close(struct journal *jr);

/* ---- the live display (display.c) ---- */

struct live_job { /* a running job */
    const char *name, *route;
    char tail[256];            /* the last line of its log */
    double elapsed_s, total_s; /* total_s: its duration or timeout; 0: unknown */
};

struct live_view {
    size_t n, finished, ok, failed, skipped, running, waiting;
    double t_s;
    size_t procs_busy, threads_busy, loop_busy;
    int procs, threads;
    const char *pools;           /* the line about the executors; NULL: the local pools' */
    const struct live_job *jobs; /* the first njobs running jobs (njobs <= running) */
    size_t njobs;
    uint64_t now_ns;
};

/* Draws the live display into `f` for a terminal of rows x cols: at most rows - 2 lines, none
 * wider than cols - 1 columns (so none wraps); running jobs beyond the screen are counted in a
 * last "+N more running" line. Returns the number of lines drawn. */
int run_live_draw(FILE *f, const struct live_view *v, int rows, int cols);

/* Erases the `*lines` lines of the live display last drawn into `f` (none: nothing), sets *lines
 * to 0. */
void run_live_clear(FILE *f, int *lines);

/* The terminal's size (of stderr): rows x cols, 24 x 100 when unknown. */
void run_live_size(int *rows, int *cols);

/* ---- executing jobs (exec.c) ---- */

/* What happened to a job, as it happened: the runners report each attempt's start and end, and
 * `weft run` each job's final outcome, so that the plain log has every event with its real time
 * (no polling). Runners in worker processes send theirs over a datagram socket. */
enum run_ev_type { EV_START = 0, EV_END, EV_FINISH };

struct run_event {
    uint64_t t_ns; /* weft_now_ns() when it happened (CLOCK_MONOTONIC: the same in every process) */
    uint64_t seq;  /* order of arrival, to keep sorting stable */
    int32_t job;   /* index in the job file */
    int32_t type;  /* enum run_ev_type */
    int32_t rc;    /* EV_END: the attempt's status */
    int32_t route; /* EV_START: weft_sched_route_t */
};

struct run_events; /* the queue: opaque */

/* Creates the queue and its socket. Returns 0 or a negative errno. Free with run_events_close. */
int run_events_open(struct run_events **out);
void run_events_close(struct run_events *q);
/* Queues an event (t_ns and seq are filled in). Thread safety: any thread of this process. */
void run_events_push(struct run_events *q, int job, enum run_ev_type type, int rc, int route);
/* The descriptors that become readable when events arrive (two of them), for poll(). */
void run_events_fds(const struct run_events *q, int fds[2]);
/* Takes every queued event, sorted by time, into *evs (grown as needed; free it). Returns the
 * count. Events whose job is >= njobs are dropped; *lost tells whether an event could not be
 * queued (out of memory). Thread safety: one thread (the main one). */
size_t run_events_take(struct run_events *q, size_t njobs, struct run_event **evs, size_t *cap,
                       bool *lost);

/* Whether a job's attempt number `attempt` (1-based) that failed with `rc` will be retried
 * (the retry policy job_exec_task gives the scheduler). */
bool job_will_retry(const struct job *j, int attempt, int rc);

/* What a job attempt needs, owned by the command for the whole run. */
struct job_exec {
    const struct job *job;
    int index;                 /* in the job file */
    struct run_events *events; /* NULL: none */
    char *log_path;
    char *cancel_path; /* exists once the run is cancelled (Ctrl-C): commands are stopped */
    void *proc_arg;    /* serialized for the process form */
    size_t proc_len;
    _Atomic int attempts; /* started so far (thread form; for the log header) */
};

/* Fills t with the forms of job x: thread form always; a process form for cpu-typed shell and
 * cpu-burn jobs; an async (loop) form for sleep and http-get. Returns 0 or -ENOMEM. */
int job_exec_task(struct job_exec *x, weft_sched_task_t *t);
void job_exec_free(struct job_exec *x);

/* Runs `command` with /bin/sh -c, in its own process group, output appended to `log_path`,
 * killing the group at `timeout_ns` (0: never) or when cancelled() returns true. Returns 0,
 * WEFT_EEXIT, WEFT_ESIGNAL, -ETIMEDOUT, -ECANCELED or a spawn error, with a one-line message in
 * msg. *cpu_ns gets the command's CPU time (rusage of the process group's leader). */
int run_shell(const char *command, const char *cwd, char *const *env, size_t nenv,
              const char *log_path, uint64_t timeout_ns, bool (*cancelled)(void *), void *carg,
              char *msg, size_t msglen, uint64_t *cpu_ns);

/* ---- on a broker (broker.c) ---- */

/* Runs the job file's DAG on Redis workers (`weft run --broker URL`): submits it (after
 * forgetting an earlier run of the same file, or resuming it), prints the plain log from the
 * workers' events and writes each job's output to LOG_DIR/NAME.log. Returns the exit code. */
int run_broker(const struct jobfile *jf, const char *url, const char *ns, bool resume,
               const char *log_dir, bool tty);

#endif
