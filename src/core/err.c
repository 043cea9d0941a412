/* Error names and messages, generated from the one table in weft/err.h. */
#include <string.h>
#include <weft/err.h>

const char *weft_strerror(int err)
{
    switch (err) {
#define WEFT__ERR_MSG(name, value, msg)                                                            \
    case value:                                                                                    \
        return msg;
        WEFT_ERRNO_MAP(WEFT__ERR_MSG)
#undef WEFT__ERR_MSG
    default:
        break;
    }
    if (err == 0) return "success";
    /* strerror() may use a static buffer for unknown values; known errnos are static strings. */
    const char *s = strerrordesc_np(err < 0 ? -err : err);
    return s ? s : "unknown error";
}

const char *weft_err_name(int err)
{
    switch (err) {
#define WEFT__ERR_NAME(name, value, msg)                                                           \
    case value:                                                                                    \
        return #name;
        WEFT_ERRNO_MAP(WEFT__ERR_NAME)
#undef WEFT__ERR_NAME
    default:
        break;
    }
    if (err == 0) return "OK";
    const char *s = strerrorname_np(err < 0 ? -err : err);
    return s ? s : "UNKNOWN";
}
