/*
 * sh_plog.h - the partition log: one partition's offsets, its in-memory
 * tail of appended batches, its chunk index and its WAL handle.
 *
 * Offsets of a partition, lowest to highest:
 *
 *   log start  <=  committed  <=  durable  <=  next offset (log end)
 *   |-- chunks in objects --|-- tail: batches in memory and the WAL --|
 *
 *   - log start offset: the first offset still kept (metadata store).
 *   - committed: everything below lives in segment chunks recorded in the
 *     metadata store (its high_watermark column); the chunk index here is
 *     the in-memory copy, loaded at open and extended on every commit.
 *   - durable: everything below is fsync'd in the WAL.
 *   - next offset: where the next batch goes (Kafka's log end offset).
 *   - high watermark (what consumers may read, ADR 005): the durable
 *     offset, or the committed one on a topic with
 *     streamhouse.durability=object. It never moves backwards.
 *
 * Produce: sh_plog_append_start() validates one partition's records field
 * (Kafka's checks and codes, protocol/sh_record_batch.h), assigns the
 * offset by patching baseOffset and partitionLeaderEpoch in the request
 * frame itself, and hands the same bytes to the WAL; the tail entry keeps
 * a reference to the frame block (zero copy). Completion is reported when
 * the WAL fsync covers the batch, or, for durability=object, when the
 * chunk holding it is committed. When the WAL is full (SH_E_AGAIN) the
 * append waits in a FIFO until an upload releases space; later appends to
 * the same partition queue behind it, so one connection's batches keep
 * their order.
 *
 * Fetch: sh_plog_read() answers with slices of tail entries (whole
 * batches, zero copy), or with the location of the chunk holding the
 * offset, which the caller reads from the cache or the object store.
 *
 * Upload: the uploader takes durable, not yet uploaded entries
 * (sh_plog_upload_take), puts them into a segment object, commits, and
 * reports back (sh_plog_upload_done), which extends the chunk index,
 * releases the WAL and drops the uploaded entries from the tail.
 *
 * Restart: sh_plog_open() reads the partition row and the chunk index from
 * the metadata store and replays the WAL, rebuilding the tail from the
 * frames above the committed offset (a frame's payload is the stored batch).
 *
 * Idempotent producers (docs/idempotence.md): the log keeps each producer
 * id's epoch and last five batches (storage/sh_producer_state.h), checks
 * every batch with a producer id against them when it is given its offset
 * (so an in-flight retry of a batch still waiting for its fsync is caught
 * too), answers a duplicate with the stored batch's offsets once those are
 * durable, and never writes it twice. Each upload carries the state as of
 * the chunk's end, which the uploader writes to the metadata store before
 * the chunk commit; open() starts from that snapshot and replays the WAL
 * above it.
 *
 * Thread: the loop thread only (sh_plog_open and close may also run on the
 * startup thread before the loop starts). sh_plog_open blocks on the
 * metadata store and the WAL replay reads.
 *
 * Ownership: the opener holds one reference and gives it up with
 * sh_plog_close(); sh_plog_ref/unref let others (the uploader) keep the
 * struct alive. The plog also stays alive until every WAL append it
 * started has completed. Tail entries each hold a reference to their frame
 * block. Appends (sh_plog_append_t) and watches are caller-owned memory the
 * plog links while they wait; they must stay valid until completed,
 * cancelled or fired.
 */
#ifndef SH_PLOG_H
#define SH_PLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/sh_err.h"
#include "common/sh_slice.h"
#include "meta/sh_meta.h"
#include "protocol/sh_record_batch.h"
#include "protocol/sh_wire.h"
#include "storage/sh_producer_state.h"
#include "wal/sh_wal.h"

typedef struct sh_plog sh_plog_t;

/* What the topic configuration says, as far as the log cares. */
typedef struct sh_plog_cfg {
    int32_t max_message_bytes;   /* max.message.bytes; <= 0: no limit */
    bool log_append_time;        /* message.timestamp.type=LogAppendTime */
    bool durability_object;      /* streamhouse.durability=object */
} sh_plog_cfg_t;

/* The broker-wide observer (the uploader): told when a partition has new
 * durable bytes to upload, and when an append waits for WAL space. */
typedef struct sh_plog_observer {
    void (*durable)(void *arg, sh_plog_t *p, size_t bytes, int64_t appended_ms);
    void (*parked)(void *arg, sh_plog_t *p);
    void *arg;
} sh_plog_observer_t;

typedef struct sh_plog_opts {
    sh_uuid_t topic_id;
    int32_t partition;
    int32_t leader_epoch;              /* granted by sh_meta_partition_acquire */
    const char *topic_name;            /* for log lines; copied */
    sh_wal_mgr_t *wal;
    sh_meta_t *meta;                   /* read synchronously by sh_plog_open */
    sh_plog_cfg_t cfg;
    const sh_plog_observer_t *observer; /* may be NULL; must outlive the plog */
    /* The broker's lowest acceptable epoch for a producer id (its own
     * InitProducerId bumps), or -1 for no opinion. May be NULL. Loop
     * thread; arg must outlive the plog. */
    int16_t (*producer_epoch_floor)(void *arg, int64_t producer_id);
    void *producer_arg;
} sh_plog_opts_t;

/* Open a partition: read its row (log start, committed offset) and chunk
 * index from the metadata store, its producer snapshot at the committed
 * offset, open its WAL key and replay the frames above the committed
 * offset into the tail (and the producer state), then fence producers
 * whose epoch the store says moved on. Blocking (metadata and replay
 * reads). Errors: SH_KERR_UNKNOWN_TOPIC_OR_PARTITION (no such partition),
 * SH_E_IO, SH_E_NOMEM, or what sh_wal_open refuses with. */
sh_err_t sh_plog_open(const sh_plog_opts_t *o, sh_plog_t **out);

/* The opener is done with the partition: every waiting append completes
 * with NOT_LEADER_OR_FOLLOWER (UNKNOWN_TOPIC_OR_PARTITION when deleted),
 * watches fire, and the WAL handle is closed (deleted: its frames are
 * dropped with sh_wal_delete). Reads and appends fail from now on. The
 * struct is freed when the last reference and WAL append are gone. */
void sh_plog_close(sh_plog_t *p, bool deleted);

void sh_plog_ref(sh_plog_t *p);
void sh_plog_unref(sh_plog_t *p);

/* A new topic configuration (AlterConfigs). */
void sh_plog_set_cfg(sh_plog_t *p, const sh_plog_cfg_t *cfg);

typedef struct sh_plog_state {
    int64_t log_start_offset;
    int64_t high_watermark;
    int64_t log_end_offset;      /* next offset */
    int64_t durable_offset;
    int64_t committed_offset;
    int32_t leader_epoch;
    sh_err_t err;                /* 0 while served; else the Kafka code to answer */
    size_t tail_entries, tail_bytes;
    size_t chunks;
} sh_plog_state_t;

void sh_plog_state(const sh_plog_t *p, sh_plog_state_t *out);
const char *sh_plog_name(const sh_plog_t *p);   /* "topic-3" */
sh_uuid_t sh_plog_topic_id(const sh_plog_t *p);
int32_t sh_plog_partition(const sh_plog_t *p);
int32_t sh_plog_leader_epoch(const sh_plog_t *p);
int64_t sh_plog_high_watermark(const sh_plog_t *p);
int64_t sh_plog_log_start(const sh_plog_t *p);
/* 0 while the partition is served, else the Kafka error to answer with. */
sh_err_t sh_plog_error(const sh_plog_t *p);

/* ---------------------------------------------------------------- append */

typedef struct sh_plog_append sh_plog_append_t;
typedef void (*sh_plog_append_fn)(sh_plog_append_t *a);

struct sh_plog_append {
    /* in: set by the caller before sh_plog_append_start */
    sh_block_t *block;          /* the request frame holding records; the
                                 * plog takes its own references */
    sh_slice_t records;         /* the partition's records field, inside block */
    int16_t produce_version;
    bool wait_durable;          /* acks 1/-1: complete when durable (or
                                 * committed); acks 0: when in the WAL queue */
    sh_plog_append_fn done;     /* runs on the loop, once, if pending */
    void *arg;

    /* out */
    bool pending;               /* done will run */
    sh_err_t err;               /* 0 or a Kafka code (positive) */
    int64_t base_offset;        /* -1 until assigned */
    int64_t last_offset;
    int64_t log_append_time_ms; /* -1 unless the topic uses LogAppendTime */
    int64_t log_start_offset;
    const char *reason;         /* static text for a validation error, or NULL */
    int32_t error_index;        /* failing record index (RecordErrors), or -1 */
    bool duplicate;             /* an idempotent retry of a stored batch: the
                                 * offsets are the original's, nothing written */

    /* private */
    sh_record_batch_info_t info;
    sh_plog_t *plog;
    int queue;
    sh_plog_append_t *prev, *next;
};

/*
 * Validate and append one partition's records. Returns the error at once
 * (a->err, a->reason, a->error_index set; done never runs), or SH_OK:
 *   - a->pending false: appended, nothing more will happen (acks=0 and the
 *     WAL took it at once); a->base_offset is set;
 *   - a->pending true: done(a) runs later on the loop, exactly once,
 *     never from inside this call, with a->err 0 (and base_offset set) or
 *     an error (the partition was closed or fenced: NOT_LEADER_OR_FOLLOWER;
 *     a WAL failure: KAFKA_STORAGE_ERROR).
 * Producer ids: a batch with producerId >= 0 is checked against the
 * producer state when it gets its offset (sh_producer_state_check:
 * INVALID_PRODUCER_EPOCH, OUT_OF_ORDER_SEQUENCE_NUMBER,
 * UNKNOWN_PRODUCER_ID); a duplicate completes like an append, with
 * a->duplicate set and the original's offsets, once those are durable (or
 * committed). Transactional batches get INVALID_TXN_STATE (transactions
 * are not served).
 * The frame bytes of the batch are modified in place (offsets, and the
 * timestamp fields on a LogAppendTime topic).
 */
sh_err_t sh_plog_append_start(sh_plog_t *p, sh_plog_append_t *a);

/* Stop waiting for a pending append (the request timed out). Returns true
 * if a was still waiting: done will not run; a->err is REQUEST_TIMED_OUT
 * if it never reached the WAL, else 0 (it is in the log, only not yet
 * durable or committed; Kafka answers REQUEST_TIMED_OUT then too, which
 * the caller decides). False if it already completed. */
bool sh_plog_append_cancel(sh_plog_append_t *a);

/* Appends waiting for WAL space: try them again (after a release freed
 * space). Returns how many are still waiting. */
size_t sh_plog_retry_parked(sh_plog_t *p);
size_t sh_plog_parked(const sh_plog_t *p);

/* ------------------------------------------------------------------ read */

/* A stored batch range in memory; block is borrowed (take a reference to
 * keep the bytes beyond the current loop callback). */
typedef struct sh_plog_slice {
    sh_block_t *block;
    const uint8_t *ptr;
    size_t len;
    int64_t base_offset, last_offset, max_timestamp;
} sh_plog_slice_t;

/* Where a range of uploaded batches lives. object_key is borrowed until the
 * plog changes (copy it before going asynchronous). */
typedef struct sh_plog_chunk_loc {
    const char *object_key;
    uint64_t byte_offset;
    uint32_t byte_length;
    int64_t base_offset, last_offset, max_timestamp;
} sh_plog_chunk_loc_t;

typedef enum sh_plog_where {
    SH_PLOG_NONE = 0,    /* nothing to read (offset at the high watermark) */
    SH_PLOG_TAIL,        /* slices[0..nslices) */
    SH_PLOG_OBJECT,      /* chunk: read it, then start at the batch holding offset */
} sh_plog_where_t;

typedef struct sh_plog_read {
    sh_plog_where_t where;
    size_t nslices;
    size_t bytes;                /* total of the slices */
    sh_plog_chunk_loc_t chunk;
} sh_plog_read_t;

/*
 * Where `offset` can be read. Kafka's ranges: below the log start or
 * above the log end is OFFSET_OUT_OF_RANGE; from the high watermark to the
 * log end there is nothing to read yet (SH_PLOG_NONE). From the tail,
 * whole batches starting with the one holding `offset`, up to max_bytes
 * (and max_slices); when min_one is set the first batch is returned even
 * if larger than max_bytes. Returns SH_OK, OFFSET_OUT_OF_RANGE, or the
 * partition's error (sh_plog_error).
 */
sh_err_t sh_plog_read(sh_plog_t *p, int64_t offset, size_t max_bytes, bool min_one,
                      sh_plog_slice_t *slices, size_t max_slices, sh_plog_read_t *out);

/* ListOffsets by timestamp: the first batch (in offset order, below the
 * high watermark) whose max timestamp is >= ts, as a tail slice
 * (where = TAIL, slices[0]) or the first chunk holding such a batch
 * (where = OBJECT). SH_E_NOTFOUND if no batch qualifies. */
sh_err_t sh_plog_find_time(sh_plog_t *p, int64_t ts, sh_plog_slice_t *slice,
                           sh_plog_read_t *out);

/* ListOffsets MAX_TIMESTAMP: the batch (tail) or chunk (object) holding
 * the largest timestamp; the lowest offset on ties. SH_E_NOTFOUND when
 * the partition holds no batch below the high watermark. */
sh_err_t sh_plog_find_max_time(sh_plog_t *p, sh_plog_slice_t *slice, sh_plog_read_t *out);

/* ------------------------------------------------------------- retention */

/* What the chunk index says about retention (storage/sh_retention.h):
 * retention asks the metadata store only when these show work to do. */
typedef struct sh_plog_chunk_stats {
    size_t live;             /* chunks with last offset >= log start */
    /* Indexed chunks wholly below the log start: committed after a
     * DeleteRecords moved the log start into the tail. The metadata store
     * keeps counting them (and their objects) until a sweep. */
    size_t dead;
    int64_t live_bytes;      /* byte length of the live chunks */
    int64_t first_bytes;     /* the oldest live chunk's length, 0 if none */
    int64_t first_max_ts;    /* its max timestamp, INT64_MAX if none */
} sh_plog_chunk_stats_t;

void sh_plog_chunk_stats(const sh_plog_t *p, sh_plog_chunk_stats_t *out);

/* The metadata store moved the log start to `offset` (DeleteRecords or
 * retention committed it): advance the in-memory copy (never backwards)
 * and drop the index entries of chunks wholly below it. From now on reads
 * below it are OFFSET_OUT_OF_RANGE; a batch straddling it is still read
 * whole, as Kafka does. The offset may lie in the tail: those batches stay
 * in memory and the WAL until they are uploaded (retention never deletes
 * what is not in an object). Returns how many index entries went. */
size_t sh_plog_log_start_advance(sh_plog_t *p, int64_t offset);

/* ----------------------------------------------------------------- watch */

/* One-shot wake-up when the high watermark moves or the partition stops
 * being served. The watch is unlinked before fn runs. */
typedef struct sh_plog_watch sh_plog_watch_t;
struct sh_plog_watch {
    void (*fn)(sh_plog_watch_t *w, void *arg);
    void *arg;
    sh_plog_watch_t *prev, *next;
    sh_plog_watch_t **list;      /* NULL when not linked */
};

void sh_plog_watch(sh_plog_t *p, sh_plog_watch_t *w, void (*fn)(sh_plog_watch_t *, void *),
                   void *arg);
void sh_plog_unwatch(sh_plog_watch_t *w);

/* ---------------------------------------------------------------- upload */

/* Durable bytes not committed and not in an upload, and the append time
 * (monotonic ms) of the oldest of them, or -1 when none. */
size_t sh_plog_upload_ready(const sh_plog_t *p, int64_t *oldest_ms);

/* Entries taken for one upload. iov and blocks are heap arrays owned by
 * the struct (one reference per block, so the bytes outlive a close). */
typedef struct sh_plog_upload {
    sh_plog_t *plog;             /* referenced */
    int64_t base_offset;         /* the committed offset the chunk continues */
    int64_t last_offset;
    int32_t leader_epoch;
    struct iovec *iov;
    sh_block_t **blocks;
    int iovcnt;
    size_t bytes;
    /* Producer state as of last_offset + 1 (sh_producer_state_encode), to
     * be written with sh_meta_producer_snapshots_put before the commit,
     * and the producers touched since the previous snapshot (their
     * recorded_epoch is filled in by that write). Heap, owned here. */
    char *producer_state;
    sh_meta_producer_touch_t *touched;
    size_t ntouched;
} sh_plog_upload_t;

/* Take durable entries from the committed offset on, up to max_bytes (at
 * least one entry). SH_E_NOTFOUND when there is nothing to take, the
 * partition already has an upload in flight, or it is not served. */
sh_err_t sh_plog_upload_take(sh_plog_t *p, size_t max_bytes, sh_plog_upload_t *out);

/* The chunk was committed as (object_key, byte_offset, byte_length):
 * extend the chunk index, advance the committed offset, release the WAL
 * up to it, drop the uploaded entries from the tail, complete appends
 * waiting for the commit and wake watches, and fence producers whose
 * recorded epoch (u->touched) moved past theirs. Then releases u. */
void sh_plog_upload_done(sh_plog_upload_t *u, const char *object_key, uint64_t byte_offset,
                         uint32_t byte_length, int64_t max_timestamp);

/* The upload failed before its commit: the entries are taken again by the
 * next upload. Releases u. */
void sh_plog_upload_abort(sh_plog_upload_t *u);

/* Free u's arrays and references without telling the plog anything. */
void sh_plog_upload_release(sh_plog_upload_t *u);

/* The metadata store says another leader owns the partition (SH_E_FENCED)
 * or it is gone: stop serving it. Waiting appends fail with `err`. */
void sh_plog_fence(sh_plog_t *p, sh_err_t err, const char *why);

/* ------------------------------------------------------------- producers */

/* The partition's producer state (DescribeProducers); borrowed, valid
 * until the plog changes. */
const sh_producer_state_t *sh_plog_producers(const sh_plog_t *p);

/* producer.id.expiration.ms: forget producers idle that long. Returns how
 * many went. */
size_t sh_plog_producers_expire(sh_plog_t *p, int64_t now_ms, int64_t expiration_ms);

/* The producer's epoch is `epoch` now (an InitProducerId bump or another
 * partition saw it): refuse older epochs here from now on. */
void sh_plog_producer_fence(sh_plog_t *p, int64_t producer_id, int16_t epoch);

/* The WAL key of a partition: "<topic id as 32 hex digits>-<partition>". */
#define SH_PLOG_WAL_KEY_SIZE 48
void sh_plog_wal_key(sh_uuid_t topic_id, int32_t partition, char out[SH_PLOG_WAL_KEY_SIZE]);

#endif
