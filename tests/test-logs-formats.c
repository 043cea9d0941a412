/* Tests for the log formats of `weft logs` (tools/logs/format*.c): each preset on the sample lines
 * of its own documentation, detection, W3C headers (also repeated mid-file), Apache LogFormat
 * strings, Caddy's JSON, malformed lines, and the same statistics as the equivalent nginx format
 * on the same requests written in each format. */
#include "harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft/buf.h>

#include "logs/format.h"
#include "logs/gen.h"
#include "logs/run.h"
#include "logs/stats.h"

/* ---- the documented sample lines ------------------------------------------------------------ */

/* Microsoft's example of a W3C extended log file (IIS). */
static const char iis_doc[] =
    "#Software: Microsoft Internet Information Services 6.0\n"
    "#Version: 1.0\n"
    "#Date: 2002-05-02 17:42:15\n"
    "#Fields: date time c-ip cs-username s-ip s-port cs-method cs-uri-stem cs-uri-query sc-status "
    "cs(User-Agent)\n"
    "2002-05-02 17:42:15 172.22.255.255 - 172.30.255.255 80 GET /images/picture.jpg - 200 "
    "Mozilla/4.0+(compatible;MSIE+5.5;+Windows+2000+Server)\n";

/* AWS's example of a CloudFront standard log file (the first entry). */
#define CF_FIELDS                                                                                  \
    "date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status "            \
    "cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id "     \
    "x-host-header cs-protocol cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher "       \
    "x-edge-response-result-type cs-protocol-version fle-status fle-encrypted-fields c-port "      \
    "time-to-first-byte x-edge-detailed-result-type sc-content-type sc-content-len "               \
    "sc-range-start sc-range-end"
#define CF_ENTRY                                                                                   \
    "2019-12-04\t21:02:31\tLAX1\t392\t192.0.2.100\tGET\td111111abcdef8.cloudfront.net\t/"          \
    "index.html\t200\t-\tMozilla/5.0%20(Windows%20NT%2010.0;%20Win64;%20x64)%20AppleWebKit/"       \
    "537.36%20(KHTML,%20like%20Gecko)%20Chrome/78.0.3904.108%20Safari/"                            \
    "537.36\t-\t-\tHit\tSOX4xwn4X"                                                                 \
    "V6Q4rgb7XiVGOHms_BGlTAC4KyHmureZmBNrjGdRLiNIQ==\td111111abcdef8.cloudfront."                  \
    "net\thttps\t23\t0."                                                                           \
    "001\t-\tTLSv1.2\tECDHE-RSA-AES128-GCM-SHA256\tHit\tHTTP/2.0\t-\t-\t11040\t0.001\tHit\ttext/"  \
    "html\t78\t-\t-"
static const char cf_doc[] = "#Version: 1.0\n#Fields: " CF_FIELDS "\n" CF_ENTRY "\n";

/* AWS's examples: Classic Load Balancer, Application Load Balancer, S3 server access log. */
static const char elb_doc[] =
    "2015-05-13T23:39:43.945958Z my-loadbalancer 192.168.131.39:2817 10.0.0.1:80 0.000073 "
    "0.001048 0.000057 200 200 0 29 \"GET http://www.example.com:80/ HTTP/1.1\" \"curl/7.38.0\" - "
    "-\n";
static const char alb_doc[] =
    "http 2018-07-02T22:23:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 192.168.131.39:2817 "
    "10.0.0.1:80 0.000 0.001 0.000 200 200 34 366 \"GET http://www.example.com:80/ HTTP/1.1\" "
    "\"curl/7.46.0\" - - arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/"
    "my-targets/73e2d6bc24d8a067 \"Root=1-58337262-36d228ad5d99923122bbe354\" \"-\" \"-\" 0 "
    "2018-07-02T22:22:48.364000Z \"forward\" \"-\" \"-\" \"10.0.0.1:80\" \"200\" \"-\" \"-\" "
    "TID_1234abcd5678ef90\n";
static const char s3_doc[] =
    "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be awsexamplebucket1 "
    "[06/Feb/2019:00:00:38 +0000] 192.0.2.3 "
    "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be 3E57427F3EXAMPLE "
    "REST.GET.VERSIONING - \"GET /awsexamplebucket1?versioning HTTP/1.1\" 200 - 113 - 7 - \"-\" "
    "\"S3Console/0.4\" - s9lzHYrFp76ZVxRcpX9+5cjAnEH2ROuNkd2BHfIa6UkFVdtjf5mKR3/eTPFvsiP/XV/"
    "VLi31234= SigV2 ECDHE-RSA-AES128-GCM-SHA256 AuthHeader "
    "awsexamplebucket1.s3.us-west-1.amazonaws.com TLSV1.1\n";

/* Caddy's documentation (docs/logging, structured logs) on one line. */
static const char caddy_doc[] =
    "{\"level\":\"info\",\"ts\":1646861401.5241024,\"logger\":\"http.log.access\",\"msg\":"
    "\"handled request\",\"request\":{\"remote_ip\":\"127.0.0.1\",\"remote_port\":\"41342\","
    "\"client_ip\":\"127.0.0.1\",\"proto\":\"HTTP/2.0\",\"method\":\"GET\",\"host\":\"localhost\","
    "\"uri\":\"/\",\"headers\":{\"User-Agent\":[\"curl/7.82.0\"],\"Accept\":[\"*/*\"],"
    "\"Accept-Encoding\":[\"gzip, deflate, br\"]},\"tls\":{\"resumed\":false,\"version\":772,"
    "\"cipher_suite\":4865,\"proto\":\"h2\",\"server_name\":\"example.com\"}},\"bytes_read\":0,"
    "\"user_id\":\"\",\"duration\":0.000929675,\"size\":10900,\"status\":200,\"resp_headers\":{"
    "\"Server\":[\"Caddy\"],\"Content-Encoding\":[\"gzip\"],\"Content-Type\":[\"text/html; "
    "charset=utf-8\"],\"Vary\":[\"Accept-Encoding\"]}}\n";

/* Traefik's documented CLF layout, filled with Apache's CLF example request. */
static const char traefik_doc[] =
    "192.168.2.1 - - [10/Oct/2000:13:55:36 -0700] \"GET /apache_pb.gif HTTP/1.0\" 200 2326 "
    "\"http://www.example.com/start.html\" \"Mozilla/4.08 [en] (Win98; I ;Nav)\" 1 "
    "\"Host-example-com-0\" \"http://10.0.0.2:80\" 7ms\n";

/* Apache's vhost_combined (%v:%p %h %l %u %t \"%r\" %>s %O \"%{Referer}i\" \"%{User-Agent}i\"). */
static const char vcombined_doc[] =
    "www.example.com:80 127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET /apache_pb.gif "
    "HTTP/1.0\" 200 2326 \"http://www.example.com/start.html\" \"Mozilla/4.08 [en] (Win98; I "
    ";Nav)\"\n";

static bool slice_is(const char *s, size_t n, const char *want)
{
    return s && n == strlen(want) && memcmp(s, want, n) == 0;
}

/* The first entry line of `doc` (after any # directives), without its newline. */
static void entry_line(const char *doc, const char **p, const char **e)
{
    while (*doc == '#') doc = strchr(doc, '\n') + 1;
    *p = doc;
    *e = strchr(doc, '\n');
}

typedef struct want {
    const char *name, *doc;
    uint32_t ip4;
    int y, mon, d, hour, minute, off, status;
    uint64_t bytes;
    int64_t rt_us;
    const char *path, *method, *protocol, *vhost, *referrer, *ua;
} want_t;

static const want_t wants[] = {
    {"w3c", iis_doc, 0xAC16FFFF, 2002, 5, 2, 17, 42, 0, 200, 0, -1, "/images/picture.jpg", "GET",
     NULL, NULL, NULL, "Mozilla/4.0+(compatible;MSIE+5.5;+Windows+2000+Server)"},
    {"cloudfront", cf_doc, 0xC0000264, 2019, 12, 4, 21, 2, 0, 200, 392, 1000, "/index.html", "GET",
     "HTTP/2.0", "d111111abcdef8.cloudfront.net", "-",
     "Mozilla/5.0%20(Windows%20NT%2010.0;%20Win64;%20x64)%20AppleWebKit/537.36%20(KHTML,%20like%"
     "20Gecko)%20Chrome/78.0.3904.108%20Safari/537.36"},
    {"elb", elb_doc, 0xC0A88327, 2015, 5, 13, 23, 39, 0, 200, 29, 1048,
     "http://www.example.com:80/", "GET", "HTTP/1.1", NULL, NULL, "curl/7.38.0"},
    {"alb", alb_doc, 0xC0A88327, 2018, 7, 2, 22, 23, 0, 200, 366, 1000,
     "http://www.example.com:80/", "GET", "HTTP/1.1", "-", NULL, "curl/7.46.0"},
    {"s3", s3_doc, 0xC0000203, 2019, 2, 6, 0, 0, 0, 200, 113, 7000, "/awsexamplebucket1", "GET",
     "HTTP/1.1", "awsexamplebucket1", "-", "S3Console/0.4"},
    {"caddy", caddy_doc, 0x7F000001, 2022, 3, 9, 21, 30, 0, 200, 10900, 929, "/", "GET", "HTTP/2.0",
     "localhost", NULL, "curl/7.82.0"},
    {"traefik", traefik_doc, 0xC0A80201, 2000, 10, 10, 13, 55, -420, 200, 2326, 7000,
     "/apache_pb.gif", "GET", "HTTP/1.0", "Host-example-com-0", "http://www.example.com/start.html",
     "Mozilla/4.08 [en] (Win98; I ;Nav)"},
    {"vcombined", vcombined_doc, 0x7F000001, 2000, 10, 10, 13, 55, -420, 200, 2326, -1,
     "/apache_pb.gif", "GET", "HTTP/1.0", "www.example.com", "http://www.example.com/start.html",
     "Mozilla/4.08 [en] (Win98; I ;Nav)"},
};

static void check_rec(const want_t *w, const weft_logs_rec_t *r)
{
    CHECK_MSG(r->family == 4 && r->ip4 == w->ip4, "%s: ip %08x", w->name, r->ip4);
    CHECK_MSG(r->date == WEFT_LOGS_DATE(w->y, w->mon, w->d), "%s: date %d-%d-%d", w->name,
              WEFT_LOGS_DATE_Y(r->date), WEFT_LOGS_DATE_M(r->date), WEFT_LOGS_DATE_D(r->date));
    CHECK_MSG(r->hour == w->hour && r->minute == w->minute, "%s: %d:%d", w->name, r->hour,
              r->minute);
    CHECK_MSG(r->utc_off_min == w->off, "%s: offset %d", w->name, r->utc_off_min);
    CHECK_MSG(r->status == w->status, "%s: status %d", w->name, r->status);
    CHECK_MSG(r->bytes == w->bytes, "%s: bytes %llu", w->name, (unsigned long long)r->bytes);
    CHECK_MSG(r->rt_us == w->rt_us, "%s: rt %lld", w->name, (long long)r->rt_us);
    CHECK_MSG(slice_is(r->path, r->path_len, w->path), "%s: path", w->name);
#define SLICE(field, want)                                                                         \
    CHECK_MSG(want ? slice_is(r->field, r->field##_len, want) : r->field == NULL, "%s: %s",        \
              w->name, #field)
    SLICE(method, w->method);
    SLICE(protocol, w->protocol);
    SLICE(vhost, w->vhost);
    SLICE(referrer, w->referrer);
    SLICE(user_agent, w->ua);
#undef SLICE
}

TEST(each_format_parses_its_documented_sample)
{
    for (size_t i = 0; i < sizeof wants / sizeof wants[0]; i++) {
        const want_t *w = &wants[i];
        weft_logs_format_t f;
        char err[160];
        /* detected from the sample alone, by name (W3C: its #Fields: line) */
        CHECK_EQ(weft_logs_format_detect(w->doc, strlen(w->doc), &f), 0);
        CHECK_MSG(strcmp(f.name, w->name) == 0, "%s detected as %s", w->name, f.name);
        const char *p, *e;
        entry_line(w->doc, &p, &e);
        weft_logs_rec_t r;
        CHECK_MSG(weft_logs_parse_line(&f, p, e, &r), "%s: sample not parsed", w->name);
        check_rec(w, &r);
        /* the preset by name gives the same (W3C: after reading the header) */
        CHECK_EQ(weft_logs_format_compile(w->name, &f, err, sizeof err), 0);
        weft_logs_format_t g;
        CHECK_EQ(weft_logs_format_for_input(&f, w->doc, strlen(w->doc), &g), 0);
        CHECK_MSG(weft_logs_parse_line(&g, p, e, &r), "%s: not parsed by name", w->name);
        check_rec(w, &r);
        /* the format of a worker process: compiled again from its spec */
        CHECK_EQ(weft_logs_format_compile(g.spec, &f, err, sizeof err), 0);
        CHECK(f.nops == g.nops && f.kind == g.kind && memcmp(f.ops, g.ops, sizeof f.ops) == 0);
        /* every prefix of the line, in a buffer of its own size: never read past (ASan); one
         * cut inside the time is malformed */
        for (const char *q = p; q < e; q++) {
            size_t n = (size_t)(q - p);
            char *cut = malloc(n ? n : 1);
            memcpy(cut, p, n);
            bool ok = weft_logs_parse_line(&g, cut, cut + n, &r);
            CHECK_MSG(!ok || n > 40, "%s: a prefix of %zu bytes parsed", w->name, n);
            free(cut);
        }
    }
}

TEST(caddy_json_any_key_order_iso_time_and_malformed_objects)
{
    weft_logs_format_t f;
    char err[160];
    CHECK_EQ(weft_logs_format_compile("caddy", &f, err, sizeof err), 0);
    weft_logs_rec_t r;
    const char *ok[] = {
        /* keys in another order, spaces, an RFC 3339 time, remote_ip only, escapes skipped */
        "{ \"status\" : 404 , \"size\":0, \"request\": {\"uri\":\"/a%20b?q=\\\"x\\\"\", "
        "\"headers\":{\"Referer\":[\"https://r/\"],\"X\":[[1,{\"a\":[]}]]},\"remote_ip\":\"::1\"},"
        "\"ts\":\"2024-02-29T23:59:59.5+01:00\", \"duration\": 1.5 }",
        /* a duration Caddy would not write is no time, not a malformed line */
        "{\"ts\":0,\"status\":200,\"duration\":1e-7,\"request\":{\"client_ip\":\"10.0.0.1\"}}",
    };
    CHECK(weft_logs_parse_line(&f, ok[0], ok[0] + strlen(ok[0]), &r));
    CHECK(r.family == 6 && r.status == 404 && r.bytes == 0 && r.rt_us == 1500000);
    CHECK(r.date == WEFT_LOGS_DATE(2024, 2, 29) && r.hour == 23 && r.minute == 59 &&
          r.utc_off_min == 60);
    CHECK(slice_is(r.path, r.path_len, "/a%20b"));
    CHECK(slice_is(r.referrer, r.referrer_len, "https://r/"));
    CHECK(r.user_agent == NULL && r.method == NULL);
    CHECK(weft_logs_parse_line(&f, ok[1], ok[1] + strlen(ok[1]), &r));
    CHECK(r.ip4 == 0x0A000001 && r.rt_us == -1 && r.date == WEFT_LOGS_DATE(1970, 1, 1));
    const char *bad[] = {
        "",
        "{}",
        "not json",
        /* not a request: another logger's line */
        "{\"ts\":1646861401.5,\"logger\":\"tls\",\"msg\":\"certificate obtained\"}",
        "{\"ts\":1,\"status\":200,\"request\":{\"client_ip\":\"10.0.0.1\"}} x", /* trailing text */
        "{\"ts\":1,\"status\":20,\"request\":{\"client_ip\":\"10.0.0.1\"}}",    /* bad status */
        "{\"ts\":1,\"status\":200,\"request\":{\"client_ip\":\"10.0.0.256\"}}", /* bad address */
        "{\"ts\":1,\"status\":200,\"request\":{\"client_ip\":\"10.0.0.1\"}",    /* cut short */
        "{\"ts\":1,\"status\":200,\"request\":{\"client_ip\":\"10.0.0.1\"},\"x\":[}",
        "{\"ts\":\"yesterday\",\"status\":200,\"request\":{\"client_ip\":\"10.0.0.1\"}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(!weft_logs_parse_line(&f, bad[i], bad[i] + strlen(bad[i]), &r), "parsed: %s",
                  bad[i]);
    /* nesting deeper than the scanner keeps is malformed, not a crash */
    char deep[400] = "{\"ts\":1,\"status\":200,\"request\":{\"client_ip\":\"10.0.0.1\"},\"x\":";
    size_t n = strlen(deep);
    for (int i = 0; i < 100; i++) deep[n++] = '[';
    for (int i = 0; i < 100; i++) deep[n++] = ']';
    deep[n++] = '}';
    CHECK(!weft_logs_parse_line(&f, deep, deep + n, &r));
}

/* ---- runs ----------------------------------------------------------------------------------- */

/* The path of `name` in the test's directory, in the caller's buffer. */
#define TMP_PATH(buf, name) snprintf(buf, sizeof buf, "%s/%s", weft_test_tmpdir(), name)

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK(fwrite(text, 1, strlen(text), f) == strlen(text));
    CHECK(fclose(f) == 0);
}

/* Runs the analysis of one file; returns the part (owned) and the formats used. */
static weft_logs_part_t *run_file(const char *path, const char *format, int jobs, uint64_t chunk,
                                  weft_logs_mode_t mode, char *names, size_t nlen, size_t *nbad,
                                  uint64_t *bad_line)
{
    const char *files[] = {path};
    weft_logs_run_opts_t o = {.files = files,
                              .nfiles = 1,
                              .jobs = jobs,
                              .mode = mode,
                              .chunk_size = chunk,
                              .format = format};
    weft_logs_run_result_t res;
    char err[256];
    int code = weft_logs_run(&o, &res, err, sizeof err);
    CHECK_MSG(code == 0, "run %s: %s", path, err);
    if (names) snprintf(names, nlen, "%s", res.format_names);
    if (nbad) *nbad = res.nbad;
    if (bad_line && res.nbad) *bad_line = res.bad[0].line;
    weft_logs_part_t *p = res.part;
    res.part = NULL;
    weft_logs_run_result_free(&res);
    return p;
}

/* The seed statistics of two parts are the same (every count, the top lists, the times). */
static void same_stats(const char *what, const weft_logs_part_t *a, const weft_logs_part_t *b)
{
    weft_logs_report_t ra, rb;
    CHECK_EQ(weft_logs_report_build(a, 20, 20, &ra), 0);
    CHECK_EQ(weft_logs_report_build(b, 20, 20, &rb), 0);
    CHECK_MSG(ra.lines == rb.lines && ra.parsed == rb.parsed && ra.malformed == rb.malformed,
              "%s: lines %llu/%llu parsed %llu/%llu", what, (unsigned long long)ra.lines,
              (unsigned long long)rb.lines, (unsigned long long)ra.parsed,
              (unsigned long long)rb.parsed);
    CHECK_MSG(ra.bytes == rb.bytes, "%s: bytes", what);
    CHECK_MSG(memcmp(ra.hourly, rb.hourly, sizeof ra.hourly) == 0, "%s: hourly", what);
    CHECK_MSG(memcmp(ra.status, rb.status, sizeof ra.status) == 0, "%s: status", what);
    CHECK_MSG(ra.distinct_ips == rb.distinct_ips && ra.ntop == rb.ntop, "%s: ips", what);
    for (size_t i = 0; i < ra.ntop && i < rb.ntop; i++)
        CHECK_MSG(weft_logs_ipcount_cmp(&ra.top[i], &rb.top[i]) == 0 &&
                      ra.top[i].count == rb.top[i].count,
                  "%s: top ip %zu", what, i);
    CHECK_MSG(ra.rt_count == rb.rt_count && ra.rt_sum == rb.rt_sum && ra.rt_max == rb.rt_max &&
                  ra.rt_p99 == rb.rt_p99,
              "%s: response times %llu/%llu", what, (unsigned long long)ra.rt_sum,
              (unsigned long long)rb.rt_sum);
    CHECK_MSG(ra.distinct_paths == rb.distinct_paths && ra.npaths == rb.npaths, "%s: paths", what);
    for (size_t i = 0; i < ra.npaths && i < rb.npaths; i++)
        CHECK_MSG(strcmp(ra.top_paths[i].path, rb.top_paths[i].path) == 0 &&
                      ra.top_paths[i].count == rb.top_paths[i].count,
                  "%s: path %zu", what, i);
    weft_logs_report_free(&ra);
    weft_logs_report_free(&rb);
}

TEST(w3c_directives_are_skipped_also_repeated_mid_file_in_every_chunking)
{
    /* IIS restarts: the header again mid-file, the same columns */
    const char *log = "#Software: Microsoft Internet Information Services 10.0\n"
                      "#Version: 1.0\n"
                      "#Fields: date time c-ip cs-method cs-uri-stem sc-status sc-bytes "
                      "time-taken\n"
                      "2024-03-01 10:00:00 10.0.0.1 GET /a 200 100 15\n"
                      "2024-03-01 10:00:01 10.0.0.2 GET /b 404 0 3\n"
                      "#Software: Microsoft Internet Information Services 10.0\n"
                      "#Version: 1.0\n"
                      "#Date: 2024-03-01 11:00:00\n"
                      "#Fields: date  time c-ip cs-method cs-uri-stem sc-status sc-bytes "
                      "time-taken\r\n"
                      "2024-03-01 11:00:02 10.0.0.1 POST /a 200 50 7\n"
                      "bad line\n";
    char path[512];
    TMP_PATH(path, "iis.log");
    write_text(path, log);
    weft_logs_part_t *ref = NULL;
    for (uint64_t chunk = 1; chunk < 400; chunk += 37) {
        for (int m = 0; m < 2; m++) {
            char names[256];
            size_t nbad;
            uint64_t bad_line = 0;
            weft_logs_part_t *p = run_file(path, m ? "w3c" : NULL, 2, chunk,
                                           m ? WEFT_LOGS_PROCESSES : WEFT_LOGS_THREADS, names,
                                           sizeof names, &nbad, &bad_line);
            CHECK_STR_EQ(names, "w3c");
            CHECK_EQ(p->lines, 4);
            CHECK_EQ(p->parsed, 3);
            CHECK_EQ(p->malformed, 1);
            CHECK_EQ(nbad, 1);
            CHECK_EQ(bad_line, 11); /* numbered among all the lines, directives included */
            CHECK_EQ(p->bytes, 150);
            CHECK_EQ(p->hourly[10], 2);
            CHECK_EQ(p->hourly[11], 1);
            if (!ref)
                ref = p;
            else {
                same_stats("w3c chunking", ref, p);
                weft_logs_part_destroy(p);
            }
        }
    }
    weft_logs_part_destroy(ref);
    /* columns changed mid-file: that #Fields: line is reported, the lines after it are
     * parsed with the first columns (here they do not fit: malformed too) */
    const char *changed = "#Fields: date time c-ip cs-method cs-uri-stem sc-status\n"
                          "2024-03-01 10:00:00 10.0.0.1 GET /a 200\n"
                          "#Fields: date time c-ip sc-status cs-method cs-uri-stem\n"
                          "2024-03-01 10:00:01 10.0.0.2 200 GET /b\n";
    write_text(path, changed);
    size_t nbad;
    uint64_t bad_line = 0;
    weft_logs_part_t *p = run_file(path, NULL, 1, 0, WEFT_LOGS_THREADS, NULL, 0, &nbad, &bad_line);
    CHECK_EQ(p->parsed, 1);
    CHECK_EQ(p->malformed, 2);
    CHECK_EQ(bad_line, 3);
    weft_logs_part_destroy(p);
}

TEST(apache_logformat_strings_compile_to_the_nginx_operations)
{
    weft_logs_format_t a, n;
    char err[160];
    struct {
        const char *apache, *nginx;
    } pairs[] = {
        {"apache:%h %l %u %t \"%r\" %>s %b", "common"},
        {"apache:%h %l %u %t \\\"%r\\\" %>s %b \\\"%{Referer}i\\\" \\\"%{User-agent}i\\\"",
         "combined"},
        {"apache:%v:%p %h %l %u %t \"%r\" %>s %O \"%{Referer}i\" \"%{User-Agent}i\"", "vcombined"},
        {"apache:%a %{c}a %u [%{%d/%b/%Y:%H:%M:%S %z}t] \"%m %U%q %H\" %400,501s %B %{ms}T",
         "nginx:$remote_addr $x $remote_user [$time_local] \"$request_method $uri "
         "$server_protocol\" $status $body_bytes_sent $request_time_ms"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        CHECK_MSG(weft_logs_format_compile(pairs[i].apache, &a, err, sizeof err) == 0, "%s: %s",
                  pairs[i].apache, err);
        CHECK_EQ(weft_logs_format_compile(pairs[i].nginx, &n, err, sizeof err), 0);
        CHECK_STR_EQ(a.name, "apache");
        CHECK_MSG(a.nops == n.nops, "%s: %d ops, %d", pairs[i].apache, a.nops, n.nops);
        for (int k = 0; k < a.nops && k < n.nops; k++)
            CHECK_MSG(a.ops[k].kind == n.ops[k].kind && a.ops[k].delim == n.ops[k].delim &&
                          a.ops[k].quoted == n.ops[k].quoted,
                      "%s: op %d", pairs[i].apache, k);
    }
    /* %D is microseconds, %T seconds (a fraction accepted), %{us}T too */
    const char *line = "1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200 5 52000";
    weft_logs_rec_t r;
    CHECK_EQ(weft_logs_format_compile("apache:%h %l %u %t \"%r\" %>s %b %D", &a, err, sizeof err),
             0);
    CHECK(weft_logs_parse_line(&a, line, line + strlen(line), &r) && r.rt_us == 52000);
    CHECK_EQ(weft_logs_format_compile("apache:%h %l %u %t \"%r\" %>s %b %T", &a, err, sizeof err),
             0);
    CHECK(weft_logs_parse_line(&a, line, line + strlen(line), &r) && r.rt_us == 52000000000);
    /* errors, and the hint where an nginx string is expected */
    const char *errs[][2] = {
        {"apache:%h %t \"%r\" %>s %{Referer", "unterminated"},
        {"apache:%h %t \"%r\" %>s %", "bad directive"},
        {"apache:%h %t \"%r\"", "lacks $status"},
        {"apache:%h %t $x %s", "'$'"},
        {"%h %l %u %t \"%r\" %>s %b", "Apache LogFormat"},
        {"nginx:%h %l %u %t \"%r\" %>s %b", "Apache LogFormat"},
        {"w3c:date time cs-method", "lacks $remote_addr"},
    };
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        CHECK_EQ(weft_logs_format_compile(errs[i][0], &a, err, sizeof err), -EINVAL);
        CHECK_MSG(strstr(err, errs[i][1]) != NULL, "%s: %s", errs[i][0], err);
    }
    CHECK(weft_logs_format_looks_apache("%h %l %u %t \"%r\" %>s %b"));
    CHECK(!weft_logs_format_looks_apache("$remote_addr [$time_local] \"$request\" $status"));
}

/* ---- the same requests in every format ------------------------------------------------------ */

typedef struct req {
    char ip[64], user[64], time[64], request[512], bytes[32], ref[512], ua[512];
    int status;
    double rt;
} req_t;

static bool scan_line(const char *line, req_t *q)
{
    return sscanf(line,
                  "%63s - %63s [%63[^]]] \"%511[^\"]\" %d %31s \"%511[^\"]\" \"%511[^\"]\" %lf",
                  q->ip, q->user, q->time, q->request, &q->status, q->bytes, q->ref, q->ua,
                  &q->rt) == 9;
}

/* "16/Jan/2025:01:37:47 +0000" as ISO pieces: "2025-01-16" and "01:37:47"; Unix seconds. */
static long long iso_parts(const char *t, char *date, char *tod)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    int d, y, h, mi, s;
    char mon[4];
    CHECK(sscanf(t, "%d/%3s/%d:%d:%d:%d", &d, mon, &y, &h, &mi, &s) == 6);
    int m = (int)((strstr(months, mon) - months) / 3) + 1;
    sprintf(date, "%04d-%02d-%02d", y, m, d);
    sprintf(tod, "%02d:%02d:%02d", h, mi, s);
    return (long long)weft_logs_civil_day(y, m, d) * 86400 + h * 3600 + mi * 60 + s;
}

/* Writes `req` in format `fmt`. */
static void write_as(FILE *f, const char *fmt, const req_t *q)
{
    char date[40], tod[40];
    long long ts = iso_parts(q->time, date, tod);
    const char *bytes = strcmp(q->bytes, "-") == 0 ? "0" : q->bytes;
    long ms = (long)(q->rt * 1000 + 0.5);
    char method[32], target[512], proto[32];
    CHECK(sscanf(q->request, "%31s %511s %31s", method, target, proto) == 3);
    char stem[512];
    snprintf(stem, sizeof stem, "%s", target);
    char *qm = strchr(stem, '?');
    const char *query = qm ? qm + 1 : "-";
    if (qm) *qm = '\0';
    char ua_plus[512];
    snprintf(ua_plus, sizeof ua_plus, "%s", q->ua);
    for (char *c = ua_plus; *c; c++)
        if (*c == ' ') *c = '+';
    if (strcmp(fmt, "vcombined") == 0)
        fprintf(f, "www.example.com:443 %s - %s [%s] \"%s\" %d %s \"%s\" \"%s\"\n", q->ip, q->user,
                q->time, q->request, q->status, q->bytes, q->ref, q->ua);
    else if (strcmp(fmt, "traefik") == 0)
        fprintf(f,
                "%s - %s [%s] \"%s\" %d %s \"%s\" \"%s\" 7 \"web@docker\" \"http://10.0.0.2:80\" "
                "%ldms\n",
                q->ip, q->user, q->time, q->request, q->status, q->bytes, q->ref, q->ua, ms);
    else if (strcmp(fmt, "s3") == 0)
        fprintf(f,
                "79a59df900b9 bucket1 [%s] %s 79a59df900b9 3E57427F3EXAMPLE REST.GET.OBJECT key "
                "\"%s\" %d - %s 1000 %ld 3 \"%s\" \"%s\" - hostid SigV4 - AuthHeader "
                "bucket1.s3.amazonaws.com TLSv1.2 - -\n",
                q->time, q->ip, q->request, q->status, q->bytes, ms, q->ref, q->ua);
    else if (strcmp(fmt, "elb") == 0)
        fprintf(f,
                "%sT%s.123456Z my-lb %s:2817 10.0.0.1:80 0.000073 %.3f 0.000057 %d %d 0 %s "
                "\"%s\" \"%s\" - -\n",
                date, tod, q->ip, q->rt, q->status, q->status, bytes, q->request, q->ua);
    else if (strcmp(fmt, "alb") == 0)
        fprintf(f,
                "https %sT%s.123456Z app/lb/50dc6c %s:2817 10.0.0.1:80 0.000 %.3f 0.000 %d %d 34 "
                "%s \"%s\" \"%s\" ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 arn:aws:tg \"Root=1-5\" "
                "\"www.example.com\" \"arn:aws:acm\" 0 %sT%s.000000Z \"forward\" \"-\" \"-\" "
                "\"10.0.0.1:80\" \"200\" \"-\" \"-\" TID_1\n",
                date, tod, q->ip, q->rt, q->status, q->status, bytes, q->request, q->ua, date, tod);
    else if (strcmp(fmt, "w3c") == 0)
        fprintf(f, "%s %s 10.0.0.9 %s %s %s 443 - %s %s %s %d 0 0 %s %ld\n", date, tod, method,
                stem, query, q->ip, ua_plus, q->ref, q->status, bytes, ms);
    else if (strcmp(fmt, "cloudfront") == 0)
        fprintf(f, "%s\t%s\tLAX1\t%s\t%s\t%s\td1.cloudfront.net\t%s\t%d\t%s\t%s\t%s\t%.3f\n", date,
                tod, bytes, q->ip, method, stem, q->status, q->ref, ua_plus, query, q->rt);
    else if (strcmp(fmt, "caddy") == 0)
        fprintf(f,
                "{\"level\":\"info\",\"ts\":%lld.5,\"logger\":\"http.log.access\",\"msg\":"
                "\"handled request\",\"request\":{\"remote_ip\":\"%s\",\"proto\":\"%s\","
                "\"method\":\"%s\",\"host\":\"h\",\"uri\":\"%s\",\"headers\":{\"User-Agent\":["
                "\"%s\"],\"Referer\":[\"%s\"]}},\"duration\":%.3f,\"size\":%s,\"status\":%d}\n",
                ts, q->ip, proto, method, target, q->ua, q->ref, q->rt, bytes, q->status);
    else
        CHECK_MSG(0, "no writer for %s", fmt);
}

TEST_T(every_format_gives_the_nginx_statistics_of_the_same_requests, 120)
{
    char src[512], out[512];
    TMP_PATH(src, "src.log");
    TMP_PATH(out, "out.log");
    weft_logs_gen_opts_t o;
    weft_logs_gen_defaults(&o);
    o.size = 400 << 10;
    o.seed = 7;
    o.format = "combined-rt";
    o.ipv6_rate = 0.1;
    o.ips = 300;
    FILE *f = fopen(src, "wb");
    CHECK(f != NULL);
    CHECK_EQ(weft_logs_gen(f, &o), 0);
    CHECK(fclose(f) == 0);
    /* every generated request, in each format */
    static const struct {
        const char *fmt, *ref, *header;
    } fmts[] = {
        {"vcombined", "combined", NULL},
        {"traefik", "combined-rt", NULL},
        {"s3", "combined-rt", NULL},
        {"elb", "combined-rt", NULL},
        {"alb", "combined-rt", NULL},
        {"w3c", "combined-rt",
         "#Software: Microsoft Internet Information Services 10.0\n#Version: 1.0\n#Fields: date "
         "time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) "
         "cs(Referer) sc-status sc-substatus sc-win32-status sc-bytes time-taken\n"},
        {"cloudfront", "combined-rt",
         "#Version: 1.0\n#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) "
         "cs-uri-stem sc-status cs(Referer) cs(User-Agent) cs-uri-query time-taken\n"},
        {"caddy", "combined-rt", NULL},
    };
    weft_logs_part_t *refs[2] = {
        run_file(src, "combined", 1, 0, WEFT_LOGS_THREADS, NULL, 0, NULL, NULL),
        run_file(src, "combined-rt", 1, 0, WEFT_LOGS_THREADS, NULL, 0, NULL, NULL)};
    CHECK(refs[1]->parsed > 1000 && refs[1]->malformed == 0);
    for (size_t k = 0; k < sizeof fmts / sizeof fmts[0]; k++) {
        FILE *in = fopen(src, "rb"), *w = fopen(out, "wb");
        CHECK(in && w);
        if (fmts[k].header) fputs(fmts[k].header, w);
        char line[4096];
        while (fgets(line, sizeof line, in)) {
            req_t q;
            CHECK_MSG(scan_line(line, &q), "cannot read back: %s", line);
            write_as(w, fmts[k].fmt, &q);
        }
        fclose(in);
        CHECK(fclose(w) == 0);
        weft_logs_part_t *ref = refs[strcmp(fmts[k].ref, "combined-rt") == 0];
        for (int j = 1; j <= 2; j++) { /* detected, and by name */
            char names[256];
            weft_logs_part_t *p = run_file(out, j == 1 ? NULL : fmts[k].fmt, j, 7919,
                                           WEFT_LOGS_THREADS, names, sizeof names, NULL, NULL);
            CHECK_MSG(strcmp(names, fmts[k].fmt) == 0, "%s detected as %s", fmts[k].fmt, names);
            same_stats(fmts[k].fmt, ref, p);
            weft_logs_part_destroy(p);
        }
    }
    /* an Apache LogFormat on the nginx data itself */
    weft_logs_part_t *p = run_file(src,
                                   "apache:%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" "
                                   "\"%{User-Agent}i\" %T",
                                   2, 7919, WEFT_LOGS_PROCESSES, NULL, 0, NULL, NULL);
    same_stats("apache", refs[1], p);
    weft_logs_part_destroy(p);
    weft_logs_part_destroy(refs[0]);
    weft_logs_part_destroy(refs[1]);
}
