/* The process pool with a shared libweft (ctest procpool-shared-*): libweft.so's constructors
 * run before the program's, yet workers must start only after the program's registrations.
 *
 * Built three times (CMakeLists.txt):
 *   procpool-shared-own   OWN_FN, linked with libweft.so: the program's function runs.
 *   procpool-shared-both  OWN_FN LIB_FN, linked with libweft_pptest.so (libweft plus a function
 *                         registered inside it, tests/procpool-shared-lib.c): both run.
 *   procpool-shared-bare  LIB_FN only: the program registers nothing; the library's function runs.
 * Every worker serves one task (max_tasks_per_child = 1), so replacements are checked too.
 * Exit status 0 on success, 1 with a message on failure.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <weft/err.h>
#include <weft/procpool.h>

static int main_ran; /* set by main(): workers never run it */

#ifdef OWN_FN
static int fn_own(const void *arg, size_t len, weft_buf_t *out)
{
    return weft_buf_printf(out, "own %.*s in_worker=%d pid=%d main=%d", (int)len, (const char *)arg,
                           weft_procpool_in_worker(), (int)getpid(), main_ran);
}

WEFT_PROCPOOL_FN("shared.own", fn_own)
#endif

static int failures;

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "procpool-shared: %s: %s\n", what, detail);
    failures++;
}

/* Runs `fn`("abc") and returns its result (owned by the caller) or NULL after reporting. */
static char *run(weft_procpool_t *pp, const char *fn)
{
    weft_future_t *f = NULL;
    int rc = weft_procpool_submit(pp, fn, "abc", 3, 30000000000u, &f);
    if (rc) {
        fail(fn, weft_strerror(rc));
        return NULL;
    }
    weft_future_wait(f, -1);
    char *res = NULL;
    if (weft_future_status(f) != 0) {
        const char *m = weft_future_message(f);
        fail(fn, m ? m : weft_strerror(weft_future_status(f)));
    } else {
        size_t n = 0;
        const char *v = weft_future_value(f, &n);
        res = strndup(v ? v : "", n);
    }
    weft_future_release(f);
    return res;
}

int main(void)
{
    /* A worker that missed its entry would run main(): refuse rather than start pools. */
    if (getenv("WEFT_PROCPOOL_WORKER")) {
        fprintf(stderr, "procpool-shared: a worker ran main()\n");
        return 3;
    }
    alarm(120);
    main_ran = 1;
    weft_procpool_opts_t o = {.workers = 2, .max_tasks_per_child = 1};
    weft_procpool_t *pp = NULL;
    int rc = weft_procpool_create(&pp, &o);
    if (rc) {
        fprintf(stderr, "procpool-shared: create: %s\n", weft_strerror(rc));
        return 1;
    }
    int tasks = 0;
    for (int i = 0; i < 3; i++) {
#ifdef OWN_FN
        char *r = run(pp, "shared.own");
        tasks++;
        int in_worker = 0, pid = 0, ran = -1;
        if (r && (sscanf(r, "own abc in_worker=%d pid=%d main=%d", &in_worker, &pid, &ran) != 3 ||
                  pid == getpid() || in_worker != pid || ran != 0))
            fail("shared.own: unexpected result", r);
        free(r);
#endif
#ifdef LIB_FN
        char *l = run(pp, "shared.lib");
        tasks++;
        if (l && strcmp(l, "lib abc") != 0) fail("shared.lib: unexpected result", l);
        free(l);
#endif
    }
    weft_procpool_stats_t st;
    weft_procpool_stats(pp, &st);
    if (st.completed != (uint64_t)tasks || st.failed || st.crashed) {
        char buf[128];
        snprintf(buf, sizeof buf, "completed %llu of %d, failed %llu, crashed %llu",
                 (unsigned long long)st.completed, tasks, (unsigned long long)st.failed,
                 (unsigned long long)st.crashed);
        fail("stats", buf);
    }
    weft_procpool_destroy(pp);
    if (waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD) fail("destroy", "a child is left");
    if (failures == 0) printf("procpool-shared: %d tasks ok\n", tasks);
    return failures ? 1 : 0;
}
