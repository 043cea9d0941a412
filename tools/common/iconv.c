/* iconv_open/iconv_close serialized by one mutex (common/iconv-int.h explains why). */
#include "common/iconv-int.h"

#include <pthread.h>

static pthread_mutex_t iconv_mu = PTHREAD_MUTEX_INITIALIZER;

iconv_t tools_iconv_open(const char *to, const char *from)
{
    pthread_mutex_lock(&iconv_mu);
    iconv_t cd = iconv_open(to, from);
    pthread_mutex_unlock(&iconv_mu);
    return cd;
}

void tools_iconv_close(iconv_t cd)
{
    pthread_mutex_lock(&iconv_mu);
    iconv_close(cd);
    pthread_mutex_unlock(&iconv_mu);
}
