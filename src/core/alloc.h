/* Internal: the allocator every weft module calls (replaceable with weft_replace_allocator). */
#ifndef WEFT_CORE_ALLOC_H
#define WEFT_CORE_ALLOC_H

#include <stddef.h>

void *weft__malloc(size_t n);
void *weft__calloc(size_t count, size_t n);
void *weft__realloc(void *p, size_t n);
void weft__free(void *p);
char *weft__strdup(const char *s);

#endif
