/* How `weft run` executes a job: shell commands in their own process group with output captured
 * to the job's log file, and the built-in kinds (sleep, cpu-burn, http-get). Each job gets the
 * forms the scheduler can route: a thread form always, a process form for shell and cpu-burn
 * jobs (run by a process-pool worker), and an event-loop form for sleep and http-get.
 *
 * Stopping a command: at its timeout, or when the run is cancelled (Ctrl-C), the runner sends
 * SIGTERM to the command's process group, then SIGKILL after a grace period. A runner in a
 * process-pool worker cannot see the scheduler's cancel token, so cancellation reaches it
 * through a file (struct job_exec.cancel_path) that `weft run` creates on Ctrl-C; it also stops
 * if its parent went away.
 *
 * Dying with the runner: each command runs under a keeper process (keeper()) that leads its
 * process group. The keeper has PR_SET_PDEATHSIG, so when its runner dies - `weft run` killed
 * with SIGKILL (thread route), or a worker process killed with it or for a timeout (process
 * route; workers die with `weft run` by their own PDEATHSIG) - the kernel signals it and it
 * kills the whole group. When the command exits, the keeper kills whatever the command left in
 * its group, so no job leaves processes behind. (A subreaper would not be enough: it collects
 * orphans only while it lives.) Processes that leave the group on purpose (setsid, daemons) are
 * beyond a job's reach.
 */
#include "run/run.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <weft/err.h>
#include <weft/http.h>
#include <weft/procpool.h>
#include <weft/sys.h>

extern char **environ;

#define GRACE_NS 2000000000ull    /* SIGTERM, then SIGKILL this much later */
#define BACKSTOP_NS 3000000000ull /* the scheduler's timeout is the job's plus this */

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Appends a line to the job's log. */
static void log_line(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_line(const char *path, const char *fmt, ...)
{
    FILE *f = fopen(path, "ae");
    if (!f) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    fclose(f);
}

static void log_header(const char *path, const char *what)
{
    char ts[32];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    localtime_r(&tv.tv_sec, &tm);
    strftime(ts, sizeof ts, "%H:%M:%S", &tm);
    log_line(path, "== weft run %s.%03d (pid %d): %s", ts, (int)(tv.tv_usec / 1000), (int)getpid(),
             what);
}

static int wait_child(pid_t pid, int pidfd, uint64_t deadline, bool (*cancelled)(void *),
                      void *carg, bool *timed_out, bool *was_cancelled, int *status,
                      struct rusage *ru)
{
    uint64_t kill_at = 0;
    int sig = SIGTERM;
    for (;;) {
        pid_t r = wait4(pid, status, WNOHANG, ru);
        if (r == pid) return 0;
        if (r < 0 && errno != EINTR) return -errno;
        uint64_t now = weft_now_ns();
        if (!kill_at) {
            if (deadline && now >= deadline) *timed_out = true;
            if (cancelled && cancelled(carg)) *was_cancelled = true;
            if (*timed_out || *was_cancelled) {
                kill(-pid, SIGTERM);
                kill_at = now + GRACE_NS;
            }
        } else if (now >= kill_at && sig == SIGTERM) {
            sig = SIGKILL;
            kill(-pid, SIGKILL);
        }
        /* Sleep until the child exits (pidfd readable) or 20 ms pass, to check cancellation. */
        if (pidfd >= 0) {
            struct pollfd p = {.fd = pidfd, .events = POLLIN};
            poll(&p, 1, 20);
        } else {
            sleep_ns(5000000u);
        }
    }
}

/* What the keeper needs, prepared before fork. */
struct keeper_args {
    const char *command, *cwd;
    char **envp;
    int logfd, devnull, status_fd;
    pid_t parent;
};

/* The keeper: a process forked by the runner that leads the command's process group and starts
 * /bin/sh -c COMMAND in it. Why: PR_SET_PDEATHSIG makes the kernel signal a process when the
 * thread that forked it dies, but only that one process, and a shell's own children would be
 * left to init. The keeper gets SIGUSR2 when its runner dies (kill -9 of `weft run`, or a
 * process-pool worker killed for a timeout) and then kills the whole group, itself included.
 * When the command exits, the keeper writes its wait status to the runner, kills whatever the
 * command left in the group, and so dies itself: no job leaves processes behind, even if the
 * runner is killed a moment later. Its rusage, which includes the command it waited for, is the
 * job's CPU time. Runs in a forked copy of a multi-threaded program: async-signal-safe calls
 * only. */
static void __attribute__((noreturn)) keeper(const struct keeper_args *a)
{
    static const int term[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1};
    sigset_t set, none;
    sigemptyset(&set);
    sigemptyset(&none);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGUSR2);
    for (size_t i = 0; i < sizeof term / sizeof term[0]; i++) sigaddset(&set, term[i]);
    sigprocmask(SIG_BLOCK, &set, NULL);
    setpgid(0, 0); /* its own group, so that a timeout or cancel kills all of it */
    prctl(PR_SET_PDEATHSIG, SIGUSR2);
    if (getppid() != a->parent) kill(0, SIGKILL); /* the runner died before the prctl */
    pid_t sh = fork();
    if (sh == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(a->devnull, 0);
        dup2(a->logfd, 1);
        dup2(a->logfd, 2);
        if (a->cwd && chdir(a->cwd) < 0) {
            static const char m[] = "== weft run: cannot change to the job's cwd\n";
            if (write(2, m, sizeof m - 1) < 0) _exit(127);
            _exit(127);
        }
        for (size_t i = 0; i < sizeof term / sizeof term[0]; i++) signal(term[i], SIG_DFL);
        signal(SIGCHLD, SIG_DFL);
        signal(SIGUSR2, SIG_DFL);
        sigprocmask(SIG_SETMASK, &none, NULL);
        char *argv[] = {"sh", "-c", (char *)a->command, NULL};
        execve("/bin/sh", argv, a->envp);
        _exit(127);
    }
    if (sh < 0) _exit(126);
    struct rlimit nocore = {0, 0};
    setrlimit(RLIMIT_CORE, &nocore); /* the keeper is a copy of `weft run`: no core files */
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&set, &si);
        if (sig == SIGUSR2) kill(0, SIGKILL); /* the runner died */
        if (sig != SIGCHLD) continue;
        int st;
        if (waitpid(sh, &st, WNOHANG) != sh) continue;
        if (write(a->status_fd, &st, sizeof st) < 0) _exit(125);
        kill(0, SIGKILL); /* leftovers in the group, and the keeper */
        _exit(125);
    }
}

int run_shell(const char *command, const char *cwd, char *const *env, size_t nenv,
              const char *log_path, uint64_t timeout_ns, bool (*cancelled)(void *), void *carg,
              char *msg, size_t msglen, uint64_t *cpu_ns)
{
    *cpu_ns = 0;
    msg[0] = '\0';
    int logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (logfd < 0) {
        int e = -errno;
        snprintf(msg, msglen, "cannot open log %s: %s", log_path, strerror(-e));
        return e;
    }
    /* The environment: ours plus the job's. */
    size_t nbase = 0;
    while (environ && environ[nbase]) nbase++;
    char **envp = malloc((nbase + nenv + 1) * sizeof *envp);
    if (!envp) {
        close(logfd);
        return -ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < nbase; i++) {
        bool overridden = false;
        const char *eq = strchr(environ[i], '=');
        size_t nl = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
        for (size_t j = 0; j < nenv && !overridden; j++)
            overridden = strncmp(env[j], environ[i], nl) == 0 && env[j][nl] == '=';
        if (!overridden) envp[k++] = environ[i];
    }
    for (size_t j = 0; j < nenv; j++) envp[k++] = env[j];
    envp[k] = NULL;

    /* The command runs under a keeper process (see keeper()); the keeper reports the command's
     * wait status through a pipe, because it dies by its own group kill. Open the null device
     * before fork: the child may call only async-signal-safe functions. */
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC), sp[2];
    if (devnull < 0 || pipe2(sp, O_CLOEXEC | O_NONBLOCK) < 0) {
        int e = -errno;
        if (devnull >= 0) close(devnull);
        free(envp);
        close(logfd);
        snprintf(msg, msglen, "cannot start the command: %s", strerror(-e));
        return e;
    }
    struct keeper_args ka = {.command = command,
                             .cwd = cwd,
                             .envp = envp,
                             .logfd = logfd,
                             .devnull = devnull,
                             .status_fd = sp[1],
                             .parent = getpid()};
    pid_t pid = fork();
    if (pid == 0) keeper(&ka);
    int rc = pid < 0 ? -errno : 0;
    close(sp[1]);
    close(devnull);
    free(envp);
    close(logfd);
    if (rc < 0) {
        close(sp[0]);
        snprintf(msg, msglen, "cannot start /bin/sh: %s", strerror(-rc));
        return rc;
    }
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    bool timed_out = false, was_cancelled = false;
    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    uint64_t deadline = timeout_ns ? weft_now_ns() + timeout_ns : 0;
    rc =
        wait_child(pid, pidfd, deadline, cancelled, carg, &timed_out, &was_cancelled, &status, &ru);
    if (pidfd >= 0) close(pidfd);
    kill(-pid, SIGKILL); /* whatever the command left running in its group (the keeper did) */
    int kst;
    if (rc == 0 && read(sp[0], &kst, sizeof kst) == (ssize_t)sizeof kst)
        status = kst; /* the command's own status; the keeper then killed its group and itself */
    close(sp[0]);
    *cpu_ns = (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000u +
              (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000u;
    if (rc < 0) {
        snprintf(msg, msglen, "waiting for the command: %s", strerror(-rc));
        return rc;
    }
    if (timed_out) {
        snprintf(msg, msglen, "timed out after %.3g s; its process group was killed",
                 (double)timeout_ns / 1e9);
        log_line(log_path, "== weft run: %s", msg);
        return -ETIMEDOUT;
    }
    if (was_cancelled) {
        snprintf(msg, msglen, "cancelled; its process group was killed");
        log_line(log_path, "== weft run: %s", msg);
        return -ECANCELED;
    }
    if (WIFEXITED(status)) {
        if (WEXITSTATUS(status) == 0) return 0;
        snprintf(msg, msglen, "exit status %d", WEXITSTATUS(status));
        log_line(log_path, "== weft run: %s", msg);
        return WEFT_EEXIT;
    }
    int sig = WTERMSIG(status);
    snprintf(msg, msglen, "killed by signal %d (%s)", sig, strsignal(sig));
    log_line(log_path, "== weft run: %s", msg);
    return WEFT_ESIGNAL;
}

/* ---- the built-in kinds ------------------------------------------------------------------ */

static volatile uint64_t burn_sink; /* keeps the hash from being optimised away */

static int burn_cpu(uint64_t ns, bool (*cancelled)(void *), void *carg)
{
    /* Real work, not a spin on the clock: a running hash. */
    uint64_t end = weft_thread_cpu_ns() + ns, h = 1469598103934665603u;
    for (uint32_t round = 0;; round++) {
        for (int i = 0; i < 20000; i++) h = (h ^ (uint64_t)i) * 1099511628211u;
        if (weft_thread_cpu_ns() >= end) break;
        if ((round & 15) == 0 && cancelled && cancelled(carg)) return -ECANCELED;
    }
    burn_sink = h;
    return 0;
}

static int nap(uint64_t ns, bool (*cancelled)(void *), void *carg)
{
    uint64_t end = weft_now_ns() + ns;
    for (;;) {
        uint64_t now = weft_now_ns();
        if (now >= end) return 0;
        if (cancelled && cancelled(carg)) return -ECANCELED;
        uint64_t left = end - now;
        sleep_ns(left < 20000000u ? left : 20000000u);
    }
}

static int http_get_blocking(const char *url, uint64_t timeout_ns, const char *log_path, char *msg,
                             size_t msglen)
{
    weft_http_session_t *hs;
    int rc = weft_http_session_create(&hs);
    if (rc < 0) return rc;
    weft_http_opts_t o = {.url = url,
                          .timeout_ms = timeout_ns ? (long)(timeout_ns / 1000000u) + 1 : 30000};
    weft_http_resp_t resp;
    memset(&resp, 0, sizeof resp);
    uint64_t t0 = weft_now_ns();
    rc = weft_http_session_perform(hs, &o, &resp);
    double ms = (double)(weft_now_ns() - t0) / 1e6;
    if (rc == 0 && resp.status >= 400) rc = WEFT_EHTTP;
    if (rc == 0) {
        log_line(log_path, "GET %s -> HTTP %ld, %" PRIu64 " bytes in %.1f ms", url, resp.status,
                 resp.bytes, ms);
    } else {
        snprintf(msg, msglen, "GET %s: %s", url,
                 rc == WEFT_EHTTP ? "HTTP error status"
                 : resp.errmsg[0] ? resp.errmsg
                                  : weft_strerror(rc));
        if (rc == WEFT_EHTTP) snprintf(msg, msglen, "GET %s: HTTP %ld", url, resp.status);
        log_line(log_path, "== weft run: %s", msg);
    }
    weft_http_resp_free(&resp);
    weft_http_session_destroy(hs);
    return rc;
}

/* ---- events ------------------------------------------------------------------------------ */

/* In-process events go to a mutex-protected array and wake the main thread through an eventfd
 * (only when the array was empty: the main thread takes all of it per wake-up). Runners in
 * worker processes, which share no memory with us, send each event as one datagram to a socket
 * with an abstract address (no file); the main thread reads the socket after taking the array,
 * so an attempt's start, sent before the job's outcome is pushed, is never taken after it.
 * Datagrams from another user are refused (SO_PASSCRED). */
struct run_events {
    pthread_mutex_t mu;
    struct run_event *v;
    size_t n, cap;
    uint64_t seq;
    int wake, sock;
    bool lost;     /* an event could not be queued */
    char name[64]; /* the socket's abstract address, without its leading NUL */
};

int run_events_open(struct run_events **out)
{
    *out = NULL;
    struct run_events *q = calloc(1, sizeof *q);
    if (!q) return -ENOMEM;
    pthread_mutex_init(&q->mu, NULL);
    q->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    q->sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int rc = q->wake < 0 || q->sock < 0 ? -errno : 0, on = 1;
    if (!rc && setsockopt(q->sock, SOL_SOCKET, SO_PASSCRED, &on, sizeof on) < 0) rc = -errno;
    uint64_t rnd = weft_now_ns() ^ ((uint64_t)getpid() << 32);
    for (int tries = 0; !rc && tries < 8; tries++) {
        snprintf(q->name, sizeof q->name, "weft-run.%d.%016" PRIx64, (int)getpid(),
                 weft_rand(&rnd));
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        size_t nl = strlen(q->name);
        memcpy(a.sun_path + 1, q->name, nl);
        if (bind(q->sock, (struct sockaddr *)&a,
                 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + nl)) == 0)
            break;
        rc = errno == EADDRINUSE && tries < 7 ? 0 : -errno;
    }
    if (rc) {
        run_events_close(q);
        return rc;
    }
    *out = q;
    return 0;
}

void run_events_close(struct run_events *q)
{
    if (!q) return;
    if (q->wake >= 0) close(q->wake);
    if (q->sock >= 0) close(q->sock);
    pthread_mutex_destroy(&q->mu);
    free(q->v);
    free(q);
}

static void push_event(struct run_events *q, const struct run_event *e)
{
    pthread_mutex_lock(&q->mu);
    bool was_empty = q->n == 0;
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        struct run_event *v = realloc(q->v, cap * sizeof *v);
        if (!v) {
            q->lost = true; /* out of memory: the main thread then looks at the graph too */
            pthread_mutex_unlock(&q->mu);
            return;
        }
        q->v = v;
        q->cap = cap;
    }
    q->v[q->n] = *e;
    q->v[q->n++].seq = q->seq++;
    pthread_mutex_unlock(&q->mu);
    if (was_empty) {
        uint64_t one = 1;
        if (write(q->wake, &one, sizeof one) < 0) { /* full counter: a wake-up is pending */
        }
    }
}

void run_events_push(struct run_events *q, int job, enum run_ev_type type, int rc, int route)
{
    if (!q) return;
    struct run_event e = {
        .t_ns = weft_now_ns(), .job = job, .type = type, .rc = rc, .route = route};
    push_event(q, &e);
}

void run_events_fds(const struct run_events *q, int fds[2])
{
    fds[0] = q->wake;
    fds[1] = q->sock;
}

static int by_time(const void *a, const void *b)
{
    const struct run_event *x = a, *y = b;
    if (x->t_ns != y->t_ns) return x->t_ns < y->t_ns ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

size_t run_events_take(struct run_events *q, size_t njobs, struct run_event **evs, size_t *cap,
                       bool *lost)
{
    uint64_t cnt;
    if (read(q->wake, &cnt, sizeof cnt) < 0) { /* nothing pending: fine */
    }
    pthread_mutex_lock(&q->mu);
    struct run_event *v = q->v;
    size_t n = q->n, vcap = q->cap;
    q->v = *evs; /* swap arrays: pushers continue into ours */
    q->cap = *cap;
    q->n = 0;
    *lost = q->lost;
    pthread_mutex_unlock(&q->mu);
    *evs = v;
    *cap = vcap;
    /* Then the workers' datagrams (see above for why after). */
    uid_t me = getuid();
    for (;;) {
        struct run_event e;
        union {
            struct cmsghdr h;
            char buf[CMSG_SPACE(sizeof(struct ucred))];
        } ctl;
        struct iovec io = {&e, sizeof e};
        struct msghdr m = {
            .msg_iov = &io, .msg_iovlen = 1, .msg_control = &ctl, .msg_controllen = sizeof ctl};
        ssize_t got = recvmsg(q->sock, &m, MSG_DONTWAIT);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) break;
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        struct ucred cred;
        if (got != (ssize_t)sizeof e || !c || c->cmsg_type != SCM_CREDENTIALS) continue;
        memcpy(&cred, CMSG_DATA(c), sizeof cred);
        if (cred.uid != me) continue;
        if (n == *cap) {
            size_t ncap = *cap ? *cap * 2 : 64;
            struct run_event *nv = realloc(*evs, ncap * sizeof *nv);
            if (!nv) break;
            *evs = nv;
            *cap = ncap;
        }
        e.seq = (uint64_t)-1; /* after in-process events of the same instant */
        (*evs)[n++] = e;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if ((*evs)[i].job >= 0 && (size_t)(*evs)[i].job < njobs) (*evs)[k++] = (*evs)[i];
    if (k > 1) qsort(*evs, k, sizeof **evs, by_time); /* *evs may be NULL when k == 0 */
    return k;
}

/* From a worker process: one datagram, waiting at most a second for room. */
static void send_event(const char *name, int job, enum run_ev_type type, int rc, int route)
{
    if (!name || !*name) return;
    struct run_event e = {
        .t_ns = weft_now_ns(), .job = job, .type = type, .rc = rc, .route = route};
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    size_t nl = strnlen(name, sizeof a.sun_path - 1);
    memcpy(a.sun_path + 1, name, nl);
    struct timeval tv = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a,
                (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + nl)) == 0)
        while (send(fd, &e, sizeof e, 0) < 0 && errno == EINTR) {
        }
    close(fd);
}

/* ---- the thread form --------------------------------------------------------------------- */

static bool file_exists(const char *p)
{
    struct stat st;
    return p && stat(p, &st) == 0;
}

struct tcancel {
    weft_ctx_t *ctx;
    const char *path;
};

static bool thread_cancelled(void *arg)
{
    struct tcancel *c = arg;
    return weft_ctx_cancelled(c->ctx) || file_exists(c->path);
}

static int job_thread(void *arg, weft_ctx_t *ctx)
{
    struct job_exec *x = arg;
    const struct job *j = x->job;
    struct tcancel tc = {ctx, x->cancel_path};
    char msg[512] = "";
    int rc = 0;
    run_events_push(x->events, x->index, EV_START, 0, WEFT_ROUTE_THREADS);
    switch (j->kind) {
    case JOB_SHELL: {
        log_header(x->log_path, j->run);
        uint64_t cpu = 0;
        rc = run_shell(j->run, j->cwd, j->env, j->nenv, x->log_path, j->timeout_ns,
                       thread_cancelled, &tc, msg, sizeof msg, &cpu);
        weft_sched_add_cpu(ctx, cpu); /* the command's CPU time counts as the job's */
        break;
    }
    case JOB_SLEEP:
        log_header(x->log_path, "sleep (thread)");
        rc = nap(j->duration_ns, thread_cancelled, &tc);
        break;
    case JOB_CPU_BURN:
        log_header(x->log_path, "cpu-burn (thread)");
        rc = burn_cpu(j->duration_ns, thread_cancelled, &tc);
        break;
    case JOB_HTTP_GET:
        log_header(x->log_path, "http-get (thread)");
        rc = http_get_blocking(j->url, j->timeout_ns, x->log_path, msg, sizeof msg);
        break;
    }
    if (rc < 0 && msg[0]) weft_ctx_set_message(ctx, "%s", msg);
    run_events_push(x->events, x->index, EV_END, rc, WEFT_ROUTE_THREADS);
    return rc;
}

/* ---- the process form -------------------------------------------------------------------- */

static int put_field(weft_buf_t *b, const char *s)
{
    if (!s) s = "";
    return weft_buf_append(b, s, strlen(s) + 1);
}

/* Argument bytes: NUL-terminated strings in this order: kind, run, cwd, log, cancel, timeout_ns,
 * duration_ns, nenv, job index, event socket name, env... (a command cannot contain NUL, so
 * none of them can). */
static int serialize(const struct job_exec *x, void **out, size_t *len)
{
    const struct job *j = x->job;
    weft_buf_t b;
    weft_buf_init(&b, 0);
    int rc = 0;
    char num[5][32];
    snprintf(num[0], sizeof num[0], "%d", (int)j->kind);
    snprintf(num[1], sizeof num[1], "%" PRIu64, j->timeout_ns);
    snprintf(num[2], sizeof num[2], "%" PRIu64, j->duration_ns);
    snprintf(num[3], sizeof num[3], "%zu", j->nenv);
    snprintf(num[4], sizeof num[4], "%d", x->index);
    const char *fields[] = {num[0], j->run, j->cwd, x->log_path, x->cancel_path,
                            num[1], num[2], num[3], num[4],      x->events ? x->events->name : ""};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) rc |= put_field(&b, fields[i]);
    for (size_t i = 0; i < j->nenv; i++) rc |= put_field(&b, j->env[i]);
    if (rc < 0) {
        weft_buf_free(&b);
        return -ENOMEM;
    }
    *out = weft_buf_steal(&b, len);
    weft_buf_free(&b);
    return 0;
}

static bool proc_cancelled(void *arg)
{
    /* Cancelled by `weft run` (Ctrl-C), or orphaned. */
    return file_exists(arg) || getppid() == 1;
}

static int job_proc(const void *arg, size_t len, weft_buf_t *out)
{
    const char *f[64];
    size_t nf = 0;
    for (const char *p = arg, *end = (const char *)arg + len; p < end && nf < 64;) {
        const char *z = memchr(p, '\0', (size_t)(end - p));
        if (!z) break;
        f[nf++] = p;
        p = z + 1;
    }
    if (nf < 10) return -EINVAL;
    size_t nenv = (size_t)strtoul(f[7], NULL, 10);
    if (nenv > nf - 10) return -EINVAL;
    int index = atoi(f[8]);
    const char *sock = f[9];
    send_event(sock, index, EV_START, 0, WEFT_ROUTE_PROCS);
    /* Ctrl-C reaches the whole terminal group, this worker included: the runner stops the
     * command through the cancel file instead, and reports. */
    signal(SIGINT, SIG_IGN);
    int kind = atoi(f[0]);
    const char *log_path = f[3], *cancel = f[4][0] ? f[4] : NULL;
    uint64_t timeout_ns = strtoull(f[5], NULL, 10), duration_ns = strtoull(f[6], NULL, 10);
    char msg[512] = "";
    int rc;
    if (kind == JOB_SHELL) {
        log_header(log_path, f[1]);
        uint64_t cpu;
        rc = run_shell(f[1], f[2][0] ? f[2] : NULL, (char *const *)&f[10], nenv, log_path,
                       timeout_ns, proc_cancelled, (void *)cancel, msg, sizeof msg, &cpu);
    } else if (kind == JOB_CPU_BURN) {
        log_header(log_path, "cpu-burn (process)");
        rc = burn_cpu(duration_ns, proc_cancelled, (void *)cancel);
    } else {
        log_header(log_path, "sleep (process)");
        rc = nap(duration_ns, proc_cancelled, (void *)cancel);
    }
    if (rc < 0 && msg[0]) weft_buf_printf(out, "%s", msg);
    send_event(sock, index, EV_END, rc, WEFT_ROUTE_PROCS);
    return rc;
}
WEFT_PROCPOOL_FN("weft.run.job", job_proc)

/* ---- the event-loop form ----------------------------------------------------------------- */

struct aop_state {
    struct job_exec *x;
    weft_loop_timer_t *timer;
    weft_http_t *http;
    uint64_t t0;
    bool done;
};

static void aop_timer(weft_loop_timer_t *t, void *arg)
{
    weft_sched_aop_t *op = arg;
    struct aop_state *st = op->data;
    struct job_exec *x = st->x;
    weft_loop_timer_destroy(t);
    free(st);
    run_events_push(x->events, x->index, EV_END, 0, WEFT_ROUTE_LOOP);
    weft_sched_aop_done(op, 0, NULL, 0, NULL);
}

static void aop_http(weft_http_t *h, weft_http_resp_t *resp, void *arg)
{
    weft_sched_aop_t *op = arg;
    struct aop_state *st = op->data;
    (void)h;
    int rc = resp->error;
    double ms = (double)(weft_now_ns() - st->t0) / 1e6;
    const char *url = st->x->job->url, *log_path = st->x->log_path;
    if (rc == 0 && resp->status >= 400) rc = WEFT_EHTTP;
    run_events_push(st->x->events, st->x->index, EV_END, rc, WEFT_ROUTE_LOOP);
    free(st);
    if (rc == 0) {
        log_line(log_path, "GET %s -> HTTP %ld, %" PRIu64 " bytes in %.1f ms (event loop)", url,
                 resp->status, resp->bytes, ms);
        weft_sched_aop_done(op, 0, NULL, 0, NULL);
    } else if (rc == WEFT_EHTTP) {
        log_line(log_path, "== weft run: GET %s: HTTP %ld", url, resp->status);
        weft_sched_aop_fail(op, rc, "GET %s: HTTP %ld", url, resp->status);
    } else {
        const char *m = resp->errmsg[0] ? resp->errmsg : weft_strerror(rc);
        log_line(log_path, "== weft run: GET %s: %s", url, m);
        weft_sched_aop_fail(op, rc, "GET %s: %s", url, m);
    }
}

static void aop_cancel(weft_sched_aop_t *op)
{
    struct aop_state *st = op->data;
    if (st->timer) { /* sleep: stop the timer and finish now */
        weft_loop_timer_destroy(st->timer);
        run_events_push(st->x->events, st->x->index, EV_END, -ECANCELED, WEFT_ROUTE_LOOP);
        free(st);
        weft_sched_aop_done(op, -ECANCELED, NULL, 0, NULL);
    } else if (st->http) {
        weft_http_cancel(st->http); /* its callback finishes the operation */
    }
}

static int job_async(weft_sched_aop_t *op)
{
    struct job_exec *x = op->arg;
    const struct job *j = x->job;
    struct aop_state *st = calloc(1, sizeof *st);
    if (!st) return -ENOMEM;
    st->x = x;
    st->t0 = weft_now_ns();
    op->data = st;
    op->cancel = aop_cancel;
    run_events_push(x->events, x->index, EV_START, 0, WEFT_ROUTE_LOOP);
    int rc;
    if (j->kind == JOB_SLEEP) {
        log_header(x->log_path, "sleep (event loop)");
        rc = weft_loop_timer_create(op->loop, aop_timer, op, &st->timer);
        if (rc == 0) weft_loop_timer_start(st->timer, (j->duration_ns + 999999) / 1000000, 0);
    } else {
        log_header(x->log_path, "http-get (event loop)");
        weft_http_opts_t o = {.url = j->url,
                              .timeout_ms =
                                  j->timeout_ns ? (long)(j->timeout_ns / 1000000u) + 1 : 30000};
        rc = weft_http_start(op->loop, &o, aop_http, op, &st->http);
    }
    if (rc < 0) {
        free(st);
        op->data = NULL;
        op->cancel = NULL;
        run_events_push(x->events, x->index, EV_END, rc, WEFT_ROUTE_LOOP);
    }
    return rc;
}

/* ---- the task ---------------------------------------------------------------------------- */

/* The failures a job with no retry-on list is retried on. */
static const int every_failure[] = {-ETIMEDOUT, WEFT_ECRASHED, WEFT_ESIGNAL, WEFT_EEXIT, WEFT_EHTTP,
                                    -EIO,       -ECONNREFUSED, -ECONNRESET,  WEFT_EDNS,  WEFT_ESLOW,
                                    -EAGAIN,    -EPIPE,        -ENOMEM};

bool job_will_retry(const struct job *j, int attempt, int rc)
{
    if (rc >= 0 || attempt > j->retries) return false;
    const int *on = j->n_retry_on ? j->retry_on : every_failure;
    size_t n = j->n_retry_on ? j->n_retry_on : sizeof every_failure / sizeof every_failure[0];
    for (size_t i = 0; i < n; i++)
        if (on[i] == rc) return true;
    return false;
}

int job_exec_task(struct job_exec *x, weft_sched_task_t *t)
{
    static const char *const kinds[] = {"shell", "sleep", "cpu-burn", "http-get"};
    static _Thread_local weft_sched_retry_t retry; /* copied by weft_sched_graph_add */
    const struct job *j = x->job;
    memset(t, 0, sizeof *t);
    t->type = j->type;
    t->priority = j->priority;
    t->cls = j->cls ? j->cls : kinds[j->kind];
    t->fn = job_thread;
    t->arg = x;
    if (j->kind == JOB_SHELL || j->kind == JOB_CPU_BURN) {
        if (!x->proc_arg && serialize(x, &x->proc_arg, &x->proc_len) < 0) return -ENOMEM;
        t->proc_fn = "weft.run.job";
        t->proc_arg = x->proc_arg;
        t->proc_len = x->proc_len;
    }
    if (j->kind == JOB_SLEEP || j->kind == JOB_HTTP_GET) {
        t->async_fn = job_async;
        t->async_arg = x;
    }
    if (j->retries > 0) {
        retry = (weft_sched_retry_t){.attempts = j->retries + 1, .backoff_ns = j->backoff_ns};
        if (j->n_retry_on) {
            retry.on = j->retry_on;
            retry.n_on = j->n_retry_on;
        } else {
            retry.on = every_failure;
            retry.n_on = sizeof every_failure / sizeof every_failure[0];
        }
        t->retry = &retry;
    }
    /* Shell commands time out in their runner, which kills the whole process group; the
     * scheduler's timeout is only a backstop in case the runner itself hangs. */
    if (j->timeout_ns) t->timeout_ns = j->timeout_ns + (j->kind == JOB_SHELL ? BACKSTOP_NS : 0);
    return 0;
}

void job_exec_free(struct job_exec *x)
{
    free(x->log_path);
    free(x->cancel_path);
    free(x->proc_arg); /* weft_buf_steal: ours to free with the default allocator */
}
