/*
 * test_protocol_compress.c - the four record codecs: round trips, the hard
 * output limit (decompression bombs), each kind of output buffer, and
 * malformed, truncated or padded streams.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <snappy-c.h>
#include <zstd.h>

#include "common/sh_arena.h"
#include "common/sh_endian.h"
#include "protocol/sh_compress.h"

static const sh_codec_t real_codecs[] = {SH_CODEC_GZIP, SH_CODEC_SNAPPY, SH_CODEC_LZ4,
                                         SH_CODEC_ZSTD};
#define NCODECS (sizeof(real_codecs) / sizeof(real_codecs[0]))

/* Half compressible data: runs of a pattern broken by pseudo-random bytes
 * (fixed seed, so failures repeat). */
static uint8_t *make_data(size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    assert_non_null(p);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = (i / 64) % 2 ? (uint8_t)(x >> 24) : (uint8_t)("streamhouse"[i % 11]);
    }
    return p;
}

static sh_slice_t S(const void *p, size_t n)
{
    return (sh_slice_t){(const uint8_t *)p, n};
}

static void test_names(void **state)
{
    (void)state;
    for (int c = 0; c <= SH_CODEC_MAX; c++)
        assert_int_equal(sh_codec_parse(sh_codec_name(c)), c);
    assert_string_equal(sh_codec_name(SH_CODEC_ZSTD), "zstd");
    assert_string_equal(sh_codec_name(5), "unknown");
    assert_int_equal(sh_codec_parse("brotli"), -1);
}

static void test_round_trip(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 100, 32768, 70000, 300001};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        size_t n = sizes[s];
        uint8_t *data = make_data(n);
        for (int c = 0; c <= SH_CODEC_MAX; c++) {
            sh_outbuf_t z, out;
            sh_outbuf_init_heap(&z);
            sh_outbuf_init_heap(&out);
            assert_int_equal(sh_compress((sh_codec_t)c, S(data, n), &z), 0);
            if (c != SH_CODEC_NONE && n >= 32768)
                assert_true(z.len < n); /* it did compress */
            /* append after existing bytes, which must survive */
            assert_int_equal(sh_outbuf_append(&out, "pre", 3), 0);
            assert_int_equal(sh_decompress((sh_codec_t)c, sh_outbuf_slice(&z), &out, n), 0);
            assert_int_equal(out.len, n + 3);
            assert_memory_equal(out.data, "pre", 3);
            if (n)
                assert_memory_equal(out.data + 3, data, n);
            /* one byte under the limit: refused, and out as it was */
            if (n) {
                assert_int_equal(sh_decompress((sh_codec_t)c, sh_outbuf_slice(&z), &out, n - 1),
                                 SH_KERR_MESSAGE_TOO_LARGE);
                assert_int_equal(out.len, n + 3);
            }
            sh_outbuf_fini(&z);
            sh_outbuf_fini(&out);
        }
        free(data);
    }
}

static void test_fixed_and_arena(void **state)
{
    (void)state;
    size_t n = 50000;
    uint8_t *data = make_data(n);
    uint8_t *mem = malloc(n);
    assert_non_null(mem);
    sh_arena_t arena;
    sh_arena_init(&arena, 1024);
    for (size_t i = 0; i < NCODECS; i++) {
        sh_outbuf_t z;
        sh_outbuf_init_heap(&z);
        assert_int_equal(sh_compress(real_codecs[i], S(data, n), &z), 0);

        sh_outbuf_t fx;
        sh_outbuf_init_fixed(&fx, mem, n);
        assert_int_equal(sh_decompress(real_codecs[i], sh_outbuf_slice(&z), &fx, SIZE_MAX), 0);
        assert_int_equal(fx.len, n);
        assert_ptr_equal(fx.data, mem);
        assert_memory_equal(mem, data, n);
        /* one byte short: the buffer is the limit */
        sh_outbuf_init_fixed(&fx, mem, n - 1);
        assert_int_equal(sh_decompress(real_codecs[i], sh_outbuf_slice(&z), &fx, SIZE_MAX),
                         SH_KERR_MESSAGE_TOO_LARGE);
        assert_int_equal(fx.len, 0);
        sh_outbuf_fini(&fx); /* a no-op for caller memory */

        sh_outbuf_t ar;
        sh_outbuf_init_arena(&ar, &arena);
        assert_int_equal(sh_decompress(real_codecs[i], sh_outbuf_slice(&z), &ar, n), 0);
        assert_int_equal(ar.len, n);
        assert_memory_equal(ar.data, data, n);
        /* compressing into a fixed buffer that is too small */
        uint8_t tiny[8];
        sh_outbuf_t t;
        sh_outbuf_init_fixed(&t, tiny, sizeof(tiny));
        assert_int_equal(sh_compress(real_codecs[i], S(data, n), &t), SH_KERR_MESSAGE_TOO_LARGE);
        assert_int_equal(t.len, 0);
        sh_outbuf_fini(&z);
    }
    sh_arena_fini(&arena);
    free(mem);
    free(data);
}

/* 16 MiB of zeros shrink to a few KiB; decompressing with a 64 KiB cap must
 * stop there, without the buffer growing past twice the cap. */
static void test_bombs(void **state)
{
    (void)state;
    size_t big = 16u << 20, cap = 64u << 10;
    uint8_t *zeros = calloc(1, big);
    assert_non_null(zeros);
    for (size_t i = 0; i < NCODECS; i++) {
        sh_outbuf_t z, out;
        sh_outbuf_init_heap(&z);
        sh_outbuf_init_heap(&out);
        assert_int_equal(sh_compress(real_codecs[i], S(zeros, big), &z), 0);
        assert_true(z.len < big / 20);
        assert_int_equal(sh_decompress(real_codecs[i], sh_outbuf_slice(&z), &out, cap),
                         SH_KERR_MESSAGE_TOO_LARGE);
        assert_int_equal(out.len, 0);
        assert_true(out.cap <= 2 * cap);
        sh_outbuf_fini(&z);
        sh_outbuf_fini(&out);
    }
    /* raw snappy declares its length first: refused before any allocation */
    size_t zl = snappy_max_compressed_length(big);
    char *raw = malloc(zl);
    assert_non_null(raw);
    assert_int_equal(snappy_compress((const char *)zeros, big, raw, &zl), SNAPPY_OK);
    sh_outbuf_t out;
    sh_outbuf_init_heap(&out);
    assert_int_equal(sh_decompress(SH_CODEC_SNAPPY, S(raw, zl), &out, cap),
                     SH_KERR_MESSAGE_TOO_LARGE);
    assert_null(out.data);
    sh_outbuf_fini(&out);
    free(raw);
    free(zeros);
}

static void test_truncated_and_garbage(void **state)
{
    (void)state;
    size_t n = 10000;
    uint8_t *data = make_data(n);
    for (size_t i = 0; i < NCODECS; i++) {
        sh_outbuf_t z, out;
        sh_outbuf_init_heap(&z);
        sh_outbuf_init_heap(&out);
        assert_int_equal(sh_compress(real_codecs[i], S(data, n), &z), 0);
        size_t cuts[] = {z.len - 1, z.len / 2, 5, 1};
        for (size_t k = 0; k < sizeof(cuts) / sizeof(cuts[0]); k++) {
            sh_err_t err = sh_decompress(real_codecs[i], S(z.data, cuts[k]), &out, 1u << 20);
            if (err != SH_E_DECODE)
                fail_msg("%s cut to %zu: %s", sh_codec_name(real_codecs[i]), cuts[k],
                         sh_err_str(err));
            assert_int_equal(out.len, 0);
        }
        /* empty input is not a stream */
        assert_int_equal(sh_decompress(real_codecs[i], S("", 0), &out, 100), SH_E_DECODE);
        /* a flipped byte in the middle */
        z.data[z.len / 2] ^= 0x55;
        sh_err_t err = sh_decompress(real_codecs[i], sh_outbuf_slice(&z), &out, 1u << 20);
        assert_true(err == SH_E_DECODE || (err == 0 && (out.len != n ||
                                                        memcmp(out.data, data, n) != 0)) ||
                    err == SH_KERR_MESSAGE_TOO_LARGE);
        sh_outbuf_fini(&z);
        sh_outbuf_fini(&out);
    }
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02};
    sh_outbuf_t out;
    sh_outbuf_init_heap(&out);
    for (size_t i = 0; i < NCODECS; i++)
        assert_int_equal(sh_decompress(real_codecs[i], S(junk, sizeof(junk)), &out, 1000),
                         SH_E_DECODE);
    assert_int_equal(sh_decompress((sh_codec_t)5, S(junk, sizeof(junk)), &out, 1000), SH_E_INVAL);
    assert_int_equal(sh_compress((sh_codec_t)7, S(junk, sizeof(junk)), &out), SH_E_INVAL);
    assert_int_equal(sh_decompress(SH_CODEC_NONE, S(junk, sizeof(junk)), &out, 7),
                     SH_KERR_MESSAGE_TOO_LARGE);
    assert_int_equal(sh_outbuf_reserve(&out, SIZE_MAX - 8), SH_E_NOMEM);
    sh_outbuf_fini(&out);
    free(data);
}

/* Two streams back to back: gzip members, zstd frames and lz4 frames are
 * all read through; anything else after a stream is an error. */
static void test_concatenated(void **state)
{
    (void)state;
    static const sh_codec_t multi[] = {SH_CODEC_GZIP, SH_CODEC_LZ4, SH_CODEC_ZSTD};
    for (size_t i = 0; i < 3; i++) {
        sh_outbuf_t z, out;
        sh_outbuf_init_heap(&z);
        sh_outbuf_init_heap(&out);
        assert_int_equal(sh_compress(multi[i], sh_slice_str("hello, "), &z), 0);
        assert_int_equal(sh_compress(multi[i], sh_slice_str("world"), &z), 0);
        assert_int_equal(sh_decompress(multi[i], sh_outbuf_slice(&z), &out, 100), 0);
        assert_int_equal(out.len, 12);
        assert_memory_equal(out.data, "hello, world", 12);
        sh_outbuf_reset(&out);
        assert_int_equal(sh_outbuf_append(&z, "xyzzy-not-a-stream", 18), 0);
        assert_int_equal(sh_decompress(multi[i], sh_outbuf_slice(&z), &out, 100), SH_E_DECODE);
        assert_int_equal(out.len, 0);
        sh_outbuf_fini(&z);
        sh_outbuf_fini(&out);
    }
}

static void test_snappy_framings(void **state)
{
    (void)state;
    sh_outbuf_t z, out;
    sh_outbuf_init_heap(&z);
    sh_outbuf_init_heap(&out);
    /* what we write is xerial: magic, version 1, compatible 1 */
    assert_int_equal(sh_compress(SH_CODEC_SNAPPY, sh_slice_str("abc"), &z), 0);
    static const uint8_t magic[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};
    assert_memory_equal(z.data, magic, 8);
    assert_int_equal(sh_load_be32(z.data + 8), 1);
    assert_int_equal(sh_load_be32(z.data + 12), 1);
    /* header alone: an empty stream */
    assert_int_equal(sh_decompress(SH_CODEC_SNAPPY, S(z.data, 16), &out, 10), 0);
    assert_int_equal(out.len, 0);
    /* a chunk length beyond the input */
    sh_store_be32(z.data + 16, 1000);
    assert_int_equal(sh_decompress(SH_CODEC_SNAPPY, sh_outbuf_slice(&z), &out, 10), SH_E_DECODE);
    /* three bytes of a chunk length */
    assert_int_equal(sh_decompress(SH_CODEC_SNAPPY, S(z.data, 19), &out, 10), SH_E_DECODE);

    /* raw snappy, as some non-Java producers send */
    char raw[64];
    size_t rl = sizeof(raw);
    assert_int_equal(snappy_compress("raw snappy block", 16, raw, &rl), SNAPPY_OK);
    assert_int_equal(sh_decompress(SH_CODEC_SNAPPY, S(raw, rl), &out, 16), 0);
    assert_int_equal(out.len, 16);
    assert_memory_equal(out.data, "raw snappy block", 16);
    sh_outbuf_fini(&z);
    sh_outbuf_fini(&out);
}

/* A zstd frame that asks for a 128 MiB window and does not say how big its
 * content is: with a small limit, refused rather than allocated. */
static void test_zstd_window_limit(void **state)
{
    (void)state;
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    assert_non_null(cctx);
    assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_windowLog, 27)));
    assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0)));
    uint8_t dst[4096];
    const char *msg = "a small payload behind a huge window";
    ZSTD_outBuffer o = {dst, sizeof(dst), 0};
    ZSTD_inBuffer in = {msg, strlen(msg), 0};
    assert_false(ZSTD_isError(ZSTD_compressStream2(cctx, &o, &in, ZSTD_e_continue)));
    ZSTD_inBuffer none = {NULL, 0, 0};
    assert_int_equal(ZSTD_compressStream2(cctx, &o, &none, ZSTD_e_end), 0);
    ZSTD_freeCCtx(cctx);

    sh_outbuf_t out;
    sh_outbuf_init_heap(&out);
    assert_int_equal(sh_decompress(SH_CODEC_ZSTD, S(dst, o.pos), &out, 1u << 20), SH_E_DECODE);
    assert_int_equal(out.len, 0);
    sh_outbuf_fini(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_fixed_and_arena),
        cmocka_unit_test(test_bombs),
        cmocka_unit_test(test_truncated_and_garbage),
        cmocka_unit_test(test_concatenated),
        cmocka_unit_test(test_snappy_framings),
        cmocka_unit_test(test_zstd_window_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
