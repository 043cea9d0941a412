/* Log-linear histogram (weft/hist.h). Values < 2^(SUB_BITS+1) map to themselves; a larger value
 * with top bit e maps to (e - SUB_BITS) * 2^SUB_BITS + (v >> (e - SUB_BITS)), whose second term
 * lies in [2^SUB_BITS, 2^(SUB_BITS+1)), so indexes are contiguous and each bucket spans 1/128 of
 * its power of two. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <weft/hist.h>

#define SUB WEFT_HIST_SUB_BITS
#define VMAX ((UINT64_C(1) << WEFT_HIST_MAX_BITS) - 1)

void weft_hist_init(weft_hist_t *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

/* Inlined into weft_hist_record, which `weft logs` calls once per line. */
static inline size_t bucket(uint64_t v)
{
    if (v > VMAX) v = VMAX;
    if (v < (UINT64_C(1) << (SUB + 1))) return (size_t)v;
    int e = 63 - __builtin_clzll(v);
    return (size_t)(e - SUB) * (1u << SUB) + (size_t)(v >> (e - SUB));
}

size_t weft_hist_bucket(uint64_t v)
{
    return bucket(v);
}

void weft_hist_bucket_range(size_t idx, uint64_t *lo, uint64_t *hi)
{
    if (idx < (1u << (SUB + 1))) {
        *lo = *hi = idx;
        return;
    }
    int shift = (int)(idx >> SUB) - 1; /* e - SUB */
    uint64_t mant = (idx & ((1u << SUB) - 1)) | (1u << SUB);
    *lo = mant << shift;
    *hi = *lo + (UINT64_C(1) << shift) - 1;
}

void weft_hist_record(weft_hist_t *h, uint64_t v)
{
    h->sum += v;
    h->buckets[bucket(v)]++;
    h->count++;
    if (v < h->min) h->min = v;
    if (v > h->max) h->max = v;
}

uint64_t weft_hist_bucket_count(const weft_hist_t *h, size_t idx)
{
    return idx < WEFT_HIST_BUCKETS ? h->buckets[idx] : 0;
}

int weft_hist_add_bucket(weft_hist_t *h, size_t idx, uint64_t count)
{
    if (idx >= WEFT_HIST_BUCKETS) return -EINVAL;
    h->buckets[idx] += count;
    h->count += count;
    return 0;
}

void weft_hist_add_totals(weft_hist_t *h, uint64_t sum, uint64_t min, uint64_t max)
{
    h->sum += sum;
    if (min < h->min) h->min = min;
    if (max > h->max) h->max = max;
}

void weft_hist_merge(weft_hist_t *dst, const weft_hist_t *src)
{
    if (!src->count) return;
    for (size_t i = 0; i < WEFT_HIST_BUCKETS; i++) dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min) dst->min = src->min;
    if (src->max > dst->max) dst->max = src->max;
}

uint64_t weft_hist_quantile(const weft_hist_t *h, double q)
{
    if (!h->count) return 0;
    if (q < 0) q = 0;
    if (q > 1) q = 1;
    uint64_t rank = (uint64_t)(q * (double)h->count);
    if ((double)rank < q * (double)h->count) rank++; /* ceil */
    if (rank == 0) rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < WEFT_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t lo, hi;
            weft_hist_bucket_range(i, &lo, &hi);
            uint64_t mid = lo + (hi - lo) / 2;
            if (mid < h->min) mid = h->min;
            if (mid > h->max) mid = h->max;
            return mid;
        }
    }
    return h->max;
}
