/* Tests for the process pool (weft/procpool.h) and its shared-memory ring (src/exec/shmring.h).
 *
 * The functions below run in worker processes: fresh executions of this test binary that enter
 * worker mode from a library constructor, which is why they are registered with
 * WEFT_PROCPOOL_FN and never from main or a test. Functions that crash on purpose restore the
 * default signal action first, so that ASan and TSan (which catch SIGSEGV to print a report)
 * let the worker die of the signal itself, as a plain build does.
 */
#include "harness.h"

#include "core/cpu.h"
#include "exec/shmring.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <weft/err.h>
#include <weft/hash.h>
#include <weft/procpool.h>
#include <weft/sys.h>

#define SEC 1000000000LL

/* ---- functions run by the workers ---------------------------------------------------------- */

static int fn_echo(const void *arg, size_t len, weft_buf_t *out)
{
    return weft_buf_append(out, arg, len);
}

static int fn_noop(const void *arg, size_t len, weft_buf_t *out)
{
    return 0;
}

static int fn_pid(const void *arg, size_t len, weft_buf_t *out)
{
    return weft_buf_printf(out, "%d", (int)getpid());
}

static int fn_in_worker(const void *arg, size_t len, weft_buf_t *out)
{
    return weft_buf_printf(out, "%d %d %s", weft_procpool_in_worker(), (int)getpid(),
                           getenv("WEFT_PROCPOOL_WORKER") ? "env-set" : "env-clear");
}

static int fn_fail(const void *arg, size_t len, weft_buf_t *out)
{
    weft_buf_printf(out, "bad input: %.*s", (int)len, (const char *)arg);
    return -EINVAL;
}

static int fn_segv(const void *arg, size_t len, weft_buf_t *out)
{
    signal(SIGSEGV, SIG_DFL);
    raise(SIGSEGV);
    return 0;
}

static int fn_abort(const void *arg, size_t len, weft_buf_t *out)
{
    signal(SIGABRT, SIG_DFL);
    abort();
}

static int fn_exit3(const void *arg, size_t len, weft_buf_t *out)
{
    _exit(3);
}

static int fn_hang(const void *arg, size_t len, weft_buf_t *out)
{
    for (;;) pause();
    return 0;
}

static int parse_int(const void *arg, size_t len)
{
    char buf[32];
    if (len >= sizeof buf) len = sizeof buf - 1;
    memcpy(buf, arg, len);
    buf[len] = '\0';
    return atoi(buf);
}

/* Sleeps `arg` milliseconds, then answers with the pid. */
static int fn_sleep(const void *arg, size_t len, weft_buf_t *out)
{
    int ms = parse_int(arg, len);
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
    return weft_buf_printf(out, "%d", (int)getpid());
}

/* Waits (at most 30 s) until the file named by `arg` exists. */
static int fn_wait_file(const void *arg, size_t len, weft_buf_t *out)
{
    char path[512];
    snprintf(path, sizeof path, "%.*s", (int)len, (const char *)arg);
    for (int i = 0; i < 30000 && access(path, F_OK) != 0; i++) usleep(1000);
    return 0;
}

/* arg = "PATH\nTEXT": appends TEXT and a newline to PATH. */
static int fn_append(const void *arg, size_t len, weft_buf_t *out)
{
    const char *s = arg, *nl = memchr(s, '\n', len);
    if (!nl) return -EINVAL;
    char path[512];
    snprintf(path, sizeof path, "%.*s", (int)(nl - s), s);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return -errno;
    size_t n = len - (size_t)(nl - s) - 1;
    char line[128];
    int k = snprintf(line, sizeof line, "%.*s\n", (int)n, nl + 1);
    ssize_t w = write(fd, line, (size_t)k);
    close(fd);
    return w == k ? 0 : -EIO;
}

static uint64_t checksum(const unsigned char *p, size_t n)
{
    return weft_hash(p, n);
}

static int fn_sum(const void *arg, size_t len, weft_buf_t *out)
{
    return weft_buf_printf(out, "%zu %016llx", len, (unsigned long long)checksum(arg, len));
}

static unsigned char pattern(size_t i)
{
    return (unsigned char)((i * 2654435761u) >> 13);
}

/* Produces `arg` bytes of pattern(). */
static int fn_big(const void *arg, size_t len, weft_buf_t *out)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%.*s", (int)len, (const char *)arg);
    size_t n = (size_t)strtoull(buf, NULL, 10);
    int rc = weft_buf_reserve(out, n);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++) out->data[i] = (char)pattern(i);
    out->len = n;
    return 0;
}

/* Lists the worker's open descriptors: "fd:cloexec ..." */
static int fn_fds(const void *arg, size_t len, weft_buf_t *out)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -errno;
    int dfd = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        int fd = atoi(e->d_name);
        if (fd == dfd) continue;
        int fl = fcntl(fd, F_GETFD);
        weft_buf_printf(out, "%d:%d ", fd, fl >= 0 && (fl & FD_CLOEXEC) ? 1 : 0);
    }
    closedir(d);
    return 0;
}

/* Writes `text` to the file `path` atomically (a temporary file, then rename). */
static int write_file(const char *path, const char *text)
{
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -errno;
    size_t n = strlen(text);
    ssize_t w = write(fd, text, n);
    close(fd);
    if (w != (ssize_t)n) return -EIO;
    return rename(tmp, path) < 0 ? -errno : 0;
}

/* arg = a directory. Forks a grandchild that sleeps forever, writes its pid to DIR/grandchild,
 * writes the worker's pid to DIR/started, then hangs. */
static int fn_fork_hang(const void *arg, size_t len, weft_buf_t *out)
{
    char path[512], text[32];
    pid_t gc = fork();
    if (gc < 0) return -errno;
    if (gc == 0)
        for (;;) pause();
    snprintf(path, sizeof path, "%.*s/grandchild", (int)len, (const char *)arg);
    snprintf(text, sizeof text, "%d", (int)gc);
    if (write_file(path, text) < 0) return -EIO;
    snprintf(path, sizeof path, "%.*s/started", (int)len, (const char *)arg);
    snprintf(text, sizeof text, "%d", (int)getpid());
    if (write_file(path, text) < 0) return -EIO;
    for (;;) pause();
    return 0;
}

WEFT_PROCPOOL_FN("echo", fn_echo)
WEFT_PROCPOOL_FN("noop", fn_noop)
WEFT_PROCPOOL_FN("pid", fn_pid)
WEFT_PROCPOOL_FN("in_worker", fn_in_worker)
WEFT_PROCPOOL_FN("fail", fn_fail)
WEFT_PROCPOOL_FN("segv", fn_segv)
WEFT_PROCPOOL_FN("abort", fn_abort)
WEFT_PROCPOOL_FN("exit3", fn_exit3)
WEFT_PROCPOOL_FN("hang", fn_hang)
WEFT_PROCPOOL_FN("sleep", fn_sleep)
WEFT_PROCPOOL_FN("wait_file", fn_wait_file)
WEFT_PROCPOOL_FN("append", fn_append)
WEFT_PROCPOOL_FN("sum", fn_sum)
WEFT_PROCPOOL_FN("big", fn_big)
WEFT_PROCPOOL_FN("fds", fn_fds)
WEFT_PROCPOOL_FN("fork_hang", fn_fork_hang)

/* ---- helpers ------------------------------------------------------------------------------- */

static weft_procpool_t *make_pool(int workers, int max_tasks)
{
    weft_procpool_opts_t o = {.workers = workers, .max_tasks_per_child = max_tasks};
    weft_procpool_t *pp = NULL;
    int rc = weft_procpool_create(&pp, &o);
    CHECK_MSG(rc == 0, "weft_procpool_create: %s", weft_strerror(rc));
    return pp;
}

static weft_future_t *sub(weft_procpool_t *pp, const char *fn, const char *arg, int64_t timeout)
{
    weft_future_t *f = NULL;
    int rc = weft_procpool_submit(pp, fn, arg, strlen(arg), (uint64_t)timeout, &f);
    CHECK_MSG(rc == 0, "submit %s: %s", fn, weft_strerror(rc));
    return f;
}

static void wait_done(weft_future_t *f)
{
    CHECK_EQ(weft_future_wait(f, 30 * SEC), 0);
}

/* Waits for f, checks it succeeded, returns its value (borrowed). */
static const char *ok_value(weft_future_t *f)
{
    wait_done(f);
    CHECK_MSG(weft_future_status(f) == 0, "status %s (%s)", weft_err_name(weft_future_status(f)),
              weft_future_message(f) ? weft_future_message(f) : "no message");
    const char *v = weft_future_value(f, NULL);
    return v ? v : "";
}

/* Waits for f and checks that it failed with `status` and a message containing `part`. */
static void check_failed(weft_future_t *f, int status, const char *part)
{
    wait_done(f);
    const char *m = weft_future_message(f);
    CHECK_MSG(weft_future_status(f) == status, "status %s, want %s (%s)",
              weft_err_name(weft_future_status(f)), weft_err_name(status), m ? m : "no message");
    if (part) CHECK_MSG(m && strstr(m, part), "message \"%s\" lacks \"%s\"", m ? m : "", part);
}

static void wait_workers(weft_procpool_t *pp, int n)
{
    weft_procpool_stats_t st;
    for (int i = 0; i < 3000; i++) {
        weft_procpool_stats(pp, &st);
        if (st.workers == n) return;
        usleep(10000);
    }
    CHECK_MSG(0, "pool has %d workers, want %d", st.workers, n);
}

/* Waits until `pid` no longer exists (reaped): kill() succeeds on a zombie. */
static bool gone(pid_t pid)
{
    for (int i = 0; i < 1000; i++) {
        if (kill(pid, 0) < 0 && errno == ESRCH) return true;
        usleep(10000);
    }
    return false;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

/* Counts mappings and descriptors of the pool's memfds in this process. */
static int count_memfds(void)
{
    int n = 0;
    char line[512];
    FILE *f = fopen("/proc/self/maps", "re");
    while (f && fgets(line, sizeof line, f)) n += strstr(line, "weft-procpool") != NULL;
    if (f) fclose(f);
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    while ((e = readdir(d))) {
        char p[300], t[300];
        snprintf(p, sizeof p, "/proc/self/fd/%s", e->d_name);
        ssize_t k = readlink(p, t, sizeof t - 1);
        if (k > 0) {
            t[k] = '\0';
            n += strstr(t, "weft-procpool") != NULL;
        }
    }
    closedir(d);
    return n;
}

/* ---- the ring on its own ------------------------------------------------------------------- */

TEST(shmring_wraps_records_contiguously_and_validates)
{
    int fd = memfd_create("shmring-test", MFD_CLOEXEC);
    CHECK(fd >= 0);
    size_t size = weft__shmring_data_size(4096);
    CHECK(ftruncate(fd, (off_t)(4096 + size)) == 0);
    weft_shmring_shared_t *sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(sh != MAP_FAILED);
    weft__shmring_format(sh, size);
    void *d1, *d2;
    CHECK_EQ(weft__shmring_map(fd, 4096, size, &d1), 0);
    CHECK_EQ(weft__shmring_map(fd, 4096, size, &d2), 0);
    weft_shmring_t prod, cons;
    CHECK_EQ(weft__shmring_attach(&prod, sh, d1, size, true), 0);
    CHECK_EQ(weft__shmring_attach(&cons, sh, d2, size, false), 0);
    CHECK_EQ(weft__shmring_attach(&cons, sh, d2, size * 2, false), -EPROTO);
    CHECK_EQ(weft__shmring_attach(&cons, sh, d2, size, false), 0);
    CHECK(weft__shmring_reserve(&prod, size) == NULL); /* larger than the ring */
    /* Records of every length, many times around the ring: each comes out whole. */
    unsigned seq = 0, got = 0;
    for (int round = 0; round < 2000; round++) {
        size_t len = (size_t)(round * 37) % 1500;
        unsigned char *p = weft__shmring_reserve(&prod, len);
        if (!p) { /* full: drain everything */
            weft__shmring_publish(&prod);
            void *q;
            size_t n;
            while (weft__shmring_peek(&cons, &q, &n) == 1) {
                CHECK(((uintptr_t)q & 15) == 0);
                for (size_t i = 0; i < n; i++) CHECK_EQ(((unsigned char *)q)[i], (got + i) & 255);
                got++;
                weft__shmring_next(&cons);
            }
            weft__shmring_release(&cons);
            p = weft__shmring_reserve(&prod, len);
            CHECK(p != NULL);
        }
        for (size_t i = 0; i < len; i++) p[i] = (unsigned char)((seq + i) & 255);
        seq++;
    }
    weft__shmring_publish(&prod);
    void *q;
    size_t n;
    while (weft__shmring_peek(&cons, &q, &n) == 1) {
        got++;
        weft__shmring_next(&cons);
    }
    CHECK_EQ(got, seq);
    /* A consumer that sleeps is announced to the producer exactly once. */
    uint32_t s;
    weft__shmring_release(&cons);
    CHECK(weft__shmring_consumer_prepare(&cons, &s));
    CHECK(weft__shmring_reserve(&prod, 8) != NULL);
    CHECK(weft__shmring_publish(&prod));
    CHECK(!weft__shmring_consumer_prepare(&cons, &s)); /* data is there: do not sleep */
    CHECK_EQ(weft__shmring_peek(&cons, &q, &n), 1);
    CHECK_EQ(n, 8);
    weft__shmring_next(&cons);
    weft__shmring_release(&cons);
    /* A corrupt head is refused, not followed. */
    atomic_store(&sh->head, atomic_load(&sh->tail) + 3 * size);
    CHECK_EQ(weft__shmring_peek(&cons, &q, &n), -EPROTO);
    weft__shmring_unmap(d1, size);
    weft__shmring_unmap(d2, size);
    munmap(sh, 4096);
    close(fd);
}

/* ---- the pool ------------------------------------------------------------------------------ */

/* The idle spin of the pool's workers and supervisor (core/cpu.h): spins that run out halve the
 * budget until the waiter sleeps at once (on an oversubscribed machine a spinner takes the CPU
 * the other side needs: a broker worker's no-op tasks cost twice the CPU); at that point one wait
 * in 64 probes with the full budget; spins that find work double it again. */
TEST(spin_budget_backs_off_and_probes)
{
    weft__spin_t s = {0};
    CHECK_EQ(weft__spin_budget(&s, 16000), 16000ull);
    unsigned long long want[] = {16000, 8000, 4000, 2000, 1000};
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(weft__spin_budget(&s, 16000), want[i]);
        weft__spin_result(&s, 0);
    }
    int spins = 0;
    for (int i = 0; i < 640; i++) {
        unsigned long long b = weft__spin_budget(&s, 16000);
        CHECK(b == 0 || b == 16000);
        if (b) {
            spins++;
            weft__spin_result(&s, 0);
        }
    }
    CHECK_EQ(spins, 10);
    /* A probe that finds work turns spinning back on; more hits give the full budget. */
    while (weft__spin_budget(&s, 16000) == 0) {
    }
    weft__spin_result(&s, 1);
    CHECK_EQ(weft__spin_budget(&s, 16000), 1000ull);
    for (int i = 0; i < 4; i++) weft__spin_result(&s, 1);
    CHECK_EQ(weft__spin_budget(&s, 16000), 16000ull);
    weft__spin_result(&s, 1);
    CHECK_EQ(weft__spin_budget(&s, 16000), 16000ull);
}

TEST(round_trip_of_values)
{
    weft_procpool_t *pp = make_pool(2, 0);
    enum { N = 300 };
    weft_future_t *fs[N];
    char arg[64];
    for (int i = 0; i < N; i++) {
        snprintf(arg, sizeof arg, "task %d", i);
        fs[i] = sub(pp, "echo", arg, 0);
    }
    for (int i = 0; i < N; i++) {
        snprintf(arg, sizeof arg, "task %d", i);
        size_t size = 0;
        CHECK_STR_EQ(ok_value(fs[i]), arg);
        weft_future_value(fs[i], &size);
        CHECK_EQ(size, strlen(arg));
        weft_future_release(fs[i]);
    }
    /* No bytes: no value. Binary bytes (with NULs) come back exactly. */
    weft_future_t *f = sub(pp, "noop", "", 0);
    ok_value(f);
    CHECK(weft_future_value(f, NULL) == NULL);
    weft_future_release(f);
    unsigned char bin[256];
    for (int i = 0; i < 256; i++) bin[i] = (unsigned char)i;
    CHECK_EQ(weft_procpool_submit(pp, "echo", bin, sizeof bin, 0, &f), 0);
    ok_value(f);
    size_t size;
    CHECK(memcmp(weft_future_value(f, &size), bin, sizeof bin) == 0);
    CHECK_EQ(size, sizeof bin);
    weft_future_release(f);
    /* The worker knows it is one; its environment no longer says so. */
    f = sub(pp, "in_worker", "", 0);
    int a = 0, b = 0;
    char env[16] = "";
    CHECK_EQ(sscanf(ok_value(f), "%d %d %15s", &a, &b, env), 3);
    CHECK(a > 0 && a == b && a != getpid());
    CHECK_STR_EQ(env, "env-clear");
    CHECK_EQ(weft_procpool_in_worker(), 0);
    weft_future_release(f);
    /* A function's failure: its status, and its bytes as the message. */
    f = sub(pp, "fail", "xyz", 0);
    check_failed(f, -EINVAL, "bad input: xyz");
    weft_future_release(f);

    weft_procpool_stats_t st;
    weft_procpool_stats(pp, &st);
    CHECK_EQ(st.workers, 2);
    CHECK_EQ(st.completed, N + 4);
    CHECK_EQ(st.failed, 1);
    CHECK_EQ(st.crashed, 0);
    weft_procpool_destroy(pp);
}

TEST(unknown_function_and_bad_arguments)
{
    weft_procpool_opts_t o = {.workers = 1, .max_message = 1 << 20};
    weft_procpool_t *pp;
    CHECK_EQ(weft_procpool_create(&pp, &o), 0);
    weft_future_t *f = (weft_future_t *)1;
    CHECK_EQ(weft_procpool_submit(pp, "no-such-function", "x", 1, 0, &f), WEFT_ENOFUNC);
    CHECK(f == NULL);
    static char big[(1 << 20) + 1];
    CHECK_EQ(weft_procpool_submit(pp, "echo", big, sizeof big, 0, &f), -EMSGSIZE);
    CHECK_EQ(weft_procpool_submit(pp, "echo", NULL, 5, 0, &f), -EINVAL);
    CHECK_EQ(weft_procpool_register("echo", fn_echo), -EEXIST);
    CHECK_EQ(weft_procpool_register("", fn_echo), -EINVAL);
    CHECK_EQ(weft_procpool_register("x", NULL), -EINVAL);
    CHECK_EQ(weft_procpool_resize(pp, 0), -EINVAL);
    CHECK_EQ(weft_procpool_resize(pp, 257), -EINVAL);
    weft_procpool_destroy(pp);

    weft_procpool_t *bad = (weft_procpool_t *)1;
    o.workers = -1;
    CHECK_EQ(weft_procpool_create(&bad, &o), -EINVAL);
    CHECK(bad == NULL);
    o.workers = 257;
    CHECK_EQ(weft_procpool_create(&bad, &o), -EINVAL);
    CHECK_EQ(weft_procpool_create(NULL, &o), -EINVAL);
}

TEST(large_argument_and_result_bigger_than_the_ring)
{
    weft_procpool_t *pp = make_pool(2, 0);
    /* Sizes around the overflow threshold and the ring size, several in flight at once. */
    size_t sizes[] = {0,        1,        65535, 65536, 65537,   200000, (1u << 20) - 100,
                      3u << 20, 5u << 20, 100,   70000, 3u << 20};
    enum { K = sizeof sizes / sizeof sizes[0] };
    unsigned char *args[K];
    weft_future_t *sums[K], *bigs[K];
    for (int i = 0; i < K; i++) {
        args[i] = malloc(sizes[i] + 1);
        for (size_t j = 0; j < sizes[i]; j++) args[i][j] = (unsigned char)(rand() & 255);
        CHECK_EQ(weft_procpool_submit(pp, "sum", args[i], sizes[i], 0, &sums[i]), 0);
        char n[32];
        snprintf(n, sizeof n, "%zu", sizes[i]);
        bigs[i] = sub(pp, "big", n, 0);
    }
    for (int i = 0; i < K; i++) {
        char want[64];
        snprintf(want, sizeof want, "%zu %016llx", sizes[i],
                 (unsigned long long)checksum(args[i], sizes[i]));
        CHECK_STR_EQ(ok_value(sums[i]), want);
        ok_value(bigs[i]);
        size_t size;
        const unsigned char *v = weft_future_value(bigs[i], &size);
        CHECK_EQ(size, sizes[i]);
        for (size_t j = 0; j < size; j++)
            if (v[j] != pattern(j)) CHECK_MSG(0, "result %d differs at byte %zu", i, j);
        weft_future_release(sums[i]);
        weft_future_release(bigs[i]);
        free(args[i]);
    }
    weft_procpool_destroy(pp);
}

TEST(oversized_result_fails_with_emsgsize_and_says_why)
{
    /* Big results (overflow memfd) and small ones (in the ring), each just over the limit. */
    size_t maxes[] = {1u << 20, 1000};
    for (int k = 0; k < 2; k++) {
        weft_procpool_opts_t o = {.workers = 1, .max_message = maxes[k]};
        weft_procpool_t *pp;
        CHECK_EQ(weft_procpool_create(&pp, &o), 0);
        char arg[32], want[128];
        snprintf(arg, sizeof arg, "%zu", maxes[k] + 1);
        weft_future_t *f = sub(pp, "big", arg, 0);
        snprintf(want, sizeof want, "result of %zu bytes exceeds max_message %zu", maxes[k] + 1,
                 maxes[k]);
        check_failed(f, -EMSGSIZE, want);
        CHECK_STR_EQ(weft_future_message(f), want);
        CHECK(weft_future_value(f, NULL) == NULL);
        weft_future_release(f);
        snprintf(arg, sizeof arg, "%zu", 3 * maxes[k]);
        f = sub(pp, "big", arg, 0);
        snprintf(want, sizeof want, "result of %zu bytes exceeds max_message %zu", 3 * maxes[k],
                 maxes[k]);
        check_failed(f, -EMSGSIZE, want);
        weft_future_release(f);
        /* Exactly max_message bytes is fine, and the worker was not replaced for it. */
        snprintf(arg, sizeof arg, "%zu", maxes[k]);
        f = sub(pp, "big", arg, 0);
        size_t size = 0;
        ok_value(f);
        weft_future_value(f, &size);
        CHECK_EQ(size, maxes[k]);
        weft_future_release(f);
        weft_procpool_stats_t st;
        weft_procpool_stats(pp, &st);
        CHECK_EQ(st.crashed, 0);
        CHECK_EQ(st.respawned, 0);
        weft_procpool_destroy(pp);
    }
}

TEST(crash_fails_only_its_task_and_the_pool_recovers)
{
    weft_procpool_t *pp = make_pool(2, 0);
    /* Warm up so that tasks are pipelined: the crashing worker has others queued behind. */
    for (int i = 0; i < 300; i++) weft_future_release(sub(pp, "noop", "", 0));
    enum { N = 40 };
    const char *crashers[] = {"segv", "abort", "exit3"};
    const char *why[] = {"killed by signal 11 (Segmentation fault)", "killed by signal 6 (Aborted)",
                         "exited with status 3"};
    weft_future_t *fs[3][N], *crash[3];
    for (int c = 0; c < 3; c++) {
        for (int i = 0; i < N; i++) {
            char arg[32];
            snprintf(arg, sizeof arg, "%d-%d", c, i);
            fs[c][i] = sub(pp, "echo", arg, 0);
            if (i == N / 4) crash[c] = sub(pp, crashers[c], "", 0);
        }
    }
    for (int c = 0; c < 3; c++) {
        check_failed(crash[c], WEFT_ECRASHED, why[c]);
        CHECK(strstr(weft_future_message(crash[c]), "worker ") != NULL);
        weft_future_release(crash[c]);
        for (int i = 0; i < N; i++) {
            char arg[32];
            snprintf(arg, sizeof arg, "%d-%d", c, i);
            CHECK_STR_EQ(ok_value(fs[c][i]), arg);
            weft_future_release(fs[c][i]);
        }
    }
    wait_workers(pp, 2);
    weft_procpool_stats_t st;
    weft_procpool_stats(pp, &st);
    CHECK_EQ(st.crashed, 3);
    CHECK_EQ(st.failed, 3);
    CHECK(st.respawned >= 3);
    weft_future_t *f = sub(pp, "echo", "still working", 0);
    CHECK_STR_EQ(ok_value(f), "still working");
    weft_future_release(f);
    weft_procpool_destroy(pp);
}

TEST(timeout_kills_the_worker_and_fails_with_etimedout)
{
    weft_procpool_t *pp = make_pool(1, 0);
    weft_future_t *f = sub(pp, "pid", "", 0);
    pid_t victim = (pid_t)atoi(ok_value(f));
    weft_future_release(f);
    CHECK(victim > 0);
    weft_future_t *hang = sub(pp, "hang", "", 200 * 1000000LL);
    /* Tasks queued behind the hung one are not failed: they run on the replacement. */
    weft_future_t *after[5];
    for (int i = 0; i < 5; i++) after[i] = sub(pp, "pid", "", 0);
    check_failed(hang, -ETIMEDOUT, "timed out");
    CHECK_MSG(gone(victim), "worker %d was not reaped", (int)victim);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d", (int)victim);
    CHECK(access(path, F_OK) != 0);
    for (int i = 0; i < 5; i++) {
        CHECK(atoi(ok_value(after[i])) != victim);
        weft_future_release(after[i]);
    }
    weft_procpool_stats_t st;
    weft_procpool_stats(pp, &st);
    CHECK_EQ(st.timed_out, 1);
    CHECK_EQ(st.crashed, 0);
    CHECK(st.respawned >= 1);
    /* A task that finishes in time is not affected by its timeout. */
    f = sub(pp, "sleep", "10", 10 * SEC);
    ok_value(f);
    weft_future_release(f);
    weft_future_release(hang);
    weft_procpool_destroy(pp);
}

/* Reads a pid written by fn_fork_hang to DIR/name; 0 if the file is not there. */
static pid_t read_pid(const char *dir, const char *name)
{
    char path[600], text[32] = "";
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *in = fopen(path, "re");
    if (!in) return 0;
    if (!fgets(text, sizeof text, in)) text[0] = '\0';
    fclose(in);
    return (pid_t)atoi(text);
}

/* Waits (bounded) until fn_fork_hang has written DIR/started; returns the worker's pid. */
static pid_t wait_started(const char *dir)
{
    for (int i = 0; i < 3000; i++) {
        pid_t p = read_pid(dir, "started");
        if (p > 0) return p;
        usleep(10000);
    }
    CHECK_MSG(0, "the task never started");
    return 0;
}

/* Checks that the grandchild fn_fork_hang forked was killed with the worker. Kills it if not,
 * so that a failure leaves nothing behind. */
static void check_grandchild_gone(pid_t gc)
{
    CHECK(gc > 0);
    bool ok = gone(gc);
    if (!ok) kill(gc, SIGKILL);
    CHECK_MSG(ok, "grandchild %d survived its worker", (int)gc);
}

TEST(timeout_kills_what_the_worker_forked)
{
    weft_procpool_t *pp = make_pool(1, 0);
    /* The task must reach its fork before the deadline; on a loaded machine it may not, so the
     * timeout grows until it does (the grandchild's pid is written before `started`). */
    for (int64_t timeout = 500 * 1000000LL;; timeout *= 2) {
        const char *dir = weft_test_tmpdir();
        char path[600];
        snprintf(path, sizeof path, "%s/started", dir);
        unlink(path);
        weft_future_t *f = sub(pp, "fork_hang", dir, timeout);
        check_failed(f, -ETIMEDOUT, "timed out");
        weft_future_release(f);
        pid_t worker = read_pid(dir, "started");
        if (worker <= 0) {
            CHECK(timeout < 30 * SEC);
            continue;
        }
        CHECK_MSG(gone(worker), "worker %d was not reaped", (int)worker);
        check_grandchild_gone(read_pid(dir, "grandchild"));
        break;
    }
    weft_future_t *f = sub(pp, "echo", "after", 0);
    CHECK_STR_EQ(ok_value(f), "after");
    weft_future_release(f);
    weft_procpool_destroy(pp);
}

TEST(forced_cancel_kills_a_running_task_and_the_pool_goes_on)
{
    weft_procpool_t *pp = make_pool(1, 0);
    /* Short tasks first: the pool then hands the worker many tasks at a time. */
    for (int i = 0; i < 300; i++) weft_future_release(sub(pp, "noop", "", 0));
    weft_future_t *f = sub(pp, "pid", "", 0);
    pid_t victim = (pid_t)atoi(ok_value(f));
    weft_future_release(f);
    const char *dir = weft_test_tmpdir();
    char log[300], arg[400];
    snprintf(log, sizeof log, "%s/log", dir);
    weft_future_t *hang = sub(pp, "fork_hang", dir, 0); /* no timeout: only a cancel ends it */
    snprintf(arg, sizeof arg, "%s\na", log);
    weft_future_t *a = sub(pp, "append", arg, 0);
    snprintf(arg, sizeof arg, "%s\nb", log);
    weft_future_t *b = sub(pp, "append", arg, 0);
    weft_future_t *c = sub(pp, "pid", "", 0);
    /* `hang` and `a` at least are in the worker's ring (b and c too, or in the pool's queue). */
    weft_procpool_stats_t st;
    weft_procpool_stats(pp, &st);
    CHECK(st.running >= 2);
    CHECK_EQ(wait_started(dir), victim);

    /* Handed to the worker but not started: cancelled without force, and it never runs. */
    CHECK_EQ(weft_procpool_cancel(pp, a, false), 0);
    CHECK(weft_future_done(a));
    CHECK_EQ(weft_future_status(a), -ECANCELED);
    CHECK_EQ(weft_procpool_cancel(pp, a, true), -EALREADY);
    /* Running: refused without force, killed with it; DONE when the call returns. */
    CHECK_EQ(weft_procpool_cancel(pp, hang, false), -EBUSY);
    CHECK(!weft_future_done(hang));
    CHECK_EQ(weft_procpool_cancel(pp, hang, true), 0);
    CHECK(weft_future_done(hang));
    check_failed(hang, -ECANCELED, "cancelled");
    CHECK_EQ(weft_procpool_cancel(pp, hang, true), -EALREADY);
    CHECK_EQ(weft_procpool_cancel(NULL, hang, true), -EINVAL);
    CHECK_EQ(weft_procpool_cancel(pp, NULL, true), -EINVAL);
    /* The worker and what it forked are gone; the tasks it held run on its replacement. */
    CHECK_MSG(gone(victim), "worker %d was not reaped", (int)victim);
    check_grandchild_gone(read_pid(dir, "grandchild"));
    ok_value(b);
    CHECK(atoi(ok_value(c)) != victim);
    f = sub(pp, "echo", "next", 0);
    CHECK_STR_EQ(ok_value(f), "next");
    weft_future_release(f);
    char text[64] = "";
    FILE *in = fopen(log, "re");
    CHECK(in != NULL);
    size_t n = fread(text, 1, sizeof text - 1, in);
    fclose(in);
    text[n] = '\0';
    CHECK_STR_EQ(text, "b\n");
    /* The replacement is started by the supervisor after it reaps the victim, which need not
     * have happened yet when the other tasks are done (they may run on the other worker). */
    for (int i = 0; i < 1000; i++) {
        weft_procpool_stats(pp, &st);
        if (st.respawned >= 1) break;
        usleep(10000);
    }
    CHECK_EQ(st.crashed, 0);
    CHECK_EQ(st.failed, 2);
    CHECK(st.respawned >= 1);
    weft_future_release(hang);
    weft_future_release(a);
    weft_future_release(b);
    weft_future_release(c);
    weft_procpool_destroy(pp);
}

TEST(max_tasks_per_child_replaces_workers)
{
    weft_procpool_t *pp = make_pool(2, 3);
    enum { N = 30 };
    weft_future_t *fs[N];
    for (int i = 0; i < N; i++) fs[i] = sub(pp, "pid", "", 0);
    int pids[N], distinct = 0;
    for (int i = 0; i < N; i++) {
        pids[i] = atoi(ok_value(fs[i]));
        weft_future_release(fs[i]);
        int same = 0;
        for (int j = 0; j < i; j++) same += pids[j] == pids[i];
        CHECK_MSG(same < 3, "pid %d ran more than 3 tasks", pids[i]);
        distinct += same == 0;
    }
    CHECK(distinct >= N / 3);
    wait_workers(pp, 2);
    weft_procpool_stats_t st;
    weft_procpool_stats(pp, &st);
    CHECK_EQ(st.crashed, 0);
    CHECK_EQ(st.failed, 0);
    CHECK(st.respawned >= (uint64_t)(N / 3 - 2));
    weft_procpool_destroy(pp);
}

TEST(workers_die_with_their_parent)
{
    /* The test process adopts orphans, so it can reap the workers once their parent is gone. */
    CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
    int p[2];
    CHECK(pipe(p) == 0);
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        close(p[0]);
        weft_procpool_t *pp = make_pool(2, 0);
        /* Two overlapping tasks: one on each worker. */
        weft_future_t *a = sub(pp, "sleep", "300", 0), *b = sub(pp, "sleep", "300", 0);
        char buf[64];
        int n = snprintf(buf, sizeof buf, "%s %s\n", ok_value(a), ok_value(b));
        if (write(p[1], buf, (size_t)n) != n) _exit(1);
        for (;;) pause();
    }
    close(p[1]);
    char buf[64] = "";
    FILE *in = fdopen(p[0], "r");
    CHECK(fgets(buf, sizeof buf, in) != NULL);
    fclose(in);
    int w1 = 0, w2 = 0;
    CHECK_EQ(sscanf(buf, "%d %d", &w1, &w2), 2);
    CHECK(w1 > 0 && w2 > 0 && w1 != w2);
    kill(child, SIGKILL);
    int st;
    CHECK_EQ(waitpid(child, &st, 0), child);
    /* The orphaned workers are now our children; they must have been killed. */
    int workers[2] = {w1, w2};
    for (int i = 0; i < 2; i++) {
        int ws = 0;
        pid_t r = 0;
        for (int t = 0; t < 1000 && r == 0; t++) {
            r = waitpid(workers[i], &ws, WNOHANG);
            if (r == 0) usleep(10000);
        }
        CHECK_MSG(r == workers[i], "worker %d outlived its parent", workers[i]);
        CHECK(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
    }
}

static void destroy_cb(weft_future_t *f, void *arg)
{
    weft_procpool_destroy(arg);
}

TEST(destroy_from_a_completion_callback_aborts_with_a_message)
{
    int p[2];
    CHECK(pipe(p) == 0);
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        dup2(p[1], 2);
        close(p[0]);
        signal(SIGABRT, SIG_DFL);
        weft_procpool_t *pp = make_pool(1, 0);
        weft_future_t *f = sub(pp, "sleep", "20", 0);
        weft_future_on_complete(f, destroy_cb, pp);
        weft_future_wait(f, 30 * SEC);
        sleep(30); /* the supervisor aborts the process */
        _exit(0);
    }
    close(p[1]);
    char text[4096] = "";
    size_t n = 0;
    ssize_t k;
    while (n < sizeof text - 1 && (k = read(p[0], text + n, sizeof text - 1 - n)) > 0)
        n += (size_t)k;
    close(p[0]);
    int st;
    CHECK_EQ(waitpid(child, &st, 0), child);
    CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "status %#x: %s", st, text);
    CHECK_MSG(strstr(text, "weft_procpool_destroy called from the pool's own thread"), "stderr: %s",
              text);
}

TEST(cancel_skips_queued_tasks)
{
    weft_procpool_t *pp = make_pool(1, 0);
    char go[300], log[300], arg[400];
    snprintf(go, sizeof go, "%s/go", weft_test_tmpdir());
    snprintf(log, sizeof log, "%s/log", weft_test_tmpdir());
    weft_future_t *blocker = sub(pp, "wait_file", go, 0);
    enum { N = 10 };
    weft_future_t *fs[N];
    for (int i = 0; i < N; i++) {
        snprintf(arg, sizeof arg, "%s\n%d", log, i);
        fs[i] = sub(pp, "append", arg, 0);
    }
    /* Long tasks are handed to a worker one or two at a time; the rest wait in the queue. */
    for (int i = 5; i < N; i++)
        CHECK_EQ(i % 2 ? weft_future_cancel(fs[i]) : weft_procpool_cancel(pp, fs[i], false), 0);
    weft_procpool_stats_t st;
    weft_procpool_stats(pp, &st);
    CHECK(st.queued >= 1);
    CHECK(st.running >= 1 && st.running <= 2);
    int fd = open(go, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    CHECK(fd >= 0);
    close(fd);
    ok_value(blocker);
    weft_future_release(blocker);
    for (int i = 0; i < N; i++) {
        if (i < 5)
            ok_value(fs[i]);
        else
            check_failed(fs[i], -ECANCELED, NULL);
        weft_future_release(fs[i]);
    }
    /* Drain: a task submitted now runs after all of them. */
    weft_future_t *f = sub(pp, "noop", "", 0);
    ok_value(f);
    weft_future_release(f);
    char text[256] = "";
    FILE *in = fopen(log, "re");
    CHECK(in != NULL);
    size_t n = fread(text, 1, sizeof text - 1, in);
    fclose(in);
    text[n] = '\0';
    CHECK_STR_EQ(text, "0\n1\n2\n3\n4\n");
    weft_procpool_destroy(pp);
}

TEST(shutdown_cancel_cancels_the_queue)
{
    weft_procpool_t *pp = make_pool(1, 0);
    char go[300];
    snprintf(go, sizeof go, "%s/go", weft_test_tmpdir());
    weft_future_t *blocker = sub(pp, "wait_file", go, 0);
    enum { N = 20 };
    weft_future_t *fs[N];
    for (int i = 0; i < N; i++) fs[i] = sub(pp, "pid", "", 0);
    CHECK_EQ(weft_procpool_shutdown(pp, WEFT_SHUTDOWN_CANCEL), 0);
    CHECK_EQ(weft_procpool_shutdown(pp, WEFT_SHUTDOWN_CANCEL), -EALREADY);
    weft_future_t *late = (weft_future_t *)1;
    CHECK_EQ(weft_procpool_submit(pp, "pid", "", 0, 0, &late), -ESHUTDOWN);
    CHECK(late == NULL);
    CHECK_EQ(weft_procpool_resize(pp, 2), -ESHUTDOWN);
    int fd = open(go, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    CHECK(fd >= 0);
    close(fd);
    ok_value(blocker);
    weft_future_release(blocker);
    int cancelled = 0, ran = 0;
    for (int i = 0; i < N; i++) {
        wait_done(fs[i]);
        int s = weft_future_status(fs[i]);
        CHECK(s == 0 || s == -ECANCELED);
        cancelled += s == -ECANCELED;
        ran += s == 0;
        weft_future_release(fs[i]);
    }
    /* What was handed to the worker ran; everything still queued was cancelled. */
    CHECK(ran <= 2);
    CHECK_EQ(cancelled + ran, N);
    weft_procpool_destroy(pp);
}

TEST(destroy_waits_for_tasks_in_flight)
{
    weft_procpool_t *pp = make_pool(2, 0);
    enum { N = 30 };
    weft_future_t *fs[N];
    for (int i = 0; i < N; i++) fs[i] = sub(pp, "sleep", i % 3 ? "1" : "20", 0);
    weft_procpool_destroy(pp);
    for (int i = 0; i < N; i++) {
        CHECK(weft_future_done(fs[i]));
        CHECK(atoi(ok_value(fs[i])) > 0);
        weft_future_release(fs[i]);
    }
}

static atomic_bool stop_noise;

static void *noise(void *arg)
{
    pthread_mutex_t *mu = arg;
    while (!atomic_load(&stop_noise)) {
        pthread_mutex_lock(mu);
        void *p = malloc(100 + (size_t)(rand() % 1000));
        pthread_mutex_unlock(mu);
        free(p);
    }
    return NULL;
}

TEST(create_from_a_process_running_threads)
{
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_t th[4];
    atomic_store(&stop_noise, false);
    for (int i = 0; i < 4; i++) CHECK_EQ(pthread_create(&th[i], NULL, noise, &mu), 0);
    /* Threads hold malloc's and our own locks at random moments: a fork of this process could
     * inherit them locked. Spawned workers start clean. */
    weft_procpool_t *pp = make_pool(2, 0);
    enum { N = 200 };
    weft_future_t *fs[N];
    for (int i = 0; i < N; i++) fs[i] = sub(pp, "echo", "hello", 0);
    for (int i = 0; i < N; i++) {
        CHECK_STR_EQ(ok_value(fs[i]), "hello");
        weft_future_release(fs[i]);
    }
    weft_procpool_destroy(pp);
    atomic_store(&stop_noise, true);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
}

TEST(workers_inherit_only_their_channel)
{
    int leak = dup(2); /* no close-on-exec: a careless spawn would pass it on */
    CHECK(leak >= 0);
    weft_procpool_t *pp = make_pool(1, 0);
    weft_future_t *f = sub(pp, "fds", "", 0);
    const char *v = ok_value(f);
    /* 0, 1, 2 and the pool's 3..6 (close-on-exec inside the worker), nothing else. */
    CHECK_STR_EQ(v, "0:0 1:0 2:0 3:1 4:1 5:1 6:1 ");
    weft_future_release(f);
    weft_procpool_destroy(pp);
    close(leak);
}

TEST(resize_changes_the_number_of_workers)
{
    weft_procpool_t *pp = make_pool(1, 0);
    CHECK_EQ(weft_procpool_resize(pp, 3), 0);
    wait_workers(pp, 3);
    weft_future_t *fs[6];
    for (int i = 0; i < 6; i++) fs[i] = sub(pp, "sleep", "50", 0);
    CHECK_EQ(weft_procpool_resize(pp, 1), 0);
    for (int i = 0; i < 6; i++) {
        ok_value(fs[i]);
        weft_future_release(fs[i]);
    }
    wait_workers(pp, 1);
    weft_future_t *f = sub(pp, "echo", "one", 0);
    CHECK_STR_EQ(ok_value(f), "one");
    weft_future_release(f);
    weft_procpool_stats_t st;
    weft_procpool_stats(pp, &st);
    CHECK_EQ(st.crashed, 0);
    weft_procpool_destroy(pp);
}

typedef struct {
    weft_procpool_t *pp;
    int id, n;
    int bad;
} submitter_t;

static void *submit_many(void *arg)
{
    submitter_t *s = arg;
    weft_future_t **fs = malloc(sizeof *fs * (size_t)s->n);
    for (int i = 0; i < s->n; i++) {
        char a[32];
        snprintf(a, sizeof a, "%d:%d", s->id, i);
        if (weft_procpool_submit(s->pp, "echo", a, strlen(a), 0, &fs[i]) != 0) {
            s->bad++;
            fs[i] = NULL;
        }
    }
    for (int i = 0; i < s->n; i++) {
        if (!fs[i]) continue;
        char a[32];
        snprintf(a, sizeof a, "%d:%d", s->id, i);
        const char *v;
        if (weft_future_wait(fs[i], 60 * SEC) != 0 || weft_future_status(fs[i]) != 0 ||
            !(v = weft_future_value(fs[i], NULL)) || strcmp(v, a) != 0)
            s->bad++;
        weft_future_release(fs[i]);
    }
    free(fs);
    return NULL;
}

TEST(stress_many_submitters_every_task_once)
{
    weft_procpool_opts_t o = {.workers = 2, .queue_capacity = 256};
    weft_procpool_t *pp;
    CHECK_EQ(weft_procpool_create(&pp, &o), 0);
    enum { T = 4 };
    submitter_t s[T];
    pthread_t th[T];
    int n = (int)weft_test_scale(20000);
    for (int i = 0; i < T; i++) {
        s[i] = (submitter_t){pp, i, n, 0};
        CHECK_EQ(pthread_create(&th[i], NULL, submit_many, &s[i]), 0);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ(s[i].bad, 0);
    }
    weft_procpool_stats_t st;
    weft_procpool_stats(pp, &st);
    CHECK_EQ(st.completed, (uint64_t)T * (uint64_t)n);
    CHECK_EQ(st.failed, 0);
    CHECK_EQ(st.queued, 0);
    CHECK_EQ(st.running, 0);
    weft_procpool_destroy(pp);
}

TEST(nothing_leaks_after_crashes_timeouts_and_destroy)
{
    int fds0 = count_fds();
    CHECK_EQ(count_memfds(), 0);
    weft_procpool_t *pp = make_pool(2, 0);
    CHECK(count_memfds() > 0);
    weft_future_t *a = sub(pp, "segv", "", 0), *b = sub(pp, "hang", "", 100 * 1000000LL),
                  *c = sub(pp, "big", "300000", 0);
    check_failed(a, WEFT_ECRASHED, "signal 11");
    check_failed(b, -ETIMEDOUT, NULL);
    ok_value(c);
    weft_future_release(a);
    weft_future_release(b);
    weft_future_release(c);
    weft_procpool_destroy(pp);
    CHECK_EQ(count_memfds(), 0);
    CHECK_EQ(count_fds(), fds0);
    errno = 0;
    CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD);
}

TEST(allocation_failure_in_create_and_submit)
{
    int create_failures = 0, task_failures = 0;
    for (long nth = 1;; nth++) {
        weft_test_fail_alloc(nth);
        weft_procpool_t *pp = (weft_procpool_t *)&pp;
        weft_procpool_opts_t o = {.workers = 1};
        int rc = weft_procpool_create(&pp, &o);
        if (rc != 0) {
            CHECK_EQ(rc, -ENOMEM);
            CHECK(pp == NULL);
            create_failures++;
            continue;
        }
        weft_future_t *fs[3];
        for (int i = 0; i < 3; i++) {
            rc = weft_procpool_submit(pp, "echo", "abc", 3, 0, &fs[i]);
            if (rc != 0) {
                CHECK_EQ(rc, -ENOMEM);
                CHECK(fs[i] == NULL);
                task_failures++;
            }
        }
        for (int i = 0; i < 3; i++) {
            if (!fs[i]) continue;
            wait_done(fs[i]);
            int st = weft_future_status(fs[i]);
            CHECK_MSG(st == 0 || st == -ENOMEM, "status %s", weft_err_name(st));
            if (st == 0)
                CHECK_STR_EQ(weft_future_value(fs[i], NULL), "abc");
            else
                task_failures++;
        }
        weft_procpool_destroy(pp);
        for (int i = 0; i < 3; i++) weft_future_release(fs[i]);
        if (weft_test_alloc_failure_pending()) break; /* the Nth allocation never came: done */
        CHECK(nth < 5000);
    }
    weft_test_restore_alloc();
    CHECK(create_failures > 0);
    CHECK(task_failures > 0);
}
