/*
 * fuzz_protocol_record_batch.c - libFuzzer target for the RecordBatch v2
 * code: Produce validation, record iteration with decompression under a
 * small cap, batch splitting and the raw decompressors, on arbitrary bytes.
 *
 * Beyond "no crash, no leak, no sanitizer report", it checks invariants:
 *   - a batch that validates still validates after its base offset and
 *     leader epoch are overwritten (neither is covered by the CRC), and
 *     after sh_record_batch_assign stamps LogAppendTime (CRC recomputed);
 *   - an accepted batch iterates to exactly recordCount records;
 *   - no decompression ever produces more than the cap.
 * Seeds: tests/fuzz/corpus/fuzz_protocol_record_batch/ (the client vectors).
 * Single-threaded; everything allocated here is freed before returning.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/sh_endian.h"
#include "protocol/sh_compress.h"
#include "protocol/sh_record_batch.h"

#define CAP (64u * 1024u)

static void check(int ok)
{
    if (!ok)
        abort();
}

/* Walk every record and header, touching each byte the slices cover so
 * ASan sees any slice that points outside its buffer. */
static int32_t walk(sh_slice_t batch, sh_outbuf_t *scratch, sh_err_t *err)
{
    sh_record_batch_iter_t it;
    *err = sh_record_batch_iter_init(&it, batch, scratch, CAP);
    if (*err)
        return -1;
    check(it.uncompressed_size <= CAP || sh_record_batch_codec(&it.batch) == SH_CODEC_NONE);
    volatile uint8_t sink = 0;
    sh_record_t rec;
    int32_t n = 0;
    while (sh_record_batch_iter_next(&it, &rec)) {
        for (size_t i = 0; i < rec.key.len; i++)
            sink ^= rec.key.ptr[i];
        for (size_t i = 0; i < rec.value.len; i++)
            sink ^= rec.value.ptr[i];
        sh_record_header_iter_t hi;
        sh_record_header_t h;
        sh_record_header_iter_init(&hi, &rec);
        int32_t hn = 0;
        while (sh_record_header_iter_next(&hi, &h)) {
            for (size_t i = 0; i < h.key.len; i++)
                sink ^= h.key.ptr[i];
            for (size_t i = 0; i < h.value.len; i++)
                sink ^= h.value.ptr[i];
            hn++;
        }
        check(hn == rec.header_count);
        n++;
    }
    (void)sink;
    *err = it.err;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size heap copy: overreads hit the redzone, and patching
     * needs writable bytes */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    if (size)
        memcpy(buf, data, size);
    sh_outbuf_t scratch;
    sh_outbuf_init_heap(&scratch);

    /* 1. the Produce path, every record checked */
    sh_record_batch_policy_t pol;
    sh_record_batch_policy_init(&pol);
    pol.walk_compressed = true;
    pol.scratch = &scratch;
    pol.max_uncompressed = CAP;
    sh_record_batch_info_t info;
    sh_err_t err = sh_record_batch_validate((sh_slice_t){buf, size}, &pol, &info);
    if (err == 0) {
        check(info.batch.ptr == buf && info.batch.len <= size);
        check(info.batch.len >= SH_RB_HEADER_SIZE);
        check(info.records_walked && info.record_count > 0);
        check(info.record_count == info.last_offset_delta + 1);
        check(info.uncompressed_size <= CAP || info.codec == SH_CODEC_NONE);

        sh_outbuf_reset(&scratch);
        sh_err_t werr;
        check(walk(info.batch, &scratch, &werr) == info.record_count && werr == 0);

        /* stored form: offset and epoch assigned, re-checked as stored data */
        uint8_t *b = buf;
        size_t blen = info.batch.len;
        int64_t off = size >= 8 ? (int64_t)sh_load_be64(data + size - 8) : 42;
        check(sh_record_batch_patch(b, blen, off, (int32_t)off) == 0);
        sh_record_batch_policy_t stored = pol;
        stored.from_client = false;
        sh_record_batch_info_t again;
        sh_outbuf_reset(&scratch);
        check(sh_record_batch_validate(info.batch, &stored, &again) == 0);
        check(again.record_count == info.record_count);

        /* LogAppendTime stamping keeps it valid too */
        sh_record_batch_policy_t lat = pol;
        lat.log_append_time = true;
        lat.now_ms = 1700000000000LL;
        check(sh_record_batch_assign(b, &info, &lat, off + 1, 7) == 0);
        sh_outbuf_reset(&scratch);
        check(sh_record_batch_validate(info.batch, &stored, &again) == 0);
        check(again.header_max_timestamp == lat.now_ms);
        check(again.timestamp_type == SH_TS_LOG_APPEND_TIME);
        memcpy(buf, data, size);
    }

    /* 2. other policies: stored data on a compacted topic with bounds */
    sh_record_batch_policy_init(&pol);
    pol.from_client = false;
    pol.compacted = true;
    pol.scratch = &scratch;
    pol.max_uncompressed = CAP;
    pol.now_ms = 1700000000000LL;
    pol.timestamp_before_max_ms = 86400000;
    pol.timestamp_after_max_ms = 3600000;
    pol.produce_version = (int16_t)(size % 12);
    sh_outbuf_reset(&scratch);
    (void)sh_record_batch_validate((sh_slice_t){buf, size}, &pol, &info);

    /* 3. iterate every complete batch the bytes hold, as a Fetch reader */
    sh_slice_t rest = {buf, size}, one;
    while (sh_record_batch_next(&rest, &one) == 0) {
        sh_outbuf_reset(&scratch);
        sh_err_t werr;
        (void)walk(one, &scratch, &werr);
    }

    /* 4. the decompressors on raw bytes: first byte picks the codec */
    if (size > 0) {
        sh_outbuf_t out;
        sh_outbuf_init_heap(&out);
        sh_err_t derr = sh_decompress((sh_codec_t)(data[0] % 5), (sh_slice_t){buf + 1, size - 1},
                                      &out, CAP);
        check(out.len <= CAP);
        check(derr == 0 || out.len == 0);
        sh_outbuf_fini(&out);
    }

    sh_outbuf_fini(&scratch);
    free(buf);
    return 0;
}
