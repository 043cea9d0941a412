/* weft logs: the operations a compiled format is made of, shared by the compiler (format.c)
 * and the parser (parse.c). Internal to tools/logs. */
#ifndef WEFT_TOOLS_LOGS_FORMAT_INT_H
#define WEFT_TOOLS_LOGS_FORMAT_INT_H

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
    OP_NKINDS
};

#endif
