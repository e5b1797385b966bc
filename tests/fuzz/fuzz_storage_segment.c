/*
 * fuzz_storage_segment.c - arbitrary bytes as a segment object and as a
 * chunk. The reader must never read outside what it was given, and what it
 * accepts must be self-consistent:
 *  - parsing the whole input as an object never asks for more bytes, and
 *    every chunk it returns lies inside the object;
 *  - parsing only a short tail either succeeds the same way or asks for a
 *    tail length that then suffices;
 *  - the input as one chunk: batch search stays in bounds, and if the
 *    builder accepts it, the object it builds parses back to the same
 *    descriptor and bytes (build-then-parse round trip).
 * Also replayed from tests/unit/test_storage_segment.c over the corpus.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/sh_segment.h"

#define FZ_CHECK(c)      \
    do {                 \
        if (!(c))        \
            abort();     \
    } while (0)

static void fz_chunk_search(const uint8_t *chunk, size_t len, int64_t target)
{
    size_t pos = SIZE_MAX;
    sh_err_t err = sh_segment_chunk_find(chunk, len, target, &pos);
    FZ_CHECK(err == SH_OK || err == SH_E_NOTFOUND || err == SH_E_CORRUPT);
    FZ_CHECK(pos <= len);
    if (err == SH_E_NOTFOUND)
        FZ_CHECK(pos == len);
    if (err == SH_OK)
        FZ_CHECK(pos < len);
}

static void fz_index_use(const uint8_t *obj, size_t size, const sh_segment_index_t *idx)
{
    FZ_CHECK(idx->index_offset <= size && idx->object_size == size);
    for (uint32_t i = 0; i < idx->nchunks; i++) {
        const sh_segment_chunk_t *c = &idx->chunks[i];
        FZ_CHECK(c->byte_offset >= SH_SEGMENT_HEADER_SIZE);
        FZ_CHECK(c->byte_offset + c->byte_length <= idx->index_offset);
        const uint8_t *bytes = obj + c->byte_offset;
        (void)sh_segment_chunk_verify(c, bytes, c->byte_length);
        fz_chunk_search(bytes, c->byte_length, c->base_offset);
        fz_chunk_search(bytes, c->byte_length, c->last_offset);
        fz_chunk_search(bytes, c->byte_length, c->base_offset + (c->last_offset - c->base_offset) / 2);
        FZ_CHECK(sh_segment_index_find(idx, c->topic_id, c->partition, c->base_offset) != NULL);
    }
}

static void fz_roundtrip(const uint8_t *data, size_t size)
{
    sh_segment_builder_t *b = sh_segment_builder_new();
    if (!b)
        return;
    /* split the chunk in two iovecs at an input-chosen point so batch
     * headers straddling iovecs are exercised */
    size_t cut = size ? data[size - 1] % (size + 1) : 0;
    struct iovec iov[2] = {{(void *)data, cut}, {(void *)(data + cut), size - cut}};
    sh_uuid_t topic;
    memset(topic.b, 0xab, sizeof(topic.b));
    const sh_segment_chunk_t *c = NULL;
    if (sh_segment_builder_add(b, topic, 7, 3, iov, 2, &c) != SH_OK) {
        sh_segment_builder_free(b);
        return;
    }
    sh_segment_chunk_t want = *c;
    const struct iovec *oiov;
    int oiovcnt;
    uint64_t osize;
    FZ_CHECK(sh_segment_builder_finish(b, 1700000000000LL, &oiov, &oiovcnt, &osize) == SH_OK);
    uint8_t *obj = malloc(osize);
    FZ_CHECK(obj != NULL);
    size_t at = 0;
    for (int i = 0; i < oiovcnt; i++) {
        memcpy(obj + at, oiov[i].iov_base, oiov[i].iov_len);
        at += oiov[i].iov_len;
    }
    FZ_CHECK(at == osize);
    sh_segment_index_t idx;
    FZ_CHECK(sh_segment_index_parse(obj, osize, osize, &idx, NULL) == SH_OK);
    FZ_CHECK(idx.nchunks == 1 && memcmp(&idx.chunks[0], &want, sizeof(want)) == 0);
    FZ_CHECK(sh_segment_chunk_verify(&idx.chunks[0], obj + want.byte_offset, want.byte_length) ==
             SH_OK);
    FZ_CHECK(memcmp(obj + want.byte_offset, data, size) == 0);
    /* everything the builder accepts is searchable without error */
    size_t pos;
    FZ_CHECK(sh_segment_chunk_find(data, size, want.base_offset, &pos) == SH_OK && pos == 0);
    FZ_CHECK(sh_segment_chunk_find(data, size, want.last_offset, &pos) == SH_OK);
    FZ_CHECK(want.last_offset == INT64_MAX ||
             sh_segment_chunk_find(data, size, want.last_offset + 1, &pos) == SH_E_NOTFOUND);
    sh_segment_index_fini(&idx);
    free(obj);
    sh_segment_builder_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sh_segment_index_t idx;
    uint64_t need = 0;

    /* nothing to read: and data + 0 below would be arithmetic on a
     * pointer that may be NULL */
    if (size == 0) {
        FZ_CHECK(sh_segment_index_parse(data, 0, 0, &idx, &need) == SH_E_CORRUPT);
        return 0;
    }
    sh_err_t err = sh_segment_index_parse(data, size, size, &idx, &need);
    FZ_CHECK(err != SH_E_AGAIN); /* the whole object is always enough */
    if (err == SH_OK) {
        fz_index_use(data, size, &idx);
        sh_segment_index_fini(&idx);
    }
    FZ_CHECK(idx.chunks == NULL);

    /* tail-only reads, as a reader fetching the end of an object does */
    size_t tail = size < 64 ? size : 64;
    err = sh_segment_index_parse(data + size - tail, tail, size, &idx, &need);
    if (err == SH_E_AGAIN) {
        FZ_CHECK(need > tail && need <= size);
        err = sh_segment_index_parse(data + size - need, (size_t)need, size, &idx, &need);
        FZ_CHECK(err != SH_E_AGAIN);
    }
    if (err == SH_OK)
        sh_segment_index_fini(&idx);

    int64_t target = 0;
    if (size >= 8)
        memcpy(&target, data, 8);
    fz_chunk_search(data, size, target);
    fz_chunk_search(data, size, 0);
    fz_chunk_search(data, size, INT64_MAX);

    fz_roundtrip(data, size);
    return 0;
}
