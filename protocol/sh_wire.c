/*
 * sh_wire.c - out-of-line parts of the wire reader and writer (sh_wire.h).
 * Single-threaded per reader/writer.
 */
#include "protocol/sh_wire.h"

#include <stdlib.h>

sh_slice_t sh_wire_get_string(sh_reader_t *r, bool compact, bool nullable)
{
    int64_t n;
    if (compact)
        n = (int64_t)sh_wire_get_uvarint(r) - 1;
    else
        n = sh_wire_get_i16(r);
    if (r->err)
        return SH_SLICE_NULL;
    if (n < 0) {
        if (!nullable || n != -1)
            sh_reader_fail(r);
        return SH_SLICE_NULL;
    }
    const uint8_t *p = sh_reader_take(r, (size_t)n);
    if (!p)
        return SH_SLICE_NULL;
    return (sh_slice_t){p, (size_t)n};
}

sh_slice_t sh_wire_get_bytes(sh_reader_t *r, bool compact, bool nullable)
{
    int64_t n;
    if (compact)
        n = (int64_t)sh_wire_get_uvarint(r) - 1;
    else
        n = sh_wire_get_i32(r);
    if (r->err)
        return SH_SLICE_NULL;
    if (n < 0) {
        if (!nullable || n != -1)
            sh_reader_fail(r);
        return SH_SLICE_NULL;
    }
    const uint8_t *p = sh_reader_take(r, (size_t)n);
    if (!p)
        return SH_SLICE_NULL;
    /* a zero-length non-null value still needs a non-NULL pointer */
    return (sh_slice_t){p, (size_t)n};
}

int32_t sh_wire_get_array_len(sh_reader_t *r, bool compact, bool nullable,
                              size_t min_elem_size)
{
    int64_t n;
    if (compact)
        n = (int64_t)sh_wire_get_uvarint(r) - 1;
    else
        n = sh_wire_get_i32(r);
    if (r->err)
        return 0;
    if (n < 0) {
        if (!nullable || n != -1)
            sh_reader_fail(r);
        return -1;
    }
    if (min_elem_size == 0)
        min_elem_size = 1;
    if ((uint64_t)n > (uint64_t)(r->end - r->pos) / min_elem_size) {
        sh_reader_fail(r);
        return 0;
    }
    return (int32_t)n;
}

void sh_wire_skip_tagged_fields(sh_reader_t *r)
{
    uint32_t count = sh_wire_get_uvarint(r);
    for (uint32_t i = 0; i < count && !r->err; i++) {
        (void)sh_wire_get_uvarint(r); /* tag */
        uint32_t size = sh_wire_get_uvarint(r);
        (void)sh_reader_take(r, size);
    }
}

void sh_writer_init(sh_writer_t *w)
{
    memset(w, 0, sizeof(*w));
}

void sh_writer_fini(sh_writer_t *w)
{
    free(w->buf);
    free(w->refs);
    memset(w, 0, sizeof(*w));
}

void sh_writer_reset(sh_writer_t *w)
{
    w->len = 0;
    w->nrefs = 0;
    w->ref_bytes = 0;
    w->err = 0;
}

uint8_t *sh_writer_extend(sh_writer_t *w, size_t n)
{
    if (w->err)
        return NULL;
    if (w->cap - w->len < n) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap - w->len < n) {
            if (cap > SIZE_MAX / 2) {
                w->err = SH_E_NOMEM;
                return NULL;
            }
            cap *= 2;
        }
        uint8_t *nb = realloc(w->buf, cap);
        if (!nb) {
            w->err = SH_E_NOMEM;
            return NULL;
        }
        w->buf = nb;
        w->cap = cap;
    }
    uint8_t *p = w->buf + w->len;
    w->len += n;
    return p;
}

void sh_wire_put_string(sh_writer_t *w, bool compact, sh_slice_t s)
{
    if (s.ptr == NULL) {
        if (compact)
            sh_wire_put_uvarint(w, 0);
        else
            sh_wire_put_i16(w, -1);
        return;
    }
    if (compact)
        sh_wire_put_uvarint(w, (uint64_t)s.len + 1);
    else
        sh_wire_put_i16(w, (int16_t)s.len);
    sh_wire_put_raw(w, s.ptr, s.len);
}

static void sh_wire_put_bytes_len(sh_writer_t *w, bool compact, sh_slice_t b)
{
    if (b.ptr == NULL) {
        if (compact)
            sh_wire_put_uvarint(w, 0);
        else
            sh_wire_put_i32(w, -1);
    } else if (compact) {
        sh_wire_put_uvarint(w, (uint64_t)b.len + 1);
    } else {
        sh_wire_put_i32(w, (int32_t)b.len);
    }
}

void sh_wire_put_bytes(sh_writer_t *w, bool compact, sh_slice_t b)
{
    sh_wire_put_bytes_len(w, compact, b);
    if (b.ptr)
        sh_wire_put_raw(w, b.ptr, b.len);
}

void sh_wire_put_ref(sh_writer_t *w, sh_slice_t b)
{
    if (w->err || b.len == 0)
        return;
    if (w->nrefs == w->refs_cap) {
        size_t cap = w->refs_cap ? w->refs_cap * 2 : 8;
        sh_wire_ref_t *nr = realloc(w->refs, cap * sizeof(*nr));
        if (!nr) {
            w->err = SH_E_NOMEM;
            return;
        }
        w->refs = nr;
        w->refs_cap = cap;
    }
    w->refs[w->nrefs++] = (sh_wire_ref_t){w->len, b};
    w->ref_bytes += b.len;
}

void sh_wire_put_bytes_ref(sh_writer_t *w, bool compact, sh_slice_t b)
{
    sh_wire_put_bytes_len(w, compact, b);
    if (b.ptr)
        sh_wire_put_ref(w, b);
}

void sh_wire_put_array_len(sh_writer_t *w, bool compact, int32_t n)
{
    if (compact)
        sh_wire_put_uvarint(w, n < 0 ? 0 : (uint64_t)n + 1);
    else
        sh_wire_put_i32(w, n < 0 ? -1 : n);
}

void sh_writer_patch_i32(sh_writer_t *w, size_t at, int32_t v)
{
    if (!w->err && at + 4 <= w->len)
        sh_store_be32(w->buf + at, (uint32_t)v);
}

void sh_writer_insert_size(sh_writer_t *w, sh_writer_mark_t m)
{
    if (w->err || m.len > w->len || m.nrefs > w->nrefs)
        return;
    uint64_t size = (uint64_t)(w->len - m.len) + (w->ref_bytes - m.ref_bytes);
    size_t k = sh_uvarint_size(size);
    if (!sh_writer_extend(w, k))
        return;
    memmove(w->buf + m.len + k, w->buf + m.len, w->len - k - m.len);
    sh_uvarint_write(w->buf + m.len, size);
    /* references made after the mark sit after the inserted bytes */
    for (size_t i = m.nrefs; i < w->nrefs; i++)
        w->refs[i].at += k;
}

size_t sh_writer_iov_count(const sh_writer_t *w)
{
    return 2 * w->nrefs + 1;
}

size_t sh_writer_iov(const sh_writer_t *w, struct iovec *iov, size_t max)
{
    size_t n = 0, from = 0;
    for (size_t i = 0; i < w->nrefs && n + 2 <= max; i++) {
        const sh_wire_ref_t *ref = &w->refs[i];
        if (ref->at > from) {
            iov[n++] = (struct iovec){w->buf + from, ref->at - from};
            from = ref->at;
        }
        iov[n++] = (struct iovec){(void *)ref->slice.ptr, ref->slice.len};
    }
    if (w->len > from && n < max)
        iov[n++] = (struct iovec){w->buf + from, w->len - from};
    return n;
}

void sh_writer_flatten(const sh_writer_t *w, uint8_t *dst)
{
    size_t from = 0;
    for (size_t i = 0; i < w->nrefs; i++) {
        const sh_wire_ref_t *ref = &w->refs[i];
        memcpy(dst, w->buf + from, ref->at - from);
        dst += ref->at - from;
        from = ref->at;
        memcpy(dst, ref->slice.ptr, ref->slice.len);
        dst += ref->slice.len;
    }
    if (w->len > from)
        memcpy(dst, w->buf + from, w->len - from);
}
