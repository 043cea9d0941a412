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
        size_t w = (size_t)weft_utf8_cp_width(cp);
        if (max_cols && cols + w > max_cols) break;
        if (l < 0) {
            fputs("\xEF\xBF\xBD", f); /* U+FFFD for each invalid byte */
            l = 1;
        } else if (cp < 0x20 || (cp >= 0x7F && cp < 0xA0)) {
            fputc(' ', f); /* C0 and C1 controls, DEL */
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
}

static void progress_draw(weft_progress_t *p)
{
    double frac = p->total ? (double)p->done / (double)p->total : 0;
    if (frac > 1) frac = 1;
    double secs = (double)(weft_now_ns() - p->start_ns) / 1e9;
    fprintf(stderr, "\r%-12s ", p->label);
    weft_cli_bar(stderr, frac, 1.0, 30);
    fprintf(stderr, " %5.1f%%  %6.1fs", frac * 100, secs);
    fflush(stderr);
}

void weft_progress_update(weft_progress_t *p, uint64_t done)
{
    p->done = done;
    if (!p->enabled) return;
    uint64_t now = weft_now_ns();
    if (now - p->last_draw_ns < 100000000u) return;
    p->last_draw_ns = now;
    progress_draw(p);
}

void weft_progress_finish(weft_progress_t *p)
{
    if (!p->enabled) return;
    p->done = p->total;
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
