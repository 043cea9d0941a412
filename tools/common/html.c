/* Charts in self-contained HTML pages (see html-int.h).
 *
 * DESIGN
 * A chart is data, not markup: tools_html_chart writes its description and points as one JSON
 * object in a <script type="application/json"> element inside a <figure class="weft-chart">,
 * and charts.js (run once at the end of the page) draws each with uPlot into its figure. Text
 * reaches the page only inside that JSON, escaped for JSON and with '<' as \u003c, and the
 * script inserts it as text, never as HTML. Single-threaded per buffer; no state.
 */
#include "common/html-int.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <weft/utf8.h>

extern const unsigned char uplot_js[], uplot_css[], charts_js[];
extern const size_t uplot_js_len, uplot_css_len, charts_js_len;

int tools_html_append_json(weft_buf_t *b, const char *s, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n && !rc;) {
        const char *lt = memchr(s + i, '<', n - i);
        size_t k = lt ? (size_t)(lt - (s + i)) : n - i;
        rc = weft_buf_append(b, s + i, k);
        i += k;
        if (lt && !rc) {
            rc = weft_buf_append(b, "\\u003c", 6);
            i++;
        }
    }
    return rc;
}

static int json_str(weft_buf_t *b, const char *s)
{
    int rc = weft_buf_append(b, "\"", 1);
    if (!rc && s) rc = weft_utf8_escape_json(b, s, strlen(s));
    return rc ? rc : weft_buf_append(b, "\"", 1);
}

static int json_num(weft_buf_t *b, double v)
{
    return isfinite(v) ? weft_buf_printf(b, "%.9g", v) : weft_buf_printf(b, "null");
}

static int json_nums(weft_buf_t *b, const double *v, size_t n)
{
    int rc = weft_buf_append(b, "[", 1);
    for (size_t i = 0; i < n && !rc; i++) {
        if (i) rc = weft_buf_append(b, ",", 1);
        if (!rc) rc = json_num(b, v[i]);
    }
    return rc ? rc : weft_buf_append(b, "]", 1);
}

static int chart_json(weft_buf_t *j, const tools_html_chart_t *c)
{
    int rc = weft_buf_printf(j, "{\"title\":");
    rc |= json_str(j, c->title);
    rc |= weft_buf_printf(j, ",\"xlabel\":");
    rc |= json_str(j, c->xlabel);
    rc |= weft_buf_printf(j, ",\"ylabel\":");
    rc |= json_str(j, c->ylabel);
    rc |= weft_buf_printf(j, ",\"logx\":%s,\"xmax\":", c->logx ? "true" : "false");
    rc |= json_num(j, c->xmax > 0 ? c->xmax : NAN);
    rc |= weft_buf_printf(j, ",\"ymax\":");
    rc |= json_num(j, c->ymax > 0 ? c->ymax : NAN);
    rc |= weft_buf_printf(j, ",\"categories\":");
    if (c->categories) {
        rc |= weft_buf_append(j, "[", 1);
        for (size_t i = 0; i < c->ncategories; i++) {
            if (i) rc |= weft_buf_append(j, ",", 1);
            rc |= json_str(j, c->categories[i]);
        }
        rc |= weft_buf_append(j, "]", 1);
    } else {
        rc |= weft_buf_printf(j, "null");
    }
    rc |= weft_buf_printf(j, ",\"series\":[");
    for (size_t s = 0; s < c->nseries; s++) {
        const tools_html_series_t *se = &c->series[s];
        rc |= weft_buf_printf(j, "%s{\"label\":", s ? "," : "");
        rc |= json_str(j, se->label);
        rc |= weft_buf_printf(j, ",\"color\":");
        rc |= json_str(j, se->color);
        rc |= weft_buf_printf(j, ",\"x\":");
        rc |= se->x ? json_nums(j, se->x, se->n) : weft_buf_printf(j, "null");
        rc |= weft_buf_printf(j, ",\"y\":");
        rc |= json_nums(j, se->y, se->n);
        rc |= weft_buf_printf(j, ",\"dashed\":%s}", se->dashed ? "true" : "false");
    }
    rc |= weft_buf_printf(j, "]}");
    return rc ? -ENOMEM : 0;
}

int tools_html_chart(weft_buf_t *b, const tools_html_chart_t *c)
{
    weft_buf_t j;
    weft_buf_init(&j, 0);
    int rc = chart_json(&j, c);
    rc |= weft_buf_printf(b, "<figure class=\"weft-chart\"><script type=\"application/json\">");
    if (j.len) rc |= tools_html_append_json(b, j.data, j.len);
    rc |= weft_buf_printf(b, "</script></figure>\n");
    weft_buf_free(&j);
    return rc ? -ENOMEM : 0;
}

int tools_html_charts_style(weft_buf_t *b)
{
    int rc = weft_buf_printf(b, "<style>\n");
    rc |= weft_buf_append(b, uplot_css, uplot_css_len);
    rc |= weft_buf_printf(b, "\nfigure.weft-chart{margin:1em 0;max-width:60em}\n"
                             ".weft-chart .u-title{font-size:15px}\n</style>\n");
    return rc ? -ENOMEM : 0;
}

int tools_html_charts_script(weft_buf_t *b)
{
    int rc = weft_buf_printf(b, "<script>\n");
    rc |= weft_buf_append(b, uplot_js, uplot_js_len);
    rc |= weft_buf_printf(b, "\n</script>\n<script>\n");
    rc |= weft_buf_append(b, charts_js, charts_js_len);
    rc |= weft_buf_printf(b, "</script>\n");
    return rc ? -ENOMEM : 0;
}
