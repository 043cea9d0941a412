/* The live display of `weft run` on a terminal: a header (counts, progress, rate), the pools, and
 * one line per running job. The caller redraws it by moving the cursor up over the lines drawn
 * last time, so every line must fit the terminal's width: a line that wrapped would take two
 * rows and the redraw would climb one row too few, leaving debris. Hence: each part gets a width
 * budget (parts are dropped or cut as the terminal narrows), only ASCII outside of the
 * progress bars and the log tail (whose width weft_cli_put_safe bounds in columns), and
 * autowrap is switched off while drawing, so that a miscounted wide character is clipped by the
 * terminal instead of wrapping. Jobs that do not fit the screen are summed up in "+N more".
 *
 * Threads: the main thread only.
 */
#include "run/run.h"

#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <string.h>

#include "common/cli-int.h"

/* Writes at most `room` bytes of an ASCII string; returns the columns used. */
static int put_ascii(FILE *f, const char *s, int room)
{
    int n = (int)strlen(s);
    if (n > room) n = room;
    if (n > 0) fwrite(s, 1, (size_t)n, f);
    return n > 0 ? n : 0;
}

static void draw_header(FILE *f, const struct live_view *v, int room)
{
    char count[64], rest[256];
    snprintf(count, sizeof count, "%zu/%zu", v->finished, v->n);
    snprintf(rest, sizeof rest,
             "  ok %zu  failed %zu  skipped %zu  running %zu  waiting %zu  %.1f jobs/s  %.1f s",
             v->ok, v->failed, v->skipped, v->running, v->waiting,
             v->t_s > 0 ? (double)v->finished / v->t_s : 0.0, v->t_s);
    fputs("\033[1m", f);
    int used = put_ascii(f, "weft run ", room);
    fputs("\033[0m", f);
    used += put_ascii(f, count, room - used);
    int bar = 20, tail = (int)strlen(rest);
    if (used + 2 + bar + tail > room) bar = room - used - 2 - tail;
    if (bar >= 5) {
        used += put_ascii(f, "  ", room - used);
        weft_cli_bar(f, (double)v->finished, (double)v->n, bar);
        used += bar;
    }
    put_ascii(f, rest, room - used);
    fputc('\n', f);
}

static void draw_job(FILE *f, const struct live_job *j, uint64_t now_ns, int room)
{
    char head[64], timing[64];
    snprintf(head, sizeof head, " %-16.16s %-9s ", j->name, j->route);
    int used = put_ascii(f, head, room);
    if (j->total_s > 0) {
        snprintf(timing, sizeof timing, " %6.1fs/%-5.1fs ", j->elapsed_s, j->total_s);
        if (room - used >= 12 + (int)strlen(timing)) {
            weft_cli_bar(f, j->elapsed_s, j->total_s, 12);
            used += 12;
        }
    } else {
        static const char spin[] = "|/-\\";
        snprintf(timing, sizeof timing, "%c %6.1fs        ", spin[(now_ns / 100000000u) % 4],
                 j->elapsed_s);
    }
    used += put_ascii(f, timing, room - used);
    /* weft_cli_put_safe may add an ellipsis after max_cols columns: one column for it. */
    if (room - used > 8 && j->tail[0]) weft_cli_put_safe(f, j->tail, (size_t)(room - used - 1));
    fputc('\n', f);
}

int run_live_draw(FILE *f, const struct live_view *v, int rows, int cols)
{
    if (rows < 5) rows = 5;
    if (cols < 20) cols = 20;
    int room = cols - 1; /* never the last column: some terminals wrap on writing it */
    int max_lines = rows - 2, lines = 0;
    char pools[160];
    fputs("\033[?7l", f); /* autowrap off while drawing */
    draw_header(f, v, room);
    lines++;
    snprintf(pools, sizeof pools,
             "processes %zu/%d busy   threads %zu/%d busy   loop %zu in flight", v->procs_busy,
             v->procs, v->threads_busy, v->threads, v->loop_busy);
    put_ascii(f, v->pools ? v->pools : pools, room);
    fputc('\n', f);
    lines++;
    size_t slots = (size_t)(max_lines - lines), shown = v->njobs;
    if (shown > slots) shown = slots > 0 ? slots - 1 : 0; /* the last line says how many more */
    for (size_t i = 0; i < shown; i++, lines++) draw_job(f, &v->jobs[i], v->now_ns, room);
    if (shown < v->njobs) {
        char more[64];
        snprintf(more, sizeof more, " +%zu more running", v->njobs - shown);
        put_ascii(f, more, room);
        fputc('\n', f);
        lines++;
    }
    fputs("\033[?7h", f);
    return lines;
}

void run_live_clear(FILE *f, int *lines)
{
    if (*lines == 0) return;
    fprintf(f, "\033[%dF\033[J", *lines);
    *lines = 0;
}

void run_live_size(int *rows, int *cols)
{
    struct winsize ws = {0};
    *rows = 24, *cols = 100;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 4 && ws.ws_col > 0) {
        *rows = ws.ws_row;
        *cols = ws.ws_col;
    }
}
