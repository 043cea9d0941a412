/* weft logs: the line parser (format.h): an interpreter of a compiled format's operations,
 * straight-line code for the presets, and the presets 32 bytes at a time with AVX2 (selected at
 * run time). All three give the same record for a line they accept (the fuzz target compares
 * them). One file on purpose: the AVX2 loop falls back to parse_fast() and shares its inline
 * helpers, which must stay inlinable into each copy of the loop.
 */
#include "logs/format.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/bytes-int.h"
#include "logs/format-int.h"

/* ---- the line parser ---------------------------------------------------------------------- */

/* Every scan below stops at '\n' as well as at its target, so a field can never run into the
 * next line: the parser may be given the rest of the chunk as its bound and still never reads
 * past the end of the current line's text. */

static inline bool is_digit(char c)
{
    return (unsigned char)(c - '0') <= 9;
}

static inline bool is_ip6_char(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.';
}

#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/* Non-zero in the high bit of each byte of w equal to the byte replicated in m. The lowest such
 * bit is exact (borrows only create false hits above a true one), which is all we use. */
static inline uint64_t eq_bytes(uint64_t w, uint64_t m)
{
    uint64_t x = w ^ m;
    return (x - ONES) & ~x & HIGHS;
}

/* The first byte in [p, end) equal to a or b, eight bytes at a time; end if none. */
static inline const char *find2(const char *p, const char *end, char a, char b)
{
    uint64_t ma = ONES * (unsigned char)a, mb = ONES * (unsigned char)b;
    while (end - p >= 8) {
        uint64_t w = tools_load_le64(p);
        uint64_t t = eq_bytes(w, ma) | eq_bytes(w, mb);
        if (t) return p + (__builtin_ctzll(t) >> 3);
        p += 8;
    }
    while (p < end && *p != a && *p != b) p++;
    return p;
}

/* The first byte in [p, end) that is ' ', '?', '"' or '\n'; end if none. */
static inline const char *find_path_end(const char *p, const char *end)
{
    while (end - p >= 8) {
        uint64_t w = tools_load_le64(p);
        uint64_t t = eq_bytes(w, ONES * ' ') | eq_bytes(w, ONES * '?') | eq_bytes(w, ONES * '"') |
                     eq_bytes(w, ONES * '\n');
        if (t) return p + (__builtin_ctzll(t) >> 3);
        p += 8;
    }
    while (p < end && *p != ' ' && *p != '?' && *p != '"' && *p != '\n') p++;
    return p;
}

/* The number of leading ASCII digits among the 8 bytes of w (8 if all are). */
static inline __attribute__((always_inline)) int digit_run(uint64_t w)
{
    uint64_t nd = ((w - ONES * '0') | (w + ONES * 0x46) | w) & HIGHS;
    return nd ? __builtin_ctzll(nd) >> 3 : 8;
}

/* The value of the first k (1..8) digits of w, without a branch: the digits are shifted to the
 * top (zeros come in as leading zeros) and combined pairwise, then by fours, then by eights. */
static inline __attribute__((always_inline)) uint64_t digits_value(uint64_t w, int k)
{
    w &= UINT64_C(0x0F0F0F0F0F0F0F0F);
    w <<= 8 * (8 - k);
    w = (w * 10 + (w >> 8)) & UINT64_C(0x00FF00FF00FF00FF);
    w = (w * 100 + (w >> 16)) & UINT64_C(0x0000FFFF0000FFFF);
    return (w * 10000 + (w >> 32)) & UINT64_C(0xFFFFFFFF);
}

static const char *parse_ip6(const char *p, const char *end, weft_logs_rec_t *r)
{
    char buf[48];
    size_t n = 0;
    bool colon = false;
    while (p + n < end && is_ip6_char(p[n])) {
        if (n == 45) return NULL;
        colon |= p[n] == ':';
        buf[n] = p[n];
        n++;
    }
    if (!colon) return NULL;
    buf[n] = '\0';
    if (inet_pton(AF_INET6, buf, r->ip6) != 1) return NULL;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(r->ip6, mapped, 12) == 0) { /* ::ffff:a.b.c.d counts as the IPv4 client */
        r->family = 4;
        r->ip4 = (uint32_t)r->ip6[12] << 24 | (uint32_t)r->ip6[13] << 16 |
                 (uint32_t)r->ip6[14] << 8 | r->ip6[15];
    } else {
        r->family = 6;
        r->ip6_text = p;
        r->ip6_text_len = n;
    }
    return p + n;
}

/* Dotted-quad IPv4 exactly as inet_pton accepts it (no leading zeros); anything else is tried
 * as IPv6. */
static inline __attribute__((always_inline)) const char *parse_ip(const char *p, const char *end,
                                                                  weft_logs_rec_t *r)
{
    const char *s = p;
    uint32_t ip = 0;
    if (end - p >= 24) { /* eight bytes at a time: no branch depends on the octets' lengths */
        for (int part = 0; part < 4; part++) {
            uint64_t w = tools_load_le64(p);
            int k = digit_run(w);
            if (k == 0 || k > 3 || (k > 1 && *p == '0')) return parse_ip6(s, end, r);
            uint64_t v = digits_value(w, k);
            if (v > 255) return parse_ip6(s, end, r);
            ip = ip << 8 | (uint32_t)v;
            p += k;
            if (part < 3 && *p++ != '.') return parse_ip6(s, end, r);
        }
        if (is_ip6_char(*p)) return parse_ip6(s, end, r);
        r->family = 4;
        r->ip4 = ip;
        return p;
    }
    for (int part = 0;; part++) {
        if (p == end || !is_digit(*p)) return parse_ip6(s, end, r);
        unsigned v = (unsigned)(*p++ - '0');
        if (p < end && is_digit(*p)) {
            if (v == 0) return parse_ip6(s, end, r);
            v = v * 10 + (unsigned)(*p++ - '0');
            if (p < end && is_digit(*p)) {
                v = v * 10 + (unsigned)(*p++ - '0');
                if (v > 255) return parse_ip6(s, end, r);
            }
        }
        ip = ip << 8 | v;
        if (part == 3) break;
        if (p == end || *p != '.') return parse_ip6(s, end, r);
        p++;
    }
    if (p < end && is_ip6_char(*p)) return parse_ip6(s, end, r);
    r->family = 4;
    r->ip4 = ip;
    return p;
}

/* The closing double quote of a field starting at `p`, skipping backslash-escaped quotes;
 * NULL if the line ends first. */
static inline const char *find_quote(const char *start, const char *p, const char *end)
{
    for (;;) {
        const char *q = find2(p, end, '"', '\n');
        if (q == end || *q == '\n') return NULL;
        size_t bs = 0;
        while (q - bs > start && q[-1 - (ptrdiff_t)bs] == '\\') bs++;
        if (!(bs & 1)) return q;
        p = q + 1;
    }
}

/* The end of a variable's text: the closing quote, the delimiter, or the end of the line (then
 * without a '\r' that ends it). NULL when the line ends before the delimiter. */
static inline const char *field_end(const weft_logs_op_t *op, const char *p, const char *end)
{
    if (op->quoted) return find_quote(p, p, end);
    if (!op->delim) {
        const char *e = find2(p, end, '\n', '\n');
        if (e > p && e[-1] == '\r') e--;
        return e;
    }
    const char *e = find2(p, end, (char)op->delim, '\n');
    return e < end && *e == (char)op->delim ? e : NULL;
}

static inline void set_path(weft_logs_rec_t *r, const char *t, const char *te)
{
    if (te <= t) return;
    const char *q = memchr(t, '?', (size_t)(te - t));
    if (q) te = q;
    if (te > t) {
        r->path = t;
        r->path_len = (size_t)(te - t);
    }
}

/* 1 to 19 decimal digits at p: stores their value and returns their end, else NULL. */
static inline const char *parse_count(const char *p, const char *end, uint64_t *out)
{
    uint64_t v = 0;
    int n = 0;
    while (p < end && is_digit(*p)) {
        if (++n > 19) return NULL;
        v = v * 10 + (uint64_t)(*p++ - '0');
    }
    if (n == 0) return NULL;
    *out = v;
    return p;
}

/* In a request "METHOD SP TARGET [SP PROTOCOL]", `m` is just past METHOD: when a space follows,
 * records TARGET up to '?' (find_path_end) as the path and returns its end, else returns m. */
static inline __attribute__((always_inline)) const char *
request_target(const char *m, const char *end, weft_logs_rec_t *r)
{
    if (m == end || *m != ' ') return m;
    const char *t = m + 1, *te = find_path_end(t, end);
    if (te > t) {
        r->path = t;
        r->path_len = (size_t)(te - t);
    }
    return te;
}

/* In a request "METHOD SP TARGET [SP PROTOCOL]" from `s` to its closing quote `q`, where `m`
 * ends METHOD and `te` ends TARGET's path (request_target): borrows the method (when a target
 * follows it) and the protocol (the last word, when it starts after the path). */
static inline __attribute__((always_inline)) void
request_words(const char *s, const char *m, const char *te, const char *q, weft_logs_rec_t *r)
{
    if (te == m) return; /* no target */
    if (m > s) {
        r->method = s;
        r->method_len = (size_t)(m - s);
    }
    const char *x = q;
    if (q - te >= 9 && q[-9] == ' ' && !eq_bytes(tools_load_le64(q - 8), ONES * ' '))
        x = q - 8; /* the usual "HTTP/1.1" */
    else
        while (x > te && x[-1] != ' ') x--;
    if (x > te && x < q) {
        r->protocol = x;
        r->protocol_len = (size_t)(q - x);
    }
}

/* Clears the fields a line may not set. */
static inline __attribute__((always_inline)) void rec_reset(weft_logs_rec_t *r)
{
    r->path = NULL;
    r->path_len = 0;
    r->rt_us = -1;
    r->bytes = 0;
    r->minute = 0;
    r->date = 0;
    r->utc_off_min = 0;
    r->method = r->protocol = r->vhost = r->referrer = r->user_agent = NULL;
    r->method_len = r->protocol_len = r->vhost_len = r->referrer_len = r->user_agent_len = 0;
}

static inline int two(const char *p)
{
    return (p[0] - '0') * 10 + (p[1] - '0');
}

/* The month named at p (3 bytes): 1..12, or 0 when it is not a month. */
static inline int month_num(const char *p)
{
    switch ((uint32_t)(unsigned char)p[0] << 16 | (uint32_t)(unsigned char)p[1] << 8 |
            (unsigned char)p[2]) {
    case 'J' << 16 | 'a' << 8 | 'n':
        return 1;
    case 'F' << 16 | 'e' << 8 | 'b':
        return 2;
    case 'M' << 16 | 'a' << 8 | 'r':
        return 3;
    case 'A' << 16 | 'p' << 8 | 'r':
        return 4;
    case 'M' << 16 | 'a' << 8 | 'y':
        return 5;
    case 'J' << 16 | 'u' << 8 | 'n':
        return 6;
    case 'J' << 16 | 'u' << 8 | 'l':
        return 7;
    case 'A' << 16 | 'u' << 8 | 'g':
        return 8;
    case 'S' << 16 | 'e' << 8 | 'p':
        return 9;
    case 'O' << 16 | 'c' << 8 | 't':
        return 10;
    case 'N' << 16 | 'o' << 8 | 'v':
        return 11;
    case 'D' << 16 | 'e' << 8 | 'c':
        return 12;
    default:
        return 0;
    }
}

/* The time fields of a record from the (checked) numbers of a timestamp. */
static inline __attribute__((always_inline)) void
set_time(weft_logs_rec_t *r, int y, int mon, int d, int h, int mi, int sign, int oh, int om)
{
    r->hour = h;
    r->minute = mi;
    r->date = WEFT_LOGS_DATE(y, mon, d);
    r->utc_off_min = sign * (oh * 60 + om);
}

/* True if every byte of w selected by `digits` is an ASCII digit (SWAR: a byte b is a digit iff
 * neither b - '0' nor b + 0x46 sets its high bit; unselected bytes are forced to '0'). */
static inline bool digits_at(uint64_t w, uint64_t digits)
{
    w = (w & digits) | (UINT64_C(0x3030303030303030) & ~digits);
    return (((w - UINT64_C(0x3030303030303030)) | (w + UINT64_C(0x4646464646464646)) | w) &
            HIGHS) == 0;
}

#define B(i, c) ((uint64_t)(unsigned char)(c) << (8 * (i)))
#define M(i) B(i, 0xff)

/* The same check as parse_time_local, on eight bytes at a time. */
static inline __attribute__((always_inline)) const char *
parse_time_local_swar(const char *p, const char *end, weft_logs_rec_t *r)
{
    if (end - p < 26) return NULL;
    uint64_t a = tools_load_le64(p), b = tools_load_le64(p + 8), c = tools_load_le64(p + 16),
             d = tools_load_le64(p + 18);
    /* 15/Jan/2 | 025:10:3 | 0:45 +08 | 45 +0800 */
    if ((a & (M(2) | M(6))) != (B(2, '/') | B(6, '/')) ||
        (b & (M(3) | M(6))) != (B(3, ':') | B(6, ':')) ||
        (c & (M(1) | M(4))) != (B(1, ':') | B(4, ' ')) || (p[21] != '+' && p[21] != '-'))
        return NULL;
    if (!digits_at(a, M(0) | M(1) | M(7)) ||
        !digits_at(b, M(0) | M(1) | M(2) | M(4) | M(5) | M(7)) ||
        !digits_at(c, M(0) | M(2) | M(3) | M(6) | M(7)) || !digits_at(d, M(6) | M(7)))
        return NULL;
    int day = two(p), h = two(p + 12), mon = month_num(p + 3);
    if (!mon || day < 1 || day > 31 || h > 23 || two(p + 15) > 59 || two(p + 18) > 60) return NULL;
    set_time(r, two(p + 7) * 100 + two(p + 9), mon, day, h, two(p + 15), p[21] == '-' ? -1 : 1,
             two(p + 22), two(p + 24));
    return p + 26;
}

/* 15/Jan/2025:10:30:45 +0800 */
static inline const char *parse_time_local(const char *p, const char *end, weft_logs_rec_t *r)
{
    if (end - p < 26) return NULL;
    if (p[2] != '/' || p[6] != '/' || p[11] != ':' || p[14] != ':' || p[17] != ':' ||
        p[20] != ' ' || (p[21] != '+' && p[21] != '-'))
        return NULL;
    static const int digits[] = {0, 1, 7, 8, 9, 10, 12, 13, 15, 16, 18, 19, 22, 23, 24, 25};
    for (size_t i = 0; i < sizeof digits / sizeof digits[0]; i++)
        if (!is_digit(p[digits[i]])) return NULL;
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    int month = 0;
    for (int m = 0; m < 12 && !month; m++)
        if (p[3] == months[3 * m] && p[4] == months[3 * m + 1] && p[5] == months[3 * m + 2])
            month = m + 1;
    int day = two(p), h = two(p + 12);
    if (!month || day < 1 || day > 31 || h > 23 || two(p + 15) > 59 || two(p + 18) > 60)
        return NULL;
    set_time(r, two(p + 7) * 100 + two(p + 9), month, day, h, two(p + 15), p[21] == '-' ? -1 : 1,
             two(p + 22), two(p + 24));
    return p + 26;
}

/* 2025-01-15T10:30:45+08:00 */
static inline const char *parse_time_iso(const char *p, const char *end, weft_logs_rec_t *r)
{
    if (end - p < 25) return NULL;
    if (p[4] != '-' || p[7] != '-' || p[10] != 'T' || p[13] != ':' || p[16] != ':' ||
        (p[19] != '+' && p[19] != '-') || p[22] != ':')
        return NULL;
    static const int digits[] = {0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 23, 24};
    for (size_t i = 0; i < sizeof digits / sizeof digits[0]; i++)
        if (!is_digit(p[digits[i]])) return NULL;
    int mon = two(p + 5), day = two(p + 8), h = two(p + 11);
    if (mon < 1 || mon > 12 || day < 1 || day > 31 || h > 23 || two(p + 14) > 59 ||
        two(p + 17) > 60)
        return NULL;
    set_time(r, two(p) * 100 + two(p + 2), mon, day, h, two(p + 14), p[19] == '-' ? -1 : 1,
             two(p + 20), two(p + 23));
    return p + 25;
}

/* Seconds as written by nginx ("0.052", "12", "3.000123"): integer microseconds, extra
 * fraction digits truncated. At most 6 integer digits. "-" means no value. */
static inline const char *parse_rt(const char *p, const char *end, int64_t *us)
{
    if (p < end && *p == '-') {
        *us = -1;
        return p + 1;
    }
    int64_t s = 0;
    int n = 0;
    while (p < end && is_digit(*p)) {
        if (++n > 6) return NULL;
        s = s * 10 + (*p++ - '0');
    }
    if (n == 0) return NULL;
    int64_t frac = 0;
    int fd = 0;
    if (p < end && *p == '.') {
        p++;
        while (p < end && is_digit(*p)) {
            if (fd < 6) frac = frac * 10 + (*p - '0');
            fd++;
            p++;
        }
        if (fd == 0) return NULL;
    }
    static const int64_t scale[] = {1000000, 100000, 10000, 1000, 100, 10, 1};
    *us = s * 1000000 + frac * scale[fd < 6 ? fd : 6];
    return p;
}

/* The end of a line after its last field: blanks, then the end of the line, or, after at least
 * one blank, more fields that no operation reads (nginx's $upstream_response_time after
 * $request_time, as GoAccess accepts them). Returns the '\r' or '\n' that ends the line (or
 * `end`), NULL when the last field runs into other text ("0.052x"). */
static const char *line_rest(const char *p, const char *end)
{
    const char *b = p;
    while (p < end && (*p == ' ' || *p == '\t')) p++;
    if (p == end || *p == '\n' || (*p == '\r' && (p + 1 == end || p[1] == '\n'))) return p;
    if (p == b) return NULL;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *e = nl ? nl : end;
    return e > p && e[-1] == '\r' ? e - 1 : e;
}

/* ---- weft's own variables (format-int.h), for the presets and translated formats ---------- */

static inline bool all_digits(const char *p, int n)
{
    for (int i = 0; i < n; i++)
        if (!is_digit(p[i])) return false;
    return true;
}

/* W3C's date field: 2019-12-04. */
static const char *parse_date_ymd(const char *p, const char *end, weft_logs_rec_t *r)
{
    if (end - p < 10 || p[4] != '-' || p[7] != '-' || !all_digits(p, 4) || !all_digits(p + 5, 2) ||
        !all_digits(p + 8, 2))
        return NULL;
    int mon = two(p + 5), day = two(p + 8);
    if (mon < 1 || mon > 12 || day < 1 || day > 31) return NULL;
    r->date = WEFT_LOGS_DATE(two(p) * 100 + two(p + 2), mon, day);
    return p + 10;
}

/* W3C's time field: 21:02:31. */
static const char *parse_hms(const char *p, const char *end, weft_logs_rec_t *r)
{
    if (end - p < 8 || p[2] != ':' || p[5] != ':' || !all_digits(p, 2) || !all_digits(p + 3, 2) ||
        !all_digits(p + 6, 2))
        return NULL;
    int h = two(p), mi = two(p + 3);
    if (h > 23 || mi > 59 || two(p + 6) > 60) return NULL;
    r->hour = h;
    r->minute = mi;
    return p + 8;
}

/* ELB's time: 2015-05-13T23:39:43.945958Z (a fraction of any length; Z or +hh:mm). */
static const char *parse_time_isoz(const char *p, const char *end, weft_logs_rec_t *r)
{
    p = parse_date_ymd(p, end, r);
    if (!p || p == end || *p != 'T' || !(p = parse_hms(p + 1, end, r))) return NULL;
    if (p < end && *p == '.') {
        const char *d = ++p;
        while (p < end && is_digit(*p)) p++;
        if (p == d) return NULL;
    }
    if (p < end && *p == 'Z') return p + 1;
    if (end - p >= 6 && (*p == '+' || *p == '-') && all_digits(p + 1, 2) && p[3] == ':' &&
        all_digits(p + 4, 2)) {
        r->utc_off_min = (*p == '-' ? -1 : 1) * (two(p + 1) * 60 + two(p + 4));
        return p + 6;
    }
    return NULL;
}

/* A whole number of `unit_us` microseconds (at most 12 digits), or "-" for none. */
static const char *parse_int_time(const char *p, const char *end, int64_t unit_us, int64_t *us)
{
    if (p < end && *p == '-') {
        *us = -1;
        return p + 1;
    }
    uint64_t v;
    const char *e = parse_count(p, end, &v);
    if (!e || e - p > 12) return NULL;
    *us = (int64_t)v * unit_us;
    return e;
}

/* ELB's client:port: IPv4:port, [IPv6]:port or IPv6:port (the last colon ends the address),
 * up to the op's delimiter. */
static const char *parse_ipport(const weft_logs_op_t *op, const char *p, const char *end,
                                weft_logs_rec_t *r)
{
    const char *e = field_end(op, p, end), *c = e;
    if (!e) return NULL;
    while (c > p && c[-1] != ':') c--;
    if (c <= p + 1 || c == e || !all_digits(c, (int)(e - c))) return NULL;
    const char *a = p, *ae = c - 1;
    if (*a == '[' && ae - a >= 2 && ae[-1] == ']') {
        a++;
        ae--;
    }
    return parse_ip(a, ae, r) == ae ? e : NULL;
}

const char *weft_logs__parse_ip(const char *p, const char *end, weft_logs_rec_t *r)
{
    return parse_ip(p, end, r);
}

const char *weft_logs__parse_rt(const char *p, const char *end, int64_t *us)
{
    return parse_rt(p, end, us);
}

const char *weft_logs__parse_time_isoz(const char *p, const char *end, weft_logs_rec_t *r)
{
    return parse_time_isoz(p, end, r);
}

/* The presets, in straight-line code: the same checks as the interpreter performs for their
 * operation lists (the fuzz target compares the two), without the dispatch. */
static const char *parse_fast(const weft_logs_format_t *f, const char *p, const char *end,
                              weft_logs_rec_t *r)
{
    rec_reset(r);
    p = parse_ip(p, end, r);
    if (!p || p == end || *p != ' ') return NULL;
    p++;
    for (int k = 0; k < 2; k++) { /* $ident $remote_user, usually "-" */
        if (end - p >= 2 && p[0] == '-' && p[1] == ' ') {
            p += 2;
            continue;
        }
        p = find2(p, end, ' ', '\n');
        if (p == end || *p != ' ') return NULL;
        p++;
    }
    if (p == end || *p != '[') return NULL;
    p = parse_time_local_swar(p + 1, end, r);
    if (!p || end - p < 3 || p[0] != ']' || p[1] != ' ' || p[2] != '"') return NULL;
    p += 3;
    const char *s = p, *m = p;
    uint64_t hit = end - p >= 8 ? eq_bytes(tools_load_le64(p), ONES * ' ') |
                                      eq_bytes(tools_load_le64(p), ONES * '"') |
                                      eq_bytes(tools_load_le64(p), ONES * '\n')
                                : 0;
    if (hit)
        m = p + (__builtin_ctzll(hit) >> 3);
    else
        while (m < end && *m != ' ' && *m != '"' && *m != '\n') m++;
    const char *te = request_target(m, end, r);
    p = find_quote(s, te, end);
    if (!p || end - p < 6 || p[1] != ' ') return NULL;
    request_words(s, m, te, p, r);
    p += 2;
    if (p[0] < '1' || p[0] > '9' || !is_digit(p[1]) || !is_digit(p[2]) || p[3] != ' ') return NULL;
    r->status = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
    p += 4;
    int k;
    if (p < end && *p == '-') {
        p++;
    } else if (end - p >= 8 && (k = digit_run(tools_load_le64(p))) < 8) {
        if (k == 0) return NULL;
        r->bytes = digits_value(tools_load_le64(p), k);
        p += k;
    } else if (!(p = parse_count(p, end, &r->bytes))) {
        return NULL;
    }
    if (f->fast >= 3) { /* combined: "$http_referer" "$http_user_agent" */
        if (end - p < 2 || p[0] != ' ' || p[1] != '"') return NULL;
        r->referrer = p + 2;
        p = find_quote(p + 2, p + 2, end);
        if (!p || end - p < 3 || p[1] != ' ' || p[2] != '"') return NULL;
        r->referrer_len = (size_t)(p - r->referrer);
        r->user_agent = p + 3;
        p = find_quote(p + 3, p + 3, end);
        if (!p) return NULL;
        r->user_agent_len = (size_t)(p - r->user_agent);
        p++;
    }
    if (f->fast != 2 && f->fast != 3) { /* $request_time */
        if (p == end || *p != ' ') return NULL;
        p++;
        int ki, kf;
        if (end - p >= 16 && (ki = digit_run(tools_load_le64(p))) >= 1 && ki <= 6 && p[ki] == '.' &&
            (kf = digit_run(tools_load_le64(p + ki + 1))) >= 1 && kf <= 6) { /* the usual 0.052 */
            static const int64_t scale[] = {1, 100000, 10000, 1000, 100, 10, 1};
            r->rt_us = (int64_t)digits_value(tools_load_le64(p), ki) * 1000000 +
                       (int64_t)digits_value(tools_load_le64(p + ki + 1), kf) * scale[kf];
            p += ki + 1 + kf;
        } else if (!(p = parse_rt(p, end, &r->rt_us))) {
            return NULL;
        }
    }
    return line_rest(p, end);
}

/* ---- the presets with AVX2 ---------------------------------------------------------------------
 *
 * The common case of a preset line, 32 bytes at a time: the address from its dot positions (a
 * shuffle table puts each octet's digits in a 32-bit lane, one multiply-add per lane), the
 * timestamp checked against a template in one compare, the request's fields found with byte
 * masks, the numbers with the SWAR helpers. It only accepts: on anything unusual (IPv6, a long
 * user name, escapes, a number of unusual length, trailing blanks) or within 64 bytes of `end`
 * it returns NULL and parse_fast() decides, so a line it accepts gets exactly parse_fast()'s
 * result (the fuzz target compares both with the interpreter). Selected at run time. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define HAVE_AVX2 1
#define AVX2 __attribute__((target("avx2,bmi,bmi2")))
#define AVX2_INLINE static inline __attribute__((target("avx2,bmi,bmi2"), always_inline))

static bool use_avx2; /* written once by a constructor, before any thread exists */

__attribute__((constructor)) static void detect_avx2(void)
{
    __builtin_cpu_init();
    use_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi") &&
               __builtin_cpu_supports("bmi2");
}

/* Shuffle controls for an address whose octets have 1..3 digits: lane i (4 bytes) receives
 * octet i right-aligned after a zero byte, e.g. "10.0.0.1" -> 0 0 '1' '0' | 0 0 0 '0' | ... */
#define IP_LANE(s, k) 0x80, (k) >= 3 ? (s) : 0x80, (k) >= 2 ? (s) + (k)-2 : 0x80, (s) + (k)-1
#define IP_SHUF(a, b, c, d)                                                                        \
    {                                                                                              \
        IP_LANE(0, a), IP_LANE((a) + 1, b), IP_LANE((a) + (b) + 2, c),                             \
            IP_LANE((a) + (b) + (c) + 3, d)                                                        \
    }
#define IP_SHUF3(a, b, c) IP_SHUF(a, b, c, 1), IP_SHUF(a, b, c, 2), IP_SHUF(a, b, c, 3)
#define IP_SHUF2(a, b) IP_SHUF3(a, b, 1), IP_SHUF3(a, b, 2), IP_SHUF3(a, b, 3)
#define IP_SHUF1(a) IP_SHUF2(a, 1), IP_SHUF2(a, 2), IP_SHUF2(a, 3)
static const uint8_t ip_shuf[81][16]
    __attribute__((aligned(16))) = {IP_SHUF1(1), IP_SHUF1(2), IP_SHUF1(3)};

/* The valid dot patterns of an address: bit i set for a dot at i and for the space that ends it,
 * hashed perfectly into 256 slots (the multiplier was found by search; a collision would be a
 * duplicate initializer, which -Woverride-init reports). Each slot holds its pattern and the
 * index of its shuffle control. */
#define IP_PAT(a, b, c, d)                                                                         \
    (1u << (a) | 1u << ((a) + (b) + 1) | 1u << ((a) + (b) + (c) + 2) |                             \
     1u << ((a) + (b) + (c) + (d) + 3))
#define IP_HASH(pat) ((uint32_t)((pat)*9279515u) >> 24)
#define IP_ENTRY(a, b, c, d)                                                                       \
    [IP_HASH(IP_PAT(a, b, c, d))] = {IP_PAT(a, b, c, d),                                           \
                                     ((a)-1) * 27 + ((b)-1) * 9 + ((c)-1) * 3 + (d)-1}
#define IP_ENTRY3(a, b, c) IP_ENTRY(a, b, c, 1), IP_ENTRY(a, b, c, 2), IP_ENTRY(a, b, c, 3)
#define IP_ENTRY2(a, b) IP_ENTRY3(a, b, 1), IP_ENTRY3(a, b, 2), IP_ENTRY3(a, b, 3)
#define IP_ENTRY1(a) IP_ENTRY2(a, 1), IP_ENTRY2(a, 2), IP_ENTRY2(a, 3)
static const struct {
    uint16_t pat;
    uint8_t shuf;
} ip_pats[256] = {IP_ENTRY1(1), IP_ENTRY1(2), IP_ENTRY1(3)};

#define BC(c) (long long)(UINT64_C(0x0101010101010101) * (unsigned char)(c))
#define BCAST(c)                                                                                   \
    {                                                                                              \
        BC(c), BC(c), BC(c), BC(c)                                                                 \
    }
/* For one shuffle: the byte whose low nibble is the index, among ' ', '"', '\n' and '?' (whose
 * low nibbles differ); v equals its lookup exactly when v is one of them. */
#define STOPS                                                                                      \
    (long long)(' ' | '"' << 16 | UINT64_C(0) << 32), (long long)('\n' << 16 | (uint64_t)'?' << 56)
/* The numbers after the request, from the status's first digit: " 200 1234 0.052" is at
 * 0..2 (status), 4..3+k (size, k digits, or "-" as k = 0) and 5+L, 7+L..9+L (the response time
 * when it is "D.DDD"; L = max(k, 1)). One shuffle puts the size right-aligned in bytes 0..7,
 * the status in 9..11 and the time's four digits in 12..15: multiply-adds by 10 then 100 give
 * the size's two halves, the status and the time in milliseconds. For k <= 6. */
#define TS_A(k, j) ((j) >= 8 - (k) ? 4 + (j) - (8 - (k)) : 0x80)
#define TS(k, L)                                                                                   \
    {                                                                                              \
        TS_A(k, 0), TS_A(k, 1), TS_A(k, 2), TS_A(k, 3), TS_A(k, 4), TS_A(k, 5), TS_A(k, 6),        \
            TS_A(k, 7), 0x80, 0, 1, 2, 5 + (L), 7 + (L), 8 + (L), 9 + (L)                          \
    }
static const uint8_t tail_shuf[7][16] __attribute__((aligned(16))) = {
    TS(0, 1), TS(1, 1), TS(2, 2), TS(3, 3), TS(4, 4), TS(5, 5), TS(6, 6)};

#define BC32(x) (long long)((uint64_t)(uint32_t)(x) << 32 | (uint32_t)(x))
static const struct avx2_consts {
    __m256i sp, qt, nl, dot, zero, nine, stops;
    __m128i ip_weights, ones16, ip_pack; /* see the address below */
    __m128i tens, hundreds;              /* byte pairs (10, 1), word pairs (100, 1) */
    /* the timestamp's two-digit fields as 16-bit lanes (see below): upper bounds, lower bound */
    __m256i tens256, ts_max1, ts_max2, ts_min2;
} avx2_consts = {
    BCAST(' '),
    BCAST('"'),
    BCAST('\n'),
    BCAST('.'),
    BCAST('0'),
    BCAST(9),
    {STOPS, STOPS},
    {BC32(0x010A6400), BC32(0x010A6400)},
    {BC32(0x00010001), BC32(0x00010001)},
    {(long long)0xFFFFFFFF0004080CULL, -1},
    {0x010A010A010A010ALL, 0x010A010A010A010ALL},
    {BC32(0x00010064), BC32(0x00010064)},
    {0x010A010A010A010ALL, 0x010A010A010A010ALL, 0x010A010A010A010ALL, 0x010A010A010A010ALL},
    /* minutes <= 59 (lane 8); day <= 31 (lane 0), hour <= 23 (6), second <= 60
     * (9); day >= 1 (lane 0); the other lanes never compare */
    {0x7FFF7FFF7FFF7FFFLL, 0x7FFF7FFF7FFF7FFFLL, 0x7FFF7FFF7FFF003BLL, 0x7FFF7FFF7FFF7FFFLL},
    {0x7FFF7FFF7FFF001FLL, 0x7FFF00177FFF7FFFLL, 0x7FFF7FFF003C7FFFLL, 0x7FFF7FFF7FFF7FFFLL},
    {(long long)0x8000800080000001ULL, (long long)0x8000800080008000ULL,
     (long long)0x8000800080008000ULL, (long long)0x8000800080008000ULL}};

/* "/Mon" as a little-endian 32-bit word, and a perfect hash of the twelve into 16 slots. */
#define MON(a, b, c)                                                                               \
    ((uint32_t)'/' | (uint32_t)(a) << 8 | (uint32_t)(b) << 16 | (uint32_t)(c) << 24)
#define MON_SLOT(w) ((uint32_t)((w)*727u) >> 28)
#define MON_ENTRY(a, b, c) [MON_SLOT(MON(a, b, c))] = MON(a, b, c)
#define MON_NUM(a, b, c, n) [MON_SLOT(MON(a, b, c))] = n
static const uint32_t months[16] = {
    MON_ENTRY('J', 'a', 'n'), MON_ENTRY('F', 'e', 'b'), MON_ENTRY('M', 'a', 'r'),
    MON_ENTRY('A', 'p', 'r'), MON_ENTRY('M', 'a', 'y'), MON_ENTRY('J', 'u', 'n'),
    MON_ENTRY('J', 'u', 'l'), MON_ENTRY('A', 'u', 'g'), MON_ENTRY('S', 'e', 'p'),
    MON_ENTRY('O', 'c', 't'), MON_ENTRY('N', 'o', 'v'), MON_ENTRY('D', 'e', 'c'),
};
static const uint8_t month_nums[16] = {
    MON_NUM('J', 'a', 'n', 1),  MON_NUM('F', 'e', 'b', 2),  MON_NUM('M', 'a', 'r', 3),
    MON_NUM('A', 'p', 'r', 4),  MON_NUM('M', 'a', 'y', 5),  MON_NUM('J', 'u', 'n', 6),
    MON_NUM('J', 'u', 'l', 7),  MON_NUM('A', 'u', 'g', 8),  MON_NUM('S', 'e', 'p', 9),
    MON_NUM('O', 'c', 't', 10), MON_NUM('N', 'o', 'v', 11), MON_NUM('D', 'e', 'c', 12),
};

AVX2_INLINE __m256i load32(const char *p)
{
    return _mm256_loadu_si256((const __m256i *)(const void *)p);
}

AVX2_INLINE uint32_t eq32(__m256i v, __m256i c)
{
    return (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, c));
}

AVX2_INLINE uint64_t eq64(__m256i lo, __m256i hi, __m256i clo, __m256i chi)
{
    return eq32(lo, clo) | (uint64_t)eq32(hi, chi) << 32;
}

/* The bytes of v that are ASCII digits, given '0' and 9 broadcast. */
AVX2_INLINE uint32_t digits32(__m256i v, __m256i zero, __m256i nine)
{
    __m256i x = _mm256_sub_epi8(v, zero);
    return eq32(_mm256_min_epu8(x, nine), x);
}

AVX2_INLINE int dig(char c)
{
    return c - '0';
}

/* The first '"' or '\n' at or after q, 32 bytes at a time; NULL when the search would come
 * within 32 bytes of end. */
AVX2_INLINE const char *find_quote_nl(const char *q, const char *end, __m256i qt, __m256i nl)
{
    for (; end - q >= 32; q += 32) {
        __m256i v = load32(q);
        uint32_t m = (uint32_t)_mm256_movemask_epi8(
            _mm256_or_si256(_mm256_cmpeq_epi8(v, qt), _mm256_cmpeq_epi8(v, nl)));
        if (m) return q + _tzcnt_u32(m);
    }
    return NULL;
}

/* The closing quote of a quoted field, when no backslash precedes it and 32 bytes follow it (so
 * that the caller may read on); NULL otherwise. */
AVX2_INLINE const char *quote_avx2(const char *q, const char *end, __m256i qt, __m256i nl)
{
    const char *e = find_quote_nl(q, end, qt, nl);
    return e && *e == '"' && e[-1] != '\\' && end - e >= 32 ? e : NULL;
}

/* An IPv4 address at p (a: its first 32 bytes, sp: their spaces): 7..15 digits and dots up to
 * the first space, the dots in a valid pattern, no leading zero, no octet above 255. */
AVX2_INLINE bool ip4_avx2(__m256i a, uint32_t sp, weft_logs_rec_t *r, const struct avx2_consts *K)
{
    unsigned n = _tzcnt_u32(sp);
    if (n > 15) return false;
    uint32_t low = (1u << n) - 1, dots = eq32(a, K->dot) & low;
    uint32_t dg = digits32(a, K->zero, K->nine), pat = dots | 1u << n;
    if (((dots | dg) & low) != low || ip_pats[IP_HASH(pat)].pat != pat) return false;
    if (eq32(a, K->zero) & (dots << 1 | 1) & dg >> 1) return false; /* a leading zero */
    __m128i d = _mm_sub_epi8(_mm256_castsi256_si128(a), _mm256_castsi256_si128(K->zero));
    d = _mm_shuffle_epi8(
        d, _mm_load_si128((const __m128i *)(const void *)ip_shuf[ip_pats[IP_HASH(pat)].shuf]));
    /* per lane 0*0 + 100*h | 10*t + u, then the two halves added; above 255 is refused */
    d = _mm_madd_epi16(_mm_maddubs_epi16(d, K->ip_weights), K->ones16);
    __m128i over = _mm_srli_epi32(d, 8);
    if (!_mm_testz_si128(over, over)) return false;
    d = _mm_shuffle_epi8(d, K->ip_pack); /* the four octets, first one highest */
    r->family = 4;
    r->ip4 = (uint32_t)_mm_cvtsi128_si32(d);
    return true;
}

/* `fast`: fast, passed separately so that each preset gets its own copy of this code. */
AVX2_INLINE const char *parse_avx2(int fast, const char *p, const char *end, weft_logs_rec_t *r,
                                   const struct avx2_consts *K)
{
    if (end - p < 64) return NULL;
    __m256i a = load32(p);
    uint32_t sp = eq32(a, K->sp);
    if (__builtin_expect(!ip4_avx2(a, sp, r, K), 0)) {
        /* Anything else is what parse_ip() would then try: IPv6 (also ::ffff:a.b.c.d). */
        const char *e = parse_ip6(p, end, r);
        if (!e || end - e < 64 || *e != ' ') return NULL;
        p = e; /* sp then has the space after the address in bit 0, as below */
        a = load32(p);
        sp = eq32(a, K->sp);
    }

    /* $ident $remote_user: up to the next two spaces, no newline before them. */
    uint32_t s = _blsr_u32(_blsr_u32(sp));
    if (!s || (eq32(a, K->nl) & _blsmsk_u32(s))) return NULL;
    const char *b = p + _tzcnt_u32(s) + 1; /* '[' */

    /* [15/Jan/2025:10:30:45 +0800] " against a template; the fields' ranges as text. */
    __m256i v = load32(b);
    const __m256i plus =
        _mm256_setr_epi8('[', 0, 0, '/', 0, 0, 0, '/', 0, 0, 0, 0, ':', 0, 0, ':', 0, 0, ':', 0, 0,
                         ' ', '+', 0, 0, 0, 0, ']', ' ', '"', 0, 0);
    const __m256i minus =
        _mm256_setr_epi8('[', 0, 0, '/', 0, 0, 0, '/', 0, 0, 0, 0, ':', 0, 0, ':', 0, 0, ':', 0, 0,
                         ' ', '-', 0, 0, 0, 0, ']', ' ', '"', 0, 0);
    uint32_t lit = (uint32_t)_mm256_movemask_epi8(
        _mm256_or_si256(_mm256_cmpeq_epi8(v, plus), _mm256_cmpeq_epi8(v, minus)));
    const uint32_t litm = 1u << 0 | 1u << 3 | 1u << 7 | 1u << 12 | 1u << 15 | 1u << 18 | 1u << 21 |
                          1u << 22 | 1u << 27 | 1u << 28 | 1u << 29;
    const uint32_t digm = 3u << 1 | 15u << 8 | 3u << 13 | 3u << 16 | 3u << 19 | 15u << 23;
    uint32_t mon;
    memcpy(&mon, b + 3, 4);
    __m256i tx = _mm256_sub_epi8(v, K->zero);
    uint32_t dg = eq32(_mm256_min_epu8(tx, K->nine), tx);
    /* Each field as 10 * tens + units in a 16-bit lane: pairs at even offsets (the minutes, at
     * 16) directly, those at odd ones (day 1, hour 13, second 19) after a one-byte shift. */
    __m256i m1 = _mm256_maddubs_epi16(tx, K->tens256);
    __m256i m2 = _mm256_maddubs_epi16(_mm256_srli_si256(tx, 1), K->tens256);
    __m256i out = _mm256_or_si256(
        _mm256_or_si256(_mm256_cmpgt_epi16(m1, K->ts_max1), _mm256_cmpgt_epi16(m2, K->ts_max2)),
        _mm256_cmpgt_epi16(K->ts_min2, m2));
    if (((lit & litm) | (dg & digm)) != (litm | digm) || months[MON_SLOT(mon)] != mon ||
        !_mm256_testz_si256(out, out))
        return NULL;
    /* m1's 16-bit lanes hold byte pairs 2i, 2i+1 (year 8..11, minute 16), m2's 2i+1, 2i+2 per
     * 128-bit half (day 1, hour 13, offset 23 and 25) */
    set_time(r, _mm256_extract_epi16(m1, 4) * 100 + _mm256_extract_epi16(m1, 5),
             month_nums[MON_SLOT(mon)], _mm256_extract_epi16(m2, 0), _mm256_extract_epi16(m2, 6),
             _mm256_extract_epi16(m1, 8), b[22] == '-' ? -1 : 1, _mm256_extract_epi16(m2, 11),
             _mm256_extract_epi16(m2, 12));

    /* "METHOD PATH[?QUERY] PROTOCOL": the method and the path within the next 64 bytes. */
    const char *rq = b + 30;
    if (end - rq < 64) return NULL;
    __m256i r0 = load32(rq), r1 = load32(rq + 32);
    uint64_t stop = eq64(r0, r1, _mm256_shuffle_epi8(K->stops, r0),
                         _mm256_shuffle_epi8(K->stops, r1)); /* ' ', '"', '\n', '?' */
    unsigned m = (unsigned)_tzcnt_u64(stop);
    if (m > 62 || rq[m] != ' ') return NULL;
    unsigned pe = (unsigned)_tzcnt_u64(stop & ~UINT64_C(1) << m);
    if (pe == m + 1 || pe == 64) return NULL;
    r->path = rq + m + 1;
    r->path_len = pe - m - 1;
    uint64_t qn = (eq64(r0, r1, K->qt, K->qt) | eq64(r0, r1, K->nl, K->nl)) & ~UINT64_C(0) << pe;
    const char *q = qn ? rq + _tzcnt_u64(qn) : find_quote_nl(rq + 64, end, K->qt, K->nl);
    if (!q || *q != '"' || q[-1] == '\\') return NULL;
    r->method = r->protocol = r->vhost = r->referrer = r->user_agent = NULL;
    r->method_len = r->protocol_len = r->vhost_len = r->referrer_len = r->user_agent_len = 0;
    request_words(rq, rq + m, rq + pe, q, r);

    /* " 200 1234", in a window w whose digit mask wd also serves the response time */
    if (end - q < 32) return NULL;
    const char *w = q;
    uint32_t qd = digits32(load32(q), K->zero, K->nine), wd = qd;
    if (q[1] != ' ' || q[2] == '0' || (~qd & 7u << 2) || q[5] != ' ') return NULL;
    unsigned k = _tzcnt_u32(~(qd >> 6)); /* the size's digits; 0 for "-" */
    if (k == 0 && q[6] != '-') return NULL;
    uint32_t ms = UINT32_MAX; /* the default format's "D.DDD" in milliseconds, when known */
    if (k <= 6) {             /* the three numbers at once, see tail_shuf */
        __m128i x = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)(const void *)(q + 2)),
                                 _mm256_castsi256_si128(K->zero));
        x = _mm_shuffle_epi8(x, _mm_load_si128((const __m128i *)(const void *)tail_shuf[k]));
        x = _mm_madd_epi16(_mm_maddubs_epi16(x, K->tens), K->hundreds);
        r->status = _mm_extract_epi32(x, 2);
        r->bytes =
            (uint64_t)(uint32_t)_mm_cvtsi128_si32(x) * 10000 + (uint32_t)_mm_extract_epi32(x, 1);
        ms = (uint32_t)_mm_extract_epi32(x, 3);
    } else {
        if (k > 8) return NULL;
        r->status = dig(q[2]) * 100 + dig(q[3]) * 10 + dig(q[4]);
        r->bytes = digits_value(tools_load_le64(q + 6), (int)k);
    }
    q += 6 + (k ? k : 1);
    if (fast >= 3) { /* "referer" "user agent" */
        const char *rf = q + 2, *ua = q + 2;
        if (q[0] != ' ' || q[1] != '"' || !(q = quote_avx2(rf, end, K->qt, K->nl)) || q[1] != ' ' ||
            q[2] != '"' || !(q = quote_avx2(ua = q + 3, end, K->qt, K->nl)))
            return NULL;
        r->referrer = rf;
        r->referrer_len = (size_t)(ua - 3 - rf);
        r->user_agent = ua;
        r->user_agent_len = (size_t)(q - ua);
        if (end - ++q < 32) return NULL;
        w = q;
        wd = fast == 4 ? digits32(load32(q), K->zero, K->nine) : 0;
    }
    r->rt_us = -1;
    if (fast != 2 && fast != 3) {    /* " 0.052": seconds, 1..6 digits each side */
        uint32_t td = wd >> (q - w); /* q - w <= 14 */
        unsigned ki = _tzcnt_u32(~(td >> 1)), kf;
        if (q[0] != ' ' || ki - 1 > 5 || q[1 + ki] != '.' ||
            (kf = _tzcnt_u32(~(td >> (2 + ki)))) - 1 > 5)
            return NULL;
        if (ki == 1 && kf == 3 && fast == 1 && ms != UINT32_MAX) { /* nginx writes ms */
            r->rt_us = (int64_t)ms * 1000;
        } else {
            static const int64_t scale[] = {1, 100000, 10000, 1000, 100, 10, 1};
            r->rt_us = (int64_t)digits_value(tools_load_le64(q + 1), (int)ki) * 1000000 +
                       (int64_t)digits_value(tools_load_le64(q + 2 + ki), (int)kf) * scale[kf];
        }
        q += 2 + ki + kf;
    }
    if (q[0] == '\n' || (q[0] == '\r' && q[1] == '\n')) return q;
    return NULL;
}

/* The constants through an opaque pointer: gcc then uses them as memory operands instead of
 * rebuilding each broadcast at every use. */
#define AVX2_CONSTS(K)                                                                             \
    const struct avx2_consts *K = &avx2_consts;                                                    \
    __asm__("" : "+r"(K))

static AVX2 const char *parse_one_avx2(const weft_logs_format_t *f, const char *p, const char *end,
                                       weft_logs_rec_t *r)
{
    AVX2_CONSTS(K);
    const char *e = parse_avx2(f->fast, p, end, r, K);
    return e ? e : parse_fast(f, p, end, r);
}

AVX2_INLINE size_t lines_avx2(int fast, const weft_logs_format_t *f, const char **pp,
                              const char *end, weft_logs_rec_t *out, size_t n)
{
    AVX2_CONSTS(K);
    const char *p = *pp;
    size_t i = 0;
    for (; i < n && p < end; i++) {
        const char *e = parse_avx2(fast, p, end, &out[i], K);
        if (__builtin_expect(!e, 0) && !(e = parse_fast(f, p, end, &out[i]))) break;
        if (e < end && *e == '\r') e++;
        p = e < end ? e + 1 : end;
    }
    *pp = p;
    return i;
}

static AVX2 size_t parse_lines_avx2(const weft_logs_format_t *f, const char **pp, const char *end,
                                    weft_logs_rec_t *out, size_t n)
{
    switch (f->fast) { /* one copy per preset, its choices folded */
    case 1:
        return lines_avx2(1, f, pp, end, out, n);
    case 2:
        return lines_avx2(2, f, pp, end, out, n);
    case 3:
        return lines_avx2(3, f, pp, end, out, n);
    default:
        return lines_avx2(4, f, pp, end, out, n);
    }
}
#endif

const char *weft_logs_parse(const weft_logs_format_t *f, const char *p, const char *end,
                            weft_logs_rec_t *r)
{
    if (f->fast) {
#ifdef HAVE_AVX2
        if (use_avx2) return parse_one_avx2(f, p, end, r);
#endif
        return parse_fast(f, p, end, r);
    }
    if (f->kind == WEFT_LOGS_KIND_JSON) return weft_logs__parse_json(p, end, r);
    rec_reset(r);
    const weft_logs_op_t *op = f->ops, *last = f->ops + f->nops;
    for (; op < last; op++) {
        switch (op->kind) {
        case OP_LIT: {
            if ((size_t)(end - p) < op->len) return NULL;
            const char *l = f->lits + op->off;
            for (uint16_t k = 0; k < op->len; k++)
                if (p[k] != l[k]) return NULL;
            p += op->len;
            break;
        }
        case OP_IP:
            p = parse_ip(p, end, r);
            if (!p) return NULL;
            break;
        case OP_SKIP:
            p = field_end(op, p, end);
            if (!p) return NULL;
            break;
        case OP_TIME_LOCAL:
            p = parse_time_local(p, end, r);
            if (!p) return NULL;
            break;
        case OP_TIME_ISO:
            p = parse_time_iso(p, end, r);
            if (!p) return NULL;
            break;
        case OP_REQUEST: {
            /* METHOD SP TARGET [SP PROTOCOL]: the path is TARGET up to '?' */
            const char *s = p, *m = p;
            while (m < end && *m != ' ' && *m != '"' && *m != '\n') m++;
            const char *te = request_target(m, end, r);
            p = find_quote(s, te, end);
            if (!p) return NULL;
            request_words(s, m, te, p, r);
            break;
        }
        case OP_URI: {
            const char *e = field_end(op, p, end);
            if (!e) return NULL;
            set_path(r, p, e);
            p = e;
            break;
        }
        case OP_METHOD:
        case OP_PROTOCOL:
        case OP_VHOST:
        case OP_REFERRER:
        case OP_UA: {
            const char *e = field_end(op, p, end);
            if (!e) return NULL;
            const char **slot = op->kind == OP_METHOD     ? &r->method
                                : op->kind == OP_PROTOCOL ? &r->protocol
                                : op->kind == OP_VHOST    ? &r->vhost
                                : op->kind == OP_REFERRER ? &r->referrer
                                                          : &r->user_agent;
            size_t *len = op->kind == OP_METHOD     ? &r->method_len
                          : op->kind == OP_PROTOCOL ? &r->protocol_len
                          : op->kind == OP_VHOST    ? &r->vhost_len
                          : op->kind == OP_REFERRER ? &r->referrer_len
                                                    : &r->user_agent_len;
            *slot = p;
            *len = (size_t)(e - p);
            p = e;
            break;
        }
        case OP_STATUS:
            if (end - p < 3 || p[0] < '1' || p[0] > '9' || !is_digit(p[1]) || !is_digit(p[2]))
                return NULL;
            r->status = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
            p += 3;
            break;
        case OP_BYTES:
            if (p < end && *p == '-')
                p++;
            else if (!(p = parse_count(p, end, &r->bytes)))
                return NULL;
            break;
        case OP_RT:
            p = parse_rt(p, end, &r->rt_us);
            if (!p) return NULL;
            break;
        /* weft's own variables (format-int.h) */
        case OP_IPPORT:
            p = parse_ipport(op, p, end, r);
            if (!p) return NULL;
            break;
        case OP_DATE:
            p = parse_date_ymd(p, end, r);
            if (!p) return NULL;
            break;
        case OP_TIME_HMS:
            p = parse_hms(p, end, r);
            if (!p) return NULL;
            break;
        case OP_TIME_ISOZ:
            p = parse_time_isoz(p, end, r);
            if (!p) return NULL;
            break;
        case OP_RT_MS:
        case OP_RT_US:
            p = parse_int_time(p, end, op->kind == OP_RT_MS ? 1000 : 1, &r->rt_us);
            if (!p) return NULL;
            break;
        case OP_RT_AWS:
            if (end - p >= 2 && p[0] == '-' && p[1] == '1') {
                r->rt_us = -1;
                p += 2;
            } else if (!(p = parse_rt(p, end, &r->rt_us))) {
                return NULL;
            }
            break;
        default:
            return NULL;
        }
    }
    return line_rest(p, end);
}

size_t weft_logs_parse_lines(const weft_logs_format_t *f, const char **pp, const char *end,
                             weft_logs_rec_t *out, size_t n)
{
#ifdef HAVE_AVX2
    if (f->fast && use_avx2) return parse_lines_avx2(f, pp, end, out, n);
#endif
    const char *p = *pp;
    size_t i = 0;
    for (; i < n && p < end; i++) {
        const char *e = weft_logs_parse(f, p, end, &out[i]);
        if (!e) break;
        if (e < end && *e == '\r') e++;
        p = e < end ? e + 1 : end;
    }
    *pp = p;
    return i;
}

bool weft_logs_parse_line(const weft_logs_format_t *f, const char *p, const char *end,
                          weft_logs_rec_t *r)
{
    return weft_logs_parse(f, p, end, r) == end;
}
