/* weft/hash.h - the one general-purpose hash every module and tool uses.
 *
 * XXH3 (64-bit) from Debian's libxxhash: fast on short keys, well distributed in the low bits, so
 * tables may take `hash & mask`. Not for cryptography, and not seeded per process: the same bytes
 * give the same hash in every process of every run (the process pool names functions by it).
 * weft_htab (weft/htab.h) reserves hash 0; both functions here never return 0.
 */
#ifndef WEFT_HASH_H
#define WEFT_HASH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The hash of `len` bytes at `p` (p may be NULL when len is 0); never 0.
 * Ownership: borrows `p`. Thread safety: any thread. */
uint64_t weft_hash(const void *p, size_t len);

/* The hash of a NUL-terminated string, equal to weft_hash(s, strlen(s)); never 0.
 * Ownership: borrows `s`. Thread safety: any thread. */
uint64_t weft_hash_str(const char *s);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_HASH_H */
