/* Tests for `weft crawl` against the fixture server (started in-process): charsets, entities,
 * missing titles, redirects, retries and Retry-After, the rate limiter and per-host limit,
 * timeouts, the body cap, invalid lines, identical fields in the three modes, the output files
 * and the HTML report's escaping; and the head extractor on its own. */
#include "harness.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <weft/err.h>
#include <weft/loop.h>
#include <weft/sys.h>
#include <weft/utf8.h>

#include "crawl/crawl.h"
#include "crawl/hosts.h"
#include "crawl/htmlhead.h"
#include "crawl/input.h"
#include "crawl/retry.h"
#include "common/cli-int.h"
#include "crawl/charset.h"
#include "crawl/robots.h"
#include "fixture/fixture.h"

/* libuv's process-wide signal pipe and ThreadSanitizer's background thread appear at the first
 * loop and the first thread: create both before the harness counts descriptors and threads. */
__attribute__((constructor)) static void warm_up(void)
{
    weft_loop_opts_t o = {.own_thread = true};
    weft_loop_t *loop;
    if (weft_loop_create(&loop, &o) == 0) weft_loop_destroy(loop);
}

/* ---- helpers ---- */

#define MAX_LINES 64

typedef struct got {
    int n;
    crawl_result_t r[MAX_LINES + 1]; /* by input line; strings copied */
} got_t;

static char *dup0(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void collect(void *arg, crawl_mode_t mode, const crawl_result_t *r)
{
    got_t *g = arg;
    CHECK(r->line <= MAX_LINES);
    crawl_result_t *d = &g->r[r->line];
    CHECK_MSG(d->url == NULL, "line %llu reported twice", (unsigned long long)r->line);
    *d = *r;
    d->url = dup0(r->url);
    d->final_url = dup0(r->final_url);
    d->title = dup0(r->title);
    d->description = dup0(r->description);
    g->n++;
}

static void got_free(got_t *g)
{
    for (int i = 0; i <= MAX_LINES; i++) crawl_result_free(&g->r[i]);
    memset(g, 0, sizeof *g);
}

static weft_fixture_t *fixture(void)
{
    weft_fixture_t *fx;
    CHECK_EQ(weft_fixture_start(&fx, &(weft_fixture_opts_t){.port = 0}), 0);
    return fx;
}

/* Writes one URL per path (paths starting with '/' get the fixture's base) to a file. */
static FILE *url_file(weft_fixture_t *fx, const char *const *paths, size_t n)
{
    char name[512];
    snprintf(name, sizeof name, "%s/urls.txt", weft_test_tmpdir());
    FILE *f = fopen(name, "w+");
    CHECK(f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s%s\n", paths[i][0] == '/' ? weft_fixture_url(fx) : "", paths[i]);
    fflush(f);
    return f;
}

static void quick_opts(crawl_opts_t *o)
{
    crawl_opts_default(o);
    o->table = o->summary = o->progress = false;
    o->backoff_base_ms = 20;
    o->backoff_max_ms = 100;
    o->seed = 42;
    o->timeout_ms = 20000;
}

static const crawl_result_t *run1(got_t *g, const crawl_opts_t *o, crawl_mode_t m, FILE *f,
                                  crawl_stats_t *st)
{
    got_free(g);
    CHECK_EQ(crawl_run_mode(o, m, f, collect, g, st), 0);
    return g->r;
}

/* ---- the head extractor on its own ---- */

static void parse_in_chunks(crawl_head_t *h, const char *ct, const char *html, size_t chunk)
{
    crawl_head_reset(h, ct);
    size_t n = strlen(html);
    for (size_t i = 0; i < n; i += chunk)
        if (crawl_head_feed(h, html + i, n - i < chunk ? n - i : chunk) == 1) break;
    crawl_head_finish(h);
}

TEST(head_extractor)
{
    crawl_head_t *h = crawl_head_create();
    CHECK(h);
    static const char page[] =
        "<!doctype html><HTML><Head><TITLE>  Hello\n\t  world &amp; &#x263A; </TITLE>"
        "<meta property=\"og:description\" content=\"og text\">"
        "<META NAME=\"DESCRIPTION\" CONTENT=\" the  real\n one \"></head><body>"
        "<title>not this</title><meta name=description content=\"nor this\">";
    for (size_t chunk = 1; chunk <= sizeof page; chunk = chunk * 3 + 1) {
        parse_in_chunks(h, "text/html", page, chunk);
        CHECK_STR_EQ(crawl_head_title(h), "Hello world & \xE2\x98\xBA");
        CHECK_STR_EQ(crawl_head_description(h), "the real one");
        CHECK(crawl_head_done(h));
    }
    /* og:description is the fallback; no title is NULL, an empty one "". */
    parse_in_chunks(h, NULL, "<head><meta property='og:description' content='og'></head>", 5);
    CHECK(crawl_head_title(h) == NULL);
    CHECK_STR_EQ(crawl_head_description(h), "og");
    parse_in_chunks(h, NULL, "<title></title>", 100);
    CHECK_STR_EQ(crawl_head_title(h), "");
    /* Capped at CRAWL_FIELD_MAX bytes, never inside a character. */
    char big[4096] = "<title>";
    for (int i = 0; i < 1000; i++) strcat(big, "\xC3\xA9");
    strcat(big, "</title>");
    parse_in_chunks(h, "text/html; charset=utf-8", big, 7);
    CHECK(strlen(crawl_head_title(h)) <= CRAWL_FIELD_MAX);
    CHECK_EQ(strlen(crawl_head_title(h)) % 2, 0);
    /* HTML5 takes the first <title> and description anywhere, even past an implied <body>. */
    parse_in_chunks(h, NULL, "<html><body><title>late</title>", 3);
    CHECK_STR_EQ(crawl_head_title(h), "late");
    static const char *const before_title[] = {"<img src=\"/t.gif\">", "<div id=\"fb-root\"></div>",
                                               "stray text", "<p>x</p></head><body>"};
    for (size_t i = 0; i < 4; i++) {
        char page2[512];
        snprintf(page2, sizeof page2,
                 "<html><head><meta charset=utf-8>%s<title>T %zu</title>"
                 "<meta name=\"description\" content=\"D\"></head><body>b</body>",
                 before_title[i], i);
        for (size_t chunk = 1; chunk < 600; chunk = chunk * 4 + 1) {
            parse_in_chunks(h, NULL, page2, chunk);
            char want[16];
            snprintf(want, sizeof want, "T %zu", i);
            CHECK_MSG(crawl_head_title(h) && strcmp(crawl_head_title(h), want) == 0,
                      "case %zu chunk %zu: %s", i, chunk, crawl_head_title(h));
            CHECK_STR_EQ(crawl_head_description(h), "D");
        }
    }
    parse_in_chunks(h, NULL, "<title>t</title></head><body><p>x<meta name=description content=B>",
                    4);
    CHECK_STR_EQ(crawl_head_description(h), "B");
    /* Numeric references as HTML5 reads them: C1 through windows-1252; NUL, surrogates and
     * out-of-range values are U+FFFD. Split at every position. */
    static const char refs[] =
        "<title>&#128;&#x93;q&#148 &#0;&#xD800;&#1114112;&#233;&amp;</title>";
    for (size_t chunk = 1; chunk < sizeof refs; chunk++) {
        parse_in_chunks(h, "text/html; charset=utf-8", refs, chunk);
        CHECK_STR_EQ(crawl_head_title(h), "\xE2\x82\xAC\xE2\x80\x9Cq\xE2\x80\x9D "
                                          "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xC3\xA9&");
    }
    /* windows-1252's 0x81, 0x8D and 0x9D are U+0081, U+008D, U+009D (WHATWG), not U+FFFD. */
    parse_in_chunks(h, "text/html; charset=windows-1252", "<title>a\x81\x8D\x9D\x80</title>", 64);
    CHECK_STR_EQ(crawl_head_title(h), "a\xC2\x81\xC2\x8D\xC2\x9D\xE2\x82\xAC");
    /* Labels from the WHATWG table. */
    static const char *const lab[][2] = {
        {"cp1250", "CP1250"},     {"iso8859-2", "ISO-8859-2"},
        {"l2", "ISO-8859-2"},     {"greek", "ISO-8859-7"},
        {"hebrew", "ISO-8859-8"}, {"korean", "CP949"},
        {"koi8-ru", "KOI8-U"},    {"x-mac-cyrillic", "MAC-CYRILLIC"},
        {"dos-874", "CP874"},     {" \"ISO_8859-1:1987\" ", "CP1252"},
        {"utf-16", "UTF-16LE"}};
    for (size_t i = 0; i < sizeof lab / sizeof lab[0]; i++)
        CHECK_STR_EQ(crawl_charset_lookup(lab[i][0], strlen(lab[i][0])), lab[i][1]);
    CHECK(crawl_charset_lookup("nonsense", 8) == NULL);
    /* http-equiv content without a ';', found by the prescan; UTF-16 in a meta means UTF-8. */
    parse_in_chunks(h, NULL,
                    "<meta http-equiv=Content-Type content='text/html charset=koi8-r'>"
                    "<title>\xF4\xC5\xD3\xD4</title>",
                    9);
    CHECK_STR_EQ(crawl_head_title(h), "\xD0\xA2\xD0\xB5\xD1\x81\xD1\x82");
    CHECK_STR_EQ(crawl_head_charset_source(h), "prescan");
    parse_in_chunks(h, NULL, "<meta charset=utf-16le><title>\xC3\xA9</title>", 9);
    CHECK_STR_EQ(crawl_head_title(h), "\xC3\xA9");
    /* utf-16le in the header with no BOM. */
    static const char u16[] = "<\0t\0i\0t\0l\0e\0>\0\xE9\0\x42\x30<\0/\0t\0i\0t\0l\0e\0>\0";
    crawl_head_reset(h, "text/html; charset=utf-16le");
    crawl_head_feed(h, u16, sizeof u16 - 1);
    crawl_head_finish(h);
    CHECK_STR_EQ(crawl_head_title(h), "\xC3\xA9\xE3\x81\x82");
    /* Invalid UTF-8 with nothing declared: judged from the bytes. */
    parse_in_chunks(h, NULL, "<title>caf\xE9</title>", 2);
    CHECK_STR_EQ(crawl_head_title(h), "caf\xC3\xA9");
    CHECK_STR_EQ(crawl_head_charset(h), "CP1252");
    /* Garbage does not crash and yields nothing. */
    parse_in_chunks(h, "text/html; charset=nonsense", "\xFF\xFE\x00<\x01>&#;<<<", 1);
    crawl_head_destroy(h);
}

/* The bar counts pages done against the URL lines of the input, with rate, failures and ETA;
 * with no total (a stream) it shows pages done and the rate. */
TEST(progress_counts_pages)
{
    char name[512];
    snprintf(name, sizeof name, "%s/in.txt", weft_test_tmpdir());
    FILE *f = fopen(name, "w+");
    CHECK(f);
    fputs("\xEF\xBB\xBFhttp://a/1\n# comment\n\n  \nhttp://a/2\nnot a url\n", f);
    rewind(f);
    uint64_t n;
    CHECK_EQ(crawl_input_count(f, &n), 0);
    CHECK_EQ(n, 3);
    CHECK_EQ(ftello(f), 0);
    fclose(f);
    weft_progress_t p;
    weft_progress_start(&p, "async", 200);
    p.unit = "pages";
    p.done = 50;
    p.errors = 2;
    char buf[160];
    weft_progress_format(&p, p.start_ns + 5000000000ull, buf, sizeof buf);
    CHECK_MSG(strstr(buf, "50/200 pages") && strstr(buf, "10/s") && strstr(buf, "2 failed") &&
                  strstr(buf, "ETA 15s"),
              "%s", buf);
    p.total = 0;
    weft_progress_format(&p, p.start_ns + 5000000000ull, buf, sizeof buf);
    CHECK_MSG(strstr(buf, " 50 pages  10/s") && !strstr(buf, "ETA"), "%s", buf);
}

TEST(url_check)
{
    char host[CRAWL_HOSTKEY_MAX];
    CHECK(crawl_url_check("http://Example.COM/x", host) == NULL);
    CHECK_STR_EQ(host, "http://example.com:80");
    CHECK(crawl_url_check("https://a.b:8443", host) == NULL);
    CHECK_STR_EQ(host, "https://a.b:8443");
    CHECK(crawl_url_check("ftp://a/b", host) != NULL);
    CHECK(crawl_url_check("http://", host) != NULL);
    CHECK(crawl_url_check("http://a b/", host) != NULL);
    CHECK(crawl_url_check("nonsense", host) != NULL);
    CHECK(crawl_url_check("http://x:99999/", host) != NULL);
}

TEST(retry_after_parsing)
{
    uint64_t ms;
    CHECK(crawl_retry_after_ms("120", 1000, &ms) && ms == 120000);
    CHECK(crawl_retry_after_ms(" 0 ", 1000, &ms) && ms == 0);
    /* Sun, 06 Nov 1994 08:49:37 GMT is 784111777. */
    CHECK(crawl_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", 784111770, &ms) && ms == 7000);
    CHECK(crawl_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", 784111999, &ms) && ms == 0);
    CHECK(!crawl_retry_after_ms("soon", 0, &ms));
    CHECK(!crawl_retry_after_ms("12abc", 0, &ms));
    /* Full jitter stays within its cap. */
    crawl_opts_t o;
    crawl_opts_default(&o);
    crawl_result_t r = {.error = WEFT_EHTTP, .status = 503, .attempts = 2};
    uint64_t rng = 7, delay;
    char why[100];
    for (int i = 0; i < 1000; i++) {
        CHECK_EQ(crawl_retry_decide(&o, &r, NULL, &rng, &delay, why, sizeof why), CRAWL_RETRY_YES);
        CHECK(delay <= 1000 * 1000000ull); /* min(10000, 500 * 2^1) ms */
    }
    r.status = 404;
    CHECK_EQ(crawl_retry_decide(&o, &r, NULL, &rng, &delay, why, sizeof why), CRAWL_RETRY_NO);
    r.status = 503;
    r.attempts = 3;
    CHECK_EQ(crawl_retry_decide(&o, &r, NULL, &rng, &delay, why, sizeof why), CRAWL_RETRY_NO);
}

/* ---- against the fixture ---- */

TEST_T(charsets_and_fields_same_in_every_mode, 120)
{
    weft_fixture_t *fx = fixture();
    const char *paths[64];
    size_t n = 0;
    char buf[64][64];
    for (const char *const *c = weft_fixture_charset_cases; *c; c++) {
        snprintf(buf[n], sizeof buf[n], "/charset/%s", *c);
        paths[n] = buf[n];
        n++;
    }
    size_t ncs = n;
    const char *extra[] = {"/entities", "/og", "/notitle", "/xss", "/gzip", "/page/12"};
    for (size_t i = 0; i < 6; i++) paths[n++] = extra[i];
    FILE *f = url_file(fx, paths, n);
    crawl_opts_t o;
    quick_opts(&o);
    got_t g[CRAWL_NMODES] = {0};
    crawl_stats_t st;
    for (int m = 0; m < CRAWL_NMODES; m++) {
        run1(&g[m], &o, (crawl_mode_t)m, f, &st);
        CHECK_EQ(g[m].n, (long)n);
        CHECK_EQ(st.failed, 0);
        for (size_t i = 0; i < ncs; i++) {
            const crawl_result_t *r = &g[m].r[i + 1];
            const char *want = weft_fixture_charset_title(weft_fixture_charset_cases[i]);
            CHECK_MSG(r->title && strcmp(r->title, want) == 0, "%s in %s mode: got \"%s\"",
                      weft_fixture_charset_cases[i], crawl_mode_name((crawl_mode_t)m),
                      r->title ? r->title : "(null)");
            char want_desc[64];
            snprintf(want_desc, sizeof want_desc, "charset case %s", weft_fixture_charset_cases[i]);
            if (strncmp(weft_fixture_charset_cases[i], "detect-", 7) == 0)
                CHECK_STR_EQ(r->charset_source, "detected");
            CHECK_MSG(r->description && strcmp(r->description, want_desc) == 0,
                      "%s in %s mode: got description \"%s\"", weft_fixture_charset_cases[i],
                      crawl_mode_name((crawl_mode_t)m), r->description ? r->description : "(null)");
        }
        const crawl_result_t *r = &g[m].r[ncs + 1];
        CHECK_STR_EQ(r->title, "Caf\xC3\xA9 & cr\xC3\xA8me \xE2\x80\x93 \xE4\xB8\xAD\xE6\x96\x87 "
                               "<b>\xC2\xA0\"q\"");
        CHECK_STR_EQ(r->description, "Fish & chips, \xC2\xA9 2024");
        CHECK_STR_EQ(g[m].r[ncs + 2].description, "From og:description.");
        CHECK(g[m].r[ncs + 3].title == NULL);
        CHECK_STR_EQ(g[m].r[ncs + 3].description, "No title here.");
        CHECK_STR_EQ(g[m].r[ncs + 4].title, "<script>alert(1)</script>");
        CHECK(strncmp(g[m].r[ncs + 5].title, "Compressed 1:", 13) == 0);
        CHECK(strncmp(g[m].r[ncs + 6].title, "Page 12:", 8) == 0);
    }
    /* Identical fields in the three modes. */
    for (size_t i = 1; i <= n; i++)
        for (int m = 1; m < CRAWL_NMODES; m++) {
            const crawl_result_t *a = &g[0].r[i], *b = &g[m].r[i];
            CHECK_EQ(a->status, b->status);
            CHECK_EQ(a->bytes, b->bytes);
            CHECK((!a->title && !b->title) ||
                  (a->title && b->title && !strcmp(a->title, b->title)));
            CHECK((!a->description && !b->description) ||
                  (a->description && b->description && !strcmp(a->description, b->description)));
        }
    for (int m = 0; m < CRAWL_NMODES; m++) got_free(&g[m]);
    fclose(f);
    weft_fixture_stop(fx);
}

TEST_T(redirects_timeouts_body_cap_invalid, 120)
{
    weft_fixture_t *fx = fixture();
    const char *paths[] = {
        "/redirect/3",           "/redirect-loop", "/delay/5000", "/drip/200/300", "/huge/8",
        "/bighead/600",          "not a url",      "ftp://x/y",   "/status/404",   "/status/204",
        weft_test_refused_url(),
    };
    FILE *f = url_file(fx, paths, sizeof paths / sizeof paths[0]);
    /* A comment and a blank line do not count as lines with URLs, but do count in numbering. */
    fprintf(f, "# comment\n\n%s/page/1\n", weft_fixture_url(fx));
    fflush(f);
    crawl_opts_t o;
    quick_opts(&o);
    o.attempts = 1;
    o.timeout_ms = 600;
    o.low_speed_limit = 100;
    o.low_speed_time_s = 1;
    o.max_body = 256 * 1024;
    got_t g = {0};
    crawl_stats_t st;
    for (int m = 0; m < CRAWL_NMODES; m++) {
        const crawl_result_t *r = run1(&g, &o, (crawl_mode_t)m, f, &st);
        CHECK_EQ(g.n, 12);
        CHECK_EQ(r[1].status, 200);
        CHECK_EQ(r[1].redirects, 3);
        CHECK(strstr(r[1].final_url, "/redirect/0"));
        CHECK_STR_EQ(r[2].error_kind, "redirects");
        CHECK_STR_EQ(r[3].error_kind, "timeout");
        CHECK_EQ(r[3].status, 0);
        CHECK(r[4].error_kind &&
              (!strcmp(r[4].error_kind, "too-slow") || !strcmp(r[4].error_kind, "timeout")));
        CHECK_EQ(r[5].error, 0); /* the head was complete: kept, truncated */
        CHECK(r[5].truncated);
        CHECK_EQ(r[5].bytes, 256 * 1024);
        CHECK_STR_EQ(r[5].title, "Huge 8 MiB");
        CHECK_STR_EQ(r[6].error_kind, "body-cap");
        CHECK_STR_EQ(r[7].error_kind, "invalid-url");
        CHECK_EQ(r[7].attempts, 0);
        CHECK_STR_EQ(r[8].error_kind, "invalid-url");
        CHECK_STR_EQ(r[9].error_kind, "http-4xx");
        CHECK_EQ(r[9].status, 404);
        CHECK_EQ(r[10].error, 0);
        CHECK_EQ(r[10].status, 204);
        CHECK_STR_EQ(r[11].error_kind, "connect");
        CHECK_EQ(r[14].status, 200); /* line 14: after the comment and the blank line */
        CHECK_EQ(st.failed, 8);
        CHECK_EQ(st.ok, 4);
    }
    got_free(&g);
    fclose(f);
    weft_fixture_stop(fx);
}

/* A server that accepts and never answers is a "timeout" (the first-byte timeout, or the
 * low-speed limit with nothing received), and a reset reads the same in every mode. */
TEST_T(timeouts_and_resets_labelled_alike, 60)
{
    weft_fixture_t *fx = fixture();
    const char *paths[] = {"/delay/60000", "/reset"};
    FILE *f = url_file(fx, paths, 2);
    crawl_opts_t o;
    quick_opts(&o);
    o.attempts = 1;
    o.first_byte_timeout_ms = 300;
    got_t g = {0};
    crawl_stats_t st;
    for (int m = 0; m < CRAWL_NMODES; m++) {
        const crawl_result_t *r = run1(&g, &o, (crawl_mode_t)m, f, &st);
        CHECK_STR_EQ(r[1].error_kind, "timeout");
        CHECK_MSG(strstr(r[1].error_msg, "no response within 300 ms"), "%s", r[1].error_msg);
        CHECK_STR_EQ(r[2].error_kind, "connection-reset");
        CHECK_MSG(strcmp(r[2].error_msg, "Connection reset by peer") == 0, "%s mode: \"%s\"",
                  crawl_mode_name((crawl_mode_t)m), r[2].error_msg);
    }
    /* Without a first-byte timeout, the low-speed limit catches it: still a timeout. */
    o.first_byte_timeout_ms = 0;
    o.low_speed_limit = 100;
    o.low_speed_time_s = 1;
    const crawl_result_t *r = run1(&g, &o, CRAWL_ASYNC, f, &st);
    CHECK_STR_EQ(r[1].error_kind, "timeout");
    crawl_opts_t d;
    crawl_opts_default(&d);
    CHECK(d.first_byte_timeout_ms > 0 && d.first_byte_timeout_ms <= 15000);
    got_free(&g);
    fclose(f);
    weft_fixture_stop(fx);
}

TEST_T(retries_and_retry_after, 120)
{
    weft_fixture_t *fx = fixture();
    for (int m = 0; m < CRAWL_NMODES; m++) {
        char p[8][96];
        snprintf(p[0], 96, "/flaky/2/a%d", m);          /* 2 failures, then fine */
        snprintf(p[1], 96, "/flaky/5/b%d", m);          /* fails every attempt */
        snprintf(p[2], 96, "/flaky/1/c%d?code=404", m); /* 404: never retried */
        snprintf(p[3], 96, "/flaky/1/d%d?code=429", m); /* 429 without Retry-After */
        snprintf(p[4], 96, "/retry-after/1/e%d", m);    /* Retry-After: 1 */
        snprintf(p[5], 96, "/retry-date/2/f%d", m);     /* an HTTP date 2 s ahead */
        snprintf(p[6], 96, "/retry-after/3600/g%d", m); /* beyond the cap: give up */
        snprintf(p[7], 96, "/flaky/1/h%d?code=408", m); /* 408: retried */
        const char *paths[8];
        for (int i = 0; i < 8; i++) paths[i] = p[i];
        FILE *f = url_file(fx, paths, 8);
        crawl_opts_t o;
        quick_opts(&o);
        o.retry_after_max_ms = 5000;
        got_t g = {0};
        crawl_stats_t st;
        const crawl_result_t *r = run1(&g, &o, (crawl_mode_t)m, f, &st);
        CHECK_EQ(r[1].attempts, 3);
        CHECK_EQ(r[1].error, 0);
        CHECK_EQ(r[2].attempts, 3);
        CHECK_STR_EQ(r[2].error_kind, "http-5xx");
        CHECK_EQ(r[3].attempts, 1);
        CHECK_EQ(r[3].status, 404);
        CHECK_EQ(r[4].attempts, 2);
        CHECK_EQ(r[4].error, 0);
        CHECK_EQ(r[5].attempts, 2);
        CHECK_EQ(r[6].attempts, 2);
        CHECK_EQ(r[6].error, 0);
        CHECK_EQ(r[7].attempts, 1);
        CHECK_STR_EQ(r[7].error_kind, "retry-after-cap");
        CHECK(strstr(r[7].error_msg, "3600"));
        CHECK_EQ(r[8].attempts, 2);
        /* The server saw exactly the attempts we report ... */
        char tok[16];
        const char *letters = "abcdefgh";
        int want_hits[8] = {3, 3, 1, 2, 2, 2, 1, 2};
        for (int i = 0; i < 8; i++) {
            snprintf(tok, sizeof tok, "%c%d", letters[i], m);
            CHECK_MSG(weft_fixture_hits(fx, tok, NULL, 0) == (size_t)want_hits[i], "%s: %zu hits",
                      tok, weft_fixture_hits(fx, tok, NULL, 0));
        }
        /* ... and the Retry-After waits were respected (a lower bound; never checked above). */
        uint64_t t[2];
        snprintf(tok, sizeof tok, "e%d", m);
        CHECK_EQ(weft_fixture_hits(fx, tok, t, 2), 2);
        CHECK_MSG(t[1] - t[0] >= 1000000000ull, "Retry-After 1: retried after %.3f s",
                  (double)(t[1] - t[0]) / 1e9);
        snprintf(tok, sizeof tok, "f%d", m);
        CHECK_EQ(weft_fixture_hits(fx, tok, t, 2), 2);
        CHECK_MSG(t[1] - t[0] >= 990000000ull, "Retry-After date: retried after %.3f s",
                  (double)(t[1] - t[0]) / 1e9);
        CHECK_EQ(st.retries, 2 + 2 + 1 + 1 + 1 + 1);
        got_free(&g);
        fclose(f);
    }
    weft_fixture_stop(fx);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* True if no window of one second holds more than `rate` of the n sorted arrival times (100 ms
 * allowed for delivery jitter). */
static bool arrivals_within_rate(const uint64_t *t, size_t n, int rate)
{
    for (size_t i = 0; i + (size_t)rate < n; i++)
        if (t[i + (size_t)rate] - t[i] < 900000000ull) return false;
    return true;
}

/* --auto-throttle: without it five 300 ms pages on one host start together; with it the host
 * is paced by its latency (one in flight until the first answer, then about a latency apart). */
TEST_T(auto_throttle_paces_by_latency, 60)
{
    weft_fixture_t *fx = fixture();
    char p[5][64];
    const char *paths[5];
    for (int i = 0; i < 5; i++) {
        snprintf(p[i], sizeof p[i], "/delay/300?token=at%d", i);
        paths[i] = p[i];
    }
    FILE *f = url_file(fx, paths, 5);
    crawl_opts_t o;
    quick_opts(&o);
    o.concurrency = 10;
    o.auto_throttle = true;
    got_t g = {0};
    crawl_stats_t st;
    const crawl_result_t *r = run1(&g, &o, CRAWL_ASYNC, f, &st);
    CHECK_EQ(st.ok, 5);
    /* Start times as the scheduler took them (exact): the second starts only after the first
     * answered (its latency >= 300 ms); each later one at least half a latency after the one
     * before (the interval moves halfway from 0 towards >= 300 ms). */
    uint64_t t[5];
    for (int i = 0; i < 5; i++) t[i] = (uint64_t)(r[i + 1].start_ms * 1000);
    qsort(t, 5, sizeof t[0], cmp_u64);
    CHECK_MSG(t[1] - t[0] >= 299000, "second request %.3f s after the first",
              (double)(t[1] - t[0]) / 1e6);
    for (int i = 2; i < 5; i++)
        CHECK_MSG(t[i] - t[i - 1] >= 149000, "request %d %.3f s after the one before", i,
                  (double)(t[i] - t[i - 1]) / 1e6);
    got_free(&g);
    fclose(f);
    weft_fixture_stop(fx);
}

TEST(robots_rules)
{
    static const char txt[] = "# comment\n"
                              "User-agent: other\nDisallow: /\n\n"
                              "User-agent: *\nDisallow: /private\nAllow: /private/ok\n"
                              "Disallow: /*.pdf$\nCrawl-delay: 2.5\n\n"
                              "User-agent: WEFT\nUser-agent: x\nDisallow: /w # ours\n";
    uint64_t delay;
    crawl_robots_t *r = crawl_robots_parse(txt, sizeof txt - 1, "weft", &delay);
    CHECK(r);
    CHECK_EQ(delay, 0); /* our group has none; the "*" group does not apply to us */
    CHECK(!crawl_robots_allowed(r, "/w/x"));
    CHECK(crawl_robots_allowed(r, "/private"));
    crawl_robots_free(r);
    r = crawl_robots_parse(txt, sizeof txt - 1, "crawler", &delay);
    CHECK_EQ(delay, 2500);
    CHECK(!crawl_robots_allowed(r, "/private/x"));
    CHECK(crawl_robots_allowed(r, "/private/ok/x")); /* the longer Allow wins */
    CHECK(!crawl_robots_allowed(r, "/a/b.pdf"));
    CHECK(crawl_robots_allowed(r, "/a/b.pdf?x=1"));
    CHECK(crawl_robots_allowed(r, "/"));
    crawl_robots_free(r);
    CHECK(crawl_robots_parse("User-agent: *\nDisallow:\n", 24, "weft", &delay) == NULL);
    CHECK(crawl_robots_parse("garbage\0\xff", 9, "weft", &delay) == NULL);
}

/* A rule with NUL bytes (robots.txt is untrusted) never matches past the end of the path: the
 * matcher compared the rule's NUL with the path's terminator and read on (found by fuzz-robots
 * under ASan). The path is on the heap at its exact size, so ASan sees any read past it. */
TEST(robots_rule_with_nul_bytes_stays_inside_the_path)
{
    static const char txt[] = "User-agent: *\nDisallow: /a\0\0\0\0b\n";
    uint64_t delay;
    crawl_robots_t *r = crawl_robots_parse(txt, sizeof txt - 1, "weft", &delay);
    CHECK(r);
    char *path = strdup("/a");
    CHECK(path);
    CHECK(crawl_robots_allowed(r, path));
    free(path);
    crawl_robots_free(r);
}

/* Matching is polynomial: a rule of many "*"s that almost matches a long path took exponential
 * time (found by fuzz-robots as a timeout). The alarm only turns a hang into a failure; the
 * linear matcher needs microseconds. */
static void robots_hung(int sig)
{
    (void)sig;
    static const char msg[] = "robots matcher still running after 20 s\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(1);
}

TEST(robots_many_wildcards_match_in_polynomial_time)
{
    char txt[256] = "User-agent: *\nDisallow: /";
    for (int i = 0; i < 30; i++) strcat(txt, "*a");
    strcat(txt, "*b$\nAllow: /*a$\n");
    char path[128] = "/";
    for (int i = 0; i < 100; i++) strcat(path, "a");
    uint64_t delay;
    crawl_robots_t *r = crawl_robots_parse(txt, strlen(txt), "weft", &delay);
    CHECK(r);
    signal(SIGALRM, robots_hung);
    alarm(20);
    CHECK(crawl_robots_allowed(r, path)); /* the Allow matches, the Disallow needs a final b */
    strcat(path, "b");
    CHECK(!crawl_robots_allowed(r, path));
    CHECK(crawl_robots_allowed(r, "/ab")); /* fewer a's than the rule's 30 */
    alarm(0);
    signal(SIGALRM, SIG_DFL);
    crawl_robots_free(r);
}

/* robots.txt is fetched once per host, disallowed URLs are never requested, and Crawl-delay
 * spaces the host's requests; --ignore-robots opts out. */
TEST_T(robots_txt_obeyed, 120)
{
    weft_fixture_t *fx;
    CHECK_EQ(weft_fixture_start(&fx, &(weft_fixture_opts_t){.robots_txt =
                                                                "User-agent: *\nDisallow: /page/1\n"
                                                                "Crawl-delay: 1\n"}),
             0);
    got_t g = {0};
    crawl_stats_t st;
    for (int m = 0; m < CRAWL_NMODES; m++) {
        char p[4][64];
        const char *paths[4];
        snprintf(p[0], sizeof p[0], "/page/1?token=no%d", m);
        for (int i = 1; i < 4; i++) snprintf(p[i], sizeof p[i], "/page/%d?token=yes%d", i + 1, m);
        for (int i = 0; i < 4; i++) paths[i] = p[i];
        FILE *f = url_file(fx, paths, 4);
        crawl_opts_t o;
        quick_opts(&o);
        o.concurrency = 10;
        const crawl_result_t *r = run1(&g, &o, (crawl_mode_t)m, f, &st);
        CHECK_EQ(g.n, 4);
        CHECK_STR_EQ(r[1].error_kind, "robots");
        CHECK_EQ(st.ok, 3);
        char tok[16];
        snprintf(tok, sizeof tok, "no%d", m);
        CHECK_EQ(weft_fixture_hits(fx, tok, NULL, 0), 0);
        CHECK_EQ(weft_fixture_hits(fx, "robots.txt", NULL, 0), (size_t)m + 1);
        uint64_t t[3];
        snprintf(tok, sizeof tok, "yes%d", m);
        CHECK_EQ(weft_fixture_hits(fx, tok, t, 3), 3);
        qsort(t, 3, sizeof t[0], cmp_u64);
        CHECK_MSG(arrivals_within_rate(t, 3, 1), "Crawl-delay 1: 3 requests in %.3f s",
                  (double)(t[2] - t[0]) / 1e9);
        if (m == CRAWL_ASYNC) { /* opting out: fetched, no robots.txt request */
            o.ignore_robots = true;
            r = run1(&g, &o, (crawl_mode_t)m, f, &st);
            CHECK_EQ(st.ok, 4);
            CHECK_EQ(weft_fixture_hits(fx, "robots.txt", NULL, 0), (size_t)m + 1);
        }
        got_free(&g);
        fclose(f);
    }
    weft_fixture_stop(fx);
}

TEST_T(politeness_is_per_host, 120)
{
    weft_fixture_t *fx = fixture();
    char p[8][128];
    const char *paths[8];
    got_t g = {0};
    crawl_stats_t st;
    for (int m = 0; m < CRAWL_NMODES; m++) {
        /* A 429 with Retry-After: 2 pauses the whole host, not just its URL. */
        snprintf(p[0], sizeof p[0], "/retry-after/2/pause%d", m);
        for (int i = 1; i < 6; i++) {
            snprintf(p[i], sizeof p[i], "/page/%d?token=other%d", i, m);
            paths[i] = p[i];
        }
        paths[0] = p[0];
        FILE *f = url_file(fx, paths, 6);
        crawl_opts_t o;
        quick_opts(&o);
        o.per_host = 1;
        run1(&g, &o, (crawl_mode_t)m, f, &st);
        CHECK_EQ(st.ok, 6);
        uint64_t t429, t[5];
        char tok[16];
        snprintf(tok, sizeof tok, "pause%d", m);
        CHECK_EQ(weft_fixture_hits(fx, tok, &t429, 1), 2);
        snprintf(tok, sizeof tok, "other%d", m);
        CHECK_EQ(weft_fixture_hits(fx, tok, t, 5), 5);
        for (int i = 0; i < 5; i++)
            CHECK_MSG(t[i] >= t429 + 1900000000ull || t[i] < t429,
                      "%s mode: a request to the paused host %.3f s after the 429",
                      crawl_mode_name((crawl_mode_t)m), (double)(t[i] - t429) / 1e9);
        got_free(&g);
        fclose(f);
    }
    /* Every redirect hop takes a rate token: 4 redirects + the page at --rate 2. */
    crawl_opts_t o;
    quick_opts(&o);
    o.rate = 2;
    paths[0] = "/redirect-tok/4/hops";
    FILE *f = url_file(fx, paths, 1);
    const crawl_result_t *r = run1(&g, &o, CRAWL_ASYNC, f, &st);
    CHECK_EQ(r[1].status, 200);
    CHECK_EQ(r[1].redirects, 4);
    CHECK_EQ(r[1].attempts, 1);
    uint64_t t[8];
    CHECK_EQ(weft_fixture_hits(fx, "hops", t, 8), 5);
    CHECK_MSG(arrivals_within_rate(t, 5, 2), "redirect hops at more than 2/s: %.3f s for 5",
              (double)(t[4] - t[0]) / 1e9);
    got_free(&g);
    fclose(f);
    /* The host is the server: localhost and 127.0.0.1 share one bucket. */
    const char *port = strrchr(weft_fixture_url(fx), ':') + 1;
    for (int i = 0; i < 6; i++) {
        snprintf(p[i], sizeof p[i], "http://%s:%s/page/%d?token=spell",
                 i % 2 ? "localhost" : "127.0.0.1", port, i);
        paths[i] = p[i];
    }
    f = url_file(fx, paths, 6);
    o.rate = 3;
    run1(&g, &o, CRAWL_ASYNC, f, &st);
    CHECK_EQ(st.ok, 6);
    CHECK_EQ(weft_fixture_hits(fx, "spell", t, 8), 6);
    qsort(t, 6, sizeof t[0], cmp_u64);
    CHECK_MSG(arrivals_within_rate(t, 6, 3), "two spellings of one server: 6 requests in %.3f s",
              (double)(t[5] - t[0]) / 1e9);
    got_free(&g);
    fclose(f);
    weft_fixture_stop(fx);
}

TEST_T(rate_limit_and_per_host, 120)
{
    weft_fixture_t *fx = fixture();
    enum { N = 8, RATE = 5 };
    for (int m = 0; m < CRAWL_NMODES; m++) {
        char p[N][64];
        const char *paths[N];
        for (int i = 0; i < N; i++) {
            snprintf(p[i], sizeof p[i], "/page/%d?token=rate%d", i, m);
            paths[i] = p[i];
        }
        FILE *f = url_file(fx, paths, N);
        crawl_opts_t o;
        quick_opts(&o);
        o.rate = RATE;
        o.concurrency = 20;
        o.threads = 5;
        got_t g = {0};
        crawl_stats_t st;
        const crawl_result_t *r = run1(&g, &o, (crawl_mode_t)m, f, &st);
        CHECK_EQ(st.ok, N);
        /* Client side, exactly: starts on one host are >= 1/R apart, so any R + 1 consecutive
         * starts span at least one second. */
        double s[N];
        for (int i = 0; i < N; i++) s[i] = r[i + 1].start_ms;
        for (int i = 0; i < N; i++)
            for (int k = i + 1; k < N; k++)
                if (s[k] < s[i]) {
                    double x = s[i];
                    s[i] = s[k];
                    s[k] = x;
                }
        for (int i = 0; i + RATE < N; i++)
            CHECK_MSG(s[i + RATE] - s[i] >= 1000.0 - 0.01, "%d starts within %.1f ms", RATE + 1,
                      s[i + RATE] - s[i]);
        /* Server side, as the fixture saw the requests arrive: no window of one second holds
         * more than R (with 100 ms allowed for delivery jitter on a loaded machine). */
        uint64_t t[N];
        char tok[16];
        snprintf(tok, sizeof tok, "rate%d", m);
        CHECK_EQ(weft_fixture_hits(fx, tok, t, N), N);
        qsort(t, N, sizeof t[0], cmp_u64);
        for (int i = 0; i + RATE < N; i++)
            CHECK_MSG(t[i + RATE] - t[i] >= 900000000ull, "%d arrivals within %.3f s", RATE + 1,
                      (double)(t[i + RATE] - t[i]) / 1e9);
        got_free(&g);
        fclose(f);
    }
    /* --per-host 2: never more than two in flight on the one host, in any mode. */
    const char *delays[10];
    for (int i = 0; i < 10; i++) delays[i] = "/delay/100";
    FILE *f = url_file(fx, delays, 10);
    crawl_opts_t o;
    quick_opts(&o);
    o.per_host = 2;
    o.concurrency = 10;
    for (int m = 1; m < CRAWL_NMODES; m++) {
        got_t g = {0};
        crawl_stats_t st;
        run1(&g, &o, (crawl_mode_t)m, f, &st);
        CHECK_EQ(st.ok, 10);
        CHECK_EQ(st.max_inflight, 2);
        got_free(&g);
    }
    fclose(f);
    weft_fixture_stop(fx);
}

/* By default a host gets at most 8 connections (curl's CURLMOPT_MAX_HOST_CONNECTIONS, Scrapy's
 * CONCURRENT_REQUESTS_PER_DOMAIN), whatever the mode's own parallelism: counted by the fixture,
 * which sees every connection open and close. */
TEST_T(per_host_connection_cap_by_default, 120)
{
    enum { N = 40 };
    for (int m = 1; m < CRAWL_NMODES; m++) {
        weft_fixture_t *fx = fixture();
        const char *paths[N];
        for (int i = 0; i < N; i++) paths[i] = "/delay/300";
        FILE *f = url_file(fx, paths, N);
        crawl_opts_t o;
        quick_opts(&o);
        o.threads = 20;
        got_t g = {0};
        crawl_stats_t st;
        run1(&g, &o, (crawl_mode_t)m, f, &st);
        CHECK_EQ(st.ok, N);
        size_t peak = weft_fixture_peak_connections(fx, 0);
        CHECK_MSG(peak >= 2 && peak <= 8, "%s mode: %zu connections at once to one host",
                  crawl_mode_name((crawl_mode_t)m), peak);
        CHECK_EQ(st.max_inflight, 8);
        got_free(&g);
        fclose(f);
        weft_fixture_stop(fx);
    }
}

/* ---- the command: output files and the report ---- */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    CHECK(f);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

TEST_T(command_outputs_and_report, 120)
{
    weft_fixture_t *fx = fixture();
    const char *paths[] = {"/xss", "/page/3", "/status/500", "bad url", "/formula"};
    FILE *f = url_file(fx, paths, 5);
    fclose(f);
    char urls[512], jsonl[512], csv[512], report[512];
    snprintf(urls, sizeof urls, "%s/urls.txt", weft_test_tmpdir());
    snprintf(jsonl, sizeof jsonl, "%s/out.jsonl", weft_test_tmpdir());
    snprintf(csv, sizeof csv, "%s/out.csv", weft_test_tmpdir());
    snprintf(report, sizeof report, "%s/report.html", weft_test_tmpdir());
    char *argv[] = {"crawl",      "--mode", "all",     "-q",  "--no-summary", "--no-progress",
                    "--attempts", "1",      "--jsonl", jsonl, "--csv",        csv,
                    "--report",   report,   urls,      NULL};
    fflush(stdout);
    CHECK_EQ(crawl_cmd(14 + 1, argv), 1); /* some pages failed */

    /* JSON Lines: one record per URL and mode, with the documented fields. */
    json_error_t err;
    FILE *jf = fopen(jsonl, "r");
    CHECK(jf);
    char line[8192];
    int records = 0, xss = 0;
    while (fgets(line, sizeof line, jf)) {
        json_t *j = json_loads(line, 0, &err);
        CHECK_MSG(j, "bad JSON: %s", err.text);
        static const char *const fields[] = {"url",   "final_url", "status", "title", "description",
                                             "bytes", "attempts",  "ms",     "error"};
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
            CHECK_MSG(json_object_get(j, fields[i]), "no field %s", fields[i]);
        const char *t = json_string_value(json_object_get(j, "title"));
        if (t && strcmp(t, "<script>alert(1)</script>") == 0) xss++;
        json_decref(j);
        records++;
    }
    fclose(jf);
    CHECK_EQ(records, 15);
    CHECK_EQ(xss, 3);
    char *c = slurp(csv);
    static const char header[] = "mode,line,url,final_url,status,title,description,bytes,"
                                 "attempts,ms,queued_ms,error\n";
    CHECK(strncmp(c, header, strlen(header)) == 0);
    /* Formulas are inert ('=...), bidi overrides neutralised, in the CSV and the report. */
    CHECK(strstr(c, ",\"'=HYPERLINK(") != NULL);
    CHECK(strstr(c, ",'@SUM(1+1) txt.\xEF\xBF\xBD"
                    "exe.doc,") != NULL);
    CHECK(strstr(c, ",=") == NULL && strstr(c, ",\"=") == NULL && strstr(c, ",@") == NULL);
    CHECK(strstr(c, "\xE2\x80\xAE") == NULL);
    /* The report escapes the title: no live markup from a page. Its charts are data for the
     * embedded uPlot; the only scripts are uPlot's and charts.js (tests/crawl/report.sh draws
     * them in a browser). */
    char *h = slurp(report);
    CHECK(strstr(h, "<figure class=\"weft-chart\"><script type=\"application/json\">") != NULL);
    CHECK(strstr(h, "<script>alert") == NULL);
    CHECK(strstr(h, "&lt;script&gt;alert(1)&lt;/script&gt;") != NULL);
    CHECK(strstr(h, "onerror") == NULL || strstr(h, "<img") == NULL);
    CHECK(strstr(h, "\xE2\x80\xAE") == NULL);
    /* No limits given: the header says so rather than "per-host 0, rate 0/s". */
    CHECK(strstr(h, "per-host limit 8, rate limit none") != NULL);
    weft_fixture_stop(fx);
}

/* ---- the table on hostile text ---- */

/* Display column at which `mark` starts in `line`. */
static size_t col_of(const char *line, const char *mark)
{
    const char *end = strstr(line, mark);
    CHECK(end);
    return weft_utf8_width(line, (size_t)(end - line));
}

/* The URL column is padded by counting what weft_cli_put_safe printed: the titles line up
 * whatever bytes the URL holds (bad leads 0xF5.., overlongs, surrogates, truncated tails, wide
 * and combining characters, a long wide URL cut at the column's edge). */
TEST(table_aligns_on_invalid_utf8)
{
    static const char *const urls[] = {
        "http://a/plain",
        "http://a/\xF5\x80\x80\x80",
        "http://a/\xE0\x80\x80x",
        "http://a/\xED\xA0\x80",
        "http://a/\xF0\x90\x80",
        "http://a/\xC0\xAF\xFF",
        "http://a/\xE6\x97\xA5\xE6\x9C\xAC",
        "http://a/e\xCC\x81",
        "http://a/\xE2\x80\xAEtxt.exe\xE2\x81\xA6", /* bidi overrides: shown as U+FFFD */
        "http://a/\xE6\x97\xA5\xE6\x97\xA5\xE6\x97\xA5\xE6\x97\xA5\xE6\x97\xA5\xE6\x97\xA5"
        "\xE6\x97\xA5\xE6\x97\xA5\xE6\x97\xA5\xE6\x97\xA5\xE6\x97\xA5\xE6\x97\xA5"
        "\xE6\x97\xA5\xE6\x97\xA5\xE6\x97\xA5\xE6\x97\xA5\xE6\x97\xA5",
    };
    enum { N = sizeof urls / sizeof urls[0] };
    char name[512];
    snprintf(name, sizeof name, "%s/table.txt", weft_test_tmpdir());
    fflush(stdout);
    int saved = dup(1);
    FILE *f = fopen(name, "w+");
    CHECK(f && saved >= 0);
    CHECK(dup2(fileno(f), 1) == 1);
    crawl_opts_t o;
    quick_opts(&o);
    o.table = true;
    crawl_out_t *out;
    CHECK_EQ(crawl_out_open(&out, &o), 0);
    for (int i = 0; i < N; i++) {
        crawl_result_t r = {.line = (uint64_t)i + 1,
                            .url = (char *)urls[i],
                            .status = 200,
                            .title = "TITLE",
                            .attempts = 1};
        crawl_out_result(out, CRAWL_SEQ, &r);
    }
    CHECK_EQ(crawl_out_close(out), 0);
    fflush(stdout);
    CHECK(dup2(saved, 1) == 1);
    close(saved);
    rewind(f);
    char line[1024];
    size_t want = 0;
    int rows = 0;
    while (fgets(line, sizeof line, f)) {
        if (!strstr(line, "TITLE")) continue;
        size_t c = col_of(line, "TITLE");
        if (rows++ == 0) want = c;
        CHECK_MSG(c == want, "row %d: title at column %zu, want %zu: %s", rows, c, want, line);
        CHECK(strstr(line, "\xE2\x80\xAE") == NULL && strstr(line, "\xE2\x81\xA6") == NULL);
    }
    CHECK_EQ(rows, N);
    fclose(f);
}

/* ---- the host table ---- */

/* A dispatcher over the lines written to `f`, with `window` URLs read ahead. */
static crawl_dispatch_t *dispatch_over(FILE *f, const crawl_opts_t *o, size_t window,
                                       crawl_input_t **in)
{
    rewind(f);
    CHECK_EQ(crawl_input_open(in, f), 0);
    crawl_dispatch_t *d;
    CHECK_EQ(crawl_dispatch_create(&d, o, *in, window), 0);
    return d;
}

static void dispatch_end(crawl_dispatch_t *d, crawl_input_t *in, FILE *f)
{
    crawl_dispatch_destroy(d);
    crawl_input_close(in);
    fclose(f);
}

/* Thousands of distinct hosts through a small window: the idle ones are swept from the host
 * table (a weft_htab) while it is in use, and every URL comes out once, in input order. */
TEST(dispatch_sweeps_idle_hosts_and_keeps_order)
{
    enum { N = 3000 };
    FILE *f = tmpfile();
    CHECK(f);
    for (int i = 0; i < N; i++) fprintf(f, "http://h%d.test:%d/p%d\n", i % 2000, 80 + i % 3, i);
    crawl_opts_t o;
    quick_opts(&o);
    o.per_host = 1;
    o.ignore_robots = true; /* hosts are forgotten only when their robots.txt need not be kept */
    crawl_input_t *in;
    crawl_dispatch_t *d = dispatch_over(f, &o, 4, &in);
    uint64_t line = 0, now = weft_now_ns();
    while (!crawl_dispatch_idle(d)) {
        uint64_t wake;
        crawl_item_t *it = crawl_dispatch_next(d, now, &wake);
        CHECK_MSG(it != NULL, "stalled after line %llu", (unsigned long long)line);
        CHECK(it->invalid == NULL);
        CHECK_EQ(it->res.line, line + 1);
        line = it->res.line;
        crawl_dispatch_attempt_done(d, it);
        crawl_dispatch_release(d, it);
    }
    CHECK_EQ(line, N);
    CHECK_EQ(crawl_dispatch_error(d), 0);
    dispatch_end(d, in, f);
}

/* A resolver that answers later, as the pool does: records what it was asked. */
typedef struct fake_dns {
    int asked;
    char names[8][64];
} fake_dns_t;

static int fake_resolve(void *arg, const char *name, char *addr, size_t size)
{
    (void)addr;
    (void)size;
    fake_dns_t *f = arg;
    CHECK(f->asked < 8);
    snprintf(f->names[f->asked++], sizeof f->names[0], "%s", name);
    return 0;
}

/* Every name is keyed by its address: two names of one server share its limits, whichever
 * resolver path answers; other hosts go on while a name is being resolved; a name that does not
 * resolve keeps its spelling. */
TEST(dispatch_keys_names_by_resolved_address)
{
    FILE *f = tmpfile();
    CHECK(f);
    fprintf(f, "http://www.a.test:8080/1\nhttp://B.test:8080/2\nhttp://127.0.0.9:80/3\n"
               "http://gone.test/4\nhttp://www.a.test:8080/5\n");
    crawl_opts_t o;
    quick_opts(&o);
    o.per_host = 1;
    o.ignore_robots = true;
    crawl_input_t *in;
    crawl_dispatch_t *d = dispatch_over(f, &o, 16, &in);
    fake_dns_t dns = {0};
    crawl_dispatch_set_resolver(d, fake_resolve, &dns);
    uint64_t wake, now = weft_now_ns();
    /* Only the address literal may start: the names wait for their answers, each asked once. */
    crawl_item_t *lit = crawl_dispatch_next(d, now, &wake);
    CHECK(lit && lit->res.line == 3);
    CHECK(crawl_dispatch_next(d, now, &wake) == NULL);
    CHECK_EQ(dns.asked, 3);
    CHECK(strcmp(dns.names[0], "www.a.test") == 0 && strcmp(dns.names[1], "b.test") == 0 &&
          strcmp(dns.names[2], "gone.test") == 0);
    crawl_dispatch_resolved(d, "www.a.test", "127.0.0.5");
    crawl_dispatch_resolved(d, "b.test", "127.0.0.5");
    crawl_dispatch_resolved(d, "gone.test", NULL);
    /* One server: with --per-host 1, line 2 waits for line 1 although its name differs. */
    crawl_item_t *a = crawl_dispatch_next(d, now, &wake);
    crawl_item_t *g = crawl_dispatch_next(d, now, &wake);
    CHECK(a && a->res.line == 1);
    CHECK(g && g->res.line == 4); /* its own host: the spelling */
    CHECK(crawl_dispatch_next(d, now, &wake) == NULL);
    crawl_dispatch_attempt_done(d, a);
    crawl_dispatch_release(d, a);
    /* Then lines 5 and 2 (queued in the order their names answered), one at a time. */
    crawl_item_t *b = crawl_dispatch_next(d, now, &wake);
    CHECK(b && b->res.line == 5);
    CHECK(crawl_dispatch_next(d, now, &wake) == NULL);
    CHECK_EQ(dns.asked, 3); /* cached */
    for (crawl_item_t *its[] = {b, g, lit}, **p = its; p < its + 3; p++) {
        crawl_dispatch_attempt_done(d, *p);
        crawl_dispatch_release(d, *p);
    }
    crawl_item_t *last = crawl_dispatch_next(d, now, &wake);
    CHECK(last && last->res.line == 2);
    crawl_dispatch_attempt_done(d, last);
    crawl_dispatch_release(d, last);
    CHECK(crawl_dispatch_idle(d));
    dispatch_end(d, in, f);
}

/* The real resolver (getaddrinfo): the names of /etc/hosts and literals alike. */
TEST(resolve_names)
{
    char a[64];
    CHECK_EQ(crawl_resolve("localhost", a, sizeof a), 0);
    CHECK(strcmp(a, "127.0.0.1") == 0);
    CHECK_EQ(crawl_resolve("127.1", a, sizeof a), 0);
    CHECK(strcmp(a, "127.0.0.1") == 0);
}

/* Robots.txt is kept for the --robots-cache most recently used idle hosts: a crawl across
 * thousands of hosts holds a bounded host table; a recent host is not asked again, a forgotten
 * one is. */
TEST(dispatch_bounds_hosts_kept_for_robots)
{
    enum { N = 2000, CACHE = 16, WINDOW = 4 };
    FILE *f = tmpfile();
    CHECK(f);
    for (int i = 0; i < N; i++) fprintf(f, "http://127.0.%d.%d/p\n", i / 250, i % 250 + 1);
    fprintf(f, "http://127.0.%d.%d/again\nhttp://127.0.0.1/again\n", (N - 2) / 250,
            (N - 2) % 250 + 1);
    crawl_opts_t o;
    quick_opts(&o);
    o.robots_cache = CACHE;
    crawl_input_t *in;
    crawl_dispatch_t *d = dispatch_over(f, &o, WINDOW, &in);
    size_t most = 0, robots = 0, robots_at_end = 0, pages = 0;
    uint64_t line = 0;
    while (!crawl_dispatch_idle(d)) {
        uint64_t wake;
        crawl_item_t *it = crawl_dispatch_next(d, weft_now_ns(), &wake);
        CHECK_MSG(it != NULL, "stalled after line %llu", (unsigned long long)line);
        if (crawl_dispatch_hosts(d) > most) most = crawl_dispatch_hosts(d);
        crawl_dispatch_attempt_done(d, it);
        if (it->robots) {
            robots++;
            if (line >= N) robots_at_end++;
            it->robots_body = strdup("User-agent: *\nDisallow: /private\n");
            it->robots_len = strlen(it->robots_body);
            crawl_dispatch_robots_done(d, it);
        } else {
            line = it->res.line > line ? it->res.line : line;
            pages++;
        }
        crawl_dispatch_release(d, it);
    }
    CHECK_EQ(pages, N + 2);
    CHECK_MSG(most <= CACHE + 4 * WINDOW, "%zu hosts held at once", most);
    /* One robots.txt per host, and once more for the host forgotten long ago. */
    CHECK_EQ(robots, N + 1);
    CHECK_EQ(robots_at_end, 1);
    dispatch_end(d, in, f);
}

/* The plain-URL fast path of crawl_url_check agrees with libcurl's parser on every URL, plain
 * or not (the others go to libcurl anyway). */
TEST(url_check_fast)
{
    static const char *const urls[] = {
        "http://127.0.0.1:8080/1.html",
        "https://Example.COM",
        "http://a-b.c/x?y#z",
        "http://a.b:65535/",
        "http://a.b:65536/",
        "http://a.b:0/",
        "http://a.b:080/",
        "http://a.b:/",
        "http://127.1/",
        "http://127.0.0.01/",
        "http://256.1.1.1/",
        "http://1.2.3.4.5/",
        "http://12345/",
        "http://0x7f.0.0.1/",
        "http://a..b/",
        "http://.a/",
        "http://a./",
        "http://-a.b/",
        "http://a.-b/",
        "http://a.b-/",
        "http://a.1b/",
        "http://user@a.b/",
        "http://a_b.c/",
        "http://[::1]:8080/",
        "HTTP://a.b/",
        "http:/a.b",
        "http://a.b?q",
        "http://a.b#f",
        "http://a.b\\c",
        "http://xn--nxasmq6b.com/",
        "http://caf\xC3\xA9.fr/",
        "http://a%41.b/",
        "https://a.b:443/",
        "http://localhost/",
        "https://x:1",
        "http://a.b:99999/",
        "http://",
        "ftp://a.b/",
    };
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        char fast[CRAWL_HOSTKEY_MAX], slow[CRAWL_HOSTKEY_MAX];
        const char *a = crawl_url_check(urls[i], fast), *b = crawl_url_check_curl(urls[i], slow);
        CHECK_MSG((a == NULL) == (b == NULL), "%s: %s vs libcurl's %s", urls[i], a ? a : "ok",
                  b ? b : "ok");
        if (!a && !b) CHECK_MSG(strcmp(fast, slow) == 0, "%s: %s vs %s", urls[i], fast, slow);
    }
}

/* --per-host caps connections: once a host has answered over HTTP/2 (async mode: its transfers
 * share one connection), its requests are no longer capped. */
TEST(dispatch_http2_host_not_capped)
{
    FILE *f = tmpfile();
    CHECK(f);
    for (int i = 0; i < 4; i++) fprintf(f, "https://127.0.0.7/%d\n", i);
    crawl_opts_t o;
    quick_opts(&o);
    o.per_host = 1;
    o.ignore_robots = true;
    crawl_input_t *in;
    crawl_dispatch_t *d = dispatch_over(f, &o, 8, &in);
    uint64_t wake, now = weft_now_ns();
    crawl_item_t *a = crawl_dispatch_next(d, now, &wake);
    CHECK(a != NULL);
    CHECK(crawl_dispatch_next(d, now, &wake) == NULL); /* HTTP/1.1 so far: one connection */
    a->http_version = 20;
    crawl_dispatch_attempt_done(d, a);
    crawl_dispatch_release(d, a);
    crawl_item_t *its[3];
    for (int i = 0; i < 3; i++) CHECK((its[i] = crawl_dispatch_next(d, now, &wake)) != NULL);
    for (int i = 0; i < 3; i++) {
        crawl_dispatch_attempt_done(d, its[i]);
        crawl_dispatch_release(d, its[i]);
    }
    CHECK(crawl_dispatch_idle(d));
    dispatch_end(d, in, f);
}

/* With a rate limit a host is not forgotten when its last URL ends (its bucket is not full):
 * thousands of such hosts pile up until a sweep moves them to the idle list, which evicts the
 * oldest while the sweep runs. Time is simulated (`now` jumps to the next wake-up). */
TEST(dispatch_sweep_with_robots_and_rate)
{
    enum { N = 3000, CACHE = 16, WINDOW = 4 };
    FILE *f = tmpfile();
    CHECK(f);
    for (int i = 0; i < N; i++) fprintf(f, "http://127.1.%d.%d/p\n", i / 250, i % 250 + 1);
    crawl_opts_t o;
    quick_opts(&o);
    o.robots_cache = CACHE;
    o.rate = 1;
    crawl_input_t *in;
    crawl_dispatch_t *d = dispatch_over(f, &o, WINDOW, &in);
    uint64_t now = weft_now_ns(), wake;
    size_t pages = 0, most = 0;
    while (!crawl_dispatch_idle(d)) {
        crawl_item_t *it = crawl_dispatch_next(d, now, &wake);
        if (!it) {
            CHECK(wake != UINT64_MAX);
            now = wake;
            continue;
        }
        if (crawl_dispatch_hosts(d) > most) most = crawl_dispatch_hosts(d);
        crawl_dispatch_attempt_done(d, it);
        if (it->robots)
            crawl_dispatch_robots_done(d, it);
        else
            pages++;
        crawl_dispatch_release(d, it);
    }
    CHECK_EQ(pages, N);
    CHECK_MSG(most <= 4 * WINDOW + CACHE + 1024 + 2, "%zu hosts held at once", most);
    dispatch_end(d, in, f);
}
