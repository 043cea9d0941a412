/* weft logs: terminal and JSON reports (report.h; the HTML one is html.c). Numbers are printed from
 * integers; shares and bar lengths are derived from them at print time, so they too are identical
 * for identical statistics. */
#include "logs/report.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <string.h>
#include <weft/utf8.h>

#include "common/cli-int.h"

void weft_logs_secs(char *buf, size_t len, uint64_t us)
{
    int n = snprintf(buf, len, "%" PRIu64 ".%06" PRIu64, us / 1000000, us % 1000000);
    if (n <= 0 || (size_t)n >= len) return;
    char *e = buf + n - 1;
    while (*e == '0') *e-- = '\0';
    if (*e == '.') *e = '\0';
}

/* 1234567 -> "1,234,567" */
static const char *grouped(char *buf, size_t len, uint64_t v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%" PRIu64, v);
    size_t o = 0;
    for (int i = 0; i < n && o + 2 < len; i++) {
        if (i && (n - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = tmp[i];
    }
    buf[o] = '\0';
    return buf;
}

static const char *human_bytes(char *buf, size_t len, uint64_t v)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double d = (double)v;
    int u = 0;
    while (d >= 1024 && u < 5) {
        d /= 1024;
        u++;
    }
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", d, unit[u]);
    return buf;
}

/* A count of distinct paths, or "more than 65,536" after a recount (rank.c). */
static const char *distinct_text(char *buf, size_t len, uint64_t v)
{
    if (v != WEFT_LOGS_DISTINCT_UNKNOWN) return grouped(buf, len, v);
    char m[32];
    snprintf(buf, len, "more than %s", grouped(m, sizeof m, WEFT_LOGS_MAX_PATHS));
    return buf;
}

static double pct(uint64_t part, uint64_t whole)
{
    return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

static void print_panels(FILE *f, const weft_logs_report_t *r);

void weft_logs_print_text(FILE *f, const weft_logs_report_t *r, const weft_logs_meta_t *m)
{
    char a[32], b[32], c[32];
    if (m && m->inputs)
        fprintf(f, "Access log report: %s%s%s%s\n\n", m->inputs, m->formats ? " (format: " : "",
                m->formats ? m->formats : "", m->formats ? ")" : "");
    fprintf(f, "  Lines          %s   parsed %s   malformed %s", grouped(a, sizeof a, r->lines),
            grouped(b, sizeof b, r->parsed), grouped(c, sizeof c, r->malformed));
    if (r->excluded) fprintf(f, "   excluded %s", grouped(a, sizeof a, r->excluded));
    fputc('\n', f);
    fprintf(f, "  Clients        %s distinct IPs\n", grouped(a, sizeof a, r->distinct_ips));
    if (r->ext.panels & WEFT_LOGS_PANEL_VISITORS)
        fprintf(f, "  Visitors       %s unique (distinct IP + date + user agent)\n",
                grouped(a, sizeof a, r->ext.visitors));
    fprintf(f, "  Bytes sent     %s (%s)\n", human_bytes(a, sizeof a, r->bytes),
            grouped(b, sizeof b, r->bytes));
    if (r->rt_count) {
        char v[7][24];
        uint64_t us[7] = {r->rt_avg, r->rt_min, r->rt_max, r->rt_p50,
                          r->rt_p90, r->rt_p95, r->rt_p99};
        for (int i = 0; i < 7; i++) weft_logs_secs(v[i], sizeof v[i], us[i]);
        fprintf(f, "  Response time  avg %s s   min %s   max %s\n", v[0], v[1], v[2]);
        fprintf(f, "                 p50 %s   p90 %s   p95 %s   p99 %s   (%s timed)\n", v[3], v[4],
                v[5], v[6], grouped(a, sizeof a, r->rt_count));
    } else {
        fprintf(f, "  Response time  (none in this log format)\n");
    }

    uint64_t hmax = 0;
    for (int h = 0; h < 24; h++)
        if (r->hourly[h] > hmax) hmax = r->hourly[h];
    fprintf(f, "\nRequests per hour of day (as written in the log; UTC offset not applied)\n");
    for (int h = 0; h < 24; h++) {
        fprintf(f, "  %02d  ", h);
        weft_cli_bar(f, (double)r->hourly[h], (double)hmax, 40);
        fprintf(f, " %5.1f%%  %s\n", pct(r->hourly[h], r->parsed),
                grouped(a, sizeof a, r->hourly[h]));
    }

    fprintf(f, "\nStatus codes\n");
    uint64_t cls[10] = {0};
    for (int s = 100; s < WEFT_LOGS_STATUS_MAX; s++) cls[s / 100] += r->status[s];
    for (int k = 1; k <= 9; k++) {
        if (!cls[k] && k > 5) continue;
        fprintf(f, "  %dxx  ", k);
        weft_cli_bar(f, (double)cls[k], (double)r->parsed, 40);
        fprintf(f, " %5.1f%%  %s\n", pct(cls[k], r->parsed), grouped(a, sizeof a, cls[k]));
    }
    fprintf(f, "\n");
    for (int s = 100; s < WEFT_LOGS_STATUS_MAX; s++) {
        if (!r->status[s]) continue;
        fprintf(f, "  %d  ", s);
        weft_cli_bar(f, (double)r->status[s], (double)r->parsed, 40);
        fprintf(f, " %5.1f%%  %s\n", pct(r->status[s], r->parsed),
                grouped(a, sizeof a, r->status[s]));
    }

    fprintf(f, "\nTop %zu client IPs (of %s)\n", r->ntop, grouped(a, sizeof a, r->distinct_ips));
    for (size_t i = 0; i < r->ntop; i++) {
        char ip[64];
        weft_logs_ip_text(&r->top[i], ip, sizeof ip);
        fprintf(f, "  %3zu  %-39s %12s  %5.2f%%  ", i + 1, ip,
                grouped(a, sizeof a, r->top[i].count), pct(r->top[i].count, r->parsed));
        weft_cli_bar(f, (double)r->top[i].count, (double)r->top[0].count, 20);
        fputc('\n', f);
    }

    if (r->paths_overflow) {
        fprintf(f,
                "\nTop paths: not computed (more than %d distinct paths in an input that "
                "cannot be read twice for the exact recount: a stream or merged partials)\n",
                WEFT_LOGS_MAX_PATHS);
    } else if (r->npaths) {
        fprintf(f, "\nTop %zu paths (of %s; query strings dropped)\n", r->npaths,
                distinct_text(a, sizeof a, r->distinct_paths));
        for (size_t i = 0; i < r->npaths; i++) {
            fprintf(f, "  %3zu  %12s  %5.2f%%  ", i + 1,
                    grouped(a, sizeof a, r->top_paths[i].count),
                    pct(r->top_paths[i].count, r->parsed));
            weft_cli_put_safe(f, r->top_paths[i].path, 60);
            fputc('\n', f);
        }
    }
    uint64_t nf = r->status[404];
    if (r->paths404_overflow) {
        fprintf(f,
                "\nNot found (404): not computed (more than %d distinct paths in an input that "
                "cannot be read twice for the exact recount: a stream or merged partials)\n",
                WEFT_LOGS_MAX_PATHS);
    } else if (r->npaths404) {
        fprintf(f, "\nNot found (404): top %zu paths (of %s)\n", r->npaths404,
                distinct_text(a, sizeof a, r->distinct_paths404));
        for (size_t i = 0; i < r->npaths404; i++) {
            fprintf(f, "  %3zu  %12s  %5.2f%%  ", i + 1,
                    grouped(a, sizeof a, r->top_paths404[i].count),
                    pct(r->top_paths404[i].count, nf));
            weft_cli_put_safe(f, r->top_paths404[i].path, 60);
            fputc('\n', f);
        }
    }
    if (r->statics_overflow) {
        fprintf(f,
                "\nStatic requests: not computed (more than %d distinct paths in an input that "
                "cannot be read twice for the exact recount: a stream or merged partials)\n",
                WEFT_LOGS_MAX_PATHS);
    } else if (r->nstatics) {
        fprintf(f, "\nStatic requests: %s (%.2f%%), top %zu files (of %s)\n",
                grouped(a, sizeof a, r->static_hits), pct(r->static_hits, r->parsed), r->nstatics,
                distinct_text(b, sizeof b, r->distinct_statics));
        for (size_t i = 0; i < r->nstatics; i++) {
            fprintf(f, "  %3zu  %12s  %5.2f%%  ", i + 1,
                    grouped(a, sizeof a, r->top_statics[i].count),
                    pct(r->top_statics[i].count, r->parsed));
            weft_cli_put_safe(f, r->top_statics[i].path, 60);
            fputc('\n', f);
        }
    }
    print_panels(f, r);
}

/* ---- the GoAccess panels ------------------------------------------------------------------- */

static const char *date_text(char *buf, size_t len, uint32_t d)
{
    snprintf(buf, len, "%04d-%02d-%02d", WEFT_LOGS_DATE_Y(d), WEFT_LOGS_DATE_M(d),
             WEFT_LOGS_DATE_D(d));
    return buf;
}

/* The panels in report order, with their JSON keys and text titles. */
typedef struct panel_desc {
    const char *key, *title;
    size_t off; /* of the weft_logs_panel_t in weft_logs_ext_report_t */
} panel_desc_t;

static const panel_desc_t panels[] = {
    {"urls", "Requested URLs (method, decoded path, protocol)",
     offsetof(weft_logs_ext_report_t, urls)},
    {"ips", "Visitor IPs", offsetof(weft_logs_ext_report_t, ips)},
    {"os", "Operating systems", offsetof(weft_logs_ext_report_t, os)},
    {"browsers", "Browsers", offsetof(weft_logs_ext_report_t, browsers)},
    {"crawlers", "Crawlers", offsetof(weft_logs_ext_report_t, crawlers)},
    {"referring_sites", "Referring sites", offsetof(weft_logs_ext_report_t, sites)},
    {"referrers", "Referrers", offsetof(weft_logs_ext_report_t, referrers)},
    {"vhosts", "Virtual hosts", offsetof(weft_logs_ext_report_t, vhosts)},
};
#define NPANELS (sizeof panels / sizeof panels[0])

static const weft_logs_panel_t *panel_at(const weft_logs_report_t *r, size_t i)
{
    return (const weft_logs_panel_t *)(const void *)((const char *)&r->ext + panels[i].off);
}

static void print_panels(FILE *f, const weft_logs_report_t *r)
{
    char a[32], b[32], c[32];
    const weft_logs_ext_report_t *x = &r->ext;
    if ((x->panels & WEFT_LOGS_PANEL_DAILY) && x->ndays) {
        bool vis = x->panels & WEFT_LOGS_PANEL_VISITORS;
        fprintf(f, "\nPer day (the date as written in the log)\n");
        fprintf(f, "  %-10s  %12s  %12s  %11s\n", "date", "requests", vis ? "visitors" : "",
                "bytes");
        uint64_t dmax = 0;
        for (size_t i = 0; i < x->ndays; i++)
            if (x->days[i].requests > dmax) dmax = x->days[i].requests;
        for (size_t i = 0; i < x->ndays; i++) {
            const weft_logs_day_row_t *d = &x->days[i];
            char dt[16];
            fprintf(f, "  %-10s  %12s  %12s  %11s  ", date_text(dt, sizeof dt, d->date),
                    grouped(a, sizeof a, d->requests), vis ? grouped(b, sizeof b, d->visitors) : "",
                    human_bytes(c, sizeof c, d->bytes));
            weft_cli_bar(f, (double)d->requests, (double)dmax, 20);
            fputc('\n', f);
        }
    }
    for (size_t k = 0; k < NPANELS; k++) {
        const weft_logs_panel_t *p = panel_at(r, k);
        if (!p->present) continue;
        if (p->overflow) {
            fprintf(f, "\n%s: not computed (more distinct keys than the panel holds)\n",
                    panels[k].title);
            continue;
        }
        fprintf(f, "\n%s: top %zu (of %s)\n", panels[k].title, p->n,
                grouped(a, sizeof a, p->distinct));
        fprintf(f, "  %3s  %12s  %6s  %10s  %10s\n", "#", "hits", "share", "visitors", "bytes");
        for (size_t i = 0; i < p->n; i++) {
            const weft_logs_row_t *w = &p->rows[i];
            char v[32];
            fprintf(f, "  %3zu  %12s  %5.2f%%  %10s  %10s  ", i + 1, grouped(a, sizeof a, w->hits),
                    pct(w->hits, r->parsed),
                    w->visitors == WEFT_LOGS_VISITORS_UNKNOWN ? "-"
                                                              : grouped(v, sizeof v, w->visitors),
                    human_bytes(b, sizeof b, w->bytes));
            if (w->rt_n) {
                char avg[24], mx[24];
                weft_logs_secs(avg, sizeof avg, w->rt_sum / w->rt_n);
                weft_logs_secs(mx, sizeof mx, w->rt_max);
                fprintf(f, "avg %-8s max %-8s  ", avg, mx);
            }
            if (w->method && *w->method) fprintf(f, "%s ", w->method);
            weft_cli_put_safe(f, w->name, 60);
            if (w->protocol && *w->protocol) fprintf(f, " %s", w->protocol);
            fputc('\n', f);
        }
    }
}

/* ---- JSON ---------------------------------------------------------------------------------- */

/* Appends s as a JSON string (weft/utf8.h: quotes, backslashes and controls escaped, invalid
 * UTF-8 as \ufffd). */
static int json_str(weft_buf_t *b, const char *s)
{
    int rc = weft_buf_append(b, "\"", 1);
    if (!rc) rc = weft_utf8_escape_json(b, s, strlen(s));
    return rc ? rc : weft_buf_append(b, "\"", 1);
}

/* ,"KEY":[{"path":..,"count":..}...],"DKEY":N (both null when the table overflowed). */
static int json_paths(weft_buf_t *b, const char *key, const char *dkey, bool overflow,
                      const weft_logs_pathcount_t *list, size_t n, uint64_t distinct)
{
    if (overflow) return weft_buf_printf(b, ",\"%s\":null,\"%s\":null", key, dkey);
    int rc = weft_buf_printf(b, ",\"%s\":[", key);
    for (size_t i = 0; i < n && !rc; i++) {
        rc |= weft_buf_printf(b, "%s{\"path\":", i ? "," : "");
        rc |= json_str(b, list[i].path);
        rc |= weft_buf_printf(b, ",\"count\":%" PRIu64 "}", list[i].count);
    }
    if (distinct == WEFT_LOGS_DISTINCT_UNKNOWN) /* recounted: more than the table holds */
        return rc | weft_buf_printf(b, "],\"%s\":null", dkey);
    return rc | weft_buf_printf(b, "],\"%s\":%" PRIu64, dkey, distinct);
}

static int json_panels(weft_buf_t *b, const weft_logs_report_t *r)
{
    const weft_logs_ext_report_t *x = &r->ext;
    int rc = 0;
    char d[32];
    if (x->panels & WEFT_LOGS_PANEL_VISITORS)
        rc |= weft_buf_printf(b, ",\"visitors\":%" PRIu64, x->visitors);
    if (x->panels & WEFT_LOGS_PANEL_DAILY) {
        rc |= weft_buf_printf(b, ",\"daily\":[");
        for (size_t i = 0; i < x->ndays; i++) {
            const weft_logs_day_row_t *w = &x->days[i];
            rc |= weft_buf_printf(b, "%s{\"date\":\"%s\",\"requests\":%" PRIu64, i ? "," : "",
                                  date_text(d, sizeof d, w->date), w->requests);
            if (x->panels & WEFT_LOGS_PANEL_VISITORS)
                rc |= weft_buf_printf(b, ",\"visitors\":%" PRIu64, w->visitors);
            rc |= weft_buf_printf(b, ",\"bytes\":%" PRIu64 "}", w->bytes);
        }
        rc |= weft_buf_printf(b, "]");
    }
    if (x->panels & WEFT_LOGS_PANEL_MINUTELY) {
        rc |= weft_buf_printf(b, ",\"minutely\":[");
        for (int i = 0; i < 1440; i++)
            rc |= weft_buf_printf(b, "%s%" PRIu64, i ? "," : "", x->minutely[i]);
        rc |= weft_buf_printf(b, "]");
    }
    for (size_t k = 0; k < NPANELS; k++) {
        const weft_logs_panel_t *p = panel_at(r, k);
        if (!p->present) continue;
        if (p->overflow) {
            rc |= weft_buf_printf(b, ",\"%s\":null", panels[k].key);
        } else {
            rc |= weft_buf_printf(b, ",\"%s\":[", panels[k].key);
            for (size_t i = 0; i < p->n; i++) {
                const weft_logs_row_t *w = &p->rows[i];
                bool url = w->method != NULL;
                rc |= weft_buf_printf(b, "%s{", i ? "," : "");
                if (url) {
                    rc |= weft_buf_printf(b, "\"method\":") | json_str(b, w->method);
                    rc |= weft_buf_printf(b, ",\"path\":") | json_str(b, w->name);
                    rc |= weft_buf_printf(b, ",\"protocol\":") | json_str(b, w->protocol);
                } else {
                    rc |= weft_buf_printf(b, "\"%s\":", k == 1 ? "ip" : "name") |
                          json_str(b, w->name);
                }
                rc |= weft_buf_printf(b, ",\"hits\":%" PRIu64 ",\"visitors\":", w->hits);
                rc |= w->visitors == WEFT_LOGS_VISITORS_UNKNOWN
                          ? weft_buf_printf(b, "null")
                          : weft_buf_printf(b, "%" PRIu64, w->visitors);
                rc |= weft_buf_printf(b, ",\"bytes\":%" PRIu64, w->bytes);
                if (w->rt_n) {
                    char v[3][24];
                    weft_logs_secs(v[0], sizeof v[0], w->rt_sum / w->rt_n);
                    weft_logs_secs(v[1], sizeof v[1], w->rt_sum);
                    weft_logs_secs(v[2], sizeof v[2], w->rt_max);
                    rc |= weft_buf_printf(b, ",\"rt_avg\":%s,\"rt_sum\":%s,\"rt_max\":%s", v[0],
                                          v[1], v[2]);
                }
                rc |= weft_buf_printf(b, "}");
            }
            rc |= weft_buf_printf(b, "]");
        }
        if (k == 1) continue; /* "ips": its distinct count is the summary's "distinct_ips" */
        rc |= weft_buf_printf(b, ",\"distinct_%s\":", panels[k].key);
        rc |=
            p->overflow ? weft_buf_printf(b, "null") : weft_buf_printf(b, "%" PRIu64, p->distinct);
    }
    return rc;
}

int weft_logs_write_json(weft_buf_t *b, const weft_logs_report_t *r)
{
    int rc = weft_buf_printf(
        b, "{\"lines\":%" PRIu64 ",\"parsed\":%" PRIu64 ",\"malformed\":%" PRIu64 ",\"hourly\":[",
        r->lines, r->parsed, r->malformed);
    for (int h = 0; h < 24; h++) rc |= weft_buf_printf(b, "%s%" PRIu64, h ? "," : "", r->hourly[h]);
    rc |= weft_buf_printf(b, "],\"status\":{");
    bool first = true;
    for (int s = 0; s < WEFT_LOGS_STATUS_MAX; s++) {
        if (!r->status[s]) continue;
        rc |= weft_buf_printf(b, "%s\"%d\":%" PRIu64, first ? "" : ",", s, r->status[s]);
        first = false;
    }
    rc |= weft_buf_printf(b, "},\"top_ips\":[");
    for (size_t i = 0; i < r->ntop; i++) {
        char ip[64];
        weft_logs_ip_text(&r->top[i], ip, sizeof ip);
        rc |= weft_buf_printf(b, "%s{\"ip\":\"%s\",\"count\":%" PRIu64 "}", i ? "," : "", ip,
                              r->top[i].count);
    }
    char v[7][24];
    uint64_t us[7] = {r->rt_avg, r->rt_min, r->rt_max, r->rt_p50, r->rt_p90, r->rt_p95, r->rt_p99};
    for (int i = 0; i < 7; i++) weft_logs_secs(v[i], sizeof v[i], us[i]);
    rc |= weft_buf_printf(b,
                          "],\"distinct_ips\":%" PRIu64 ",\"bytes\":%" PRIu64
                          ",\"response_time\":{\"avg\":%s,\"min\":%s,\"max\":%s,\"p50\":%s,"
                          "\"p90\":%s,\"p95\":%s,\"p99\":%s,\"count\":%" PRIu64 "}",
                          r->distinct_ips, r->bytes, v[0], v[1], v[2], v[3], v[4], v[5], v[6],
                          r->rt_count);
    uint64_t cls[10] = {0};
    for (int s = 100; s < WEFT_LOGS_STATUS_MAX; s++) cls[s / 100] += r->status[s];
    rc |= weft_buf_printf(
        b,
        ",\"status_classes\":{\"1xx\":%" PRIu64 ",\"2xx\":%" PRIu64 ",\"3xx\":%" PRIu64
        ",\"4xx\":%" PRIu64 ",\"5xx\":%" PRIu64 ",\"other\":%" PRIu64 "}",
        cls[1], cls[2], cls[3], cls[4], cls[5], cls[6] + cls[7] + cls[8] + cls[9]);
    rc |= json_paths(b, "top_paths", "distinct_paths", r->paths_overflow, r->top_paths, r->npaths,
                     r->distinct_paths);
    rc |= json_paths(b, "top_404_paths", "distinct_404_paths", r->paths404_overflow,
                     r->top_paths404, r->npaths404, r->distinct_paths404);
    rc |= json_paths(b, "top_static_paths", "distinct_static_paths", r->statics_overflow,
                     r->top_statics, r->nstatics, r->distinct_statics);
    if (r->statics_overflow)
        rc |= weft_buf_printf(b, ",\"static_requests\":null");
    else
        rc |= weft_buf_printf(b, ",\"static_requests\":%" PRIu64, r->static_hits);
    rc |= weft_buf_printf(b, ",\"excluded\":%" PRIu64, r->excluded);
    rc |= json_panels(b, r);
    rc |= weft_buf_printf(b, "}\n");
    return rc ? -ENOMEM : 0;
}

/* ---- CSV ----------------------------------------------------------------------------------- */

/* A field, quoted as RFC 4180 says when it holds a comma, a quote or a line break. */
static int csv_field(weft_buf_t *b, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) return weft_buf_append(b, s, strlen(s));
    int rc = weft_buf_append(b, "\"", 1);
    for (const char *p = s; *p && !rc; p++)
        rc = *p == '"' ? weft_buf_append(b, "\"\"", 2) : weft_buf_append(b, p, 1);
    return rc | weft_buf_append(b, "\"", 1);
}

/* One row: panel,name,method,protocol,hits,visitors,bytes,rt_avg,rt_sum,rt_max ("" when n/a). */
static int csv_row(weft_buf_t *b, const char *panel, const char *name, const char *method,
                   const char *protocol, uint64_t hits, const uint64_t *visitors,
                   const uint64_t *bytes, const weft_logs_row_t *rt)
{
    int rc = csv_field(b, panel) | weft_buf_append(b, ",", 1) | csv_field(b, name) |
             weft_buf_append(b, ",", 1) | csv_field(b, method ? method : "") |
             weft_buf_append(b, ",", 1) | csv_field(b, protocol ? protocol : "");
    rc |= weft_buf_printf(b, ",%" PRIu64 ",", hits);
    if (visitors) rc |= weft_buf_printf(b, "%" PRIu64, *visitors);
    rc |= weft_buf_append(b, ",", 1);
    if (bytes) rc |= weft_buf_printf(b, "%" PRIu64, *bytes);
    if (rt && rt->rt_n) {
        char v[3][24];
        weft_logs_secs(v[0], sizeof v[0], rt->rt_sum / rt->rt_n);
        weft_logs_secs(v[1], sizeof v[1], rt->rt_sum);
        weft_logs_secs(v[2], sizeof v[2], rt->rt_max);
        rc |= weft_buf_printf(b, ",%s,%s,%s\r\n", v[0], v[1], v[2]);
    } else {
        rc |= weft_buf_printf(b, ",,,\r\n");
    }
    return rc;
}

int weft_logs_write_csv(weft_buf_t *b, const weft_logs_report_t *r)
{
    char n[64];
    int rc = weft_buf_printf(b, "panel,name,method,protocol,hits,visitors,bytes,rt_avg,rt_sum,"
                                "rt_max\r\n");
    const char *sn[] = {"lines", "parsed", "malformed", "excluded", "distinct_ips", "bytes"};
    uint64_t sv[] = {r->lines, r->parsed, r->malformed, r->excluded, r->distinct_ips, r->bytes};
    for (size_t i = 0; i < sizeof sn / sizeof sn[0]; i++)
        rc |= csv_row(b, "summary", sn[i], NULL, NULL, sv[i], NULL, NULL, NULL);
    if (r->ext.panels & WEFT_LOGS_PANEL_VISITORS)
        rc |= csv_row(b, "summary", "visitors", NULL, NULL, r->ext.visitors, NULL, NULL, NULL);
    if (r->rt_count) {
        const char *qn[] = {"avg", "min", "max", "p50", "p90", "p95", "p99"};
        uint64_t qv[] = {r->rt_avg, r->rt_min, r->rt_max, r->rt_p50,
                         r->rt_p90, r->rt_p95, r->rt_p99};
        for (size_t i = 0; i < 7; i++) {
            char v[24];
            weft_logs_secs(v, sizeof v, qv[i]);
            rc |= weft_buf_printf(b, "response_time,%s,,,%" PRIu64 ",,,%s,,\r\n", qn[i],
                                  r->rt_count, v); /* the value in rt_avg */
        }
    }
    for (int h = 0; h < 24; h++) {
        snprintf(n, sizeof n, "%02d", h);
        rc |= csv_row(b, "hourly", n, NULL, NULL, r->hourly[h], NULL, NULL, NULL);
    }
    for (int s = 0; s < WEFT_LOGS_STATUS_MAX; s++) {
        if (!r->status[s]) continue;
        snprintf(n, sizeof n, "%d", s);
        rc |= csv_row(b, "status", n, NULL, NULL, r->status[s], NULL, NULL, NULL);
    }
    for (size_t i = 0; i < r->ntop; i++) {
        weft_logs_ip_text(&r->top[i], n, sizeof n);
        rc |= csv_row(b, "top_ips", n, NULL, NULL, r->top[i].count, NULL, NULL, NULL);
    }
    const struct {
        const char *name;
        bool overflow;
        const weft_logs_pathcount_t *list;
        size_t n;
    } pl[] = {{"top_paths", r->paths_overflow, r->top_paths, r->npaths},
              {"top_404_paths", r->paths404_overflow, r->top_paths404, r->npaths404},
              {"top_static_paths", r->statics_overflow, r->top_statics, r->nstatics}};
    for (size_t k = 0; k < 3; k++)
        for (size_t i = 0; i < pl[k].n && !pl[k].overflow; i++)
            rc |= csv_row(b, pl[k].name, pl[k].list[i].path, NULL, NULL, pl[k].list[i].count, NULL,
                          NULL, NULL);
    const weft_logs_ext_report_t *x = &r->ext;
    bool vis = x->panels & WEFT_LOGS_PANEL_VISITORS;
    for (size_t i = 0; i < x->ndays && (x->panels & WEFT_LOGS_PANEL_DAILY); i++)
        rc |= csv_row(b, "daily", date_text(n, sizeof n, x->days[i].date), NULL, NULL,
                      x->days[i].requests, vis ? &x->days[i].visitors : NULL, &x->days[i].bytes,
                      NULL);
    for (int i = 0; i < 1440 && (x->panels & WEFT_LOGS_PANEL_MINUTELY); i++) {
        if (!x->minutely[i]) continue;
        snprintf(n, sizeof n, "%02d:%02d", i / 60, i % 60);
        rc |= csv_row(b, "minutely", n, NULL, NULL, x->minutely[i], NULL, NULL, NULL);
    }
    for (size_t k = 0; k < NPANELS; k++) {
        const weft_logs_panel_t *p = panel_at(r, k);
        for (size_t i = 0; p->present && !p->overflow && i < p->n; i++) {
            const weft_logs_row_t *w = &p->rows[i];
            rc |= csv_row(b, panels[k].key, w->name, w->method, w->protocol, w->hits,
                          w->visitors == WEFT_LOGS_VISITORS_UNKNOWN ? NULL : &w->visitors,
                          &w->bytes, w);
        }
    }
    return rc ? -ENOMEM : 0;
}
