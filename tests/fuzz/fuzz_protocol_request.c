/*
 * fuzz_protocol_request.c - libFuzzer target for the request path of the
 * codec. Input: one request frame without its size prefix.
 *
 * The header is decoded (any API key and version); if the codec knows
 * that API version, the rest is decoded as its request body, and also as
 * its response body (same schema machinery, twice the coverage). Every
 * successful decode is checked for stability: encode -> decode must
 * succeed, consume exactly the encoding, give equal values, and encode to
 * identical bytes. Any failure aborts. Corpus:
 * tests/fuzz/corpus/fuzz_protocol_request/ (captured client frames and
 * one sample request per API at a few versions).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sh_arena.h"
#include "protocol/sh_proto.h"

static uint8_t *flatten(sh_writer_t *w, size_t *len)
{
    *len = sh_writer_size(w);
    uint8_t *b = malloc(*len ? *len : 1);
    if (!b)
        abort();
    sh_writer_flatten(w, b);
    return b;
}

static void fail(const char *what, const sh_msg_desc_t *md, int16_t v)
{
    fprintf(stderr, "fuzz_protocol_request: %s: %s v%d\n", what, md ? md->name : "header", v);
    abort();
}

static void check_body(const sh_msg_desc_t *md, const uint8_t *buf, size_t len, int16_t v)
{
    sh_arena_t a;
    sh_arena_init(&a, 4096);
    void *m = sh_arena_alloc(&a, md->body->size);
    void *m2 = sh_arena_alloc(&a, md->body->size);
    if (!m || !m2)
        abort();
    sh_reader_t r;
    sh_reader_init(&r, buf, len);
    if (sh_msg_decode(md, &r, &a, v, m) != SH_OK) {
        sh_arena_fini(&a);
        return;
    }
    /* a successful decode never claims bytes beyond the input */
    if (sh_reader_offset(&r) > len)
        fail("read past the end", md, v);

    sh_writer_t w1, w2;
    sh_writer_init(&w1);
    sh_writer_init(&w2);
    sh_msg_encode(md, &w1, v, m);
    if (w1.err)
        fail("cannot encode a decoded message", md, v);
    size_t n1, n2;
    uint8_t *e1 = flatten(&w1, &n1);

    sh_reader_init(&r, e1, n1);
    if (sh_msg_decode(md, &r, &a, v, m2) != SH_OK)
        fail("own encoding does not decode", md, v);
    if (sh_reader_remaining(&r) != 0)
        fail("own encoding not fully consumed", md, v);
    if (!sh_msg_equal(md, m, m2))
        fail("values changed through encode and decode", md, v);
    sh_msg_encode(md, &w2, v, m2);
    uint8_t *e2 = flatten(&w2, &n2);
    if (n1 != n2 || memcmp(e1, e2, n1) != 0)
        fail("encode(decode(encode(x))) differs from encode(x)", md, v);

    free(e1);
    free(e2);
    sh_writer_fini(&w1);
    sh_writer_fini(&w2);
    sh_arena_fini(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sh_reader_t r;
    sh_reader_init(&r, data, size);
    sh_request_header_t h;
    int16_t hv;
    if (sh_request_header_decode(&r, &hv, &h) != SH_OK)
        return 0;
    size_t body = sh_reader_offset(&r);

    /* the header itself round-trips in the version that was chosen */
    sh_writer_t w;
    sh_writer_init(&w);
    sh_request_header_encode(&w, hv, &h);
    size_t n;
    uint8_t *e = flatten(&w, &n);
    sh_reader_t r2;
    sh_reader_init(&r2, e, n);
    sh_request_header_t h2;
    int16_t hv2;
    if (sh_request_header_decode(&r2, &hv2, &h2) != SH_OK || hv2 != hv ||
        sh_reader_remaining(&r2) != 0 || !sh_msg_equal(&sh_request_header_desc, &h, &h2))
        fail("header does not round-trip", NULL, hv);
    free(e);
    sh_writer_fini(&w);

    const sh_api_info_t *ai = sh_api_info(h.request_api_key);
    if (!sh_api_version_known(ai, h.request_api_version))
        return 0;
    check_body(ai->request_desc, data + body, size - body, h.request_api_version);
    check_body(ai->response_desc, data + body, size - body, h.request_api_version);
    return 0;
}
