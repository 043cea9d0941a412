/* weft logs: the HTML report (html.c), a self-contained dashboard page. */
#ifndef WEFT_TOOLS_LOGS_HTML_H
#define WEFT_TOOLS_LOGS_HTML_H

#include <weft/buf.h>

#include "logs/report.h"

/* A self-contained HTML dashboard: the report's JSON (exactly what --json prints) embedded in
 * the page with the script that draws it (uPlot charts, sortable tables; no network access).
 * `refresh_s` > 0 makes the page reload itself that often (live mode rewrites the file).
 * Returns 0 or -ENOMEM. Ownership: borrows; appends to `out`. Thread safety: any thread. */
int weft_logs_write_html(weft_buf_t *out, const weft_logs_report_t *r, const weft_logs_meta_t *m,
                         int refresh_s);

/* The same page around report JSON already written (`len` bytes of weft_logs_write_json's
 * output). `events` (NULL: none) is the URL of a Server-Sent Events stream of later reports
 * (`weft logs --serve`): the page, when loaded over HTTP, subscribes to it and redraws itself in
 * place. Returns 0 or -ENOMEM. Ownership: borrows; appends to `out`. Thread safety: any thread. */
int weft_logs_write_html_json(weft_buf_t *out, const char *json, size_t len,
                              const weft_logs_meta_t *m, int refresh_s, const char *events);

#endif
