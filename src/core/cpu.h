/* Internal: the one pause instruction for spin loops, for every module that spins (the
 * shared-memory ring, the process pool's supervisor and workers, futures). */
#ifndef WEFT_CORE_CPU_H
#define WEFT_CORE_CPU_H

/* A short pause for spin loops: tells the CPU that this is a busy-wait (x86 PAUSE, arm64 YIELD),
 * which saves power and lets a sibling hyper-thread run. Thread safety: any thread. */
static inline void weft__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* An adaptive spin budget: how long a waiter polls before it sleeps. Spinning pays when the
 * work arrives while the other side runs on another CPU. On a machine with more runnable threads
 * than CPUs (2 cores, a Redis, a broker worker and its process pool) the spinner takes the CPU
 * the other side needs: its spins run out and each costs the whole budget, which doubled the
 * CPU time per no-op task of a broker worker. So every spin that ran out halves the budget
 * (after 5 the waiter no longer spins) and every spin that found work doubles it again, up to the
 * maximum; a waiter that no longer spins tries the maximum once in 64 waits, to notice when
 * spinning pays again. Zero-initialised: the full budget. Thread safety: one waiter per
 * budget. */
typedef struct weft__spin {
    unsigned shift;   /* the budget is max >> shift; WEFT__SPIN_OFF: no spin */
    unsigned skipped; /* waits without a spin since the last probe */
} weft__spin_t;

#define WEFT__SPIN_OFF 5u
#define WEFT__SPIN_PROBE 64u

/* The spin budget for this wait, in ns (0: sleep at once). */
static inline unsigned long long weft__spin_budget(weft__spin_t *s, unsigned long long max_ns)
{
    if (s->shift < WEFT__SPIN_OFF) return max_ns >> s->shift;
    if (++s->skipped < WEFT__SPIN_PROBE) return 0;
    s->skipped = 0;
    return max_ns;
}

/* Reports how the spin of this wait ended: `found` work, or ran out (or did not spin). */
static inline void weft__spin_result(weft__spin_t *s, int found)
{
    if (found) {
        if (s->shift > 0) s->shift = s->shift >= WEFT__SPIN_OFF ? WEFT__SPIN_OFF - 1 : s->shift - 1;
    } else if (s->shift < WEFT__SPIN_OFF) {
        s->shift++;
    }
}

#endif /* WEFT_CORE_CPU_H */
