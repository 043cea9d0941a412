/* weft logs: the outputs - terminal report, JSON and a self-contained HTML page. Each is a pure
 * function of a weft_logs_report_t, so equal statistics give byte-identical output.
 */
#ifndef WEFT_TOOLS_LOGS_REPORT_H
#define WEFT_TOOLS_LOGS_REPORT_H

#include <stdio.h>
#include <weft/buf.h>

#include "logs/stats.h"

/* Describes the input for the report headings; any field may be NULL/0. */
typedef struct weft_logs_meta {
    const char *inputs;  /* "access.log, old.log.gz" */
    const char *formats; /* "default" */
} weft_logs_meta_t;

/* The terminal report with block-character bar charts. Thread safety: any thread. */
void weft_logs_print_text(FILE *f, const weft_logs_report_t *r, const weft_logs_meta_t *m);

/* One JSON object (and a newline): lines, parsed, malformed, hourly, status, top_ips,
 * distinct_ips, bytes, response_time, in that order, then status_classes, top_paths,
 * distinct_paths, top_404_paths, distinct_404_paths, top_static_paths, distinct_static_paths,
 * static_requests. Returns 0 or -ENOMEM. Ownership: appends to `out`. */
int weft_logs_write_json(weft_buf_t *out, const weft_logs_report_t *r);

/* CSV (RFC 4180, CR LF line ends), one row per reported item: a header, then
 * panel,name,method,protocol,hits,visitors,bytes,rt_avg,rt_sum,rt_max for the summary, the
 * response-time quantiles (hits: the timed lines, rt_avg: the value), hourly, status, the top
 * lists, daily, minutely (non-zero minutes) and every GoAccess panel, as in the JSON; empty
 * fields where a column does not apply. Returns 0 or -ENOMEM. Ownership: appends to `out`. */
int weft_logs_write_csv(weft_buf_t *b, const weft_logs_report_t *r);

/* A self-contained HTML page (inline CSS and SVG; no scripts, nothing fetched); every text from
 * the log is escaped. Returns 0 or -ENOMEM. Ownership: appends to `out`. */
int weft_logs_write_html(weft_buf_t *out, const weft_logs_report_t *r, const weft_logs_meta_t *m);

/* Seconds from microseconds, as the shortest exact decimal ("0.052", "1", "0.000125"). */
void weft_logs_secs(char *buf, size_t len, uint64_t us);

#endif
