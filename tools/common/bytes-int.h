/* Little-endian loads and stores for every tool: word-at-a-time parsing and hashing (which must
 * give the same result on every machine, since partial statistics travel between them) and
 * serialized formats. One memcpy and, on a big-endian machine, one byte swap: the compiler
 * makes each a single load or store. Thread safety: any thread (no state). */
#ifndef WEFT_TOOLS_COMMON_BYTES_INT_H
#define WEFT_TOOLS_COMMON_BYTES_INT_H

#include <stdint.h>
#include <string.h>

static inline uint64_t tools_load_le64(const void *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

static inline uint32_t tools_load_le32(const void *p)
{
    uint32_t w;
    memcpy(&w, p, 4);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap32(w);
#endif
    return w;
}

static inline void tools_store_le64(void *p, uint64_t v)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    memcpy(p, &v, 8);
}

static inline void tools_store_le32(void *p, uint32_t v)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    memcpy(p, &v, 4);
}

#endif
