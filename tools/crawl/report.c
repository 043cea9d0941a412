/* `weft crawl --report FILE.html`: one self-contained page with the comparison of the modes as
 * inline SVG charts (total time per mode; latency distribution as CDF curves), the summary
 * table, and the slowest and failed pages. No scripts, no external resources; everything that
 * came from a page (titles, URLs, error messages) is HTML-escaped. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <weft/utf8.h>

#include "crawl/crawl.h"

static const char *const colors[CRAWL_NMODES] = {"#d9534f", "#f0ad4e", "#0275d8"};

void crawl_html_escape(FILE *f, const char *s)
{
    if (!s) return;
    weft_buf_t b;
    weft_buf_init(&b, 0);
    if (weft_utf8_escape_html(&b, s, strlen(s)) == 0 && b.len) fwrite(b.data, 1, b.len, f);
    weft_buf_free(&b);
}

static double mean_ms(const crawl_stats_t *s)
{
    const weft_hist_t *h = &s->latency_us;
    return h->count ? (double)h->sum / (double)h->count / 1000.0 : 0;
}

static void bar_chart(FILE *f, const crawl_stats_t *st, size_t n)
{
    double maxw = 0;
    for (size_t i = 0; i < n; i++)
        if (st[i].wall_s > maxw) maxw = st[i].wall_s;
    int w = 640, row = 34, left = 90, h = (int)n * row + 30;
    fprintf(f, "<svg width=\"%d\" height=\"%d\" role=\"img\" aria-label=\"total time per mode\">\n",
            w, h);
    for (size_t i = 0; i < n; i++) {
        double frac = maxw > 0 ? st[i].wall_s / maxw : 0;
        int y = 10 + (int)i * row, bw = (int)(frac * (w - left - 120));
        fprintf(f,
                "<text x=\"0\" y=\"%d\">%s</text><rect x=\"%d\" y=\"%d\" width=\"%d\" "
                "height=\"22\" fill=\"%s\"/><text x=\"%d\" y=\"%d\">%.2f s</text>\n",
                y + 16, crawl_mode_name(st[i].mode), left, y, bw > 1 ? bw : 1, colors[st[i].mode],
                left + bw + 8, y + 16, st[i].wall_s);
    }
    fprintf(f, "</svg>\n");
}

static void cdf_chart(FILE *f, const crawl_stats_t *st, size_t n)
{
    static const double qs[] = {0.001, 0.01, 0.05, 0.1,  0.2,  0.3,  0.4,   0.5,   0.6, 0.7,
                                0.8,   0.9,  0.95, 0.97, 0.98, 0.99, 0.995, 0.999, 1.0};
    const size_t nq = sizeof qs / sizeof qs[0];
    double maxx = 0;
    for (size_t i = 0; i < n; i++) {
        double x = (double)weft_hist_quantile(&st[i].latency_us, 0.999) / 1000.0;
        if (x > maxx) maxx = x;
    }
    if (maxx <= 0) maxx = 1;
    int w = 640, h = 300, left = 50, bottom = 30, pw = w - left - 20, ph = h - bottom - 10;
    fprintf(f,
            "<svg width=\"%d\" height=\"%d\" role=\"img\" aria-label=\"latency distribution\">\n"
            "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#888\"/>\n"
            "<line x1=\"%d\" y1=\"10\" x2=\"%d\" y2=\"%d\" stroke=\"#888\"/>\n",
            w, h, left, 10 + ph, left + pw, 10 + ph, left, left, 10 + ph);
    for (int t = 0; t <= 4; t++) {
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\">%.0f ms</text>\n",
                left + t * pw / 4 - 12, h - 8, maxx * t / 4);
        fprintf(f, "<text x=\"0\" y=\"%d\" font-size=\"11\">%d%%</text>\n",
                10 + ph - t * ph / 4 + 4, t * 25);
    }
    for (size_t i = 0; i < n; i++) {
        if (!st[i].latency_us.count) continue;
        fprintf(f, "<polyline fill=\"none\" stroke-width=\"2\" stroke=\"%s\" points=\"",
                colors[st[i].mode]);
        for (size_t k = 0; k < nq; k++) {
            double x = (double)weft_hist_quantile(&st[i].latency_us, qs[k]) / 1000.0;
            if (x > maxx) x = maxx;
            fprintf(f, "%.1f,%.1f ", left + x / maxx * pw, 10 + ph - qs[k] * ph);
        }
        fprintf(f, "\"/>\n<text x=\"%d\" y=\"%d\" fill=\"%s\">%s</text>\n", left + pw - 80,
                30 + (int)i * 16, colors[st[i].mode], crawl_mode_name(st[i].mode));
    }
    fprintf(f, "</svg>\n");
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
               "</style></head><body>\n<h1>weft crawl report</h1>\n<p>Input: <code>");
    crawl_html_escape(f, o->input);
    fprintf(f,
            "</code>; threads %d, concurrency %d, per-host %d, rate %g/s per host, %d "
            "attempts.</p>\n",
            o->threads, o->concurrency, o->per_host, o->rate, o->attempts);
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
    bar_chart(f, st, n);
    fprintf(f, "<h2>Latency distribution</h2>\n<p>Share of pages (y) answered within a time "
               "(x): further left is faster.</p>\n");
    cdf_chart(f, st, n);
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
    fprintf(f, "</body></html>\n");
    int rc = ferror(f) ? -EIO : 0;
    if (fclose(f) != 0) rc = -EIO;
    return rc;
}
