/*
 * sh_msg.c - the descriptor-driven codec behind every generated Kafka
 * message (see sh_msg.h for the representation and ownership rules).
 *
 * Decoding walks a struct descriptor field by field over a sticky-error
 * reader, so a malformed frame is detected once, at the end, and the
 * innermost field that was being read is remembered for the log line.
 * Lengths and array counts are always checked against the bytes left
 * before anything is allocated: an array is allocated only once its count
 * times the smallest possible encoded element fits in the frame.
 * Recursion depth follows the schema's nesting (at most a handful of
 * levels), never the input.
 *
 * Runs on whichever thread owns the reader or writer (the broker's loop
 * thread for requests); keeps no state of its own.
 */
#include "protocol/sh_msg.h"

#include <stdlib.h>
#include <string.h>

#include "common/sh_log.h"

typedef struct codec {
    int16_t version;
    bool flexible;                     /* structs end with a tag block */
    sh_arena_t *arena;
    const sh_field_desc_t *fail_field; /* innermost field at the first failure */
    const sh_struct_desc_t *fail_struct;
} codec_t;

static inline void *at(void *base, uint32_t off)
{
    return (uint8_t *)base + off;
}

static inline const void *cat(const void *base, uint32_t off)
{
    return (const uint8_t *)base + off;
}

/* Members holding pointers have the element's pointer type; going through
 * memcpy keeps the generic code clear of strict-aliasing trouble. */
static inline void *load_ptr(const void *p)
{
    void *v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static inline void store_ptr(void *p, const void *v)
{
    memcpy(p, &v, sizeof(v));
}

static inline bool is_tagged(const sh_field_desc_t *f, int16_t v)
{
    return f->tag >= 0 && sh_vrange_has(f->tagged, v);
}

static size_t prim_size(uint8_t type)
{
    switch (type) {
    case SH_FT_BOOL:
        return sizeof(bool);
    case SH_FT_INT8:
        return 1;
    case SH_FT_INT16:
    case SH_FT_UINT16:
        return 2;
    case SH_FT_INT32:
    case SH_FT_UINT32:
        return 4;
    case SH_FT_INT64:
        return 8;
    case SH_FT_FLOAT64:
        return sizeof(double);
    case SH_FT_STRING:
    case SH_FT_BYTES:
    case SH_FT_RECORDS:
        return sizeof(sh_slice_t);
    case SH_FT_UUID:
        return sizeof(sh_uuid_t);
    default:
        return 0;
    }
}

static size_t elem_size(const sh_field_desc_t *f)
{
    return f->type == SH_FT_STRUCT ? f->sub->size : prim_size(f->type);
}

static sh_slice_t default_slice(const sh_field_desc_t *f)
{
    if (f->def_null)
        return SH_SLICE_NULL;
    const char *s = f->def_str ? f->def_str : "";
    return (sh_slice_t){(const uint8_t *)s, strlen(s)};
}

/* ------------------------------------------------------------- defaults */

static void field_init(const sh_field_desc_t *f, void *base)
{
    void *p = at(base, f->offset);
    if (f->flags & SH_FF_ARRAY) {
        store_ptr(p, NULL);
        *(int32_t *)at(base, f->count_offset) = f->def_null ? -1 : 0;
        return;
    }
    switch (f->type) {
    case SH_FT_BOOL:
        *(bool *)p = f->def_int != 0;
        break;
    case SH_FT_INT8:
        *(int8_t *)p = (int8_t)f->def_int;
        break;
    case SH_FT_INT16:
        *(int16_t *)p = (int16_t)f->def_int;
        break;
    case SH_FT_UINT16:
        *(uint16_t *)p = (uint16_t)f->def_int;
        break;
    case SH_FT_INT32:
        *(int32_t *)p = (int32_t)f->def_int;
        break;
    case SH_FT_UINT32:
        *(uint32_t *)p = (uint32_t)f->def_int;
        break;
    case SH_FT_INT64:
        *(int64_t *)p = f->def_int;
        break;
    case SH_FT_FLOAT64:
        *(double *)p = f->def_float;
        break;
    case SH_FT_STRING:
    case SH_FT_BYTES:
    case SH_FT_RECORDS:
        *(sh_slice_t *)p = default_slice(f);
        break;
    case SH_FT_UUID:
        memset(p, 0, sizeof(sh_uuid_t));
        break;
    case SH_FT_STRUCT:
        if (f->flags & SH_FF_PTR)
            store_ptr(p, NULL); /* the generator only allows default=null here */
        else
            sh_msg_struct_init(f->sub, p);
        break;
    }
}

void sh_msg_struct_init(const sh_struct_desc_t *sd, void *s)
{
    memset(s, 0, sd->size);
    for (uint32_t i = 0; i < sd->nfields; i++)
        field_init(&sd->fields[i], s);
}

void sh_msg_init(const sh_msg_desc_t *md, void *m)
{
    sh_msg_struct_init(md->body, m);
}

/* ----------------------------------------------------- smallest encodings */

static size_t min_struct_size(const codec_t *c, const sh_struct_desc_t *sd);

static size_t min_value_size(const codec_t *c, const sh_field_desc_t *f, bool compact)
{
    switch (f->type) {
    case SH_FT_STRING:
        return compact ? 1 : 2;
    case SH_FT_BYTES:
    case SH_FT_RECORDS:
        return compact ? 1 : 4;
    case SH_FT_BOOL:
        return 1; /* sizeof(bool) is not the wire size */
    case SH_FT_STRUCT:
        return min_struct_size(c, f->sub);
    default:
        return prim_size(f->type);
    }
}

static size_t min_field_size(const codec_t *c, const sh_field_desc_t *f)
{
    bool compact = sh_vrange_has(f->flexible, c->version);
    if (f->flags & SH_FF_ARRAY)
        return compact ? 1 : 4;
    if ((f->flags & SH_FF_PTR) && sh_vrange_has(f->nullable, c->version))
        return 1;
    return min_value_size(c, f, compact);
}

static size_t min_struct_size(const codec_t *c, const sh_struct_desc_t *sd)
{
    size_t n = c->flexible ? 1 : 0;
    for (uint32_t i = 0; i < sd->nfields; i++) {
        const sh_field_desc_t *f = &sd->fields[i];
        if (sh_vrange_has(f->versions, c->version) && !is_tagged(f, c->version))
            n += min_field_size(c, f);
    }
    return n;
}

/* ---------------------------------------------------------------- decode */

static void reader_nomem(sh_reader_t *r)
{
    if (!r->err) {
        r->err = SH_E_NOMEM;
        r->fail_at = sh_reader_offset(r);
    }
}

static void decode_struct(codec_t *c, sh_reader_t *r, const sh_struct_desc_t *sd, void *base);

static void decode_value(codec_t *c, sh_reader_t *r, const sh_field_desc_t *f, bool compact,
                         bool nullable, void *p)
{
    switch (f->type) {
    case SH_FT_BOOL:
        *(bool *)p = sh_wire_get_bool(r);
        break;
    case SH_FT_INT8:
        *(int8_t *)p = sh_wire_get_i8(r);
        break;
    case SH_FT_INT16:
        *(int16_t *)p = sh_wire_get_i16(r);
        break;
    case SH_FT_UINT16:
        *(uint16_t *)p = sh_wire_get_u16(r);
        break;
    case SH_FT_INT32:
        *(int32_t *)p = sh_wire_get_i32(r);
        break;
    case SH_FT_UINT32:
        *(uint32_t *)p = sh_wire_get_u32(r);
        break;
    case SH_FT_INT64:
        *(int64_t *)p = sh_wire_get_i64(r);
        break;
    case SH_FT_FLOAT64:
        *(double *)p = sh_wire_get_f64(r);
        break;
    case SH_FT_STRING:
        *(sh_slice_t *)p = sh_wire_get_string(r, compact, nullable);
        break;
    case SH_FT_BYTES:
    case SH_FT_RECORDS:
        *(sh_slice_t *)p = sh_wire_get_bytes(r, compact, nullable);
        break;
    case SH_FT_UUID:
        *(sh_uuid_t *)p = sh_wire_get_uuid(r);
        break;
    case SH_FT_STRUCT:
        decode_struct(c, r, f->sub, p);
        break;
    default:
        sh_reader_fail(r);
        break;
    }
}

static void decode_field(codec_t *c, sh_reader_t *r, const sh_field_desc_t *f, void *base)
{
    bool compact = sh_vrange_has(f->flexible, c->version);
    bool nullable = sh_vrange_has(f->nullable, c->version);
    void *p = at(base, f->offset);

    if (f->flags & SH_FF_ARRAY) {
        size_t min = f->type == SH_FT_STRUCT ? min_struct_size(c, f->sub)
                                             : min_value_size(c, f, compact);
        int32_t n = sh_wire_get_array_len(r, compact, nullable, min);
        if (r->err)
            return;
        *(int32_t *)at(base, f->count_offset) = n;
        store_ptr(p, NULL);
        if (n <= 0)
            return;
        size_t esz = elem_size(f);
        uint8_t *arr = c->arena ? sh_arena_calloc(c->arena, (size_t)n, esz) : NULL;
        if (!arr) {
            reader_nomem(r);
            return;
        }
        store_ptr(p, arr);
        /* elements are never null, whatever the field's nullability */
        for (int32_t i = 0; i < n && !r->err; i++)
            decode_value(c, r, f, compact, false, arr + (size_t)i * esz);
        return;
    }
    if (f->flags & SH_FF_PTR) {
        store_ptr(p, NULL);
        /* nullable structs carry a marker byte: negative = null */
        if (nullable && sh_wire_get_i8(r) < 0)
            return;
        if (r->err)
            return;
        void *s = c->arena ? sh_arena_alloc(c->arena, f->sub->size) : NULL;
        if (!s) {
            reader_nomem(r);
            return;
        }
        decode_struct(c, r, f->sub, s);
        store_ptr(p, s);
        return;
    }
    decode_value(c, r, f, compact, nullable, p);
}

static const sh_field_desc_t *find_tag(const sh_struct_desc_t *sd, uint32_t tag, int16_t v)
{
    for (uint32_t i = 0; i < sd->nfields; i++) {
        const sh_field_desc_t *f = &sd->fields[i];
        if (is_tagged(f, v) && (uint32_t)f->tag == tag)
            return f;
    }
    return NULL;
}

static void note_fail(codec_t *c, const sh_struct_desc_t *sd, const sh_field_desc_t *f)
{
    if (!c->fail_struct) {
        c->fail_struct = sd;
        c->fail_field = f;
    }
}

static void decode_tags(codec_t *c, sh_reader_t *r, const sh_struct_desc_t *sd, void *base)
{
    uint32_t n = sh_wire_get_uvarint(r);
    for (uint32_t i = 0; i < n && !r->err; i++) {
        uint32_t tag = sh_wire_get_uvarint(r);
        uint32_t size = sh_wire_get_uvarint(r);
        if (r->err)
            break;
        if (size > sh_reader_remaining(r)) {
            sh_reader_fail(r);
            break;
        }
        const sh_field_desc_t *f = find_tag(sd, tag, c->version);
        if (!f) {
            r->pos += size; /* unknown tags are skipped, as Kafka does */
            continue;
        }
        /* A known tag is read from exactly its declared size: data that
         * ends early or runs over means the frame is malformed. */
        sh_reader_t sub = *r;
        sub.end = r->pos + size;
        decode_field(c, &sub, f, base);
        if (!sub.err && sub.pos != sub.end)
            sh_reader_fail(&sub);
        if (sub.err) {
            r->err = sub.err;
            r->fail_at = sub.fail_at;
            note_fail(c, sd, f);
            return;
        }
        r->pos = sub.end;
    }
    if (r->err)
        note_fail(c, sd, NULL);
}

static void decode_struct(codec_t *c, sh_reader_t *r, const sh_struct_desc_t *sd, void *base)
{
    sh_msg_struct_init(sd, base);
    for (uint32_t i = 0; i < sd->nfields && !r->err; i++) {
        const sh_field_desc_t *f = &sd->fields[i];
        if (!sh_vrange_has(f->versions, c->version) || is_tagged(f, c->version))
            continue;
        decode_field(c, r, f, base);
        if (r->err)
            note_fail(c, sd, f);
    }
    if (c->flexible && !r->err)
        decode_tags(c, r, sd, base);
}

sh_err_t sh_msg_decode(const sh_msg_desc_t *md, sh_reader_t *r, sh_arena_t *a,
                       int16_t version, void *out)
{
    if (!sh_vrange_has(md->versions, version)) {
        sh_log(SH_LOG_DEBUG, "protocol", "cannot decode %s v%d: unknown version (valid %d to %d)",
               md->name, version, md->versions.lo, md->versions.hi);
        return SH_E_UNSUPPORTED;
    }
    if (r->err)
        return r->err;
    codec_t c = {version, sh_vrange_has(md->flexible, version), a, NULL, NULL};
    size_t start = sh_reader_offset(r);
    decode_struct(&c, r, md->body, out);
    if (!r->err)
        return SH_OK;
    sh_log(SH_LOG_DEBUG, "protocol",
           "could not decode %s (API key %d) v%d: %s at byte %zu of the frame "
           "(byte %zu of the body), in %s%s%s",
           md->name, md->api_key, version, r->err == SH_E_NOMEM ? "out of memory" : "malformed input",
           r->fail_at, r->fail_at >= start ? r->fail_at - start : 0,
           c.fail_struct ? c.fail_struct->name : md->name, c.fail_field ? "." : " tagged fields",
           c.fail_field ? c.fail_field->name : "");
    return r->err;
}

/* ---------------------------------------------------------------- encode */

static void writer_fail(sh_writer_t *w, sh_err_t err)
{
    if (!w->err)
        w->err = err;
}

static void encode_struct(codec_t *c, sh_writer_t *w, const sh_struct_desc_t *sd, const void *base);

static void encode_value(codec_t *c, sh_writer_t *w, const sh_field_desc_t *f, bool compact,
                         bool nullable, const void *p)
{
    sh_slice_t s;
    switch (f->type) {
    case SH_FT_BOOL:
        sh_wire_put_bool(w, *(const bool *)p);
        break;
    case SH_FT_INT8:
        sh_wire_put_i8(w, *(const int8_t *)p);
        break;
    case SH_FT_INT16:
        sh_wire_put_i16(w, *(const int16_t *)p);
        break;
    case SH_FT_UINT16:
        sh_wire_put_u16(w, *(const uint16_t *)p);
        break;
    case SH_FT_INT32:
        sh_wire_put_i32(w, *(const int32_t *)p);
        break;
    case SH_FT_UINT32:
        sh_wire_put_u32(w, *(const uint32_t *)p);
        break;
    case SH_FT_INT64:
        sh_wire_put_i64(w, *(const int64_t *)p);
        break;
    case SH_FT_FLOAT64:
        sh_wire_put_f64(w, *(const double *)p);
        break;
    case SH_FT_STRING:
        s = *(const sh_slice_t *)p;
        if (!s.ptr && !nullable)
            s = (sh_slice_t){(const uint8_t *)"", 0};
        if (!compact && s.len > INT16_MAX) {
            writer_fail(w, SH_E_INVAL);
            return;
        }
        sh_wire_put_string(w, compact, s);
        break;
    case SH_FT_BYTES:
    case SH_FT_RECORDS:
        s = *(const sh_slice_t *)p;
        if (!s.ptr && !nullable)
            s = (sh_slice_t){(const uint8_t *)"", 0};
        if (s.len > INT32_MAX - 1) {
            writer_fail(w, SH_E_INVAL);
            return;
        }
        /* records are spliced in by reference: stored batches are never
         * copied into a response */
        if (f->type == SH_FT_RECORDS)
            sh_wire_put_bytes_ref(w, compact, s);
        else
            sh_wire_put_bytes(w, compact, s);
        break;
    case SH_FT_UUID:
        sh_wire_put_uuid(w, *(const sh_uuid_t *)p);
        break;
    case SH_FT_STRUCT:
        encode_struct(c, w, f->sub, p);
        break;
    default:
        writer_fail(w, SH_E_INVAL);
        break;
    }
}

static void encode_field(codec_t *c, sh_writer_t *w, const sh_field_desc_t *f, const void *base)
{
    bool compact = sh_vrange_has(f->flexible, c->version);
    bool nullable = sh_vrange_has(f->nullable, c->version);
    const void *p = cat(base, f->offset);

    if (f->flags & SH_FF_ARRAY) {
        int32_t n = *(const int32_t *)cat(base, f->count_offset);
        const uint8_t *arr = load_ptr(p);
        if (n < 0 && !nullable)
            n = 0;
        if (n > 0 && !arr) {
            writer_fail(w, SH_E_INVAL);
            return;
        }
        sh_wire_put_array_len(w, compact, n);
        size_t esz = elem_size(f);
        for (int32_t i = 0; i < n && !w->err; i++)
            encode_value(c, w, f, compact, false, arr + (size_t)i * esz);
        return;
    }
    if (f->flags & SH_FF_PTR) {
        const void *s = load_ptr(p);
        if (nullable) {
            sh_wire_put_i8(w, s ? 1 : -1);
            if (!s)
                return;
        }
        if (s) {
            encode_struct(c, w, f->sub, s);
            return;
        }
        /* null in a version that cannot say null: send the defaults */
        void *tmp = malloc(f->sub->size);
        if (!tmp) {
            writer_fail(w, SH_E_NOMEM);
            return;
        }
        sh_msg_struct_init(f->sub, tmp);
        encode_struct(c, w, f->sub, tmp);
        free(tmp);
        return;
    }
    encode_value(c, w, f, compact, nullable, p);
}

static bool struct_is_default(const sh_struct_desc_t *sd, const void *base);

static bool field_is_default(const sh_field_desc_t *f, const void *base)
{
    const void *p = cat(base, f->offset);
    if (f->flags & SH_FF_ARRAY) {
        int32_t n = *(const int32_t *)cat(base, f->count_offset);
        return f->def_null ? n < 0 : n == 0;
    }
    switch (f->type) {
    case SH_FT_BOOL:
        return *(const bool *)p == (f->def_int != 0);
    case SH_FT_INT8:
        return *(const int8_t *)p == (int8_t)f->def_int;
    case SH_FT_INT16:
        return *(const int16_t *)p == (int16_t)f->def_int;
    case SH_FT_UINT16:
        return *(const uint16_t *)p == (uint16_t)f->def_int;
    case SH_FT_INT32:
        return *(const int32_t *)p == (int32_t)f->def_int;
    case SH_FT_UINT32:
        return *(const uint32_t *)p == (uint32_t)f->def_int;
    case SH_FT_INT64:
        return *(const int64_t *)p == f->def_int;
    case SH_FT_FLOAT64:
        /* bitwise, so -0.0 and NaN payloads survive a round trip */
        return memcmp(p, &f->def_float, sizeof(double)) == 0;
    case SH_FT_STRING:
    case SH_FT_BYTES:
    case SH_FT_RECORDS: {
        sh_slice_t s = *(const sh_slice_t *)p;
        sh_slice_t d = default_slice(f);
        if (!d.ptr)
            return s.ptr == NULL;
        return s.ptr && s.len == d.len && (d.len == 0 || memcmp(s.ptr, d.ptr, d.len) == 0);
    }
    case SH_FT_UUID: {
        static const sh_uuid_t zero;
        return memcmp(p, &zero, sizeof(zero)) == 0;
    }
    case SH_FT_STRUCT:
        if (f->flags & SH_FF_PTR)
            return load_ptr(p) == NULL;
        return struct_is_default(f->sub, p);
    default:
        return false;
    }
}

static bool struct_is_default(const sh_struct_desc_t *sd, const void *base)
{
    for (uint32_t i = 0; i < sd->nfields; i++)
        if (!field_is_default(&sd->fields[i], base))
            return false;
    return true;
}

static void encode_tags(codec_t *c, sh_writer_t *w, const sh_struct_desc_t *sd, const void *base)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < sd->nfields; i++) {
        const sh_field_desc_t *f = &sd->fields[i];
        if (is_tagged(f, c->version) && !field_is_default(f, base))
            n++;
    }
    sh_wire_put_uvarint(w, n);
    /* descriptors list tagged fields in increasing tag order */
    for (uint32_t i = 0; i < sd->nfields && n > 0; i++) {
        const sh_field_desc_t *f = &sd->fields[i];
        if (!is_tagged(f, c->version) || field_is_default(f, base))
            continue;
        sh_wire_put_uvarint(w, (uint64_t)f->tag);
        sh_writer_mark_t m = sh_writer_mark(w);
        encode_field(c, w, f, base);
        sh_writer_insert_size(w, m);
    }
}

static void encode_struct(codec_t *c, sh_writer_t *w, const sh_struct_desc_t *sd, const void *base)
{
    for (uint32_t i = 0; i < sd->nfields && !w->err; i++) {
        const sh_field_desc_t *f = &sd->fields[i];
        if (sh_vrange_has(f->versions, c->version) && !is_tagged(f, c->version))
            encode_field(c, w, f, base);
    }
    if (c->flexible)
        encode_tags(c, w, sd, base);
}

void sh_msg_encode(const sh_msg_desc_t *md, sh_writer_t *w, int16_t version, const void *in)
{
    if (!sh_vrange_has(md->versions, version)) {
        sh_log(SH_LOG_WARN, "protocol", "cannot encode %s v%d: unknown version", md->name, version);
        writer_fail(w, SH_E_INVAL);
        return;
    }
    codec_t c = {version, sh_vrange_has(md->flexible, version), NULL, NULL, NULL};
    encode_struct(&c, w, md->body, in);
}

/* ---------------------------------------------------------------- equal */

static bool struct_equal(const sh_struct_desc_t *sd, const void *a, const void *b);

static bool value_equal(const sh_field_desc_t *f, const void *a, const void *b)
{
    switch (f->type) {
    case SH_FT_STRING:
    case SH_FT_BYTES:
    case SH_FT_RECORDS:
        return sh_slice_eq(*(const sh_slice_t *)a, *(const sh_slice_t *)b);
    case SH_FT_BOOL:
        return *(const bool *)a == *(const bool *)b;
    case SH_FT_STRUCT:
        return struct_equal(f->sub, a, b);
    default:
        return memcmp(a, b, prim_size(f->type)) == 0;
    }
}

static bool field_equal(const sh_field_desc_t *f, const void *a, const void *b)
{
    const void *pa = cat(a, f->offset), *pb = cat(b, f->offset);
    if (f->flags & SH_FF_ARRAY) {
        int32_t na = *(const int32_t *)cat(a, f->count_offset);
        int32_t nb = *(const int32_t *)cat(b, f->count_offset);
        if (na != nb)
            return false;
        const uint8_t *ea = load_ptr(pa), *eb = load_ptr(pb);
        size_t esz = elem_size(f);
        for (int32_t i = 0; i < na; i++)
            if (!value_equal(f, ea + (size_t)i * esz, eb + (size_t)i * esz))
                return false;
        return true;
    }
    if (f->flags & SH_FF_PTR) {
        const void *sa = load_ptr(pa), *sb = load_ptr(pb);
        if (!sa || !sb)
            return sa == sb;
        return struct_equal(f->sub, sa, sb);
    }
    return value_equal(f, pa, pb);
}

static bool struct_equal(const sh_struct_desc_t *sd, const void *a, const void *b)
{
    for (uint32_t i = 0; i < sd->nfields; i++)
        if (!field_equal(&sd->fields[i], a, b))
            return false;
    return true;
}

bool sh_msg_equal(const sh_msg_desc_t *md, const void *a, const void *b)
{
    return struct_equal(md->body, a, b);
}
