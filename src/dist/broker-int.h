/* broker-int.h - what the submitter (broker.c) and the worker (worker.c) share: the Redis
 * connection helpers and the Lua scripts that make every state change of a task atomic. */
#ifndef WEFT_BROKER_INT_H
#define WEFT_BROKER_INT_H

#include <hiredis.h>
#include <stdint.h>
#include <weft/broker.h>

#define WEFT__BROKER_GROUP "workers"
#define WEFT__BROKER_BANDS 3 /* stream per priority band: 0 high, 1 normal, 2 low */

enum {
    WEFT__S_SUBMIT,
    WEFT__S_CLAIM,
    WEFT__S_COMPLETE,
    WEFT__S_CANCEL,
    WEFT__S_PROMOTE,
    WEFT__S_RESUME,
    WEFT__S_FETCH,
    WEFT__S_COUNT
};

/* A parsed redis:// URL plus the resolved options. */
typedef struct weft__broker_conf {
    char host[256];
    int port;
    int db;
    char ns[64];
    uint64_t ttl_s;
    int max_redeliveries;
    uint64_t connect_timeout_ms;
} weft__broker_conf_t;

/* Fills `c` from url and opts. Returns 0 or -EINVAL. */
int weft__broker_conf(weft__broker_conf_t *c, const char *url, const weft_broker_opts_t *o);

/* Connects, selects the database, loads the scripts (their SHA1s into sha) and creates the
 * consumer groups. Returns 0 (*out set) or a negative error. */
int weft__broker_connect(const weft__broker_conf_t *c, redisContext **out,
                         char sha[WEFT__S_COUNT][41]);

/* The negative errno of a failed hiredis context or reply. */
int weft__broker_err(const redisContext *ctx, const redisReply *r);

/* Maps a state name stored in Redis to the enum. */
weft_broker_state_t weft__broker_state(const char *s, size_t len);

#endif
