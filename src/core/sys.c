/* Clocks, usable CPUs, resident memory and the replaceable allocator. */
#include "core/alloc.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <weft/sys.h>

/* Set once, before any weft object exists (documented in weft/sys.h), so plain pointers do. */
static void *(*a_malloc)(size_t) = malloc;
static void *(*a_calloc)(size_t, size_t) = calloc;
static void *(*a_realloc)(void *, size_t) = realloc;
static void (*a_free)(void *) = free;

void *weft__malloc(size_t n)
{
    return a_malloc(n);
}
void *weft__calloc(size_t count, size_t n)
{
    return a_calloc(count, n);
}
void *weft__realloc(void *p, size_t n)
{
    return a_realloc(p, n);
}
void weft__free(void *p)
{
    a_free(p);
}
char *weft__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = a_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

int weft_replace_allocator(void *(*malloc_fn)(size_t), void *(*calloc_fn)(size_t, size_t),
                           void *(*realloc_fn)(void *, size_t), void (*free_fn)(void *))
{
    if (!malloc_fn || !calloc_fn || !realloc_fn || !free_fn) return -EINVAL;
    a_malloc = malloc_fn;
    a_calloc = calloc_fn;
    a_realloc = realloc_fn;
    a_free = free_fn;
    return 0;
}

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t weft_now_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

uint64_t weft_thread_cpu_ns(void)
{
    return clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

/* cgroup v2 quota: "max 100000" (none) or "200000 100000" (2 CPUs). */
static int cgroup_cpu_limit(void)
{
    FILE *f = fopen("/sys/fs/cgroup/cpu.max", "re");
    if (!f) return 0;
    char quota[32];
    long long period = 0;
    int n = fscanf(f, "%31s %lld", quota, &period);
    fclose(f);
    if (n != 2 || strcmp(quota, "max") == 0 || period <= 0) return 0;
    long long q = atoll(quota);
    if (q <= 0) return 0;
    return (int)((q + period - 1) / period);
}

int weft_cpu_count(void)
{
    cpu_set_t set;
    int n = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
    if (n <= 0) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    int quota = cgroup_cpu_limit();
    if (quota > 0 && quota < n) n = quota;
    return n > 0 ? n : 1;
}

long long weft_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f) return -errno;
    long long size = 0, rss = 0;
    int n = fscanf(f, "%lld %lld", &size, &rss);
    fclose(f);
    if (n != 2) return -EIO;
    return rss * sysconf(_SC_PAGESIZE);
}

uint64_t weft_rand(uint64_t *state)
{
    uint64_t x = *state ? *state : UINT64_C(0x9E3779B97F4A7C15);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x * UINT64_C(0x2545F4914F6CDD1D);
}

uint64_t weft_backoff(uint64_t base, uint64_t max, int failures, uint64_t *rng)
{
    uint64_t cap = base;
    for (int i = 1; i < failures && cap < max; i++) cap = cap > max / 2 ? max : cap * 2;
    if (cap > max) cap = max;
    if (cap == 0) return 0;
    uint64_t r = weft_rand(rng);
    return cap == UINT64_MAX ? r : r % (cap + 1); /* cap + 1 would wrap to 0 */
}

const char *weft_version(void)
{
    return "0.1.0";
}
