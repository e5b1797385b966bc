/*
 * sh_wire.h - Kafka wire primitives: a sticky-error reader over one frame
 * and a growable writer that can also reference payload bytes in place.
 *
 * Reader: every read checks the bytes remaining first; the first failure
 * sets r->err (SH_E_DECODE) and r->fail_at (byte offset), and every later
 * read returns zero values, so decoders check once at the end. Strings,
 * bytes and records are returned as slices borrowing the frame.
 *
 * Writer: bytes are appended to a heap buffer. sh_wire_put_ref() places a
 * borrowed slice (for example stored record batches) into the output
 * without copying it; sh_writer_iov() then yields the output as an iovec
 * chain (buffer pieces interleaved with the referenced slices) for writev.
 * The caller keeps referenced bytes alive until the output is written.
 * Allocation failure is sticky in w->err (SH_E_NOMEM).
 *
 * Single-threaded: a reader or writer belongs to one request.
 */
#ifndef SH_WIRE_H
#define SH_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>

#include "common/sh_endian.h"
#include "common/sh_err.h"
#include "common/sh_slice.h"

typedef struct sh_reader {
    const uint8_t *start;
    const uint8_t *pos;
    const uint8_t *end;
    sh_err_t err;        /* 0, or SH_E_DECODE after the first failure */
    size_t fail_at;      /* offset from start of the failing read */
} sh_reader_t;

static inline void sh_reader_init(sh_reader_t *r, const void *buf, size_t len)
{
    r->start = r->pos = (const uint8_t *)buf;
    r->end = r->start + len;
    r->err = 0;
    r->fail_at = 0;
}

static inline size_t sh_reader_remaining(const sh_reader_t *r)
{
    return r->err ? 0 : (size_t)(r->end - r->pos);
}

static inline size_t sh_reader_offset(const sh_reader_t *r)
{
    return (size_t)(r->pos - r->start);
}

static inline void sh_reader_fail(sh_reader_t *r)
{
    if (!r->err) {
        r->err = SH_E_DECODE;
        r->fail_at = (size_t)(r->pos - r->start);
    }
}

/* Returns a pointer to n bytes and advances, or NULL (and fails). */
static inline const uint8_t *sh_reader_take(sh_reader_t *r, size_t n)
{
    if (r->err || (size_t)(r->end - r->pos) < n) {
        sh_reader_fail(r);
        return NULL;
    }
    const uint8_t *p = r->pos;
    r->pos += n;
    return p;
}

static inline int8_t sh_wire_get_i8(sh_reader_t *r)
{
    const uint8_t *p = sh_reader_take(r, 1);
    return p ? (int8_t)p[0] : 0;
}

static inline bool sh_wire_get_bool(sh_reader_t *r)
{
    return sh_wire_get_i8(r) != 0;
}

static inline int16_t sh_wire_get_i16(sh_reader_t *r)
{
    const uint8_t *p = sh_reader_take(r, 2);
    return p ? (int16_t)sh_load_be16(p) : 0;
}

static inline uint16_t sh_wire_get_u16(sh_reader_t *r)
{
    const uint8_t *p = sh_reader_take(r, 2);
    return p ? sh_load_be16(p) : 0;
}

static inline int32_t sh_wire_get_i32(sh_reader_t *r)
{
    const uint8_t *p = sh_reader_take(r, 4);
    return p ? (int32_t)sh_load_be32(p) : 0;
}

static inline uint32_t sh_wire_get_u32(sh_reader_t *r)
{
    const uint8_t *p = sh_reader_take(r, 4);
    return p ? sh_load_be32(p) : 0;
}

static inline int64_t sh_wire_get_i64(sh_reader_t *r)
{
    const uint8_t *p = sh_reader_take(r, 8);
    return p ? (int64_t)sh_load_be64(p) : 0;
}

static inline double sh_wire_get_f64(sh_reader_t *r)
{
    uint64_t bits = (uint64_t)sh_wire_get_i64(r);
    double d;
    memcpy(&d, &bits, sizeof(d));
    return d;
}

/* Unsigned varint of at most 32 bits (5 bytes). */
static inline uint32_t sh_wire_get_uvarint(sh_reader_t *r)
{
    uint64_t v = 0;
    if (r->err)
        return 0;
    size_t n = sh_uvarint_read(r->pos, (size_t)(r->end - r->pos), 5, &v);
    if (n == 0 || v > UINT32_MAX) {
        sh_reader_fail(r);
        return 0;
    }
    r->pos += n;
    return (uint32_t)v;
}

/* Zig-zag signed varint / varlong (record fields). */
static inline int32_t sh_wire_get_varint(sh_reader_t *r)
{
    uint64_t v = 0;
    if (r->err)
        return 0;
    size_t n = sh_uvarint_read(r->pos, (size_t)(r->end - r->pos), 5, &v);
    if (n == 0 || v > UINT32_MAX) {
        sh_reader_fail(r);
        return 0;
    }
    r->pos += n;
    return (int32_t)sh_zigzag_decode(v);
}

static inline int64_t sh_wire_get_varlong(sh_reader_t *r)
{
    uint64_t v = 0;
    if (r->err)
        return 0;
    size_t n = sh_uvarint_read(r->pos, (size_t)(r->end - r->pos), 10, &v);
    if (n == 0) {
        sh_reader_fail(r);
        return 0;
    }
    r->pos += n;
    return sh_zigzag_decode(v);
}

typedef struct sh_uuid {
    uint8_t b[16];
} sh_uuid_t;

static inline sh_uuid_t sh_wire_get_uuid(sh_reader_t *r)
{
    sh_uuid_t u;
    const uint8_t *p = sh_reader_take(r, 16);
    if (p)
        memcpy(u.b, p, 16);
    else
        memset(u.b, 0, 16);
    return u;
}

/*
 * Length-prefixed values. `compact` selects the flexible encoding
 * (uvarint N+1, 0 = null) over the classic one (int16 for strings, int32
 * for bytes, -1 = null). A null where the schema does not allow it is a
 * decode error.
 */
sh_slice_t sh_wire_get_string(sh_reader_t *r, bool compact, bool nullable);
sh_slice_t sh_wire_get_bytes(sh_reader_t *r, bool compact, bool nullable);

/* Array element count: returns -1 for null (if nullable), else the count.
 * The count is checked against the bytes remaining (each element takes at
 * least min_elem_size bytes) so a hostile count cannot make the caller
 * allocate more than the frame could describe. */
int32_t sh_wire_get_array_len(sh_reader_t *r, bool compact, bool nullable,
                              size_t min_elem_size);

/* Skip a tagged-field block; unknown tags are skipped by their size. */
void sh_wire_skip_tagged_fields(sh_reader_t *r);

/* ----------------------------------------------------------------- writer */

typedef struct sh_wire_ref {
    size_t at;          /* buffer offset at which this slice is spliced in */
    sh_slice_t slice;
} sh_wire_ref_t;

typedef struct sh_writer {
    uint8_t *buf;
    size_t len;
    size_t cap;
    sh_wire_ref_t *refs;
    size_t nrefs;
    size_t refs_cap;
    size_t ref_bytes;   /* total bytes of referenced slices */
    sh_err_t err;       /* sticky SH_E_NOMEM */
} sh_writer_t;

void sh_writer_init(sh_writer_t *w);
void sh_writer_fini(sh_writer_t *w);
/* Forget the content, keep the memory. */
void sh_writer_reset(sh_writer_t *w);

/* Total output size: buffered plus referenced bytes. */
static inline size_t sh_writer_size(const sh_writer_t *w)
{
    return w->len + w->ref_bytes;
}

/* Reserve n bytes at the end and return them (NULL on failure). */
uint8_t *sh_writer_extend(sh_writer_t *w, size_t n);

static inline void sh_wire_put_raw(sh_writer_t *w, const void *p, size_t n)
{
    uint8_t *d = sh_writer_extend(w, n);
    if (d && n)
        memcpy(d, p, n);
}

static inline void sh_wire_put_i8(sh_writer_t *w, int8_t v)
{
    uint8_t *d = sh_writer_extend(w, 1);
    if (d)
        d[0] = (uint8_t)v;
}

static inline void sh_wire_put_bool(sh_writer_t *w, bool v)
{
    sh_wire_put_i8(w, v ? 1 : 0);
}

static inline void sh_wire_put_i16(sh_writer_t *w, int16_t v)
{
    uint8_t *d = sh_writer_extend(w, 2);
    if (d)
        sh_store_be16(d, (uint16_t)v);
}

static inline void sh_wire_put_u16(sh_writer_t *w, uint16_t v)
{
    sh_wire_put_i16(w, (int16_t)v);
}

static inline void sh_wire_put_i32(sh_writer_t *w, int32_t v)
{
    uint8_t *d = sh_writer_extend(w, 4);
    if (d)
        sh_store_be32(d, (uint32_t)v);
}

static inline void sh_wire_put_u32(sh_writer_t *w, uint32_t v)
{
    sh_wire_put_i32(w, (int32_t)v);
}

static inline void sh_wire_put_i64(sh_writer_t *w, int64_t v)
{
    uint8_t *d = sh_writer_extend(w, 8);
    if (d)
        sh_store_be64(d, (uint64_t)v);
}

static inline void sh_wire_put_f64(sh_writer_t *w, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    sh_wire_put_i64(w, (int64_t)bits);
}

static inline void sh_wire_put_uvarint(sh_writer_t *w, uint64_t v)
{
    uint8_t *d = sh_writer_extend(w, sh_uvarint_size(v));
    if (d)
        sh_uvarint_write(d, v);
}

static inline void sh_wire_put_varint(sh_writer_t *w, int64_t v)
{
    sh_wire_put_uvarint(w, sh_zigzag_encode(v));
}

static inline void sh_wire_put_uuid(sh_writer_t *w, sh_uuid_t u)
{
    sh_wire_put_raw(w, u.b, 16);
}

/* Strings and bytes; a null slice (ptr == NULL) is written as null. */
void sh_wire_put_string(sh_writer_t *w, bool compact, sh_slice_t s);
void sh_wire_put_bytes(sh_writer_t *w, bool compact, sh_slice_t b);
/* Length prefix followed by a reference to b (no copy): for records. */
void sh_wire_put_bytes_ref(sh_writer_t *w, bool compact, sh_slice_t b);
/* Splice b into the output without copying. */
void sh_wire_put_ref(sh_writer_t *w, sh_slice_t b);
/* Array count; n < 0 writes null. */
void sh_wire_put_array_len(sh_writer_t *w, bool compact, int32_t n);

/* Overwrite 4 bytes already written at buffer offset `at` (frame sizes).
 * Only valid for offsets before any later reference point. */
void sh_writer_patch_i32(sh_writer_t *w, size_t at, int32_t v);

/* A position in the output, for sh_writer_insert_size(). */
typedef struct sh_writer_mark {
    size_t len;        /* buffered bytes at the mark */
    size_t nrefs;      /* references at the mark */
    size_t ref_bytes;  /* referenced bytes at the mark */
} sh_writer_mark_t;

static inline sh_writer_mark_t sh_writer_mark(const sh_writer_t *w)
{
    return (sh_writer_mark_t){w->len, w->nrefs, w->ref_bytes};
}

/* Insert at mark m an unsigned varint holding the number of output bytes
 * (buffered and referenced) written since m; what follows moves up. Used
 * for tagged fields, whose size precedes data of unknown length. */
void sh_writer_insert_size(sh_writer_t *w, sh_writer_mark_t m);

/* Number of iovecs the output needs. */
size_t sh_writer_iov_count(const sh_writer_t *w);
/* Fill iov (room for sh_writer_iov_count() entries); returns entries used. */
size_t sh_writer_iov(const sh_writer_t *w, struct iovec *iov, size_t max);
/* Copy the whole output (buffer and references) into dst of
 * sh_writer_size() bytes; used by tests and small responses. */
void sh_writer_flatten(const sh_writer_t *w, uint8_t *dst);

#endif
