/*
 * sh_segment.h - segment objects: the unit of data in the object store.
 *
 * One object holds chunks of one or many partitions. A chunk is a
 * partition's stored Kafka RecordBatch bytes for an increasing offset range,
 * byte for byte, so a Fetch can return any chunk (or a batch-aligned part
 * of it) with one ranged GET and no re-encoding. An index at the end of the
 * object describes every chunk, so objects are self-describing: recovery
 * and tools can rebuild chunk metadata from objects alone. The byte layout
 * is in docs/segment-format.md, the reasoning in
 * docs/adr/004-segment-objects.md.
 *
 * Builder: add chunks (borrowed iovecs), finish, put the returned iovec
 * list with sh_objstore_put_start, then commit the chunk descriptors to
 * metadata. Reader: parse the index from the object's tail, verify a
 * chunk's CRC, find the batch holding an offset inside a chunk.
 *
 * Nothing here logs or does I/O; callers know the object key and say what
 * failed. Not thread-safe per object, no shared state: a builder may be
 * filled on one thread and finished on another as long as not at once.
 */
#ifndef SH_SEGMENT_H
#define SH_SEGMENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/sh_err.h"
#include "protocol/sh_wire.h"

#define SH_SEGMENT_VERSION 1
#define SH_SEGMENT_HEADER_SIZE 8       /* magic + version + flags */
#define SH_SEGMENT_ENTRY_SIZE 64       /* index entry size written by version 1 */
#define SH_SEGMENT_TRAILER_SIZE 32
#define SH_SEGMENT_MAX_CHUNKS (1u << 20)
/* A first tail read of this many bytes holds the whole index of objects
 * with up to ~1000 chunks; sh_segment_index_parse says if more is needed. */
#define SH_SEGMENT_TAIL_GUESS (64 * 1024)

/* One chunk as the index records it and the metadata store will commit it. */
typedef struct sh_segment_chunk {
    sh_uuid_t topic_id;
    int32_t partition;
    int32_t leader_epoch;     /* epoch the writer led the partition under; -1 unknown */
    int64_t base_offset;      /* first batch's baseOffset */
    int64_t last_offset;      /* last batch's baseOffset + lastOffsetDelta */
    int64_t max_timestamp;    /* largest batch maxTimestamp; -1 if none */
    uint64_t byte_offset;     /* where the chunk starts in the object */
    uint32_t byte_length;
    uint32_t crc;             /* CRC-32C of the chunk's bytes */
} sh_segment_chunk_t;

/* ---------------------------------------------------------------- builder */

typedef struct sh_segment_builder sh_segment_builder_t;

sh_segment_builder_t *sh_segment_builder_new(void);
void sh_segment_builder_free(sh_segment_builder_t *b);

/*
 * Append a chunk: whole RecordBatches (magic 2) of one partition with
 * strictly increasing offsets, as iov[0..iovcnt) (a batch may span iovecs).
 * Offsets and max timestamp come from the batch headers, and the CRC is
 * computed here (on the calling thread). The bytes are borrowed until the
 * object is put and the builder freed; the iovec array is copied.
 * On success *out (if not NULL) points at the chunk's descriptor, valid
 * until the builder is freed (byte_offset is final at once).
 * SH_E_INVAL if the bytes are not such batches or exceed 4 GiB - 1, or
 * after finish; nothing is added then.
 */
sh_err_t sh_segment_builder_add(sh_segment_builder_t *b, sh_uuid_t topic_id, int32_t partition,
                                int32_t leader_epoch, const struct iovec *iov, int iovcnt,
                                const sh_segment_chunk_t **out);

/* Number of chunks so far, and the object size finish would produce. */
size_t sh_segment_builder_count(const sh_segment_builder_t *b);
uint64_t sh_segment_builder_size(const sh_segment_builder_t *b);

/*
 * Seal the object: write header and index. *iov / *iovcnt describe the whole
 * object in order, ready for sh_objstore_put_start; the array and the
 * header/index bytes belong to the builder. created_ms is the writer's wall
 * clock, recorded for tools and orphan collection. SH_E_INVAL with no
 * chunks or when called twice; SH_E_NOMEM.
 */
sh_err_t sh_segment_builder_finish(sh_segment_builder_t *b, int64_t created_ms,
                                   const struct iovec **iov, int *iovcnt,
                                   uint64_t *object_size);

/* The descriptors of every chunk added, in object order. */
const sh_segment_chunk_t *sh_segment_builder_chunks(const sh_segment_builder_t *b, size_t *n);

/* ----------------------------------------------------------------- reader */

typedef struct sh_segment_index {
    uint16_t version;
    int64_t created_ms;
    uint64_t object_size;
    uint64_t index_offset;        /* chunk data ends here; the index starts here */
    uint32_t nchunks;
    sh_segment_chunk_t *chunks;   /* heap, in object order; sh_segment_index_fini frees */
} sh_segment_index_t;

/*
 * Parse an object's index from its last tail_len bytes (tail_len may be the
 * whole object). Returns:
 *   SH_OK            *out filled; release with sh_segment_index_fini
 *   SH_E_AGAIN       the tail is too short: read the last *need bytes and retry
 *   SH_E_CORRUPT     bad magic, checksum, or any field out of bounds
 *   SH_E_UNSUPPORTED a format version this code does not know
 *   SH_E_NOMEM
 * Every count and offset is checked against the sizes given before it is
 * used, so arbitrary bytes can be passed. On failure *out is empty.
 */
sh_err_t sh_segment_index_parse(const uint8_t *tail, size_t tail_len, uint64_t object_size,
                                sh_segment_index_t *out, uint64_t *need);
void sh_segment_index_fini(sh_segment_index_t *idx);

/* The chunk of (topic, partition) holding `offset`, or NULL. */
const sh_segment_chunk_t *sh_segment_index_find(const sh_segment_index_t *idx,
                                                sh_uuid_t topic_id, int32_t partition,
                                                int64_t offset);

/* SH_OK if bytes[0..len) are exactly the chunk `c` describes (length and
 * CRC-32C), else SH_E_CORRUPT. */
sh_err_t sh_segment_chunk_verify(const sh_segment_chunk_t *c, const uint8_t *bytes, size_t len);

/*
 * Byte position in chunk[0..len) of the first batch whose last offset is
 * >= target (the batch a Fetch at `target` starts with). Reads only the
 * header fields baseOffset, batchLength and lastOffsetDelta, bounds-checked.
 *   SH_OK            *pos set (0 when target precedes the chunk)
 *   SH_E_NOTFOUND    every batch ends before target; *pos = len
 *   SH_E_CORRUPT     a header is truncated or impossible; *pos = its position
 * The chunk may be any batch-aligned piece of a stored chunk.
 */
sh_err_t sh_segment_chunk_find(const uint8_t *chunk, size_t len, int64_t target, size_t *pos);

/* ------------------------------------------------------------ object keys */

/* Longest key sh_segment_key_format writes, NUL included. */
#define SH_SEGMENT_KEY_SIZE 64

/*
 * Object key "<hh>/seg/<writer_id:8 hex>-<writer_epoch:16 hex>-<seq:16 hex>",
 * hh = two hex digits of the CRC-32C of everything after "<hh>/", so keys
 * spread evenly over 256 prefixes (see docs/segment-format.md). The triple
 * must be unique: writer_id is the broker id, writer_epoch unique per broker
 * incarnation (its registration epoch), seq counts objects within it.
 * Returns the key length, or -1 if cap is too small or an argument is negative.
 */
int sh_segment_key_format(char *buf, size_t cap, int32_t writer_id, int64_t writer_epoch,
                          uint64_t seq);

/* Inverse of sh_segment_key_format; checks the hash prefix. SH_E_INVAL if
 * `key` is not a segment key. Any output pointer may be NULL. */
sh_err_t sh_segment_key_parse(const char *key, int32_t *writer_id, int64_t *writer_epoch,
                              uint64_t *seq);

#endif
