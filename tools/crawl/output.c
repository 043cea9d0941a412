/* Output of `weft crawl`: the per-page table (terminal-safe), JSON Lines (jansson), CSV, and
 * the per-mode summaries. Text from pages is untrusted: the table goes through
 * weft_cli_put_safe, JSON through jansson's escaping, CSV through RFC 4180 quoting. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <weft/utf8.h>

#include "crawl/crawl.h"
#include "common/cli-int.h"

struct crawl_out {
    const crawl_opts_t *o;
    FILE *jsonl, *csv;
    bool failed_write;
};

static FILE *open_out(const char *path, const char *what)
{
    if (strcmp(path, "-") == 0) return stdout;
    FILE *f = fopen(path, "w");
    if (!f)
        weft_cli_error("crawl", WEFT_EXIT_USAGE, "cannot write %s file %s: %s", what, path,
                       strerror(errno));
    return f;
}

int crawl_out_open(crawl_out_t **out, const crawl_opts_t *o)
{
    *out = NULL;
    crawl_out_t *c = calloc(1, sizeof *c);
    if (!c) return -ENOMEM;
    c->o = o;
    if (o->jsonl && !(c->jsonl = open_out(o->jsonl, "--jsonl"))) {
        free(c);
        return -errno;
    }
    if (o->csv && !(c->csv = open_out(o->csv, "--csv"))) {
        if (c->jsonl && c->jsonl != stdout) fclose(c->jsonl);
        free(c);
        return -errno;
    }
    if (c->csv)
        fputs("mode,line,url,final_url,status,title,description,bytes,attempts,ms,queued_ms,"
              "error\n",
              c->csv);
    *out = c;
    return 0;
}

/* Pads to `width` columns by what weft_cli_put_safe printed, so rows align on any input. */
static void put_padded(FILE *f, const char *s, size_t width)
{
    for (size_t c = weft_cli_put_safe(f, s, width - 1); c < width; c++) fputc(' ', f);
}

void crawl_out_mode_begin(crawl_out_t *out, crawl_mode_t mode, int parallelism)
{
    if (!out->o->table && !out->o->summary) return;
    if (mode == CRAWL_SEQ)
        printf("\n=== %s ===\n", crawl_mode_name(mode));
    else
        printf("\n=== %s (%s %d) ===\n", crawl_mode_name(mode),
               mode == CRAWL_THREADS ? "threads" : "concurrency", parallelism);
    if (out->o->table)
        printf("STATUS      MS ATT    BYTES  URL                                     TITLE\n");
    fflush(stdout);
}

/* A JSON string from possibly invalid UTF-8 (each bad byte replaced by U+FFFD), or null. */
static json_t *jstr(const char *s)
{
    if (!s) return json_null();
    json_t *j = json_string(s);
    if (j) return j;
    weft_buf_t fixed;
    weft_buf_init(&fixed, 0);
    if (weft_utf8_repair(&fixed, s, strlen(s)) == 0) j = json_string(fixed.data ? fixed.data : "");
    weft_buf_free(&fixed);
    return j ? j : json_null();
}

static json_t *jms(double ms)
{
    return json_real((double)(long long)(ms * 1000 + 0.5) / 1000);
}

static void write_jsonl(crawl_out_t *out, crawl_mode_t mode, const crawl_result_t *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "mode", json_string(crawl_mode_name(mode)));
    json_object_set_new(o, "line", json_integer((json_int_t)r->line));
    json_object_set_new(o, "url", jstr(r->url));
    json_object_set_new(o, "final_url", jstr(r->final_url));
    json_object_set_new(o, "status", json_integer(r->status));
    json_object_set_new(o, "redirects", json_integer(r->redirects));
    json_object_set_new(o, "title", jstr(r->title));
    json_object_set_new(o, "description", jstr(r->description));
    json_object_set_new(o, "charset", jstr(r->charset));
    json_object_set_new(o, "bytes", json_integer((json_int_t)r->bytes));
    json_object_set_new(o, "truncated", json_boolean(r->truncated));
    json_object_set_new(o, "attempts", json_integer(r->attempts));
    json_object_set_new(o, "ms", jms(r->ms));
    json_object_set_new(o, "dns_ms", jms(r->dns_ms));
    json_object_set_new(o, "connect_ms", jms(r->connect_ms));
    json_object_set_new(o, "tls_ms", jms(r->tls_ms));
    json_object_set_new(o, "ttfb_ms", jms(r->ttfb_ms));
    json_object_set_new(o, "queued_ms", jms(r->queued_ms));
    json_object_set_new(o, "start_ms", jms(r->start_ms));
    json_object_set_new(o, "error", r->error ? jstr(r->error_msg) : json_null());
    json_object_set_new(o, "error_kind", jstr(r->error_kind));
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(o);
    if (!s || fprintf(out->jsonl, "%s\n", s) < 0) out->failed_write = true;
    free(s);
}

static void csv_field(FILE *f, const char *s, bool last)
{
    if (s && strpbrk(s, ",\"\r\n")) {
        fputc('"', f);
        for (; *s; s++) {
            if (*s == '"') fputc('"', f);
            fputc(*s, f);
        }
        fputc('"', f);
    } else if (s) {
        fputs(s, f);
    }
    fputc(last ? '\n' : ',', f);
}

static void write_csv(crawl_out_t *out, crawl_mode_t mode, const crawl_result_t *r)
{
    FILE *f = out->csv;
    char num[64];
    csv_field(f, crawl_mode_name(mode), false);
    snprintf(num, sizeof num, "%llu", (unsigned long long)r->line);
    csv_field(f, num, false);
    csv_field(f, r->url, false);
    csv_field(f, r->final_url, false);
    snprintf(num, sizeof num, "%ld", r->status);
    csv_field(f, num, false);
    csv_field(f, r->title, false);
    csv_field(f, r->description, false);
    snprintf(num, sizeof num, "%llu", (unsigned long long)r->bytes);
    csv_field(f, num, false);
    snprintf(num, sizeof num, "%d", r->attempts);
    csv_field(f, num, false);
    snprintf(num, sizeof num, "%.1f", r->ms);
    csv_field(f, num, false);
    snprintf(num, sizeof num, "%.1f", r->queued_ms);
    csv_field(f, num, false);
    csv_field(f, r->error ? r->error_msg : NULL, true);
    if (ferror(f)) out->failed_write = true;
}

void crawl_out_result(crawl_out_t *out, crawl_mode_t mode, const crawl_result_t *r)
{
    if (out->o->table) {
        if (r->status)
            printf("%6ld %7.0f %3d %8llu  ", r->status, r->ms, r->attempts,
                   (unsigned long long)r->bytes);
        else
            printf("%6s %7.0f %3d %8s  ", "-", r->ms, r->attempts, "-");
        put_padded(stdout, r->url, 40);
        if (r->error) {
            printf("! %s: ", r->error_kind ? r->error_kind : "error");
            weft_cli_put_safe(stdout, r->error_msg, 70);
        } else {
            weft_cli_put_safe(stdout, r->title ? r->title : "(no title)", 60);
        }
        putchar('\n');
    }
    if (out->jsonl) write_jsonl(out, mode, r);
    if (out->csv) write_csv(out, mode, r);
}

static double q_ms(const weft_hist_t *h, double q)
{
    return (double)weft_hist_quantile(h, q) / 1000.0;
}

void crawl_out_summary(crawl_out_t *out, const crawl_stats_t *s, const crawl_stats_t *seq)
{
    if (!out->o->summary) return;
    const weft_hist_t *h = &s->latency_us;
    double mean = h->count ? (double)h->sum / (double)h->count / 1000.0 : 0;
    const weft_hist_t *qh = &s->queued_us;
    double qmean = qh->count ? (double)qh->sum / (double)qh->count / 1000.0 : 0;
    printf("pages      %llu ok, %llu failed, %llu retries, %.1f MB\n", (unsigned long long)s->ok,
           (unsigned long long)s->failed, (unsigned long long)s->retries, (double)s->bytes / 1e6);
    printf("wall time  %.3f s, %.1f pages/s, at most %llu in flight\n", s->wall_s,
           s->wall_s > 0 ? (double)s->pages / s->wall_s : 0, (unsigned long long)s->max_inflight);
    printf("latency    mean %.0f ms, p50 %.0f, p90 %.0f, p99 %.0f ms; queued mean %.0f ms\n", mean,
           q_ms(h, 0.5), q_ms(h, 0.9), q_ms(h, 0.99), qmean);
    printf("errors     ");
    if (!s->nkinds) printf("none");
    for (size_t i = 0; i < s->nkinds; i++)
        printf("%s%s %llu", i ? ", " : "", s->kinds[i], (unsigned long long)s->kind_count[i]);
    putchar('\n');
    if (seq && seq != s && s->wall_s > 0)
        printf("speed-up   %.1fx over sequential\n", seq->wall_s / s->wall_s);
    fflush(stdout);
}

void crawl_out_comparison(crawl_out_t *out, const crawl_stats_t *st, size_t n)
{
    if (!out->o->summary || n < 2) return;
    const crawl_stats_t *seq = NULL;
    double maxw = 0;
    for (size_t i = 0; i < n; i++) {
        if (st[i].mode == CRAWL_SEQ) seq = &st[i];
        if (st[i].wall_s > maxw) maxw = st[i].wall_s;
    }
    printf("\n=== comparison ===\n");
    printf("mode     parallel   total s  pages/s  mean ms  p50 ms  p99 ms  errors  speed-up\n");
    for (size_t i = 0; i < n; i++) {
        const crawl_stats_t *s = &st[i];
        const weft_hist_t *h = &s->latency_us;
        double mean = h->count ? (double)h->sum / (double)h->count / 1000.0 : 0;
        printf("%-8s %8d %9.2f %8.1f %8.0f %7.0f %7.0f %7llu  ", crawl_mode_name(s->mode),
               s->parallelism, s->wall_s, s->wall_s > 0 ? (double)s->pages / s->wall_s : 0, mean,
               q_ms(h, 0.5), q_ms(h, 0.99), (unsigned long long)s->failed);
        if (seq && s->wall_s > 0)
            printf("%7.1fx ", seq->wall_s / s->wall_s);
        else
            printf("%8s ", "-");
        weft_cli_bar(stdout, s->wall_s, maxw, 20);
        putchar('\n');
    }
    fflush(stdout);
}

int crawl_out_close(crawl_out_t *out)
{
    if (!out) return 0;
    int rc = out->failed_write ? -EIO : 0;
    FILE *fs[2] = {out->jsonl, out->csv};
    for (int i = 0; i < 2; i++) {
        if (!fs[i]) continue;
        if (fs[i] == stdout) {
            if (fflush(stdout) != 0) rc = -EIO;
        } else if (fclose(fs[i]) != 0) {
            rc = -EIO;
        }
    }
    free(out);
    return rc;
}
