/*
 * test_protocol_roundtrip.c - every request and response of every API, in
 * every valid version, plus both headers: sample values -> encode ->
 * decode -> encode gives identical bytes and equal values; every strict
 * prefix of an encoding is refused; null is refused exactly where the
 * schema forbids it.
 *
 * Encodings are decoded from exact-size heap copies so that, under ASan,
 * a read past the end of the frame is caught, not just a wrong answer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sh_arena.h"
#include "protocol/sh_proto.h"

typedef struct stats {
    size_t messages;      /* (message, version, mode) triples checked */
    size_t bytes;         /* total encoded bytes */
    size_t prefixes;      /* truncated decodes refused */
    size_t null_refused;  /* null in a non-nullable first field refused */
    size_t null_accepted; /* null in a nullable first field accepted */
} stats_t;

static uint8_t *flatten(sh_writer_t *w, size_t *len)
{
    *len = sh_writer_size(w);
    uint8_t *b = malloc(*len ? *len : 1);
    assert_non_null(b);
    sh_writer_flatten(w, b);
    return b;
}

/* Decode exactly len bytes from a fresh heap copy, freed on return: only
 * the result code, the counts and the null-ness of slices may be looked
 * at afterwards. */
static sh_err_t decode_copy(sh_api_decode_fn dec, const sh_msg_desc_t *md, const uint8_t *buf,
                            size_t len, sh_arena_t *a, int16_t v, void *out)
{
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, buf, len);
    sh_reader_t r;
    sh_reader_init(&r, copy, len);
    sh_err_t err = dec ? dec(&r, a, v, out) : sh_msg_decode(md, &r, a, v, out);
    free(copy);
    return err;
}

static void check_one(const char *what, const sh_msg_desc_t *md, sh_api_decode_fn dec,
                      sh_api_encode_fn enc, int16_t v, unsigned flags, uint32_t seed, stats_t *st)
{
    sh_arena_t a;
    sh_arena_init(&a, 16384);
    void *orig = sh_arena_alloc(&a, md->body->size);
    void *back = sh_arena_alloc(&a, md->body->size);
    assert_non_null(orig);
    assert_non_null(back);
    assert_int_equal(sh_msg_sample(md, &a, v, seed, flags, orig), SH_OK);

    sh_writer_t w1, w2;
    sh_writer_init(&w1);
    sh_writer_init(&w2);
    if (enc)
        enc(&w1, v, orig);
    else
        sh_msg_encode(md, &w1, v, orig);
    assert_int_equal(w1.err, 0);
    size_t len1;
    uint8_t *b1 = flatten(&w1, &len1);

    /* decode from a heap buffer that lives until the comparisons are done */
    uint8_t *frame = malloc(len1 ? len1 : 1);
    assert_non_null(frame);
    memcpy(frame, b1, len1);
    sh_reader_t r;
    sh_reader_init(&r, frame, len1);
    sh_err_t err = dec ? dec(&r, &a, v, back) : sh_msg_decode(md, &r, &a, v, back);
    if (err != SH_OK)
        fail_msg("%s %s v%d: decode of own encoding failed (%d at byte %zu)", what, md->name, v, err,
                 r.fail_at);
    if (sh_reader_offset(&r) != len1)
        fail_msg("%s %s v%d: decode consumed %zu of %zu bytes", what, md->name, v,
                 sh_reader_offset(&r), len1);
    if (!sh_msg_equal(md, orig, back))
        fail_msg("%s %s v%d (flags %u): decoded values differ from the originals", what, md->name, v,
                 flags);

    if (enc)
        enc(&w2, v, back);
    else
        sh_msg_encode(md, &w2, v, back);
    assert_int_equal(w2.err, 0);
    size_t len2;
    uint8_t *b2 = flatten(&w2, &len2);
    if (len1 != len2 || memcmp(b1, b2, len1) != 0)
        fail_msg("%s %s v%d: re-encoding differs (%zu vs %zu bytes)", what, md->name, v, len1, len2);

    /* every strict prefix must be refused, without reading past its end */
    for (size_t n = 0; n < len1; n++) {
        sh_arena_t pa;
        sh_arena_init(&pa, 4096);
        void *tmp = sh_arena_alloc(&pa, md->body->size);
        sh_err_t perr = decode_copy(dec, md, b1, n, &pa, v, tmp);
        if (perr != SH_E_DECODE)
            fail_msg("%s %s v%d: prefix of %zu/%zu bytes gave %d, want SH_E_DECODE", what, md->name,
                     v, n, len1, perr);
        sh_arena_fini(&pa);
        st->prefixes++;
    }

    st->messages++;
    st->bytes += len1;
    free(frame);
    free(b1);
    free(b2);
    sh_writer_fini(&w1);
    sh_writer_fini(&w2);
    sh_arena_fini(&a);
}

/* Two different seeds must give different values and bytes whenever the
 * version has a field other than a bool: proves equality and encoding are not vacuous. */
static void check_seeds_differ(const sh_msg_desc_t *md, int16_t v)
{
    bool any = false; /* a bool has only one non-default value */
    for (uint32_t i = 0; i < md->body->nfields; i++)
        any |= sh_vrange_has(md->body->fields[i].versions, v) &&
               md->body->fields[i].type != SH_FT_BOOL;
    if (!any)
        return;
    sh_arena_t a;
    sh_arena_init(&a, 16384);
    void *x = sh_arena_alloc(&a, md->body->size);
    void *y = sh_arena_alloc(&a, md->body->size);
    assert_int_equal(sh_msg_sample(md, &a, v, 1, 0, x), SH_OK);
    assert_int_equal(sh_msg_sample(md, &a, v, 2, 0, y), SH_OK);
    if (sh_msg_equal(md, x, y))
        fail_msg("%s v%d: samples of different seeds compare equal", md->name, v);
    sh_writer_t wx, wy;
    sh_writer_init(&wx);
    sh_writer_init(&wy);
    sh_msg_encode(md, &wx, v, x);
    sh_msg_encode(md, &wy, v, y);
    size_t lx, ly;
    uint8_t *bx = flatten(&wx, &lx), *by = flatten(&wy, &ly);
    assert_false(lx == ly && memcmp(bx, by, lx) == 0);
    free(bx);
    free(by);
    sh_writer_fini(&wx);
    sh_writer_fini(&wy);
    sh_arena_fini(&a);
}

/* Replace the first field's value by null on the wire (when it is a
 * string, bytes or array, which all start with a length) and check the
 * decoder accepts it exactly when the schema allows null. */
static void check_null_first_field(const sh_msg_desc_t *md, int16_t v, stats_t *st)
{
    const sh_field_desc_t *f = NULL;
    for (uint32_t i = 0; i < md->body->nfields; i++) {
        const sh_field_desc_t *g = &md->body->fields[i];
        if (sh_vrange_has(g->versions, v) && !(g->tag >= 0 && sh_vrange_has(g->tagged, v))) {
            f = g;
            break;
        }
    }
    if (!f)
        return;
    bool array = f->flags & SH_FF_ARRAY;
    if (!array && f->type != SH_FT_STRING && f->type != SH_FT_BYTES && f->type != SH_FT_RECORDS)
        return;
    bool compact = sh_vrange_has(f->flexible, v);
    size_t width = compact ? 1 : (f->type == SH_FT_STRING && !array ? 2 : 4);

    sh_arena_t a;
    sh_arena_init(&a, 16384);
    uint8_t *m = sh_arena_alloc(&a, md->body->size);
    assert_int_equal(sh_msg_sample(md, &a, v, 7, 0, m), SH_OK);
    /* make the field empty so its encoding is just the length */
    if (array)
        *(int32_t *)(m + f->count_offset) = 0;
    else
        *(sh_slice_t *)(m + f->offset) = (sh_slice_t){(const uint8_t *)"", 0};
    sh_writer_t w;
    sh_writer_init(&w);
    sh_msg_encode(md, &w, v, m);
    size_t len;
    uint8_t *b = flatten(&w, &len);
    assert_true(len >= width);
    /* the empty length is 0 (classic) or 1 (compact); null is -1 or 0 */
    if (compact) {
        assert_int_equal(b[0], 1);
        b[0] = 0;
    } else {
        for (size_t i = 0; i < width; i++) {
            assert_int_equal(b[i], 0);
            b[i] = 0xff;
        }
    }
    uint8_t *back = sh_arena_alloc(&a, md->body->size);
    sh_err_t err = decode_copy(NULL, md, b, len, &a, v, back);
    if (sh_vrange_has(f->nullable, v)) {
        if (err != SH_OK)
            fail_msg("%s v%d: null %s refused although nullable", md->name, v, f->name);
        if (array)
            assert_int_equal(*(int32_t *)(back + f->count_offset), -1);
        else
            assert_null(((sh_slice_t *)(back + f->offset))->ptr);
        st->null_accepted++;
    } else {
        if (err != SH_E_DECODE)
            fail_msg("%s v%d: null %s accepted although not nullable", md->name, v, f->name);
        st->null_refused++;
    }
    free(b);
    sh_writer_fini(&w);
    sh_arena_fini(&a);
}

static void check_msg(const char *what, const sh_msg_desc_t *md, sh_api_decode_fn dec,
                      sh_api_encode_fn enc, stats_t *st)
{
    for (int16_t v = md->versions.lo; v <= md->versions.hi; v++) {
        check_one(what, md, dec, enc, v, 0, (uint32_t)v * 31u + 1, st);
        check_one(what, md, dec, enc, v, SH_SAMPLE_NULLS, (uint32_t)v * 31u + 2, st);
        check_seeds_differ(md, v);
        check_null_first_field(md, v, st);
    }
}

static void test_all_apis(void **state)
{
    (void)state;
    stats_t st = {0};
    size_t versions = 0;
    assert_int_equal(sh_api_count(), 88);
    for (size_t i = 0; i < sh_api_count(); i++) {
        const sh_api_info_t *ai = sh_api_at(i);
        assert_non_null(ai);
        assert_ptr_equal(sh_api_info(ai->api_key), ai);
        assert_int_equal(ai->request_desc->versions.lo, ai->min_version);
        assert_int_equal(ai->request_desc->versions.hi, ai->max_version);
        assert_int_equal(ai->request_size, ai->request_desc->body->size);
        assert_int_equal(ai->response_size, ai->response_desc->body->size);
        check_msg("request", ai->request_desc, ai->request_decode, ai->request_encode, &st);
        check_msg("response", ai->response_desc, ai->response_decode, ai->response_encode, &st);
        versions += (size_t)(ai->max_version - ai->min_version + 1);
    }
    check_msg("header", &sh_request_header_desc, NULL, NULL, &st);
    check_msg("header", &sh_response_header_desc, NULL, NULL, &st);
    print_message("roundtrip: %zu APIs, %zu API versions, %zu message encodings (%zu bytes), "
                  "%zu prefixes refused, null: %zu refused / %zu accepted\n",
                  sh_api_count(), versions, st.messages, st.bytes, st.prefixes, st.null_refused,
                  st.null_accepted);
    /* each API version is checked as request and response, in two modes */
    assert_true(st.messages >= versions * 4);
    assert_true(st.null_refused > 50);
    assert_true(st.null_accepted > 10);
}

/* init() must give the same struct as decoding a body where every field
 * is absent: the lowest version of a message, with defaults elsewhere. */
static void test_init_matches_absent_fields(void **state)
{
    (void)state;
    const sh_api_info_t *ai = sh_api_info(SH_API_METADATA);
    sh_metadata_response_t m;
    sh_metadata_response_init(&m);
    assert_int_equal(m.controller_id, -1);
    assert_null(m.cluster_id.ptr);
    assert_int_equal(m.cluster_authorized_operations, INT32_MIN);
    assert_int_equal(m.brokers_count, 0);

    /* Metadata v0 response: brokers [] and topics [] only */
    static const uint8_t v0[] = {0, 0, 0, 0, 0, 0, 0, 0};
    sh_arena_t a;
    sh_arena_init(&a, 1024);
    sh_metadata_response_t d;
    memset(&d, 0x5a, sizeof(d));
    sh_reader_t r;
    sh_reader_init(&r, v0, sizeof(v0));
    assert_int_equal(ai->response_decode(&r, &a, 0, &d), SH_OK);
    assert_true(sh_msg_equal(&sh_metadata_response_desc, &m, &d));
    sh_arena_fini(&a);
}

/*
 * Not a check: with SH_WRITE_FUZZ_SEEDS=DIR set, the program only writes
 * one sample request frame (header and body, no size prefix) per API at
 * its lowest, first flexible and highest version into DIR. That is how the generated part
 * of tests/fuzz/corpus/fuzz_protocol_request/ was made.
 */
static void write_fuzz_seeds(void **state)
{
    (void)state;
    const char *dir = getenv("SH_WRITE_FUZZ_SEEDS");
    size_t written = 0;
    for (size_t i = 0; i < sh_api_count(); i++) {
        const sh_api_info_t *ai = sh_api_at(i);
        int16_t vs[3] = {ai->min_version, ai->flexible_from, ai->max_version};
        for (int j = 0; j < 3; j++) {
            int16_t v = vs[j];
            if (v < 0 || (j > 0 && (v == vs[0] || (j == 2 && v == vs[1]))))
                continue;
            sh_arena_t a;
            sh_arena_init(&a, 16384);
            void *m = sh_arena_alloc(&a, ai->request_size);
            assert_int_equal(sh_msg_sample(ai->request_desc, &a, v, 99, 0, m), SH_OK);
            sh_request_header_t h;
            sh_request_header_init(&h);
            h.request_api_key = ai->api_key;
            h.request_api_version = v;
            h.correlation_id = 1000 + ai->api_key;
            h.client_id = sh_slice_str("fuzz-seed");
            sh_writer_t w;
            sh_writer_init(&w);
            sh_request_header_encode(&w, sh_request_header_version(ai->api_key, v), &h);
            ai->request_encode(&w, v, m);
            size_t len;
            uint8_t *b = flatten(&w, &len);
            char path[1024];
            snprintf(path, sizeof(path), "%s/sample-%02d-%s-v%d", dir, ai->api_key, ai->name, v);
            FILE *f = fopen(path, "wb");
            assert_non_null(f);
            assert_int_equal(fwrite(b, 1, len, f), len);
            fclose(f);
            free(b);
            sh_writer_fini(&w);
            sh_arena_fini(&a);
            written++;
        }
    }
    print_message("wrote %zu fuzz seeds to %s\n", written, dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_apis),
        cmocka_unit_test(test_init_matches_absent_fields),
    };
    if (getenv("SH_WRITE_FUZZ_SEEDS")) {
        const struct CMUnitTest seeds[] = {cmocka_unit_test(write_fuzz_seeds)};
        return cmocka_run_group_tests(seeds, NULL, NULL);
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
