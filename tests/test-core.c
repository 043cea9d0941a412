/* Tests for the small shared pieces: errors, buffer, histogram, hash, hash table, system helpers.
 */
#include "harness.h"

#include <stdlib.h>
#include <weft/buf.h>
#include <weft/err.h>
#include <weft/hash.h>
#include <weft/hist.h>
#include <weft/htab.h>
#include <weft/sys.h>

TEST(strerror_covers_weft_and_errno_codes)
{
    CHECK_STR_EQ(weft_strerror(WEFT_ECRASHED), "worker process crashed");
    CHECK_STR_EQ(weft_err_name(WEFT_ECYCLE), "WEFT_ECYCLE");
    CHECK_STR_EQ(weft_err_name(-ETIMEDOUT), "ETIMEDOUT");
    CHECK_STR_EQ(weft_strerror(-ENOMEM), "Cannot allocate memory");
    CHECK(weft_strerror(-99999) != NULL);
}

TEST(buf_grows_and_refuses_past_max)
{
    weft_buf_t b;
    weft_buf_init(&b, 10);
    CHECK_EQ(weft_buf_append(&b, "hello", 5), 0);
    CHECK_EQ(weft_buf_printf(&b, "%d", 1234), 0);
    CHECK_STR_EQ(b.data, "hello1234");
    CHECK_EQ(weft_buf_append(&b, "xy", 2), -EMSGSIZE);
    CHECK_STR_EQ(b.data, "hello1234"); /* unchanged on failure */
    CHECK_EQ(weft_buf_printf(&b, "%s", "ab"), -EMSGSIZE);
    size_t n;
    char *d = weft_buf_steal(&b, &n);
    CHECK_EQ(n, 9);
    CHECK_EQ(b.len, 0);
    free(d);
    weft_buf_free(&b);
}

TEST(hist_buckets_are_contiguous_and_within_one_percent)
{
    size_t prev = 0;
    for (uint64_t v = 0; v < (1u << 20); v++) {
        size_t i = weft_hist_bucket(v);
        CHECK(i == prev || i == prev + 1);
        prev = i;
        uint64_t lo, hi;
        weft_hist_bucket_range(i, &lo, &hi);
        CHECK(lo <= v && v <= hi);
        uint64_t mid = lo + (hi - lo) / 2;
        double err = v ? (double)(mid > v ? mid - v : v - mid) / (double)v : 0;
        CHECK_MSG(err <= 0.01, "value %llu bucket [%llu,%llu]", (unsigned long long)v,
                  (unsigned long long)lo, (unsigned long long)hi);
    }
    CHECK(weft_hist_bucket(UINT64_MAX) == WEFT_HIST_BUCKETS - 1);
}

TEST(hist_quantiles_match_sorted_values_and_merge_is_order_free)
{
    static weft_hist_t a, b, all;
    weft_hist_init(&a);
    weft_hist_init(&b);
    weft_hist_init(&all);
    enum { N = 100000 };
    uint64_t *vals = malloc(N * sizeof *vals);
    srand(7);
    for (int i = 0; i < N; i++) {
        vals[i] = (uint64_t)rand() % 5000000;
        weft_hist_record(i % 3 ? &a : &b, vals[i]);
        weft_hist_record(&all, vals[i]);
    }
    weft_hist_merge(&a, &b);
    CHECK(memcmp(&a, &all, sizeof a) == 0);
    int cmp(const void *x, const void *y);
    qsort(vals, N, sizeof *vals, cmp);
    const double qs[] = {0.5, 0.9, 0.95, 0.99, 1.0};
    for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++) {
        size_t rank = (size_t)(qs[k] * N + 0.999999);
        uint64_t exact = vals[rank - 1], got = weft_hist_quantile(&all, qs[k]);
        double err = (double)(got > exact ? got - exact : exact - got) / (double)exact;
        CHECK_MSG(err <= 0.01, "q=%.2f exact %llu got %llu", qs[k], (unsigned long long)exact,
                  (unsigned long long)got);
    }
    CHECK_EQ(all.max, vals[N - 1]);
    CHECK_EQ(all.min, vals[0]);
    free(vals);
}

TEST(hist_rebuilt_from_its_buckets_equals_the_original)
{
    static weft_hist_t a, b, c, d;
    weft_hist_init(&a);
    weft_hist_init(&b);
    srand(11);
    for (int i = 0; i < 20000; i++) weft_hist_record(&a, (uint64_t)rand() % 3000000 + 5);
    for (int i = 0; i < 300; i++) weft_hist_record(&b, (uint64_t)rand() % 1000);
    /* b plus a's buckets and totals equals the merge of a into b */
    c = b;
    d = b;
    size_t used = 0;
    for (size_t i = 0; i < WEFT_HIST_BUCKETS; i++) {
        uint64_t n = weft_hist_bucket_count(&a, i);
        if (!n) continue;
        used++;
        CHECK_EQ(weft_hist_add_bucket(&c, i, n), 0);
    }
    CHECK(used > 100);
    weft_hist_add_totals(&c, a.sum, a.min, a.max);
    weft_hist_merge(&d, &a);
    CHECK(memcmp(&c, &d, sizeof c) == 0);
    CHECK_EQ(c.count, a.count + b.count);
    CHECK_EQ(weft_hist_quantile(&c, 0.99), weft_hist_quantile(&d, 0.99));
    /* a bad index is refused and changes nothing; reading past the end gives 0 */
    CHECK_EQ(weft_hist_add_bucket(&c, WEFT_HIST_BUCKETS, 1), -EINVAL);
    CHECK(memcmp(&c, &d, sizeof c) == 0);
    CHECK_EQ(weft_hist_bucket_count(&c, WEFT_HIST_BUCKETS), 0);
    CHECK_EQ(weft_hist_bucket_count(&c, weft_hist_bucket(a.max)),
             weft_hist_bucket_count(&d, weft_hist_bucket(a.max)));
}

int cmp(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

TEST(cpu_count_and_clocks_are_sane)
{
    int n = weft_cpu_count();
    CHECK(n >= 1 && n <= 4096);
    uint64_t t0 = weft_now_ns(), c0 = weft_thread_cpu_ns();
    volatile uint64_t x = 0;
    for (int i = 0; i < 10000000; i++) x += (uint64_t)i;
    CHECK(x > 0);
    CHECK(weft_now_ns() > t0);
    CHECK(weft_thread_cpu_ns() > c0);
    CHECK(weft_rss_bytes() > 0);
}

TEST(backoff_stays_within_its_doubling_cap_without_overflow)
{
    uint64_t rng = 0; /* a zero state must not stick at zero */
    CHECK(weft_rand(&rng) != 0 && rng != 0);
    uint64_t seen_max = 0;
    for (int failures = -1; failures <= 200; failures++) {
        uint64_t cap = failures <= 1 ? 100 : failures >= 8 ? 10000 : 100u << (failures - 1);
        if (cap > 10000) cap = 10000;
        for (int k = 0; k < 200; k++) {
            uint64_t d = weft_backoff(100, 10000, failures, &rng);
            CHECK_MSG(d <= cap, "failures %d: %llu > %llu", failures, (unsigned long long)d,
                      (unsigned long long)cap);
            if (d > seen_max) seen_max = d;
        }
    }
    CHECK(seen_max > 5000); /* the jitter reaches the upper range */
    CHECK_EQ(weft_backoff(0, 10000, 5, &rng), 0);
    CHECK(weft_backoff(UINT64_MAX / 2, UINT64_MAX, 70, &rng) <= UINT64_MAX);
}

static bool u64_eq(uint64_t val, const void *key, const void *ctx)
{
    (void)ctx;
    return val == *(const uint64_t *)key;
}

TEST(hash_is_stable_and_never_zero)
{
    CHECK(weft_hash("abc", 3) == weft_hash_str("abc"));
    CHECK(weft_hash(NULL, 0) == weft_hash_str(""));
    CHECK(weft_hash("abc", 3) != weft_hash("abd", 3));
    CHECK(weft_hash_str("") != 0);
}

/* The table against a reference array, with colliding hashes (low bits equal, so every entry
 * shares a run), removals in the middle of runs and wrap-around at the end of the array. */
TEST(htab_matches_a_reference_under_inserts_and_removals)
{
    enum { N = 512 };
    static bool in[N];
    memset(in, 0, sizeof in);
    weft_htab_t t = WEFT_HTAB_INIT;
    uint64_t rng = 7;
    for (long round = 0, rounds = weft_test_scale(40000); round < rounds; round++) {
        uint64_t k = weft_rand(&rng) % N;
        /* Few distinct low bits: long runs, and the probe wraps past the last slot. */
        uint64_t h = ((k % 7) + 1) | (k << 40) | (UINT64_C(0xF) << 3);
        if (weft_rand(&rng) % 3 == 0) {
            uint64_t v = 0;
            bool had = weft_htab_remove(&t, h, u64_eq, &k, NULL, &v);
            CHECK_EQ(had, in[k]);
            if (had) CHECK_EQ(v, k);
            in[k] = false;
        } else {
            bool added;
            uint64_t *v = weft_htab_put(&t, h, u64_eq, &k, NULL, &added);
            CHECK(v != NULL);
            CHECK_EQ(added, !in[k]);
            if (added) *v = k;
            CHECK_EQ(*v, k);
            in[k] = true;
        }
    }
    size_t n = 0, pos = 0;
    for (weft_htab_slot_t *s; (s = weft_htab_next(&t, &pos));) {
        CHECK(in[s->val]);
        n++;
    }
    size_t want = 0;
    for (int k = 0; k < N; k++) {
        want += in[k];
        uint64_t kk = (uint64_t)k, h = ((kk % 7) + 1) | (kk << 40) | (UINT64_C(0xF) << 3);
        CHECK_EQ(weft_htab_find(&t, h, u64_eq, &kk, NULL) != NULL, in[k]);
    }
    CHECK_EQ(n, want);
    CHECK_EQ(t.len, want);
    weft_htab_free(&t);
}

TEST(htab_put_fails_cleanly_when_allocation_fails)
{
    weft_htab_t t = WEFT_HTAB_INIT;
    bool added;
    uint64_t k = 1;
    weft_test_fail_alloc(1);
    CHECK(weft_htab_put(&t, 5, u64_eq, &k, NULL, &added) == NULL);
    weft_test_restore_alloc();
    CHECK_EQ(t.len, 0);
    CHECK(weft_htab_put(&t, 5, u64_eq, &k, NULL, &added) != NULL && added);
    weft_htab_free(&t);
}

/* ---- utf8 ---- */

#include <errno.h>
#include <string.h>
#include <weft/utf8.h>

/* The reference: RFC 3629's encoder. */
static int utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

TEST(utf8_decode_round_trips_every_scalar_value)
{
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        char b[4];
        int n = utf8_encode(cp, b);
        uint32_t got;
        CHECK_EQ(weft_utf8_decode(b, (size_t)n, &got), n);
        CHECK_EQ(got, cp);
        for (int k = 1; k < n; k++) CHECK_EQ(weft_utf8_decode(b, (size_t)k, &got), -EAGAIN);
    }
}

/* Every 1..3-byte string decodes exactly when it is the encoding of a scalar value: no overlong
 * form, no surrogate is accepted, and nothing valid is refused. */
TEST(utf8_decode_accepts_exactly_the_shortest_forms)
{
    for (uint32_t v = 0; v < (1u << 24); v++) {
        unsigned char s[3] = {(unsigned char)(v >> 16), (unsigned char)(v >> 8), (unsigned char)v};
        if (s[0] < 0xC0 && (v & 0xFFFF)) continue; /* ASCII and stray continuations: once each */
        uint32_t cp;
        int n = weft_utf8_decode((const char *)s, 3, &cp);
        if (n == -EAGAIN) { /* a valid start of a 4-byte sequence */
            CHECK(s[0] >= 0xF0 && s[0] <= 0xF4);
            continue;
        }
        if (n < 0) {
            CHECK_EQ(n, -EILSEQ);
            CHECK_EQ(cp, WEFT_UTF8_REPLACEMENT);
            continue;
        }
        char b[4];
        CHECK(!(cp >= 0xD800 && cp <= 0xDFFF));
        CHECK_EQ(utf8_encode(cp, b), n);
        CHECK(memcmp(b, s, (size_t)n) == 0);
    }
    static const char *const bad[] = {
        "\xC0\x80",         "\xC1\xBF",         "\xE0\x9F\xBF",     "\xED\xA0\x80", "\xED\xBF\xBF",
        "\xF0\x8F\xBF\xBF", "\xF4\x90\x80\x80", "\xF5\x80\x80\x80", "\xFF",         "\x80",
        "\xE2\x28\xA1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint32_t cp;
        CHECK_EQ(weft_utf8_decode(bad[i], strlen(bad[i]), &cp), -EILSEQ);
    }
    uint32_t cp;
    CHECK_EQ(weft_utf8_decode("\xF4\x8F\xBF\xBF", 4, &cp), 4);
    CHECK_EQ(cp, 0x10FFFF);
    CHECK_EQ(weft_utf8_decode("", 0, &cp), -EINVAL);
}

TEST(utf8_validate_width_and_escapers)
{
    CHECK(weft_utf8_valid("caf\xC3\xA9 \xE6\x97\xA5", 9));
    CHECK(!weft_utf8_valid("ab\xED\xA0\x80", 5));
    CHECK_EQ(weft_utf8_valid_prefix("ab\xE6\x97", 4, false), 4);
    CHECK_EQ(weft_utf8_valid_prefix("ab\xE6\x97", 4, true), 2);
    CHECK_EQ(weft_utf8_valid_prefix("ab\xFFxy", 5, false), 2);
    /* Width: ASCII 1, wide 2, combining 0, each invalid byte 1 (its U+FFFD), controls 1. */
    CHECK_EQ(weft_utf8_width("abc", 3), 3);
    CHECK_EQ(weft_utf8_width("\xE6\x97\xA5\xE6\x9C\xAC", 6), 4);
    CHECK_EQ(weft_utf8_width("e\xCC\x81", 3), 1);
    CHECK_EQ(weft_utf8_width("\xF5\x80\x80\x80", 4), 4);
    CHECK_EQ(weft_utf8_width("\xE0\x80\x80", 3), 3);
    CHECK_EQ(weft_utf8_width("\t\x7F", 2), 2);
    CHECK_EQ(weft_utf8_width("\xEF\xBC\xA1\xF0\x9F\x98\x80", 7), 4); /* fullwidth A, emoji */

    weft_buf_t b;
    weft_buf_init(&b, 0);
    static const char in[] = "a\"\\<&>'\x01\x7F\xC3\xA9\xFF\xE6\x97";
    CHECK_EQ(weft_utf8_escape_json(&b, in, sizeof in - 1), 0);
    CHECK_STR_EQ(b.data, "a\\\"\\\\<&>'\\u0001\\u007f\xC3\xA9\\ufffd\\ufffd\\ufffd");
    weft_buf_reset(&b);
    CHECK_EQ(weft_utf8_escape_html(&b, in, sizeof in - 1), 0);
    CHECK_STR_EQ(b.data, "a&quot;\\&lt;&amp;&gt;&#39;  \xC3\xA9&#xFFFD;&#xFFFD;&#xFFFD;");
    weft_buf_reset(&b);
    CHECK_EQ(weft_utf8_repair(&b, in, sizeof in - 1), 0);
    CHECK_STR_EQ(b.data, "a\"\\<&>'\x01\x7F\xC3\xA9\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
    CHECK(weft_utf8_valid(b.data, b.len));
    /* A failed append reports the error (the buffer's max). */
    weft_buf_t small;
    weft_buf_init(&small, 4);
    CHECK_EQ(weft_utf8_escape_json(&small, "abc\"def", 7), -EMSGSIZE);
    weft_buf_free(&small);
    weft_buf_free(&b);
}

/* weft_htab_prefetch is a hint: safe on an empty table, and the table is the same after it. */
TEST(htab_prefetch_is_only_a_hint)
{
    weft_htab_t t = WEFT_HTAB_INIT;
    weft_htab_prefetch(&t, 12345);
    bool added;
    for (uint64_t k = 1; k <= 100; k++) {
        uint64_t *v = weft_htab_put(&t, weft_hash(&k, sizeof k), NULL, NULL, NULL, &added);
        CHECK(v && added);
        *v = k;
    }
    for (uint64_t k = 1; k <= 200; k++) weft_htab_prefetch(&t, weft_hash(&k, sizeof k));
    CHECK_EQ(t.len, 100);
    for (uint64_t k = 1; k <= 100; k++) {
        uint64_t *v = weft_htab_find(&t, weft_hash(&k, sizeof k), NULL, NULL, NULL);
        CHECK(v && *v == k);
    }
    weft_htab_free(&t);
}
