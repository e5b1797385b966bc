/*
 * init_producer_id.c - InitProducerId (key 22), versions 0-5, for
 * idempotent producers (docs/idempotence.md).
 *
 * Versions: librdkafka sends 0-4 (3-4 when it recovers a producer id),
 * kafkajs 0-1, Java up to 5. v2+ are flexible. All five carry the same
 * answer; v3+ add the current producer id and epoch to the request.
 *
 * Behaviour:
 *  - transactional_id null, producer_id -1 and producer_epoch -1 (every
 *    v0-v2 request): a fresh producer id at epoch 0. Ids come from blocks
 *    reserved in the metadata store, so no two brokers sharing it ever
 *    hand out the same one; the id is recorded there at epoch 0 before the
 *    answer goes out.
 *  - transactional_id null with a producer id and epoch (v3+, KIP-360):
 *    the id's epoch in the metadata store is bumped to epoch + 1 when the
 *    given epoch is its current one (or newer: a Java client bumps its
 *    epoch locally); the same answer again for a retry that gives the
 *    epoch just left; an older epoch is fenced: PRODUCER_FENCED (v4+) or
 *    INVALID_PRODUCER_EPOCH (v3), as Kafka maps it. An id the store no
 *    longer knows (expired) or whose epoch is exhausted (32766) gets a
 *    fresh id at epoch 0. After a bump this broker refuses the older
 *    epochs of the id at once; other brokers learn it from the store
 *    (docs/idempotence.md, "Fencing").
 *  - only one of producer_id / producer_epoch set: INVALID_REQUEST.
 *  - transactional_id non-null: transactions are not served. An empty
 *    string gets INVALID_REQUEST (as in Kafka); any other gets
 *    COORDINATOR_NOT_AVAILABLE, what a Kafka cluster whose transaction
 *    log cannot be created answers (and what FindCoordinator already says
 *    for transactional ids here). Clients retry it until their own
 *    timeout (Java: max.block.ms).
 *  - transaction_timeout_ms is accepted and ignored (it only matters to
 *    transactions).
 *  - the metadata store failing: COORDINATOR_LOAD_IN_PROGRESS, which
 *    clients retry (what Kafka answers when it has no id block ready).
 * throttle_time_ms is 0; producer_id / producer_epoch are -1 on errors.
 *
 * Kafka differences: Kafka gives an idempotent (non-transactional)
 * producer that sends its id and epoch a new id every time; StreamHouse
 * keeps the id and bumps its epoch, recorded in the shared store, which
 * is what lets a bump fence the previous epoch on every broker.
 *
 * Thread: loop thread; the store work runs on the metadata worker
 * (sh_producer_ids.c) and the answer is sent from its completion.
 * Memory: request arena; the request stays alive (possibly orphaned)
 * until the completion answers it.
 */
#include "broker/api/sh_api.h"
#include "broker/sh_broker.h"
#include "broker/sh_producer_ids.h"
#include "broker/sh_request.h"
#include "common/sh_log.h"
#include "protocol/sh_proto.h"

static void ipid_respond(sh_request_t *req, sh_err_t code, int64_t pid, int16_t epoch)
{
    sh_init_producer_id_response_t r;
    sh_init_producer_id_response_init(&r);
    r.throttle_time_ms = 0;
    r.error_code = (int16_t)code;
    r.producer_id = code ? -1 : pid;
    r.producer_epoch = code ? -1 : epoch;
    sh_request_respond(req, &r);
}

static void ipid_done(void *arg, sh_err_t err, int64_t pid, int16_t epoch)
{
    sh_request_t *req = arg;
    sh_err_t code = SH_OK;
    if (err == SH_E_FENCED)
        code = req->api_version >= 4 ? SH_KERR_PRODUCER_FENCED
                                     : SH_KERR_INVALID_PRODUCER_EPOCH;
    else if (err != SH_OK)
        code = SH_KERR_COORDINATOR_LOAD_IN_PROGRESS;
    ipid_respond(req, code, pid, epoch);
}

void sh_api_init_producer_id_handle(sh_broker_t *b, sh_request_t *req)
{
    const sh_init_producer_id_request_t *m = req->msg;
    if (!sh_slice_is_null(m->transactional_id)) {
        ipid_respond(req,
                     m->transactional_id.len == 0 ? SH_KERR_INVALID_REQUEST
                                                  : SH_KERR_COORDINATOR_NOT_AVAILABLE,
                     -1, -1);
        return;
    }
    int64_t pid = req->api_version >= 3 ? m->producer_id : -1;
    int16_t epoch = req->api_version >= 3 ? m->producer_epoch : -1;
    if ((pid == -1) != (epoch == -1) || pid < -1 || epoch < -1) {
        ipid_respond(req, SH_KERR_INVALID_REQUEST, -1, -1);
        return;
    }
    sh_err_t err = b->producer_ids
                       ? sh_producer_ids_init_start(b->producer_ids, pid, epoch, ipid_done, req)
                       : SH_E_CLOSED;
    if (err != SH_OK)
        ipid_respond(req, SH_KERR_COORDINATOR_LOAD_IN_PROGRESS, -1, -1);
}
