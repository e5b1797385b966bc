/*
 * fuzz_protocol_response.c - libFuzzer target for the response side of the
 * codec: arbitrary bytes decoded as any API's response, in any version the
 * codec knows, the way a client reads a response frame.
 *
 * Input: byte 0 picks the API (sh_api_at(byte % sh_api_count())), byte 1
 * the version (min_version + byte % the number of versions); the rest is
 * one response frame without its size prefix: the response header in the
 * version the protocol gives for that API version (v1 when flexible, v0
 * otherwise and always for ApiVersions), then the body.
 *
 * Every successful decode is checked for stability, header and body:
 * the reader never claims more than the input; encode succeeds; its bytes
 * decode again, are consumed exactly, give equal values, and encode to
 * identical bytes. The typed wrappers of the API table (response_init,
 * response_decode, response_encode) are used, as the broker uses them.
 * Any failure aborts with the API and version.
 *
 * Seeds: tests/fuzz/corpus/fuzz_protocol_response/: sample responses
 * (sh_msg_sample, correlation id 7) of every API at its lowest, first
 * flexible or highest version, with or without nulls, and a few fuzzer
 * finds: a subset chosen to cover every edge the full set covers (each
 * API's typed wrappers are their own code, so nearly one file per API).
 * Single-threaded; everything is freed before returning.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sh_arena.h"
#include "protocol/sh_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const sh_api_info_t *ai, int16_t v)
{
    fprintf(stderr, "fuzz_protocol_response: %s: %s v%d\n", what, ai->name, v);
    abort();
}

static uint8_t *flatten(sh_writer_t *w, size_t *len)
{
    *len = sh_writer_size(w);
    uint8_t *b = malloc(*len ? *len : 1);
    if (!b)
        abort();
    sh_writer_flatten(w, b);
    return b;
}

/* Decode header and body from buf; SH_OK and the reader's offset in
 * *used, or the decoder's error. */
static sh_err_t decode(const sh_api_info_t *ai, int16_t hv, int16_t v, const uint8_t *buf,
                       size_t len, sh_arena_t *a, sh_response_header_t *h, void *m, size_t *used)
{
    sh_reader_t r;
    sh_reader_init(&r, buf, len);
    sh_err_t err = sh_response_header_decode_version(&r, hv, h);
    if (err != SH_OK)
        return err;
    ai->response_init(m);
    err = ai->response_decode(&r, a, v, m);
    *used = sh_reader_offset(&r);
    return err;
}

static uint8_t *encode(const sh_api_info_t *ai, int16_t hv, int16_t v,
                       const sh_response_header_t *h, const void *m, size_t *len)
{
    sh_writer_t w;
    sh_writer_init(&w);
    sh_response_header_encode_version(&w, hv, h);
    ai->response_encode(&w, v, m);
    if (w.err)
        fail("cannot encode a decoded response", ai, v);
    uint8_t *b = flatten(&w, len);
    sh_writer_fini(&w);
    return b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const sh_api_info_t *ai = sh_api_at(data[0] % sh_api_count());
    int nver = ai->max_version - ai->min_version + 1;
    int16_t v = (int16_t)(ai->min_version + data[1] % nver);
    int16_t hv = sh_response_header_version(ai->api_key, v);
    const uint8_t *buf = data + 2;
    size_t len = size - 2;

    sh_arena_t a;
    sh_arena_init(&a, 4096);
    void *m = sh_arena_alloc(&a, ai->response_size);
    void *m2 = sh_arena_alloc(&a, ai->response_size);
    if (!m || !m2)
        abort();
    sh_response_header_t h, h2;
    size_t used = 0;
    if (decode(ai, hv, v, buf, len, &a, &h, m, &used) != SH_OK) {
        sh_arena_fini(&a);
        return 0;
    }
    if (used > len)
        fail("read past the end", ai, v);

    size_t n1, n2, used2 = 0;
    uint8_t *e1 = encode(ai, hv, v, &h, m, &n1);
    if (decode(ai, hv, v, e1, n1, &a, &h2, m2, &used2) != SH_OK)
        fail("own encoding does not decode", ai, v);
    if (used2 != n1)
        fail("own encoding not consumed exactly", ai, v);
    if (!sh_msg_equal(&sh_response_header_desc, &h, &h2))
        fail("header values changed through encode and decode", ai, v);
    if (!sh_msg_equal(ai->response_desc, m, m2))
        fail("values changed through encode and decode", ai, v);
    uint8_t *e2 = encode(ai, hv, v, &h2, m2, &n2);
    if (n1 != n2 || memcmp(e1, e2, n1) != 0)
        fail("encode(decode(encode(x))) differs from encode(x)", ai, v);

    free(e1);
    free(e2);
    sh_arena_fini(&a);
    return 0;
}
