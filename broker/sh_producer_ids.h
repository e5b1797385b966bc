/*
 * sh_producer_ids.h - the broker's side of idempotent producers: handing
 * out producer ids and epochs (InitProducerId), the epochs this broker
 * knows were bumped (fencing at Produce time), and producer expiry.
 *
 * Ids come from blocks reserved in the metadata store
 * (sh_meta_producer_ids_allocate, 1000 at a time, like Kafka's
 * AllocateProducerIds), so every broker sharing the store hands out
 * different ids; each id is recorded there at epoch 0 before the client
 * hears of it, and every later bump goes through the store
 * (sh_meta_producer_bump), which is what fences an old epoch on every
 * broker (docs/idempotence.md).
 *
 * Expiry (producer.id.expiration.ms, checked every
 * producer.id.expiration.check.interval.ms): idle producers leave every
 * partition log this broker serves, their records leave the store, and
 * the bump floors kept here age out with them.
 *
 * Thread: loop thread; the metadata work runs on the metadata worker and
 * completes on the loop. Ownership: the broker owns it; it borrows the
 * loop, metadata store, registry and config. Free it only after the
 * metadata store has closed (its last completions report here).
 */
#ifndef SH_PRODUCER_IDS_H
#define SH_PRODUCER_IDS_H

#include <stdint.h>

#include "broker/sh_types.h"
#include "common/sh_err.h"

typedef struct sh_producer_ids sh_producer_ids_t;

/* Ids reserved per metadata round trip (Kafka's block size). */
#define SH_PRODUCER_IDS_BLOCK 1000

/* b->loop, b->meta, b->registry and b->cfg must be set. Arms the expiry
 * timer. NULL when out of memory. */
sh_producer_ids_t *sh_producer_ids_new(sh_broker_t *b);
void sh_producer_ids_free(sh_producer_ids_t *ps);

/* Answer for InitProducerId: err 0 with the id and epoch to hand out, or
 *   SH_E_FENCED              the given epoch is older than the store's
 *                            (PRODUCER_FENCED / INVALID_PRODUCER_EPOCH)
 *   another error            the store failed (retriable for the client)
 * Runs on the loop, exactly once, never from inside the _start call. */
typedef void (*sh_producer_ids_init_fn)(void *arg, sh_err_t err, int64_t producer_id,
                                        int16_t epoch);

/*
 * InitProducerId without a transactional id. producer_id -1 (and epoch
 * -1): a fresh id at epoch 0. A known id and its current epoch (v3+,
 * KIP-360): the next epoch of the same id, or a fresh id once the epoch
 * is exhausted or the id expired. Returns SH_OK (cb will run), or
 * SH_E_NOMEM / SH_E_CLOSED (cb will not run).
 */
sh_err_t sh_producer_ids_init_start(sh_producer_ids_t *ps, int64_t producer_id, int16_t epoch,
                                    sh_producer_ids_init_fn cb, void *arg);

/* The lowest epoch this broker still accepts from producer_id (it bumped
 * the id past the older ones), or -1. The partition logs' floor hook:
 * arg is the sh_producer_ids_t. */
int16_t sh_producer_ids_epoch_floor(void *arg, int64_t producer_id);

/* Run the expiry pass now (tests); the timer does it periodically. */
void sh_producer_ids_expire_now(sh_producer_ids_t *ps, int64_t wall_ms);

#endif
