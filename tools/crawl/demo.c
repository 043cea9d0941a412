/* The crawl demos (`weft demo fetch|titles|delay`), each against a fixture server it starts
 * itself on 127.0.0.1 with a free port, so they run offline:
 *
 *   fetch   the seed's fetch_all_status: the same URLs (200-700 ms each) sequentially, with a
 *           pool of 5 threads and asynchronously, with the seed's table
 *   titles  exercise 1: download pages concurrently and list their title lengths
 *   delay   exercise 3: N requests to a 1 s endpoint, thread pool against event loop, with the
 *           time and the size of the code of each
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft/err.h>
#include <weft/http.h>
#include <weft/pool.h>
#include <weft/sys.h>
#include <weft/utf8.h>

#include "crawl/crawl.h"
#include "demo/demo.h"
#include "fixture/fixture.h"
#include "common/cli-int.h"

static int start_fixture(const char *demo, weft_fixture_t **fx)
{
    int rc = weft_fixture_start(fx, &(weft_fixture_opts_t){.port = 0});
    if (rc < 0)
        return weft_cli_error("demo", WEFT_EXIT_INTERNAL, "%s: cannot start the fixture: %s", demo,
                              weft_strerror(rc));
    printf("(fixture server at %s, started by this demo)\n\n", weft_fixture_url(*fx));
    return 0;
}

static int parse_n(const char *demo, int argc, char **argv, long def, long *n)
{
    *n = def;
    if (argc > 1 && weft_cli_parse_int(argv[1], 1, 10000, n) < 0)
        return weft_cli_usage_error("demo", "%s: N must be in 1..10000, not '%s'", demo, argv[1]);
    return 0;
}

typedef struct collected {
    double sum_ms;
    int pages, failed;
    char **titles; /* by line, for `titles` */
    long n;
} collected_t;

static void on_page(void *arg, crawl_mode_t mode, const crawl_result_t *r)
{
    collected_t *c = arg;
    c->pages++;
    c->sum_ms += r->ms;
    if (r->error) c->failed++;
    if (c->titles && r->line >= 1 && r->line <= (uint64_t)c->n && r->title)
        c->titles[r->line - 1] = strdup(r->title);
}

/* ---- fetch ---- */

static int demo_fetch(int argc, char **argv)
{
    long n;
    if (parse_n("fetch", argc, argv, 20, &n)) return WEFT_EXIT_USAGE;
    weft_demo_heading("fetch: the same URLs sequentially, with 5 threads, and asynchronously");
    printf("The seed's fetch_all_status(): %ld URLs whose server takes 200-700 ms each.\n"
           "Sequentially they add up; five threads wait for five at a time; the event loop\n"
           "waits for all of them at once. (Run 'weft demo fetch 30' for the seed's 30 URLs.)\n",
           n);
    weft_fixture_t *fx;
    if (start_fixture("fetch", &fx)) return WEFT_EXIT_INTERNAL;
    FILE *f = tmpfile();
    if (!f) {
        weft_fixture_stop(fx);
        return weft_cli_error("demo", WEFT_EXIT_INTERNAL, "tmpfile: %s", strerror(errno));
    }
    for (long i = 0; i < n; i++)
        fprintf(f, "%s/delay/%ld\n", weft_fixture_url(fx), 200 + (i * 137) % 501);
    fflush(f);
    crawl_opts_t o;
    crawl_opts_default(&o);
    o.table = o.summary = false;
    static const char *const titles[] = {"sequential (one at a time)",
                                         "ThreadPool(5) (weft_pool, blocking libcurl)",
                                         "async (weft_loop, libcurl multi on libuv)"};
    double seq_s = 0;
    int rc = WEFT_EXIT_OK;
    for (int m = 0; m < CRAWL_NMODES; m++) {
        collected_t c = {0};
        crawl_stats_t st;
        if (crawl_run_mode(&o, (crawl_mode_t)m, f, on_page, &c, &st) < 0 || c.failed) {
            rc = WEFT_EXIT_FAILED;
            break;
        }
        if (m == 0) seq_s = st.wall_s;
        printf("=== %s ===\n", titles[m]);
        printf("total time     %.2f s\n", st.wall_s);
        printf("mean response  %.0f ms   (total / N: %.0f ms per page)\n", c.sum_ms / c.pages,
               st.wall_s * 1000 / c.pages);
        if (m > 0) printf("speed-up       %.1fx\n", seq_s / st.wall_s);
        putchar('\n');
        fflush(stdout);
    }
    printf("The seed's Python figures for 30 real sites: 15.2 s, 3.8 s (4.0x), 2.1 s (7.2x).\n"
           "Each response takes as long in every mode; concurrency only overlaps the waiting.\n");
    fclose(f);
    weft_fixture_stop(fx);
    return rc;
}

/* ---- titles ---- */

/* Characters (code points) in `s`; each invalid byte counts as one. */
static size_t code_points(const char *s)
{
    size_t n = 0, len = strlen(s);
    for (size_t i = 0; i < len; n++) {
        uint32_t cp;
        int l = weft_utf8_decode(s + i, len - i, &cp);
        i += l > 0 ? (size_t)l : 1;
    }
    return n;
}

static int demo_titles(int argc, char **argv)
{
    long n;
    if (parse_n("titles", argc, argv, 12, &n)) return WEFT_EXIT_USAGE;
    weft_demo_heading("titles: download pages concurrently, list their title lengths");
    printf("Exercise 1: a pool of 5 threads downloads %ld pages; the HTML parser reads each\n"
           "<title> (entities decoded, any charset converted to UTF-8) and we count its\n"
           "characters.\n",
           n);
    weft_fixture_t *fx;
    if (start_fixture("titles", &fx)) return WEFT_EXIT_INTERNAL;
    FILE *f = tmpfile();
    if (!f) {
        weft_fixture_stop(fx);
        return WEFT_EXIT_INTERNAL;
    }
    const char *specials[] = {"/charset/gbk", "/charset/shift_jis", "/charset/windows-1251",
                              "/entities"};
    for (long i = 0; i < n; i++) {
        if (i < 4)
            fprintf(f, "%s%s\n", weft_fixture_url(fx), specials[i]);
        else
            fprintf(f, "%s/page/%ld\n", weft_fixture_url(fx), i);
    }
    fflush(f);
    crawl_opts_t o;
    crawl_opts_default(&o);
    o.table = o.summary = false;
    o.threads = 5;
    collected_t c = {.n = n, .titles = calloc((size_t)n, sizeof(char *))};
    crawl_stats_t st;
    int rc = c.titles ? crawl_run_mode(&o, CRAWL_THREADS, f, on_page, &c, &st) : -ENOMEM;
    if (rc == 0) {
        printf("length  title\n");
        size_t total = 0;
        for (long i = 0; i < n; i++) {
            const char *t = c.titles[i] ? c.titles[i] : "";
            printf("%6zu  ", code_points(t));
            weft_cli_put_safe(stdout, t, 60);
            putchar('\n');
            total += code_points(t);
        }
        printf("\n%ld pages, %zu characters of titles, in %.2f s with 5 threads.\n", n, total,
               st.wall_s);
    }
    for (long i = 0; c.titles && i < n; i++) free(c.titles[i]);
    free(c.titles);
    fclose(f);
    weft_fixture_stop(fx);
    return rc == 0 && !c.failed ? WEFT_EXIT_OK : WEFT_EXIT_FAILED;
}

/* ---- delay: the two programs, measured, and their own size ---- */

/* The thread-pool version: each task blocks in one request. */
static const int threads_code_begin = __LINE__;
static int fetch_blocking(void *arg, weft_ctx_t *ctx)
{
    weft_http_session_t *s;
    int rc = weft_http_session_create(&s);
    if (rc < 0) return rc;
    weft_http_resp_t resp = {0};
    rc = weft_http_session_perform(s, &(weft_http_opts_t){.url = arg}, &resp);
    weft_http_resp_free(&resp);
    weft_http_session_destroy(s);
    return rc;
}

static int with_threads(char **urls, long n, weft_future_t **fs)
{
    weft_pool_t *pool;
    int rc = weft_pool_create(&pool, &(weft_pool_opts_t){.threads = 5});
    for (long i = 0; rc == 0 && i < n; i++)
        rc = weft_pool_submit(pool, fetch_blocking, urls[i], &fs[i]);
    if (rc == 0) rc = weft_future_wait_all(fs, (size_t)n, -1);
    weft_pool_destroy(pool);
    return rc;
}
static const int threads_code_end = __LINE__;

/* The event-loop version: every request is a transfer on one loop thread. */
static const int async_code_begin = __LINE__;
static int with_loop(char **urls, long n, weft_future_t **fs)
{
    weft_loop_t *loop;
    int rc = weft_loop_create(&loop, &(weft_loop_opts_t){.own_thread = true});
    for (long i = 0; rc == 0 && i < n; i++)
        rc = weft_http_fetch(loop, &(weft_http_opts_t){.url = urls[i]}, &fs[i]);
    if (rc == 0) rc = weft_future_wait_all(fs, (size_t)n, -1);
    weft_loop_destroy(loop);
    return rc;
}
static const int async_code_end = __LINE__;

static int demo_delay(int argc, char **argv)
{
    long n;
    if (parse_n("delay", argc, argv, 20, &n)) return WEFT_EXIT_USAGE;
    weft_demo_heading("delay: a thread pool against an event loop on a 1 s endpoint");
    printf("Exercise 3: %ld requests to /delay/1000. A pool of 5 threads needs n/5 rounds of\n"
           "one second; the event loop sends all of them at once.\n",
           n);
    weft_fixture_t *fx;
    if (start_fixture("delay", &fx)) return WEFT_EXIT_INTERNAL;
    char **urls = calloc((size_t)n, sizeof *urls);
    weft_future_t **fs = calloc((size_t)n, sizeof *fs);
    int rc = urls && fs ? 0 : -ENOMEM;
    for (long i = 0; rc == 0 && i < n; i++)
        if (asprintf(&urls[i], "%s/delay/1000", weft_fixture_url(fx)) < 0) rc = -ENOMEM;
    double secs[2] = {0, 0};
    int failed = 0;
    for (int way = 0; rc == 0 && way < 2; way++) {
        uint64_t t0 = weft_now_ns();
        rc = way == 0 ? with_threads(urls, n, fs) : with_loop(urls, n, fs);
        secs[way] = (double)(weft_now_ns() - t0) / 1e9;
        for (long i = 0; i < n; i++) {
            if (fs[i] && weft_future_status(fs[i]) != 0) failed++;
            weft_future_release(fs[i]);
            fs[i] = NULL;
        }
    }
    if (rc == 0) {
        printf("%-34s %8s %14s\n", "", "time", "lines of code");
        printf("%-34s %7.2fs %14d\n", "thread pool (5 threads, blocking)", secs[0],
               threads_code_end - threads_code_begin - 1);
        printf("%-34s %7.2fs %14d\n", "event loop (one thread)", secs[1],
               async_code_end - async_code_begin - 1);
        printf("\nThe event-loop version is shorter (the loop owns the connections; no task\n"
               "function) and %.1fx faster: a waiting transfer costs it no thread, so all\n"
               "requests wait at once. Both are in tools/crawl/demo.c; 'weft demo delay 100'\n"
               "widens the gap.\n",
               secs[1] > 0 ? secs[0] / secs[1] : 0);
    } else {
        weft_cli_error("demo", WEFT_EXIT_FAILED, "delay: %s", weft_strerror(rc));
    }
    for (long i = 0; urls && i < n; i++) free(urls[i]);
    free(urls);
    free(fs);
    weft_fixture_stop(fx);
    return rc == 0 && !failed ? WEFT_EXIT_OK : WEFT_EXIT_FAILED;
}

WEFT_DEMO("fetch", 20, demo_fetch, "fetch URLs sequentially, with 5 threads and async (crawl)")
WEFT_DEMO("titles", 21, demo_titles, "download pages concurrently, list title lengths")
WEFT_DEMO("delay", 22, demo_delay, "1 s endpoint: thread pool against event loop, time and code")
