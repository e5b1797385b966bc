/*
 * sh_msg_sample.c - deterministic sample messages for tests and tools
 * (round-trip tests, fuzz seed corpora). Not used by the broker; it sits
 * in its own object file so only code that calls sh_msg_sample links it.
 *
 * Every field present in the requested version gets a value that differs
 * from its default, so encoders must write it (tagged fields included)
 * and a decoder that drops or misplaces it is caught by comparison.
 * Some strings are made longer than 127 bytes so compact lengths need two
 * varint bytes. Memory comes from the caller's arena; single-threaded.
 */
#include <string.h>

#include "protocol/sh_msg.h"

typedef struct sampler {
    sh_arena_t *arena;
    int16_t version;
    unsigned flags;
    uint64_t state;
    sh_err_t err;
} sampler_t;

static uint32_t next(sampler_t *s)
{
    /* splitmix64: cheap, and good enough to make every field differ */
    uint64_t z = (s->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (uint32_t)(z ^ (z >> 31));
}

static void *alloc(sampler_t *s, size_t n)
{
    void *p = sh_arena_alloc(s->arena, n ? n : 1);
    if (!p)
        s->err = SH_E_NOMEM;
    return p;
}

static size_t value_size(const sh_field_desc_t *f)
{
    switch (f->type) {
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
    case SH_FT_STRUCT:
        return f->sub->size;
    default:
        return 0;
    }
}

static void fill_struct(sampler_t *s, const sh_struct_desc_t *sd, void *base);

static sh_slice_t sample_bytes(sampler_t *s, bool text)
{
    uint32_t r = next(s);
    /* mostly short; one in eight crosses the one-byte varint limit */
    size_t len = (r & 7) == 0 ? 130 + (r >> 8) % 40 : 1 + (r >> 8) % 12;
    uint8_t *p = alloc(s, len);
    if (!p)
        return (sh_slice_t){(const uint8_t *)"x", 1};
    for (size_t i = 0; i < len; i++) {
        uint32_t c = next(s);
        p[i] = text ? (uint8_t)('a' + c % 26) : (uint8_t)c;
    }
    return (sh_slice_t){p, len};
}

static void fill_value(sampler_t *s, const sh_field_desc_t *f, bool null, void *p)
{
    uint32_t r = next(s);
    switch (f->type) {
    case SH_FT_BOOL:
        *(bool *)p = f->def_int == 0;
        break;
    case SH_FT_INT8: {
        int8_t v = (int8_t)(uint8_t)r;
        if (v == (int8_t)f->def_int)
            v = (int8_t)(uint8_t)(r + 1);
        *(int8_t *)p = v;
        break;
    }
    case SH_FT_INT16: {
        int16_t v = (int16_t)(uint16_t)r;
        if (v == (int16_t)f->def_int)
            v = (int16_t)(uint16_t)(r + 1);
        *(int16_t *)p = v;
        break;
    }
    case SH_FT_UINT16: {
        uint16_t v = (uint16_t)r;
        if (v == (uint16_t)f->def_int)
            v++;
        *(uint16_t *)p = v;
        break;
    }
    case SH_FT_INT32: {
        int32_t v = (int32_t)r;
        if (v == (int32_t)f->def_int)
            v = (int32_t)(r + 1);
        *(int32_t *)p = v;
        break;
    }
    case SH_FT_UINT32: {
        uint32_t v = r;
        if (v == (uint32_t)f->def_int)
            v++;
        *(uint32_t *)p = v;
        break;
    }
    case SH_FT_INT64: {
        int64_t v = (int64_t)((uint64_t)r << 32 | next(s));
        if (v == f->def_int)
            v ^= 1;
        *(int64_t *)p = v;
        break;
    }
    case SH_FT_FLOAT64: {
        double v = (double)(r % 100000) / 8.0 + 0.25;
        if (v == f->def_float)
            v += 1.0;
        *(double *)p = v;
        break;
    }
    case SH_FT_STRING:
    case SH_FT_BYTES:
    case SH_FT_RECORDS:
        *(sh_slice_t *)p = null ? SH_SLICE_NULL : sample_bytes(s, f->type == SH_FT_STRING);
        break;
    case SH_FT_UUID: {
        sh_uuid_t u;
        for (int i = 0; i < 16; i += 4) {
            uint32_t x = next(s);
            memcpy(u.b + i, &x, 4);
        }
        u.b[0] |= 1; /* never the all-zero "no id" default */
        *(sh_uuid_t *)p = u;
        break;
    }
    case SH_FT_STRUCT:
        fill_struct(s, f->sub, p);
        break;
    }
}

static void fill_field(sampler_t *s, const sh_field_desc_t *f, void *base)
{
    bool null = (s->flags & SH_SAMPLE_NULLS) && sh_vrange_has(f->nullable, s->version);
    void *p = (uint8_t *)base + f->offset;
    if (f->flags & SH_FF_ARRAY) {
        int32_t *count = (int32_t *)((uint8_t *)base + f->count_offset);
        void *arr = NULL;
        if (null) {
            *count = -1;
        } else {
            int32_t n = f->type == SH_FT_STRUCT ? 2 : 3;
            size_t esz = value_size(f);
            arr = alloc(s, (size_t)n * esz);
            if (!arr) {
                *count = 0;
            } else {
                memset(arr, 0, (size_t)n * esz);
                for (int32_t i = 0; i < n; i++)
                    fill_value(s, f, false, (uint8_t *)arr + (size_t)i * esz);
                *count = n;
            }
        }
        memcpy(p, &arr, sizeof(arr));
        return;
    }
    if (f->flags & SH_FF_PTR) {
        void *sub = NULL;
        if (!null) {
            sub = alloc(s, f->sub->size);
            if (sub)
                fill_struct(s, f->sub, sub);
        }
        memcpy(p, &sub, sizeof(sub));
        return;
    }
    fill_value(s, f, null, p);
}

static void fill_struct(sampler_t *s, const sh_struct_desc_t *sd, void *base)
{
    sh_msg_struct_init(sd, base);
    for (uint32_t i = 0; i < sd->nfields; i++) {
        const sh_field_desc_t *f = &sd->fields[i];
        if (sh_vrange_has(f->versions, s->version))
            fill_field(s, f, base);
    }
}

sh_err_t sh_msg_sample(const sh_msg_desc_t *md, sh_arena_t *a, int16_t version,
                       uint32_t seed, unsigned flags, void *out)
{
    sampler_t s = {a, version, flags, (uint64_t)seed * 0x2545F4914F6CDD1Dull + 1, SH_OK};
    fill_struct(&s, md->body, out);
    return s.err;
}
