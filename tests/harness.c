/* Test runner: see harness.h. */
#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <weft/sys.h>

#define MAX_TESTS 512

static struct {
    const char *name;
    weft_test_fn fn;
    int timeout_s;
} tests[MAX_TESTS];
static int ntests;
static bool leak_check = true;
static char tmpdir[256];

void weft_test_register(const char *name, weft_test_fn fn, int timeout_s)
{
    if (ntests == MAX_TESTS) abort();
    tests[ntests].name = name;
    tests[ntests].fn = fn;
    tests[ntests].timeout_s = timeout_s;
    ntests++;
}

void weft_test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "  %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    _exit(1);
}

long weft_test_scale(long n)
{
    const char *s = getenv("WEFT_TEST_SCALE");
    double k = s ? atof(s) : 1.0;
#if defined(WEFT_TSAN) || defined(WEFT_ASAN)
    k /= 4;
#endif
    long r = (long)((double)n * k);
    return r > 0 ? r : 1;
}

void weft_test_no_leak_check(void)
{
    leak_check = false;
}

const char *weft_test_tmpdir(void)
{
    return tmpdir;
}

static atomic_long alloc_countdown; /* the allocation that fails: 1 = the next one */

static bool should_fail(void)
{
    return atomic_fetch_sub(&alloc_countdown, 1) == 1;
}
static void *fail_malloc(size_t n)
{
    return should_fail() ? NULL : malloc(n);
}
static void *fail_calloc(size_t c, size_t n)
{
    return should_fail() ? NULL : calloc(c, n);
}
static void *fail_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : realloc(p, n);
}

void weft_test_fail_alloc(long nth)
{
    atomic_store(&alloc_countdown, nth);
    weft_replace_allocator(fail_malloc, fail_calloc, fail_realloc, free);
}

bool weft_test_alloc_failure_pending(void)
{
    return atomic_load(&alloc_countdown) > 0;
}

void weft_test_restore_alloc(void)
{
    atomic_store(&alloc_countdown, 0);
    weft_replace_allocator(malloc, calloc, realloc, free);
}

static int count_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Runs one test in this process and checks for leaks. Returns only on success. */
static void run_here(int i)
{
    int fds0 = count_dir("/proc/self/fd"), threads0 = count_dir("/proc/self/task");
    tests[i].fn();
    if (!leak_check) return;
    int fds1 = count_dir("/proc/self/fd"), threads1 = count_dir("/proc/self/task");
    if (fds1 != fds0) weft_test_fail(__FILE__, __LINE__, "leaked %d file descriptors", fds1 - fds0);
    /* Threads may take a moment to leave /proc after pthread_join's caller returns. */
    for (int t = 0; t < 100 && threads1 > threads0; t++) {
        usleep(10000);
        threads1 = count_dir("/proc/self/task");
    }
    if (threads1 > threads0)
        weft_test_fail(__FILE__, __LINE__, "leaked %d threads", threads1 - threads0);
    pid_t c = waitpid(-1, NULL, WNOHANG);
    if (c >= 0) weft_test_fail(__FILE__, __LINE__, "leaked a child process (pid %d)", (int)c);
}

static int find(const char *name)
{
    for (int i = 0; i < ntests; i++)
        if (strcmp(tests[i].name, name) == 0) return i;
    return -1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool run_forked(int i)
{
    const char *env = getenv("WEFT_TEST_TIMEOUT");
    int timeout = tests[i].timeout_s ? tests[i].timeout_s : 60;
    if (env) timeout = atoi(env);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/weft-test-%d-%s", (int)getpid(), tests[i].name);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", tmpdir, tmpdir);
    if (system(cmd) != 0) return false;
    fflush(NULL);
    double t0 = now_s();
    pid_t pid = fork();
    if (pid < 0) return false;
    if (pid == 0) {
        setpgid(0, 0);
        alarm((unsigned)timeout);
        run_here(i);
        fflush(NULL);
        _exit(0);
    }
    setpgid(pid, pid);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    kill(-pid, SIGKILL); /* whatever the test left behind in its process group */
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "  warning: could not remove %s\n", tmpdir);
    double ms = (now_s() - t0) * 1000;
    bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (ok)
        printf("ok   %-40s %8.1f ms\n", tests[i].name, ms);
    else if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM)
        printf("FAIL %-40s timed out after %d s\n", tests[i].name, timeout);
    else if (WIFSIGNALED(st))
        printf("FAIL %-40s killed by signal %d (%s)\n", tests[i].name, WTERMSIG(st),
               strsignal(WTERMSIG(st)));
    else
        printf("FAIL %-40s exit status %d\n", tests[i].name, WEXITSTATUS(st));
    fflush(stdout);
    return ok;
}

static void *nop_thread(void *arg)
{
    return arg;
}

int main(int argc, char **argv)
{
    /* ThreadSanitizer starts a background thread at the first pthread_create: start it now,
     * before any test counts threads, or every test that makes a thread would "leak" one. */
    pthread_t t;
    if (pthread_create(&t, NULL, nop_thread, NULL) == 0) pthread_join(t, NULL);

    if (argc > 1 && strcmp(argv[1], "--list") == 0) {
        for (int i = 0; i < ntests; i++) printf("%s\n", tests[i].name);
        return 0;
    }
    if (argc > 1) {
        for (int a = 1; a < argc; a++) {
            int i = find(argv[a]);
            if (i < 0) {
                fprintf(stderr, "no test named %s (try --list)\n", argv[a]);
                return 2;
            }
            snprintf(tmpdir, sizeof tmpdir, "/tmp/weft-test-%d-%s", (int)getpid(), argv[a]);
            char cmd[600];
            snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", tmpdir, tmpdir);
            if (system(cmd) != 0) return 1;
            run_here(i);
            printf("ok   %s\n", argv[a]);
        }
        return 0;
    }
    int passed = 0, failed = 0;
    for (int i = 0; i < ntests; i++) run_forked(i) ? passed++ : failed++;
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

const char *weft_test_refused_url(void)
{
    static char url[64];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
          getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", ntohs(a.sin_port));
    return url;
}
