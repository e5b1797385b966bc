/*
 * sh_record_batch.h - Kafka RecordBatch v2 (magic 2): header view,
 * Produce-path validation with Kafka's error codes, in-place patching,
 * record iteration (with decompression) and a batch builder.
 *
 * Layout reference: ../shared/kafka-protocol/RECORD-BATCH.md. What we check
 * and why, and where we knowingly differ from the Java broker:
 * docs/record-batch.md.
 *
 * Memory: nothing here allocates except decompression and the builder,
 * which write into a caller's sh_outbuf_t (sh_compress.h). Parsed headers,
 * records, keys, values and headers are slices borrowing either the batch
 * bytes or that output buffer; they live as long as both do (a heap
 * outbuf that grows moves its bytes, so reset it between batches rather
 * than holding record slices across appends).
 *
 * Threading: no shared state; a batch or iterator belongs to one thread.
 */
#ifndef SH_RECORD_BATCH_H
#define SH_RECORD_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/sh_err.h"
#include "common/sh_slice.h"
#include "protocol/sh_compress.h"
#include "protocol/sh_wire.h"

/* ------------------------------------------------------------ layout */

#define SH_RB_LOG_OVERHEAD 12          /* baseOffset + batchLength */
#define SH_RB_HEADER_SIZE 61           /* smallest valid batch */
#define SH_RB_MAGIC 2

#define SH_RB_OFF_BASE_OFFSET 0
#define SH_RB_OFF_BATCH_LENGTH 8
#define SH_RB_OFF_LEADER_EPOCH 12
#define SH_RB_OFF_MAGIC 16
#define SH_RB_OFF_CRC 17
#define SH_RB_OFF_ATTRIBUTES 21        /* CRC coverage starts here */
#define SH_RB_OFF_LAST_OFFSET_DELTA 23
#define SH_RB_OFF_BASE_TIMESTAMP 27
#define SH_RB_OFF_MAX_TIMESTAMP 35
#define SH_RB_OFF_PRODUCER_ID 43
#define SH_RB_OFF_PRODUCER_EPOCH 51
#define SH_RB_OFF_BASE_SEQUENCE 53
#define SH_RB_OFF_RECORD_COUNT 57

#define SH_RB_ATTR_CODEC_MASK 0x07
#define SH_RB_ATTR_LOG_APPEND_TIME 0x08
#define SH_RB_ATTR_TRANSACTIONAL 0x10
#define SH_RB_ATTR_CONTROL 0x20
#define SH_RB_ATTR_DELETE_HORIZON 0x40

#define SH_RB_NO_TIMESTAMP (-1LL)

typedef enum sh_timestamp_type {
    SH_TS_CREATE_TIME = 0,
    SH_TS_LOG_APPEND_TIME = 1,
} sh_timestamp_type_t;

/* ------------------------------------------------------ header view */

/* The 61 header fields, decoded, plus where the batch and its records are. */
typedef struct sh_record_batch {
    int64_t base_offset;
    int32_t batch_length;
    int32_t partition_leader_epoch;
    int8_t magic;
    uint32_t crc;
    int16_t attributes;
    int32_t last_offset_delta;
    int64_t base_timestamp;
    int64_t max_timestamp;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
    int32_t record_count;
    sh_slice_t bytes;    /* the whole batch: 12 + batch_length bytes */
    sh_slice_t records;  /* bytes after the header (compressed or not) */
} sh_record_batch_t;

/*
 * Decode the header of the batch that starts `in`. Checks only structure:
 * 61 header bytes, batchLength >= 49, 12 + batchLength bytes present, and
 * magic 2. Bytes after the batch are ignored (b->bytes says where it ends).
 * Returns 0, SH_E_DECODE (too short, impossible length) or
 * SH_E_UNSUPPORTED (magic other than 2). Does not check the CRC.
 */
sh_err_t sh_record_batch_parse(sh_record_batch_t *b, sh_slice_t in);

static inline int sh_record_batch_codec(const sh_record_batch_t *b)
{
    return b->attributes & SH_RB_ATTR_CODEC_MASK;
}
static inline sh_timestamp_type_t sh_record_batch_timestamp_type(const sh_record_batch_t *b)
{
    return (b->attributes & SH_RB_ATTR_LOG_APPEND_TIME) ? SH_TS_LOG_APPEND_TIME
                                                        : SH_TS_CREATE_TIME;
}
static inline bool sh_record_batch_is_transactional(const sh_record_batch_t *b)
{
    return (b->attributes & SH_RB_ATTR_TRANSACTIONAL) != 0;
}
static inline bool sh_record_batch_is_control(const sh_record_batch_t *b)
{
    return (b->attributes & SH_RB_ATTR_CONTROL) != 0;
}
static inline int64_t sh_record_batch_last_offset(const sh_record_batch_t *b)
{
    return b->base_offset + b->last_offset_delta;
}

/* CRC-32C of bytes [21, len) of a whole batch (len >= 21). */
uint32_t sh_record_batch_crc_compute(const uint8_t *batch, size_t len);
/* True when the stored CRC matches the bytes. */
bool sh_record_batch_crc_ok(const sh_record_batch_t *b);

/*
 * Take the next whole batch from *rest (a records field, a Fetch response
 * or a stored range holding batches end to end) and advance *rest past it.
 * Returns 0 with *batch set; SH_E_NOTFOUND when *rest holds no complete
 * batch (empty, or a truncated trailing batch, which Fetch responses may
 * legally end with); SH_E_DECODE when the length field is impossible.
 * The magic is not checked here; sh_record_batch_parse does that.
 */
sh_err_t sh_record_batch_next(sh_slice_t *rest, sh_slice_t *batch);

/* -------------------------------------------------------- validation */

/* What the Produce handler knows about the request and the topic. */
typedef struct sh_record_batch_policy {
    int16_t produce_version;        /* the request's version (zstd needs 7+) */
    bool from_client;               /* Produce from a client: Kafka's client-only
                                     * checks (baseOffset 0, counts, no control
                                     * batches, sequences). False to re-check
                                     * stored batches. */
    int32_t max_message_bytes;      /* topic max.message.bytes; <= 0 = no limit */
    bool log_append_time;           /* message.timestamp.type=LogAppendTime */
    bool compacted;                 /* cleanup.policy has compact: keys required */
    int64_t now_ms;                 /* broker clock, for timestamp bounds */
    int64_t timestamp_before_max_ms; /* message.timestamp.before.max.ms; < 0 = unlimited */
    int64_t timestamp_after_max_ms;  /* message.timestamp.after.max.ms; < 0 = unlimited */
    bool walk_compressed;           /* decompress compressed batches and check
                                     * every record (always done when compacted) */
    sh_outbuf_t *scratch;           /* decompression output; needed only when a
                                     * compressed batch is walked */
    size_t max_uncompressed;        /* decompression cap; 0 = default (16 MiB) */
} sh_record_batch_policy_t;

#define SH_RB_DEFAULT_MAX_UNCOMPRESSED ((size_t)16 * 1024 * 1024)

/* Defaults: client Produce v11, no size limit, CreateTime, not compacted,
 * unlimited timestamp bounds, compressed batches not walked. */
void sh_record_batch_policy_init(sh_record_batch_policy_t *p);

/* What the broker needs about an accepted batch. */
typedef struct sh_record_batch_info {
    sh_slice_t batch;            /* the batch's exact bytes; a records field may
                                  * carry a partial trailing batch, which Kafka
                                  * drops, so store these bytes, not the field */
    int32_t record_count;
    int32_t last_offset_delta;
    int64_t base_timestamp;
    int64_t max_timestamp;       /* computed from the records when they were
                                  * walked (what Kafka stores), else the header's */
    int64_t header_max_timestamp;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
    bool is_transactional;
    bool is_control;
    int codec;                   /* sh_codec_t value */
    sh_timestamp_type_t timestamp_type;  /* as sent */
    bool records_walked;         /* every record was decoded and checked */
    size_t uncompressed_size;    /* bytes of records after decompression, if walked */
    /* On failure: why (a static string for logs and the Produce v8+
     * ErrorMessage) and, for a per-record failure, the record's index
     * (RecordErrors.BatchIndex), else -1. */
    const char *reason;
    int32_t error_index;
} sh_record_batch_info_t;

/*
 * Validate the `records` field of one Produce partition the way Kafka's
 * broker does (ProduceRequest.validateRecords, UnifiedLog's
 * analyzeAndValidateRecords and LogValidator), in Kafka's order:
 *   no whole batch, or magic 0/1 ........................ INVALID_RECORD (87)
 *   impossible batch length, magic outside 0..2 ......... CORRUPT_MESSAGE (2)
 *   zstd with Produce < v7 ............................... UNSUPPORTED_COMPRESSION_TYPE (76)
 *   a second whole batch ................................. INVALID_RECORD
 *   baseOffset != 0 (client) ............................. INVALID_RECORD
 *   batch larger than max.message.bytes .................. MESSAGE_TOO_LARGE (10)
 *   batch under 61 bytes or CRC mismatch ................. CORRUPT_MESSAGE
 *   codec 5-7 ............................................ UNSUPPORTED_COMPRESSION_TYPE
 *   counts, control batch, sequence, transactional (client)  INVALID_RECORD
 *   record structure (length, deltas, key/value/header bounds) INVALID_RECORD
 *   null key on a compacted topic ........................ INVALID_RECORD
 *   timestamp out of bounds, LogAppendTime set by producer  INVALID_TIMESTAMP (32)
 *   decompressed records over the cap .................... MESSAGE_TOO_LARGE
 * Uncompressed batches are always walked; compressed ones when the policy
 * asks (or the topic is compacted). Returns 0 or one of the codes above;
 * SH_E_NOMEM; SH_E_INVAL when a compressed batch must be walked but
 * pol->scratch is NULL. info (may not be NULL) is filled as far as
 * validation got. Nothing is modified.
 */
sh_err_t sh_record_batch_validate(sh_slice_t records, const sh_record_batch_policy_t *pol,
                                  sh_record_batch_info_t *info);

/* ---------------------------------------------------------- patching */

/*
 * Overwrite baseOffset and partitionLeaderEpoch of a whole batch in place.
 * Neither is covered by the CRC, so the batch stays valid. len >= 61.
 */
sh_err_t sh_record_batch_patch(uint8_t *batch, size_t len, int64_t base_offset,
                               int32_t leader_epoch);

/*
 * Set the timestamp-type bit and maxTimestamp and recompute the CRC, as
 * Kafka's setMaxTimestamp does; baseTimestamp is left as it was (Kafka
 * leaves it too). Other attribute bits are kept. Nothing is written when
 * both already hold these values. Returns 1 if the batch changed, 0 if
 * not, SH_E_INVAL if len < 61.
 */
int sh_record_batch_set_max_timestamp(uint8_t *batch, size_t len, sh_timestamp_type_t type,
                                      int64_t max_timestamp);

/*
 * Everything Kafka's LogValidator writes into an accepted Produce batch:
 * base offset and leader epoch; on a LogAppendTime topic, the type bit and
 * maxTimestamp = now_ms; on a CreateTime topic whose records were walked,
 * CreateTime and the records' real maximum (a producer's wrong header is
 * corrected, as Kafka does). `batch` is info->batch made writable (the
 * caller owns those bytes). The CRC is recomputed only when attributes or
 * maxTimestamp change. Returns 0 or SH_E_INVAL.
 */
sh_err_t sh_record_batch_assign(uint8_t *batch, const sh_record_batch_info_t *info,
                                const sh_record_batch_policy_t *pol, int64_t base_offset,
                                int32_t leader_epoch);

/* --------------------------------------------------------- iteration */

typedef struct sh_record_header {
    sh_slice_t key;     /* never null */
    sh_slice_t value;   /* ptr NULL = null value */
} sh_record_header_t;

typedef struct sh_record {
    int8_t attributes;
    int64_t timestamp_delta;
    int32_t offset_delta;
    int64_t offset;           /* base_offset + offset_delta */
    int64_t timestamp;        /* CreateTime: baseTimestamp + delta;
                               * LogAppendTime: the batch's maxTimestamp */
    sh_slice_t key;           /* ptr NULL = null key */
    sh_slice_t value;         /* ptr NULL = null value (tombstone) */
    int32_t header_count;
    sh_slice_t headers;       /* encoded headers, already bounds-checked */
    size_t size;              /* encoded size including the length varint */
} sh_record_t;

typedef struct sh_record_batch_iter {
    sh_record_batch_t batch;
    sh_reader_t rd;           /* over the (decompressed) records */
    int32_t index;            /* records returned so far */
    int32_t prev_delta;
    sh_err_t err;             /* sticky: 0 while fine */
    const char *reason;       /* static text when err != 0 */
    size_t uncompressed_size;
} sh_record_batch_iter_t;

/*
 * Start iterating the batch at the start of `batch`. A compressed batch is
 * decompressed first, appended to *scratch, producing at most
 * max_uncompressed bytes (0 = SH_RB_DEFAULT_MAX_UNCOMPRESSED). The CRC is
 * not checked (sh_record_batch_crc_ok). Returns 0; CORRUPT_MESSAGE if the
 * header does not parse; INVALID_RECORD for a negative count or a
 * malformed compressed stream; UNSUPPORTED_COMPRESSION_TYPE for codec 5-7;
 * MESSAGE_TOO_LARGE over the cap; SH_E_INVAL for a compressed batch with
 * no scratch; SH_E_NOMEM. The same value is left in it->err.
 */
sh_err_t sh_record_batch_iter_init(sh_record_batch_iter_t *it, sh_slice_t batch,
                                   sh_outbuf_t *scratch, size_t max_uncompressed);

/*
 * Next record: true with *rec filled, false at the end or on error
 * (it->err is then INVALID_RECORD and it->reason says why). Every record
 * is fully bounds-checked: its length matches what it holds, offset deltas
 * rise strictly from >= 0 up to lastOffsetDelta, key/value lengths are
 * >= -1, header count and header key lengths >= 0, and exactly
 * recordCount records fill the records bytes.
 */
bool sh_record_batch_iter_next(sh_record_batch_iter_t *it, sh_record_t *rec);

typedef struct sh_record_header_iter {
    sh_reader_t rd;
    int32_t left;
} sh_record_header_iter_t;

void sh_record_header_iter_init(sh_record_header_iter_t *hi, const sh_record_t *rec);
/* True with *h filled while headers remain. */
bool sh_record_header_iter_next(sh_record_header_iter_t *hi, sh_record_header_t *h);

/* ----------------------------------------------------------- builder */

/* One record to build. */
typedef struct sh_record_spec {
    int64_t timestamp;
    sh_slice_t key;                    /* ptr NULL = null */
    sh_slice_t value;                  /* ptr NULL = null */
    const sh_record_header_t *headers; /* header keys must not be null */
    size_t header_count;
} sh_record_spec_t;

/* Batch-level choices for the builder. */
typedef struct sh_record_batch_spec {
    int64_t base_offset;
    int32_t partition_leader_epoch;
    sh_codec_t codec;
    sh_timestamp_type_t timestamp_type;
    int64_t log_append_time;   /* maxTimestamp when timestamp_type is LogAppendTime */
    bool transactional;
    bool control;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
} sh_record_batch_spec_t;

/* Defaults as a non-idempotent Java producer sends: offset 0, leader epoch
 * -1, no compression, CreateTime, producer id/epoch/sequence -1. */
void sh_record_batch_spec_init(sh_record_batch_spec_t *s);

/*
 * Build one v2 batch from n records (offset deltas 0..n-1; baseTimestamp is
 * the first record's, maxTimestamp the largest, both -1 when n == 0) and
 * append it to out. Returns 0, SH_E_INVAL (bad spec, null header key,
 * too large) or an sh_compress/sh_outbuf error; out is unchanged on error.
 */
sh_err_t sh_record_batch_build(const sh_record_batch_spec_t *spec, const sh_record_spec_t *recs,
                               size_t n, sh_outbuf_t *out);

#endif
