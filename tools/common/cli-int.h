/* The weft command's shared pieces: the subcommand registry, exit codes and small terminal
 * helpers every subcommand uses. Internal to tools/ (not a libweft header, hence -int.h).
 * Subcommands live in tools/<name>/ and use only the public API plus tools/common/.
 */
#ifndef WEFT_TOOLS_COMMON_CLI_INT_H
#define WEFT_TOOLS_COMMON_CLI_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes, documented in README.md and every --help. */
enum {
    WEFT_EXIT_OK = 0,      /* everything succeeded */
    WEFT_EXIT_FAILED = 1,  /* the command ran, but some of its work failed */
    WEFT_EXIT_USAGE = 2,   /* bad command line or unusable input (missing file, bad format) */
    WEFT_EXIT_INTERNAL = 3 /* out of memory or another internal error */
};

typedef int (*weft_cmd_fn)(int argc, char **argv);

/* Registers a subcommand: `weft NAME` when `group` is NULL, `weft GROUP NAME` otherwise (the
 * order engine's `weft orders serve`); `summary` is one line for the group's --help. Call from a
 * constructor (WEFT_COMMAND and WEFT_SUBCOMMAND do). */
void weft_cli_register(const char *group, const char *name, weft_cmd_fn fn, const char *summary);
#define WEFT_COMMAND(name, fn, summary) WEFT_SUBCOMMAND(NULL, name, fn, summary)
#define WEFT_SUBCOMMAND(group, name, fn, summary)                                                  \
    __attribute__((constructor)) static void weft__cmd_reg_##fn(void)                              \
    {                                                                                              \
        weft_cli_register(group, name, fn, summary);                                               \
    }

/* Runs `weft [GROUP] COMMAND ARGS...` from argv[0] = the group's (or the program's) name:
 * `--help` lists the group's commands after `intro` (a paragraph saying what the group is, and
 * an example). Returns the command's exit code, or WEFT_EXIT_USAGE for an unknown one. */
int weft_cli_dispatch(const char *group, const char *intro, int argc, char **argv);

/* Runs `weft ARGV...` as if from the shell (used by `weft demo` and tests). */
int weft_cli_main(int argc, char **argv);

/* Prints "weft CMD: message" to stderr, then "Try 'weft CMD --help'." and returns
 * WEFT_EXIT_USAGE. */
int weft_cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints "weft CMD: message" to stderr and returns `code`. */
int weft_cli_error(const char *cmd, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Parses a non-negative integer with an optional K/M/G suffix (binary: 1K = 1024).
 * Returns 0 or -EINVAL. */
int weft_cli_parse_size(const char *s, uint64_t *out);

/* Parses a non-negative integer in [min, max]. Returns 0 or -EINVAL. */
int weft_cli_parse_int(const char *s, long min, long max, long *out);

/* Writes `s` to `f` with control characters (as a space) and invalid bytes (as U+FFFD) replaced,
 * so that text from untrusted sources cannot drive the terminal. At most `max_cols` columns of
 * text (0: no limit; widths from weft_utf8_width), then an ellipsis if text was left out.
 * Returns the columns written, the ellipsis included. */
size_t weft_cli_put_safe(FILE *f, const char *s, size_t max_cols);

/* Progress bar on stderr, drawn only when stderr is a terminal. By default `done` and `total`
 * are bytes and the bar shows a percentage; with `unit` set (e.g. "pages") it shows
 * "done/total unit", the rate, `errors` (if any) and an ETA, or just done and the rate when the
 * total is unknown (0). */
typedef struct weft_progress {
    const char *label;
    uint64_t total, done;
    uint64_t last_draw_ns, start_ns;
    bool enabled;
    bool drawn;       /* the line is on the screen now */
    const char *unit; /* NULL: bytes, as a percentage */
    uint64_t errors;  /* shown as "N failed" when unit is set */
    /* Byte mode (unit NULL) with `rates` set: besides the percentage of done/total (omitted
     * when the total is unknown), the bytes processed (`bytes`, which may differ from `done`:
     * decoded bytes while `done` counts a compressed file's position) and their rate, and
     * `items` of `items_unit` (e.g. lines) and their rate. Set them before each update. */
    bool rates;
    uint64_t bytes, items;
    const char *items_unit;
    uint64_t delay_ns; /* draw nothing until this long after the start (short runs stay quiet) */
} weft_progress_t;
/* Starts a bar; resets every field but `label` and `total` to its default (no unit, no rates).
 * Thread safety: a bar is used by one thread at a time. */
void weft_progress_start(weft_progress_t *p, const char *label, uint64_t total);
void weft_progress_update(weft_progress_t *p, uint64_t done); /* redraws at most 10 times/s */
void weft_progress_finish(weft_progress_t *p);
/* Erases the line (before printing other output to the terminal); the next update redraws it
 * at once, so it stays visible below scrolling output. */
void weft_progress_hide(weft_progress_t *p);
/* The text of the bar after the label, for tests and drawing. */
void weft_progress_format(const weft_progress_t *p, uint64_t now_ns, char *buf, size_t size);

/* Draws a horizontal bar of `width` cells for value/max using block characters (UTF-8). */
void weft_cli_bar(FILE *f, double value, double max, int width);

#endif
