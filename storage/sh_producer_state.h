/*
 * sh_producer_state.h - one partition's idempotent-producer state: for
 * every producer id that wrote to the partition, its current epoch and
 * the sequence ranges and offsets of its last five batches, which is what
 * deduplication and ordering need (Kafka keeps the same five: a producer
 * has at most five requests in flight per partition, so any retry it can
 * send is among them).
 *
 * The rules (Kafka's, docs/idempotence.md), for a client batch of
 * producer id P, epoch E, sequences first..last:
 *   - E below the broker's floor for P (an InitProducerId bumped it) or
 *     below P's epoch here ............................ INVALID_PRODUCER_EPOCH
 *   - E equal to P's epoch and (first, last) equal to one of the five
 *     batches ............ duplicate: answer with that batch's offsets,
 *                          never write it again
 *   - E above P's epoch: a new epoch must start at sequence 0, else
 *     ................................................ OUT_OF_ORDER_SEQUENCE_NUMBER
 *   - same epoch: first must be the last sequence + 1 (INT32_MAX wraps to
 *     0), else ....................................... OUT_OF_ORDER_SEQUENCE_NUMBER
 *   - P unknown here (never wrote, or expired) and first != 0
 *     ................................................ UNKNOWN_PRODUCER_ID
 * The check does not change anything; the caller records the batch once
 * it has its offsets (sh_producer_state_record). The log rebuilds the
 * state the same way from a snapshot plus the batch headers it replays.
 *
 * Snapshots: sh_producer_state_encode() writes the state as of an offset
 * (only batches wholly below it) as text the metadata store keeps
 * verbatim; sh_producer_state_decode() reads it back.
 *
 * Thread: no shared state; a state belongs to its partition log (the loop
 * thread). Memory: heap-owned by the caller (new/free); entry pointers
 * returned by get/next stay valid until the next record, fence, expire or
 * decode.
 */
#ifndef SH_PRODUCER_STATE_H
#define SH_PRODUCER_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/sh_err.h"
#include "meta/sh_meta_types.h"

/* Kafka's ProducerStateEntry keeps five batches per producer. */
#define SH_PRODUCER_BATCHES 5

typedef struct sh_producer_batch {
    int32_t first_seq;
    int32_t last_seq;
    int64_t first_offset;
    int64_t last_offset;
    int64_t max_timestamp;
} sh_producer_batch_t;

typedef struct sh_producer_entry {
    int64_t producer_id;            /* -1 marks a free slot (internal) */
    int16_t epoch;
    uint8_t nbatches;               /* 0..SH_PRODUCER_BATCHES */
    bool dirty;                     /* changed since the last take_touched */
    sh_producer_batch_t batches[SH_PRODUCER_BATCHES]; /* oldest first */
    int64_t last_timestamp;         /* max timestamp of the newest batch, -1 if none */
    int64_t last_update_ms;         /* broker wall clock of the newest change (expiry) */
} sh_producer_entry_t;

typedef struct sh_producer_state sh_producer_state_t;

sh_producer_state_t *sh_producer_state_new(void);
void sh_producer_state_free(sh_producer_state_t *s);
size_t sh_producer_state_count(const sh_producer_state_t *s);

/* seq + n with Kafka's wrap: past INT32_MAX the sequence continues at 0. */
int32_t sh_producer_seq_add(int32_t seq, int32_t n);

/* What a batch header says about its producer. */
typedef struct sh_producer_batch_desc {
    int64_t producer_id;
    int16_t epoch;
    int32_t first_seq;
    int32_t last_offset_delta;      /* last_seq = first_seq + delta, wrapping */
    int64_t max_timestamp;
} sh_producer_batch_desc_t;

/*
 * Check a client batch against the state (rules above). epoch_floor is the
 * lowest epoch the broker still accepts for this producer id (-1: no
 * opinion). Returns SH_OK to append (*dup false) or for a duplicate (*dup
 * true, *orig the stored batch: answer with its offsets), else a Kafka
 * code with *reason (static text) set.
 */
sh_err_t sh_producer_state_check(const sh_producer_state_t *s, const sh_producer_batch_desc_t *d,
                                 int16_t epoch_floor, bool *dup, sh_producer_batch_t *orig,
                                 const char **reason);

/*
 * Record a batch now in the log at first_offset..last_offset: a newer
 * epoch starts the producer afresh, the sixth batch pushes out the oldest.
 * A batch at or below what the producer already holds (replay of a range
 * a snapshot covers) and a batch of an older epoch are ignored. now_ms is
 * the broker's wall clock (expiry). SH_E_NOMEM.
 */
sh_err_t sh_producer_state_record(sh_producer_state_t *s, const sh_producer_batch_desc_t *d,
                                  int64_t first_offset, int64_t last_offset, int64_t now_ms);

/* Another broker or an InitProducerId made `epoch` current for the
 * producer: if it is newer than what this partition holds, the producer
 * starts that epoch with no batches (its next batch must be sequence 0;
 * older epochs are refused). Unknown producers are left alone. Returns
 * true if anything changed. */
bool sh_producer_state_fence(sh_producer_state_t *s, int64_t producer_id, int16_t epoch);

/* Drop producers whose last change is at least expiration_ms old
 * (producer.id.expiration.ms). Returns how many went. */
size_t sh_producer_state_expire(sh_producer_state_t *s, int64_t now_ms, int64_t expiration_ms);

const sh_producer_entry_t *sh_producer_state_get(const sh_producer_state_t *s,
                                                 int64_t producer_id);
/* Iterate: *it starts at 0; NULL at the end. Order is unspecified. */
const sh_producer_entry_t *sh_producer_state_next(const sh_producer_state_t *s, size_t *it);

/* Producers changed since the last call, as touches for the metadata
 * store's snapshot write (epoch and last change); clears the marks.
 * *out is malloc'd (NULL when none); the caller frees it. SH_E_NOMEM
 * leaves the marks set. */
sh_err_t sh_producer_state_take_touched(sh_producer_state_t *s, sh_meta_producer_touch_t **out,
                                        size_t *n);

/* An upload carrying these touches failed: mark the producers (those
 * still here) changed again so the next snapshot reports them. */
void sh_producer_state_retouch(sh_producer_state_t *s, const sh_meta_producer_touch_t *t,
                               size_t n);

/*
 * The state as of offset `upto` (exclusive): every producer, with only its
 * batches whose last offset is below upto. Text (lowercase hex of a
 * versioned binary layout, NUL-terminated) in *text, malloc'd; the caller
 * frees it. A log that restarts from this snapshot at offset upto replays
 * the batches above it and so gets back everything left out here.
 */
sh_err_t sh_producer_state_encode(const sh_producer_state_t *s, int64_t upto, char **text,
                                  size_t *len);

/* Replace the state with a snapshot's. SH_E_CORRUPT (state left empty)
 * when the text is not one encode wrote; SH_E_NOMEM. Entries come back
 * not dirty. */
sh_err_t sh_producer_state_decode(sh_producer_state_t *s, const char *text, size_t len);

#endif
