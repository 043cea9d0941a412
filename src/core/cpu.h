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

#endif /* WEFT_CORE_CPU_H */
