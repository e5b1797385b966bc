/*
 * sh_msg.h - descriptors of the generated Kafka messages, and the one
 * codec that reads and writes any message from its descriptor.
 *
 * protocol/gen/shgen.py turns protocol/spec into C: a typed struct per
 * message and nested struct, a constant descriptor table per struct
 * (field name, wire type, versions, nullability, tag, default and the
 * offsetof of the C member) and thin typed wrappers such as
 * sh_metadata_request_decode(). The wrappers call the interpreter below,
 * so every message shares one well-fuzzed decoder and encoder
 * (docs/adr/001-protocol-codegen.md explains the choice).
 *
 * Representation of a field in the C struct:
 *   bool/int8..int64/uint16/uint32  the C type; float64 is double
 *   string, bytes, records          sh_slice_t (ptr == NULL means null)
 *   uuid                            sh_uuid_t
 *   struct                          embedded by value; a struct that is
 *                                   nullable in some version is a pointer
 *                                   (NULL = null)
 *   []T                             T *name; int32_t name_count;
 *                                   count -1 = null, 0 = empty
 *
 * Ownership: decoded strings, bytes and records borrow the reader's
 * buffer; arrays and nullable structs are allocated from the arena passed
 * to decode. Neither is freed individually. Encoders copy everything into
 * the writer except records, which are spliced in by reference
 * (sh_wire_put_bytes_ref), so their bytes must stay alive until the
 * writer's output has been sent.
 *
 * Thread safety: descriptors are constant; the functions keep no state.
 */
#ifndef SH_MSG_H
#define SH_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/sh_arena.h"
#include "common/sh_err.h"
#include "common/sh_slice.h"
#include "protocol/sh_wire.h"

typedef enum sh_ftype {
    SH_FT_BOOL = 1,
    SH_FT_INT8,
    SH_FT_INT16,
    SH_FT_UINT16,
    SH_FT_INT32,
    SH_FT_UINT32,
    SH_FT_INT64,
    SH_FT_FLOAT64,
    SH_FT_STRING,
    SH_FT_BYTES,
    SH_FT_RECORDS,
    SH_FT_UUID,
    SH_FT_STRUCT,
} sh_ftype_t;

/* An inclusive version interval; lo > hi is the empty set. Generated
 * tables always spell every interval out, so a zero-initialised member
 * can never silently mean "version 0". */
typedef struct sh_vrange {
    int16_t lo, hi;
} sh_vrange_t;

#define SH_VMAX INT16_MAX
#define SH_V(lo, hi) {(lo), (hi)}
#define SH_VFROM(lo) {(lo), SH_VMAX}
#define SH_VNONE {1, 0}

static inline bool sh_vrange_has(sh_vrange_t r, int16_t v)
{
    return v >= r.lo && v <= r.hi;
}

/* sh_field_desc_t.flags */
#define SH_FF_ARRAY 0x01  /* T *name + int32_t name_count */
#define SH_FF_PTR 0x02    /* nullable struct held by pointer */

struct sh_struct_desc;

typedef struct sh_field_desc {
    const char *name;         /* snake_case wire name, for logs */
    uint8_t type;             /* sh_ftype_t of the value or of each element */
    uint8_t flags;            /* SH_FF_* */
    int32_t tag;              /* tag number, or -1 */
    sh_vrange_t versions;     /* versions in which the field exists */
    sh_vrange_t nullable;     /* versions in which null is allowed */
    sh_vrange_t tagged;       /* versions in which it travels as a tag */
    sh_vrange_t flexible;     /* versions that use compact lengths */
    uint32_t offset;          /* offsetof the member (array pointer) */
    uint32_t count_offset;    /* offsetof name_count, for arrays */
    const struct sh_struct_desc *sub; /* struct type, for SH_FT_STRUCT */
    bool def_null;            /* default is null (strings, arrays, structs) */
    int64_t def_int;          /* default of bool and integer fields */
    double def_float;         /* default of float64 fields */
    const char *def_str;      /* default of string fields; NULL = "" */
} sh_field_desc_t;

typedef struct sh_struct_desc {
    const char *name;         /* schema name, e.g. "MetadataResponseBroker" */
    uint32_t size;            /* sizeof the C struct */
    uint32_t nfields;
    /* wire order; tagged fields come last, in increasing tag order */
    const sh_field_desc_t *fields;
} sh_struct_desc_t;

typedef struct sh_msg_desc {
    const char *name;         /* "MetadataRequest", "RequestHeader" */
    int16_t api_key;          /* -1 for headers */
    sh_vrange_t versions;     /* validVersions */
    sh_vrange_t flexible;     /* versions with tagged-field blocks */
    const sh_struct_desc_t *body;
} sh_msg_desc_t;

/* Set every field of m to its schema default. */
void sh_msg_init(const sh_msg_desc_t *md, void *m);
void sh_msg_struct_init(const sh_struct_desc_t *sd, void *s);

/*
 * Decode one message body of `version` from r into out. Fields absent in
 * that version get their default; known tagged fields are decoded,
 * unknown tags skipped. Array counts are checked against the bytes left
 * before anything is allocated from `a`. The reader is left just after
 * the body: trailing bytes are the caller's business (Kafka ignores them
 * in requests). Returns SH_OK, SH_E_DECODE (malformed or truncated; r->err
 * and r->fail_at say where, and a DEBUG line names the message, version,
 * byte offset and field), SH_E_NOMEM (arena exhausted, or no arena given
 * for a message that needs one) or SH_E_UNSUPPORTED (version outside the
 * message's validVersions; nothing read). On failure *out is unspecified
 * but safe to discard.
 */
sh_err_t sh_msg_decode(const sh_msg_desc_t *md, sh_reader_t *r, sh_arena_t *a,
                       int16_t version, void *out);

/*
 * Encode in as `version`. Only fields present in that version are written;
 * tagged fields only when they differ from their default, in tag order.
 * A null where the version forbids null is written as the empty value.
 * Problems that cannot be encoded (version outside validVersions, a
 * string longer than its length prefix allows, an array with a positive
 * count and no elements) set the writer's sticky error to SH_E_INVAL.
 */
void sh_msg_encode(const sh_msg_desc_t *md, sh_writer_t *w, int16_t version,
                   const void *in);

/* Deep comparison of two structs of md's type: every field, in every
 * version; strings compare null apart from empty, floats bitwise. */
bool sh_msg_equal(const sh_msg_desc_t *md, const void *a, const void *b);

/*
 * Test support (sh_msg_sample.c; linked only by code that calls it): fill
 * out with deterministic non-default values, derived from seed, for every
 * field present in `version` (others keep their default). Arrays get a
 * few elements. With SH_SAMPLE_NULLS, fields nullable in that version are
 * null instead. Memory comes from a. Returns SH_OK or SH_E_NOMEM.
 */
#define SH_SAMPLE_NULLS 0x01
sh_err_t sh_msg_sample(const sh_msg_desc_t *md, sh_arena_t *a, int16_t version,
                       uint32_t seed, unsigned flags, void *out);

#endif
