/* `weft demo [NAME] [ARGS]`: runs one demo or all of them. */
#include "demo/demo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cli-int.h"

#define MAX_DEMOS 16
static struct {
    const char *name, *summary;
    int order;
    weft_demo_fn fn;
} demos[MAX_DEMOS];
static int ndemos;

void weft_demo_register(const char *name, int order, weft_demo_fn fn, const char *summary)
{
    if (ndemos == MAX_DEMOS) abort();
    int i = ndemos++;
    while (i > 0 && demos[i - 1].order > order) { /* keep sorted by order */
        demos[i] = demos[i - 1];
        i--;
    }
    demos[i].name = name;
    demos[i].order = order;
    demos[i].fn = fn;
    demos[i].summary = summary;
}

void weft_demo_heading(const char *title)
{
    if (isatty(STDOUT_FILENO))
        printf("\n\033[1m== %s ==\033[0m\n\n", title);
    else
        printf("\n== %s ==\n\n", title);
    fflush(stdout);
}

const char *weft_demo_self(void)
{
    static char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0) return "weft";
    path[n] = '\0';
    return path;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: weft demo [NAME [ARGS...]]\n\n"
               "The tutorial as a program: each demo runs the same work sequentially, with\n"
               "threads, with processes or on the event loop, and prints what it measured.\n"
               "With no NAME, runs every demo in turn. Demos:\n\n");
    for (int i = 0; i < ndemos; i++) fprintf(f, "  %-8s %s\n", demos[i].name, demos[i].summary);
}

static int cmd_demo(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return WEFT_EXIT_OK;
    }
    if (argc >= 2) {
        for (int i = 0; i < ndemos; i++)
            if (strcmp(demos[i].name, argv[1]) == 0) return demos[i].fn(argc - 1, argv + 1);
        fprintf(stderr, "weft demo: unknown demo '%s'\n\n", argv[1]);
        usage(stderr);
        return WEFT_EXIT_USAGE;
    }
    int worst = WEFT_EXIT_OK;
    for (int i = 0; i < ndemos; i++) {
        char *args[] = {(char *)demos[i].name, NULL};
        int rc = demos[i].fn(1, args);
        if (rc > worst) worst = rc;
    }
    return worst;
}

WEFT_COMMAND("demo", cmd_demo, "run the tutorial's demos: threads vs processes vs event loop")
