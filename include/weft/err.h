/* weft/err.h - error codes.
 *
 * Every weft function that can fail returns an int: 0 on success or a negative errno value
 * (-EINVAL, -ENOMEM, -ETIMEDOUT, -ECANCELED, ...). Conditions no errno describes use the
 * weft-only codes below, in the reserved range [-4199, -4100]. Codes are append-only: a code,
 * once published, is never renumbered or reused.
 */
#ifndef WEFT_ERR_H
#define WEFT_ERR_H

#include <errno.h>

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, value, message). The enum and weft_strerror() are both generated from this table. */
#define WEFT_ERRNO_MAP(X)                                                                          \
    X(WEFT_ECRASHED, -4100, "worker process crashed")                                              \
    X(WEFT_ESKIPPED, -4101, "skipped: a dependency failed")                                        \
    X(WEFT_ECYCLE, -4102, "dependency cycle")                                                      \
    X(WEFT_EPARSE, -4103, "malformed input")                                                       \
    X(WEFT_ENOFUNC, -4104, "no such registered function")                                          \
    X(WEFT_EHTTP, -4105, "HTTP error status")                                                      \
    X(WEFT_EDNS, -4106, "could not resolve host name")                                             \
    X(WEFT_ESLOW, -4107, "transfer too slow")                                                      \
    X(WEFT_EREDIRECTS, -4108, "too many redirects")                                                \
    X(WEFT_ETLS, -4109, "TLS error")                                                               \
    X(WEFT_EEXIT, -4110, "command exited with a non-zero status")                                  \
    X(WEFT_ESIGNAL, -4111, "command killed by a signal")

enum weft_errno {
#define WEFT__ERR_ENUM(name, value, msg) name = value,
    WEFT_ERRNO_MAP(WEFT__ERR_ENUM)
#undef WEFT__ERR_ENUM
};

/* Returns a static, human-readable description of `err` (a negative errno or a WEFT_E* code);
 * never NULL. Ownership: the string is static. Thread safety: any thread. */
const char *weft_strerror(int err);

/* Returns the symbolic name of `err` ("ETIMEDOUT", "WEFT_ECRASHED", ...) or "UNKNOWN"; never
 * NULL. Ownership: the string is static. Thread safety: any thread. */
const char *weft_err_name(int err);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_ERR_H */
