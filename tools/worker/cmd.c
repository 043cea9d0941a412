/* `weft worker` and `weft workers`: run tasks of a Redis broker on this machine, and list the
 * live workers (weft/broker.h, docs/distributed.md). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft/broker.h>
#include <weft/err.h>

#include "common/cli-int.h"

static weft_broker_worker_t *running;
static void on_sig(int sig)
{
    (void)sig;
    weft_broker_worker_stop(running); /* async-signal-safe */
}

static void usage_worker(FILE *f)
{
    fprintf(f, "usage: weft worker --broker redis://HOST:PORT [options]\n\n"
               "Runs the tasks of `weft run --broker` (and of programs using weft/broker.h) on\n"
               "this machine's hybrid scheduler. Start one per machine; stop with Ctrl-C or\n"
               "SIGTERM (it finishes and records what it holds). Delivery is at-least-once: a\n"
               "task whose worker died is run again elsewhere after the lease.\n\n"
               "  --broker URL      the Redis server (required)\n"
               "  --ns NAME         namespace (default weft)\n"
               "  --name NAME       consumer name, stable across restarts (default HOST:PID)\n"
               "  --procs N         process workers for registered functions (default 1)\n"
               "  --threads N       threads for shell commands (default 4)\n"
               "  --slots N         tasks held at once (default procs + threads)\n"
               "  --lease MS        reclaim a dead worker's tasks after MS (default 5000)\n"
               "  --queues Q[,Q]    take new tasks only from these priority queues: high\n"
               "                    (priority > 0), normal (0), low (< 0); default all\n"
               "  -h, --help        this text\n\n"
               "Exit status: 0 stopped, 2 bad usage or broker unreachable, 3 internal error.\n");
}

static int parse_common(int argc, char **argv, const char *cmd, const struct option *longs,
                        const char **broker, const char **ns, weft_broker_worker_opts_t *wo,
                        void (*usage)(FILE *))
{
    optind = 0;
    opterr = 0;
    int o, li;
    while ((o = getopt_long(argc, argv, ":h", longs, &li)) != -1) {
        long v;
        switch (o) {
        case 'h':
            usage(stdout);
            return 1;
        case 'b':
            *broker = optarg;
            break;
        case 'n':
            *ns = optarg;
            break;
        case 'N':
            wo->name = optarg;
            break;
        case 'p':
        case 't':
        case 's':
            if (weft_cli_parse_int(optarg, 1, 1024, &v) < 0)
                return -weft_cli_usage_error(cmd, "bad --%s '%s' (1..1024)", longs[li].name,
                                             optarg);
            if (o == 'p') wo->procs = (int)v;
            if (o == 't') wo->threads = (int)v;
            if (o == 's') wo->slots = (int)v;
            break;
        case 'l':
            if (weft_cli_parse_int(optarg, 10, 3600000, &v) < 0)
                return -weft_cli_usage_error(cmd, "bad --lease '%s' (10..3600000 ms)", optarg);
            wo->lease_ms = (uint64_t)v;
            break;
        case 'q': {
            static const char *const names[] = {"high", "normal", "low"};
            wo->queues = 0;
            for (const char *p = optarg; *p;) {
                size_t l = strcspn(p, ",");
                int b = 0;
                while (b < 3 && !(strlen(names[b]) == l && strncmp(names[b], p, l) == 0)) b++;
                if (b == 3)
                    return -weft_cli_usage_error(cmd, "bad --queues '%s' (high, normal, low)",
                                                 optarg);
                wo->queues |= 1u << b;
                p += l + (p[l] == ',');
            }
            if (!wo->queues)
                return -weft_cli_usage_error(cmd, "bad --queues '%s' (high, normal, low)", optarg);
            break;
        }
        case ':':
            return -weft_cli_usage_error(cmd, "%s needs a value", argv[optind - 1]);
        default:
            return -weft_cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return -weft_cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!*broker) return -weft_cli_usage_error(cmd, "--broker URL is required");
    return 0;
}

static int cmd_worker(int argc, char **argv)
{
    static const struct option longs[] = {
        {"help", no_argument, NULL, 'h'},         {"broker", required_argument, NULL, 'b'},
        {"ns", required_argument, NULL, 'n'},     {"name", required_argument, NULL, 'N'},
        {"procs", required_argument, NULL, 'p'},  {"threads", required_argument, NULL, 't'},
        {"slots", required_argument, NULL, 's'},  {"lease", required_argument, NULL, 'l'},
        {"queues", required_argument, NULL, 'q'}, {NULL, 0, NULL, 0}};
    const char *broker = NULL, *ns = NULL;
    weft_broker_worker_opts_t wo = {0};
    int rc = parse_common(argc, argv, "worker", longs, &broker, &ns, &wo, usage_worker);
    if (rc) return rc > 0 ? WEFT_EXIT_OK : -rc;
    weft_broker_opts_t bo = {.ns = ns};
    rc = weft_broker_worker_create(&running, broker, &bo, &wo);
    if (rc < 0)
        return weft_cli_error("worker", rc == -ENOMEM ? WEFT_EXIT_INTERNAL : WEFT_EXIT_USAGE,
                              "cannot use broker %s: %s", broker, weft_strerror(rc));
    struct sigaction sa = {0}, old_int, old_term;
    sa.sa_handler = on_sig;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    fprintf(stderr, "weft worker: serving %s (namespace %s)\n", broker, ns ? ns : "weft");
    rc = weft_broker_worker_run(running);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    weft_broker_worker_destroy(running);
    running = NULL;
    if (rc < 0) return weft_cli_error("worker", WEFT_EXIT_INTERNAL, "%s", weft_strerror(rc));
    return WEFT_EXIT_OK;
}

static void usage_workers(FILE *f)
{
    fprintf(f, "usage: weft workers --broker redis://HOST:PORT [--ns NAME]\n\n"
               "Lists the live workers of a broker (those that heartbeat): host, pid, slots,\n"
               "tasks running, tasks done, and up to 8 of the tasks each runs.\n\n"
               "Exit status: 0 listed, 2 bad usage or broker unreachable.\n");
}

static int cmd_workers(int argc, char **argv)
{
    static const struct option longs[] = {{"help", no_argument, NULL, 'h'},
                                          {"broker", required_argument, NULL, 'b'},
                                          {"ns", required_argument, NULL, 'n'},
                                          {NULL, 0, NULL, 0}};
    const char *broker = NULL, *ns = NULL;
    weft_broker_worker_opts_t wo = {0};
    int rc = parse_common(argc, argv, "workers", longs, &broker, &ns, &wo, usage_workers);
    if (rc) return rc > 0 ? WEFT_EXIT_OK : -rc;
    weft_broker_opts_t bo = {.ns = ns};
    weft_broker_t *b;
    rc = weft_broker_create(&b, broker, &bo);
    if (rc < 0)
        return weft_cli_error("workers", WEFT_EXIT_USAGE, "cannot use broker %s: %s", broker,
                              weft_strerror(rc));
    weft_buf_t out;
    weft_buf_init(&out, 0);
    rc = weft_broker_workers(b, &out);
    weft_broker_destroy(b);
    if (rc >= 0) {
        fwrite(out.data, 1, out.len, stdout);
        printf("%d live worker%s\n", rc, rc == 1 ? "" : "s");
    }
    weft_buf_free(&out);
    if (rc < 0) return weft_cli_error("workers", WEFT_EXIT_INTERNAL, "%s", weft_strerror(rc));
    return WEFT_EXIT_OK;
}

WEFT_COMMAND("worker", cmd_worker,
             "run tasks of a Redis broker on this machine (weft run --broker)")
WEFT_COMMAND("workers", cmd_workers, "list the live workers of a Redis broker")
