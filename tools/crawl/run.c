/* The crawl engine: one mode over the input, with the dispatch window, retries and statistics
 * every mode shares. The modes differ only in how an attempt runs (mode-*.c).
 *
 * Threads: the scheduler (dispatch, retry decisions, statistics, output) runs on one thread: the
 * caller in seq mode, the caller inside weft_loop_run in threads and async modes. Attempts run on
 * that same thread (seq), on pool workers (threads; results come back through weft_loop_await),
 * or as transfers on the loop (async). So none of the state here needs a lock.
 */
#include "crawl/run.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <weft/err.h>
#include <weft/sys.h>

#include "crawl/fetch.h"
#include "crawl/retry.h"

const char *crawl_mode_name(crawl_mode_t m)
{
    static const char *const names[] = {"seq", "threads", "async"};
    return m < CRAWL_NMODES ? names[m] : "?";
}

void crawl_opts_default(crawl_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->input = "-";
    o->modes = 1u << CRAWL_ASYNC;
    o->threads = 5;
    o->concurrency = 100;
    o->per_host = 8;
    o->robots_cache = 1024;
    o->attempts = 3;
    o->connect_timeout_ms = 10000;
    o->timeout_ms = 30000;
    o->first_byte_timeout_ms = 10000;
    o->low_speed_limit = 100;
    o->low_speed_time_s = 15;
    o->max_body = 4u << 20;
    o->backoff_base_ms = 500;
    o->backoff_max_ms = 10000;
    o->retry_after_max_ms = 60000;
    o->table = true;
    o->summary = true;
    o->progress = true;
}

static void count_kind(crawl_stats_t *st, const char *kind)
{
    for (size_t i = 0; i < st->nkinds; i++)
        if (strcmp(st->kinds[i], kind) == 0) {
            st->kind_count[i]++;
            return;
        }
    if (st->nkinds < CRAWL_MAX_KINDS) {
        st->kinds[st->nkinds] = kind;
        st->kind_count[st->nkinds++] = 1;
    }
}

void crawl__attempt_begin(crawl_run_t *r, crawl_item_t *it, uint64_t now)
{
    it->run = r;
    it->attempt_start_ns = now;
    if (now > it->ready_ns) it->res.queued_ms += (double)(now - it->ready_ns) / 1e6;
    if (it->res.attempts == 0) it->res.start_ms = (double)(now - r->t0) / 1e6;
    it->res.attempts++;
}

void crawl__finish(crawl_run_t *r, crawl_item_t *it)
{
    crawl_stats_t *st = r->st;
    crawl_result_t *res = &it->res;
    if (it->invalid) {
        res->error = it->invalid_kind ? -EACCES : -EINVAL;
        res->error_kind = it->invalid_kind ? it->invalid_kind : "invalid-url";
        snprintf(res->error_msg, sizeof res->error_msg, "%s", it->invalid);
    }
    st->pages++;
    if (res->error) {
        st->failed++;
        count_kind(st, res->error_kind ? res->error_kind : "other");
    } else {
        st->ok++;
    }
    st->bytes += res->bytes;
    if (!it->invalid && res->attempts > 0) {
        weft_hist_record(&st->latency_us, (uint64_t)(res->ms * 1000));
        weft_hist_record(&st->queued_us, (uint64_t)(res->queued_ms * 1000));
    }
    if (r->fn) {
        if (r->o->table) weft_progress_hide(&r->progress); /* the row goes above the bar */
        r->fn(r->fn_arg, r->mode, res);
    }
    crawl_dispatch_release(r->d, it);
    r->progress.errors = st->failed;
    weft_progress_update(&r->progress, st->pages); /* pages done, not URLs read */
}

/* Follows the redirect of the attempt that just ended: the item goes back to the dispatcher,
 * to its target's host (a token, like any request). Returns false (with the error set) if it
 * cannot be followed. */
static bool follow(crawl_run_t *r, crawl_item_t *it, uint64_t now)
{
    crawl_result_t *res = &it->res;
    char *loc = it->location;
    it->location = NULL;
    char key[CRAWL_HOSTKEY_MAX];
    const char *why = NULL;
    if (res->redirects >= CRAWL_MAX_REDIRECTS) {
        res->error = WEFT_EREDIRECTS;
        snprintf(res->error_msg, sizeof res->error_msg, "more than %d redirects",
                 CRAWL_MAX_REDIRECTS);
    } else if ((why = crawl_url_check(loc, key)) != NULL) {
        res->error = WEFT_EREDIRECTS;
        snprintf(res->error_msg, sizeof res->error_msg, "redirect to an unusable URL: %s", why);
    } else if (crawl_dispatch_redirect(r->d, it, key, now) < 0) {
        res->error = -ENOMEM;
        snprintf(res->error_msg, sizeof res->error_msg, "%s", weft_strerror(-ENOMEM));
    } else {
        free(it->next_url);
        it->next_url = loc;
        res->redirects++;
        res->attempts--; /* a hop is not another attempt */
        return true;
    }
    res->error_kind = crawl_error_kind(res->error, res->status);
    free(loc);
    return false;
}

void crawl__attempt_end(crawl_run_t *r, crawl_item_t *it)
{
    crawl_dispatch_attempt_done(r->d, it);
    uint64_t now = weft_now_ns(), ra_ms;
    if (!it->robots) /* a page's latency, not the small robots.txt's */
        crawl_dispatch_observe(r->d, it, now - it->attempt_start_ns,
                               it->res.status > 0 && it->res.status < 400);
    /* A 429 or 503 with Retry-After speaks for the whole server: no request to that host
     * starts before it has passed (capped like the wait of the URL itself). */
    if ((it->res.status == 429 || it->res.status == 503) && it->retry_after &&
        crawl_retry_after_ms(it->retry_after, time(NULL), &ra_ms)) {
        if (ra_ms > r->o->retry_after_max_ms) ra_ms = r->o->retry_after_max_ms;
        crawl_dispatch_pause_host(r->d, it, now + ra_ms * 1000000u);
    }
    if (it->robots) { /* the host's robots.txt: rules, never a reported page */
        crawl_dispatch_robots_done(r->d, it);
        crawl_dispatch_release(r->d, it);
        return;
    }
    if (it->location && follow(r, it, now)) return;
    uint64_t delay;
    char why[160];
    switch (crawl_retry_decide(r->o, &it->res, it->retry_after, &r->rng, &delay, why, sizeof why)) {
    case CRAWL_RETRY_YES:
        r->st->retries++;
        crawl_dispatch_retry(r->d, it, now + delay);
        return;
    case CRAWL_RETRY_GIVE_UP:
        it->res.error_kind = "retry-after-cap";
        snprintf(it->res.error_msg, sizeof it->res.error_msg, "%s", why);
        break;
    case CRAWL_RETRY_NO:
        break;
    }
    crawl__finish(r, it);
}

/* ---- loop-driven modes ---- */

static void on_wake(weft_loop_timer_t *t, void *arg)
{
    crawl__pump(arg);
}

void crawl__pump(crawl_run_t *r)
{
    uint64_t wake = UINT64_MAX;
    while (!r->error && r->inflight < (size_t)r->limit) {
        uint64_t now = weft_now_ns(); /* fresh each time: the rate limiter spaces real starts */
        crawl_item_t *it = crawl_dispatch_next(r->d, now, &wake);
        if (!it) break;
        if (it->invalid) {
            crawl__finish(r, it);
            continue;
        }
        crawl__attempt_begin(r, it, now);
        int rc = r->start(r, it);
        if (rc < 0) { /* could not even start: a failed attempt, never retried */
            it->res.error = rc;
            it->res.error_kind = "other";
            snprintf(it->res.error_msg, sizeof it->res.error_msg, "%s", weft_strerror(rc));
            crawl_dispatch_attempt_done(r->d, it);
            if (it->robots) {
                crawl_dispatch_robots_done(r->d, it);
                crawl_dispatch_release(r->d, it);
                continue;
            }
            crawl__finish(r, it);
            continue;
        }
        r->inflight++;
        if (r->inflight > r->st->max_inflight) r->st->max_inflight = r->inflight;
    }
    if (crawl_dispatch_error(r->d) && !r->error) r->error = crawl_dispatch_error(r->d);
    if (r->inflight == 0 && (r->error || crawl_dispatch_idle(r->d))) {
        weft_loop_stop(r->loop);
        return;
    }
    if (r->inflight < (size_t)r->limit && wake != UINT64_MAX) {
        uint64_t now = weft_now_ns();
        uint64_t ms = wake > now ? (wake - now + 999999) / 1000000 : 0;
        weft_loop_timer_start(r->timer, ms, 0);
    }
}

/* ---- host names: resolved off the loop thread ---- */

typedef struct lookup {
    crawl_run_t *r;
    int rc;
    char addr[INET6_ADDRSTRLEN];
    char name[]; /* lower case, as the dispatcher asked */
} lookup_t;

static int lookup_task(void *arg, weft_ctx_t *ctx)
{
    (void)ctx;
    lookup_t *l = arg;
    l->rc = crawl_resolve(l->name, l->addr, sizeof l->addr);
    return 0;
}

static void lookup_done(weft_future_t *f, void *arg, int status)
{
    (void)f;
    lookup_t *l = arg;
    if (status == 0) { /* not a loop being destroyed */
        crawl_dispatch_resolved(l->r->d, l->name, l->rc == 0 ? l->addr : NULL);
        crawl__pump(l->r);
    }
    free(l);
}

/* The dispatcher's resolver (hosts.h): inline in seq mode; else a lookup on the resolver pool
 * (two threads, made at the first name), answered on the loop thread. */
static int resolve(void *arg, const char *name, char *addr, size_t size)
{
    crawl_run_t *r = arg;
    if (!r->loop) return crawl_resolve(name, addr, size) == 0 ? 1 : -1;
    weft_pool_opts_t po = {.threads = 2, .name = "crawl-dns"};
    int rc = r->resolver ? 0 : weft_pool_create(&r->resolver, &po);
    if (rc < 0) return rc;
    size_t n = strlen(name) + 1;
    lookup_t *l = malloc(sizeof *l + n);
    if (!l) return -ENOMEM;
    l->r = r;
    memcpy(l->name, name, n);
    weft_future_t *f;
    rc = weft_pool_submit(r->resolver, lookup_task, l, &f);
    if (rc < 0) {
        free(l);
        return rc;
    }
    rc = weft_loop_await(r->loop, f, lookup_done, l);
    if (rc < 0) { /* cannot hear the answer: wait for the task, then key by spelling */
        weft_future_wait(f, -1);
        free(l);
    }
    weft_future_release(f);
    return rc;
}

/* Sets up the loop and its wake-up timer for threads and async modes. */
static int loop_setup(crawl_run_t *r, int max_connections)
{
    weft_loop_opts_t lo = {.max_connections = max_connections};
    int rc = weft_loop_create(&r->loop, &lo);
    if (rc < 0) return rc;
    rc = weft_loop_timer_create(r->loop, on_wake, r, &r->timer);
    if (rc < 0) {
        weft_loop_destroy(r->loop);
        r->loop = NULL;
    }
    return rc;
}

int crawl_run_mode(const crawl_opts_t *o, crawl_mode_t mode, FILE *input, crawl_result_fn fn,
                   void *arg, crawl_stats_t *st)
{
    memset(st, 0, sizeof *st);
    weft_hist_init(&st->latency_us);
    weft_hist_init(&st->queued_us);
    st->mode = mode;
    st->parallelism = mode == CRAWL_SEQ ? 1 : mode == CRAWL_THREADS ? o->threads : o->concurrency;
    crawl_run_t r = {.o = o, .mode = mode, .fn = fn, .fn_arg = arg, .st = st};
    r.limit = st->parallelism;
    r.rng = o->seed ? o->seed : weft_now_ns() ^ (uint64_t)(uintptr_t)&r;
    if (fseeko(input, 0, SEEK_SET) != 0 && mode != CRAWL_SEQ) {
        /* not seekable (a pipe): fine for the first and only mode */
    }
    clearerr(input);
    crawl_input_t *in;
    int rc = crawl_input_open(&in, input);
    if (rc < 0) return rc;
    size_t window = o->window ? o->window : (size_t)(4 * r.limit > 256 ? 4 * r.limit : 256);
    rc = crawl_dispatch_create(&r.d, o, in, window);
    if (rc < 0) {
        crawl_input_close(in);
        return rc;
    }
    crawl_dispatch_set_resolver(r.d, resolve, &r);
    /* The total is the number of URL lines when the input is a file (counted first: fast next
     * to fetching); unknown (0) for a stream, which then shows pages done and the rate. */
    static char label[16];
    snprintf(label, sizeof label, "%s", crawl_mode_name(mode));
    weft_progress_start(&r.progress, label, 0);
    r.progress.unit = "pages";
    if (!o->progress) r.progress.enabled = false;
    struct stat sb;
    uint64_t total = 0;
    if (r.progress.enabled && fstat(fileno(input), &sb) == 0 && S_ISREG(sb.st_mode) &&
        crawl_input_count(input, &total) == 0)
        r.progress.total = total;

    r.t0 = weft_now_ns();
    if (mode == CRAWL_SEQ) {
        rc = crawl__mode_seq(&r);
    } else {
        rc = loop_setup(&r, mode == CRAWL_ASYNC ? o->concurrency + 16 : 16);
        if (rc == 0) {
            rc = mode == CRAWL_THREADS ? crawl__mode_threads(&r) : crawl__mode_async(&r);
            if (r.resolver) weft_pool_destroy(r.resolver); /* lookups done: answers cancelled */
            weft_loop_destroy(r.loop);
        }
    }
    st->wall_s = (double)(weft_now_ns() - r.t0) / 1e9;
    weft_progress_finish(&r.progress);
    if (rc == 0) rc = r.error ? r.error : crawl_dispatch_error(r.d);
    crawl_dispatch_destroy(r.d);
    crawl_input_close(in);
    return rc;
}
