/* docs/procpool.md example: a process pool counting words, surviving a crash and a hung task.
 * Built and run by ctest as example-procpool. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <weft/err.h>
#include <weft/procpool.h>

/* Runs in a worker process: the argument bytes in, result bytes out. */
static int count_words(const void *arg, size_t len, weft_buf_t *out)
{
    const char *s = arg;
    int words = 0;
    for (size_t i = 0; i < len; i++) words += s[i] != ' ' && (i == 0 || s[i - 1] == ' ');
    if (words == 0) {
        weft_buf_printf(out, "no words in \"%.*s\"", (int)len, s); /* the failure message */
        return -EINVAL;
    }
    return weft_buf_printf(out, "%d", words);
}

static int crash(const void *arg, size_t len, weft_buf_t *out)
{
    signal(SIGSEGV, SIG_DFL); /* sanitizer builds catch SIGSEGV; die of it plainly */
    raise(SIGSEGV);
    return 0;
}

static int hang(const void *arg, size_t len, weft_buf_t *out)
{
    for (;;) pause();
    return 0;
}

/* Registered by constructors, in the parent and in every worker (which never runs main). */
WEFT_PROCPOOL_FN("count_words", count_words)
WEFT_PROCPOOL_FN("crash", crash)
WEFT_PROCPOOL_FN("hang", hang)

static void show(const char *what, weft_future_t *f)
{
    weft_future_wait(f, -1);
    int st = weft_future_status(f);
    if (st == 0) {
        printf("%-22s -> %s\n", what, (const char *)weft_future_value(f, NULL));
    } else {
        /* Messages about a dead worker start with "worker <pid>"; skip the pid. */
        const char *m = weft_future_message(f);
        const char *p = m && strncmp(m, "worker ", 7) == 0 ? strchr(m + 7, ' ') : NULL;
        printf("%-22s -> %s: %s%s\n", what, weft_err_name(st), p ? "worker ..." : "",
               p   ? p
               : m ? m
                   : "");
    }
    weft_future_release(f);
}

int main(void)
{
    weft_procpool_t *pool;
    weft_procpool_opts_t opts = {.workers = 2};
    int rc = weft_procpool_create(&pool, &opts);
    if (rc < 0) {
        fprintf(stderr, "weft_procpool_create: %s\n", weft_strerror(rc));
        return 1;
    }
    const char *texts[] = {"the quick brown fox", "jumps over", "   "};
    weft_future_t *f[3];
    for (int i = 0; i < 3; i++)
        weft_procpool_submit(pool, "count_words", texts[i], strlen(texts[i]), 0, &f[i]);
    weft_future_t *crashed, *hung;
    weft_procpool_submit(pool, "crash", "", 0, 0, &crashed);
    weft_procpool_submit(pool, "hang", "", 0, 200000000 /* 200 ms */, &hung);
    for (int i = 0; i < 3; i++) {
        char label[64];
        snprintf(label, sizeof label, "\"%s\"", texts[i]);
        show(label, f[i]);
    }
    show("crash", crashed);
    show("hang", hung);

    /* The pool replaced both workers and keeps working. */
    weft_future_t *again;
    if (weft_procpool_submit(pool, "no_such_function", "", 0, 0, &again) == WEFT_ENOFUNC)
        printf("no_such_function       -> refused at submit: %s\n", weft_strerror(WEFT_ENOFUNC));
    weft_procpool_submit(pool, "count_words", "still here", 10, 0, &again);
    show("\"still here\"", again);
    weft_procpool_stats_t st;
    weft_procpool_stats(pool, &st);
    printf("completed %llu, failed %llu, crashed %llu, timed out %llu\n",
           (unsigned long long)st.completed, (unsigned long long)st.failed,
           (unsigned long long)st.crashed, (unsigned long long)st.timed_out);
    weft_procpool_destroy(pool); /* waits for queued work, stops and reaps every worker */
    return 0;
}
