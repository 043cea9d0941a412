/* weft/hist.h - an exact-count, bounded-error histogram of non-negative integers.
 *
 * Log-linear buckets (HdrHistogram's idea): values below 256 are exact; above, each power of two
 * is split into 128 buckets, so a reported percentile is within 0.4 % of a recorded value (the
 * bucket midpoint; worst case < 1 %). Count, sum, min and max are exact 64-bit integers, and
 * merging adds counts, so results do not depend on the order or grouping of records: the
 * property `weft logs` needs to be byte-identical for any worker count. Covers 0 .. 2^48-1
 * (values above are clamped into the top bucket; min/max/sum stay exact).
 */
#ifndef WEFT_HIST_H
#define WEFT_HIST_H

#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WEFT_HIST_SUB_BITS 7
#define WEFT_HIST_MAX_BITS 48
#define WEFT_HIST_BUCKETS ((WEFT_HIST_MAX_BITS - WEFT_HIST_SUB_BITS + 1) << WEFT_HIST_SUB_BITS)

typedef struct weft_hist {
    uint64_t count, sum, min, max;       /* read-only; min is UINT64_MAX while empty */
    uint64_t buckets[WEFT_HIST_BUCKETS]; /* private */
} weft_hist_t;

/* Empties the histogram. Ownership: borrows. */
void weft_hist_init(weft_hist_t *h);

/* Records one value. */
void weft_hist_record(weft_hist_t *h, uint64_t v);

/* Adds every record of `src` to `dst`. */
void weft_hist_merge(weft_hist_t *dst, const weft_hist_t *src);

/* The value at quantile q (0..1, e.g. 0.99): the midpoint of the bucket holding the
 * ceil(q * count)-th smallest record, clamped to [min, max]. 0 when empty. */
uint64_t weft_hist_quantile(const weft_hist_t *h, double q);

/* Bucket index of a value, and the [lo, hi] range of a bucket: for serialisation and tests. */
size_t weft_hist_bucket(uint64_t v);
void weft_hist_bucket_range(size_t idx, uint64_t *lo, uint64_t *hi);

/* For serialisation: the number of records in bucket `idx` (0 when idx >= WEFT_HIST_BUCKETS).
 * Ownership: borrows. */
uint64_t weft_hist_bucket_count(const weft_hist_t *h, size_t idx);

/* For deserialisation: adds `count` records whose values lie in bucket `idx`, without the values
 * themselves: the bucket and `count` grow, sum/min/max do not (add them with
 * weft_hist_add_totals once the buckets are in). Returns 0, or -EINVAL and changes nothing when
 * idx >= WEFT_HIST_BUCKETS. Ownership: borrows. */
int weft_hist_add_bucket(weft_hist_t *h, size_t idx, uint64_t count);

/* For deserialisation: adds the exact sum of the values added with weft_hist_add_bucket and
 * widens [min, max] to include [min, max] given. Ownership: borrows. */
void weft_hist_add_totals(weft_hist_t *h, uint64_t sum, uint64_t min, uint64_t max);

/* Thread safety of every function above: one thread at a time per histogram; merge per-thread
 * histograms at the end. */

#ifdef __cplusplus
}
#endif

#endif /* WEFT_HIST_H */
