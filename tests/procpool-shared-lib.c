/* Built into libweft_pptest.so together with every libweft object: a function registered inside
 * the shared library itself, for tests/procpool-shared-prog.c. */
#include <weft/procpool.h>

static int fn_lib(const void *arg, size_t len, weft_buf_t *out)
{
    return weft_buf_printf(out, "lib %.*s", (int)len, (const char *)arg);
}

WEFT_PROCPOOL_FN("shared.lib", fn_lib)
