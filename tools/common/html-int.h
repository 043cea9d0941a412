/* Self-contained HTML pages with charts: the one place where weft's static reports put data into
 * a page (JSON in a <script type="application/json"> element, '<' written \u003c) and draw
 * charts with the vendored uPlot (third_party/uplot) and tools/common/charts.js, both embedded in
 * the binary at build time by cmake/embed.cmake. Nothing is fetched: a page works offline and
 * from file://. Used by `weft crawl --report` and `weft orders load --html`; `weft logs --html`
 * shares the JSON escaping.
 *
 *   <head>:  tools_html_charts_style(b)       uPlot's CSS and the charts' own, in a <style>
 *   <body>:  tools_html_chart(b, &chart)      a chart where it belongs (its data as JSON)
 *   at the end of <body>: tools_html_charts_script(b)   uPlot and charts.js, which draws them
 *
 * Every function appends to a caller's buffer (borrowed) and returns 0 or -ENOMEM; any thread.
 */
#ifndef WEFT_TOOLS_COMMON_HTML_INT_H
#define WEFT_TOOLS_COMMON_HTML_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <weft/buf.h>

/* Appends JSON text with every '<' as \u003c: still the same JSON, and it cannot end the
 * <script> element it is put in (nor open a comment), whatever strings it holds. */
int tools_html_append_json(weft_buf_t *b, const char *json, size_t n);

/* One series: n points (x[i], y[i]); a NaN y is a gap. With categories (a bar chart), x is NULL
 * and y[i] is the bar of category i. Strings are copied (JSON-escaped). */
typedef struct tools_html_series {
    const char *label; /* the legend's text */
    const char *color; /* CSS colour, e.g. "#0275d8" */
    const double *x, *y;
    size_t n;
    bool dashed; /* thin and dashed: a reference line, visible over a series it coincides with */
} tools_html_series_t;

typedef struct tools_html_chart {
    const char *title, *xlabel, *ylabel;
    bool logx;                     /* x on a log10 scale (every x > 0) */
    double xmax;                   /* > 0: the x axis ends there (a long tail is cut off) */
    double ymax;                   /* > 0: the y axis ends there, else at the data's maximum */
    const char *const *categories; /* non-NULL: bars, one per category, x = the category */
    size_t ncategories;
    const tools_html_series_t *series;
    size_t nseries;
} tools_html_chart_t;

/* Appends a <figure> that charts.js draws the chart into: the chart's description and data as
 * JSON inside it. The y axis starts at 0. */
int tools_html_chart(weft_buf_t *b, const tools_html_chart_t *c);

/* Appends <style> with uPlot's CSS and the charts' (in <head>). */
int tools_html_charts_style(weft_buf_t *b);

/* Appends the <script> elements of uPlot and charts.js (at the end of <body>, after every
 * chart). charts.js publishes what it drew as window.__charts, for the browser tests. */
int tools_html_charts_script(weft_buf_t *b);

#endif
