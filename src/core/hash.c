/* The one general-purpose hash (weft/hash.h): XXH3-64 from libxxhash, with 0 mapped to 1 so that
 * weft_htab can use 0 to mark an empty slot. */
#include <string.h>
#include <weft/hash.h>
#include <xxhash.h>

uint64_t weft_hash(const void *p, size_t len)
{
    uint64_t h = XXH3_64bits(len ? p : "", len);
    return h ? h : 1;
}

uint64_t weft_hash_str(const char *s)
{
    return weft_hash(s, strlen(s));
}
