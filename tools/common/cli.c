/* Subcommand registry and shared terminal helpers (common/cli-int.h). */
#include "common/cli-int.h"

#include <errno.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <weft/sys.h>
#include <weft/utf8.h>

#define MAX_CMDS 48
struct cmd {
    const char *group, *name, *summary;
    weft_cmd_fn fn;
};
static struct cmd cmds[MAX_CMDS];
static int ncmds;

void weft_cli_register(const char *group, const char *name, weft_cmd_fn fn, const char *summary)
{
    if (ncmds == MAX_CMDS) abort();
    cmds[ncmds].group = group;
    cmds[ncmds].name = name;
    cmds[ncmds].fn = fn;
    cmds[ncmds].summary = summary;
    ncmds++;
}

static bool in_group(int i, const char *group)
{
    return group ? cmds[i].group && strcmp(cmds[i].group, group) == 0 : !cmds[i].group;
}

static int cmp_cmd(const void *a, const void *b)
{
    const struct cmd *x = a, *y = b;
    return strcmp(x->name, y->name);
}

static void usage(const char *group, const char *intro, FILE *f)
{
    qsort(cmds, (size_t)ncmds, sizeof cmds[0], cmp_cmd);
    fprintf(f, "usage: weft %s%sCOMMAND [ARGS...]\n\n%s\nCommands:\n\n", group ? group : "",
            group ? " " : "", intro);
    for (int i = 0; i < ncmds; i++)
        if (in_group(i, group)) fprintf(f, "  %-13s %s\n", cmds[i].name, cmds[i].summary);
    fprintf(f,
            "\n'weft %s%sCOMMAND --help' describes each one.\n"
            "Exit codes: 0 success, 1 some work failed, 2 usage or input error, 3 internal "
            "error.\n",
            group ? group : "", group ? " " : "");
}

int weft_cli_dispatch(const char *group, const char *intro, int argc, char **argv)
{
    if (argc < 2) {
        usage(group, intro, stderr);
        return WEFT_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(group, intro, stdout);
        return WEFT_EXIT_OK;
    }
    for (int i = 0; i < ncmds; i++)
        if (in_group(i, group) && strcmp(cmds[i].name, argv[1]) == 0)
            return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "weft%s%s: unknown command '%s'\n\n", group ? " " : "", group ? group : "",
            argv[1]);
    usage(group, intro, stderr);
    return WEFT_EXIT_USAGE;
}

int weft_cli_main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
        printf("weft %s\n", weft_version());
        return WEFT_EXIT_OK;
    }
    return weft_cli_dispatch(NULL,
                             "weft is a concurrency toolkit: threads, processes and an event "
                             "loop, measured\nside by side.\n",
                             argc, argv);
}

int weft_cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "weft %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'weft %s --help'.\n", cmd);
    va_end(ap);
    return WEFT_EXIT_USAGE;
}

int weft_cli_error(const char *cmd, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "weft %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

int weft_cli_parse_size(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-') return -EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) return -EINVAL;
    unsigned shift = 0;
    switch (*end) {
    case 'k':
    case 'K':
        shift = 10;
        end++;
        break;
    case 'm':
    case 'M':
        shift = 20;
        end++;
        break;
    case 'g':
    case 'G':
        shift = 30;
        end++;
        break;
    default:
        break;
    }
    if (*end == 'B' || *end == 'b') end++;
    if (*end || (shift && v > (UINT64_MAX >> shift))) return -EINVAL;
    *out = (uint64_t)v << shift;
    return 0;
}

int weft_cli_parse_int(const char *s, long min, long max, long *out)
{
    if (!s || !*s) return -EINVAL;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < min || v > max) return -EINVAL;
    *out = v;
    return 0;
}

size_t weft_cli_put_safe(FILE *f, const char *s, size_t max_cols)
{
    size_t n = strlen(s), cols = 0, i = 0;
    while (i < n) {
        uint32_t cp;
        int l = weft_utf8_decode(s + i, n - i, &cp);
        size_t w = weft_utf8_is_bidi_control(cp) ? 1 : (size_t)weft_utf8_cp_width(cp);
        if (max_cols && cols + w > max_cols) break;
        if (l < 0) {
            fputs("\xEF\xBF\xBD", f); /* U+FFFD for each invalid byte */
            l = 1;
        } else if (cp < 0x20 || (cp >= 0x7F && cp < 0xA0)) {
            fputc(' ', f); /* C0 and C1 controls, DEL */
        } else if (weft_utf8_is_bidi_control(cp)) {
            fputs("\xEF\xBF\xBD", f); /* it would reorder what follows on the line */
            w = 1;
        } else {
            fwrite(s + i, 1, (size_t)l, f);
        }
        cols += w;
        i += (size_t)l;
    }
    if (i < n) {
        fputs("\xE2\x80\xA6", f); /* ellipsis */
        cols++;
    }
    return cols;
}

void weft_progress_start(weft_progress_t *p, const char *label, uint64_t total)
{
    p->label = label;
    p->total = total;
    p->done = 0;
    p->start_ns = weft_now_ns();
    p->last_draw_ns = 0;
    p->enabled = isatty(STDERR_FILENO) && getenv("WEFT_NO_PROGRESS") == NULL;
    p->drawn = false;
    p->errors = 0;
    p->unit = NULL;
    p->rates = false;
    p->bytes = p->items = 0;
    p->items_unit = NULL;
    p->delay_ns = 0;
}

/* "1.2 GB", "5.0 M lines" (decimal units, as rates are usually quoted; `sep` between a prefix
 * and the unit). */
static void si(char *buf, size_t size, double v, const char *sep, const char *unit)
{
    static const char *const pre[] = {"", "k", "M", "G", "T", "P"};
    int k = 0;
    while (v >= 1000 && k < 5) {
        v /= 1000;
        k++;
    }
    snprintf(buf, size, k ? "%.1f %s%s%s" : "%.0f %s%s%s", v, pre[k], k ? sep : "", unit);
}

/* The byte mode with rates: "[ 45.2%]  1.2 GB  410.0 MB/s  5.1 M lines  1.7 M lines/s  3.0s". */
static void format_rates(const weft_progress_t *p, double frac, double secs, char *buf, size_t size)
{
    char b[32], br[32], it[32], ir[32];
    double s = secs > 0 ? secs : 1e-9;
    si(b, sizeof b, (double)p->bytes, "", "B");
    si(br, sizeof br, (double)p->bytes / s, "", "B/s");
    int n = p->total ? snprintf(buf, size, " %5.1f%%  ", frac * 100) : snprintf(buf, size, " ");
    if (n < 0 || (size_t)n >= size) return;
    n += snprintf(buf + n, size - (size_t)n, "%s  %s", b, br);
    if ((size_t)n >= size) return;
    if (p->items_unit) {
        si(it, sizeof it, (double)p->items, " ", p->items_unit);
        char unit[40];
        snprintf(unit, sizeof unit, "%s/s", p->items_unit);
        si(ir, sizeof ir, (double)p->items / s, " ", unit);
        n += snprintf(buf + n, size - (size_t)n, "  %s  %s", it, ir);
        if ((size_t)n >= size) return;
    }
    snprintf(buf + n, size - (size_t)n, "  %.1fs", secs);
}

void weft_progress_format(const weft_progress_t *p, uint64_t now_ns, char *buf, size_t size)
{
    double frac = p->total ? (double)p->done / (double)p->total : 0;
    if (frac > 1) frac = 1;
    double secs = (double)(now_ns - p->start_ns) / 1e9;
    if (!p->unit && p->rates) {
        format_rates(p, frac, secs, buf, size);
        return;
    }
    if (!p->unit) {
        snprintf(buf, size, " %5.1f%%  %6.1fs", frac * 100, secs);
        return;
    }
    double rate = secs > 0 ? (double)p->done / secs : 0;
    int n;
    if (p->total)
        n = snprintf(buf, size, " %llu/%llu %s  %.0f/s", (unsigned long long)p->done,
                     (unsigned long long)p->total, p->unit, rate);
    else
        n = snprintf(buf, size, " %llu %s  %.0f/s", (unsigned long long)p->done, p->unit, rate);
    if (n < 0 || (size_t)n >= size) return;
    if (p->errors)
        n += snprintf(buf + n, size - (size_t)n, "  %llu failed", (unsigned long long)p->errors);
    if ((size_t)n >= size) return;
    if (p->total && p->done < p->total && rate > 0)
        snprintf(buf + n, size - (size_t)n, "  ETA %.0fs  %.1fs",
                 (double)(p->total - p->done) / rate, secs);
    else
        snprintf(buf + n, size - (size_t)n, "  %.1fs", secs);
}

static void progress_draw(weft_progress_t *p)
{
    double frac = p->total ? (double)p->done / (double)p->total : 0;
    if (frac > 1) frac = 1;
    char text[160];
    weft_progress_format(p, weft_now_ns(), text, sizeof text);
    fprintf(stderr, "\r%-12s ", p->label);
    if (p->total) weft_cli_bar(stderr, frac, 1.0, 30);
    fprintf(stderr, "%s\033[K", text);
    fflush(stderr);
    p->drawn = true;
}

void weft_progress_hide(weft_progress_t *p)
{
    if (!p->enabled || !p->drawn) return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    p->drawn = false;
    p->last_draw_ns = 0; /* redraw at the next update */
}

void weft_progress_update(weft_progress_t *p, uint64_t done)
{
    p->done = done;
    if (!p->enabled) return;
    uint64_t now = weft_now_ns();
    if (now - p->last_draw_ns < 100000000u || now - p->start_ns < p->delay_ns) return;
    p->last_draw_ns = now;
    progress_draw(p);
}

void weft_progress_finish(weft_progress_t *p)
{
    if (!p->enabled || (p->delay_ns && !p->drawn)) return;
    if (!p->unit) p->done = p->total;
    progress_draw(p);
    fputs("\r\033[K", stderr);
    fflush(stderr);
}

void weft_cli_bar(FILE *f, double value, double max, int width)
{
    static const char *const part[8] = {"",       "\u258F", "\u258E", "\u258D",
                                        "\u258C", "\u258B", "\u258A", "\u2589"};
    double cells = max > 0 ? value / max * width : 0;
    if (cells < 0) cells = 0;
    if (cells > width) cells = width;
    int full = (int)cells;
    int eighths = (int)((cells - full) * 8);
    int used = 0;
    for (int i = 0; i < full; i++, used++) fputs("\u2588", f);
    if (eighths && used < width) {
        fputs(part[eighths], f);
        used++;
    }
    for (; used < width; used++) fputc(' ', f);
}
