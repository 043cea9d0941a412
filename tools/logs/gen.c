/* weft logs gen: deterministic synthetic access logs (gen.h).
 *
 * Clients: a population of N addresses. A quarter of the lines walk the population in order (so
 * that every client appears once the log has 4 N lines: `--ips 1000000` on 1 GB gives exactly
 * 1 M distinct clients); the rest pick a rank log-uniformly (rank r with probability ~ 1/r, a
 * Zipf-like skew with a few very busy clients). Rank -> address is a bijection that scatters
 * neighbours; a fixed share of ranks are IPv6. Time moves forward with a daily rhythm (busier
 * in the day than at night). Everything comes from one splitmix64 stream and integer
 * arithmetic, so a seed gives the same bytes on every machine.
 */
#include "logs/gen.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "logs/format.h"
#include "common/cli-int.h"

void weft_logs_gen_defaults(weft_logs_gen_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->size = 1 << 20;
    o->seed = 1;
    o->ips = 1000000;
    o->ipv6_rate = 0.02;
    o->days = 3;
    o->format = "default";
}

typedef struct {
    uint64_t s;
} rng_t;

static inline uint64_t rnd(rng_t *r)
{
    uint64_t z = (r->s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* Uniform in [0, n) (n > 0); the multiply-shift bias is far below anything visible here. */
__extension__ typedef unsigned __int128 u128_t;

static inline uint64_t below(rng_t *r, uint64_t n)
{
    return (uint64_t)(((u128_t)rnd(r) * n) >> 64);
}

static inline uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= UINT64_C(0xFF51AFD7ED558CCD);
    x ^= x >> 33;
    x *= UINT64_C(0xC4CEB9FE1A85EC53);
    return x ^ (x >> 33);
}

/* ---- small writers ---- */

static inline char *put_u(char *p, uint64_t v)
{
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) *p++ = tmp[--n];
    return p;
}

static inline char *put_s(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

static inline char *put_2(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
    return p + 2;
}

static char *put_hex(char *p, unsigned v)
{
    static const char hx[] = "0123456789abcdef";
    char tmp[8];
    int n = 0;
    do {
        tmp[n++] = hx[v & 15];
        v >>= 4;
    } while (v);
    while (n) *p++ = tmp[--n];
    return p;
}

/* ---- content tables ---- */

static const struct {
    int code, weight; /* per 10000 */
} statuses[] = {
    {200, 7640}, {201, 150}, {204, 100}, {206, 50},  {301, 200}, {302, 250},
    {304, 500},  {400, 150}, {401, 150}, {403, 100}, {404, 500}, {405, 20},
    {429, 30},   {499, 20},  {500, 60},  {502, 40},  {503, 30},  {504, 10},
};

static const struct {
    const char *m;
    int weight;
} methods[] = {{"GET", 85}, {"POST", 9}, {"HEAD", 2}, {"PUT", 2}, {"DELETE", 1}, {"PATCH", 1}};

/* '#' is replaced by a skewed number, '%' by a hex tag. */
static const char *const paths[] = {
    "/",
    "/index.html",
    "/api/users",
    "/api/users/#",
    "/api/orders/#",
    "/api/orders?page=#",
    "/api/login",
    "/api/logout",
    "/api/cart",
    "/api/products/#",
    "/api/search?q=item#&sort=price",
    "/products/#",
    "/products/#/reviews",
    "/blog/post-#",
    "/images/#.jpg",
    "/static/js/app.%.js",
    "/static/css/main.%.css",
    "/favicon.ico",
    "/robots.txt",
    "/health",
    "/sitemap.xml",
    "/docs/getting-started",
    "/wp-login.php",
    "/.env",
};
#define NPATHS (sizeof paths / sizeof paths[0])

static const char *const agents[] = {
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.2 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "curl/7.88.1",
    "python-requests/2.31.0",
    "Googlebot/2.1 (+http://www.google.com/bot.html)",
    "Go-http-client/1.1",
};
static const char *const referers[] = {
    "-",
    "-",
    "-",
    "https://www.google.com/",
    "https://example.com/",
    "https://example.com/blog/",
    "https://news.ycombinator.com/",
};
static const char *const users[] = {"alice", "bob", "carol", "dave"};

/* Relative traffic per hour of the day, in percent of the mean. */
static const int diurnal[24] = {35,  25,  20,  18,  20,  30,  50,  80,  110, 130, 140, 145,
                                150, 150, 145, 140, 135, 130, 125, 120, 110, 90,  70,  50};

static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* Civil date from days since 1970-01-01 (Howard Hinnant's algorithm). */
static void civil(int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

typedef struct {
    rng_t r;
    const weft_logs_gen_opts_t *o;
    uint64_t sweep, ipv6_per_64k, bad_per_2_32;
    int log2_ips;
    int64_t t_us, mean_dt_us;
    int64_t cached_sec;
    char tbuf[32]; /* "15/Jan/2025:10:30:45 +0000" */
    bool combined, rt;
    int status_cum[sizeof statuses / sizeof statuses[0]];
} gen_t;

static char *put_client(gen_t *g, char *p)
{
    uint64_t ips = g->o->ips, rank;
    if ((rnd(&g->r) & 3) == 0) {
        rank = g->sweep++;
        if (g->sweep == ips) g->sweep = 0;
    } else {
        int k = (int)below(&g->r, (uint64_t)g->log2_ips + 1);
        rank = ((UINT64_C(1) << k) - 1) + below(&g->r, UINT64_C(1) << k);
        if (rank >= ips) rank = below(&g->r, ips);
    }
    uint64_t h = mix(rank ^ g->o->seed * 0x9E37);
    if ((h & 0xffff) < g->ipv6_per_64k) {
        uint64_t h2 = mix(h);
        p = put_s(p, "2001:db8:");
        p = put_hex(p, (unsigned)(h2 >> 48) | 1);
        *p++ = ':';
        p = put_hex(p, (unsigned)(h2 >> 32 & 0xffff));
        p = put_s(p, "::");
        p = put_hex(p, (unsigned)(rank >> 16 & 0xffff));
        *p++ = ':';
        p = put_hex(p, (unsigned)(rank & 0xffff));
        return p;
    }
    uint32_t a = (uint32_t)(rank + 1) * 0x9E3779B1u;
    a ^= a >> 15;
    a *= 0x2C1B3C6Du;
    a ^= a >> 12; /* each step is a bijection of 32-bit values: distinct ranks, distinct IPs */
    for (int i = 3; i >= 0; i--) {
        p = put_u(p, a >> (8 * i) & 255);
        if (i) *p++ = '.';
    }
    return p;
}

static void advance_time(gen_t *g)
{
    int hour = (int)((g->t_us / 1000000 / 3600) % 24);
    int64_t mean = g->mean_dt_us * 100 / diurnal[hour];
    g->t_us += (int64_t)below(&g->r, (uint64_t)(2 * mean + 1));
    int64_t sec = g->t_us / 1000000;
    if (sec == g->cached_sec) return;
    g->cached_sec = sec;
    int y;
    unsigned m, d;
    civil(sec / 86400, &y, &m, &d);
    unsigned s = (unsigned)(sec % 86400);
    char *p = g->tbuf;
    p = put_2(p, d);
    *p++ = '/';
    memcpy(p, months[m - 1], 3);
    p += 3;
    *p++ = '/';
    p = put_u(p, (uint64_t)y);
    *p++ = ':';
    p = put_2(p, s / 3600);
    *p++ = ':';
    p = put_2(p, s / 60 % 60);
    *p++ = ':';
    p = put_2(p, s % 60);
    memcpy(p, " +0000", 7);
}

/* log-uniform in [lo, hi) */
static uint64_t log_uniform(rng_t *r, uint64_t lo, uint64_t hi)
{
    int a = 63 - __builtin_clzll(lo), b = 63 - __builtin_clzll(hi);
    int k = a + (int)below(r, (uint64_t)(b - a + 1));
    uint64_t v = (UINT64_C(1) << k) + below(r, UINT64_C(1) << k);
    return v >= lo && v < hi ? v : lo + below(r, hi - lo);
}

/* Writes one well-formed line (without the newline); returns its end. */
static char *put_line(gen_t *g, char *p)
{
    rng_t *r = &g->r;
    p = put_client(g, p);
    p = put_s(p, " - ");
    uint64_t u = rnd(r);
    p = put_s(p, (u & 63) == 0 ? users[(u >> 8) & 3] : "-");
    p = put_s(p, " [");
    p = put_s(p, g->tbuf);
    p = put_s(p, "] \"");
    unsigned mw = (unsigned)below(r, 100), acc = 0;
    size_t mi = 0;
    while (mi + 1 < sizeof methods / sizeof methods[0] && mw >= acc + (unsigned)methods[mi].weight)
        acc += (unsigned)methods[mi++].weight;
    p = put_s(p, methods[mi].m);
    *p++ = ' ';
    const char *t = paths[log_uniform(r, 1, NPATHS + 1) - 1];
    for (; *t; t++) {
        if (*t == '#')
            p = put_u(p, log_uniform(r, 1, 5000));
        else if (*t == '%')
            p = put_hex(p, (unsigned)below(r, 8) * 0x1f3d + 0xa000);
        else
            *p++ = *t;
    }
    u = rnd(r);
    p = put_s(p, (u & 7) == 0 ? " HTTP/2.0\" " : (u & 63) == 1 ? " HTTP/1.0\" " : " HTTP/1.1\" ");
    int sw = (int)below(r, 10000);
    size_t si = 0;
    while (si + 1 < sizeof statuses / sizeof statuses[0] && sw >= g->status_cum[si]) si++;
    int code = statuses[si].code;
    p = put_u(p, (uint64_t)code);
    *p++ = ' ';
    if (code == 304 || code == 204)
        p = put_s(p, (rnd(r) & 1) ? "-" : "0");
    else if (code >= 300)
        p = put_u(p, 100 + below(r, 400));
    else
        p = put_u(p, log_uniform(r, 200, 200000));
    if (g->combined) {
        p = put_s(p, " \"");
        p = put_s(p, referers[below(r, sizeof referers / sizeof referers[0])]);
        p = put_s(p, "\" \"");
        p = put_s(p, agents[log_uniform(r, 1, sizeof agents / sizeof agents[0] + 1) - 1]);
        *p++ = '"';
    }
    if (g->rt) {
        uint64_t ms = (rnd(r) % 100) == 0 ? log_uniform(r, 500, 10000) : log_uniform(r, 1, 200);
        *p++ = ' ';
        p = put_u(p, ms / 1000);
        *p++ = '.';
        p = put_2(p, (unsigned)(ms % 1000 / 10));
        *p++ = (char)('0' + ms % 10);
    }
    return p;
}

/* Writes one malformed line (never parseable by any preset). */
static char *put_bad_line(gen_t *g, char *p)
{
    char *s = p;
    switch (below(&g->r, 6)) {
    case 0: { /* cut inside the request */
        char *e = put_line(g, p);
        char *q = memchr(s, '"', (size_t)(e - s));
        return q ? q + 1 + below(&g->r, 6) : s;
    }
    case 1:
        return put_s(p, "GET /index.html HTTP/1.1 this is not a log line");
    case 2: /* a status that is not three digits */
        p = put_line(g, p);
        {
            char *q = memchr(s, '"', (size_t)(p - s));
            q = q ? memchr(q + 1, '"', (size_t)(p - q - 1)) : NULL;
            if (q) q[2] = 'x';
        }
        return p;
    case 3:
        return p; /* an empty line */
    case 4:       /* an address that is not one */
        p = put_s(p, "999.12.1.1 - - [");
        p = put_s(p, g->tbuf);
        return put_s(p, "] \"GET / HTTP/1.1\" 200 12 0.001");
    default: /* an hour that does not exist */
        p = put_line(g, p);
        {
            char *q = memchr(s, '[', (size_t)(p - s));
            if (q) q[13] = '9';
        }
        return p;
    }
}

int weft_logs_gen(FILE *out, const weft_logs_gen_opts_t *o)
{
    if (o->ips < 1 || o->malformed_rate < 0 || o->malformed_rate > 1 || o->ipv6_rate < 0 ||
        o->ipv6_rate > 1 || o->days < 1 || o->days > 3650 || !o->format)
        return -EINVAL;
    gen_t g = {.r = {o->seed}, .o = o, .cached_sec = -1};
    if (strcmp(o->format, "default") == 0)
        g.rt = true;
    else if (strcmp(o->format, "combined") == 0)
        g.combined = true;
    else if (strcmp(o->format, "combined-rt") == 0)
        g.combined = g.rt = true;
    else if (strcmp(o->format, "common") != 0)
        return -EINVAL;
    g.ipv6_per_64k = (uint64_t)(o->ipv6_rate * 65536.0 + 0.5);
    g.bad_per_2_32 = (uint64_t)(o->malformed_rate * 4294967296.0 + 0.5);
    g.log2_ips = 63 - __builtin_clzll(o->ips);
    int acc = 0;
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        g.status_cum[i] = acc += statuses[i].weight;
    uint64_t est_lines = o->size / (g.combined ? 230 : 100) + 1;
    g.mean_dt_us = (int64_t)((uint64_t)o->days * 86400 * 1000000 / est_lines);
    if (g.mean_dt_us < 1) g.mean_dt_us = 1;
    g.t_us = (int64_t)20101 * 86400 * 1000000; /* 2025-01-13 00:00:00 */
    advance_time(&g);

    enum { BUF = 1 << 20 };
    char *buf = malloc(BUF + 4096);
    if (!buf) return -ENOMEM;
    size_t n = 0;
    uint64_t written = 0;
    int rc = 0;
    const char *eol = o->crlf ? "\r\n" : "\n";
    size_t eol_len = o->crlf ? 2 : 1;
    while (written < o->size) {
        advance_time(&g);
        char *p = buf + n;
        bool bad = g.bad_per_2_32 && (rnd(&g.r) >> 32) < g.bad_per_2_32;
        char *e = bad ? put_bad_line(&g, p) : put_line(&g, p);
        memcpy(e, eol, eol_len);
        size_t len = (size_t)(e - p) + eol_len;
        n += len;
        written += len;
        if (n >= BUF) {
            if (fwrite(buf, 1, n, out) != n) {
                rc = -EIO;
                break;
            }
            n = 0;
        }
    }
    if (!rc && n && fwrite(buf, 1, n, out) != n) rc = -EIO;
    if (!rc && fflush(out) != 0) rc = -EIO;
    free(buf);
    return rc;
}

static void gen_usage(FILE *f)
{
    fprintf(f,
            "usage: weft logs gen [OPTIONS]\n\n"
            "Writes a synthetic access log: the same options and seed give the same bytes.\n"
            "Clients follow a skewed (Zipf-like) distribution over a population, a quarter of\n"
            "the lines sweep the whole population so that every client appears once the log\n"
            "has 4x as many lines; time runs over several days with a daily rhythm; statuses,\n"
            "sizes and response times follow a realistic mix.\n\n"
            "  --size SIZE            about this many bytes, whole lines (K/M/G; default 1M)\n"
            "  --seed N               random seed (default 1)\n"
            "  --ips N                client population (default 1000000)\n"
            "  --malformed-rate R     share of broken lines, 0..1 (default 0)\n"
            "  --ipv6-rate R          share of IPv6 clients, 0..1 (default 0.02)\n"
            "  --days N               days covered (default 3)\n"
            "  --format NAME          default, common, combined or combined-rt (default: default)\n"
            "  --crlf                 end lines with CR LF\n"
            "  -o, --output FILE      write to FILE instead of standard output\n\n"
            "Exit codes: 0 success, 2 usage error, 1 write failed.\n");
}

static int parse_rate(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= 0 && v <= 1)) return -EINVAL;
    *out = v;
    return 0;
}

int weft_logs_gen_main(int argc, char **argv)
{
    weft_logs_gen_opts_t o;
    weft_logs_gen_defaults(&o);
    const char *output = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            gen_usage(stdout);
            return WEFT_EXIT_OK;
        } else if (strcmp(a, "--crlf") == 0) {
            o.crlf = true;
            continue;
        }
        if (!v) return weft_cli_usage_error("logs gen", "option %s needs a value", a);
        i++;
        if (strcmp(a, "--size") == 0) {
            if (weft_cli_parse_size(v, &o.size) != 0)
                return weft_cli_usage_error("logs gen", "bad --size '%s'", v);
        } else if (strcmp(a, "--seed") == 0) {
            char *end;
            errno = 0;
            o.seed = strtoull(v, &end, 10);
            if (errno || *end || end == v || *v == '-')
                return weft_cli_usage_error("logs gen", "bad --seed '%s'", v);
        } else if (strcmp(a, "--ips") == 0) {
            if (weft_cli_parse_size(v, &o.ips) != 0 || o.ips < 1 || o.ips > (UINT64_C(1) << 32))
                return weft_cli_usage_error("logs gen", "bad --ips '%s' (1..4G)", v);
        } else if (strcmp(a, "--malformed-rate") == 0) {
            if (parse_rate(v, &o.malformed_rate) != 0)
                return weft_cli_usage_error("logs gen", "bad --malformed-rate '%s' (0..1)", v);
        } else if (strcmp(a, "--ipv6-rate") == 0) {
            if (parse_rate(v, &o.ipv6_rate) != 0)
                return weft_cli_usage_error("logs gen", "bad --ipv6-rate '%s' (0..1)", v);
        } else if (strcmp(a, "--days") == 0) {
            if (weft_cli_parse_int(v, 1, 3650, &n) != 0)
                return weft_cli_usage_error("logs gen", "bad --days '%s' (1..3650)", v);
            o.days = (int)n;
        } else if (strcmp(a, "--format") == 0) {
            if (strcmp(v, "default") && strcmp(v, "common") && strcmp(v, "combined") &&
                strcmp(v, "combined-rt"))
                return weft_cli_usage_error("logs gen", "unknown --format '%s'", v);
            o.format = v;
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            output = v;
        } else {
            return weft_cli_usage_error("logs gen", "unknown option '%s'", a);
        }
    }
    FILE *f = stdout;
    if (output && !(f = fopen(output, "wb")))
        return weft_cli_error("logs gen", WEFT_EXIT_USAGE, "cannot create %s: %s", output,
                              strerror(errno));
    int rc = weft_logs_gen(f, &o);
    if (output && fclose(f) != 0 && rc == 0) rc = -EIO;
    if (rc == -EIO)
        return weft_cli_error("logs gen", WEFT_EXIT_FAILED, "write failed: %s", strerror(errno));
    if (rc) return weft_cli_error("logs gen", WEFT_EXIT_USAGE, "bad options");
    return WEFT_EXIT_OK;
}
