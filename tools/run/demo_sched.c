/* `weft demo sched`: the seed's challenge 3 (a hybrid task scheduler), both of its scenarios on
 * local data, each timed with one executor at a time and with the hybrid scheduler:
 *
 *   1. resize a batch of real images (PPM files generated here; a Lanczos-3 resampler, CPU) and
 *      upload each result over HTTP (POST, with the server's per-upload latency: IO);
 *   2. fetch pages over HTTP (IO, with latency) and extract data from them (word statistics
 *      over ~100 KB of HTML: CPU).
 *
 * The single executors are sized as the seed sizes them (max_cpu_workers=4, max_io_workers=10);
 * the hybrid scheduler routes CPU work to processes (one per usable CPU), I/O to threads (grown
 * by Little's law) or, when many are in flight, to the event loop. Throughput is items/s; slow
 * single-executor runs process fewer items so that the demo stays short (the table says how
 * many).
 *
 * The HTTP server is a small libmicrohttpd sink in this file, not `weft fixture`: the fixture
 * answers GET only, and the uploads need POST with a latency and pages need a chosen size.
 */
#include "demo/demo.h"
#include "run/run.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <weft/err.h>
#include <weft/http.h>
#include <weft/procpool.h>
#include <weft/sched.h>
#include <weft/sys.h>

#include "common/cli-int.h"

/* ---- the HTTP sink ----------------------------------------------------------------------- */

struct sink_req {
    size_t got;
};

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static const char *const words[] = {
    "river", "stone",  "cloud", "maple", "ember",  "harbor", "quartz", "willow", "cedar",   "delta",
    "fjord", "garnet", "kelp",  "lumen", "nectar", "onyx",   "pebble", "raven",  "tundra",  "umber",
    "the",   "and",    "of",    "to",    "in",     "market", "signal", "thread", "process", "loop"};
#define NWORDS (sizeof words / sizeof words[0])

/* A page of about kb KiB: a title, a description and paragraphs of words. */
static char *make_page(unsigned n, unsigned kb, size_t *len)
{
    weft_buf_t b;
    weft_buf_init(&b, 0);
    weft_buf_printf(&b,
                    "<!doctype html><html><head><title>Page %u: %s %s</title><meta "
                    "name=\"description\" content=\"about %s\"></head><body>\n",
                    n, words[n % NWORDS], words[(n * 7) % NWORDS], words[(n * 3) % NWORDS]);
    uint64_t x = n * 2654435761u + 1;
    while (b.len < (size_t)kb * 1024) {
        weft_buf_printf(&b, "<p>");
        for (int w = 0; w < 40; w++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            weft_buf_printf(&b, "%s ", words[x % NWORDS]);
        }
        weft_buf_printf(&b, "<a href=\"/page/%u\">next</a></p>\n", (unsigned)(x % 1000));
    }
    weft_buf_printf(&b, "</body></html>\n");
    return weft_buf_steal(&b, len);
}

/* Pages are built once (16 variants of the configured size) and served without copying, so
 * that the server's own CPU does not blur the measurement. */
#define PAGE_VARIANTS 16
static char *pages[PAGE_VARIANTS];
static size_t page_len[PAGE_VARIANTS];

static enum MHD_Result sink_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                    const char *method, const char *version, const char *upload,
                                    size_t *upload_size, void **req_cls)
{
    (void)cls;
    (void)version;
    (void)upload;
    struct sink_req *q = *req_cls;
    if (!q) {
        if (!(q = calloc(1, sizeof *q))) return MHD_NO;
        *req_cls = q;
        return MHD_YES;
    }
    if (*upload_size) {
        q->got += *upload_size;
        *upload_size = 0;
        return MHD_YES;
    }
    const char *d = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "delay");
    long delay = d ? atol(d) : 0;
    if (delay > 0 && delay < 60000) sleep_ms(delay); /* one thread per connection: just wait */
    char *body;
    size_t len;
    unsigned n = 0;
    if (strcmp(method, "POST") == 0) {
        char tmp[64];
        len = (size_t)snprintf(tmp, sizeof tmp, "stored %zu bytes\n", q->got);
        body = strdup(tmp);
    } else if (sscanf(url, "/page/%u", &n) == 1 && pages[n % PAGE_VARIANTS]) {
        struct MHD_Response *r = MHD_create_response_from_buffer(
            page_len[n % PAGE_VARIANTS], pages[n % PAGE_VARIANTS], MHD_RESPMEM_PERSISTENT);
        if (!r) return MHD_NO;
        enum MHD_Result ok = MHD_queue_response(conn, 200, r);
        MHD_destroy_response(r);
        return ok;
    } else {
        body = strdup("not found\n");
        len = strlen(body);
    }
    if (!body) return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    enum MHD_Result ok = MHD_queue_response(conn, n || strcmp(method, "POST") == 0 ? 200 : 404, r);
    MHD_destroy_response(r);
    return ok;
}

static void sink_done(void *cls, struct MHD_Connection *conn, void **req_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    free(*req_cls);
    *req_cls = NULL;
}

static struct MHD_Daemon *sink_start(int *port, unsigned page_kb)
{
    for (unsigned i = 0; i < PAGE_VARIANTS; i++) pages[i] = make_page(i + 1, page_kb, &page_len[i]);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0, NULL,
        NULL, sink_handler, NULL, MHD_OPTION_NOTIFY_COMPLETED, sink_done, NULL,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)4000, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
        MHD_OPTION_END);
    if (!d) return NULL;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    *port = info ? info->port : 0;
    return d;
}

/* ---- the work ---------------------------------------------------------------------------- */

#define IMG_W 960
#define IMG_H 720
#define SCALE 3 /* resize to 320x240 */

/* Writes a synthetic photo-like RGB image (smooth gradients, rings and noise) as binary PPM. */
static int write_image(const char *path, unsigned seed)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -errno;
    fprintf(f, "P6\n%d %d\n255\n", IMG_W, IMG_H);
    unsigned char *row = malloc(IMG_W * 3);
    if (!row) {
        fclose(f);
        return -ENOMEM;
    }
    uint32_t x = seed * 2654435761u + 7;
    double cx = IMG_W * (0.3 + 0.4 * (seed % 5) / 5.0), cy = IMG_H * 0.5;
    for (int y = 0; y < IMG_H; y++) {
        for (int i = 0; i < IMG_W; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            double r = sqrt((i - cx) * (i - cx) + (y - cy) * (y - cy));
            double ring = 0.5 + 0.5 * sin(r / (6.0 + seed % 7));
            row[i * 3 + 0] = (unsigned char)(255.0 * i / IMG_W * ring + (x & 15));
            row[i * 3 + 1] = (unsigned char)(255.0 * y / IMG_H * (1 - ring) + (x >> 8 & 15));
            row[i * 3 + 2] = (unsigned char)(128 + 100 * ring + (x >> 16 & 15));
        }
        fwrite(row, 1, IMG_W * 3, f);
    }
    free(row);
    return fclose(f) == 0 ? 0 : -EIO;
}

static double lanczos3(double t)
{
    if (t == 0) return 1;
    if (t <= -3 || t >= 3) return 0;
    double pt = M_PI * t;
    return 3 * sin(pt) * sin(pt / 3) / (pt * pt);
}

/* Resamples w x h RGB to (w/SCALE) x (h/SCALE) with a separable Lanczos-3 filter (support
 * 3 * SCALE input pixels each way), the way image libraries shrink photos. */
static int resize_ppm(const char *path, weft_buf_t *out)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -errno;
    int w, h, maxv;
    if (fscanf(f, "P6 %d %d %d", &w, &h, &maxv) != 3 || w <= 0 || h <= 0 || w > 10000 ||
        h > 10000 || maxv != 255 || fgetc(f) == EOF) {
        fclose(f);
        return WEFT_EPARSE;
    }
    size_t n = (size_t)w * h * 3;
    unsigned char *in = malloc(n);
    if (!in || fread(in, 1, n, f) != n) {
        free(in);
        fclose(f);
        return -EIO;
    }
    fclose(f);
    int ow = w / SCALE, oh = h / SCALE, taps = 6 * SCALE;
    float *tmp = malloc((size_t)ow * h * 3 * sizeof *tmp);
    float *wt = malloc((size_t)taps * sizeof *wt);
    int rc = tmp && wt ? 0 : -ENOMEM;
    if (rc == 0) {
        for (int k = 0; k < taps; k++) wt[k] = (float)lanczos3((k - taps / 2 + 0.5) / SCALE);
        float norm = 0;
        for (int k = 0; k < taps; k++) norm += wt[k];
        for (int k = 0; k < taps; k++) wt[k] /= norm;
        for (int y = 0; y < h; y++) /* horizontal pass */
            for (int ox = 0; ox < ow; ox++) {
                float acc[3] = {0, 0, 0};
                int x0 = ox * SCALE + SCALE / 2 - taps / 2;
                for (int k = 0; k < taps; k++) {
                    int x = x0 + k < 0 ? 0 : x0 + k >= w ? w - 1 : x0 + k;
                    const unsigned char *p = &in[((size_t)y * w + x) * 3];
                    for (int c = 0; c < 3; c++) acc[c] += wt[k] * p[c];
                }
                for (int c = 0; c < 3; c++) tmp[((size_t)y * ow + ox) * 3 + c] = acc[c];
            }
        rc = weft_buf_printf(out, "P6\n%d %d\n255\n", ow, oh);
        if (rc == 0) rc = weft_buf_reserve(out, (size_t)ow * oh * 3);
        for (int oy = 0; oy < oh && rc == 0; oy++) /* vertical pass */
            for (int ox = 0; ox < ow; ox++) {
                float acc[3] = {0, 0, 0};
                int y0 = oy * SCALE + SCALE / 2 - taps / 2;
                for (int k = 0; k < taps; k++) {
                    int y = y0 + k < 0 ? 0 : y0 + k >= h ? h - 1 : y0 + k;
                    const float *p = &tmp[((size_t)y * ow + ox) * 3];
                    for (int c = 0; c < 3; c++) acc[c] += wt[k] * p[c];
                }
                unsigned char px[3];
                for (int c = 0; c < 3; c++)
                    px[c] = (unsigned char)(acc[c] < 0 ? 0 : acc[c] > 255 ? 255 : acc[c] + 0.5f);
                weft_buf_append(out, px, 3);
            }
    }
    free(in);
    free(tmp);
    free(wt);
    return rc;
}

static size_t curl_discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

/* POSTs the bytes; libcurl directly, because the weft HTTP clients only GET. */
static int upload(const char *url, const void *data, size_t len, weft_buf_t *err)
{
    CURL *c = curl_easy_init();
    if (!c) return -ENOMEM;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, data);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_discard);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (cc != CURLE_OK) {
        if (err) weft_buf_printf(err, "upload: %s", curl_easy_strerror(cc));
        return -EIO;
    }
    return status == 200 ? 0 : WEFT_EHTTP;
}

static int fetch(const char *url, weft_buf_t *out)
{
    weft_http_session_t *hs;
    int rc = weft_http_session_create(&hs);
    if (rc < 0) return rc;
    weft_http_opts_t o = {.url = url, .keep_body = true, .timeout_ms = 30000};
    weft_http_resp_t resp;
    memset(&resp, 0, sizeof resp);
    rc = weft_http_session_perform(hs, &o, &resp);
    if (rc == 0 && resp.status != 200) rc = WEFT_EHTTP;
    if (rc == 0) rc = weft_buf_append(out, resp.body.data ? resp.body.data : "", resp.body.len);
    weft_http_resp_free(&resp);
    weft_http_session_destroy(hs);
    return rc;
}

/* Word statistics of a page: the title, the number of words, and the most frequent words and
 * word pairs, from a hash table of counts (the "extract data" step; CPU). */
static int extract(const char *html, size_t len, weft_buf_t *out)
{
    enum { SLOTS = 1 << 14 };
    struct slot {
        uint64_t h;
        uint32_t n;
    } *t = calloc(SLOTS, sizeof *t);
    if (!t) return -ENOMEM;
    uint64_t words_seen = 0, prev = 0, prev2 = 0, prev3 = 0;
    uint32_t best = 0;
    for (int pass = 0; pass < 8; pass++) { /* words, pairs, triples, fours; twice (to check) */
        memset(t, 0, SLOTS * sizeof *t);
        size_t used = 0;
        for (size_t i = 0; i < len;) {
            if (html[i] == '<') { /* skip tags */
                const char *e = memchr(html + i, '>', len - i);
                i = e ? (size_t)(e - html) + 1 : len;
                continue;
            }
            if (!((html[i] | 32) >= 'a' && (html[i] | 32) <= 'z')) {
                i++;
                continue;
            }
            uint64_t h = 1469598103934665603u;
            while (i < len && (html[i] | 32) >= 'a' && (html[i] | 32) <= 'z')
                h = (h ^ (uint64_t)(html[i++] | 32)) * 1099511628211u;
            int ng = pass % 4;
            uint64_t key = ng == 0   ? h
                           : ng == 1 ? h * 31 + prev
                           : ng == 2 ? (h * 31 + prev) * 31 + prev2
                                     : ((h * 31 + prev) * 31 + prev2) * 31 + prev3;
            prev3 = prev2;
            prev2 = prev;
            prev = h;
            words_seen += !pass;
            for (size_t s = key & (SLOTS - 1);; s = (s + 1) & (SLOTS - 1)) {
                if (t[s].n && t[s].h != key) continue;
                if (!t[s].n) {
                    if (used >= SLOTS * 3 / 4) break; /* full enough: count only known keys */
                    used++;
                    t[s].h = key;
                }
                if (++t[s].n > best && pass == 0) best = t[s].n;
                break;
            }
        }
    }
    free(t);
    const char *ts = strstr(html, "<title>"), *te = ts ? strstr(ts, "</title>") : NULL;
    int tl = ts && te ? (int)(te - ts - 7) : 0;
    return weft_buf_printf(out, "%.*s|%llu words|top count %u", tl > 80 ? 80 : tl, ts ? ts + 7 : "",
                           (unsigned long long)words_seen, best);
}

/* ---- forms: threads, processes, the loop ------------------------------------------------- */

struct item {
    int i;
    char path[512]; /* image, or page URL */
    char url[256];  /* upload URL */
    void *mid;      /* stage 1's result */
    size_t midlen;
    struct pipeline *p;
};

static int set_result(weft_ctx_t *ctx, weft_buf_t *b, int rc)
{
    if (rc < 0) {
        if (b->data) weft_ctx_set_message(ctx, "%s", b->data);
        weft_buf_free(b);
        return rc;
    }
    size_t n;
    void *v = weft_buf_steal(b, &n);
    weft_ctx_set_value(ctx, v, n, free);
    weft_buf_free(b);
    return 0;
}

static int t_resize(void *arg, weft_ctx_t *ctx)
{
    struct item *it = arg;
    weft_buf_t b;
    weft_buf_init(&b, 0);
    return set_result(ctx, &b, resize_ppm(it->path, &b));
}

static int t_upload(void *arg, weft_ctx_t *ctx)
{
    struct item *it = arg;
    weft_buf_t b;
    weft_buf_init(&b, 0);
    return set_result(ctx, &b, upload(it->url, it->mid, it->midlen, &b));
}

static int t_fetch(void *arg, weft_ctx_t *ctx)
{
    struct item *it = arg;
    weft_buf_t b;
    weft_buf_init(&b, 0);
    return set_result(ctx, &b, fetch(it->path, &b));
}

static int t_extract(void *arg, weft_ctx_t *ctx)
{
    struct item *it = arg;
    weft_buf_t b;
    weft_buf_init(&b, 0);
    return set_result(ctx, &b, extract(it->mid, it->midlen, &b));
}

/* Process forms: the argument bytes carry what the thread forms read from the item. */
static int p_resize(const void *arg, size_t len, weft_buf_t *out)
{
    char path[512];
    snprintf(path, sizeof path, "%.*s", (int)len, (const char *)arg);
    return resize_ppm(path, out);
}
WEFT_PROCPOOL_FN("demo.resize", p_resize)

static int p_upload(const void *arg, size_t len, weft_buf_t *out)
{
    /* url NUL data */
    const char *url = arg;
    size_t ul = strnlen(url, len);
    if (ul >= len) return -EINVAL;
    return upload(url, (const char *)arg + ul + 1, len - ul - 1, out);
}
WEFT_PROCPOOL_FN("demo.upload", p_upload)

static int p_fetch(const void *arg, size_t len, weft_buf_t *out)
{
    char url[512];
    snprintf(url, sizeof url, "%.*s", (int)len, (const char *)arg);
    return fetch(url, out);
}
WEFT_PROCPOOL_FN("demo.fetch", p_fetch)

static int p_extract(const void *arg, size_t len, weft_buf_t *out)
{
    return extract(arg, len, out);
}
WEFT_PROCPOOL_FN("demo.extract", p_extract)

/* Loop forms: fetch with the loop's HTTP client; extraction computed on the loop thread. */
static void a_fetched(weft_http_t *h, weft_http_resp_t *resp, void *arg)
{
    weft_sched_aop_t *op = arg;
    (void)h;
    int rc = resp->error ? resp->error : resp->status == 200 ? 0 : WEFT_EHTTP;
    if (rc < 0) {
        weft_sched_aop_fail(op, rc, "fetch: %s", resp->errmsg);
        return;
    }
    size_t n;
    void *body = weft_buf_steal(&resp->body, &n);
    weft_sched_aop_done(op, 0, body, n, free);
}

static int a_fetch(weft_sched_aop_t *op)
{
    struct item *it = op->arg;
    weft_http_opts_t o = {.url = it->path, .keep_body = true, .timeout_ms = 30000};
    return weft_http_start(op->loop, &o, a_fetched, op, NULL);
}

static int a_extract(weft_sched_aop_t *op)
{
    struct item *it = op->arg;
    weft_buf_t b;
    weft_buf_init(&b, 0);
    int rc = extract(it->mid, it->midlen, &b);
    size_t n;
    void *v = weft_buf_steal(&b, &n);
    weft_buf_free(&b);
    weft_sched_aop_done(op, rc, v, n, free);
    return 0;
}

/* ---- pipelines --------------------------------------------------------------------------- */

enum { F_THREAD = 1, F_PROC = 2, F_LOOP = 4 };

struct pipeline {
    weft_sched_t *s;
    int forms;
    bool images; /* scenario 1; else scenario 2 */
    atomic_int done, failed;
    char first_error[256];
    pthread_mutex_t mu;
};

static void stage2_done(weft_future_t *f, void *arg)
{
    struct item *it = arg;
    struct pipeline *p = it->p;
    if (weft_future_status(f) < 0) {
        pthread_mutex_lock(&p->mu);
        if (!p->first_error[0])
            snprintf(p->first_error, sizeof p->first_error, "%s",
                     weft_future_message(f) ? weft_future_message(f)
                                            : weft_strerror(weft_future_status(f)));
        pthread_mutex_unlock(&p->mu);
        atomic_fetch_add(&p->failed, 1);
    } else {
        atomic_fetch_add(&p->done, 1);
    }
    free(it->mid);
    it->mid = NULL;
    weft_future_release(f);
}

/* Stage 1 finished: its result becomes stage 2's input (a continuation, submitted from the
 * completion callback, on whatever thread completed stage 1). */
static void stage1_done(weft_future_t *f, void *arg)
{
    struct item *it = arg;
    struct pipeline *p = it->p;
    size_t n = 0;
    const void *v = weft_future_value(f, &n);
    if (weft_future_status(f) < 0 || !v) {
        stage2_done(f, arg); /* counts the failure and releases f */
        return;
    }
    it->midlen = n;
    weft_sched_task_t t = {.priority = 1}; /* finishing items first keeps memory low */
    void *parg = NULL;
    size_t plen = 0;
    if (p->images) {
        it->mid = malloc(n);
        memcpy(it->mid, v, n);
        t.type = WEFT_SCHED_IO;
        t.cls = "upload";
        if (p->forms & F_THREAD) t.fn = t_upload;
        if (p->forms & F_PROC) { /* url NUL data */
            size_t ul = strlen(it->url) + 1;
            parg = malloc(ul + n);
            memcpy(parg, it->url, ul);
            memcpy((char *)parg + ul, v, n);
            plen = ul + n;
            t.proc_fn = "demo.upload";
        }
    } else {
        it->mid = malloc(n + 1);
        memcpy(it->mid, v, n);
        ((char *)it->mid)[n] = '\0';
        t.type = WEFT_SCHED_CPU;
        t.cls = "extract";
        if (p->forms & F_THREAD) t.fn = t_extract;
        if (p->forms & F_PROC) {
            t.proc_fn = "demo.extract";
            parg = it->mid;
            plen = n;
        }
        if (p->forms & F_LOOP) t.async_fn = a_extract;
    }
    weft_future_release(f);
    t.arg = t.async_arg = it;
    t.proc_arg = parg;
    t.proc_len = plen;
    weft_future_t *f2;
    int rc = weft_sched_submit(p->s, &t, NULL, &f2);
    if (parg != it->mid) free(parg); /* copied by submit */
    if (rc < 0) {
        atomic_fetch_add(&p->failed, 1);
        return;
    }
    weft_future_on_complete(f2, stage2_done, it);
}

struct result {
    int items;
    double secs;
    bool ran;
    char note[400];
};

static struct result run_pipeline(bool images, int forms, const weft_sched_opts_t *opts,
                                  struct item *items, int n, char *why_out, size_t why_len)
{
    struct result r = {.items = n};
    struct pipeline p = {.forms = forms, .images = images};
    pthread_mutex_init(&p.mu, NULL);
    int rc = weft_sched_create(&p.s, opts);
    if (rc < 0) {
        snprintf(r.note, sizeof r.note, "could not start: %s", weft_strerror(rc));
        return r;
    }
    uint64_t t0 = weft_now_ns();
    for (int i = 0; i < n; i++) {
        struct item *it = &items[i];
        it->p = &p;
        weft_sched_task_t t = {0};
        if (images) {
            t.type = WEFT_SCHED_CPU;
            t.cls = "resize";
            if (forms & F_THREAD) t.fn = t_resize;
            if (forms & F_PROC) t.proc_fn = "demo.resize";
        } else {
            t.type = WEFT_SCHED_IO;
            t.cls = "fetch";
            if (forms & F_THREAD) t.fn = t_fetch;
            if (forms & F_PROC) t.proc_fn = "demo.fetch";
            if (forms & F_LOOP) t.async_fn = a_fetch;
        }
        t.arg = t.async_arg = it;
        t.proc_arg = it->path;
        t.proc_len = strlen(it->path);
        weft_future_t *f;
        if (weft_sched_submit(p.s, &t, NULL, &f) < 0) {
            atomic_fetch_add(&p.failed, 1);
            continue;
        }
        weft_future_on_complete(f, stage1_done, it);
    }
    weft_sched_wait_idle(p.s, -1);
    r.secs = (double)(weft_now_ns() - t0) / 1e9;
    r.ran = true;
    if (why_out) {
        weft_buf_t b;
        weft_buf_init(&b, 0);
        weft_sched_stats_text(p.s, &b);
        snprintf(why_out, why_len, "%s", b.data ? b.data : "");
        weft_buf_free(&b);
    }
    weft_sched_destroy(p.s);
    int failed = atomic_load(&p.failed);
    if (failed) {
        snprintf(r.note, sizeof r.note, "%d of %d failed: %s", failed, n, p.first_error);
        r.ran = false;
    }
    pthread_mutex_destroy(&p.mu);
    return r;
}

static void print_row(const char *label, const struct result *r, double best)
{
    if (!r->ran) {
        printf("  %-28s %s\n", label, r->note);
        return;
    }
    double rate = r->items / r->secs;
    printf("  %-28s %6d %8.2f s %9.1f", label, r->items, r->secs, rate);
    if (best > 0) printf("   %+5.0f %%", 100.0 * (rate / best - 1));
    putchar('\n');
}

/* Prints the hybrid scheduler's routes and sizing decisions from its stats text. */
static void print_routes(const char *stats)
{
    const char *p = strstr(stats, "classes (route: why):\n");
    if (!p) return;
    printf("  what the hybrid scheduler did:\n");
    p += strlen("classes (route: why):\n");
    int events = 0;
    for (const char *line = p; *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        bool is_event = strncmp(line, "  +", 3) == 0;
        bool header = strncmp(line, "events", 6) == 0;
        if (!header && (!is_event || events++ < 6)) printf("  %.*s\n", (int)len, line);
        if (!nl) break;
        line = nl + 1;
    }
}

static int demo_sched(int argc, char **argv)
{
    int n_img = 48, n_pages = 400, upload_ms = 300, page_ms = 400, page_kb = 128;
    for (int i = 1; i < argc; i++) {
        long v;
        if (i + 1 < argc && strcmp(argv[i], "--images") == 0 &&
            weft_cli_parse_int(argv[i + 1], 4, 1000, &v) == 0)
            n_img = (int)v, i++;
        else if (i + 1 < argc && strcmp(argv[i], "--pages") == 0 &&
                 weft_cli_parse_int(argv[i + 1], 20, 10000, &v) == 0)
            n_pages = (int)v, i++;
        else if (strcmp(argv[i], "--help") == 0) {
            printf("usage: weft demo sched [--images N] [--pages N]\n");
            return WEFT_EXIT_OK;
        } else {
            fprintf(stderr, "weft demo sched: bad argument '%s'\n", argv[i]);
            return WEFT_EXIT_USAGE;
        }
    }
    weft_demo_heading("sched: a hybrid scheduler over processes, threads and the event loop");
    int port = 0;
    struct MHD_Daemon *sink = sink_start(&port, (unsigned)page_kb);
    if (!sink) return weft_cli_error("demo sched", WEFT_EXIT_INTERNAL, "cannot start HTTP sink");
    char dir[] = "/tmp/weft-demo-sched-XXXXXX";
    if (!mkdtemp(dir)) {
        MHD_stop_daemon(sink);
        return weft_cli_error("demo sched", WEFT_EXIT_INTERNAL, "mkdtemp: %s", strerror(errno));
    }
    int cpus = weft_cpu_count(), code = WEFT_EXIT_OK;
    int n_items = n_img > n_pages ? n_img : n_pages;
    struct item *items = calloc((size_t)n_items, sizeof *items);
    char *why = malloc(65536);
    if (!items || !why) abort();
    printf("HTTP server: a libmicrohttpd sink on 127.0.0.1:%d in this process (POST and sized "
           "pages,\nwhich `weft fixture` does not serve). %d usable CPUs. Single executors are "
           "sized as in\nthe seed (max_cpu_workers=4, max_io_workers=10); slow ones get fewer "
           "items.\n",
           port, cpus);

    /* Scenario 1 */
    printf("\n1) resize %d images (%dx%d PPM, Lanczos-3 to 1/%d: CPU), then upload each "
           "(HTTP POST,\n   %d ms server latency: IO)\n\n",
           n_img, IMG_W, IMG_H, SCALE, upload_ms);
    uint64_t g0 = weft_now_ns();
    for (int i = 0; i < n_img; i++) {
        snprintf(items[i].path, sizeof items[i].path, "%s/img%03d.ppm", dir, i);
        snprintf(items[i].url, sizeof items[i].url, "http://127.0.0.1:%d/upload/%d?delay=%d", port,
                 i, upload_ms);
        if (write_image(items[i].path, (unsigned)i) < 0) {
            code =
                weft_cli_error("demo sched", WEFT_EXIT_INTERNAL, "cannot write %s", items[i].path);
            goto out;
        }
    }
    printf("  (generated the images in %.1f s in %s)\n\n", (double)(weft_now_ns() - g0) / 1e9, dir);
    printf("  %-28s %6s %10s %9s   %s\n", "executor", "items", "time", "items/s", "vs best single");
    weft_sched_opts_t o_procs = {.procs = 4, .threads_min = 1, .threads_max = 1, .loop_max = -1};
    weft_sched_opts_t o_threads = {
        .procs = -1, .threads_min = 10, .threads_max = 10, .loop_max = -1};
    weft_sched_opts_t o_loop = {.procs = -1, .threads_min = 1, .threads_max = 1};
    weft_sched_opts_t o_hybrid = {.procs = 0, .threads_max = 64};
    int few = n_img / 3 > 4 ? n_img / 3 : 4;
    struct result r1p = run_pipeline(true, F_PROC, &o_procs, items, few, NULL, 0);
    print_row("processes only (4)", &r1p, 0);
    struct result r1t = run_pipeline(true, F_THREAD, &o_threads, items, n_img, NULL, 0);
    print_row("threads only (10)", &r1t, 0);
    printf("  %-28s (no upload form: the loop's HTTP client only GETs)\n", "event loop only");
    double best1 = 0;
    if (r1p.ran && r1p.items / r1p.secs > best1) best1 = r1p.items / r1p.secs;
    if (r1t.ran && r1t.items / r1t.secs > best1) best1 = r1t.items / r1t.secs;
    struct result r1h =
        run_pipeline(true, F_THREAD | F_PROC | F_LOOP, &o_hybrid, items, n_img, why, 65536);
    print_row("hybrid scheduler", &r1h, best1);
    if (r1h.ran) print_routes(why);
    if (!r1p.ran || !r1t.ran || !r1h.ran) code = WEFT_EXIT_FAILED;
    for (int i = 0; i < n_img; i++) unlink(items[i].path);

    /* Scenario 2 */
    printf("\n2) fetch %d pages (HTTP GET, %d ms latency, ~%d KB each: IO), then extract word\n"
           "   statistics from each (CPU)\n\n",
           n_pages, page_ms, page_kb);
    for (int i = 0; i < n_pages; i++) {
        snprintf(items[i].path, sizeof items[i].path, "http://127.0.0.1:%d/page/%d?delay=%d", port,
                 i + 1, page_ms);
        free(items[i].mid);
        items[i].mid = NULL;
    }
    printf("  %-28s %6s %10s %9s   %s\n", "executor", "items", "time", "items/s", "vs best single");
    int few2 = n_pages / 16 > 8 ? n_pages / 16 : 8;
    struct result r2p = run_pipeline(false, F_PROC, &o_procs, items, few2, NULL, 0);
    print_row("processes only (4)", &r2p, 0);
    struct result r2t = run_pipeline(false, F_THREAD, &o_threads, items, few2 * 3, NULL, 0);
    print_row("threads only (10)", &r2t, 0);
    struct result r2l = run_pipeline(false, F_LOOP, &o_loop, items, n_pages, NULL, 0);
    print_row("event loop only", &r2l, 0);
    double best2 = 0;
    const struct result *rs[] = {&r2p, &r2t, &r2l};
    for (int k = 0; k < 3; k++)
        if (rs[k]->ran && rs[k]->items / rs[k]->secs > best2) best2 = rs[k]->items / rs[k]->secs;
    struct result r2h =
        run_pipeline(false, F_THREAD | F_PROC | F_LOOP, &o_hybrid, items, n_pages, why, 65536);
    print_row("hybrid scheduler", &r2h, best2);
    if (r2h.ran) print_routes(why);
    if (!r2p.ran || !r2t.ran || !r2l.ran || !r2h.ran) code = WEFT_EXIT_FAILED;

    printf("\nWhat it shows: one executor is sized for one kind of work. Processes sized for the\n"
           "CPUs idle while an upload waits; ten threads cap the uploads in flight; the loop runs\n"
           "any number of fetches but computes on its one thread. The hybrid scheduler sends\n"
           "each task where its kind of work runs best and sizes each executor for it. (In C\n"
           "threads also compute in parallel - there is no GIL - so a thread pool sized for\n"
           "the I/O would come close in scenario 1; processes add isolation and hard timeouts.)\n");
out:
    for (int i = 0; i < n_items; i++) {
        free(items[i].mid);
        if (items[i].path[0] == '/') unlink(items[i].path);
    }
    rmdir(dir);
    free(items);
    free(why);
    MHD_stop_daemon(sink);
    for (int i = 0; i < PAGE_VARIANTS; i++) {
        free(pages[i]);
        pages[i] = NULL;
    }
    return code;
}

WEFT_DEMO("sched", 40, demo_sched,
          "the hybrid scheduler: resize+upload and fetch+extract, single executors vs hybrid")
