/*
 * test_protocol_record_batch.c - RecordBatch v2 parsing, validation codes,
 * patching, iteration and the builder, against batches made by real
 * third-party clients (tests/vectors/batches/, see its README) and the two
 * worked examples of RECORD-BATCH.md.
 *
 * Run from the repository root (as `make unit` does), or point
 * SH_VECTOR_DIR at the vectors directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sh_crc32c.h"
#include "common/sh_endian.h"
#include "protocol/sh_compress.h"
#include "protocol/sh_record_batch.h"

/* ------------------------------------------------------------ helpers */

static const char *vector_dir(void)
{
    const char *d = getenv("SH_VECTOR_DIR");
    return d ? d : "tests/vectors/batches";
}

/* Whole file into a malloc'd buffer; fails the test if unreadable. */
static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    buf[n] = 0;
    *len = (size_t)n;
    return buf;
}

static sh_slice_t S(const void *p, size_t n)
{
    return (sh_slice_t){(const uint8_t *)p, n};
}

static int hexdig(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Does `got` equal the .expect token: null, x:<hex> or rep:<hex>:<n>? */
static int value_matches(const char *tok, sh_slice_t got)
{
    if (strcmp(tok, "null") == 0)
        return got.ptr == NULL;
    if (!got.ptr)
        return 0;
    if (strncmp(tok, "x:", 2) == 0) {
        const char *h = tok + 2;
        size_t n = strlen(h) / 2;
        if (n != got.len)
            return 0;
        for (size_t i = 0; i < n; i++)
            if ((hexdig(h[2 * i]) << 4 | hexdig(h[2 * i + 1])) != got.ptr[i])
                return 0;
        return 1;
    }
    if (strncmp(tok, "rep:", 4) == 0) {
        const char *h = tok + 4;
        const char *colon = strchr(h, ':');
        if (!colon)
            return 0;
        size_t ulen = (size_t)(colon - h) / 2;
        size_t reps = strtoul(colon + 1, NULL, 10);
        if (ulen == 0 || got.len != ulen * reps)
            return 0;
        for (size_t i = 0; i < got.len; i++) {
            size_t j = i % ulen;
            if ((hexdig(h[2 * j]) << 4 | hexdig(h[2 * j + 1])) != got.ptr[i])
                return 0;
        }
        return 1;
    }
    fail_msg("bad value token %s", tok);
    return 0;
}

/* "*" matches anything (kcat stamps records with the wall clock). */
static void expect_num(const char *name, const char *want, int64_t got, const char *vec)
{
    if (strcmp(want, "*") == 0)
        return;
    long long w = strtoll(want, NULL, 10);
    if (w != got)
        fail_msg("%s: %s is %lld, expected %lld", vec, name, (long long)got, w);
}

/* ------------------------------------------------ vectors, field by field */

/* Decode one vector with our iterator and compare every field and record
 * with its .expect file. Returns the number of records checked. */
static int check_vector(const char *name, const uint8_t *bin, size_t len, char *expect)
{
    sh_outbuf_t scratch;
    sh_outbuf_init_heap(&scratch);
    sh_record_batch_iter_t it;
    sh_err_t err = sh_record_batch_iter_init(&it, S(bin, len), &scratch, 0);
    if (err)
        fail_msg("%s: iter_init: %s (%s)", name, sh_err_str(err), it.reason);
    const sh_record_batch_t *b = &it.batch;
    assert_int_equal(b->bytes.len, len);
    assert_true(sh_record_batch_crc_ok(b));

    int records = 0, in_record = 0, headers_left = 0;
    sh_record_t rec;
    sh_record_header_iter_t hi;
    char *save = NULL;
    for (char *line = strtok_r(expect, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#' || line[0] == 0)
            continue;
        char f[6][4096];
        int nf = sscanf(line, "%4095s %4095s %4095s %4095s %4095s %4095s", f[0], f[1], f[2], f[3],
                        f[4], f[5]);
        if (strcmp(f[0], "record") == 0) {
            assert_int_equal(nf, 6);
            if (in_record && headers_left)
                fail_msg("%s: record %d lacks headers", name, records - 1);
            if (!sh_record_batch_iter_next(&it, &rec))
                fail_msg("%s: record %s missing: %s", name, f[1], it.reason ? it.reason : "end");
            expect_num("offset delta", f[1], rec.offset_delta, name);
            expect_num("record timestamp", f[2], rec.timestamp, name);
            if (!value_matches(f[3], rec.key))
                fail_msg("%s: record %s key differs", name, f[1]);
            if (!value_matches(f[4], rec.value))
                fail_msg("%s: record %s value differs", name, f[1]);
            expect_num("header count", f[5], rec.header_count, name);
            headers_left = rec.header_count;
            sh_record_header_iter_init(&hi, &rec);
            in_record = 1;
            records++;
        } else if (strcmp(f[0], "header") == 0) {
            assert_int_equal(nf, 3);
            sh_record_header_t h;
            if (!in_record || headers_left == 0 || !sh_record_header_iter_next(&hi, &h))
                fail_msg("%s: unexpected header line", name);
            headers_left--;
            if (!value_matches(f[1], h.key) || !value_matches(f[2], h.value))
                fail_msg("%s: record %d header differs", name, records - 1);
        } else {
            assert_int_equal(nf, 2);
            int64_t got = 0;
            if (strcmp(f[0], "codec") == 0)
                got = sh_record_batch_codec(b);
            else if (strcmp(f[0], "base_offset") == 0)
                got = b->base_offset;
            else if (strcmp(f[0], "leader_epoch") == 0)
                got = b->partition_leader_epoch;
            else if (strcmp(f[0], "producer_id") == 0)
                got = b->producer_id;
            else if (strcmp(f[0], "producer_epoch") == 0)
                got = b->producer_epoch;
            else if (strcmp(f[0], "base_sequence") == 0)
                got = b->base_sequence;
            else if (strcmp(f[0], "transactional") == 0)
                got = sh_record_batch_is_transactional(b);
            else if (strcmp(f[0], "control") == 0)
                got = sh_record_batch_is_control(b);
            else if (strcmp(f[0], "timestamp_type") == 0)
                got = sh_record_batch_timestamp_type(b);
            else if (strcmp(f[0], "base_timestamp") == 0)
                got = b->base_timestamp;
            else if (strcmp(f[0], "max_timestamp") == 0)
                got = b->max_timestamp;
            else if (strcmp(f[0], "count") == 0)
                got = b->record_count;
            else
                fail_msg("%s: unknown expect key %s", name, f[0]);
            expect_num(f[0], f[1], got, name);
        }
    }
    if (headers_left)
        fail_msg("%s: headers missing", name);
    if (sh_record_batch_iter_next(&it, &rec))
        fail_msg("%s: more records than expected", name);
    if (it.err)
        fail_msg("%s: %s", name, it.reason);
    assert_int_equal(records, b->record_count);
    assert_int_equal(b->last_offset_delta, records - 1);
    sh_outbuf_fini(&scratch);
    return records;
}

/* Produce-path validation of an untouched vector, then a single-byte flip
 * at every CRC-covered position (and in the CRC itself) must be caught. */
static void check_vector_validation(const char *name, uint8_t *bin, size_t len)
{
    sh_outbuf_t scratch;
    sh_outbuf_init_heap(&scratch);
    sh_record_batch_policy_t pol;
    sh_record_batch_policy_init(&pol);
    pol.walk_compressed = true;
    pol.scratch = &scratch;
    sh_record_batch_info_t info;

    bool control = (bin[SH_RB_OFF_ATTRIBUTES + 1] & SH_RB_ATTR_CONTROL) != 0;
    bool nonzero_base = sh_load_be64(bin) != 0;
    sh_err_t err = sh_record_batch_validate(S(bin, len), &pol, &info);
    if (control || nonzero_base) {
        /* the commit marker: clients may not send it */
        assert_int_equal(err, SH_KERR_INVALID_RECORD);
        pol.from_client = false;
        err = sh_record_batch_validate(S(bin, len), &pol, &info);
    }
    if (err)
        fail_msg("%s: validate: %s (%s)", name, sh_err_str(err), info.reason);
    assert_true(info.records_walked);
    assert_ptr_equal(info.batch.ptr, bin);
    assert_int_equal(info.batch.len, len);

    for (size_t i = SH_RB_OFF_CRC; i < len; i++) {
        sh_outbuf_reset(&scratch);
        bin[i] ^= 0xff;
        err = sh_record_batch_validate(S(bin, len), &pol, &info);
        bin[i] ^= 0xff;
        if (err != SH_KERR_CORRUPT_MESSAGE)
            fail_msg("%s: flipping byte %zu gave %s, not CORRUPT_MESSAGE", name, i,
                     sh_err_str(err));
    }
    /* what the broker rewrites is outside the CRC: still valid */
    pol.from_client = false;
    assert_int_equal(sh_record_batch_patch(bin, len, 123456789, 42), 0);
    sh_outbuf_reset(&scratch);
    assert_int_equal(sh_record_batch_validate(S(bin, len), &pol, &info), 0);
    sh_outbuf_fini(&scratch);
}

static void test_vectors_from_clients(void **state)
{
    (void)state;
    const char *dir = vector_dir();
    DIR *d = opendir(dir);
    if (!d)
        fail_msg("vector directory %s not found (run from the repository root)", dir);
    int nvec = 0, nrec = 0;
    int seen_codec[5] = {0};
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".bin") != 0)
            continue;
        char path[1024], epath[1024];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        snprintf(epath, sizeof(epath), "%s/%.*s.expect", dir, (int)(n - 4), e->d_name);
        size_t len, elen;
        uint8_t *bin = read_file(path, &len);
        char *expect = (char *)read_file(epath, &elen);
        nrec += check_vector(e->d_name, bin, len, expect);
        check_vector_validation(e->d_name, bin, len);
        seen_codec[bin[SH_RB_OFF_ATTRIBUTES + 1] & 7]++;
        free(bin);
        free(expect);
        nvec++;
    }
    closedir(d);
    /* the set is 26 batches; a missing checkout must not pass quietly */
    assert_true(nvec >= 26);
    assert_true(nrec >= 100);
    for (int c = 0; c < 5; c++)
        assert_true(seen_codec[c] >= 3);
}

/* --------------------------------------------- the RECORD-BATCH.md examples */

static const uint8_t example_a[70] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3a, 0xff, 0xff,
    0xff, 0xff, 0x02, 0xbb, 0xcc, 0x41, 0x15, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, 0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68,
    0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0x00, 0x00, 0x00, 0x01, 0x10, 0x00, 0x00, 0x00, 0x01, 0x04, 0x68, 0x69, 0x00,
};

static const uint8_t example_b[78] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x42, 0xff, 0xff,
    0xff, 0xff, 0x02, 0xdb, 0xc1, 0x80, 0xda, 0x00, 0x30, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, 0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xe8, 0x00, 0x00, 0xff, 0xff, 0xff,
    0xff, 0x00, 0x00, 0x00, 0x01, 0x20, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x01,
    0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x00,
};

#define TS0 1700000000000LL

static void test_example_a(void **state)
{
    (void)state;
    sh_record_batch_t b;
    assert_int_equal(sh_record_batch_parse(&b, S(example_a, sizeof(example_a))), 0);
    assert_int_equal(b.batch_length, 58);
    assert_int_equal(b.crc, 0xbbcc4115u);
    assert_int_equal(sh_record_batch_crc_compute(example_a, sizeof(example_a)), 0xbbcc4115u);
    assert_true(sh_record_batch_crc_ok(&b));
    assert_int_equal(b.partition_leader_epoch, -1);
    assert_int_equal(b.record_count, 1);
    assert_true(b.base_timestamp == TS0 && b.max_timestamp == TS0);
    assert_true(b.producer_id == -1);
    assert_int_equal(b.records.len, 9);

    sh_record_batch_info_t info;
    assert_int_equal(sh_record_batch_validate(S(example_a, sizeof(example_a)), NULL, &info), 0);
    assert_int_equal(info.record_count, 1);
    assert_int_equal(info.last_offset_delta, 0);
    assert_true(info.max_timestamp == TS0 && info.base_timestamp == TS0);
    assert_int_equal(info.codec, SH_CODEC_NONE);
    assert_false(info.is_control);
    assert_int_equal(info.error_index, -1);

    /* the builder writes the very same bytes */
    sh_record_batch_spec_t spec;
    sh_record_batch_spec_init(&spec);
    sh_record_spec_t r = {.timestamp = TS0, .key = SH_SLICE_NULL, .value = sh_slice_str("hi")};
    sh_outbuf_t out;
    sh_outbuf_init_heap(&out);
    assert_int_equal(sh_record_batch_build(&spec, &r, 1, &out), 0);
    assert_int_equal(out.len, sizeof(example_a));
    assert_memory_equal(out.data, example_a, sizeof(example_a));
    sh_outbuf_fini(&out);
}

static void test_example_b(void **state)
{
    (void)state;
    sh_record_batch_spec_t spec;
    sh_record_batch_spec_init(&spec);
    spec.base_offset = 5;
    spec.transactional = true;
    spec.control = true;
    spec.producer_id = 1000;
    spec.producer_epoch = 0;
    static const uint8_t key[4] = {0, 0, 0, 1};
    static const uint8_t val[6] = {0, 0, 0, 0, 0, 7};
    sh_record_spec_t r = {.timestamp = TS0, .key = S(key, 4), .value = S(val, 6)};
    sh_outbuf_t out;
    sh_outbuf_init_heap(&out);
    assert_int_equal(sh_record_batch_build(&spec, &r, 1, &out), 0);
    assert_int_equal(out.len, sizeof(example_b));
    assert_memory_equal(out.data, example_b, sizeof(example_b));

    sh_record_batch_info_t info;
    sh_record_batch_policy_t pol;
    sh_record_batch_policy_init(&pol);
    /* base offset 5 is what a client may not send; then: control batch */
    assert_int_equal(sh_record_batch_validate(S(example_b, 78), &pol, &info),
                     SH_KERR_INVALID_RECORD);
    assert_non_null(strstr(info.reason, "baseOffset"));
    sh_record_batch_patch(out.data, out.len, 0, -1);
    assert_int_equal(sh_record_batch_validate(sh_outbuf_slice(&out), &pol, &info),
                     SH_KERR_INVALID_RECORD);
    assert_non_null(strstr(info.reason, "control"));
    pol.from_client = false;
    assert_int_equal(sh_record_batch_validate(S(example_b, 78), &pol, &info), 0);
    assert_true(info.is_control && info.is_transactional);
    assert_true(info.producer_id == 1000);
    sh_outbuf_fini(&out);
}

/* ------------------------------------------------- validation error codes */

/* Build a three-record batch into out (reset first). */
static void build3(sh_outbuf_t *out, sh_codec_t codec)
{
    sh_record_header_t hdr = {sh_slice_str("h"), sh_slice_str("v")};
    sh_record_spec_t r[3] = {
        {.timestamp = TS0, .key = sh_slice_str("a"), .value = sh_slice_str("one")},
        {.timestamp = TS0 + 10, .key = sh_slice_str("b"), .value = sh_slice_str("two"),
         .headers = &hdr, .header_count = 1},
        {.timestamp = TS0 + 5, .key = sh_slice_str("c"), .value = SH_SLICE_NULL},
    };
    sh_record_batch_spec_t spec;
    sh_record_batch_spec_init(&spec);
    spec.codec = codec;
    sh_outbuf_reset(out);
    assert_int_equal(sh_record_batch_build(&spec, r, 3, out), 0);
}

static void refresh_crc(uint8_t *b, size_t len)
{
    sh_store_be32(b + SH_RB_OFF_CRC, sh_record_batch_crc_compute(b, len));
}

static sh_err_t validate_buf(const uint8_t *p, size_t len, const sh_record_batch_policy_t *pol,
                             sh_record_batch_info_t *info)
{
    return sh_record_batch_validate(S(p, len), pol, info);
}

static void test_validate_framing(void **state)
{
    (void)state;
    sh_outbuf_t out;
    sh_outbuf_init_heap(&out);
    build3(&out, SH_CODEC_NONE);
    size_t n = out.len;
    sh_record_batch_info_t info;
    uint8_t *buf = calloc(1, 2 * n + 64);
    assert_non_null(buf);
    memcpy(buf, out.data, n);

    assert_int_equal(validate_buf(buf, n, NULL, &info), 0);
    assert_int_equal(info.record_count, 3);
    assert_true(info.max_timestamp == TS0 + 10);

    /* nothing usable */
    assert_int_equal(sh_record_batch_validate(SH_SLICE_NULL, NULL, &info), SH_KERR_INVALID_RECORD);
    assert_int_equal(validate_buf(buf, 0, NULL, &info), SH_KERR_INVALID_RECORD);
    assert_int_equal(validate_buf(buf, 11, NULL, &info), SH_KERR_INVALID_RECORD);
    assert_int_equal(validate_buf(buf, n - 1, NULL, &info), SH_KERR_INVALID_RECORD);

    /* impossible length or magic: the frame is corrupt */
    uint8_t save[4];
    memcpy(save, buf + 8, 4);
    sh_store_be32(buf + 8, 13);
    assert_int_equal(validate_buf(buf, n, NULL, &info), SH_KERR_CORRUPT_MESSAGE);
    sh_store_be32(buf + 8, 40); /* a frame, but shorter than a v2 header */
    assert_int_equal(validate_buf(buf, n, NULL, &info), SH_KERR_CORRUPT_MESSAGE);
    memcpy(buf + 8, save, 4);
    buf[16] = 3;
    assert_int_equal(validate_buf(buf, n, NULL, &info), SH_KERR_CORRUPT_MESSAGE);
    buf[16] = 0xff;
    assert_int_equal(validate_buf(buf, n, NULL, &info), SH_KERR_CORRUPT_MESSAGE);
    buf[16] = 1; /* an old message set: not allowed in Produce v3+ */
    assert_int_equal(validate_buf(buf, n, NULL, &info), SH_KERR_INVALID_RECORD);
    buf[16] = 2;

    /* a second whole batch */
    memcpy(buf + n, out.data, n);
    assert_int_equal(validate_buf(buf, 2 * n, NULL, &info), SH_KERR_INVALID_RECORD);
    assert_non_null(strstr(info.reason, "one record batch"));
    /* a partial second batch is dropped, as Kafka trims it */
    assert_int_equal(validate_buf(buf, 2 * n - 1, NULL, &info), 0);
    assert_int_equal(info.batch.len, n);
    assert_int_equal(validate_buf(buf, n + 11, NULL, &info), 0);
    assert_int_equal(validate_buf(buf, n + 16, NULL, &info), 0);
    /* ... unless what follows has an impossible length or magic */
    sh_store_be32(buf + n + 8, 3);
    assert_int_equal(validate_buf(buf, n + 12, NULL, &info), SH_KERR_CORRUPT_MESSAGE);
    memcpy(buf + n, out.data, n);
    buf[n + 16] = 9;
    assert_int_equal(validate_buf(buf, n + 20, NULL, &info), SH_KERR_CORRUPT_MESSAGE);

    /* zstd before Produce v7 */
    build3(&out, SH_CODEC_ZSTD);
    sh_record_batch_policy_t pol;
    sh_record_batch_policy_init(&pol);
    pol.produce_version = 6;
    assert_int_equal(validate_buf(out.data, out.len, &pol, &info),
                     SH_KERR_UNSUPPORTED_COMPRESSION_TYPE);
    pol.produce_version = 7;
    assert_int_equal(validate_buf(out.data, out.len, &pol, &info), 0);
    assert_false(info.records_walked); /* compressed, not asked to walk */
    pol.produce_version = 3;
    build3(&out, SH_CODEC_LZ4);
    assert_int_equal(validate_buf(out.data, out.len, &pol, &info), 0);

    free(buf);
    sh_outbuf_fini(&out);
}

static void test_validate_batch_rules(void **state)
{
    (void)state;
    sh_outbuf_t out;
    sh_outbuf_init_heap(&out);
    sh_record_batch_info_t info;
    sh_record_batch_policy_t pol;
    sh_record_batch_policy_init(&pol);

    build3(&out, SH_CODEC_NONE);
    uint8_t *b = out.data;
    size_t n = out.len;

    /* base offset from a client */
    sh_store_be64(b, 7);
    assert_int_equal(validate_buf(b, n, &pol, &info), SH_KERR_INVALID_RECORD);
    pol.from_client = false;
    assert_int_equal(validate_buf(b, n, &pol, &info), 0);
    pol.from_client = true;
    sh_store_be64(b, 0);

    /* size limit: inclusive */
    pol.max_message_bytes = (int32_t)n - 1;
    assert_int_equal(validate_buf(b, n, &pol, &info), SH_KERR_MESSAGE_TOO_LARGE);
    pol.max_message_bytes = (int32_t)n;
    assert_int_equal(validate_buf(b, n, &pol, &info), 0);
    pol.max_message_bytes = 0;

    /* CRC */
    b[17] ^= 1;
    assert_int_equal(validate_buf(b, n, &pol, &info), SH_KERR_CORRUPT_MESSAGE);
    b[17] ^= 1;
    /* size comes before the CRC, as in Kafka */
    b[60] ^= 1;
    pol.max_message_bytes = 10;
    assert_int_equal(validate_buf(b, n, &pol, &info), SH_KERR_MESSAGE_TOO_LARGE);
    pol.max_message_bytes = 0;
    b[60] ^= 1;

    /* codecs 5..7 */
    b[22] = (uint8_t)((b[22] & ~7) | 5);
    refresh_crc(b, n);
    assert_int_equal(validate_buf(b, n, &pol, &info), SH_KERR_UNSUPPORTED_COMPRESSION_TYPE);
    b[22] &= (uint8_t)~7;

    /* counts */
    sh_store_be32(b + SH_RB_OFF_RECORD_COUNT, 0);
    sh_store_be32(b + SH_RB_OFF_LAST_OFFSET_DELTA, (uint32_t)-1);
    refresh_crc(b, n);
    assert_int_equal(validate_buf(b, n, &pol, &info), SH_KERR_INVALID_RECORD);
    sh_store_be32(b + SH_RB_OFF_LAST_OFFSET_DELTA, 2);
    refresh_crc(b, n);
    assert_int_equal(validate_buf(b, n, &pol, &info), SH_KERR_INVALID_RECORD);
    assert_non_null(strstr(info.reason, "positive"));
    sh_store_be32(b + SH_RB_OFF_RECORD_COUNT, 3);
    sh_store_be32(b + SH_RB_OFF_LAST_OFFSET_DELTA, 3);
    refresh_crc(b, n);
    assert_int_equal(validate_buf(b, n, &pol, &info), SH_KERR_INVALID_RECORD);
    assert_non_null(strstr(info.reason, "lastOffsetDelta"));
    sh_store_be32(b + SH_RB_OFF_LAST_OFFSET_DELTA, 2);

    /* control batch from a client */
    b[22] |= SH_RB_ATTR_CONTROL;
    refresh_crc(b, n);
    assert_int_equal(validate_buf(b, n, &pol, &info), SH_KERR_INVALID_RECORD);
    b[22] &= (uint8_t)~SH_RB_ATTR_CONTROL;

    /* idempotent without a sequence; transactional without a producer */
    sh_store_be64(b + SH_RB_OFF_PRODUCER_ID, 9);
    refresh_crc(b, n);
    assert_int_equal(validate_buf(b, n, &pol, &info), SH_KERR_INVALID_RECORD);
    sh_store_be32(b + SH_RB_OFF_BASE_SEQUENCE, 0);
    refresh_crc(b, n);
    assert_int_equal(validate_buf(b, n, &pol, &info), 0);
    assert_true(info.producer_id == 9 && info.base_sequence == 0);
    sh_store_be64(b + SH_RB_OFF_PRODUCER_ID, (uint64_t)-1);
    b[22] |= SH_RB_ATTR_TRANSACTIONAL;
    refresh_crc(b, n);
    assert_int_equal(validate_buf(b, n, &pol, &info), SH_KERR_INVALID_RECORD);
    sh_outbuf_fini(&out);
}

/* Hand-made record bytes, so malformed records can be expressed. */
typedef struct rawbatch {
    uint8_t buf[512];
    size_t len;
} rawbatch_t;

static void raw_begin(rawbatch_t *rb, int32_t count, int32_t last_delta)
{
    memset(rb, 0, sizeof(*rb));
    sh_store_be32(rb->buf + SH_RB_OFF_LEADER_EPOCH, (uint32_t)-1);
    rb->buf[SH_RB_OFF_MAGIC] = 2;
    sh_store_be32(rb->buf + SH_RB_OFF_LAST_OFFSET_DELTA, (uint32_t)last_delta);
    sh_store_be64(rb->buf + SH_RB_OFF_BASE_TIMESTAMP, (uint64_t)TS0);
    sh_store_be64(rb->buf + SH_RB_OFF_MAX_TIMESTAMP, (uint64_t)TS0);
    sh_store_be64(rb->buf + SH_RB_OFF_PRODUCER_ID, (uint64_t)-1);
    sh_store_be16(rb->buf + SH_RB_OFF_PRODUCER_EPOCH, (uint16_t)-1);
    sh_store_be32(rb->buf + SH_RB_OFF_BASE_SEQUENCE, (uint32_t)-1);
    sh_store_be32(rb->buf + SH_RB_OFF_RECORD_COUNT, (uint32_t)count);
    rb->len = SH_RB_HEADER_SIZE;
}

static void raw_bytes(rawbatch_t *rb, const uint8_t *p, size_t n)
{
    memcpy(rb->buf + rb->len, p, n);
    rb->len += n;
}

static void raw_varint(rawbatch_t *rb, int64_t v)
{
    rb->len += sh_uvarint_write(rb->buf + rb->len, sh_zigzag_encode(v));
}

/* record: attributes 0, ts delta, offset delta, key "k" (or klen), value
 * "v", `hc` headers given as (klen) with key "h" and value "x". */
static void raw_record(rawbatch_t *rb, int32_t delta, int32_t klen, int32_t hc, int32_t hklen,
                       int len_adjust)
{
    rawbatch_t tmp;
    memset(&tmp, 0, sizeof(tmp));
    tmp.len = 0;
    tmp.buf[tmp.len++] = 0;
    raw_varint(&tmp, 0);
    raw_varint(&tmp, delta);
    raw_varint(&tmp, klen);
    for (int i = 0; i < klen; i++)
        tmp.buf[tmp.len++] = 'k';
    raw_varint(&tmp, 1);
    tmp.buf[tmp.len++] = 'v';
    raw_varint(&tmp, hc);
    for (int i = 0; i < hc; i++) {
        raw_varint(&tmp, hklen);
        for (int j = 0; j < hklen; j++)
            tmp.buf[tmp.len++] = 'h';
        raw_varint(&tmp, 1);
        tmp.buf[tmp.len++] = 'x';
    }
    raw_varint(rb, (int64_t)tmp.len + len_adjust);
    raw_bytes(rb, tmp.buf, tmp.len);
}

static void raw_end(rawbatch_t *rb)
{
    sh_store_be32(rb->buf + SH_RB_OFF_BATCH_LENGTH, (uint32_t)(rb->len - SH_RB_LOG_OVERHEAD));
    refresh_crc(rb->buf, rb->len);
}

static sh_err_t raw_validate(rawbatch_t *rb, sh_record_batch_info_t *info)
{
    raw_end(rb);
    return validate_buf(rb->buf, rb->len, NULL, info);
}

static void test_validate_records(void **state)
{
    (void)state;
    rawbatch_t rb;
    sh_record_batch_info_t info;

    raw_begin(&rb, 2, 1);
    raw_record(&rb, 0, 1, 1, 1, 0);
    raw_record(&rb, 1, 0, 0, 0, 0);
    assert_int_equal(raw_validate(&rb, &info), 0);
    assert_true(info.records_walked);

    /* record length one too long / too short */
    raw_begin(&rb, 2, 1);
    raw_record(&rb, 0, 1, 0, 0, 0);
    raw_record(&rb, 1, 1, 0, 0, 1);
    assert_int_equal(raw_validate(&rb, &info), SH_KERR_INVALID_RECORD);
    assert_int_equal(info.error_index, 1);
    raw_begin(&rb, 2, 1);
    raw_record(&rb, 0, 1, 0, 0, -1);
    raw_record(&rb, 1, 1, 0, 0, 0);
    assert_int_equal(raw_validate(&rb, &info), SH_KERR_INVALID_RECORD);
    assert_int_equal(info.error_index, 0);

    /* key length below -1 */
    raw_begin(&rb, 1, 0);
    raw_record(&rb, 0, -2, 0, 0, 0);
    assert_int_equal(raw_validate(&rb, &info), SH_KERR_INVALID_RECORD);
    assert_non_null(strstr(info.reason, "key length"));

    /* negative header count; negative header key length */
    raw_begin(&rb, 1, 0);
    raw_record(&rb, 0, 1, -1, 0, 0);
    assert_int_equal(raw_validate(&rb, &info), SH_KERR_INVALID_RECORD);
    raw_begin(&rb, 1, 0);
    raw_record(&rb, 0, 1, 1, -1, 0);
    assert_int_equal(raw_validate(&rb, &info), SH_KERR_INVALID_RECORD);
    /* a record cut short inside its headers (length says more) */
    raw_begin(&rb, 1, 0);
    raw_record(&rb, 0, 1, 60, 1, 0);
    rb.len -= 10; /* lose some headers but keep the declared length */
    assert_int_equal(raw_validate(&rb, &info), SH_KERR_INVALID_RECORD);

    /* offset deltas: must be 0, 1, 2... */
    raw_begin(&rb, 2, 1);
    raw_record(&rb, 1, 1, 0, 0, 0);
    raw_record(&rb, 0, 1, 0, 0, 0);
    assert_int_equal(raw_validate(&rb, &info), SH_KERR_INVALID_RECORD);
    raw_begin(&rb, 2, 1);
    raw_record(&rb, 0, 1, 0, 0, 0);
    raw_record(&rb, 2, 1, 0, 0, 0);
    assert_int_equal(raw_validate(&rb, &info), SH_KERR_INVALID_RECORD);
    raw_begin(&rb, 2, 1);
    raw_record(&rb, 0, 1, 0, 0, 0);
    raw_record(&rb, 0, 1, 0, 0, 0);
    assert_int_equal(raw_validate(&rb, &info), SH_KERR_INVALID_RECORD);

    /* fewer records than recordCount; bytes after the last one */
    raw_begin(&rb, 2, 1);
    raw_record(&rb, 0, 1, 0, 0, 0);
    assert_int_equal(raw_validate(&rb, &info), SH_KERR_INVALID_RECORD);
    raw_begin(&rb, 1, 0);
    raw_record(&rb, 0, 1, 0, 0, 0);
    rb.buf[rb.len++] = 0;
    assert_int_equal(raw_validate(&rb, &info), SH_KERR_INVALID_RECORD);
    assert_non_null(strstr(info.reason, "remain"));

    /* a varint longer than 5 bytes for the record length */
    raw_begin(&rb, 1, 0);
    static const uint8_t longv[6] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    raw_bytes(&rb, longv, 6);
    assert_int_equal(raw_validate(&rb, &info), SH_KERR_INVALID_RECORD);
}

static void test_validate_topic_rules(void **state)
{
    (void)state;
    sh_outbuf_t out, scratch;
    sh_outbuf_init_heap(&out);
    sh_outbuf_init_heap(&scratch);
    sh_record_batch_info_t info;
    sh_record_batch_policy_t pol;
    sh_record_batch_policy_init(&pol);

    /* compacted topic: record 1 has a null key */
    sh_record_spec_t r[2] = {
        {.timestamp = TS0, .key = sh_slice_str("a"), .value = sh_slice_str("x")},
        {.timestamp = TS0, .key = SH_SLICE_NULL, .value = sh_slice_str("y")},
    };
    sh_record_batch_spec_t spec;
    sh_record_batch_spec_init(&spec);
    assert_int_equal(sh_record_batch_build(&spec, r, 2, &out), 0);
    pol.compacted = true;
    assert_int_equal(validate_buf(out.data, out.len, &pol, &info), SH_KERR_INVALID_RECORD);
    assert_int_equal(info.error_index, 1);
    /* compressed: the walk is forced, and needs memory */
    sh_outbuf_reset(&out);
    spec.codec = SH_CODEC_GZIP;
    assert_int_equal(sh_record_batch_build(&spec, r, 2, &out), 0);
    assert_int_equal(validate_buf(out.data, out.len, &pol, &info), SH_E_INVAL);
    pol.scratch = &scratch;
    assert_int_equal(validate_buf(out.data, out.len, &pol, &info), SH_KERR_INVALID_RECORD);
    assert_int_equal(info.error_index, 1);
    pol.compacted = false;
    sh_outbuf_reset(&scratch);
    assert_int_equal(validate_buf(out.data, out.len, &pol, &info), 0);
    assert_false(info.records_walked);

    /* timestamp bounds; CreateTime topic */
    pol.now_ms = TS0;
    pol.timestamp_after_max_ms = 1000;
    pol.timestamp_before_max_ms = 60000;
    sh_record_spec_t t[3] = {
        {.timestamp = TS0 - 60000, .key = sh_slice_str("a"), .value = sh_slice_str("old but fine")},
        {.timestamp = TS0 + 1000, .key = sh_slice_str("b"), .value = sh_slice_str("edge")},
        {.timestamp = -1, .key = SH_SLICE_NULL, .value = sh_slice_str("no timestamp")},
    };
    sh_outbuf_reset(&out);
    spec.codec = SH_CODEC_NONE;
    assert_int_equal(sh_record_batch_build(&spec, t, 3, &out), 0);
    assert_int_equal(validate_buf(out.data, out.len, &pol, &info), 0);
    t[1].timestamp = TS0 + 1001;
    sh_outbuf_reset(&out);
    assert_int_equal(sh_record_batch_build(&spec, t, 3, &out), 0);
    assert_int_equal(validate_buf(out.data, out.len, &pol, &info), SH_KERR_INVALID_TIMESTAMP);
    assert_int_equal(info.error_index, 1);
    t[1].timestamp = TS0;
    t[0].timestamp = TS0 - 60001;
    sh_outbuf_reset(&out);
    assert_int_equal(sh_record_batch_build(&spec, t, 3, &out), 0);
    assert_int_equal(validate_buf(out.data, out.len, &pol, &info), SH_KERR_INVALID_TIMESTAMP);
    assert_int_equal(info.error_index, 0);
    /* record 0's timestamp error wins over record 2's key error, as in
     * Kafka; a record with a key error has no timestamp checked */
    pol.compacted = true;
    assert_int_equal(validate_buf(out.data, out.len, &pol, &info), SH_KERR_INVALID_TIMESTAMP);
    assert_int_equal(info.error_index, 0);
    t[0].timestamp = TS0;
    t[2].timestamp = TS0 + 99999; /* out of bounds, but its key error hides it */
    sh_outbuf_reset(&out);
    assert_int_equal(sh_record_batch_build(&spec, t, 3, &out), 0);
    assert_int_equal(validate_buf(out.data, out.len, &pol, &info), SH_KERR_INVALID_RECORD);
    assert_int_equal(info.error_index, 2);
    pol.compacted = false;
    t[0].timestamp = TS0 - 60001;
    t[2].timestamp = -1;
    /* compressed and not walked: header timestamps stand in */
    sh_outbuf_reset(&out);
    spec.codec = SH_CODEC_SNAPPY;
    assert_int_equal(sh_record_batch_build(&spec, t, 3, &out), 0);
    assert_int_equal(validate_buf(out.data, out.len, &pol, &info), SH_KERR_INVALID_TIMESTAMP);
    pol.timestamp_before_max_ms = -1;
    assert_int_equal(validate_buf(out.data, out.len, &pol, &info), 0);
    pol.timestamp_after_max_ms = -1;

    /* producer sets LogAppendTime: refused on a LogAppendTime topic,
     * tolerated on a CreateTime topic when the timestamp is in bounds */
    sh_outbuf_reset(&out);
    spec.codec = SH_CODEC_NONE;
    spec.timestamp_type = SH_TS_LOG_APPEND_TIME;
    spec.log_append_time = TS0;
    assert_int_equal(sh_record_batch_build(&spec, r, 1, &out), 0);
    assert_int_equal(validate_buf(out.data, out.len, &pol, &info), 0);
    assert_int_equal(info.timestamp_type, SH_TS_LOG_APPEND_TIME);
    pol.log_append_time = true;
    assert_int_equal(validate_buf(out.data, out.len, &pol, &info), SH_KERR_INVALID_TIMESTAMP);
    assert_non_null(strstr(info.reason, "LogAppendTime"));
    pol.log_append_time = false;
    sh_record_batch_set_max_timestamp(out.data, out.len, SH_TS_LOG_APPEND_TIME, -1);
    assert_int_equal(validate_buf(out.data, out.len, &pol, &info), SH_KERR_INVALID_TIMESTAMP);

    sh_outbuf_fini(&out);
    sh_outbuf_fini(&scratch);
}

static void test_validate_bomb(void **state)
{
    (void)state;
    /* 8 MiB of zeros in one record compresses to a few KiB */
    size_t big = 8u << 20;
    uint8_t *zeros = calloc(1, big);
    assert_non_null(zeros);
    sh_record_spec_t r = {.timestamp = TS0, .value = S(zeros, big)};
    sh_record_batch_spec_t spec;
    sh_record_batch_spec_init(&spec);
    sh_outbuf_t out, scratch;
    sh_outbuf_init_heap(&out);
    sh_outbuf_init_heap(&scratch);
    sh_record_batch_policy_t pol;
    sh_record_batch_policy_init(&pol);
    pol.walk_compressed = true;
    pol.scratch = &scratch;
    pol.max_uncompressed = 1u << 20;
    sh_record_batch_info_t info;
    for (int c = SH_CODEC_GZIP; c <= SH_CODEC_ZSTD; c++) {
        spec.codec = (sh_codec_t)c;
        sh_outbuf_reset(&out);
        assert_int_equal(sh_record_batch_build(&spec, &r, 1, &out), 0);
        assert_true(out.len < big / 16);
        sh_outbuf_t fresh;
        sh_outbuf_init_heap(&fresh);
        pol.scratch = &fresh;
        assert_int_equal(validate_buf(out.data, out.len, &pol, &info), SH_KERR_MESSAGE_TOO_LARGE);
        assert_true(fresh.cap <= 2 * pol.max_uncompressed);
        assert_int_equal(fresh.len, 0);
        sh_outbuf_fini(&fresh);
        pol.scratch = &scratch;
        /* the same batch is fine with a larger cap */
        pol.max_uncompressed = big + 64;
        sh_outbuf_reset(&scratch);
        assert_int_equal(validate_buf(out.data, out.len, &pol, &info), 0);
        assert_true(info.uncompressed_size > big);
        pol.max_uncompressed = 1u << 20;
        /* and a producer that garbles its stream but fixes the CRC */
        out.data[out.len - 3] ^= 0x5a;
        out.data[SH_RB_HEADER_SIZE + 2] ^= 0x5a;
        refresh_crc(out.data, out.len);
        sh_outbuf_reset(&scratch);
        sh_err_t err = validate_buf(out.data, out.len, &pol, &info);
        assert_true(err == SH_KERR_INVALID_RECORD || err == SH_KERR_MESSAGE_TOO_LARGE);
    }
    free(zeros);
    sh_outbuf_fini(&out);
    sh_outbuf_fini(&scratch);
}

/* ------------------------------------------------------------- patching */

static void test_patch_and_assign(void **state)
{
    (void)state;
    sh_outbuf_t out;
    sh_outbuf_init_heap(&out);
    build3(&out, SH_CODEC_NONE);
    sh_record_batch_info_t info;
    sh_record_batch_policy_t pol;
    sh_record_batch_policy_init(&pol);
    assert_int_equal(validate_buf(out.data, out.len, &pol, &info), 0);
    uint32_t crc = sh_load_be32(out.data + SH_RB_OFF_CRC);

    /* CreateTime, header already right: only offset and epoch change */
    assert_int_equal(sh_record_batch_assign(out.data, &info, &pol, 1000, 7), 0);
    sh_record_batch_t b;
    assert_int_equal(sh_record_batch_parse(&b, sh_outbuf_slice(&out)), 0);
    assert_true(b.base_offset == 1000);
    assert_int_equal(b.partition_leader_epoch, 7);
    assert_int_equal(b.crc, crc);
    assert_true(sh_record_batch_crc_ok(&b));

    /* a producer's wrong maxTimestamp is corrected, as Kafka does */
    sh_record_batch_patch(out.data, out.len, 0, -1);
    sh_store_be64(out.data + SH_RB_OFF_MAX_TIMESTAMP, (uint64_t)(TS0 + 999));
    refresh_crc(out.data, out.len);
    assert_int_equal(validate_buf(out.data, out.len, &pol, &info), 0);
    assert_true(info.header_max_timestamp == TS0 + 999);
    assert_true(info.max_timestamp == TS0 + 10);
    assert_int_equal(sh_record_batch_assign(out.data, &info, &pol, 5, 1), 0);
    assert_int_equal(sh_record_batch_parse(&b, sh_outbuf_slice(&out)), 0);
    assert_true(b.max_timestamp == TS0 + 10);
    assert_true(sh_record_batch_crc_ok(&b));

    /* LogAppendTime topic: bit set, maxTimestamp = now, baseTimestamp kept */
    pol.log_append_time = true;
    pol.now_ms = TS0 + 123456;
    assert_int_equal(sh_record_batch_assign(out.data, &info, &pol, 5, 1), 0);
    assert_int_equal(sh_record_batch_parse(&b, sh_outbuf_slice(&out)), 0);
    assert_int_equal(sh_record_batch_timestamp_type(&b), SH_TS_LOG_APPEND_TIME);
    assert_true(b.max_timestamp == TS0 + 123456);
    assert_true(b.base_timestamp == TS0);
    assert_true(sh_record_batch_crc_ok(&b));
    assert_int_equal(sh_record_batch_set_max_timestamp(out.data, out.len, SH_TS_LOG_APPEND_TIME,
                                                       TS0 + 123456),
                     0);
    sh_record_batch_iter_t it;
    assert_int_equal(sh_record_batch_iter_init(&it, sh_outbuf_slice(&out), NULL, 0), 0);
    sh_record_t rec;
    int n = 0;
    while (sh_record_batch_iter_next(&it, &rec)) {
        assert_true(rec.timestamp == TS0 + 123456);
        assert_true(rec.offset == 5 + n);
        n++;
    }
    assert_int_equal(it.err, 0);
    assert_int_equal(n, 3);
    /* the stored batch still validates, checked as stored data (its offset
     * is assigned) on a CreateTime reading: on a LogAppendTime topic the
     * bit now set would be refused as if a producer had set it */
    pol.from_client = false;
    pol.log_append_time = false;
    assert_int_equal(validate_buf(out.data, out.len, &pol, &info), 0);

    assert_int_equal(sh_record_batch_patch(out.data, 60, 0, 0), SH_E_INVAL);
    assert_int_equal(sh_record_batch_set_max_timestamp(out.data, 60, SH_TS_CREATE_TIME, 0),
                     SH_E_INVAL);
    sh_outbuf_fini(&out);
}

/* ------------------------------------------------------ builder round trip */

static void test_build_iterate_all_codecs(void **state)
{
    (void)state;
    char big[5000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)('a' + i % 7);
    sh_record_header_t hdrs[3] = {
        {sh_slice_str("k1"), sh_slice_str("v1")},
        {sh_slice_str(""), SH_SLICE_NULL},
        {sh_slice_str("k3"), sh_slice_str("")},
    };
    sh_record_spec_t r[4] = {
        {.timestamp = TS0, .key = sh_slice_str("key"), .value = S(big, sizeof(big)),
         .headers = hdrs, .header_count = 3},
        {.timestamp = TS0 - 100, .key = SH_SLICE_NULL, .value = SH_SLICE_NULL},
        {.timestamp = TS0 + 1, .key = sh_slice_str(""), .value = sh_slice_str("")},
        {.timestamp = INT64_MAX, .key = sh_slice_str("x"), .value = sh_slice_str("y")},
    };
    sh_arena_t arena;
    sh_arena_init(&arena, 4096);
    for (int c = 0; c <= SH_CODEC_MAX; c++) {
        sh_record_batch_spec_t spec;
        sh_record_batch_spec_init(&spec);
        spec.codec = (sh_codec_t)c;
        spec.producer_id = 77;
        spec.producer_epoch = 3;
        spec.base_sequence = INT32_MAX - 1; /* sequences wrap; not our concern */
        sh_outbuf_t out, scratch;
        sh_outbuf_init_heap(&out);
        sh_outbuf_init_arena(&scratch, &arena);
        assert_int_equal(sh_record_batch_build(&spec, r, 4, &out), 0);
        sh_record_batch_info_t info;
        sh_record_batch_policy_t pol;
        sh_record_batch_policy_init(&pol);
        pol.walk_compressed = true;
        pol.scratch = &scratch;
        assert_int_equal(validate_buf(out.data, out.len, &pol, &info), 0);
        assert_int_equal(info.codec, c);
        assert_true(info.max_timestamp == INT64_MAX);
        assert_true(info.base_timestamp == TS0);

        sh_record_batch_iter_t it;
        assert_int_equal(sh_record_batch_iter_init(&it, sh_outbuf_slice(&out), &scratch, 0), 0);
        sh_record_t rec;
        for (int i = 0; i < 4; i++) {
            assert_true(sh_record_batch_iter_next(&it, &rec));
            assert_int_equal(rec.offset_delta, i);
            assert_true(rec.timestamp == r[i].timestamp);
            assert_true(sh_slice_eq(rec.key, r[i].key));
            assert_true(sh_slice_eq(rec.value, r[i].value));
            assert_int_equal(rec.header_count, (int)r[i].header_count);
            sh_record_header_iter_t hi;
            sh_record_header_iter_init(&hi, &rec);
            sh_record_header_t h;
            for (size_t k = 0; k < r[i].header_count; k++) {
                assert_true(sh_record_header_iter_next(&hi, &h));
                assert_true(sh_slice_eq(h.key, hdrs[k].key));
                assert_true(sh_slice_eq(h.value, hdrs[k].value));
            }
            assert_false(sh_record_header_iter_next(&hi, &h));
        }
        assert_false(sh_record_batch_iter_next(&it, &rec));
        assert_int_equal(it.err, 0);
        if (c != SH_CODEC_NONE) {
            /* no scratch, no decompression */
            assert_int_equal(sh_record_batch_iter_init(&it, sh_outbuf_slice(&out), NULL, 0),
                             SH_E_INVAL);
            /* and a cap below the records */
            sh_outbuf_t s2;
            sh_outbuf_init_heap(&s2);
            assert_int_equal(sh_record_batch_iter_init(&it, sh_outbuf_slice(&out), &s2, 100),
                             SH_KERR_MESSAGE_TOO_LARGE);
            sh_outbuf_fini(&s2);
        }
        sh_outbuf_fini(&out);
        sh_outbuf_fini(&scratch);
    }
    sh_arena_fini(&arena);

    /* an empty batch: 61 bytes, count 0, refused from a client */
    sh_record_batch_spec_t spec;
    sh_record_batch_spec_init(&spec);
    sh_outbuf_t out;
    sh_outbuf_init_heap(&out);
    assert_int_equal(sh_record_batch_build(&spec, NULL, 0, &out), 0);
    assert_int_equal(out.len, SH_RB_HEADER_SIZE);
    sh_record_batch_info_t info;
    assert_int_equal(validate_buf(out.data, out.len, NULL, &info), SH_KERR_INVALID_RECORD);
    sh_record_batch_policy_t pol;
    sh_record_batch_policy_init(&pol);
    pol.from_client = false;
    assert_int_equal(validate_buf(out.data, out.len, &pol, &info), 0);
    /* an empty batch carrying codec bits has no stream to decode */
    out.data[SH_RB_OFF_ATTRIBUTES + 1] |= SH_CODEC_GZIP;
    refresh_crc(out.data, out.len);
    sh_outbuf_t scratch;
    sh_outbuf_init_heap(&scratch);
    pol.walk_compressed = true;
    pol.scratch = &scratch;
    assert_int_equal(validate_buf(out.data, out.len, &pol, &info), 0);
    assert_true(info.records_walked);
    assert_int_equal(info.record_count, 0);
    sh_outbuf_fini(&scratch);
    /* bad specs */
    sh_record_header_t nullkey = {SH_SLICE_NULL, sh_slice_str("v")};
    sh_record_spec_t bad = {.timestamp = 0, .headers = &nullkey, .header_count = 1};
    size_t before = out.len;
    assert_int_equal(sh_record_batch_build(&spec, &bad, 1, &out), SH_E_INVAL);
    assert_int_equal(out.len, before);
    spec.codec = (sh_codec_t)6;
    assert_int_equal(sh_record_batch_build(&spec, NULL, 0, &out), SH_E_INVAL);
    sh_outbuf_fini(&out);
}

/* ---------------------------------------------------- splitting a stream */

static void test_next_batches(void **state)
{
    (void)state;
    sh_outbuf_t out;
    sh_outbuf_init_heap(&out);
    build3(&out, SH_CODEC_NONE);
    size_t one = out.len;
    sh_record_batch_spec_t spec;
    sh_record_batch_spec_init(&spec);
    spec.codec = SH_CODEC_LZ4;
    sh_record_spec_t r = {.timestamp = TS0, .value = sh_slice_str("second")};
    assert_int_equal(sh_record_batch_build(&spec, &r, 1, &out), 0);
    size_t two = out.len - one;
    /* and a truncated third, as a Fetch response may end */
    uint8_t head[30];
    memcpy(head, out.data, sizeof(head));
    assert_int_equal(sh_outbuf_append(&out, head, sizeof(head)), 0);

    sh_slice_t rest = sh_outbuf_slice(&out), b;
    assert_int_equal(sh_record_batch_next(&rest, &b), 0);
    assert_int_equal(b.len, one);
    assert_int_equal(sh_record_batch_next(&rest, &b), 0);
    assert_int_equal(b.len, two);
    assert_int_equal(sh_record_batch_next(&rest, &b), SH_E_NOTFOUND);
    assert_int_equal(rest.len, 30);
    sh_store_be32(out.data + one + two + 8, 3);
    assert_int_equal(sh_record_batch_next(&rest, &b), SH_E_DECODE);
    rest = SH_SLICE_NULL;
    assert_int_equal(sh_record_batch_next(&rest, &b), SH_E_NOTFOUND);

    sh_record_batch_t hb;
    assert_int_equal(sh_record_batch_parse(&hb, S(out.data, 60)), SH_E_DECODE);
    out.data[16] = 1;
    assert_int_equal(sh_record_batch_parse(&hb, S(out.data, one)), SH_E_UNSUPPORTED);
    sh_outbuf_fini(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_a),
        cmocka_unit_test(test_example_b),
        cmocka_unit_test(test_vectors_from_clients),
        cmocka_unit_test(test_validate_framing),
        cmocka_unit_test(test_validate_batch_rules),
        cmocka_unit_test(test_validate_records),
        cmocka_unit_test(test_validate_topic_rules),
        cmocka_unit_test(test_validate_bomb),
        cmocka_unit_test(test_patch_and_assign),
        cmocka_unit_test(test_build_iterate_all_codecs),
        cmocka_unit_test(test_next_batches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
