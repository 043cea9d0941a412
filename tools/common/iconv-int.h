/* iconv_open and iconv_close for every tool (crawl's decoder, the fixture's page encoder),
 * serialized by one mutex: glibc loads and unloads its conversion modules with dlopen/dlclose on
 * first use and last close, and ThreadSanitizer cannot see the loader's own lock; the mutex makes
 * the ordering visible (and costs nothing measurable). Use these everywhere in the tools.
 * Thread safety: any thread. */
#ifndef WEFT_TOOLS_COMMON_ICONV_INT_H
#define WEFT_TOOLS_COMMON_ICONV_INT_H

#include <iconv.h>

/* As iconv_open(3): returns (iconv_t)-1 with errno set on failure. */
iconv_t tools_iconv_open(const char *to, const char *from);
/* As iconv_close(3). */
void tools_iconv_close(iconv_t cd);

#endif
