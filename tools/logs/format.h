/* weft logs: log formats and the single-pass line parser.
 *
 * A format is compiled once from nginx `log_format` syntax into a short list of operations
 * (match this literal, parse an address up to the next delimiter, skip a quoted string, ...).
 * The presets are themselves nginx-style strings; Apache `LogFormat` strings and W3C `#Fields:`
 * headers (IIS, CloudFront) are translated into the same operations (format-apache.c,
 * format-w3c.c). Caddy's JSON lines are read by a small JSON scanner instead (format-json.c).
 * The parser then walks one line with that list:
 * no regex, no sscanf, no allocation, and it extracts only what the statistics need (the date,
 * hour, minute and offset of the timestamp, the status as three digits, the response time as
 * integer microseconds, the client address as 32 or 128 bits) and borrows the text fields
 * (path, method, protocol, virtual host, referrer, user agent) as slices of the line.
 */
#ifndef WEFT_TOOLS_LOGS_FORMAT_H
#define WEFT_TOOLS_LOGS_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define WEFT_LOGS_MAX_OPS 128 /* CloudFront's 33 fields take 65 */
#define WEFT_LOGS_SPEC_MAX 1024

/* One parsed line. The slices point into the line (borrowed) and are NULL/0 when the format has
 * no such field; they are the text as written (quotes removed, escapes kept; nginx's "-" is kept
 * as "-", readers treat it as absent). The time fields are the local time as written in the log;
 * utc_off_min says how far east of UTC it is (0 when the format has no offset: UTC). */
typedef struct weft_logs_rec {
    int family;           /* 4 or 6 */
    uint32_t ip4;         /* host byte order, when family == 4 */
    uint8_t ip6[16];      /* network byte order, when family == 6 */
    const char *ip6_text; /* the address as written in the log, when family == 6 (else unset);
                           * NULL when it no longer spells ip6 (--anonymize-ip) */
    size_t ip6_text_len;
    int hour;         /* 0..23, as written in the log (the UTC offset is not applied) */
    int minute;       /* 0..59, as written */
    uint32_t date;    /* the date as written, packed: WEFT_LOGS_DATE(y, m, d) (sorts as dates) */
    int utc_off_min;  /* the UTC offset written with the time, in minutes (+0800: 480) */
    int status;       /* 100..999 */
    uint64_t bytes;   /* response body bytes; 0 for "-" or when the format has none */
    int64_t rt_us;    /* response time in microseconds; -1 when absent or "-" */
    const char *path; /* request path without the query string; NULL when none */
    size_t path_len;
    const char *method; /* "GET" ($request's first word, $request_method) */
    size_t method_len;
    const char *protocol; /* "HTTP/1.1" ($request's last word, $server_protocol) */
    size_t protocol_len;
    const char *vhost; /* $host, $http_host, $server_name (Apache %v) */
    size_t vhost_len;
    const char *referrer; /* $http_referer */
    size_t referrer_len;
    const char *user_agent; /* $http_user_agent */
    size_t user_agent_len;
} weft_logs_rec_t;

/* A date packed into an integer (year << 9 | month << 5 | day) and its parts. */
#define WEFT_LOGS_DATE(y, m, d) ((uint32_t)(y) << 9 | (uint32_t)(m) << 5 | (uint32_t)(d))
#define WEFT_LOGS_DATE_Y(x) ((int)((x) >> 9))
#define WEFT_LOGS_DATE_M(x) ((int)((x) >> 5 & 15))
#define WEFT_LOGS_DATE_D(x) ((int)((x)&31))

/* Days since 1970-01-01 of a proleptic Gregorian date (y >= 1, m 1..12, d 1..31; d is not
 * checked against the month's length). */
static inline int32_t weft_logs_civil_day(int y, int m, int d)
{
    y -= m <= 2;
    int era = y / 400, yoe = y - era * 400;
    int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (int32_t)(era * 146097 + doe - 719468);
}

/* The inverse: y/m/d of a day number. */
static inline void weft_logs_civil_date(int32_t z, int *y, int *m, int *d)
{
    z += 719468;
    int era = (z >= 0 ? z : z - 146096) / 146097;
    int doe = z - era * 146097;
    int yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yoe + era * 400 + (*m <= 2);
}

typedef struct weft_logs_op {
    uint8_t kind;   /* private: enum op_kind in format-int.h */
    uint8_t delim;  /* the byte that ends a skipped field (0: end of line) */
    uint8_t quoted; /* the field sits between double quotes (backslash escapes honoured) */
    uint16_t len;   /* literal length */
    uint16_t off;   /* literal offset in lits[] */
} weft_logs_op_t;

/* Lines left out of every statistic (GoAccess's --exclude-ip, --ignore-status, --ignore-crawlers,
 * --ignore-statics, date ranges): counted as `excluded` only; and the rewrites GoAccess applies
 * (--tz, --anonymize-ip), done by weft_logs_filter_apply (stats-panels.h) when `any` is set.
 * Plain data, part of a format. */
#define WEFT_LOGS_MAX_EXCLUDE 64
typedef struct weft_logs_filter {
    uint64_t status[16]; /* bitmap of ignored status codes (0..1023) */
    uint32_t n4, n6;
    uint32_t ip4[WEFT_LOGS_MAX_EXCLUDE]; /* host byte order */
    uint8_t ip6[WEFT_LOGS_MAX_EXCLUDE][16];
    bool any;              /* some line may be left out or rewritten: the run filters */
    unsigned no_panels;    /* WEFT_LOGS_PANEL_* (stats-panels.h) not counted (--panels) */
    bool ignore_crawlers;  /* --ignore-crawlers (ua.h) */
    bool ignore_statics;   /* --ignore-statics (weft_logs_is_static) */
    bool anonymize;        /* --anonymize-ip: IPv4's last octet, IPv6's last 80 bits zeroed */
    uint32_t since, until; /* --since/--until: packed dates (WEFT_LOGS_DATE), inclusive; 0: open */
    int tz_mode;           /* --tz: 0 the time as written, 1 a fixed offset, 2 the TZ zone */
    int tz_off_min;        /* tz_mode 1: minutes east of UTC */
} weft_logs_filter_t;

/* Whether a parsed line is left out. */
static inline bool weft_logs_filtered(const weft_logs_filter_t *f, const weft_logs_rec_t *r)
{
    if (r->status >= 0 && r->status < 1024 && (f->status[r->status >> 6] >> (r->status & 63) & 1))
        return true;
    if (r->family == 4) {
        for (uint32_t i = 0; i < f->n4; i++)
            if (f->ip4[i] == r->ip4) return true;
    } else {
        for (uint32_t i = 0; i < f->n6; i++)
            if (memcmp(f->ip6[i], r->ip6, 16) == 0) return true;
    }
    return false;
}

/* weft_logs_format_t.kind: how lines are read */
enum { WEFT_LOGS_KIND_OPS = 0, WEFT_LOGS_KIND_JSON = 1 };

/* A compiled format. Plain data (no pointers): it may be copied, and sent to a worker process
 * as its spec string (and its filter's bytes). */
typedef struct weft_logs_format {
    char name[32];                 /* a preset's name, "nginx", "apache" or "w3c" */
    char spec[WEFT_LOGS_SPEC_MAX]; /* what weft_logs_format_compile() takes to make it again */
    int kind;                      /* WEFT_LOGS_KIND_OPS: ops[]; _JSON: Caddy's JSON lines */
    bool directives;               /* lines starting with '#' are W3C directives, not entries */
    bool needs_header;             /* W3C whose columns come from each file's #Fields: line */
    int nops;
    weft_logs_op_t ops[WEFT_LOGS_MAX_OPS];
    char lits[WEFT_LOGS_SPEC_MAX];
    bool has_rt, has_path, has_bytes;
    int fast; /* 0: interpreted; 1..4: a preset, parsed by straight-line code (same result) */
    weft_logs_filter_t filter; /* set by the run after compiling or detecting */
} weft_logs_format_t;

/* Compiles `spec`: a preset name (weft_logs_preset_names), "nginx:" plus a log_format string,
 * a bare log_format string (anything containing '$'), "apache:" plus an Apache LogFormat
 * string, or "w3c:" plus the field names of a W3C #Fields: line. Returns 0, or -EINVAL with a
 * one-line reason in `err`. Ownership: borrows. Thread safety: any thread. */
int weft_logs_format_compile(const char *spec, weft_logs_format_t *out, char *err, size_t errlen);

/* Picks the preset that parses most of the first lines of `data` (at most 64 KiB and 50 lines
 * are looked at; ties go to the more specific preset). A W3C `#Fields:` line among them makes
 * the format that header's columns (CloudFront's when they have x-edge- fields). Returns 0, or
 * -ENOENT when no preset parses any of them (then *out is "default"). Thread safety: any
 * thread. */
int weft_logs_format_detect(const char *data, size_t len, weft_logs_format_t *out);

/* The format for one input given the format asked for: `fixed` itself, or, when `fixed` is
 * NULL (auto), weft_logs_format_detect(); a W3C format without columns ("w3c", "cloudfront":
 * needs_header) takes them from the first `#Fields:` line of `data`, keeping its name when
 * there is none. Returns what detection returns (0 or -ENOENT). Thread safety: any thread. */
int weft_logs_format_for_input(const weft_logs_format_t *fixed, const char *data, size_t len,
                               weft_logs_format_t *out);

/* Whether the line [p, p + len) that `f` did not parse is a W3C directive to skip: any line
 * starting with '#', except a #Fields: line naming other columns than f's (a log whose
 * columns change mid-file: that line is reported as malformed, and the entries after it parse
 * or not with the file's first columns, whatever the chunking). For formats with
 * f->directives. Thread safety: any thread. */
bool weft_logs_format_directive(const weft_logs_format_t *f, const char *p, size_t len);

/* Whether a format string looks like an Apache LogFormat ("%h %l %u %t ..."): for a hint when
 * one is given where an nginx log_format string is expected. */
bool weft_logs_format_looks_apache(const char *spec);

/* The parser proper: parses the line starting at `p`, where `end` bounds the whole buffer (the
 * scan stops at the line's '\n'). Returns the end of the line's text (its '\n', the '\r' of a
 * final CR LF, or `end`) and fills *r, or NULL for a malformed line. Never reads at or past
 * `end`. Ownership: borrows; r->path points into the buffer. Thread safety: any thread. */
const char *weft_logs_parse(const weft_logs_format_t *f, const char *p, const char *end,
                            weft_logs_rec_t *r);

/* Parses consecutive lines from *pp into out[0..n): stops after n lines, at `end`, or at the
 * first malformed line. Returns the number parsed and moves *pp past them (past each one's
 * newline), so that *pp is then `end` or the start of a malformed line when fewer than n were
 * parsed. Same results as weft_logs_parse() line by line, without a call per line. Ownership:
 * borrows; paths point into the buffer. Thread safety: any thread. */
size_t weft_logs_parse_lines(const weft_logs_format_t *f, const char **pp, const char *end,
                             weft_logs_rec_t *out, size_t n);

/* Parses one line [p, end) (no newline; a trailing '\r' must already be removed). Returns true
 * and fills *r, or false for a malformed line (*r is then unspecified). Never reads outside
 * [p, end). Ownership: borrows; r->path points into the line. Thread safety: any thread. */
bool weft_logs_parse_line(const weft_logs_format_t *f, const char *p, const char *end,
                          weft_logs_rec_t *r);

/* The preset names, for --help and detection, NULL-terminated. */
extern const char *const weft_logs_preset_names[];

#endif
