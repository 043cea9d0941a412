/* weft/sys.h - small system services every module and tool shares: clocks, the number of CPUs
 * this process may use, and the allocator hook.
 */
#ifndef WEFT_SYS_H
#define WEFT_SYS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Monotonic time in nanoseconds (CLOCK_MONOTONIC). Thread safety: any thread,
 * async-signal-safe. */
uint64_t weft_now_ns(void);

/* CPU time consumed by the calling thread, in nanoseconds (CLOCK_THREAD_CPUTIME_ID).
 * Thread safety: any thread. */
uint64_t weft_thread_cpu_ns(void);

/* The number of CPUs this process can actually use: the smaller of the CPUs in its affinity
 * mask and its cgroup v2 CPU quota (cpu.max, rounded up), at least 1. Re-read on every call,
 * so it follows changes. Thread safety: any thread. */
int weft_cpu_count(void);

/* Resident set size of this process in bytes (from /proc/self/statm), or a negative errno.
 * Thread safety: any thread. */
long long weft_rss_bytes(void);

/* A pseudo-random number from a xorshift* generator whose 64-bit state the caller owns (any
 * value; 0 is replaced by a fixed seed). Not for cryptography. Thread safety: one state per
 * thread. */
uint64_t weft_rand(uint64_t *state);

/* Full-jitter exponential backoff (the retry delay of the scheduler and the crawler): a uniform
 * random value in [0, min(max, base * 2^(failures - 1))], in the unit of `base` and `max`;
 * failures < 1 counts as 1. Thread safety: as weft_rand. */
uint64_t weft_backoff(uint64_t base, uint64_t max, int failures, uint64_t *rng);

/* Replaces the allocator every weft module uses (like uv_replace_allocator). All four must be
 * given; returns -EINVAL otherwise. Call before creating any weft object, or after destroying
 * them all: memory must be freed by the allocator that allocated it.
 * Thread safety: not thread-safe; call while no other thread uses weft. */
int weft_replace_allocator(void *(*malloc_fn)(size_t), void *(*calloc_fn)(size_t, size_t),
                           void *(*realloc_fn)(void *, size_t), void (*free_fn)(void *));

/* The library version, "MAJOR.MINOR.PATCH". Ownership: static. Thread safety: any thread. */
const char *weft_version(void);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_SYS_H */
