/*
 * sh_group.h - the consumer group coordinator (Kafka's classic group
 * protocol: JoinGroup/SyncGroup/Heartbeat/LeaveGroup) and committed
 * offsets (OffsetCommit/OffsetFetch/OffsetDelete), plus the group admin
 * APIs (DescribeGroups, ListGroups, DeleteGroups).
 *
 * The broker's API handlers (the files in broker/api/) are thin: they pass the
 * decoded request to one function here and send what comes back. The
 * functions take the generated request structs and produce the generated
 * response structs, so the state machine can be driven directly by unit
 * tests with a fake clock and fake "requests" (any callback).
 *
 * What lives where (docs/consumer-groups.md has the whole story):
 *  - membership (members, generations, assignments, the state machine) is
 *    in memory only, like Kafka's coordinator cache; a restart forgets it
 *    and members rejoin;
 *  - committed offsets are in the metadata store (sh_meta_offsets_*): a
 *    commit is answered only after its transaction is durable, and a
 *    restarted coordinator loads the names of groups holding offsets so
 *    they still show as Empty groups.
 *
 * Replies that cannot be given at once (a JoinGroup waiting for the
 * rebalance, a SyncGroup waiting for the leader, anything waiting for the
 * metadata store) are delivered later through a sh_group_reply_fn, always
 * exactly once, on the loop thread: from another member's request, a
 * timer, a metadata completion, or sh_group_coord_stop(). The response
 * pointer given to the callback is only valid during the call; everything
 * it points to is either the coordinator's or the arena the caller passed.
 *
 * Which broker coordinates a group is decided in one place,
 * sh_group_coord_owner(); today it is always this broker.
 *
 * Thread: loop thread only. Ownership: the coordinator owns every group
 * and member; requests passed in are borrowed for the call; arenas passed
 * to the asynchronous calls must stay valid until the reply.
 */
#ifndef SH_GROUP_H
#define SH_GROUP_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/sh_config.h"
#include "broker/sh_loop.h"
#include "broker/sh_topics.h"
#include "common/sh_arena.h"
#include "common/sh_err.h"
#include "common/sh_timer.h"
#include "meta/sh_meta.h"
#include "protocol/sh_proto.h"

typedef struct sh_group_coord sh_group_coord_t;

typedef enum {
    SH_GROUP_EMPTY = 0,
    SH_GROUP_PREPARING_REBALANCE,
    SH_GROUP_COMPLETING_REBALANCE,
    SH_GROUP_STABLE,
    SH_GROUP_DEAD,
} sh_group_state_t;

/* Kafka's names ("Empty", "PreparingRebalance", "CompletingRebalance",
 * "Stable", "Dead"), as DescribeGroups and ListGroups report them. */
const char *sh_group_state_name(sh_group_state_t s);

/* A member's JoinGroup metadata is kept in memory for as long as it is in
 * the group, so its size is bounded: the sum of a JoinGroup's protocol
 * names and metadata beyond this gets INVALID_REQUEST. Kafka has no such
 * bound of its own (only the request size); real consumers send a few
 * hundred bytes to a few KiB. */
#define SH_GROUP_MEMBER_METADATA_MAX (1024 * 1024)

/* Kafka's limit on how long a member that joined with no member id may
 * wait in a rebalance before it is dropped (it cannot heartbeat yet). */
#define SH_GROUP_NEW_MEMBER_JOIN_TIMEOUT_MS 300000

/* Longest client id used as a prefix of generated member ids. */
#define SH_GROUP_CLIENT_ID_PREFIX_MAX 255

typedef struct sh_group_config {
    int32_t node_id;
    int32_t min_session_timeout_ms;
    int32_t max_session_timeout_ms;
    int32_t initial_rebalance_delay_ms;
    int32_t max_size;
    int64_t offsets_retention_ms;
    int64_t retention_check_interval_ms;
    int32_t offset_metadata_max_bytes;
} sh_group_config_t;

/* The group settings of a broker configuration. */
void sh_group_config_from(sh_group_config_t *gc, const sh_config_t *cfg);

/* Time as the coordinator sees it: the broker's loop (sh_group_clock_loop)
 * or a test's fake clock. now_ms is monotonic (timers); wall_ms is the
 * commit timestamp stored with offsets and the retention clock. */
typedef struct sh_group_clock {
    void *ctx;
    int64_t (*now_ms)(void *ctx);
    int64_t (*wall_ms)(void *ctx);
    sh_err_t (*arm)(void *ctx, sh_timer_t *t, int64_t deadline_ms);
    void (*cancel)(void *ctx, sh_timer_t *t);
} sh_group_clock_t;

/* A clock over the broker's event loop (timers on its heap, its cached
 * monotonic time, the real wall clock). */
sh_group_clock_t sh_group_clock_loop(sh_loop_t *loop);

/* Who is asking: for generated member ids and DescribeGroups. */
typedef struct sh_group_client {
    const char *client_id;     /* NUL-terminated; "" if none */
    const char *client_host;   /* "/127.0.0.1", as Kafka shows it */
} sh_group_client_t;

/* A reply: `response` points to the API's response struct (e.g.
 * sh_join_group_response_t) and is valid only during the call. */
typedef void (*sh_group_reply_fn)(void *arg, const void *response);

/* ------------------------------------------------------------ lifecycle */

/* meta may be NULL (tests of membership only): offset calls then answer
 * COORDINATOR_NOT_AVAILABLE. topics is read at every OffsetCommit and
 * OffsetDelete (it may change under the coordinator). Refuses (NULL,
 * logged) a min session timeout above the max. */
sh_group_coord_t *sh_group_coord_new(const sh_group_config_t *cfg,
                                     const sh_group_clock_t *clock, sh_meta_t *meta,
                                     const sh_topics_t *topics);

/* Startup, before the loop runs: every group holding committed offsets
 * becomes an Empty group (a synchronous metadata read), and the offsets
 * retention timer starts. */
sh_err_t sh_group_coord_load(sh_group_coord_t *c);

/* Shutdown, step 1 (after connections are closed, before the metadata
 * store is closed): answer every parked JoinGroup/SyncGroup with
 * NOT_COORDINATOR, stop every timer; later calls answer
 * COORDINATOR_NOT_AVAILABLE. Metadata completions still arriving are
 * delivered normally. */
void sh_group_coord_stop(sh_group_coord_t *c);
/* Step 2, after the metadata store has delivered its last completion. */
void sh_group_coord_free(sh_group_coord_t *c);

/* The node coordinating `key` of key_type (0 group, 1 transaction), or -1
 * with *err set when none can: transactions are not served yet
 * (COORDINATOR_NOT_AVAILABLE), unknown key types are INVALID_REQUEST. One
 * function, so that a cluster can later pick one broker per group. */
int32_t sh_group_coord_owner(const sh_group_coord_t *c, int8_t key_type, sh_slice_t key,
                             int16_t *err);

/* ------------------------------------------------------- membership */

/* JoinGroup v0-9. Replies with sh_join_group_response_t, now or when the
 * rebalance completes. */
void sh_group_join(sh_group_coord_t *c, const sh_group_client_t *client, int16_t version,
                   const sh_join_group_request_t *req, sh_group_reply_fn fn, void *arg);

/* SyncGroup v0-5. Replies with sh_sync_group_response_t, now or when the
 * leader's assignment arrives. */
void sh_group_sync(sh_group_coord_t *c, int16_t version, const sh_sync_group_request_t *req,
                   sh_group_reply_fn fn, void *arg);

/* Heartbeat v0-4: the error code to answer with. */
int16_t sh_group_heartbeat(sh_group_coord_t *c, int16_t version,
                           const sh_heartbeat_request_t *req);

/* LeaveGroup v0-5; out's arrays in a. */
sh_err_t sh_group_leave(sh_group_coord_t *c, int16_t version,
                        const sh_leave_group_request_t *req, sh_arena_t *a,
                        sh_leave_group_response_t *out);

/* DescribeGroups v0-5 and ListGroups v0-5; out's arrays in a. */
sh_err_t sh_group_describe(sh_group_coord_t *c, int16_t version,
                           const sh_describe_groups_request_t *req, sh_arena_t *a,
                           sh_describe_groups_response_t *out);
sh_err_t sh_group_list(sh_group_coord_t *c, int16_t version, const sh_list_groups_request_t *req,
                       sh_arena_t *a, sh_list_groups_response_t *out);

/* ---------------------------------------------- offsets and deletion */
/* The reply's arrays are allocated in a, which must outlive the reply. */

/* OffsetCommit v2-9 -> sh_offset_commit_response_t, after the commit is
 * durable. */
void sh_group_offsets_commit(sh_group_coord_t *c, int16_t version,
                             const sh_offset_commit_request_t *req, sh_arena_t *a,
                             sh_group_reply_fn fn, void *arg);

/* OffsetFetch v1-9 -> sh_offset_fetch_response_t. */
void sh_group_offsets_fetch(sh_group_coord_t *c, int16_t version,
                            const sh_offset_fetch_request_t *req, sh_arena_t *a,
                            sh_group_reply_fn fn, void *arg);

/* OffsetDelete v0 -> sh_offset_delete_response_t. */
void sh_group_offsets_delete(sh_group_coord_t *c, const sh_offset_delete_request_t *req,
                             sh_arena_t *a, sh_group_reply_fn fn, void *arg);

/* DeleteGroups v0-2 -> sh_delete_groups_response_t. */
void sh_group_delete(sh_group_coord_t *c, const sh_delete_groups_request_t *req,
                     sh_arena_t *a, sh_group_reply_fn fn, void *arg);

/* ------------------------------------------------- glue for handlers */
/* (sh_group_req.c) */

struct sh_request;
/* A sh_group_reply_fn for broker requests: arg is the sh_request_t, and
 * the reply is encoded and queued with sh_request_respond (an orphaned
 * request is just freed). */
void sh_group_reply_request(void *req, const void *response);

/* The request's client id and host ("/<address>", as Kafka shows it), as
 * NUL-terminated copies in the request's arena. */
void sh_group_client_of(struct sh_request *req, sh_group_client_t *out);

/* ------------------------------------------------------------ testing */

/* State of a group (SH_GROUP_DEAD when unknown) and its generation. */
sh_group_state_t sh_group_testing_state(sh_group_coord_t *c, const char *group_id,
                                        int32_t *generation, int32_t *members);
/* Run the offsets retention sweep now (normally a timer). */
void sh_group_testing_expire_offsets(sh_group_coord_t *c);

#endif
