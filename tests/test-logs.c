/* Tests for `weft logs`: the analyzer against a plain one-thread reference implementation (the
 * obvious code: split the line, sscanf, strtod, sort and count) on generated logs, for every
 * worker count, chunk sizes down to one byte, both modes, both I/O methods, streams, partials;
 * and each edge case on hand-written input. */
#include "harness.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <weft/buf.h>
#include <weft/err.h>
#include <weft/hist.h>
#include <bzlib.h>
#include <lzma.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <zlib.h>
#include <zstd.h>

#include "logs/format.h"
#include "logs/gen.h"
#include "logs/html.h"
#include "logs/report.h"
#include "logs/run.h"
#include "logs/stats.h"
#include "logs/ua.h"
#include "common/cli-int.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static char *path_in_tmp(const char *name)
{
    static char buf[8][512];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 512, "%s/%s", weft_test_tmpdir(), name);
    return b;
}

static void write_text(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK(fwrite(text, 1, len, f) == len);
    CHECK(fclose(f) == 0);
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    CHECK(b != NULL);
    CHECK(fread(b, 1, (size_t)n, f) == (size_t)n);
    b[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void gen_file(const char *path, uint64_t size, uint64_t seed, const char *format, double bad,
                     double v6, bool crlf, uint64_t ips)
{
    weft_logs_gen_opts_t o;
    weft_logs_gen_defaults(&o);
    o.size = size;
    o.seed = seed;
    o.format = format;
    o.malformed_rate = bad;
    o.ipv6_rate = v6;
    o.crlf = crlf;
    o.ips = ips;
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK_EQ(weft_logs_gen(f, &o), 0);
    CHECK(fclose(f) == 0);
}

/* Runs the analyzer; returns its JSON (owned) and fills the first malformed line numbers. */
typedef struct run_out {
    char *json;
    size_t nbad;
    uint64_t bad_line[WEFT_LOGS_BAD_KEEP];
    size_t bad_file[WEFT_LOGS_BAD_KEEP];
    weft_logs_part_t *part; /* kept if asked */
} run_out_t;

static weft_logs_run_opts_t opts_for(const char *const *files, size_t n, int jobs,
                                     weft_logs_mode_t mode, uint64_t chunk, const char *format)
{
    return (weft_logs_run_opts_t){.files = files,
                                  .nfiles = n,
                                  .jobs = jobs,
                                  .mode = mode,
                                  .chunk_size = chunk,
                                  .format = format};
}

static int run(const char *const *files, size_t n, int jobs, weft_logs_mode_t mode, uint64_t chunk,
               const char *format, bool use_mmap, run_out_t *out, bool keep)
{
    weft_logs_run_opts_t o = opts_for(files, n, jobs, mode, chunk, format);
    o.use_mmap = use_mmap;
    weft_logs_run_result_t res;
    char err[256];
    memset(out, 0, sizeof *out);
    int code = weft_logs_run(&o, &res, err, sizeof err);
    if (code) return code;
    weft_logs_report_t rep;
    CHECK_EQ(weft_logs_report_build(res.part, 10, 10, &rep), 0);
    weft_buf_t b;
    weft_buf_init(&b, 0);
    CHECK_EQ(weft_logs_write_json(&b, &rep), 0);
    out->json = weft_buf_steal(&b, NULL);
    weft_logs_report_free(&rep);
    out->nbad = res.nbad;
    for (size_t i = 0; i < res.nbad; i++) {
        out->bad_line[i] = res.bad[i].line;
        out->bad_file[i] = res.bad[i].file;
    }
    if (keep) {
        out->part = res.part;
        free(res.idents);
    } else {
        weft_logs_run_result_free(&res);
    }
    return 0;
}

static char *run_json(const char *file, int jobs, weft_logs_mode_t mode, uint64_t chunk)
{
    run_out_t o;
    const char *files[] = {file};
    CHECK_EQ(run(files, 1, jobs, mode, chunk, NULL, false, &o, false), 0);
    return o.json;
}

/* ---- the reference implementation ----------------------------------------------------------- */

typedef struct ref_ip {
    int family;
    uint8_t addr[16];
    uint64_t count;
    char text[64]; /* IPv6: as written (of one address's spellings, the least by strcmp) */
} ref_ip_t;

typedef struct ref {
    uint64_t lines, parsed, malformed, bytes, hourly[24], status[1000];
    weft_hist_t rt;
    ref_ip_t *ips; /* one per parsed line, then counted */
    size_t nips, distinct;
    char **paths;
    size_t npaths, distinct_paths;
    char **paths404; /* the paths of 404 lines */
    size_t npaths404, distinct_404, top404_count;
    const char *top404; /* the most requested (then the first by text), or NULL */
    char **statics;     /* the paths of static files */
    size_t nstatics, distinct_statics;
    uint64_t bad_line[WEFT_LOGS_BAD_KEEP];
    size_t nbad;
} ref_t;

/* The obvious static-file test: the extension after the last '.' of the last segment, lowered,
 * in GoAccess's list (as weft_logs_is_static documents it). */
static bool ref_is_static(const char *path)
{
    static const char *const list[] = {
        "css",  "js",  "map",  "jpg",  "jpeg", "png",   "gif", "ico",  "svg", "webp",
        "bmp",  "tif", "tiff", "avif", "woff", "woff2", "ttf", "otf",  "eot", "pdf",
        "txt",  "csv", "xml",  "json", "mp3",  "mp4",   "ogg", "webm", "avi", "flv",
        "mpeg", "mpg", "swf",  "zip",  "gz",   "tgz",   "tar", "rar",  "7z",  "iso",
        "exe",  "doc", "docx", "xls",  "xlsx", "ppt",   "pptx"};
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    if (!dot || (slash && dot < slash)) return false;
    char ext[16];
    size_t n = strlen(dot + 1);
    if (n == 0 || n >= sizeof ext) return false;
    for (size_t i = 0; i <= n; i++) ext[i] = (char)tolower((unsigned char)dot[1 + i]);
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
        if (strcmp(list[i], ext) == 0) return true;
    return false;
}

static int cmp_ref_ip_addr(const void *a, const void *b)
{
    const ref_ip_t *x = a, *y = b;
    if (x->family != y->family) return x->family - y->family;
    return memcmp(x->addr, y->addr, 16);
}

static int cmp_ref_ip_rank(const void *a, const void *b)
{
    const ref_ip_t *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return cmp_ref_ip_addr(a, b);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads the next space-terminated token into buf; returns the rest after the space. */
static const char *token(const char *p, char *buf, size_t len)
{
    const char *sp = strchr(p, ' ');
    if (!sp || (size_t)(sp - p) >= len) return NULL;
    memcpy(buf, p, (size_t)(sp - p));
    buf[sp - p] = '\0';
    return sp + 1;
}

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return false;
    return n > 0;
}

/* fmt: 0 default, 1 common, 2 combined, 3 combined-rt. */
static bool ref_parse(const char *line, int fmt, ref_ip_t *ip, int *hour, int *status,
                      uint64_t *bytes, int64_t *rt, char *path)
{
    char tok[512], ident[256], user[256];
    const char *p = token(line, tok, sizeof tok);
    if (!p) return false;
    memset(ip, 0, sizeof *ip);
    if (inet_pton(AF_INET, tok, ip->addr) == 1) {
        ip->family = 4;
    } else if (inet_pton(AF_INET6, tok, ip->addr) == 1) {
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        ip->family = 6;
        snprintf(ip->text, sizeof ip->text, "%.45s", tok);
        if (memcmp(ip->addr, mapped, 12) == 0) {
            memmove(ip->addr, ip->addr + 12, 4);
            memset(ip->addr + 4, 0, 12);
            ip->family = 4;
        }
    } else {
        return false;
    }
    if (!(p = token(p, ident, sizeof ident)) || !(p = token(p, user, sizeof user))) return false;
    int day, year, h, mi, s, n = 0;
    char mon[4], zone[6];
    if (sscanf(p, "[%2d/%3[A-Za-z]/%4d:%2d:%2d:%2d %5[-+0-9]]%n", &day, mon, &year, &h, &mi, &s,
               zone, &n) != 7 ||
        n != 28)
        return false;
    if (!strstr("JanFebMarAprMayJunJulAugSepOctNovDec", mon) || strlen(mon) != 3 || day < 1 ||
        day > 31 || h > 23 || mi > 59 || s > 60 || strlen(zone) != 5 || !all_digits(zone + 1, 4) ||
        !all_digits(p + 1, 2) || !all_digits(p + 13, 2))
        return false;
    *hour = h;
    p += n;
    if (strncmp(p, " \"", 2) != 0) return false;
    p += 2;
    const char *q = strchr(p, '"');
    if (!q) return false;
    char req[1024];
    if ((size_t)(q - p) >= sizeof req) return false;
    memcpy(req, p, (size_t)(q - p));
    req[q - p] = '\0';
    path[0] = '\0';
    char *save = NULL, *method = strtok_r(req, " ", &save), *target = strtok_r(NULL, " ", &save);
    if (method && target && req[0] != ' ') {
        target[strcspn(target, "?")] = '\0';
        strcpy(path, target);
    }
    p = q + 1;
    if (p[0] != ' ' || !all_digits(p + 1, 3) || p[1] == '0' || p[4] != ' ') return false;
    *status = atoi(p + 1);
    p += 5;
    if (*p == '-') {
        *bytes = 0;
        p++;
    } else {
        size_t k = strspn(p, "0123456789");
        if (k == 0) return false;
        *bytes = strtoull(p, NULL, 10);
        p += k;
    }
    if (fmt >= 2) {
        for (int k = 0; k < 2; k++) {
            if (strncmp(p, " \"", 2) != 0) return false;
            const char *e = strchr(p + 2, '"');
            if (!e) return false;
            p = e + 1;
        }
    }
    *rt = -1;
    if (fmt == 0 || fmt == 3) {
        if (*p != ' ') return false;
        char *e;
        double v = strtod(p + 1, &e);
        if (e == p + 1 || !(p[1] >= '0' && p[1] <= '9')) return false;
        *rt = llround(v * 1e6);
        p = e;
    }
    return *p == '\0';
}

static void ref_run(const char *file, int fmt, ref_t *r)
{
    memset(r, 0, sizeof *r);
    weft_hist_init(&r->rt);
    size_t len;
    char *data = read_all(file, &len);
    size_t cap = len / 40 + 16;
    r->ips = calloc(cap, sizeof *r->ips);
    r->paths = calloc(cap, sizeof *r->paths);
    r->paths404 = calloc(cap, sizeof *r->paths404);
    r->statics = calloc(cap, sizeof *r->statics);
    char *save = NULL;
    /* split on '\n' by hand: strtok would merge empty lines */
    char *p = data, *end = data + len;
    (void)save;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        if (le > p && le[-1] == '\r') le--;
        *le = '\0';
        r->lines++;
        ref_ip_t ip;
        int hour, status;
        uint64_t bytes;
        int64_t rt;
        char path[1024];
        if (ref_parse(p, fmt, &ip, &hour, &status, &bytes, &rt, path)) {
            CHECK(r->nips < cap);
            r->parsed++;
            r->hourly[hour]++;
            r->status[status]++;
            r->bytes += bytes;
            if (rt >= 0) weft_hist_record(&r->rt, (uint64_t)rt);
            r->ips[r->nips++] = ip;
            if (path[0]) r->paths[r->npaths++] = strdup(path);
            if (path[0] && status == 404) r->paths404[r->npaths404++] = strdup(path);
            if (path[0] && ref_is_static(path)) r->statics[r->nstatics++] = strdup(path);
        } else {
            r->malformed++;
            if (r->nbad < WEFT_LOGS_BAD_KEEP) r->bad_line[r->nbad++] = r->lines;
        }
        p = nl ? nl + 1 : end;
    }
    free(data);
    /* count the clients: sort by address, collapse runs, sort by rank */
    qsort(r->ips, r->nips, sizeof *r->ips, cmp_ref_ip_addr);
    size_t d = 0;
    for (size_t i = 0; i < r->nips; i++) {
        if (d && cmp_ref_ip_addr(&r->ips[d - 1], &r->ips[i]) == 0) {
            r->ips[d - 1].count++;
            if (strcmp(r->ips[i].text, r->ips[d - 1].text) < 0)
                memcpy(r->ips[d - 1].text, r->ips[i].text, sizeof r->ips[i].text);
        } else {
            r->ips[d] = r->ips[i];
            r->ips[d++].count = 1;
        }
    }
    r->distinct = d;
    qsort(r->ips, d, sizeof *r->ips, cmp_ref_ip_rank);
    qsort(r->paths, r->npaths, sizeof *r->paths, cmp_str);
    for (size_t i = 0; i < r->npaths; i++)
        if (i == 0 || strcmp(r->paths[i], r->paths[i - 1]) != 0) r->distinct_paths++;
    qsort(r->statics, r->nstatics, sizeof *r->statics, cmp_str);
    for (size_t i = 0; i < r->nstatics; i++)
        if (i == 0 || strcmp(r->statics[i], r->statics[i - 1]) != 0) r->distinct_statics++;
    qsort(r->paths404, r->npaths404, sizeof *r->paths404, cmp_str);
    for (size_t i = 0, run = 0; i < r->npaths404; i++) {
        run = i && strcmp(r->paths404[i], r->paths404[i - 1]) == 0 ? run + 1 : 1;
        if (run == 1) r->distinct_404++;
        if (run > r->top404_count) {
            r->top404_count = run;
            r->top404 = r->paths404[i];
        }
    }
}

static void ref_free(ref_t *r)
{
    for (size_t i = 0; i < r->npaths; i++) free(r->paths[i]);
    free(r->paths);
    for (size_t i = 0; i < r->npaths404; i++) free(r->paths404[i]);
    free(r->paths404);
    for (size_t i = 0; i < r->nstatics; i++) free(r->statics[i]);
    free(r->statics);
    free(r->ips);
}

/* The reference's JSON for the fields the issue fixes (everything up to response_time). */
static char *ref_json_prefix(const ref_t *r)
{
    weft_buf_t b;
    weft_buf_init(&b, 0);
    weft_buf_printf(&b, "{\"lines\":%llu,\"parsed\":%llu,\"malformed\":%llu,\"hourly\":[",
                    (unsigned long long)r->lines, (unsigned long long)r->parsed,
                    (unsigned long long)r->malformed);
    for (int h = 0; h < 24; h++)
        weft_buf_printf(&b, "%s%llu", h ? "," : "", (unsigned long long)r->hourly[h]);
    weft_buf_printf(&b, "],\"status\":{");
    bool first = true;
    for (int s = 0; s < 1000; s++) {
        if (!r->status[s]) continue;
        weft_buf_printf(&b, "%s\"%d\":%llu", first ? "" : ",", s, (unsigned long long)r->status[s]);
        first = false;
    }
    weft_buf_printf(&b, "},\"top_ips\":[");
    for (size_t i = 0; i < r->distinct && i < 10; i++) {
        char t[64];
        inet_ntop(r->ips[i].family == 4 ? AF_INET : AF_INET6, r->ips[i].addr, t, sizeof t);
        if (r->ips[i].family == 6) snprintf(t, sizeof t, "%s", r->ips[i].text);
        weft_buf_printf(&b, "%s{\"ip\":\"%s\",\"count\":%llu}", i ? "," : "", t,
                        (unsigned long long)r->ips[i].count);
    }
    uint64_t avg = r->rt.count ? (r->rt.sum + r->rt.count / 2) / r->rt.count : 0;
    uint64_t v[7] = {avg,
                     r->rt.count ? r->rt.min : 0,
                     r->rt.count ? r->rt.max : 0,
                     weft_logs_round_quantile(weft_hist_quantile(&r->rt, 0.5)),
                     weft_logs_round_quantile(weft_hist_quantile(&r->rt, 0.9)),
                     weft_logs_round_quantile(weft_hist_quantile(&r->rt, 0.95)),
                     weft_logs_round_quantile(weft_hist_quantile(&r->rt, 0.99))};
    char s[7][32];
    for (int i = 0; i < 7; i++) weft_logs_secs(s[i], sizeof s[i], v[i]);
    weft_buf_printf(&b,
                    "],\"distinct_ips\":%zu,\"bytes\":%llu,\"response_time\":{\"avg\":%s,\"min\":"
                    "%s,\"max\":%s,\"p50\":%s,\"p90\":%s,\"p95\":%s,\"p99\":%s,",
                    r->distinct, (unsigned long long)r->bytes, s[0], s[1], s[2], s[3], s[4], s[5],
                    s[6]);
    return weft_buf_steal(&b, NULL);
}

/* The analyzer's JSON must start with the reference's, and its paths must match. */
static void check_against_ref(const char *json, const ref_t *r)
{
    char *want = ref_json_prefix(r);
    CHECK_MSG(strncmp(json, want, strlen(want)) == 0, "analyzer:\n%.600s\nreference:\n%.600s", json,
              want);
    free(want);
    char dp[1200];
    snprintf(dp, sizeof dp, "\"distinct_paths\":%zu,", r->distinct_paths);
    CHECK_MSG(strstr(json, dp) != NULL, "%s not in %.200s", dp, strstr(json, "distinct_paths"));
    /* the not-found panel: distinct 404 paths and the first of the top list */
    snprintf(dp, sizeof dp, "\"distinct_404_paths\":%zu,", r->distinct_404);
    CHECK_MSG(strstr(json, dp) != NULL, "%s not in %.200s", dp, strstr(json, "distinct_404"));
    snprintf(dp, sizeof dp, "\"distinct_static_paths\":%zu,\"static_requests\":%zu,\"excluded\":0",
             r->distinct_statics, r->nstatics);
    CHECK_MSG(strstr(json, dp) != NULL, "%s not in %.200s", dp, strstr(json, "distinct_static"));
    if (r->top404) {
        snprintf(dp, sizeof dp, "\"top_404_paths\":[{\"path\":\"%s\",\"count\":%zu}", r->top404,
                 r->top404_count);
        CHECK_MSG(strstr(json, dp) != NULL, "%s not in %.200s", dp, strstr(json, "top_404"));
    }
}

/* ---- the tests ---------------------------------------------------------------------------- */

TEST_T(equal_to_reference_for_every_worker_count_and_chunk_size, 120)
{
    const char *big = path_in_tmp("big.log"), *small = path_in_tmp("small.log");
    gen_file(big, 1 << 20, 11, "default", 0.01, 0.1, false, 3000);
    gen_file(small, 24 << 10, 12, "default", 0.05, 0.2, false, 50);
    ref_t rb, rs;
    ref_run(big, 0, &rb);
    ref_run(small, 0, &rs);
    CHECK(rb.malformed > 0 && rb.distinct > 100 && rs.malformed > 0);
    const uint64_t big_chunks[] = {0, 4093, 65537, 300000};
    const uint64_t small_chunks[] = {1, 2, 3, 61, 89, 127, 4099};
    for (int j = 1; j <= 8; j++) {
        for (size_t c = 0; c < sizeof big_chunks / sizeof big_chunks[0]; c++) {
            run_out_t o;
            const char *files[] = {big};
            CHECK_EQ(run(files, 1, j, WEFT_LOGS_THREADS, big_chunks[c], NULL, false, &o, false), 0);
            check_against_ref(o.json, &rb);
            CHECK_EQ(o.nbad, rb.nbad);
            for (size_t i = 0; i < o.nbad; i++) CHECK_EQ(o.bad_line[i], rb.bad_line[i]);
            free(o.json);
        }
    }
    for (size_t c = 0; c < sizeof small_chunks / sizeof small_chunks[0]; c++) {
        for (int j = 1; j <= 8; j += 3) {
            run_out_t o;
            const char *files[] = {small};
            CHECK_EQ(run(files, 1, j, WEFT_LOGS_THREADS, small_chunks[c], NULL, c % 2, &o, false),
                     0);
            check_against_ref(o.json, &rs);
            CHECK_EQ(o.nbad, rs.nbad);
            for (size_t i = 0; i < o.nbad; i++) CHECK_EQ(o.bad_line[i], rs.bad_line[i]);
            free(o.json);
        }
    }
    ref_free(&rb);
    ref_free(&rs);
}

TEST(every_preset_and_auto_detection_match_the_reference)
{
    const char *names[] = {"default", "common", "combined", "combined-rt"};
    for (int f = 0; f < 4; f++) {
        const char *file = path_in_tmp("fmt.log");
        gen_file(file, 300 << 10, 20 + (uint64_t)f, names[f], 0.01, 0.05, f == 2, 500);
        ref_t r;
        ref_run(file, f, &r);
        CHECK(r.parsed > 1000);
        size_t len;
        char *data = read_all(file, &len);
        weft_logs_format_t fmt;
        CHECK_EQ(weft_logs_format_detect(data, len, &fmt), 0);
        CHECK_STR_EQ(fmt.name, names[f]);
        free(data);
        for (int j = 1; j <= 3; j++) {
            run_out_t o;
            const char *files[] = {file};
            CHECK_EQ(run(files, 1, j, WEFT_LOGS_THREADS, 10007, j == 2 ? names[f] : NULL, false, &o,
                         false),
                     0);
            check_against_ref(o.json, &r);
            free(o.json);
        }
        ref_free(&r);
    }
}

TEST(crlf_gives_the_same_result_including_chunks_split_inside_cr_lf)
{
    const char *lf = path_in_tmp("lf.log"), *crlf = path_in_tmp("crlf.log");
    gen_file(crlf, 200 << 10, 5, "default", 0.02, 0.1, true, 300);
    size_t len;
    char *data = read_all(crlf, &len);
    char *stripped = malloc(len);
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (data[i] != '\r') stripped[n++] = data[i];
    CHECK(n < len);
    write_text(lf, stripped, n);
    free(stripped);
    char *a = run_json(lf, 2, WEFT_LOGS_THREADS, 0);
    /* chunk sizes that put boundaries between a '\r' and its '\n' */
    const char *cr = strchr(data, '\r');
    CHECK(cr != NULL);
    uint64_t sizes[] = {(uint64_t)(cr - data) + 1, (uint64_t)(cr - data), 1, 7919};
    for (size_t i = 0; i < 4; i++) {
        char *b = run_json(crlf, 3, WEFT_LOGS_THREADS, sizes[i]);
        CHECK_STR_EQ(a, b);
        free(b);
    }
    free(data);
    free(a);
}

TEST(edge_cases_hand_written)
{
    /* no final newline, an empty line, IPv6, mapped IPv4, a long line, a malformed line */
    char longpath[6000];
    memset(longpath, 'a', sizeof longpath);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    char *text = malloc(10000);
    snprintf(text, 10000,
             "10.0.0.1 - - [15/Jan/2025:10:30:45 +0800] \"GET /a?x=1 HTTP/1.1\" 200 100 0.052\n"
             "\n"
             "2001:db8::1 - - [15/Jan/2025:11:30:45 +0800] \"GET /a HTTP/1.1\" 404 - 1.5\n"
             "::ffff:10.0.0.1 - bob [15/Jan/2025:23:00:00 -0500] \"POST %s HTTP/1.1\" 500 7 "
             "0.000125\n"
             "garbage\n"
             "10.0.0.2 - - [15/Jan/2025:00:00:00 +0000] \"GET /b HTTP/1.1\" 301 0 -",
             longpath);
    const char *file = path_in_tmp("edge.log");
    write_text(file, text, strlen(text));
    free(text);
    for (uint64_t chunk = 1; chunk < 20000; chunk = chunk * 3 + 1) {
        run_out_t o;
        const char *files[] = {file};
        CHECK_EQ(run(files, 1, 3, WEFT_LOGS_THREADS, chunk, NULL, false, &o, false), 0);
        CHECK_MSG(strncmp(o.json,
                          "{\"lines\":6,\"parsed\":4,\"malformed\":2,\"hourly\":[1,0,0,0,0,0,0,0,0,"
                          "0,1,1,0,0,0,0,0,0,0,0,0,0,0,1],\"status\":{\"200\":1,\"301\":1,\"404\":"
                          "1,\"500\":1},\"top_ips\":[{\"ip\":\"10.0.0.1\",\"count\":2},{\"ip\":"
                          "\"10.0.0.2\",\"count\":1},{\"ip\":\"2001:db8::1\",\"count\":1}],"
                          "\"distinct_ips\":3,\"bytes\":107,\"response_time\":{\"avg\":0.517375,"
                          "\"min\":0.000125,\"max\":1.5,",
                          strlen("{\"lines\":6,\"parsed\":4,\"malformed\":2,\"hourly\":[1,0,0,0,0,"
                                 "0,0,0,0,0,1,1,0,0,0,0,0,0,0,0,0,0,0,1],\"status\":{\"200\":1,"
                                 "\"301\":1,\"404\":1,\"500\":1},\"top_ips\":[{\"ip\":\"10.0.0.1\""
                                 ",\"count\":2},{\"ip\":\"10.0.0.2\",\"count\":1},{\"ip\":\"2001:"
                                 "db8::1\",\"count\":1}],\"distinct_ips\":3,\"bytes\":107,\"respon"
                                 "se_time\":{\"avg\":0.517375,\"min\":0.000125,\"max\":1.5,")) == 0,
                  "chunk %llu: %s", (unsigned long long)chunk, o.json);
        CHECK(strstr(o.json, "\"count\":3}") != NULL); /* three timed lines */
        CHECK(strstr(o.json, "\"distinct_paths\":3,") != NULL);
        CHECK_EQ(o.nbad, 2);
        CHECK_EQ(o.bad_line[0], 2);
        CHECK_EQ(o.bad_line[1], 5);
        free(o.json);
    }
    /* an empty file */
    const char *empty = path_in_tmp("empty.log");
    write_text(empty, "", 0);
    char *e = run_json(empty, 2, WEFT_LOGS_THREADS, 0);
    CHECK(strncmp(e, "{\"lines\":0,\"parsed\":0,\"malformed\":0,", 36) == 0);
    CHECK(strstr(e, "\"top_ips\":[],\"distinct_ips\":0,\"bytes\":0,\"response_time\":{\"avg\":0,"
                    "\"min\":0,\"max\":0,") != NULL);
    free(e);
}

TEST(ties_rank_by_count_then_ipv4_before_ipv6_then_numeric_address)
{
    const char *line = " - - [01/Feb/2025:05:00:00 +0000] \"GET / HTTP/1.1\" 200 1 0.1\n";
    const char *ips[] = {"10.0.0.10", "10.0.0.9",   "::1",       "9.255.255.255", "10.0.0.9",
                         "::1",       "2001:db8::", "10.0.0.10", "1.1.1.1"};
    char text[4096] = "";
    for (size_t i = 0; i < sizeof ips / sizeof ips[0]; i++) {
        strcat(text, ips[i]);
        strcat(text, line);
    }
    const char *file = path_in_tmp("ties.log");
    write_text(file, text, strlen(text));
    char *j = run_json(file, 2, WEFT_LOGS_THREADS, 50);
    CHECK_MSG(strstr(j, "\"top_ips\":[{\"ip\":\"10.0.0.9\",\"count\":2},{\"ip\":\"10.0.0.10\","
                        "\"count\":2},{\"ip\":\"::1\",\"count\":2},{\"ip\":\"1.1.1.1\",\"count\":1}"
                        ",{\"ip\":\"9.255.255.255\",\"count\":1},{\"ip\":\"2001:db8::\",\"count\":"
                        "1}]") != NULL,
              "%s", j);
    free(j);
}

TEST(json_has_the_issue_keys_first_in_order)
{
    const char *file = path_in_tmp("k.log");
    gen_file(file, 20 << 10, 1, "default", 0, 0.1, false, 100);
    char *j = run_json(file, 1, WEFT_LOGS_THREADS, 0);
    const char *keys[] = {"{\"lines\":",       "\"parsed\":",  "\"malformed\":",
                          "\"hourly\":[",      "\"status\":{", "\"top_ips\":[",
                          "\"distinct_ips\":", "\"bytes\":",   "\"response_time\":{\"avg\":",
                          "\"min\":",          "\"max\":",     "\"p50\":",
                          "\"p90\":",          "\"p95\":",     "\"p99\":"};
    const char *prev = j;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *k = strstr(prev, keys[i]);
        CHECK_MSG(k != NULL, "key %s missing or out of order", keys[i]);
        prev = k;
    }
    CHECK(j[0] == '{' && strncmp(j, "{\"lines\":", 9) == 0);
    free(j);
}

TEST(nginx_log_format_strings)
{
    weft_logs_format_t f;
    char err[160];
    weft_logs_rec_t r;
    /* nginx's own "combined" */
    CHECK_EQ(weft_logs_format_compile("nginx:$remote_addr - $remote_user [$time_local] "
                                      "\"$request\" $status $body_bytes_sent \"$http_referer\" "
                                      "\"$http_user_agent\"",
                                      &f, err, sizeof err),
             0);
    const char *l1 = "1.2.3.4 - - [10/Oct/2024:13:55:36 -0700] \"GET /x?y HTTP/1.0\" 200 2326 "
                     "\"http://a/\" \"Mozilla/4.08 [en] (Win98; I ;Nav) \\\"q\\\"\"";
    CHECK(weft_logs_parse_line(&f, l1, l1 + strlen(l1), &r));
    CHECK_EQ(r.hour, 13);
    CHECK_EQ(r.status, 200);
    CHECK_EQ(r.bytes, 2326);
    CHECK_EQ(r.rt_us, -1);
    CHECK(r.path_len == 2 && memcmp(r.path, "/x", 2) == 0);
    CHECK_EQ(r.ip4, 0x01020304);
    const char *l2 = "1.2.3.4 x - [10/Oct/2024:13:55:36 -0700] \"GET / HTTP/1.0\" 200 1 \"-\" "
                     "\"-\"";
    CHECK(!weft_logs_parse_line(&f, l2, l2 + strlen(l2), &r)); /* the literal '-' must match */
    /* a custom one: ISO time, request pieces, upstream time ignored, request_time last */
    CHECK_EQ(weft_logs_format_compile("${remote_addr} [$time_iso8601] $request_method "
                                      "$request_uri $status $bytes_sent "
                                      "up=$upstream_response_time rt=$request_time",
                                      &f, err, sizeof err),
             0);
    CHECK_STR_EQ(f.name, "nginx");
    const char *l3 = "2001:db8::7 [2025-01-15T22:30:45+08:00] PUT /api/v1?id=3 201 512 "
                     "up=0.010, 0.020 rt=0.031";
    CHECK(!weft_logs_parse_line(&f, l3, l3 + strlen(l3), &r)); /* upstream has a space */
    const char *l4 = "2001:db8::7 [2025-01-15T22:30:45+08:00] PUT /api/v1?id=3 201 512 "
                     "up=0.010 rt=0.031";
    CHECK(weft_logs_parse_line(&f, l4, l4 + strlen(l4), &r));
    CHECK_EQ(r.family, 6);
    CHECK_EQ(r.hour, 22);
    CHECK_EQ(r.status, 201);
    CHECK_EQ(r.bytes, 512);
    CHECK_EQ(r.rt_us, 31000);
    CHECK(r.path_len == 7 && memcmp(r.path, "/api/v1", 7) == 0);
    /* errors */
    CHECK_EQ(
        weft_logs_format_compile("$remote_addr [$time_local] \"$request\"", &f, err, sizeof err),
        -EINVAL);
    CHECK(strstr(err, "$status") != NULL);
    CHECK_EQ(weft_logs_format_compile("$remote_addr$status [$time_local]", &f, err, sizeof err),
             -EINVAL);
    CHECK(strstr(err, "separated") != NULL);
    CHECK_EQ(weft_logs_format_compile("$remote_addr [$time_local] $request $status", &f, err,
                                      sizeof err),
             -EINVAL);
    CHECK(strstr(err, "double quotes") != NULL);
    CHECK_EQ(weft_logs_format_compile("apache", &f, err, sizeof err), -EINVAL);
    /* the default preset equals its nginx spelling, interpreted */
    weft_logs_format_t a, b;
    CHECK_EQ(weft_logs_format_compile("default", &a, err, sizeof err), 0);
    CHECK_EQ(weft_logs_format_compile("nginx:$remote_addr $ident $remote_user [$time_local] "
                                      "\"$request\" $status $body_bytes_sent $request_time",
                                      &b, err, sizeof err),
             0);
    CHECK(a.fast != 0);
    b.fast = 0;
    const char *file = path_in_tmp("n.log");
    gen_file(file, 100 << 10, 9, "default", 0.05, 0.1, false, 200);
    size_t len;
    char *data = read_all(file, &len);
    for (const char *p = data, *end = data + len; p < end;) {
        weft_logs_rec_t ra, rb;
        const char *ea = weft_logs_parse(&a, p, end, &ra), *eb = weft_logs_parse(&b, p, end, &rb);
        CHECK(ea == eb);
        if (ea) {
            CHECK(ra.ip4 == rb.ip4 && ra.hour == rb.hour && ra.status == rb.status &&
                  ra.bytes == rb.bytes && ra.rt_us == rb.rt_us && ra.path == rb.path &&
                  ra.path_len == rb.path_len);
        }
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl ? nl + 1 : end;
    }
    free(data);
}

/* The preset parser (straight-line code, and on x86-64 with AVX2 its vector fast path) against
 * the interpreter of the same format, line by line, on generated lines with one to three bytes
 * changed: the same verdict and the same fields. Each line is followed by others, so the fast
 * path (which leaves the last 64 bytes of a buffer to the scalar code) sees it; the buffer is
 * allocated to its exact size, so ASan catches any read past it. */
static bool same_rec(const weft_logs_rec_t *a, const weft_logs_rec_t *b)
{
    return a->family == b->family && a->hour == b->hour && a->status == b->status &&
           a->bytes == b->bytes && a->rt_us == b->rt_us && a->path == b->path &&
           a->path_len == b->path_len && a->minute == b->minute && a->date == b->date &&
           a->utc_off_min == b->utc_off_min && a->method == b->method &&
           a->method_len == b->method_len && a->protocol == b->protocol &&
           a->protocol_len == b->protocol_len && a->vhost == b->vhost &&
           a->vhost_len == b->vhost_len && a->referrer == b->referrer &&
           a->referrer_len == b->referrer_len && a->user_agent == b->user_agent &&
           a->user_agent_len == b->user_agent_len && (a->family == 4 ? a->ip4 == b->ip4 : 1) &&
           (a->family == 6 ? memcmp(a->ip6, b->ip6, 16) == 0 : 1);
}

TEST_T(presets_equal_the_interpreter_on_mutated_lines, 60)
{
    static const char pool[] = "0123456789 -\".:/[]?\\\r\n\t+aAfF\x00\xff";
    const char *names[] = {"default", "common", "combined", "combined-rt"};
    char err[160];
    uint64_t rng = 12345;
    long rounds = weft_test_scale(1000);
    size_t checked = 0, accepted = 0;
    for (int fi = 0; fi < 4; fi++) {
        weft_logs_format_t fast, slow;
        CHECK_EQ(weft_logs_format_compile(names[fi], &fast, err, sizeof err), 0);
        slow = fast;
        slow.fast = 0;
        const char *file = path_in_tmp("mut.log");
        gen_file(file, 64 << 10, 30 + (uint64_t)fi, names[fi], 0.02, 0.05, fi == 1, 100);
        size_t len;
        char *data = read_all(file, &len);
        char *buf = malloc(len);
        CHECK(buf != NULL);
        for (long round = 0; round < rounds; round++) {
            memcpy(buf, data, len);
            for (int m = 0; m < 8; m++) { /* mutate a few lines, 1..3 bytes each */
                rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
                size_t at = (size_t)(rng >> 33) % len;
                int nb = 1 + (int)((rng >> 20) % 3);
                for (int k = 0; k < nb && at + (size_t)k < len; k++) {
                    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
                    buf[at + (size_t)k] = pool[(rng >> 40) % (sizeof pool - 1)];
                }
            }
            const char *end = buf + len;
            for (const char *p = buf; p < end;) {
                weft_logs_rec_t a, b;
                const char *ea = weft_logs_parse(&fast, p, end, &a);
                const char *eb = weft_logs_parse(&slow, p, end, &b);
                CHECK_MSG(ea == eb && (!ea || same_rec(&a, &b)), "%s: line at %zu: %.120s",
                          names[fi], (size_t)(p - buf), p);
                checked++;
                accepted += ea != NULL;
                /* and the batch parser agrees with the line parser */
                const char *q = p;
                weft_logs_rec_t c;
                size_t n = weft_logs_parse_lines(&fast, &q, end, &c, 1);
                CHECK(n == (ea != NULL) && (!n || same_rec(&a, &c)));
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                p = nl ? nl + 1 : end;
            }
        }
        free(buf);
        free(data);
    }
    CHECK(accepted > checked / 2 && accepted < checked);
    /* the timestamp's fields at and past their bounds, the size at the fast path's limits */
    weft_logs_format_t fast, slow;
    CHECK_EQ(weft_logs_format_compile("default", &fast, err, sizeof err), 0);
    slow = fast;
    slow.fast = 0;
    const char *stamps[] = {"00/Jan/2025:10:30:45", "01/Jan/2025:23:59:60", "31/Dec/2025:00:00:00",
                            "32/Jan/2025:10:30:45", "15/Jan/2025:24:30:45", "15/Jan/2025:20:60:45",
                            "15/Jan/2025:20:30:61", "19/Jan/2025:09:09:09", "29/Feb/2025:19:59:59",
                            "15/Jam/2025:10:30:45", "3a/Jan/2025:10:30:45"};
    const char *sizes[] = {"0", "-", "999999", "1000000", "99999999", "123456789", "00", "-1", ""};
    char text[8192];
    for (size_t i = 0; i < sizeof stamps / sizeof stamps[0]; i++) {
        for (size_t j = 0; j < sizeof sizes / sizeof sizes[0]; j++) {
            int n = 0;
            for (int rep = 0; rep < 3; rep++) /* the first lines have the fast path's margin */
                n += snprintf(text + n, sizeof text - (size_t)n,
                              "10.1.2.3 - - [%s +0100] \"GET /x HTTP/1.1\" 200 %s 0.052\n",
                              stamps[i], sizes[j]);
            char *exact = malloc((size_t)n);
            CHECK(exact != NULL);
            memcpy(exact, text, (size_t)n);
            weft_logs_rec_t a, b;
            const char *ea = weft_logs_parse(&fast, exact, exact + n, &a);
            const char *eb = weft_logs_parse(&slow, exact, exact + n, &b);
            CHECK_MSG(ea == eb && (!ea || same_rec(&a, &b)), "%s, size %s", stamps[i], sizes[j]);
            free(exact);
        }
    }
}

static bool slice_is(const char *p, size_t n, const char *want)
{
    if (!want) return p == NULL && n == 0;
    return p && n == strlen(want) && memcmp(p, want, n) == 0;
}

/* The record's borrowed fields and time parts, from the presets (fast paths and interpreter) and
 * from nginx variables. */
TEST(record_has_method_protocol_vhost_referrer_agent_date_minute_offset)
{
    char err[160];
    const char *line =
        "2001:db8::1 - - [29/Feb/2024:23:59:58 -0130] \"POST /a/b?q=1 HTTP/2.0\" 201 "
        "12 \"https://ex.org/x\" \"Mozilla/5.0 (X11; Linux) \\\"q\\\"\" 0.250\n";
    size_t n = strlen(line);
    char *buf = malloc(3 * n);
    CHECK(buf != NULL);
    for (int i = 0; i < 3; i++) memcpy(buf + i * n, line, n); /* the fast path's margin */
    weft_logs_format_t f;
    CHECK_EQ(weft_logs_format_compile("combined-rt", &f, err, sizeof err), 0);
    for (int k = 0; k < 2; k++) {
        if (k) f.fast = 0;
        weft_logs_rec_t r;
        CHECK(weft_logs_parse(&f, buf, buf + 3 * n, &r) == buf + n - 1);
        CHECK(r.date == WEFT_LOGS_DATE(2024, 2, 29) && r.hour == 23 && r.minute == 59);
        CHECK_EQ(r.utc_off_min, -90);
        CHECK(slice_is(r.method, r.method_len, "POST"));
        CHECK(slice_is(r.protocol, r.protocol_len, "HTTP/2.0"));
        CHECK(slice_is(r.path, r.path_len, "/a/b"));
        CHECK(slice_is(r.referrer, r.referrer_len, "https://ex.org/x"));
        CHECK(slice_is(r.user_agent, r.user_agent_len, "Mozilla/5.0 (X11; Linux) \\\"q\\\""));
        CHECK(slice_is(r.vhost, r.vhost_len, NULL));
    }
    free(buf);
    /* no protocol (HTTP/0.9), no target */
    CHECK_EQ(weft_logs_format_compile("common", &f, err, sizeof err), 0);
    const char *l2 = "1.2.3.4 - - [01/Jan/2025:00:00:00 +0000] \"GET /x\" 200 1";
    weft_logs_rec_t r;
    CHECK(weft_logs_parse_line(&f, l2, l2 + strlen(l2), &r));
    CHECK(slice_is(r.method, r.method_len, "GET") && slice_is(r.protocol, r.protocol_len, NULL));
    CHECK(slice_is(r.referrer, r.referrer_len, NULL) && r.minute == 0);
    const char *l3 = "1.2.3.4 - - [01/Jan/2025:00:07:00 +0000] \"-\" 400 0";
    CHECK(weft_logs_parse_line(&f, l3, l3 + strlen(l3), &r));
    CHECK(!r.method && !r.protocol && !r.path && r.minute == 7);
    /* nginx variables */
    CHECK_EQ(weft_logs_format_compile("$host $remote_addr [$time_iso8601] $request_method "
                                      "$request_uri $server_protocol $status \"$http_referer\" "
                                      "\"$http_user_agent\"",
                                      &f, err, sizeof err),
             0);
    const char *l4 =
        "ex.org 1.2.3.4 [2025-03-09T07:45:00+05:30] GET /p?x HTTP/1.0 404 \"-\" \"curl/8\"";
    CHECK(weft_logs_parse_line(&f, l4, l4 + strlen(l4), &r));
    CHECK(r.date == WEFT_LOGS_DATE(2025, 3, 9) && r.hour == 7 && r.minute == 45);
    CHECK_EQ(r.utc_off_min, 330);
    CHECK(slice_is(r.vhost, r.vhost_len, "ex.org") && slice_is(r.method, r.method_len, "GET"));
    CHECK(slice_is(r.protocol, r.protocol_len, "HTTP/1.0") && slice_is(r.path, r.path_len, "/p"));
    CHECK(slice_is(r.referrer, r.referrer_len, "-") &&
          slice_is(r.user_agent, r.user_agent_len, "curl/8"));
    /* the packed date and the day number */
    CHECK_EQ(weft_logs_civil_day(1970, 1, 1), 0);
    CHECK_EQ(weft_logs_civil_day(2024, 2, 29), 19782);
    int y, m, d;
    weft_logs_civil_date(19782, &y, &m, &d);
    CHECK(y == 2024 && m == 2 && d == 29);
    CHECK(WEFT_LOGS_DATE(2024, 12, 31) < WEFT_LOGS_DATE(2025, 1, 1));
}

static uint64_t rnd(uint64_t *s, uint64_t n)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (*s >> 33) % n;
}

/* Client addresses with a colon are read as inet_pton(AF_INET6) reads them (weft has its own
 * copy of glibc's rules, to skip the string copy): fixed cases, structured and random texts,
 * each line parsed by the preset (fast path) and by the interpreter. Returns inet_pton's verdict.
 */
static bool check_ip6(const weft_logs_format_t *fast, const weft_logs_format_t *slow, const char *a)
{
    uint8_t want[16];
    bool ok = strlen(a) <= 45 && inet_pton(AF_INET6, a, want) == 1;
    char text[512];
    int tn = 0;
    for (int rep = 0; rep < 3; rep++)
        tn += snprintf(text + tn, sizeof text - (size_t)tn,
                       "%s - - [15/Jan/2025:10:30:45 +0800] \"GET / HTTP/1.1\" 200 1 0.1\n", a);
    char *exact = malloc((size_t)tn);
    CHECK(exact != NULL);
    memcpy(exact, text, (size_t)tn);
    for (int k = 0; k < 2; k++) {
        weft_logs_rec_t r;
        const char *e = weft_logs_parse(k ? slow : fast, exact, exact + tn, &r);
        CHECK_MSG((e != NULL) == ok, "%s: inet_pton %d", a, ok);
        if (!ok) continue;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(want, mapped, 12) == 0)
            CHECK(r.family == 4 && r.ip4 == ((uint32_t)want[12] << 24 | (uint32_t)want[13] << 16 |
                                             (uint32_t)want[14] << 8 | want[15]));
        else
            CHECK_MSG(r.family == 6 && memcmp(r.ip6, want, 16) == 0, "%s", a);
    }
    free(exact);
    return ok;
}

TEST(ipv6_addresses_parse_as_inet_pton_does)
{
    weft_logs_format_t fast, slow;
    char err[160];
    CHECK_EQ(weft_logs_format_compile("default", &fast, err, sizeof err), 0);
    slow = fast;
    slow.fast = 0;
    static const char *fixed[] = {"::",
                                  "::1",
                                  "1::",
                                  ":::",
                                  ":1::",
                                  "1:::2",
                                  "1::2::3",
                                  "1:2:3:4:5:6:7:8",
                                  "1:2:3:4:5:6:7:8:9",
                                  "1:2:3:4:5:6:7::",
                                  "::2:3:4:5:6:7:8",
                                  "1:2:3:4:5:6:7:8::",
                                  "12345::",
                                  "0000:00:0::0",
                                  "::ffff:1.2.3.4",
                                  "::ffff:1.2.3.4.",
                                  "::1.2.3",
                                  "::1.2.3.4.5",
                                  "1:2:3:4:5:6:1.2.3.4",
                                  "1:2:3:4:5:6:7:1.2.3.4",
                                  "::ffff:01.2.3.4",
                                  "::ffff:1.2.3.256",
                                  "::1.2..3",
                                  "1.2.3.4::",
                                  "::ffff:0.0.0.0",
                                  "FFFF::ffff",
                                  "1:2:3:4:5:6:7:8:",
                                  ":1:2"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) check_ip6(&fast, &slow, fixed[i]);
    static const char hex[] = "0123456789abcdefABCDEF";
    uint64_t rng = 777;
#define RND(n) rnd(&rng, n)
    size_t good = 0, total = 0;
    for (long round = 0; round < weft_test_scale(40000); round++) {
        char a[64];
        size_t n = 0;
        if (RND(4) == 0) { /* random text over the address alphabet */
            size_t len = 1 + RND(46);
            for (size_t i = 0; i < len; i++) a[n++] = "0123456789abcdefABCDEF:::...."[RND(29)];
        } else { /* groups, maybe a "::", maybe a dotted quad at the end */
            if (RND(8) == 0) a[n++] = ':';
            size_t groups = 1 + RND(9), gap = RND(groups + 3);
            for (size_t g = 0; g < groups && n < 50; g++) {
                if (g) a[n++] = ':';
                if (g == gap) a[n++] = ':';
                size_t len = RND(6) ? 1 + RND(4) : RND(6);
                for (size_t i = 0; i < len && n < 56; i++) a[n++] = hex[RND(22)];
            }
            if (RND(3) == 0 && n < 44) {
                if (RND(4)) a[n++] = ':';
                for (int o = 0; o < 4 && n < 58; o++) {
                    if (o) a[n++] = '.';
                    bool zero = RND(8) == 0, wide = RND(5) == 0;
                    unsigned v = (unsigned)(wide ? RND(400) : RND(256));
                    n += (size_t)snprintf(a + n, sizeof a - n, zero ? "0%u" : "%u", v);
                }
            }
            if (RND(10) == 0) a[n++] = ':';
        }
        if (n > 60) n = 60;
        a[n] = '\0';
        if (!strchr(a, ':')) continue;
        good += check_ip6(&fast, &slow, a);
        total++;
    }
#undef RND
    CHECK(good > total / 10 && good < total * 9 / 10);
}

TEST(partials_merge_to_the_single_run_and_corruption_is_refused)
{
    const char *all = path_in_tmp("all.log"), *a = path_in_tmp("a.log"), *b = path_in_tmp("b.log");
    gen_file(all, 400 << 10, 33, "default", 0.01, 0.1, false, 2000);
    size_t len;
    char *data = read_all(all, &len);
    const char *mid = (const char *)memchr(data + len / 3, '\n', len - len / 3) + 1;
    write_text(a, data, (size_t)(mid - data));
    write_text(b, mid, len - (size_t)(mid - data));
    free(data);
    char *want = run_json(all, 2, WEFT_LOGS_THREADS, 0);
    /* two runs, saved, merged */
    weft_logs_part_t *acc = weft_logs_part_create();
    weft_buf_t saved[2];
    const char *halves[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        run_out_t o;
        const char *files[] = {halves[i]};
        CHECK_EQ(run(files, 1, 1 + i, WEFT_LOGS_THREADS, 5000, NULL, false, &o, true), 0);
        weft_buf_init(&saved[i], 0);
        CHECK_EQ(weft_logs_part_serialize(o.part, &saved[i], true), 0);
        char err[128];
        CHECK_EQ(weft_logs_part_merge_bytes(acc, saved[i].data, saved[i].len, err, sizeof err), 0);
        weft_logs_part_destroy(o.part);
        free(o.json);
    }
    weft_logs_report_t rep;
    CHECK_EQ(weft_logs_report_build(acc, 10, 10, &rep), 0);
    weft_buf_t j;
    weft_buf_init(&j, 0);
    CHECK_EQ(weft_logs_write_json(&j, &rep), 0);
    CHECK_STR_EQ(j.data, want);
    weft_logs_report_free(&rep);
    weft_buf_free(&j);
    /* several files in one run give the same */
    run_out_t o;
    CHECK_EQ(run(halves, 2, 3, WEFT_LOGS_THREADS, 0, NULL, false, &o, false), 0);
    CHECK_STR_EQ(o.json, want);
    free(o.json);
    /* corruption: every single-byte flip, truncations and a wrong magic are refused */
    weft_logs_part_t *scratch = weft_logs_part_create();
    char err[128];
    for (size_t i = 0; i < saved[0].len; i += 1 + saved[0].len / 300) {
        saved[0].data[i] ^= 0x40;
        CHECK_EQ(weft_logs_part_merge_bytes(scratch, saved[0].data, saved[0].len, err, sizeof err),
                 WEFT_EPARSE);
        CHECK(strstr(err, "corrupt partial") != NULL);
        saved[0].data[i] ^= 0x40;
    }
    CHECK_EQ(weft_logs_part_merge_bytes(scratch, saved[0].data, saved[0].len - 1, err, sizeof err),
             WEFT_EPARSE);
    CHECK_EQ(weft_logs_part_merge_bytes(scratch, saved[0].data, 10, err, sizeof err), WEFT_EPARSE);
    CHECK_EQ(scratch->lines, 0); /* nothing was added on failure */
    weft_logs_part_destroy(scratch);
    for (int i = 0; i < 2; i++) weft_buf_free(&saved[i]);
    weft_logs_part_destroy(acc);
    free(want);
}

TEST(gzip_and_stdin_equal_the_file_run)
{
    const char *file = path_in_tmp("s.log"), *gz = path_in_tmp("s.log.gz");
    gen_file(file, 300 << 10, 44, "combined-rt", 0.01, 0.1, false, 500);
    size_t len;
    char *data = read_all(file, &len);
    gzFile g = gzopen(gz, "wb");
    CHECK(g != NULL);
    CHECK_EQ(gzwrite(g, data, (unsigned)len), (int)len);
    CHECK_EQ(gzclose(g), Z_OK);
    free(data);
    char *want = run_json(file, 2, WEFT_LOGS_THREADS, 0);
    const uint64_t chunks[] = {0, 1000, 77};
    for (size_t c = 0; c < 3; c++) {
        run_out_t o;
        const char *files[] = {gz};
        CHECK_EQ(run(files, 1, 2, c == 1 ? WEFT_LOGS_PROCESSES : WEFT_LOGS_THREADS, chunks[c], NULL,
                     false, &o, false),
                 0);
        CHECK_STR_EQ(o.json, want);
        free(o.json);
        /* standard input */
        int saved = dup(0), fd = open(file, O_RDONLY);
        CHECK(saved >= 0 && fd >= 0);
        dup2(fd, 0);
        close(fd);
        const char *in[] = {"-"};
        CHECK_EQ(run(in, 1, 3, WEFT_LOGS_THREADS, chunks[c], NULL, false, &o, false), 0);
        dup2(saved, 0);
        close(saved);
        CHECK_STR_EQ(o.json, want);
        free(o.json);
    }
    free(want);
}

/* `data` compressed with `codec` (gz, xz, bz2, zst) into `path`. */
static void write_compressed(const char *path, const char *codec, const char *data, size_t len)
{
    size_t cap = len + len / 2 + 65536, n = cap;
    char *out = malloc(cap);
    CHECK(out != NULL);
    if (strcmp(codec, "gz") == 0) {
        z_stream z = {0};
        CHECK_EQ(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
        z.next_in = (Bytef *)data;
        z.avail_in = (uInt)len;
        z.next_out = (Bytef *)out;
        z.avail_out = (uInt)cap;
        CHECK_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
        n = z.total_out;
        deflateEnd(&z);
    } else if (strcmp(codec, "xz") == 0) {
        size_t pos = 0;
        CHECK_EQ(lzma_easy_buffer_encode(1, LZMA_CHECK_CRC64, NULL, (const uint8_t *)data, len,
                                         (uint8_t *)out, &pos, cap),
                 LZMA_OK);
        n = pos;
    } else if (strcmp(codec, "bz2") == 0) {
        unsigned u = (unsigned)cap;
        CHECK_EQ(BZ2_bzBuffToBuffCompress(out, &u, (char *)data, (unsigned)len, 1, 0, 0), BZ_OK);
        n = u;
    } else {
        n = ZSTD_compress(out, cap, data, len, 3);
        CHECK(!ZSTD_isError(n));
    }
    write_text(path, out, n);
    free(out);
}

/* weft_logs_run's exit code, with its message in err (and the bytes it analysed). */
static uint64_t last_input_bytes;
static int run_err(const char *file, char *err, size_t errlen)
{
    const char *files[] = {file};
    weft_logs_run_opts_t o = {.files = files, .nfiles = 1, .jobs = 2, .mode = WEFT_LOGS_THREADS};
    weft_logs_run_result_t res;
    err[0] = '\0';
    int code = weft_logs_run(&o, &res, err, errlen);
    last_input_bytes = code ? 0 : res.input_bytes;
    if (!code) weft_logs_run_result_free(&res);
    return code;
}

/* xz, bzip2 and zstd were read as text, a truncated gzip file exited 0 with the lines before
 * the cut, gzip data followed by garbage was accepted, and FIFOs were refused. Each codec must
 * give the plain file's report (concatenated members too); an input cut anywhere inside its
 * compressed data, or followed by bytes of no member, is a usage error naming the file and the
 * compressed offset. */
TEST_T(compressed_inputs_by_magic_and_incomplete_ones_are_errors, 60)
{
    const char *file = path_in_tmp("c.log");
    gen_file(file, 200 << 10, 45, "combined", 0.01, 0.1, false, 500);
    size_t len;
    char *data = read_all(file, &len);
    char *want = run_json(file, 2, WEFT_LOGS_THREADS, 0);
    static const char *codecs[] = {"gz", "xz", "bz2", "zst"};
    char err[256];
    for (size_t c = 0; c < 4; c++) {
        char name[32];
        snprintf(name, sizeof name, "c.log.%s", codecs[c]);
        const char *z = path_in_tmp(name);
        write_compressed(z, codecs[c], data, len);
        for (int m = 0; m < 2; m++) {
            run_out_t o;
            const char *files[] = {z};
            CHECK_EQ(run(files, 1, 2, m ? WEFT_LOGS_PROCESSES : WEFT_LOGS_THREADS, 0, NULL, false,
                         &o, false),
                     0);
            CHECK_STR_EQ(o.json, want);
            free(o.json);
        }
        /* --timing and the result count decoded bytes, not compressed ones */
        CHECK_EQ(run_err(z, err, sizeof err), 0);
        CHECK_EQ(last_input_bytes, len);
        size_t zlen;
        char *zdata = read_all(z, &zlen);
        const char *cut = path_in_tmp("cut.bin");
        for (size_t at = 6; at < zlen; at += zlen / 7 + 1) { /* past the magic */
            write_text(cut, zdata, at);
            CHECK_EQ(run_err(cut, err, sizeof err), WEFT_EXIT_USAGE);
            CHECK(strstr(err, cut) != NULL);
            CHECK(strstr(err, "compressed byte") != NULL);
        }
        /* two members are one log of twice the lines; garbage after them is an error */
        char *two = malloc(2 * zlen + 8);
        CHECK(two != NULL);
        memcpy(two, zdata, zlen);
        memcpy(two + zlen, zdata, zlen);
        write_text(cut, two, 2 * zlen);
        run_out_t o;
        const char *files[] = {cut};
        CHECK_EQ(run(files, 1, 1, WEFT_LOGS_THREADS, 0, NULL, false, &o, false), 0);
        CHECK(strstr(o.json, "\"lines\":") != NULL);
        free(o.json);
        memcpy(two + zlen, "garbage\n", 8);
        write_text(cut, two, zlen + 8);
        CHECK_EQ(run_err(cut, err, sizeof err), WEFT_EXIT_USAGE);
        CHECK(strstr(err, "compressed byte") != NULL);
        free(two);
        free(zdata);
    }
    /* a FIFO is read as a stream */
    const char *fifo = path_in_tmp("fifo");
    CHECK_EQ(mkfifo(fifo, 0600), 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int fd = open(fifo, O_WRONLY);
        size_t off = 0;
        while (fd >= 0 && off < len) {
            ssize_t w = write(fd, data + off, len - off);
            if (w <= 0) break;
            off += (size_t)w;
        }
        _exit(off == len ? 0 : 1);
    }
    run_out_t o;
    const char *files[] = {fifo};
    CHECK_EQ(run(files, 1, 2, WEFT_LOGS_THREADS, 0, NULL, false, &o, false), 0);
    int st;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK_STR_EQ(o.json, want);
    free(o.json);
    free(want);
    free(data);
}

TEST_T(threads_and_processes_give_identical_results, 60)
{
    const char *file = path_in_tmp("p.log");
    gen_file(file, 512 << 10, 55, "default", 0.01, 0.1, false, 5000);
    ref_t r;
    ref_run(file, 0, &r);
    for (int j = 1; j <= 3; j++) {
        run_out_t t, p;
        const char *files[] = {file};
        CHECK_EQ(run(files, 1, j, WEFT_LOGS_THREADS, 40000, NULL, false, &t, false), 0);
        CHECK_EQ(
            run(files, 1, j, WEFT_LOGS_PROCESSES, 40000 + (uint64_t)j * 7, NULL, j == 2, &p, false),
            0);
        CHECK_STR_EQ(t.json, p.json);
        check_against_ref(p.json, &r);
        CHECK_EQ(p.nbad, r.nbad);
        for (size_t i = 0; i < p.nbad; i++) CHECK_EQ(p.bad_line[i], r.bad_line[i]);
        free(t.json);
        free(p.json);
    }
    ref_free(&r);
}

TEST(input_errors_are_usage_errors)
{
    run_out_t o;
    const char *missing[] = {path_in_tmp("nope.log")};
    CHECK_EQ(run(missing, 1, 2, WEFT_LOGS_THREADS, 0, NULL, false, &o, false), WEFT_EXIT_USAGE);
    const char *dir[] = {weft_test_tmpdir()};
    CHECK_EQ(run(dir, 1, 2, WEFT_LOGS_THREADS, 0, NULL, false, &o, false), WEFT_EXIT_USAGE);
    const char *file = path_in_tmp("ok.log");
    write_text(file, "x\n", 2);
    const char *ok[] = {file};
    CHECK_EQ(run(ok, 1, 2, WEFT_LOGS_THREADS, 0, "nginx:$status", false, &o, false),
             WEFT_EXIT_USAGE);
    const char *bad_gz = path_in_tmp("bad.gz");
    write_text(bad_gz, "\x1f\x8b\x08\x00garbage-that-is-not-deflate", 31);
    const char *gz[] = {bad_gz};
    CHECK_EQ(run(gz, 1, 2, WEFT_LOGS_THREADS, 0, NULL, false, &o, false), WEFT_EXIT_USAGE);
}

TEST(counts_past_32_bits_carry_exactly)
{
    weft_logs_part_t *p = weft_logs_part_create();
    weft_logs_part_t *q = weft_logs_part_create();
    int oom = 0;
    uint32_t key = 0x0a000001;
    int k = weft_logs_ip4_partition(key);
    weft_logs_t4_t *t = &p->ip4[k];
    weft_logs_t4_add(t, key, UINT32_MAX - 2, &oom);
    CHECK_EQ(weft_logs_part_ip4_count(p, key), UINT32_MAX - 2);
    weft_logs_rec_t r = {.family = 4, .ip4 = key, .hour = 1, .status = 200, .rt_us = -1};
    for (int i = 0; i < 5; i++) weft_logs_part_record(p, &r);
    CHECK_EQ(weft_logs_part_ip4_count(p, key), (uint64_t)UINT32_MAX + 3);
    weft_logs_t4_add(&q->ip4[k], key, (uint64_t)UINT32_MAX * 3, &oom);
    CHECK_EQ(weft_logs_part_merge(p, q), 0);
    CHECK_EQ(weft_logs_part_ip4_count(p, key), (uint64_t)UINT32_MAX * 4 + 3);
    CHECK_EQ(oom, 0);
    weft_logs_part_destroy(p);
    weft_logs_part_destroy(q);
}

TEST(html_is_self_contained_and_escaped)
{
    const char *text = "1.2.3.4 - - [15/Jan/2025:10:30:45 +0800] \"GET /<script>alert('x')"
                       "</script>&\xff HTTP/1.1\" 200 1 0.1\n";
    const char *file = path_in_tmp("h.log");
    write_text(file, text, strlen(text));
    run_out_t o;
    const char *files[] = {file};
    CHECK_EQ(run(files, 1, 1, WEFT_LOGS_THREADS, 0, NULL, false, &o, true), 0);
    weft_logs_report_t rep;
    CHECK_EQ(weft_logs_report_build(o.part, 10, 10, &rep), 0);
    weft_buf_t b;
    weft_buf_init(&b, 0);
    weft_logs_meta_t meta = {.inputs = "<in>", .formats = "default"};
    CHECK_EQ(weft_logs_write_html(&b, &rep, &meta, 0), 0);
    /* Text from the log is only inside the embedded JSON, with '<' as \u003c: it cannot close
     * the script element. Four scripts: the description, the report, uPlot and the page's. */
    CHECK(strstr(b.data, "\"path\":\"/\\u003cscript>alert('x')\\u003c/script>&\\ufffd\"") != NULL);
    CHECK(strstr(b.data, "\"inputs\":\"\\u003cin>\"") != NULL);
    CHECK(strstr(b.data, "alert('x')</script>") == NULL);
    size_t nscripts = 0;
    for (const char *p = b.data; (p = strstr(p, "</script>")) != NULL; p++) nscripts++;
    CHECK_EQ(nscripts, 4);
    CHECK(strstr(b.data, "id=\"weft-report\"") != NULL);
    CHECK(strstr(b.data, "uPlot") != NULL);
    CHECK(strstr(b.data, " src=") == NULL); /* nothing fetched */
    CHECK(strstr(b.data, "http-equiv=\"refresh\"") == NULL);
    weft_buf_free(&b);
    weft_buf_init(&b, 0);
    CHECK_EQ(weft_logs_write_html(&b, &rep, &meta, 1), 0);
    CHECK(strstr(b.data, "http-equiv=\"refresh\" content=\"1\"") != NULL);
    weft_buf_free(&b);
    weft_buf_init(&b, 0);
    CHECK_EQ(weft_logs_write_json(&b, &rep), 0);
    CHECK(strstr(b.data, "\"path\":\"/<script>alert('x')</script>&\\ufffd\"") != NULL);
    weft_buf_free(&b);
    weft_logs_report_free(&rep);
    weft_logs_part_destroy(o.part);
    free(o.json);
}

TEST(generator_is_deterministic)
{
    const char *a = path_in_tmp("g1.log"), *b = path_in_tmp("g2.log"), *c = path_in_tmp("g3.log");
    gen_file(a, 64 << 10, 7, "combined", 0.01, 0.1, true, 100);
    gen_file(b, 64 << 10, 7, "combined", 0.01, 0.1, true, 100);
    gen_file(c, 64 << 10, 8, "combined", 0.01, 0.1, true, 100);
    size_t la, lb, lc;
    char *x = read_all(a, &la), *y = read_all(b, &lb), *z = read_all(c, &lc);
    CHECK(la == lb && memcmp(x, y, la) == 0);
    CHECK(la != lc || memcmp(x, z, la) != 0);
    CHECK(la >= 64 << 10 && la < (64 << 10) + 1024);
    free(x);
    free(y);
    free(z);
    /* every client of a small population appears once the log is long enough */
    const char *d = path_in_tmp("g4.log");
    gen_file(d, 200 << 10, 1, "default", 0, 0.1, false, 300);
    ref_t r;
    ref_run(d, 0, &r);
    CHECK_EQ(r.distinct, 300);
    ref_free(&r);
    /* also when the log is shorter than 4x the population (--ips 5000000 on 1 GB gave 3.37 M) */
    const char *e = path_in_tmp("g5.log");
    gen_file(e, 4 << 20, 1, "default", 0, 0.02, false, 30000);
    ref_run(e, 0, &r);
    CHECK_EQ(r.distinct, 30000);
    ref_free(&r);
}

TEST(chunk_bounds_own_the_lines_that_start_inside)
{
    const char *m = "ab\ncd\n\nefgh\ni";
    uint64_t size = strlen(m), s, e;
    weft_logs_chunk_bounds(m, size, 0, 1, &s, &e);
    CHECK(s == 0 && e == 3);
    weft_logs_chunk_bounds(m, size, 1, 3, &s, &e);
    CHECK(s == 3 && e == 3); /* no line starts in [1, 3) */
    weft_logs_chunk_bounds(m, size, 3, 7, &s, &e);
    CHECK(s == 3 && e == 7);
    weft_logs_chunk_bounds(m, size, 7, 100, &s, &e);
    CHECK(s == 7 && e == size);
}

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* Adds the keys of partition 0 among mix64(from..) until `n` are in. */
static void add_ip4_keys(weft_logs_part_t *p, uint64_t from, uint32_t n, uint64_t count)
{
    int oom = 0;
    for (uint64_t i = from; n; i++) {
        uint32_t key = (uint32_t)mix64(i);
        if (weft_logs_ip4_partition(key) != 0) continue;
        weft_logs_t4_add(&p->ip4[0], key, count, &oom);
        n--;
    }
    CHECK_EQ(oom, 0);
}

/* Two workers' tables of the same size, the first nearly full, two thirds of the second's keys
 * new to it: the merge swept the second in slot order onto the same home slots of the first, so
 * the swept prefix passed 100 % occupancy before the table grew at 3/4 overall, and linear
 * probing walked one ever longer run (0.66 s for this merge instead of 20 ms; -j2 took 25 s on
 * 5 M distinct clients where -j1 took 1 s). A process partial merged the same way. The work
 * (slots examined per key) must stay small through both merges. */
TEST_T(merging_overlapping_ipv4_tables_probes_few_slots, 120)
{
    weft_logs_part_t *a = weft_logs_part_create();
    weft_logs_part_t *a2 = weft_logs_part_create();
    weft_logs_part_t *b = weft_logs_part_create();
    CHECK(a && a2 && b);
    const uint32_t na = 758000, nb = 738000; /* a: 72 % of 1 Mi slots */
    add_ip4_keys(a, 0, na, 1);
    add_ip4_keys(a2, 0, na, 1);
    add_ip4_keys(b, (uint64_t)na * 4 - 1000000, nb, 2); /* ~250 k of them shared with a */
    CHECK_EQ(a->ip4[0].mask + 1, 1u << 20);
    CHECK_EQ(b->ip4[0].mask + 1, 1u << 20);
    b->lines = b->parsed = b->hourly[0] = b->status[200] = (uint64_t)nb * 2;
    weft_buf_t buf;
    weft_buf_init(&buf, SIZE_MAX);
    CHECK_EQ(weft_logs_part_serialize(b, &buf, false), 0);

    uint64_t before = a->ip4[0].probes;
    CHECK_EQ(weft_logs_part_merge_ip4(a, &b, 1, 0), 0);
    CHECK((a->ip4[0].probes - before) / nb < 8);
    before = a2->ip4[0].probes;
    char err[128];
    CHECK_EQ(weft_logs_part_merge_bytes(a2, buf.data, buf.len, err, sizeof err), 0);
    CHECK((a2->ip4[0].probes - before) / nb < 8);
    CHECK_EQ(a->ip4[0].used, a2->ip4[0].used);
    for (uint64_t i = 0; i < 4000000; i += 101) {
        uint32_t key = (uint32_t)mix64(i);
        CHECK_EQ(weft_logs_part_ip4_count(a, key), weft_logs_part_ip4_count(a2, key));
    }
    weft_buf_free(&buf);
    weft_logs_part_destroy(a);
    weft_logs_part_destroy(a2);
    weft_logs_part_destroy(b);
}

/* Presets rejected lines with fields after their last one (nginx's $upstream_response_time
 * after $request_time), which GoAccess accepts. After a blank, the rest of the line is ignored;
 * a last field running into text is still malformed. The lines are padded to exercise the
 * vector path and followed by others as in a chunk. */
TEST(presets_accept_trailing_fields)
{
    static const struct {
        const char *fmt, *line;
    } cases[] = {
        {"default", "10.1.2.3 - - [15/Jan/2025:10:30:45 +0000] \"GET /a/b?x=1 HTTP/1.1\" 200 512 "
                    "0.052"},
        {"common", "10.1.2.3 - - [15/Jan/2025:10:30:45 +0000] \"GET /a/b?x=1 HTTP/1.1\" 200 512"},
        {"combined", "10.1.2.3 - - [15/Jan/2025:10:30:45 +0000] \"GET /a/b?x=1 HTTP/1.1\" 200 512 "
                     "\"http://r/\" \"Mozilla/5.0 (X11; Linux x86_64)\""},
        {"combined-rt", "10.1.2.3 - - [15/Jan/2025:10:30:45 +0000] \"GET /a/b?x=1 HTTP/1.1\" 200 "
                        "512 \"http://r/\" \"Mozilla/5.0 (X11; Linux x86_64)\" 0.052"},
    };
    static const char *tails[] = {" 0.050", "\t0.050 \"upstream\" -", "  ", " x"};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        weft_logs_format_t f;
        char err[128];
        CHECK_EQ(weft_logs_format_compile(cases[c].fmt, &f, err, sizeof err), 0);
        weft_logs_rec_t want, got;
        const char *base = cases[c].line;
        CHECK(weft_logs_parse_line(&f, base, base + strlen(base), &want));
        for (size_t t = 0; t < sizeof tails / sizeof tails[0]; t++) {
            char line[512], chunk[2048];
            snprintf(line, sizeof line, "%s%s", base, tails[t]);
            CHECK(weft_logs_parse_line(&f, line, line + strlen(line), &got));
            CHECK_EQ(got.ip4, want.ip4);
            CHECK_EQ(got.status, want.status);
            CHECK_EQ(got.bytes, want.bytes);
            CHECK_EQ(got.rt_us, want.rt_us);
            CHECK_EQ(got.path_len, want.path_len);
            /* three lines in a chunk, through the batch parser (the vector path when present) */
            int n = snprintf(chunk, sizeof chunk, "%s\n%s\r\n%s\n", line, line, line);
            const char *p = chunk;
            weft_logs_rec_t recs[4];
            CHECK_EQ(weft_logs_parse_lines(&f, &p, chunk + n, recs, 4), 3);
            CHECK(p == chunk + n);
            CHECK_EQ(recs[2].rt_us, want.rt_us);
        }
        char glued[512];
        snprintf(glued, sizeof glued, "%sx 1", base);
        CHECK(!weft_logs_parse_line(&f, glued, glued + strlen(glued), &got));
    }
}

/* --mode processes failed on a log still being written ("changed during the run": the workers
 * saw a larger size and a new mtime), and the half-written last line of the snapshot counted as
 * malformed. While another process appends lines in two writes each, both modes must analyse
 * the snapshot and find no malformed line. */
TEST_T(a_growing_log_is_analysed_as_its_snapshot, 60)
{
    const char *file = path_in_tmp("grow.log");
    gen_file(file, 400 << 10, 46, "default", 0, 0.1, false, 500);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
        if (getppid() == 1) _exit(1);
        int fd = open(file, O_WRONLY | O_APPEND);
        const char *line =
            "10.9.8.7 - - [15/Jan/2025:10:30:45 +0000] \"GET /grow HTTP/1.1\" 200 5 0.1\n";
        size_t n = strlen(line);
        for (;;) {
            if (write(fd, line, 20) != 20 || (usleep(100), 0) ||
                write(fd, line + 20, n - 20) != (ssize_t)(n - 20))
                _exit(1);
            usleep(100);
        }
    }
    for (int m = 0; m < 2; m++) {
        const char *files[] = {file};
        weft_logs_run_opts_t o = {.files = files,
                                  .nfiles = 1,
                                  .jobs = 2,
                                  .mode = m ? WEFT_LOGS_PROCESSES : WEFT_LOGS_THREADS,
                                  .chunk_size = 8192};
        weft_logs_run_result_t res;
        char err[256] = "";
        int code = weft_logs_run(&o, &res, err, sizeof err);
        if (code) fprintf(stderr, "mode %d: %s\n", m, err);
        CHECK_EQ(code, 0);
        CHECK_EQ(res.part->malformed, 0);
        CHECK(res.part->lines >= 4000);
        weft_logs_run_result_free(&res);
    }
    kill(pid, SIGKILL);
    int st;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
}

/* Percentiles printed six digits where the log had three (0.016031 for 0.016): they are rounded
 * to the three significant digits the histogram resolves. */
TEST(percentiles_are_printed_at_the_histogram_precision)
{
    CHECK_EQ(weft_logs_round_quantile(16031), 16000);
    CHECK_EQ(weft_logs_round_quantile(250367), 250000);
    CHECK_EQ(weft_logs_round_quantile(999), 999);
    CHECK_EQ(weft_logs_round_quantile(1234567), 1230000);
    const char *file = path_in_tmp("q.log");
    const char *text = "1.2.3.4 - - [15/Jan/2025:10:30:45 +0000] \"GET / HTTP/1.1\" 200 1 0.016\n"
                       "1.2.3.4 - - [15/Jan/2025:10:30:45 +0000] \"GET / HTTP/1.1\" 200 1 0.020\n";
    write_text(file, text, strlen(text));
    char *json = run_json(file, 1, WEFT_LOGS_THREADS, 0);
    CHECK(strstr(json, "\"p50\":0.016,") != NULL);
    free(json);
}

/* GoAccess's static-request panel: by extension, case-insensitive, only in the last segment. */
TEST(static_requests_by_extension)
{
    CHECK(weft_logs_is_static("/a/b.CSS", 8));
    CHECK(weft_logs_is_static("/f.woff2", 8));
    CHECK(weft_logs_is_static("/x.tar.gz", 9));
    CHECK(!weft_logs_is_static("/a.css/b", 8));
    CHECK(!weft_logs_is_static("/api/users", 10));
    CHECK(!weft_logs_is_static("/.", 2));
    CHECK(!weft_logs_is_static("/f.html", 7));
    CHECK(!weft_logs_is_static("css", 3));
}

/* GoAccess's --exclude-ip and --ignore-status: the filtered run must give the statistics of the
 * log without those lines (counted as excluded instead), for both modes and any -j. */
TEST_T(filters_leave_lines_out_exactly, 60)
{
    const char *file = path_in_tmp("f.log"), *kept = path_in_tmp("kept.log");
    gen_file(file, 300 << 10, 47, "default", 0.01, 0.05, false, 300);
    size_t len;
    char *data = read_all(file, &len);
    weft_logs_format_t fmt;
    char err[128];
    CHECK_EQ(weft_logs_format_compile("default", &fmt, err, sizeof err), 0);
    /* exclude the client of the first line, and every 404 */
    weft_logs_rec_t first;
    CHECK(weft_logs_parse_line(&fmt, data, memchr(data, '\n', len), &first));
    CHECK_EQ(first.family, 4);
    weft_logs_filter_t filt;
    memset(&filt, 0, sizeof filt);
    filt.any = true;
    filt.ip4[filt.n4++] = first.ip4;
    filt.status[404 >> 6] |= UINT64_C(1) << (404 & 63);
    FILE *out = fopen(kept, "wb");
    CHECK(out != NULL);
    uint64_t excluded = 0;
    for (char *p = data; p < data + len;) {
        char *nl = memchr(p, '\n', (size_t)(data + len - p));
        char *e = nl ? nl : data + len;
        weft_logs_rec_t r;
        bool drop = weft_logs_parse_line(&fmt, p, e, &r) &&
                    ((r.family == 4 && r.ip4 == first.ip4) || r.status == 404);
        if (drop)
            excluded++;
        else
            fwrite(p, 1, (size_t)(e - p) + (nl ? 1 : 0), out);
        p = nl ? nl + 1 : data + len;
    }
    CHECK_EQ(fclose(out), 0);
    CHECK(excluded > 10);
    char *want = run_json(kept, 1, WEFT_LOGS_THREADS, 0);
    const char *w0 = strstr(want, "\"parsed\""), *w1 = strstr(want, ",\"excluded\"");
    CHECK(w0 && w1);
    for (int m = 0; m < 2; m++) {
        for (int j = 1; j <= 3; j += 2) {
            const char *files[] = {file};
            weft_logs_run_opts_t o = {.files = files,
                                      .nfiles = 1,
                                      .jobs = j,
                                      .mode = m ? WEFT_LOGS_PROCESSES : WEFT_LOGS_THREADS,
                                      .chunk_size = 20000,
                                      .filter = &filt};
            weft_logs_run_result_t res;
            CHECK_EQ(weft_logs_run(&o, &res, err, sizeof err), 0);
            CHECK_EQ(res.part->excluded, excluded);
            weft_logs_report_t rep;
            CHECK_EQ(weft_logs_report_build(res.part, 10, 10, &rep), 0);
            weft_buf_t b;
            weft_buf_init(&b, 0);
            CHECK_EQ(weft_logs_write_json(&b, &rep), 0);
            const char *g0 = strstr(b.data, "\"parsed\""), *g1 = strstr(b.data, ",\"excluded\"");
            CHECK(g0 && g1 && g1 - g0 == w1 - w0 && memcmp(g0, w0, (size_t)(w1 - w0)) == 0);
            weft_buf_free(&b);
            weft_logs_report_free(&rep);
            weft_logs_run_result_free(&res);
        }
    }
    free(want);
    free(data);
}

/* The bar on a stream: decoded bytes and lines with their rates, no percentage when the size is
 * unknown; with a known size the fraction of the file's (compressed) bytes. */
TEST(progress_shows_decoded_bytes_and_lines)
{
    weft_progress_t p;
    weft_progress_start(&p, "weft logs", 0);
    p.rates = true;
    p.items_unit = "lines";
    p.bytes = 2500000000u;
    p.items = 10000000;
    char buf[200];
    weft_progress_format(&p, p.start_ns + 2000000000u, buf, sizeof buf);
    CHECK(strstr(buf, "2.5 GB  1.2 GB/s  10.0 M lines  5.0 M lines/s  2.0s") != NULL);
    CHECK(strchr(buf, '%') == NULL);
    weft_progress_start(&p, "weft logs", 1000);
    p.rates = true;
    p.done = 250; /* compressed bytes read */
    p.bytes = 4000;
    weft_progress_format(&p, p.start_ns + 1000000000u, buf, sizeof buf);
    CHECK(strstr(buf, " 25.0%  4.0 kB  4.0 kB/s  1.0s") != NULL);
}

/* ---- live mode (--follow) ---------------------------------------------------------------- */

/* `weft ARGV` in a child process whose standard output is a pipe (*out) and whose standard
 * input is `in` (or /dev/null for -1); `other` (or -1), the parent's end of `in`, is closed in
 * the child. */
static pid_t spawn_weft(char **argv, int in, int other, int *out)
{
    int p[2];
    CHECK_EQ(pipe(p), 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        if (other >= 0) close(other);
        if (in < 0) in = open("/dev/null", O_RDONLY);
        dup2(in, STDIN_FILENO);
        dup2(p[1], STDOUT_FILENO);
        close(p[0]);
        close(p[1]);
        int argc = 0;
        while (argv[argc]) argc++;
        int code = weft_cli_main(argc, argv);
        fflush(stdout);
        _exit(code);
    }
    close(p[1]);
    *out = p[0];
    return pid;
}

/* Reads the child's JSON lines until one reports `want` lines, or with want 0 until the end of
 * its output; returns that line (owned), or NULL if the output ended first. Blocking reads:
 * the test's timeout bounds them. */
static char *await_json_lines(int fd, uint64_t want)
{
    static char buf[1 << 20];
    static size_t len;
    char *last = NULL;
    for (;;) {
        char *nl;
        while ((nl = memchr(buf, '\n', len)) != NULL) {
            size_t n = (size_t)(nl - buf) + 1;
            free(last);
            last = strndup(buf, n);
            memmove(buf, buf + n, len - n);
            len -= n;
            const char *l = strstr(last, "{\"lines\":");
            if (want && l && strtoull(l + 9, NULL, 10) == want) return last;
        }
        ssize_t r = read(fd, buf + len, sizeof buf - len);
        if (r <= 0) {
            if (want) free(last);
            return want ? NULL : last;
        }
        len += (size_t)r;
    }
}

/* The output of a batch `weft ARGV` (one JSON line), owned. */
static char *batch_json(char **argv)
{
    int out;
    pid_t pid = spawn_weft(argv, -1, -1, &out);
    char *json = await_json_lines(out, 0);
    int st;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close(out);
    return json;
}

/* The lines of a generated log, to append in pieces. */
static char **log_lines(uint64_t size, uint64_t seed, size_t *n)
{
    const char *src = path_in_tmp("src.log");
    gen_file(src, size, seed, "combined", 0.02, 0.1, false, 500);
    size_t len;
    char *text = read_all(src, &len);
    size_t cap = 1024;
    char **lines = malloc(cap * sizeof *lines);
    *n = 0;
    for (char *p = text, *e; p < text + len; p = e + 1) {
        e = memchr(p, '\n', (size_t)(text + len - p));
        if (*n == cap) lines = realloc(lines, (cap *= 2) * sizeof *lines);
        lines[(*n)++] = strndup(p, (size_t)(e - p) + 1);
    }
    free(text);
    return lines;
}

static void append_lines(const char *path, char **lines, size_t from, size_t to)
{
    FILE *f = fopen(path, "ab");
    CHECK(f != NULL);
    for (size_t i = from; i < to; i++) fputs(lines[i], f);
    CHECK(fclose(f) == 0);
}

/* --follow counts a file as it grows, through a rename rotation (the old file still written
 * after the rename), a line written in two pieces and a copytruncate; SIGINT prints the final
 * report and exits 0, and that report equals a batch run over the rotated files and the current
 * one. Each step waits until the follower has counted what was written (no sleeps). */
TEST_T(follow_file_through_rotations_equals_batch, 120)
{
    size_t n;
    char **lines = log_lines(256 << 10, 11, &n);
    CHECK(n > 1200);
    const char *log = path_in_tmp("live.log"), *r1 = path_in_tmp("live.log.1"),
               *r2 = path_in_tmp("live.log.2");
    append_lines(log, lines, 0, 400);
    const char *html = path_in_tmp("live.html");
    char *argv[] = {"weft",   "logs",       "--follow",  "--json",
                    "--html", (char *)html, (char *)log, NULL};
    int out;
    pid_t pid = spawn_weft(argv, -1, -1, &out);
    free(await_json_lines(out, 400));
    /* The page was rewritten (renamed into place) before the JSON line of the same tick. */
    size_t hlen;
    char *page = read_all(html, &hlen);
    CHECK(strstr(page, "http-equiv=\"refresh\"") != NULL);
    CHECK(strstr(page, "id=\"weft-report\">{\"lines\":400,") != NULL);
    free(page);
    /* A line in two pieces: counted once, when whole. */
    size_t half = strlen(lines[400]) / 2;
    FILE *f = fopen(log, "ab");
    CHECK(f != NULL);
    CHECK(fwrite(lines[400], 1, half, f) == half);
    CHECK(fclose(f) == 0);
    f = fopen(log, "ab");
    CHECK(f != NULL);
    CHECK(fputs(lines[400] + half, f) >= 0);
    CHECK(fclose(f) == 0);
    append_lines(log, lines, 401, 600);
    free(await_json_lines(out, 600));
    /* rename rotation: the writer keeps writing the old file a little, then the new one */
    CHECK_EQ(rename(log, r1), 0);
    append_lines(r1, lines, 600, 700);
    append_lines(log, lines, 700, 1000);
    free(await_json_lines(out, 1000));
    /* copytruncate: copied, truncated, then written again (less than it held) */
    size_t len;
    char *copy = read_all(log, &len);
    write_text(r2, copy, len);
    free(copy);
    CHECK_EQ(truncate(log, 0), 0);
    append_lines(log, lines, 1000, 1100);
    free(await_json_lines(out, 1100));
    CHECK_EQ(kill(pid, SIGINT), 0);
    char *final = await_json_lines(out, 0);
    int st;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close(out);
    char *batch[] = {"weft", "logs", "--json", "-j2", (char *)r1, (char *)r2, (char *)log, NULL};
    char *want = batch_json(batch);
    CHECK(final != NULL && want != NULL);
    if (strcmp(final, want) != 0) fprintf(stderr, "follow: %s\nbatch:  %s\n", final, want);
    CHECK(strcmp(final, want) == 0);
    page = read_all(html, &hlen); /* the final page: the final report, no more reloading */
    CHECK(strstr(page, "http-equiv=\"refresh\"") == NULL);
    final[strlen(final) - 1] = '\0'; /* without its newline; these paths have no '<' */
    CHECK(strstr(page, final) != NULL);
    free(page);
    free(final);
    free(want);
    for (size_t i = 0; i < n; i++) free(lines[i]);
    free(lines);
}

/* `tail -f access.log | weft logs --follow --json -`: standard input is counted as it arrives,
 * and its end (a last line without a newline included) ends the run with the final report,
 * equal to a batch run over the same bytes. */
TEST_T(follow_stdin_counts_as_lines_arrive, 120)
{
    size_t n;
    char **lines = log_lines(64 << 10, 12, &n);
    CHECK(n > 300);
    int in[2];
    CHECK_EQ(pipe(in), 0);
    char *argv[] = {"weft", "logs", "--follow", "--json", "-", NULL};
    int out;
    pid_t pid = spawn_weft(argv, in[0], in[1], &out);
    close(in[0]);
    const char *all = path_in_tmp("all.log");
    FILE *copy = fopen(all, "wb");
    CHECK(copy != NULL);
    for (size_t i = 0; i < 200; i++) {
        CHECK(write(in[1], lines[i], strlen(lines[i])) == (ssize_t)strlen(lines[i]));
        fputs(lines[i], copy);
    }
    free(await_json_lines(out, 200));
    for (size_t i = 200; i < n; i++) {
        size_t len = strlen(lines[i]) - (i == n - 1); /* the last without its newline */
        CHECK(write(in[1], lines[i], len) == (ssize_t)len);
        fwrite(lines[i], 1, len, copy);
    }
    CHECK(fclose(copy) == 0);
    close(in[1]);
    char *final = await_json_lines(out, 0);
    int st;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close(out);
    char *batch[] = {"weft", "logs", "--json", "-j2", (char *)all, NULL};
    char *want = batch_json(batch);
    CHECK(final != NULL && want != NULL && strcmp(final, want) == 0);
    CHECK(strstr(want, "{\"lines\":") == want);
    free(final);
    free(want);
    for (size_t i = 0; i < n; i++) free(lines[i]);
    free(lines);
}

/* ---- the GoAccess panels ------------------------------------------------------------------- */

/* The whole report (every panel on, every row) as JSON, from a run with `filter` (NULL: none,
 * which counts every panel). */
static char *run_panels(const char *file, int jobs, weft_logs_mode_t mode, uint64_t chunk,
                        const char *format, const weft_logs_filter_t *filter, weft_buf_t *partial)
{
    const char *files[] = {file};
    weft_logs_run_opts_t o = opts_for(files, 1, jobs, mode, chunk, format);
    o.filter = filter;
    weft_logs_run_result_t res;
    char err[256];
    CHECK_MSG(weft_logs_run(&o, &res, err, sizeof err) == 0, "%s", err);
    if (partial) CHECK_EQ(weft_logs_part_serialize(res.part, partial, true), 0);
    weft_logs_report_t rep;
    CHECK_EQ(weft_logs_report_build(res.part, 1000000, 1000000, &rep), 0);
    weft_buf_t b;
    weft_buf_init(&b, 0);
    CHECK_EQ(weft_logs_write_json(&b, &rep), 0);
    weft_logs_report_free(&rep);
    weft_logs_run_result_free(&res);
    return weft_buf_steal(&b, NULL);
}

/* Runs tests/logs-panels-ref.py (an independent count in Python) on the log and weft's JSON. */
static void check_panels_ref(const char *log, const char *json, bool host)
{
    char src[1024], cmd[3200];
    snprintf(src, sizeof src, "%s", __FILE__); /* .../tests/test-logs.c */
    char *slash = strrchr(src, '/');
    CHECK(slash != NULL);
    *slash = '\0';
    const char *jf = path_in_tmp("panels.json");
    write_text(jf, json, strlen(json));
    snprintf(cmd, sizeof cmd, "python3 '%s/logs-panels-ref.py' '%s' '%s' %s 2>&1", src, log, jf,
             host ? "host" : "");
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL);
    char out[2048] = "";
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    CHECK_MSG(st == 0 && strncmp(out, "ok", 2) == 0, "reference: %s", out);
}

/* Generated combined-rt lines, plus hand-written ones: escaped paths that decode to the same
 * text, no protocol, a query string, an IPv4-mapped client, referrers with ports and queries. */
static void panels_log(const char *path, bool host)
{
    const char *gen = path_in_tmp("panels-gen.log");
    gen_file(gen, 200 << 10, 77, "combined-rt", 0, 0.1, false, 400);
    size_t len;
    char *data = read_all(gen, &len);
    static const char extra[] =
        "10.0.0.1 - - [14/Jan/2025:23:59:59 +0000] \"GET /docs/a%20b.html HTTP/1.1\" 200 10 "
        "\"https://ex.org:8443/x?y=1\" \"Mozilla/5.0 (compatible; ExampleCrawler/1.0)\" 0.001\n"
        "10.0.0.1 - - [14/Jan/2025:23:59:59 +0000] \"GET /docs/a b.html\" 200 10 \"-\" "
        "\"Mozilla/5.0 (compatible; ExampleCrawler/1.0)\" "
        "0.001\n"
        "::ffff:10.0.0.1 - - [15/Jan/2025:00:00:00 +0000] \"GET /docs/a%20b.html?q=%20 HTTP/1.1\" "
        "200 12 \"http://ex.org\" \"Mozilla/5.0 (compatible; ExampleCrawler/1.0)\" 1.5\n"
        "10.0.0.2 - - [15/Jan/2025:00:00:00 +0000] \"GET /%61%2Fb%00 HTTP/1.0\" 404 - \"\" \"\" "
        "-\n"
        /* the first line's visitor again, the URL and the site spelled otherwise: one visitor
         * of each row */
        "10.0.0.1 - - [14/Jan/2025:23:59:59 +0000] \"GET /docs/%61%20b.html HTTP/1.1\" 200 10 "
        "\"https://ex.org:8443/other\" \"Mozilla/5.0 (compatible; ExampleCrawler/1.0)\" 0.001\n";
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    int k = 0;
    for (const char *p = data, *end = data + len; p < end; k++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        if (host) fprintf(f, "h%d.example.org ", k % 7);
        fwrite(p, 1, n, f);
        p += n;
    }
    for (const char *p = extra; *p; k++) {
        const char *nl = strchr(p, '\n');
        if (host) fprintf(f, "v%d.example.org ", k % 3);
        fwrite(p, 1, (size_t)(nl - p) + 1, f);
        p = nl + 1;
    }
    CHECK(fclose(f) == 0);
    free(data);
}

TEST_T(goaccess_panels_equal_an_independent_count_for_every_worker_count_and_mode, 120)
{
    const char *hosted = "nginx:$host $remote_addr $ident $remote_user [$time_local] \"$request\" "
                         "$status $body_bytes_sent \"$http_referer\" \"$http_user_agent\" "
                         "$request_time";
    for (int host = 0; host < 2; host++) {
        const char *log = path_in_tmp("panels.log");
        panels_log(log, host);
        const char *fmt = host ? hosted : "combined-rt";
        weft_buf_t part;
        weft_buf_init(&part, 0);
        char *one = run_panels(log, 1, WEFT_LOGS_THREADS, 0, fmt, NULL, &part);
        check_panels_ref(log, one, host);
        CHECK(strstr(one, "{\"method\":\"GET\",\"path\":\"/docs/a b.html\",\"protocol\":"
                          "\"HTTP/1.1\",\"hits\":3,\"visitors\":2,\"bytes\":32,\"rt_avg\":0.500666,"
                          "\"rt_sum\":1.502,\"rt_max\":1.5}") != NULL);
        CHECK(strstr(one, "{\"name\":\"ex.org:8443\",\"hits\":2,\"visitors\":1,") != NULL);
        CHECK(strstr(one, "\"path\":\"/a/b%00\"") != NULL);
        CHECK(strstr(one, "{\"name\":\"Other crawlers\",\"hits\":") != NULL);
        CHECK((strstr(one, "\"vhosts\":") != NULL) == (host == 1));
        const struct {
            int jobs;
            weft_logs_mode_t mode;
            uint64_t chunk;
        } runs[] = {{2, WEFT_LOGS_THREADS, 0},
                    {3, WEFT_LOGS_THREADS, 4099},
                    {2, WEFT_LOGS_PROCESSES, 0},
                    {1, WEFT_LOGS_PROCESSES, 3001}};
        for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
            char *other =
                run_panels(log, runs[i].jobs, runs[i].mode, runs[i].chunk, fmt, NULL, NULL);
            CHECK_MSG(strcmp(one, other) == 0, "run %zu differs", i);
            free(other);
        }
        /* the partial carries every panel */
        weft_logs_part_t *back = weft_logs_part_create();
        CHECK(back != NULL);
        char err[160];
        CHECK_EQ(weft_logs_part_merge_bytes(back, part.data, part.len, err, sizeof err), 0);
        weft_logs_report_t rep;
        CHECK_EQ(weft_logs_report_build(back, 1000000, 1000000, &rep), 0);
        weft_buf_t b;
        weft_buf_init(&b, 0);
        CHECK_EQ(weft_logs_write_json(&b, &rep), 0);
        CHECK_MSG(b.len == strlen(one) && memcmp(b.data, one, b.len) == 0, "partial differs");
        weft_buf_free(&b);
        weft_logs_report_free(&rep);
        weft_logs_part_destroy(back);
        weft_buf_free(&part);
        free(one);
    }
}

TEST(user_agents_classify_into_os_browser_and_crawler)
{
    static const struct {
        const char *ua, *os, *browser, *crawler;
    } cases[] = {
        {"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/120.0 Safari/537.36 Edg/120.0",
         "Windows", "Edge", NULL},
        {"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/120.0 Mobile Safari/537.36",
         "Android", "Chrome", NULL},
        {"Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
         "Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
         "iOS", "Safari", NULL},
        {"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) "
         "Version/17.2 Safari/605.1.15",
         "macOS", "Safari", NULL},
        {"Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0", "Linux",
         "Firefox", NULL},
        {"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "Unknown",
         "Crawlers", "Googlebot"},
        {"Mozilla/5.0 (compatible; SomeNewSPIDER/0.1)", "Unknown", "Crawlers", "Other crawlers"},
        {"curl/8.5.0", "Unknown", "curl", NULL},
        {"-", "Unknown", "Unknown", NULL},
        {"", "Unknown", "Unknown", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        weft_logs_ua_class_t c = weft_logs_ua_classify(cases[i].ua, strlen(cases[i].ua));
        CHECK_MSG(strcmp(c.os, cases[i].os) == 0 && strcmp(c.browser, cases[i].browser) == 0 &&
                      (c.crawler ? cases[i].crawler && strcmp(c.crawler, cases[i].crawler) == 0
                                 : !cases[i].crawler),
                  "%s: %s / %s / %s", cases[i].ua, c.os, c.browser, c.crawler ? c.crawler : "-");
        CHECK_EQ(weft_logs_ua_is_crawler(cases[i].ua, strlen(cases[i].ua)),
                 cases[i].crawler != NULL);
    }
}

/* More than WEFT_LOGS_MAX_PATHS distinct paths (and not-found and static ones), the most
 * requested ones written last, after the tables filled: the top lists are exact (an exact
 * recount, run.c), agree with the counts the test wrote, and are identical for -j1, -j2,
 * processes and small chunks. Static files: only 3 reach the recount's threshold, so 3 are
 * listed (exact), with the exact total. Before: the three lists were null. */
TEST_T(top_paths_beyond_table_limit_are_exact, 240)
{
    const char *file = path_in_tmp("many.log");
    FILE *f = fopen(file, "wb");
    CHECK(f != NULL);
#define MANY_LINE "10.0.%d.%d - - [15/Jan/2025:10:30:45 +0000] \"GET %s HTTP/1.1\" %d 10 0.01\n"
    char p[64];
    uint64_t statics = 0;
    for (int i = 0; i < 70000; i++) { /* unique paths, all not found, and unique static files */
        snprintf(p, sizeof p, "/u/%d", i);
        fprintf(f, MANY_LINE, i % 200, i % 250, p, 404);
        snprintf(p, sizeof p, "/s/%d.css", i);
        fprintf(f, MANY_LINE, i % 200, i % 250, p, 200);
        statics++;
    }
    for (int k = 1; k <= 12; k++) { /* then the most requested: /hot/k 200 - 10k times */
        snprintf(p, sizeof p, "/hot/%d", k);
        for (int c = 0; c < 200 - 10 * k; c++)
            fprintf(f, MANY_LINE, k, c % 250, p, c % 2 ? 404 : 200);
    }
    for (int k = 1; k <= 3; k++) {
        snprintf(p, sizeof p, "/top-%d.js", k);
        for (int c = 0; c < 50 - k; c++, statics++) fprintf(f, MANY_LINE, k, c, p, 200);
    }
    CHECK(fclose(f) == 0);
#undef MANY_LINE
    /* The reference, from what was written. */
    weft_buf_t want, want404, wants;
    weft_buf_init(&want, 0);
    weft_buf_init(&want404, 0);
    weft_buf_init(&wants, 0);
    weft_buf_printf(&want, "\"top_paths\":[");
    weft_buf_printf(&want404, "\"top_404_paths\":[");
    for (int k = 1; k <= 10; k++) {
        int n = 200 - 10 * k;
        weft_buf_printf(&want, "%s{\"path\":\"/hot/%d\",\"count\":%d}", k > 1 ? "," : "", k, n);
        weft_buf_printf(&want404, "%s{\"path\":\"/hot/%d\",\"count\":%d}", k > 1 ? "," : "", k,
                        n / 2);
    }
    weft_buf_printf(&want, "],\"distinct_paths\":null");
    weft_buf_printf(&want404, "],\"distinct_404_paths\":null");
    weft_buf_printf(&wants,
                    "\"top_static_paths\":[{\"path\":\"/top-1.js\",\"count\":49},{\"path\":\"/"
                    "top-2.js\",\"count\":48},{\"path\":\"/top-3.js\",\"count\":47}],"
                    "\"distinct_static_paths\":null,\"static_requests\":%" PRIu64,
                    statics);
    char *first = NULL;
    struct {
        int jobs;
        weft_logs_mode_t mode;
        uint64_t chunk;
    } runs[] = {{1, WEFT_LOGS_THREADS, 0},
                {2, WEFT_LOGS_THREADS, 0},
                {2, WEFT_LOGS_PROCESSES, 0},
                {2, WEFT_LOGS_THREADS, 256 << 10}};
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        char *json = run_json(file, runs[i].jobs, runs[i].mode, runs[i].chunk);
        CHECK(json != NULL);
        CHECK_MSG(strstr(json, want.data) != NULL, "%s", json);
        CHECK(strstr(json, want404.data) != NULL);
        CHECK_MSG(strstr(json, wants.data) != NULL, "%s", json);
        if (!first)
            first = json;
        else {
            CHECK(strcmp(first, json) == 0);
            free(json);
        }
    }
    free(first);
    weft_buf_free(&want);
    weft_buf_free(&want404);
    weft_buf_free(&wants);
}

/* --tz (fixed and by zone), --since/--until, --ignore-crawlers, --ignore-statics and
 * --anonymize-ip on hand-written lines whose answers are worked out below. */
TEST_T(filters_convert_time_zones_and_leave_out_crawlers_statics_and_dates, 60)
{
    static const char text[] =
        "10.1.2.3 - - [14/Jan/2025:23:30:00 +0100] \"GET /a.css HTTP/1.1\" 200 10 \"-\" "
        "\"Googlebot/2.1\" 0.1\n"
        "10.1.2.4 - - [14/Jan/2025:23:30:00 -0500] \"GET /b HTTP/1.1\" 200 20 \"-\" \"curl/8\" "
        "0.2\n"
        "2001:db8:0:1:2:3:4:5 - - [15/Jan/2025:00:10:00 +0000] \"GET /c HTTP/1.1\" 200 30 \"-\" "
        "\"curl/8\" 0.3\n"
        "10.1.2.5 - - [16/Jan/2025:12:00:00 +0000] \"GET /d HTTP/1.1\" 200 40 \"-\" \"curl/8\" "
        "0.4\n";
    const char *log = path_in_tmp("tz.log");
    write_text(log, text, strlen(text));
    static const struct {
        const char *tz, *since, *until;
        bool crawlers, statics, anon;
        const char *want[4];
    } cases[] = {
        /* as written: 14th 23:30 twice, 15th 00:10, 16th 12:00 */
        {NULL,
         NULL,
         NULL,
         false,
         false,
         false,
         {"\"daily\":[{\"date\":\"2025-01-14\",\"requests\":2,",
          "{\"date\":\"2025-01-15\",\"requests\":1,", "\"excluded\":0", NULL}},
        /* UTC: 22:30 on the 14th, 04:30 and 00:10 on the 15th, 12:00 on the 16th */
        {"UTC",
         NULL,
         NULL,
         false,
         false,
         false,
         {"\"hourly\":[1,0,0,0,1,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,1,0]",
          "{\"date\":\"2025-01-14\",\"requests\":1,", "{\"date\":\"2025-01-15\",\"requests\":2,",
          NULL}},
        /* +05:30: 04:00, 10:00 and 05:40 on the 15th, 17:30 on the 16th */
        {"+05:30",
         NULL,
         NULL,
         false,
         false,
         false,
         {"\"hourly\":[0,0,0,0,1,1,0,0,0,0,1,0,0,0,0,0,0,1,0,0,0,0,0,0]",
          "\"daily\":[{\"date\":\"2025-01-15\",\"requests\":3,", NULL, NULL}},
        /* New York in January is -05:00: 17:30, 23:30 and 19:10 on the 14th, 07:00 on the 16th */
        {"America/New_York",
         NULL,
         NULL,
         false,
         false,
         false,
         {"\"hourly\":[0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,1,0,1,0,0,0,1]",
          "\"daily\":[{\"date\":\"2025-01-14\",\"requests\":3,", NULL, NULL}},
        {NULL,
         "2025-01-15",
         "15/Jan/2025",
         false,
         false,
         false,
         {"\"parsed\":1,", "\"excluded\":3", NULL, NULL}},
        {"UTC",
         "2025-01-15",
         NULL,
         false,
         false,
         false,
         {"\"parsed\":3,", "\"excluded\":1", NULL, NULL}},
        {NULL, NULL, NULL, true, false, false, {"\"parsed\":3,", "\"crawlers\":[]", NULL, NULL}},
        {NULL,
         NULL,
         NULL,
         false,
         true,
         false,
         {"\"parsed\":3,", "\"top_static_paths\":[]", NULL, NULL}},
        {NULL,
         NULL,
         NULL,
         false,
         false,
         true,
         {"\"top_ips\":[{\"ip\":\"10.1.2.0\",\"count\":3},{\"ip\":\"2001:db8::\",\"count\":1}]",
          "\"distinct_ips\":2,", "\"visitors\":4,", NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        weft_logs_filter_t f;
        memset(&f, 0, sizeof f);
        if (cases[i].tz) CHECK_EQ(weft_logs_tz_parse(cases[i].tz, &f), 0);
        if (cases[i].since) CHECK((f.since = weft_logs_date_parse(cases[i].since)) != 0);
        if (cases[i].until) CHECK((f.until = weft_logs_date_parse(cases[i].until)) != 0);
        f.ignore_crawlers = cases[i].crawlers;
        f.ignore_statics = cases[i].statics;
        f.anonymize = cases[i].anon;
        f.any =
            f.tz_mode || f.since || f.until || f.ignore_crawlers || f.ignore_statics || f.anonymize;
        for (int mode = 0; mode < 2; mode++) {
            char *json = run_panels(log, 2, mode ? WEFT_LOGS_PROCESSES : WEFT_LOGS_THREADS, 0,
                                    "combined-rt", &f, NULL);
            for (int k = 0; k < 4 && cases[i].want[k]; k++)
                CHECK_MSG(strstr(json, cases[i].want[k]) != NULL, "case %zu: %s not in %s", i,
                          cases[i].want[k], json);
            free(json);
        }
    }
    /* option values */
    weft_logs_filter_t f;
    memset(&f, 0, sizeof f);
    CHECK_EQ(weft_logs_tz_parse("-0130", &f), 0);
    CHECK_EQ(f.tz_off_min, -90);
    CHECK_EQ(weft_logs_tz_parse("+2400", &f), -EINVAL);
    CHECK_EQ(weft_logs_tz_parse("Not/AZone", &f), -EINVAL);
    CHECK_EQ(weft_logs_tz_parse("../../etc/passwd", &f), -EINVAL);
    CHECK(weft_logs_date_parse("2025-13-01") == 0 && weft_logs_date_parse("15/Foo/2025") == 0);
    CHECK(weft_logs_date_parse("2025-01-15x") == 0);
    unsigned off;
    CHECK_EQ(weft_logs_panels_parse("all", &off), 0);
    CHECK_EQ(off, 0u);
    CHECK_EQ(weft_logs_panels_parse("+urls", &off), 0);
    CHECK_EQ(off, WEFT_LOGS_PANEL_IPS | WEFT_LOGS_PANEL_ROWVIS);
    CHECK_EQ(weft_logs_panels_parse("+urls,+row-visitors", &off), 0);
    CHECK_EQ(off, WEFT_LOGS_PANEL_IPS);
    CHECK_EQ(weft_logs_panels_parse("daily,ips", &off), 0);
    CHECK_EQ(off, WEFT_LOGS_PANELS_ALL & ~(WEFT_LOGS_PANEL_DAILY | WEFT_LOGS_PANEL_IPS));
    CHECK_EQ(weft_logs_panels_parse("daily,nope", &off), -EINVAL);
}

/* The visitor set past its buffer (several sort-and-merge rounds), and two sets merged. */
TEST_T(visitor_set_counts_exactly_across_flushes_and_merges, 60)
{
    weft_logs_ext_t a, b;
    CHECK_EQ(weft_logs_ext_init(&a), 0);
    CHECK_EQ(weft_logs_ext_init(&b), 0);
    const uint64_t distinct = 1700000, adds = 2600000;
    for (uint64_t i = 0; i < adds; i++) {
        uint64_t h = mix64(i % distinct) | 1;
        CHECK_EQ(weft_logs_vset_add(i & 1 ? &a.visitors : &b.visitors, h, h % 3), 0);
    }
    for (int k = 0; k < 2; k++) {
        weft_logs_vis_t *v;
        size_t n;
        CHECK_EQ(weft_logs_vset_view(&a.visitors, &v, &n), 0);
        if (k == 1) CHECK_EQ(n, distinct);
        for (size_t i = 1; i < n; i++) CHECK(v[i - 1].hash < v[i].hash);
        for (size_t i = 0; i < n; i++) CHECK_EQ(v[i].tag, v[i].hash % 3);
        free(v);
        if (k == 0) CHECK_EQ(weft_logs_ext_merge(&a, &b), 0);
    }
    weft_logs_ext_free(&a);
    weft_logs_ext_free(&b);
}

/* Per-row visitors: (visitor, key) pairs. One busy visitor's pairs share its hash (one bucket of
 * the sort): they are ordered by key and deduplicated, across flushes and merges. */
TEST_T(visitor_pairs_of_one_busy_visitor_sort_and_dedupe, 60)
{
    weft_logs_vset_t a = {0}, b = {0};
    const uint64_t keys = 5000;
    for (uint64_t r = 0; r < 3; r++)
        for (uint64_t i = 0; i < keys; i++) {
            uint64_t tag = mix64(i);
            CHECK_EQ(weft_logs_vset_add(r == 1 ? &b : &a, 42, tag), 0);
            CHECK_EQ(weft_logs_vset_add(&b, mix64(i + r * keys) | 1, 7), 0);
        }
    weft_logs_vis_t *v;
    size_t n;
    CHECK_EQ(weft_logs_vset_view(&a, &v, &n), 0);
    CHECK_EQ(n, keys);
    for (size_t i = 1; i < n; i++) CHECK(v[i - 1].tag < v[i].tag);
    free(v);
    CHECK_EQ(weft_logs_vset_view(&b, &v, &n), 0);
    size_t ones = 0;
    for (size_t i = 0; i < n; i++) ones += v[i].hash == 42;
    CHECK_EQ(ones, keys);
    for (size_t i = 1; i < n; i++)
        CHECK(v[i - 1].hash < v[i].hash || (v[i - 1].hash == v[i].hash && v[i - 1].tag < v[i].tag));
    free(v);
    weft_logs_vset_free(&a);
    weft_logs_vset_free(&b);
}
