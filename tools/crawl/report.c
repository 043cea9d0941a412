/* `weft crawl --report FILE.html`: one self-contained page with the comparison of the modes: the
 * summary table, two charts (total time per mode; latency distribution as CDF curves) drawn by
 * the embedded uPlot from JSON in the page (common/html-int.h), and the slowest and failed
 * pages. No external resources; everything that came from a page (titles, URLs, error
 * messages) is HTML-escaped text, and no page's text reaches a script other than as JSON. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <weft/utf8.h>

#include "common/html-int.h"
#include "crawl/crawl.h"

static const char *const colors[CRAWL_NMODES] = {"#d9534f", "#f0ad4e", "#0275d8"};

void crawl_html_escape(FILE *f, const char *s)
{
    if (!s) return;
    weft_buf_t b, clean;
    weft_buf_init(&b, 0);
    weft_buf_init(&clean, 0);
    crawl_defang(&clean, s);
    if (clean.data && weft_utf8_escape_html(&b, clean.data, clean.len) == 0 && b.len)
        fwrite(b.data, 1, b.len, f);
    weft_buf_free(&b);
    weft_buf_free(&clean);
}

static double mean_ms(const crawl_stats_t *s)
{
    const weft_hist_t *h = &s->latency_us;
    return h->count ? (double)h->sum / (double)h->count / 1000.0 : 0;
}

/* Total time per mode: one bar each, its figure in the legend. */
static int bar_chart(weft_buf_t *b, const crawl_stats_t *st, size_t n)
{
    const char *cats[CRAWL_NMODES];
    char labels[CRAWL_NMODES][48];
    double ys[CRAWL_NMODES][CRAWL_NMODES];
    tools_html_series_t ser[CRAWL_NMODES];
    if (n > CRAWL_NMODES) n = CRAWL_NMODES;
    for (size_t i = 0; i < n; i++) {
        cats[i] = crawl_mode_name(st[i].mode);
        snprintf(labels[i], sizeof labels[i], "%s (%.2f s)", cats[i], st[i].wall_s);
        for (size_t k = 0; k < n; k++) ys[i][k] = k == i ? st[i].wall_s : NAN;
        ser[i] = (tools_html_series_t){
            .label = labels[i], .color = colors[st[i].mode], .y = ys[i], .n = n};
    }
    tools_html_chart_t c = {.title = "total time per mode",
                            .xlabel = "mode",
                            .ylabel = "s",
                            .categories = cats,
                            .ncategories = n,
                            .series = ser,
                            .nseries = n};
    return tools_html_chart(b, &c);
}

/* The latency distribution: per mode, the share of pages (y, %) answered within a time (x, ms),
 * the x axis cut at the slowest mode's p99.9. */
static int cdf_chart(weft_buf_t *b, const crawl_stats_t *st, size_t n)
{
    static const double qs[] = {0.001, 0.01, 0.05, 0.1,  0.2,  0.3,  0.4,   0.5,   0.6, 0.7,
                                0.8,   0.9,  0.95, 0.97, 0.98, 0.99, 0.995, 0.999, 1.0};
    enum { NQS = sizeof qs / sizeof qs[0] };
    double xs[CRAWL_NMODES][NQS], ys[NQS], maxx = 0;
    tools_html_series_t ser[CRAWL_NMODES];
    size_t ns = 0;
    for (size_t k = 0; k < NQS; k++) ys[k] = qs[k] * 100;
    for (size_t i = 0; i < n && i < CRAWL_NMODES; i++) {
        double x = (double)weft_hist_quantile(&st[i].latency_us, 0.999) / 1000.0;
        if (x > maxx) maxx = x;
        if (!st[i].latency_us.count) continue;
        for (size_t k = 0; k < NQS; k++)
            xs[ns][k] = (double)weft_hist_quantile(&st[i].latency_us, qs[k]) / 1000.0;
        ser[ns] = (tools_html_series_t){.label = crawl_mode_name(st[i].mode),
                                        .color = colors[st[i].mode],
                                        .x = xs[ns],
                                        .y = ys,
                                        .n = NQS};
        ns++;
    }
    tools_html_chart_t c = {.title = "latency distribution",
                            .xlabel = "ms",
                            .ylabel = "% of pages",
                            .xmax = maxx > 0 ? maxx : 1,
                            .ymax = 100,
                            .series = ser,
                            .nseries = ns};
    return tools_html_chart(b, &c);
}

/* Writes out what b holds and empties it. */
static void put(FILE *f, weft_buf_t *b)
{
    if (b->len) fwrite(b->data, 1, b->len, f);
    weft_buf_reset(b);
}

int crawl_report_write(const char *path, const crawl_opts_t *o, const crawl_stats_t *st, size_t n,
                       const crawl_page_note_t *notes, size_t nnotes)
{
    FILE *f = fopen(path, "w");
    if (!f) return -errno;
    const crawl_stats_t *seq = NULL;
    for (size_t i = 0; i < n; i++)
        if (st[i].mode == CRAWL_SEQ) seq = &st[i];
    fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
               "<title>weft crawl report</title>\n<style>\n"
               "body{font-family:sans-serif;margin:2em;max-width:60em}\n"
               "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;"
               "text-align:right}td.t{text-align:left;max-width:30em;overflow-wrap:anywhere}\n"
               "</style>\n");
    weft_buf_t charts;
    weft_buf_init(&charts, 0);
    int rc = tools_html_charts_style(&charts);
    put(f, &charts);
    fprintf(f, "</head><body>\n<h1>weft crawl report</h1>\n<p>Input: <code>");
    crawl_html_escape(f, o->input);
    char per_host[32] = "none", rate[48] = "none";
    if (o->per_host > 0) snprintf(per_host, sizeof per_host, "%d", o->per_host);
    if (o->rate > 0) snprintf(rate, sizeof rate, "%g/s per host", o->rate);
    fprintf(f,
            "</code>; threads %d, concurrency %d, per-host limit %s, rate limit %s, %d "
            "attempts.</p>\n",
            o->threads, o->concurrency, per_host, rate, o->attempts);
    fprintf(f, "<h2>Summary</h2>\n<table><tr><th>mode</th><th>parallel</th><th>pages</th>"
               "<th>failed</th><th>retries</th><th>total s</th><th>pages/s</th><th>mean ms</th>"
               "<th>p50</th><th>p90</th><th>p99</th><th>speed-up</th></tr>\n");
    for (size_t i = 0; i < n; i++) {
        const crawl_stats_t *s = &st[i];
        fprintf(f,
                "<tr><td class=\"t\">%s</td><td>%d</td><td>%llu</td><td>%llu</td><td>%llu</td>"
                "<td>%.2f</td><td>%.1f</td><td>%.0f</td><td>%.0f</td><td>%.0f</td><td>%.0f</td>",
                crawl_mode_name(s->mode), s->parallelism, (unsigned long long)s->pages,
                (unsigned long long)s->failed, (unsigned long long)s->retries, s->wall_s,
                s->wall_s > 0 ? (double)s->pages / s->wall_s : 0, mean_ms(s),
                weft_hist_quantile(&s->latency_us, 0.5) / 1000.0,
                weft_hist_quantile(&s->latency_us, 0.9) / 1000.0,
                weft_hist_quantile(&s->latency_us, 0.99) / 1000.0);
        if (seq && s->wall_s > 0)
            fprintf(f, "<td>%.1fx</td></tr>\n", seq->wall_s / s->wall_s);
        else
            fprintf(f, "<td>-</td></tr>\n");
    }
    fprintf(f, "</table>\n<h2>Total time per mode</h2>\n");
    rc |= bar_chart(&charts, st, n);
    rc |= weft_buf_printf(&charts, "<h2>Latency distribution</h2>\n<p>Share of pages (y) "
                                   "answered within a time (x): further left is faster.</p>\n");
    rc |= cdf_chart(&charts, st, n);
    put(f, &charts);
    for (size_t i = 0; i < n; i++) {
        if (!st[i].nkinds) continue;
        fprintf(f, "<h3>Errors in %s</h3>\n<ul>\n", crawl_mode_name(st[i].mode));
        for (size_t k = 0; k < st[i].nkinds; k++)
            fprintf(f, "<li>%s: %llu</li>\n", st[i].kinds[k],
                    (unsigned long long)st[i].kind_count[k]);
        fprintf(f, "</ul>\n");
    }
    if (nnotes) {
        fprintf(f, "<h2>Slowest and failed pages</h2>\n<table><tr><th>mode</th><th>ms</th>"
                   "<th>URL</th><th>title</th><th>error</th></tr>\n");
        for (size_t i = 0; i < nnotes; i++) {
            const crawl_page_note_t *p = &notes[i];
            fprintf(f, "<tr><td class=\"t\">%s</td><td>%.0f</td><td class=\"t\">",
                    crawl_mode_name(p->mode), p->ms);
            crawl_html_escape(f, p->url);
            fprintf(f, "</td><td class=\"t\">");
            crawl_html_escape(f, p->title);
            fprintf(f, "</td><td class=\"t\">");
            crawl_html_escape(f, p->error);
            fprintf(f, "</td></tr>\n");
        }
        fprintf(f, "</table>\n");
    }
    rc |= tools_html_charts_script(&charts);
    put(f, &charts);
    weft_buf_free(&charts);
    fprintf(f, "</body></html>\n");
    rc = rc ? -ENOMEM : ferror(f) ? -EIO : 0;
    if (fclose(f) != 0) rc = -EIO;
    return rc;
}
