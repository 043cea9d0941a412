/* The PostgreSQL backend of the order store (store.h): not built yet (issue 9, step 5). */
#include <errno.h>
#include <stdio.h>

#include "orders/store_int.h"

int store_pg_open(const char *url, store_t **out, char *err, size_t errsz)
{
    *out = NULL;
    snprintf(err, errsz, "postgresql: not supported yet by this build (use sqlite:PATH)");
    return -ENOTSUP;
}
