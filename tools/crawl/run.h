/* Internal to tools/crawl: the engine the three modes share (run.c). */
#ifndef WEFT_TOOLS_CRAWL_RUN_H
#define WEFT_TOOLS_CRAWL_RUN_H

#include <weft/loop.h>
#include <weft/pool.h>

#include "crawl/crawl.h"
#include "crawl/hosts.h"
#include "common/cli-int.h"

typedef struct crawl_run crawl_run_t;

struct crawl_run {
    const crawl_opts_t *o;
    crawl_mode_t mode;
    crawl_dispatch_t *d;
    crawl_result_fn fn;
    void *fn_arg;
    crawl_stats_t *st;
    uint64_t t0;
    uint64_t rng;
    int limit;       /* attempts in flight at most */
    size_t inflight; /* scheduler thread only */
    int error;       /* a setup failure: stop */
    weft_progress_t progress;
    /* threads and async: the scheduler runs on a caller-driven loop */
    weft_loop_t *loop;
    weft_loop_timer_t *timer;
    int (*start)(crawl_run_t *r, crawl_item_t *it); /* begin an attempt; 0 or < 0 */
    weft_pool_t *resolver; /* getaddrinfo off the loop thread; created at the first name */
    void *mode_state;
};

/* An attempt of `it` begins now: counts it, accounts the time it waited. */
void crawl__attempt_begin(crawl_run_t *r, crawl_item_t *it, uint64_t now);

/* An attempt ended (it->res filled by crawl_fetch_finish): retry it later, or finish it. */
void crawl__attempt_end(crawl_run_t *r, crawl_item_t *it);

/* Finishes an invalid line (or one that could not be started) at once. */
void crawl__finish(crawl_run_t *r, crawl_item_t *it);

/* Loop-driven modes: starts what may start, arms the wake-up timer, stops the loop when done. */
void crawl__pump(crawl_run_t *r);

int crawl__mode_seq(crawl_run_t *r);
int crawl__mode_threads(crawl_run_t *r);
int crawl__mode_async(crawl_run_t *r);

#endif
