/*
 * sh_slice.h - borrowed byte ranges and refcounted blocks.
 *
 * A request frame is read into one sh_block_t sized from its length prefix;
 * decoded strings, bytes and record batches are sh_slice_t views into it.
 * Whoever keeps a slice beyond the request takes a block reference.
 * Blocks are refcounted with atomics so a WAL or upload worker may hold one.
 */
#ifndef SH_SLICE_H
#define SH_SLICE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A view of bytes owned elsewhere. For nullable wire strings/bytes,
 * ptr == NULL with len == 0 means null; a non-NULL ptr with len 0 is "". */
typedef struct sh_slice {
    const uint8_t *ptr;
    size_t len;
} sh_slice_t;

#define SH_SLICE_NULL ((sh_slice_t){NULL, 0})

static inline sh_slice_t sh_slice_str(const char *s)
{
    return (sh_slice_t){(const uint8_t *)s, s ? strlen(s) : 0};
}

static inline int sh_slice_is_null(sh_slice_t s)
{
    return s.ptr == NULL;
}

static inline int sh_slice_eq_str(sh_slice_t s, const char *z)
{
    size_t n = strlen(z);
    return s.ptr && s.len == n && memcmp(s.ptr, z, n) == 0;
}

static inline int sh_slice_eq(sh_slice_t a, sh_slice_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0) &&
           ((a.ptr == NULL) == (b.ptr == NULL));
}

/* A heap block of bytes with a reference count; data follows the header. */
typedef struct sh_block {
    atomic_int refs;
    size_t size;
    _Alignas(16) uint8_t data[];
} sh_block_t;

/* New block with one reference, or NULL. */
sh_block_t *sh_block_new(size_t size);
sh_block_t *sh_block_ref(sh_block_t *b);
void sh_block_unref(sh_block_t *b);

#endif
