/*
 * sh_record_batch.c - RecordBatch v2: header decoding, Produce validation
 * with Kafka's error codes, in-place patching, record iteration and the
 * batch builder (API and contracts in sh_record_batch.h).
 *
 * Threading: no globals; callers keep a batch, iterator or output buffer
 * on one thread. Ownership: input bytes are borrowed; decompressed records
 * and built batches go into the caller's sh_outbuf_t; the builder's
 * temporary record buffer is freed before it returns.
 *
 * Validation order follows the Java broker (docs/record-batch.md): the
 * framing checks of ProduceRequest.validateRecords come first, then the
 * size and CRC checks of the log append, then LogValidator's batch checks,
 * then the per-record walk. The first failing check decides the code, so
 * the order matters as much as the codes.
 */
#include "protocol/sh_record_batch.h"

#include <string.h>

#include "common/sh_crc32c.h"
#include "common/sh_endian.h"

/* Kafka's smallest legal batchLength for any magic (a v0 message); below
 * it the frame itself is corrupt rather than merely not a v2 batch. */
#define SH_RB_MIN_FRAME_LENGTH 14
/* batchLength of the smallest v2 batch (61 - 12). */
#define SH_RB_MIN_V2_LENGTH (SH_RB_HEADER_SIZE - SH_RB_LOG_OVERHEAD)

static const uint8_t sh_rb_empty[1];

/* ------------------------------------------------------- header view */

sh_err_t sh_record_batch_parse(sh_record_batch_t *b, sh_slice_t in)
{
    memset(b, 0, sizeof(*b));
    if (!in.ptr || in.len < SH_RB_HEADER_SIZE)
        return SH_E_DECODE;
    const uint8_t *p = in.ptr;
    int32_t blen = (int32_t)sh_load_be32(p + SH_RB_OFF_BATCH_LENGTH);
    if (blen < SH_RB_MIN_V2_LENGTH || (size_t)blen > in.len - SH_RB_LOG_OVERHEAD)
        return SH_E_DECODE;
    int8_t magic = (int8_t)p[SH_RB_OFF_MAGIC];
    if (magic != SH_RB_MAGIC)
        return SH_E_UNSUPPORTED;
    size_t size = SH_RB_LOG_OVERHEAD + (size_t)blen;
    b->base_offset = (int64_t)sh_load_be64(p + SH_RB_OFF_BASE_OFFSET);
    b->batch_length = blen;
    b->partition_leader_epoch = (int32_t)sh_load_be32(p + SH_RB_OFF_LEADER_EPOCH);
    b->magic = magic;
    b->crc = sh_load_be32(p + SH_RB_OFF_CRC);
    b->attributes = (int16_t)sh_load_be16(p + SH_RB_OFF_ATTRIBUTES);
    b->last_offset_delta = (int32_t)sh_load_be32(p + SH_RB_OFF_LAST_OFFSET_DELTA);
    b->base_timestamp = (int64_t)sh_load_be64(p + SH_RB_OFF_BASE_TIMESTAMP);
    b->max_timestamp = (int64_t)sh_load_be64(p + SH_RB_OFF_MAX_TIMESTAMP);
    b->producer_id = (int64_t)sh_load_be64(p + SH_RB_OFF_PRODUCER_ID);
    b->producer_epoch = (int16_t)sh_load_be16(p + SH_RB_OFF_PRODUCER_EPOCH);
    b->base_sequence = (int32_t)sh_load_be32(p + SH_RB_OFF_BASE_SEQUENCE);
    b->record_count = (int32_t)sh_load_be32(p + SH_RB_OFF_RECORD_COUNT);
    b->bytes = (sh_slice_t){p, size};
    b->records = (sh_slice_t){p + SH_RB_HEADER_SIZE, size - SH_RB_HEADER_SIZE};
    return 0;
}

uint32_t sh_record_batch_crc_compute(const uint8_t *batch, size_t len)
{
    if (len < SH_RB_OFF_ATTRIBUTES)
        return 0;
    return sh_crc32c(0, batch + SH_RB_OFF_ATTRIBUTES, len - SH_RB_OFF_ATTRIBUTES);
}

bool sh_record_batch_crc_ok(const sh_record_batch_t *b)
{
    return b->bytes.len >= SH_RB_HEADER_SIZE &&
           sh_record_batch_crc_compute(b->bytes.ptr, b->bytes.len) == b->crc;
}

sh_err_t sh_record_batch_next(sh_slice_t *rest, sh_slice_t *batch)
{
    if (!rest->ptr || rest->len < SH_RB_LOG_OVERHEAD)
        return SH_E_NOTFOUND;
    int32_t blen = (int32_t)sh_load_be32(rest->ptr + SH_RB_OFF_BATCH_LENGTH);
    if (blen < SH_RB_MIN_V2_LENGTH)
        return SH_E_DECODE;
    if ((size_t)blen > rest->len - SH_RB_LOG_OVERHEAD)
        return SH_E_NOTFOUND;
    size_t size = SH_RB_LOG_OVERHEAD + (size_t)blen;
    *batch = (sh_slice_t){rest->ptr, size};
    rest->ptr += size;
    rest->len -= size;
    return 0;
}

/* ---------------------------------------------------------- iteration */

static sh_err_t sh_rb_iter_fail(sh_record_batch_iter_t *it, sh_err_t err, const char *why)
{
    if (!it->err) {
        it->err = err;
        it->reason = why;
    }
    return it->err;
}

sh_err_t sh_record_batch_iter_init(sh_record_batch_iter_t *it, sh_slice_t batch,
                                   sh_outbuf_t *scratch, size_t max_uncompressed)
{
    memset(it, 0, sizeof(*it));
    it->prev_delta = -1;
    sh_reader_init(&it->rd, sh_rb_empty, 0);
    if (sh_record_batch_parse(&it->batch, batch) != 0)
        return sh_rb_iter_fail(it, SH_KERR_CORRUPT_MESSAGE, "record batch header is malformed");
    if (it->batch.record_count < 0)
        return sh_rb_iter_fail(it, SH_KERR_INVALID_RECORD, "record count is negative");
    int codec = sh_record_batch_codec(&it->batch);
    if (codec > SH_CODEC_MAX)
        return sh_rb_iter_fail(it, SH_KERR_UNSUPPORTED_COMPRESSION_TYPE,
                               "compression codec is unknown");
    sh_slice_t recs = it->batch.records;
    /* an empty batch has no stream to decode, whatever its codec bits say */
    if (codec != SH_CODEC_NONE && !(recs.len == 0 && it->batch.record_count == 0)) {
        if (!scratch)
            return sh_rb_iter_fail(it, SH_E_INVAL, "compressed batch needs a scratch buffer");
        if (max_uncompressed == 0)
            max_uncompressed = SH_RB_DEFAULT_MAX_UNCOMPRESSED;
        size_t len0 = scratch->len;
        sh_err_t err = sh_decompress((sh_codec_t)codec, recs, scratch, max_uncompressed);
        switch (err) {
        case 0:
            break;
        case SH_KERR_MESSAGE_TOO_LARGE:
            return sh_rb_iter_fail(it, err, "decompressed records exceed the limit");
        case SH_E_NOMEM:
            return sh_rb_iter_fail(it, err, "out of memory decompressing records");
        default:
            return sh_rb_iter_fail(it, SH_KERR_INVALID_RECORD,
                                   "compressed records are malformed");
        }
        /* an empty result may leave a never-grown buffer with no memory */
        recs = scratch->len > len0 ? (sh_slice_t){scratch->data + len0, scratch->len - len0}
                                   : (sh_slice_t){sh_rb_empty, 0};
    }
    it->uncompressed_size = recs.len;
    /* a reader over NULL would do arithmetic on a null pointer */
    sh_reader_init(&it->rd, recs.len ? recs.ptr : sh_rb_empty, recs.len);
    return 0;
}

/* Decode one record whose bytes `r` holds exactly; false with *why set if
 * anything is out of bounds. */
static bool sh_rb_record_decode(sh_reader_t *r, sh_record_t *rec, const char **why)
{
    rec->attributes = sh_wire_get_i8(r);
    rec->timestamp_delta = sh_wire_get_varlong(r);
    rec->offset_delta = sh_wire_get_varint(r);
    int32_t klen = sh_wire_get_varint(r);
    if (r->err)
        goto overrun;
    if (klen < -1) {
        *why = "record key length is below -1";
        return false;
    }
    rec->key = SH_SLICE_NULL;
    if (klen >= 0) {
        const uint8_t *k = sh_reader_take(r, (size_t)klen);
        if (!k)
            goto overrun;
        rec->key = (sh_slice_t){k, (size_t)klen};
    }
    int32_t vlen = sh_wire_get_varint(r);
    if (r->err)
        goto overrun;
    if (vlen < -1) {
        *why = "record value length is below -1";
        return false;
    }
    rec->value = SH_SLICE_NULL;
    if (vlen >= 0) {
        const uint8_t *v = sh_reader_take(r, (size_t)vlen);
        if (!v)
            goto overrun;
        rec->value = (sh_slice_t){v, (size_t)vlen};
    }
    int32_t hcount = sh_wire_get_varint(r);
    if (r->err)
        goto overrun;
    if (hcount < 0) {
        *why = "record header count is negative";
        return false;
    }
    /* each header takes at least two bytes (two length varints) */
    if ((size_t)hcount > sh_reader_remaining(r) / 2)
        goto overrun;
    const uint8_t *hstart = r->pos;
    for (int32_t i = 0; i < hcount; i++) {
        int32_t hk = sh_wire_get_varint(r);
        if (r->err)
            goto overrun;
        if (hk < 0) {
            *why = "record header key length is negative";
            return false;
        }
        if (!sh_reader_take(r, (size_t)hk))
            goto overrun;
        int32_t hv = sh_wire_get_varint(r);
        if (r->err)
            goto overrun;
        if (hv < -1) {
            *why = "record header value length is below -1";
            return false;
        }
        if (hv > 0 && !sh_reader_take(r, (size_t)hv))
            goto overrun;
    }
    rec->header_count = hcount;
    rec->headers = (sh_slice_t){hstart, (size_t)(r->pos - hstart)};
    if (sh_reader_remaining(r) != 0) {
        *why = "record length does not match its fields";
        return false;
    }
    return true;
overrun:
    *why = "record fields overrun the record length";
    return false;
}

bool sh_record_batch_iter_next(sh_record_batch_iter_t *it, sh_record_t *rec)
{
    if (it->err)
        return false;
    if (it->index >= it->batch.record_count) {
        if (sh_reader_remaining(&it->rd) != 0)
            sh_rb_iter_fail(it, SH_KERR_INVALID_RECORD, "bytes remain after the last record");
        return false;
    }
    memset(rec, 0, sizeof(*rec));
    const uint8_t *start = it->rd.pos;
    if (sh_reader_remaining(&it->rd) == 0) {
        sh_rb_iter_fail(it, SH_KERR_INVALID_RECORD, "records end before recordCount");
        return false;
    }
    int32_t len = sh_wire_get_varint(&it->rd);
    if (it->rd.err) {
        sh_rb_iter_fail(it, SH_KERR_INVALID_RECORD, "record length is malformed");
        return false;
    }
    if (len < 0 || (size_t)len > sh_reader_remaining(&it->rd)) {
        sh_rb_iter_fail(it, SH_KERR_INVALID_RECORD, "record length exceeds the batch");
        return false;
    }
    const uint8_t *body = sh_reader_take(&it->rd, (size_t)len);
    sh_reader_t r;
    sh_reader_init(&r, len ? body : sh_rb_empty, (size_t)len);
    const char *why = NULL;
    if (!sh_rb_record_decode(&r, rec, &why)) {
        sh_rb_iter_fail(it, SH_KERR_INVALID_RECORD, why);
        return false;
    }
    if (rec->offset_delta < 0 || rec->offset_delta <= it->prev_delta) {
        sh_rb_iter_fail(it, SH_KERR_INVALID_RECORD, "record offset deltas do not increase");
        return false;
    }
    if (rec->offset_delta > it->batch.last_offset_delta) {
        sh_rb_iter_fail(it, SH_KERR_INVALID_RECORD, "record offset delta exceeds lastOffsetDelta");
        return false;
    }
    it->prev_delta = rec->offset_delta;
    rec->offset = (int64_t)((uint64_t)it->batch.base_offset + (uint64_t)rec->offset_delta);
    if (sh_record_batch_timestamp_type(&it->batch) == SH_TS_LOG_APPEND_TIME)
        rec->timestamp = it->batch.max_timestamp;
    else
        rec->timestamp = (int64_t)((uint64_t)it->batch.base_timestamp +
                                   (uint64_t)rec->timestamp_delta);
    rec->size = (size_t)(it->rd.pos - start);
    it->index++;
    return true;
}

void sh_record_header_iter_init(sh_record_header_iter_t *hi, const sh_record_t *rec)
{
    sh_reader_init(&hi->rd, rec->headers.len ? rec->headers.ptr : sh_rb_empty,
                   rec->headers.len);
    hi->left = rec->header_count;
}

bool sh_record_header_iter_next(sh_record_header_iter_t *hi, sh_record_header_t *h)
{
    if (hi->left <= 0 || hi->rd.err)
        return false;
    hi->left--;
    int32_t kl = sh_wire_get_varint(&hi->rd);
    const uint8_t *k = kl >= 0 ? sh_reader_take(&hi->rd, (size_t)kl) : NULL;
    int32_t vl = sh_wire_get_varint(&hi->rd);
    const uint8_t *v = vl >= 0 ? sh_reader_take(&hi->rd, (size_t)vl) : NULL;
    if (hi->rd.err || !k)
        return false; /* cannot happen for a record the iterator returned */
    h->key = (sh_slice_t){k, (size_t)kl};
    h->value = vl >= 0 ? (sh_slice_t){v, (size_t)vl} : SH_SLICE_NULL;
    return true;
}

/* --------------------------------------------------------- validation */

void sh_record_batch_policy_init(sh_record_batch_policy_t *p)
{
    memset(p, 0, sizeof(*p));
    p->produce_version = 11;
    p->from_client = true;
    p->timestamp_before_max_ms = -1;
    p->timestamp_after_max_ms = -1;
}

/* Java's ByteBufferLogInputStream.nextBatchSize, applied to the start of
 * p: 1 and *size when a whole frame is there; 0 when the bytes hold no
 * whole frame (Kafka stops iterating and later trims them); -1 when the
 * frame is corrupt. */
static int sh_rb_frame_probe(const uint8_t *p, size_t len, size_t *size)
{
    if (len < SH_RB_LOG_OVERHEAD)
        return 0;
    int32_t blen = (int32_t)sh_load_be32(p + SH_RB_OFF_BATCH_LENGTH);
    if (blen < SH_RB_MIN_FRAME_LENGTH)
        return -1;
    if (len <= SH_RB_OFF_MAGIC)
        return 0;
    int8_t magic = (int8_t)p[SH_RB_OFF_MAGIC];
    if (magic < 0 || magic > SH_RB_MAGIC)
        return -1;
    if ((size_t)blen > len - SH_RB_LOG_OVERHEAD)
        return 0;
    *size = SH_RB_LOG_OVERHEAD + (size_t)blen;
    return 1;
}

static bool sh_rb_ts_out_of_range(const sh_record_batch_policy_t *pol, int64_t ts)
{
    if (ts <= pol->now_ms) {
        uint64_t diff = (uint64_t)pol->now_ms - (uint64_t)ts;
        return pol->timestamp_before_max_ms >= 0 && diff > (uint64_t)pol->timestamp_before_max_ms;
    }
    uint64_t diff = (uint64_t)ts - (uint64_t)pol->now_ms;
    return pol->timestamp_after_max_ms >= 0 && diff > (uint64_t)pol->timestamp_after_max_ms;
}

/* LogValidator.validateTimestamp for one record timestamp: on a CreateTime
 * topic a real timestamp must lie within the bounds; otherwise (a
 * LogAppendTime topic, or no timestamp) the producer must not have set the
 * LogAppendTime bit. Java's if/else-if shape is kept on purpose: a
 * CreateTime topic accepts a LogAppendTime-flagged batch whose timestamp
 * is in bounds (the append then clears the bit). */
static bool sh_rb_ts_bad(const sh_record_batch_policy_t *pol, bool batch_lat, int64_t ts)
{
    if (!pol->log_append_time && ts != SH_RB_NO_TIMESTAMP)
        return sh_rb_ts_out_of_range(pol, ts);
    return batch_lat;
}

static sh_err_t sh_rb_fail(sh_record_batch_info_t *info, sh_err_t err, const char *why)
{
    info->reason = why;
    return err;
}

/* Walk every record: structure first (INVALID_RECORD at once), then the
 * per-record key and timestamp rules, which Kafka collects over the whole
 * batch before choosing INVALID_TIMESTAMP over INVALID_RECORD. */
static sh_err_t sh_rb_walk(const sh_record_batch_t *b, const sh_record_batch_policy_t *pol,
                           sh_record_batch_info_t *info)
{
    sh_record_batch_iter_t it;
    sh_err_t err = sh_record_batch_iter_init(&it, b->bytes, pol->scratch, pol->max_uncompressed);
    if (err)
        return sh_rb_fail(info, err, it.reason);
    bool batch_lat = sh_record_batch_timestamp_type(b) == SH_TS_LOG_APPEND_TIME;
    int64_t max_ts = SH_RB_NO_TIMESTAMP;
    bool key_err = false, ts_err = false;
    sh_record_t rec;
    while (sh_record_batch_iter_next(&it, &rec)) {
        bool bad_key = pol->compacted && sh_slice_is_null(rec.key);
        bool bad_ts = !bad_key && sh_rb_ts_bad(pol, batch_lat, rec.timestamp);
        if ((bad_key || bad_ts) && info->error_index < 0)
            info->error_index = it.index - 1;
        key_err |= bad_key;
        ts_err |= bad_ts;
        if (rec.timestamp > max_ts)
            max_ts = rec.timestamp;
    }
    if (it.err) {
        /* the record that failed; past the last one for leftover bytes */
        info->error_index = it.index;
        return sh_rb_fail(info, it.err, it.reason);
    }
    info->records_walked = true;
    info->uncompressed_size = it.uncompressed_size;
    info->max_timestamp = max_ts;
    if (ts_err)
        return sh_rb_fail(info, SH_KERR_INVALID_TIMESTAMP,
                          batch_lat && (pol->log_append_time || b->max_timestamp == SH_RB_NO_TIMESTAMP)
                              ? "producer set the LogAppendTime timestamp type"
                              : "record timestamp is out of the accepted range");
    if (key_err)
        return sh_rb_fail(info, SH_KERR_INVALID_RECORD,
                          "compacted topic cannot accept a record without a key");
    info->error_index = -1;
    return 0;
}

/* Timestamp rules from the header alone, for compressed batches that are
 * not walked: the LogAppendTime bit decides every record's timestamp, and
 * otherwise baseTimestamp and maxTimestamp stand in for the records. */
static sh_err_t sh_rb_header_timestamps(const sh_record_batch_t *b,
                                        const sh_record_batch_policy_t *pol,
                                        sh_record_batch_info_t *info)
{
    bool lat = sh_record_batch_timestamp_type(b) == SH_TS_LOG_APPEND_TIME;
    bool bad = lat ? sh_rb_ts_bad(pol, true, b->max_timestamp)
                   : sh_rb_ts_bad(pol, false, b->base_timestamp) ||
                         sh_rb_ts_bad(pol, false, b->max_timestamp);
    if (bad)
        return sh_rb_fail(info, SH_KERR_INVALID_TIMESTAMP,
                          lat ? "producer set the LogAppendTime timestamp type"
                              : "batch timestamp is out of the accepted range");
    return 0;
}

sh_err_t sh_record_batch_validate(sh_slice_t records, const sh_record_batch_policy_t *pol,
                                  sh_record_batch_info_t *info)
{
    sh_record_batch_policy_t defaults;
    if (!pol) {
        sh_record_batch_policy_init(&defaults);
        pol = &defaults;
    }
    memset(info, 0, sizeof(*info));
    info->error_index = -1;
    if (!records.ptr)
        return sh_rb_fail(info, SH_KERR_INVALID_RECORD, "records are null");

    /* ProduceRequest.validateRecords: exactly one v2 batch */
    size_t size = 0;
    int probe = sh_rb_frame_probe(records.ptr, records.len, &size);
    if (probe < 0)
        return sh_rb_fail(info, SH_KERR_CORRUPT_MESSAGE, "record batch length or magic is corrupt");
    if (probe == 0)
        return sh_rb_fail(info, SH_KERR_INVALID_RECORD, "records hold no complete record batch");
    if (records.ptr[SH_RB_OFF_MAGIC] != SH_RB_MAGIC)
        return sh_rb_fail(info, SH_KERR_INVALID_RECORD,
                          "produce requests v3+ may only carry magic 2 batches");
    if (pol->produce_version < 7 &&
        (records.ptr[SH_RB_OFF_ATTRIBUTES + 1] & SH_RB_ATTR_CODEC_MASK) == SH_CODEC_ZSTD)
        return sh_rb_fail(info, SH_KERR_UNSUPPORTED_COMPRESSION_TYPE,
                          "zstd needs produce request v7 or later");
    size_t size2 = 0;
    int probe2 = sh_rb_frame_probe(records.ptr + size, records.len - size, &size2);
    if (probe2 < 0)
        return sh_rb_fail(info, SH_KERR_CORRUPT_MESSAGE,
                          "bytes after the record batch are corrupt");
    if (probe2 > 0)
        return sh_rb_fail(info, SH_KERR_INVALID_RECORD,
                          "produce requests v3+ may carry only one record batch per partition");
    /* a partial trailing frame is dropped, as Kafka trims it */
    info->batch = (sh_slice_t){records.ptr, size};

    /* analyzeAndValidateRecords: base offset, size, CRC */
    const uint8_t *p = records.ptr;
    if (pol->from_client && sh_load_be64(p + SH_RB_OFF_BASE_OFFSET) != 0)
        return sh_rb_fail(info, SH_KERR_INVALID_RECORD, "baseOffset of a produced batch must be 0");
    if (pol->max_message_bytes > 0 && size > (size_t)pol->max_message_bytes)
        return sh_rb_fail(info, SH_KERR_MESSAGE_TOO_LARGE,
                          "record batch is larger than max.message.bytes");
    sh_record_batch_t b;
    if (sh_record_batch_parse(&b, info->batch) != 0)
        return sh_rb_fail(info, SH_KERR_CORRUPT_MESSAGE, "record batch is shorter than its header");
    if (!sh_record_batch_crc_ok(&b))
        return sh_rb_fail(info, SH_KERR_CORRUPT_MESSAGE, "record batch CRC does not match");

    info->record_count = b.record_count;
    info->last_offset_delta = b.last_offset_delta;
    info->base_timestamp = b.base_timestamp;
    info->max_timestamp = b.max_timestamp;
    info->header_max_timestamp = b.max_timestamp;
    info->producer_id = b.producer_id;
    info->producer_epoch = b.producer_epoch;
    info->base_sequence = b.base_sequence;
    info->is_transactional = sh_record_batch_is_transactional(&b);
    info->is_control = sh_record_batch_is_control(&b);
    info->codec = sh_record_batch_codec(&b);
    info->timestamp_type = sh_record_batch_timestamp_type(&b);

    /* Java throws IllegalArgumentException here (UNKNOWN_SERVER_ERROR);
     * we name the problem instead (docs/record-batch.md) */
    if (info->codec > SH_CODEC_MAX)
        return sh_rb_fail(info, SH_KERR_UNSUPPORTED_COMPRESSION_TYPE,
                          "compression codec is unknown");

    /* LogValidator.validateBatch */
    if (pol->from_client) {
        if ((int64_t)b.last_offset_delta + 1 <= 0)
            return sh_rb_fail(info, SH_KERR_INVALID_RECORD, "lastOffsetDelta is negative");
        if (b.record_count <= 0)
            return sh_rb_fail(info, SH_KERR_INVALID_RECORD, "record count must be positive");
        if ((int64_t)b.last_offset_delta + 1 != b.record_count)
            return sh_rb_fail(info, SH_KERR_INVALID_RECORD,
                              "lastOffsetDelta does not match the record count");
        if (info->is_control)
            return sh_rb_fail(info, SH_KERR_INVALID_RECORD,
                              "clients may not write control batches");
        if (b.producer_id >= 0 && b.base_sequence < 0)
            return sh_rb_fail(info, SH_KERR_INVALID_RECORD,
                              "idempotent batch has a negative base sequence");
        /* not a Java check: a transaction needs a producer to belong to */
        if (info->is_transactional && b.producer_id < 0)
            return sh_rb_fail(info, SH_KERR_INVALID_RECORD,
                              "transactional batch has no producer id");
    } else if (b.record_count < 0) {
        return sh_rb_fail(info, SH_KERR_INVALID_RECORD, "record count is negative");
    }

    bool walk = info->codec == SH_CODEC_NONE || pol->walk_compressed || pol->compacted;
    if (walk) {
        if (info->codec != SH_CODEC_NONE && !pol->scratch)
            return sh_rb_fail(info, SH_E_INVAL, "compressed batch needs a scratch buffer");
        return sh_rb_walk(&b, pol, info);
    }
    return sh_rb_header_timestamps(&b, pol, info);
}

/* ----------------------------------------------------------- patching */

sh_err_t sh_record_batch_patch(uint8_t *batch, size_t len, int64_t base_offset,
                               int32_t leader_epoch)
{
    if (!batch || len < SH_RB_HEADER_SIZE)
        return SH_E_INVAL;
    sh_store_be64(batch + SH_RB_OFF_BASE_OFFSET, (uint64_t)base_offset);
    sh_store_be32(batch + SH_RB_OFF_LEADER_EPOCH, (uint32_t)leader_epoch);
    return 0;
}

int sh_record_batch_set_max_timestamp(uint8_t *batch, size_t len, sh_timestamp_type_t type,
                                      int64_t max_timestamp)
{
    if (!batch || len < SH_RB_HEADER_SIZE)
        return SH_E_INVAL;
    uint16_t attrs = sh_load_be16(batch + SH_RB_OFF_ATTRIBUTES);
    uint16_t nattrs = type == SH_TS_LOG_APPEND_TIME ? (uint16_t)(attrs | SH_RB_ATTR_LOG_APPEND_TIME)
                                                     : (uint16_t)(attrs & ~SH_RB_ATTR_LOG_APPEND_TIME);
    int64_t cur = (int64_t)sh_load_be64(batch + SH_RB_OFF_MAX_TIMESTAMP);
    if (nattrs == attrs && cur == max_timestamp)
        return 0;
    sh_store_be16(batch + SH_RB_OFF_ATTRIBUTES, nattrs);
    sh_store_be64(batch + SH_RB_OFF_MAX_TIMESTAMP, (uint64_t)max_timestamp);
    sh_store_be32(batch + SH_RB_OFF_CRC, sh_record_batch_crc_compute(batch, len));
    return 1;
}

sh_err_t sh_record_batch_assign(uint8_t *batch, const sh_record_batch_info_t *info,
                                const sh_record_batch_policy_t *pol, int64_t base_offset,
                                int32_t leader_epoch)
{
    size_t len = info->batch.len;
    sh_err_t err = sh_record_batch_patch(batch, len, base_offset, leader_epoch);
    if (err)
        return err;
    int rc;
    if (pol && pol->log_append_time)
        rc = sh_record_batch_set_max_timestamp(batch, len, SH_TS_LOG_APPEND_TIME, pol->now_ms);
    else
        rc = sh_record_batch_set_max_timestamp(batch, len, SH_TS_CREATE_TIME,
                                               info->max_timestamp);
    return rc < 0 ? rc : 0;
}

/* ------------------------------------------------------------ builder */

void sh_record_batch_spec_init(sh_record_batch_spec_t *s)
{
    memset(s, 0, sizeof(*s));
    s->partition_leader_epoch = -1;
    s->codec = SH_CODEC_NONE;
    s->timestamp_type = SH_TS_CREATE_TIME;
    s->log_append_time = SH_RB_NO_TIMESTAMP;
    s->producer_id = -1;
    s->producer_epoch = -1;
    s->base_sequence = -1;
}

static size_t sh_rb_vsize(int64_t v)
{
    return sh_uvarint_size(sh_zigzag_encode(v));
}

static void sh_rb_put_varint(uint8_t **p, int64_t v)
{
    *p += sh_uvarint_write(*p, sh_zigzag_encode(v));
}

static void sh_rb_put_bytes(uint8_t **p, sh_slice_t s)
{
    if (!s.ptr) {
        sh_rb_put_varint(p, -1);
        return;
    }
    sh_rb_put_varint(p, (int64_t)s.len);
    if (s.len)
        memcpy(*p, s.ptr, s.len);
    *p += s.len;
}

static size_t sh_rb_bytes_size(sh_slice_t s)
{
    return s.ptr ? sh_rb_vsize((int64_t)s.len) + s.len : 1;
}

/* Encoded body size (after the length varint) of record i, or 0 if it
 * cannot be encoded. */
static size_t sh_rb_record_body_size(const sh_record_spec_t *r, int64_t ts_delta, int32_t i)
{
    if (r->key.len > INT32_MAX || r->value.len > INT32_MAX || r->header_count > INT32_MAX ||
        (r->header_count && !r->headers))
        return 0;
    size_t n = 1 + sh_rb_vsize(ts_delta) + sh_rb_vsize(i) + sh_rb_bytes_size(r->key) +
               sh_rb_bytes_size(r->value) + sh_rb_vsize((int64_t)r->header_count);
    for (size_t h = 0; h < r->header_count; h++) {
        if (!r->headers[h].key.ptr || r->headers[h].key.len > INT32_MAX ||
            r->headers[h].value.len > INT32_MAX)
            return 0;
        n += sh_rb_bytes_size(r->headers[h].key) + sh_rb_bytes_size(r->headers[h].value);
        if (n > INT32_MAX)
            return 0;
    }
    return n > INT32_MAX ? 0 : n;
}

sh_err_t sh_record_batch_build(const sh_record_batch_spec_t *spec, const sh_record_spec_t *recs,
                               size_t n, sh_outbuf_t *out)
{
    if (!spec || (unsigned)spec->codec > SH_CODEC_MAX || n > INT32_MAX || (n && !recs))
        return SH_E_INVAL;
    size_t len0 = out->len;
    sh_outbuf_t body;
    sh_outbuf_init_heap(&body);
    sh_err_t err = 0;

    int64_t base_ts = n ? recs[0].timestamp : SH_RB_NO_TIMESTAMP;
    int64_t max_ts = SH_RB_NO_TIMESTAMP;
    for (size_t i = 0; i < n; i++) {
        const sh_record_spec_t *r = &recs[i];
        int64_t delta = (int64_t)((uint64_t)r->timestamp - (uint64_t)base_ts);
        size_t bsize = sh_rb_record_body_size(r, delta, (int32_t)i);
        if (bsize == 0) {
            err = SH_E_INVAL;
            goto fail;
        }
        err = sh_outbuf_reserve(&body, sh_rb_vsize((int64_t)bsize) + bsize);
        if (err)
            goto fail;
        uint8_t *p = body.data + body.len;
        sh_rb_put_varint(&p, (int64_t)bsize);
        *p++ = 0; /* record attributes: none defined */
        sh_rb_put_varint(&p, delta);
        sh_rb_put_varint(&p, (int64_t)i);
        sh_rb_put_bytes(&p, r->key);
        sh_rb_put_bytes(&p, r->value);
        sh_rb_put_varint(&p, (int64_t)r->header_count);
        for (size_t h = 0; h < r->header_count; h++) {
            sh_rb_put_bytes(&p, r->headers[h].key);
            sh_rb_put_bytes(&p, r->headers[h].value);
        }
        body.len = (size_t)(p - body.data);
        /* from -1, as Java's builder and LogValidator compute it */
        if (r->timestamp > max_ts)
            max_ts = r->timestamp;
    }

    uint8_t zeros[SH_RB_HEADER_SIZE] = {0};
    err = sh_outbuf_append(out, zeros, sizeof(zeros));
    if (err)
        goto fail;
    err = sh_compress(spec->codec, sh_outbuf_slice(&body), out);
    if (err)
        goto fail;
    size_t total = out->len - len0;
    if (total - SH_RB_LOG_OVERHEAD > INT32_MAX) {
        err = SH_E_INVAL;
        goto fail;
    }

    uint16_t attrs = (uint16_t)spec->codec;
    if (spec->timestamp_type == SH_TS_LOG_APPEND_TIME) {
        attrs |= SH_RB_ATTR_LOG_APPEND_TIME;
        max_ts = spec->log_append_time;
    }
    if (spec->transactional)
        attrs |= SH_RB_ATTR_TRANSACTIONAL;
    if (spec->control)
        attrs |= SH_RB_ATTR_CONTROL;
    uint8_t *h = out->data + len0;
    sh_store_be64(h + SH_RB_OFF_BASE_OFFSET, (uint64_t)spec->base_offset);
    sh_store_be32(h + SH_RB_OFF_BATCH_LENGTH, (uint32_t)(total - SH_RB_LOG_OVERHEAD));
    sh_store_be32(h + SH_RB_OFF_LEADER_EPOCH, (uint32_t)spec->partition_leader_epoch);
    h[SH_RB_OFF_MAGIC] = SH_RB_MAGIC;
    sh_store_be16(h + SH_RB_OFF_ATTRIBUTES, attrs);
    sh_store_be32(h + SH_RB_OFF_LAST_OFFSET_DELTA, (uint32_t)((int64_t)n - 1));
    sh_store_be64(h + SH_RB_OFF_BASE_TIMESTAMP, (uint64_t)base_ts);
    sh_store_be64(h + SH_RB_OFF_MAX_TIMESTAMP, (uint64_t)max_ts);
    sh_store_be64(h + SH_RB_OFF_PRODUCER_ID, (uint64_t)spec->producer_id);
    sh_store_be16(h + SH_RB_OFF_PRODUCER_EPOCH, (uint16_t)spec->producer_epoch);
    sh_store_be32(h + SH_RB_OFF_BASE_SEQUENCE, (uint32_t)spec->base_sequence);
    sh_store_be32(h + SH_RB_OFF_RECORD_COUNT, (uint32_t)n);
    sh_store_be32(h + SH_RB_OFF_CRC, sh_record_batch_crc_compute(h, total));
    sh_outbuf_fini(&body);
    return 0;
fail:
    out->len = len0;
    sh_outbuf_fini(&body);
    return err;
}
