/*
 * sh_slice.c - refcounted blocks (see sh_slice.h). Any thread.
 */
#include "common/sh_slice.h"

#include <stdlib.h>

sh_block_t *sh_block_new(size_t size)
{
    if (size > SIZE_MAX - sizeof(sh_block_t))
        return NULL;
    sh_block_t *b = malloc(sizeof(*b) + size);
    if (!b)
        return NULL;
    atomic_init(&b->refs, 1);
    b->size = size;
    return b;
}

sh_block_t *sh_block_ref(sh_block_t *b)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

void sh_block_unref(sh_block_t *b)
{
    if (b && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
        free(b);
}
