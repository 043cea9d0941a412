/* weft logs: the operations a compiled format is made of, shared by the compiler (format.c and
 * its translators format-apache.c, format-w3c.c) and the parser (parse.c, format-json.c).
 * Internal to tools/logs. */
#ifndef WEFT_TOOLS_LOGS_FORMAT_INT_H
#define WEFT_TOOLS_LOGS_FORMAT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logs/format.h"

/* weft_logs_op_t.kind */
enum op_kind {
    OP_LIT,        /* the literal must follow here */
    OP_IP,         /* $remote_addr: IPv4 dotted quad or IPv6 text */
    OP_SKIP,       /* any other variable: up to the delimiter or the closing quote */
    OP_TIME_LOCAL, /* $time_local: 15/Jan/2025:10:30:45 +0800 */
    OP_TIME_ISO,   /* $time_iso8601: 2025-01-15T10:30:45+08:00 */
    OP_REQUEST,    /* $request: "METHOD TARGET PROTOCOL" (quoted) */
    OP_URI,        /* $request_uri or $uri: the target alone */
    OP_STATUS,     /* $status: three digits */
    OP_BYTES,      /* $body_bytes_sent (or $bytes_sent): digits or "-" */
    OP_RT,         /* $request_time: seconds with a decimal fraction, or "-" */
    OP_METHOD,     /* $request_method: borrowed as weft_logs_rec_t.method */
    OP_PROTOCOL,   /* $server_protocol */
    OP_VHOST,      /* $host, $http_host, $server_name */
    OP_REFERRER,   /* $http_referer */
    OP_UA,         /* $http_user_agent */
    /* weft's own variables, for the presets and the translated formats */
    OP_IPPORT,    /* $remote_addr_port: ELB's client:port (IPv4, [IPv6] or IPv6 then :port) */
    OP_DATE,      /* $date_utc: W3C's date field, 2019-12-04 (UTC) */
    OP_TIME_HMS,  /* $time_utc: W3C's time field, 21:02:31 (UTC), after $date_utc */
    OP_TIME_ISOZ, /* $time_iso8601_utc: ELB's 2015-05-13T23:39:43.945958Z */
    OP_RT_MS,     /* $request_time_ms: integer milliseconds (IIS, S3, Traefik), or "-" */
    OP_RT_US,     /* $request_time_us: integer microseconds (Apache %D), or "-" */
    OP_RT_AWS,    /* $request_time_aws: seconds as OP_RT; "-1" (ELB: no target) is no value */
    OP_NKINDS
};

/* Translates an Apache LogFormat string into the nginx-style string with the same fields
 * (format-apache.c). Returns 0 or -EINVAL with a reason in err. */
int weft_logs__apache_to_nginx(const char *apache, char *out, size_t outlen, char *err,
                               size_t errlen);

/* Translates the field names of a W3C #Fields: directive (separated by blanks) into the
 * nginx-style string whose fields are separated by `sep` (' ' for IIS, '\t' for CloudFront);
 * sets *cloudfront when there are CloudFront's x-edge- fields (time-taken is then in seconds,
 * not milliseconds). Returns 0 or -EINVAL with a reason in err (format-w3c.c). */
int weft_logs__w3c_to_nginx(const char *fields, size_t len, char sep, char *out, size_t outlen,
                            bool *cloudfront, char *err, size_t errlen);

/* Whether two W3C field lists name the same fields in the same order (blanks ignored). */
bool weft_logs__w3c_same_fields(const char *a, size_t alen, const char *b, size_t blen);

/* The first "#Fields:" directive among the lines of [data, data + len): its field names (after
 * the colon and blanks) in *fields and *flen, and whether the next entry line uses tabs. Returns
 * false when there is none. */
bool weft_logs__w3c_find_fields(const char *data, size_t len, const char **fields, size_t *flen,
                                char *sep);

/* parse.c's address, seconds and RFC 3339 time readers, for format-json.c: the same checks as the
 * operations $remote_addr and $request_time. Both return the end of what they read or NULL. */
const char *weft_logs__parse_ip(const char *p, const char *end, weft_logs_rec_t *r);
const char *weft_logs__parse_rt(const char *p, const char *end, int64_t *us);
const char *weft_logs__parse_time_isoz(const char *p, const char *end, weft_logs_rec_t *r);

/* Parses one Caddy JSON access-log line starting at p (format-json.c): the same contract as
 * weft_logs_parse(). */
const char *weft_logs__parse_json(const char *p, const char *end, weft_logs_rec_t *r);

#endif
