/*
 * test_storage_segment.c - segment objects: build/parse round trip with many
 * partitions and chunks, corruption and truncation are rejected, batch
 * search inside a chunk, key naming, an end-to-end put and ranged reads
 * through the local object store, and a replay of the fuzz corpus.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>

#include "common/sh_crc32c.h"
#include "common/sh_endian.h"
#include "storage/sh_segment.h"
#include "test_storage_util.h"

/* The fuzz target's checks, run over its corpus (see test_fuzz_corpus). */
#include "tests/fuzz/fuzz_storage_segment.c"

/* Write a RecordBatch header with `count` records' worth of offsets and
 * `payload` filler bytes; returns its size. Only the fields the segment
 * code reads need to be right, but the CRC is real for good measure. */
static size_t mk_batch(uint8_t *p, int64_t base, int32_t count, int64_t max_ts, size_t payload)
{
    size_t size = 61 + payload;
    memset(p, 0, 61);
    sh_store_be64(p, (uint64_t)base);
    sh_store_be32(p + 8, (uint32_t)(size - 12));
    sh_store_be32(p + 12, 0xffffffffu);
    p[16] = 2;
    sh_store_be32(p + 23, (uint32_t)(count - 1));
    sh_store_be64(p + 27, (uint64_t)(max_ts - 5));
    sh_store_be64(p + 35, (uint64_t)max_ts);
    sh_store_be64(p + 43, UINT64_MAX);
    sh_store_be16(p + 51, 0xffff);
    sh_store_be32(p + 53, 0xffffffffu);
    sh_store_be32(p + 57, (uint32_t)count);
    tsu_fill(p + 61, payload, (uint32_t)base);
    sh_store_be32(p + 17, sh_crc32c(0, p + 21, size - 21));
    return size;
}

static sh_uuid_t mk_topic(int t)
{
    sh_uuid_t u;
    for (int i = 0; i < 16; i++)
        u.b[i] = (uint8_t)(t * 31 + i);
    return u;
}

static uint8_t *flatten(const struct iovec *iov, int n, uint64_t size)
{
    uint8_t *o = malloc(size ? size : 1);
    assert_non_null(o);
    uint64_t at = 0;
    for (int i = 0; i < n; i++) {
        assert_true(at + iov[i].iov_len <= size);
        memcpy(o + at, iov[i].iov_base, iov[i].iov_len);
        at += iov[i].iov_len;
    }
    assert_int_equal(at, size);
    return o;
}

/* A test object: NT topics x NP partitions, each with 1..3 chunks of a few
 * batches, chunks of one partition interleaved with the others. */
#define NT 3
#define NP 20
#define MAXCH (NT * NP * 3)

typedef struct built {
    uint8_t *src[MAXCH];          /* each chunk's bytes as given */
    size_t srclen[MAXCH];
    sh_segment_chunk_t want[MAXCH];
    size_t n;
    uint8_t *obj;
    uint64_t size;
    sh_segment_builder_t *b;      /* kept only when asked for */
    const struct iovec *iov;      /* the builder's output, while b lives */
    int iovcnt;
} built_t;

static void build_object(built_t *bt, bool keep_builder)
{
    memset(bt, 0, sizeof(*bt));
    sh_segment_builder_t *b = sh_segment_builder_new();
    assert_non_null(b);
    int64_t next[NT][NP] = {{0}};
    for (int round = 0; round < 3; round++) {
        for (int t = 0; t < NT; t++) {
            for (int p = 0; p < NP; p++) {
                if (round > 0 && (t + p + round) % 3 == 0)
                    continue; /* partitions get different chunk counts */
                int nb = 1 + (t * 7 + p + round) % 4;
                uint8_t *buf = malloc((size_t)nb * (61 + 300));
                assert_non_null(buf);
                size_t len = 0;
                int64_t base = next[t][p];
                int64_t maxts = 0;
                for (int k = 0; k < nb; k++) {
                    int32_t cnt = 1 + (k * 3 + p) % 5;
                    int64_t ts = 1700000000000LL + p * 1000 + k * 7 + round;
                    if (ts > maxts)
                        maxts = ts;
                    len += mk_batch(buf + len, next[t][p], cnt, ts, (size_t)((p * 13 + k) % 300));
                    next[t][p] += cnt + (k == 1 ? 3 : 0); /* a gap, as compaction leaves */
                }
                /* cut into iovecs at awkward places: inside a header too */
                size_t c1 = len / 3, c2 = len / 3 + 17;
                struct iovec iov[4] = {
                    {buf, c1}, {NULL, 0}, {buf + c1, c2 - c1}, {buf + c2, len - c2}};
                const sh_segment_chunk_t *d;
                assert_int_equal(sh_segment_builder_add(b, mk_topic(t), p, 10 + t, iov, 4, &d),
                                 SH_OK);
                assert_int_equal(d->base_offset, base);
                assert_int_equal(d->max_timestamp, maxts);
                assert_int_equal(d->byte_length, len);
                assert_int_equal(d->partition, p);
                assert_int_equal(d->leader_epoch, 10 + t);
                bt->src[bt->n] = buf;
                bt->srclen[bt->n] = len;
                bt->want[bt->n] = *d;
                bt->n++;
            }
        }
    }
    assert_int_equal(sh_segment_builder_count(b), bt->n);
    uint64_t predicted = sh_segment_builder_size(b);
    const struct iovec *iov;
    int iovcnt;
    assert_int_equal(sh_segment_builder_finish(b, 1700000001234LL, &iov, &iovcnt, &bt->size),
                     SH_OK);
    assert_int_equal(bt->size, predicted);
    bt->obj = flatten(iov, iovcnt, bt->size);
    size_t n;
    const sh_segment_chunk_t *all = sh_segment_builder_chunks(b, &n);
    assert_int_equal(n, bt->n);
    assert_memory_equal(all, bt->want, n * sizeof(*all));
    /* finished: no more chunks, no second finish */
    struct iovec one = {bt->src[0], bt->srclen[0]};
    assert_int_equal(sh_segment_builder_add(b, mk_topic(0), 0, 0, &one, 1, NULL), SH_E_INVAL);
    assert_int_equal(sh_segment_builder_finish(b, 0, &iov, &iovcnt, NULL), SH_E_INVAL);
    if (keep_builder) {
        bt->b = b;
        bt->iov = iov;
        bt->iovcnt = iovcnt;
    } else {
        sh_segment_builder_free(b);
    }
}

static void built_free(built_t *bt)
{
    for (size_t i = 0; i < bt->n; i++)
        free(bt->src[i]);
    free(bt->obj);
    sh_segment_builder_free(bt->b);
}

static void test_roundtrip(void **state)
{
    (void)state;
    static built_t bt;
    build_object(&bt, false);
    assert_true(bt.n > 100);
    sh_segment_index_t idx;
    uint64_t need;
    assert_int_equal(sh_segment_index_parse(bt.obj, bt.size, bt.size, &idx, &need), SH_OK);
    assert_int_equal(idx.version, SH_SEGMENT_VERSION);
    assert_int_equal(idx.created_ms, 1700000001234LL);
    assert_int_equal(idx.nchunks, bt.n);
    assert_int_equal(idx.object_size, bt.size);
    assert_memory_equal(idx.chunks, bt.want, bt.n * sizeof(sh_segment_chunk_t));
    uint64_t prev_end = SH_SEGMENT_HEADER_SIZE;
    for (size_t i = 0; i < bt.n; i++) {
        const sh_segment_chunk_t *c = &idx.chunks[i];
        /* chunks are packed: the byte range alone locates the stored bytes */
        assert_int_equal(c->byte_offset, prev_end);
        prev_end = c->byte_offset + c->byte_length;
        assert_memory_equal(bt.obj + c->byte_offset, bt.src[i], bt.srclen[i]);
        assert_int_equal(sh_segment_chunk_verify(c, bt.obj + c->byte_offset, c->byte_length),
                         SH_OK);
        assert_ptr_equal(sh_segment_index_find(&idx, c->topic_id, c->partition, c->base_offset),
                         c);
        assert_ptr_equal(sh_segment_index_find(&idx, c->topic_id, c->partition, c->last_offset),
                         c);
    }
    assert_int_equal(prev_end, idx.index_offset);
    sh_uuid_t nobody = mk_topic(99);
    assert_null(sh_segment_index_find(&idx, nobody, 0, 0));
    assert_null(sh_segment_index_find(&idx, mk_topic(0), 0, 1000000));
    sh_segment_index_fini(&idx);
    assert_null(idx.chunks);
    built_free(&bt);
}

static void test_tail_reads(void **state)
{
    (void)state;
    static built_t bt;
    build_object(&bt, false);
    uint64_t isize = (uint64_t)bt.n * SH_SEGMENT_ENTRY_SIZE + SH_SEGMENT_TRAILER_SIZE;
    sh_segment_index_t idx;
    uint64_t need = 0;
    const uint8_t *end = bt.obj + bt.size;

    assert_int_equal(sh_segment_index_parse(end - 10, 10, bt.size, &idx, &need), SH_E_AGAIN);
    assert_int_equal(need, SH_SEGMENT_TRAILER_SIZE);
    assert_int_equal(sh_segment_index_parse(end - 32, 32, bt.size, &idx, &need), SH_E_AGAIN);
    assert_int_equal(need, isize);
    assert_int_equal(sh_segment_index_parse(end - (isize - 1), isize - 1, bt.size, &idx, &need),
                     SH_E_AGAIN);
    assert_int_equal(need, isize);
    assert_int_equal(sh_segment_index_parse(end - isize, isize, bt.size, &idx, &need), SH_OK);
    assert_memory_equal(idx.chunks, bt.want, bt.n * sizeof(sh_segment_chunk_t));
    sh_segment_index_fini(&idx);
    /* a tail that reaches into chunk data is fine too */
    assert_int_equal(sh_segment_index_parse(end - isize - 1000, isize + 1000, bt.size, &idx, &need),
                     SH_OK);
    sh_segment_index_fini(&idx);
    /* a tail longer than the object it claims to end is a caller bug */
    assert_int_equal(sh_segment_index_parse(bt.obj, bt.size, bt.size - 1, &idx, &need),
                     SH_E_CORRUPT);
    built_free(&bt);
}

static void test_crc_mismatch(void **state)
{
    (void)state;
    static built_t bt;
    build_object(&bt, false);
    sh_segment_index_t idx;
    assert_int_equal(sh_segment_index_parse(bt.obj, bt.size, bt.size, &idx, NULL), SH_OK);
    const sh_segment_chunk_t *c = &idx.chunks[idx.nchunks / 2];
    uint8_t *bytes = bt.obj + c->byte_offset;
    for (uint32_t at = 0; at < c->byte_length; at += 37) {
        bytes[at] ^= 0x01;
        assert_int_equal(sh_segment_chunk_verify(c, bytes, c->byte_length), SH_E_CORRUPT);
        bytes[at] ^= 0x01;
    }
    assert_int_equal(sh_segment_chunk_verify(c, bytes, c->byte_length), SH_OK);
    /* a short or long read is not the chunk either */
    assert_int_equal(sh_segment_chunk_verify(c, bytes, c->byte_length - 1), SH_E_CORRUPT);
    assert_int_equal(sh_segment_chunk_verify(c, bytes, c->byte_length + 1), SH_E_CORRUPT);
    assert_int_equal(sh_segment_chunk_verify(c, NULL, 0), SH_E_CORRUPT);
    sh_segment_index_fini(&idx);
    built_free(&bt);
}

static void test_corrupt_footer(void **state)
{
    (void)state;
    static built_t bt;
    build_object(&bt, false);
    sh_segment_index_t idx;
    uint64_t need;
    /* flip every bit of the index and trailer, one at a time */
    for (uint64_t at = bt.size - ((uint64_t)bt.n * SH_SEGMENT_ENTRY_SIZE + SH_SEGMENT_TRAILER_SIZE);
         at < bt.size; at++) {
        for (int bit = 0; bit < 8; bit++) {
            bt.obj[at] ^= (uint8_t)(1u << bit);
            sh_err_t err = sh_segment_index_parse(bt.obj, bt.size, bt.size, &idx, &need);
            assert_true(err == SH_E_CORRUPT || err == SH_E_UNSUPPORTED);
            assert_null(idx.chunks);
            bt.obj[at] ^= (uint8_t)(1u << bit);
        }
    }
    /* the header is checked when the whole object is given */
    bt.obj[0] ^= 0x20;
    assert_int_equal(sh_segment_index_parse(bt.obj, bt.size, bt.size, &idx, &need), SH_E_CORRUPT);
    bt.obj[0] ^= 0x20;
    /* an unknown version is reported as such, not as damage */
    uint8_t *t = bt.obj + bt.size - SH_SEGMENT_TRAILER_SIZE;
    sh_store_be16(t + 22, 2);
    uint64_t isize = (uint64_t)bt.n * SH_SEGMENT_ENTRY_SIZE + SH_SEGMENT_TRAILER_SIZE;
    sh_store_be32(t + 24, sh_crc32c(0, bt.obj + bt.size - isize, isize - 8));
    assert_int_equal(sh_segment_index_parse(bt.obj, bt.size, bt.size, &idx, &need),
                     SH_E_UNSUPPORTED);
    built_free(&bt);
}

/* Footers whose checksum is right but whose contents are impossible. */
static void test_hostile_footer(void **state)
{
    (void)state;
    uint8_t batch[200];
    size_t blen = mk_batch(batch, 5, 2, 1000, 50);
    sh_segment_builder_t *b = sh_segment_builder_new();
    struct iovec one = {batch, blen};
    assert_int_equal(sh_segment_builder_add(b, mk_topic(1), 0, 0, &one, 1, NULL), SH_OK);
    const struct iovec *iov;
    int iovcnt;
    uint64_t size;
    assert_int_equal(sh_segment_builder_finish(b, 0, &iov, &iovcnt, &size), SH_OK);
    uint8_t *good = flatten(iov, iovcnt, size);
    sh_segment_builder_free(b);
    uint8_t *o = malloc(size);
    uint8_t *e = o + size - SH_SEGMENT_TRAILER_SIZE - SH_SEGMENT_ENTRY_SIZE;
    uint8_t *t = o + size - SH_SEGMENT_TRAILER_SIZE;
    sh_segment_index_t idx;
    struct {
        size_t at;            /* offset in entry (0..63) or 64 + trailer offset */
        int width;
        uint64_t value;
    } cases[] = {
        {48, 8, 0},                         /* chunk overlaps the header */
        {48, 8, size},                      /* chunk starts past the index */
        {56, 4, 0xffffffffu},               /* chunk runs past the index */
        {56, 4, 0},                         /* empty chunk */
        {16, 4, 0x80000000u},               /* negative partition */
        {24, 8, UINT64_MAX},                /* negative base offset */
        {32, 8, 1},                         /* last offset before base */
        {64 + 0, 8, 0},                     /* index inside the header */
        {64 + 0, 8, UINT64_MAX},            /* index offset past the end */
        {64 + 16, 4, 2},                    /* more chunks than the index holds */
        {64 + 16, 4, 0xffffffffu},          /* absurd chunk count */
        {64 + 20, 2, 63},                   /* entries shorter than version 1's */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memcpy(o, good, size);
        uint8_t *p = cases[i].at < 64 ? e + cases[i].at : t + cases[i].at - 64;
        if (cases[i].width == 8)
            sh_store_be64(p, cases[i].value);
        else if (cases[i].width == 4)
            sh_store_be32(p, (uint32_t)cases[i].value);
        else
            sh_store_be16(p, (uint16_t)cases[i].value);
        /* re-seal so only the semantic checks can catch it */
        sh_store_be32(t + 24, sh_crc32c(0, e, SH_SEGMENT_ENTRY_SIZE + 24));
        assert_int_equal(sh_segment_index_parse(o, size, size, &idx, NULL), SH_E_CORRUPT);
    }
    /* the unmodified object still parses, so the cases above test something */
    memcpy(o, good, size);
    assert_int_equal(sh_segment_index_parse(o, size, size, &idx, NULL), SH_OK);
    sh_segment_index_fini(&idx);
    free(o);
    free(good);
}

static void test_truncated(void **state)
{
    (void)state;
    static built_t bt;
    build_object(&bt, false);
    sh_segment_index_t idx;
    uint64_t need;
    for (uint64_t cut = 1; cut < 300; cut++) {
        uint64_t sz = bt.size - cut;
        sh_err_t err = sh_segment_index_parse(bt.obj, sz, sz, &idx, &need);
        assert_int_not_equal(err, SH_OK);
        assert_null(idx.chunks);
    }
    for (uint64_t sz = 0; sz < 64; sz++)
        assert_int_not_equal(sh_segment_index_parse(bt.obj, sz, sz, &idx, &need), SH_OK);
    assert_int_not_equal(sh_segment_index_parse(NULL, 0, 0, &idx, &need), SH_OK);
    built_free(&bt);
}

static void test_builder_rejects(void **state)
{
    (void)state;
    uint8_t buf[1000];
    size_t a = mk_batch(buf, 100, 5, 10, 20);      /* 100..104 */
    size_t b2 = mk_batch(buf + a, 105, 1, 10, 0);   /* 105 */
    sh_segment_builder_t *b = sh_segment_builder_new();
    sh_uuid_t t = mk_topic(2);
    const sh_segment_chunk_t *d;

    struct iovec iov = {buf, a + b2 - 1};           /* last batch cut short */
    assert_int_equal(sh_segment_builder_add(b, t, 0, 0, &iov, 1, &d), SH_E_INVAL);
    iov.iov_len = a + b2 + 5;                        /* trailing garbage */
    assert_int_equal(sh_segment_builder_add(b, t, 0, 0, &iov, 1, &d), SH_E_INVAL);
    iov.iov_len = 0;
    assert_int_equal(sh_segment_builder_add(b, t, 0, 0, &iov, 1, &d), SH_E_INVAL);
    assert_int_equal(sh_segment_builder_add(b, t, 0, 0, NULL, 0, &d), SH_E_INVAL);
    iov.iov_len = a + b2;
    assert_int_equal(sh_segment_builder_add(b, t, -1, 0, &iov, 1, &d), SH_E_INVAL);
    buf[16] = 1;                                     /* magic 1 */
    assert_int_equal(sh_segment_builder_add(b, t, 0, 0, &iov, 1, &d), SH_E_INVAL);
    buf[16] = 2;
    sh_store_be64(buf + a, 104);                     /* overlaps the first batch */
    assert_int_equal(sh_segment_builder_add(b, t, 0, 0, &iov, 1, &d), SH_E_INVAL);
    sh_store_be64(buf + a, 105);
    sh_store_be32(buf + 23, 0xffffffffu);           /* negative lastOffsetDelta */
    assert_int_equal(sh_segment_builder_add(b, t, 0, 0, &iov, 1, &d), SH_E_INVAL);
    sh_store_be32(buf + 23, 4);
    sh_store_be32(buf + 8, 48);                      /* batchLength below the header */
    assert_int_equal(sh_segment_builder_add(b, t, 0, 0, &iov, 1, &d), SH_E_INVAL);
    sh_store_be32(buf + 8, (uint32_t)(a - 12));
    /* nothing was added by the failures; finishing an empty object fails */
    assert_int_equal(sh_segment_builder_count(b), 0);
    const struct iovec *oiov;
    int oiovcnt;
    assert_int_equal(sh_segment_builder_finish(b, 0, &oiov, &oiovcnt, NULL), SH_E_INVAL);
    /* and the repaired bytes are accepted */
    assert_int_equal(sh_segment_builder_add(b, t, 0, 0, &iov, 1, &d), SH_OK);
    assert_int_equal(d->base_offset, 100);
    assert_int_equal(d->last_offset, 105);
    assert_int_equal(d->byte_offset, SH_SEGMENT_HEADER_SIZE);
    sh_segment_builder_free(b);
}

static void test_chunk_find(void **state)
{
    (void)state;
    uint8_t buf[2000];
    size_t pos[5], len = 0;
    /* 100..104, 105, [gap 106..109], 110..112, 113..113, 200..209 */
    int64_t bases[5] = {100, 105, 110, 113, 200};
    int32_t counts[5] = {5, 1, 3, 1, 10};
    for (int i = 0; i < 5; i++) {
        pos[i] = len;
        len += mk_batch(buf + len, bases[i], counts[i], 1, (size_t)i * 10);
    }
    struct {
        int64_t target;
        sh_err_t err;
        size_t at;
    } cases[] = {
        {-5, SH_OK, pos[0]},  {0, SH_OK, pos[0]},    {100, SH_OK, pos[0]},
        {104, SH_OK, pos[0]}, {105, SH_OK, pos[1]},  {106, SH_OK, pos[2]},
        {109, SH_OK, pos[2]}, {112, SH_OK, pos[2]},  {113, SH_OK, pos[3]},
        {150, SH_OK, pos[4]}, {209, SH_OK, pos[4]},  {210, SH_E_NOTFOUND, len},
        {INT64_MAX, SH_E_NOTFOUND, len},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t p = 12345;
        assert_int_equal(sh_segment_chunk_find(buf, len, cases[i].target, &p), cases[i].err);
        assert_int_equal(p, cases[i].at);
    }
    /* a batch-aligned piece of a chunk (what a range read from a found
     * position returns) is searchable on its own */
    size_t p;
    assert_int_equal(sh_segment_chunk_find(buf + pos[2], len - pos[2], 113, &p), SH_OK);
    assert_int_equal(p, pos[3] - pos[2]);
    /* an empty range holds nothing */
    assert_int_equal(sh_segment_chunk_find(buf, 0, 0, &p), SH_E_NOTFOUND);
    assert_int_equal(p, 0);

    /* damage is reported at the batch where it is found */
    assert_int_equal(sh_segment_chunk_find(buf, pos[3] + 20, 200, &p), SH_E_CORRUPT);
    assert_int_equal(p, pos[3]); /* header cut short */
    assert_int_equal(sh_segment_chunk_find(buf, pos[3] + 62, 200, &p), SH_E_CORRUPT);
    assert_int_equal(p, pos[3]); /* body cut short */
    sh_store_be32(buf + pos[1] + 8, 10);
    assert_int_equal(sh_segment_chunk_find(buf, len, 200, &p), SH_E_CORRUPT);
    assert_int_equal(p, pos[1]);
    sh_store_be32(buf + pos[1] + 8, 0x7fffffff);
    assert_int_equal(sh_segment_chunk_find(buf, len, 200, &p), SH_E_CORRUPT);
    /* an earlier target is still found before the damage is reached */
    assert_int_equal(sh_segment_chunk_find(buf, len, 101, &p), SH_OK);
    assert_int_equal(p, 0);
    sh_store_be64(buf + pos[1], (uint64_t)INT64_MAX);
    sh_store_be32(buf + pos[1] + 8, 61 - 12);
    sh_store_be32(buf + pos[1] + 23, 1);
    assert_int_equal(sh_segment_chunk_find(buf, len, 200, &p), SH_E_CORRUPT); /* overflow */
}

static void test_keys(void **state)
{
    (void)state;
    char key[SH_SEGMENT_KEY_SIZE];
    int n = sh_segment_key_format(key, sizeof(key), 3, 1700000000123LL, 42);
    assert_int_equal(n, (int)strlen(key));
    assert_true(n < SH_SEGMENT_KEY_SIZE);
    assert_int_equal(sh_objstore_key_check(key), SH_OK);
    /* pinned: keys already in buckets must keep parsing (docs/segment-format.md) */
    assert_string_equal(key, "93/seg/00000003-0000018bcfe5687b-000000000000002a");
    int32_t w;
    int64_t e;
    uint64_t s;
    assert_int_equal(sh_segment_key_parse(key, &w, &e, &s), SH_OK);
    assert_int_equal(w, 3);
    assert_int_equal(e, 1700000000123LL);
    assert_int_equal(s, 42);

    char bad[SH_SEGMENT_KEY_SIZE];
    strcpy(bad, key);
    size_t bl = strlen(bad);
    bad[bl - 1] = bad[bl - 1] == '0' ? '1' : '0'; /* seq changed, hash not */
    assert_int_equal(sh_segment_key_parse(bad, NULL, NULL, NULL), SH_E_INVAL);
    strcpy(bad, key);
    bad[0] = bad[0] == 'f' ? '0' : (char)(bad[0] == '9' ? 'a' : bad[0] + 1);
    assert_int_equal(sh_segment_key_parse(bad, NULL, NULL, NULL), SH_E_INVAL);
    assert_int_equal(sh_segment_key_parse("ab/seg/x", NULL, NULL, NULL), SH_E_INVAL);
    assert_int_equal(sh_segment_key_parse("", NULL, NULL, NULL), SH_E_INVAL);
    assert_int_equal(sh_segment_key_format(key, 10, 1, 1, 1), -1);
    assert_int_equal(sh_segment_key_format(key, sizeof(key), -1, 1, 1), -1);

    /* consecutive objects of one writer land on many prefixes, evenly */
    int hist[256] = {0};
    for (uint64_t i = 0; i < 25600; i++) {
        assert_true(sh_segment_key_format(key, sizeof(key), 7, 99, i) > 0);
        unsigned h;
        assert_int_equal(sscanf(key, "%2x/", &h), 1);
        hist[h]++;
    }
    for (int i = 0; i < 256; i++) {
        assert_true(hist[i] > 40);  /* expected 100 each */
        assert_true(hist[i] < 200);
    }
}

/* Build, put through the object store, then read the way a broker does:
 * the index from a tail read, each chunk with one ranged GET. */
static void test_end_to_end_store(void **state)
{
    (void)state;
    char *dir = tsu_tempdir();
    assert_non_null(dir);
    char url[600];
    snprintf(url, sizeof(url), "file://%s", dir);
    sh_objstore_t *s;
    assert_int_equal(sh_objstore_open(url, &s), SH_OK);

    static built_t bt;
    build_object(&bt, true);
    char key[SH_SEGMENT_KEY_SIZE];
    sh_segment_key_format(key, sizeof(key), 1, 5, 9);
    /* the builder's iovec list goes to the store as is: chunk bytes are
     * never copied on the way */
    tsu_res_t pr = {0};
    assert_int_equal(sh_objstore_put_start(s, key, bt.iov, bt.iovcnt, tsu_cb, &pr), SH_OK);
    tsu_finish(s, &pr);
    assert_int_equal(pr.err, SH_OK);
    tsu_res_fini(&pr);

    tsu_res_t r;
    tsu_head(s, key, &r);
    assert_int_equal(r.object_size, bt.size);
    uint64_t size = r.object_size;
    tsu_res_fini(&r);

    uint64_t tail = size < SH_SEGMENT_TAIL_GUESS ? size : SH_SEGMENT_TAIL_GUESS;
    tsu_get_range(s, key, size - tail, tail, &r);
    assert_int_equal(r.err, SH_OK);
    sh_segment_index_t idx;
    uint64_t need;
    sh_err_t err = sh_segment_index_parse(r.block->data, r.block->size, size, &idx, &need);
    tsu_res_fini(&r);
    if (err == SH_E_AGAIN) {
        tsu_get_range(s, key, size - need, need, &r);
        err = sh_segment_index_parse(r.block->data, r.block->size, size, &idx, &need);
        tsu_res_fini(&r);
    }
    assert_int_equal(err, SH_OK);
    assert_int_equal(idx.nchunks, bt.n);
    for (uint32_t i = 0; i < idx.nchunks; i++) {
        const sh_segment_chunk_t *c = &idx.chunks[i];
        tsu_get_range(s, key, c->byte_offset, c->byte_length, &r);
        assert_int_equal(sh_segment_chunk_verify(c, r.block->data, r.block->size), SH_OK);
        size_t p;
        assert_int_equal(sh_segment_chunk_find(r.block->data, r.block->size, c->last_offset, &p),
                         SH_OK);
        assert_int_equal(sh_segment_chunk_find(r.block->data, r.block->size, c->last_offset + 1,
                                               &p),
                         SH_E_NOTFOUND);
        tsu_res_fini(&r);
    }
    sh_segment_index_fini(&idx);
    built_free(&bt);
    sh_objstore_free(s);
    tsu_rmrf(dir);
    free(dir);
}

/* Replay the committed fuzz corpus through the fuzz target's checks, so
 * inputs that once found bugs are rerun by every unit-test run. */
static void test_fuzz_corpus(void **state)
{
    (void)state;
    const char *dirs[] = {"tests/fuzz/corpus/fuzz_storage_segment",
                          "../tests/fuzz/corpus/fuzz_storage_segment", NULL};
    DIR *d = NULL;
    const char *dir = NULL;
    for (int i = 0; dirs[i] && !d; i++)
        if ((d = opendir(dirs[i])))
            dir = dirs[i];
    if (!d)
        skip(); /* run from elsewhere than the repository root */
    int files = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        static uint8_t buf[1 << 20];
        size_t n = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        /* exact-size heap copy so ASan catches any read past the end */
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, buf, n);
        LLVMFuzzerTestOneInput(copy, n);
        free(copy);
        files++;
    }
    closedir(d);
    assert_true(files > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_tail_reads),
        cmocka_unit_test(test_crc_mismatch),
        cmocka_unit_test(test_corrupt_footer),
        cmocka_unit_test(test_hostile_footer),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_builder_rejects),
        cmocka_unit_test(test_chunk_find),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_end_to_end_store),
        cmocka_unit_test(test_fuzz_corpus),
    };
    return cmocka_run_group_tests_name("storage_segment", tests, NULL, NULL);
}
