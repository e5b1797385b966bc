/*
 * sh_group_int.h - the coordinator's data structures, shared by
 * sh_group.c (membership state machine, admin views) and
 * sh_group_offsets.c (committed offsets, deletion, retention). Not for
 * other modules: they use sh_group.h.
 *
 * Thread: loop thread. Ownership: the coordinator owns groups (in
 * `groups`), a group owns its members and pending member ids; every string
 * here is a heap copy owned by the struct holding it.
 */
#ifndef SH_GROUP_INT_H
#define SH_GROUP_INT_H

#include "broker/sh_group.h"
#include "broker/sh_group_map.h"

typedef struct sh_group sh_group_t;
typedef struct sh_group_member sh_group_member_t;

/* A heap string with its length (client strings may hold any byte). */
typedef struct sh_group_str {
    char *p;        /* NUL-terminated copy; NULL means absent/null */
    size_t len;
} sh_group_str_t;

typedef struct sh_group_proto {
    sh_group_str_t name;
    uint8_t *metadata;
    size_t metadata_len;
} sh_group_proto_t;

/* How many members support a protocol name (Kafka's supportedProtocols):
 * a protocol is usable by the group when its count equals the member
 * count. The entry owns its key. */
typedef struct sh_group_proto_count {
    sh_group_str_t name;
    int32_t count;
} sh_group_proto_count_t;

struct sh_group_member {
    sh_group_t *group;
    sh_group_str_t id;
    sh_group_str_t instance_id;     /* .p NULL for dynamic members */
    sh_group_str_t client_id;
    sh_group_str_t client_host;
    int32_t session_timeout_ms;
    int32_t rebalance_timeout_ms;
    sh_group_str_t protocol_type;
    sh_group_proto_t *protos;
    int32_t nprotos;
    uint8_t *assignment;
    size_t assignment_len;

    /* a parked JoinGroup (awaiting join) and SyncGroup (awaiting sync) */
    sh_group_reply_fn join_fn;
    void *join_arg;
    int16_t join_version;
    sh_group_reply_fn sync_fn;
    void *sync_arg;

    bool is_new;          /* joined in this rebalance, not yet in a generation */
    bool pending_sync;    /* in the generation, has not sent SyncGroup yet */
    sh_timer_t session_timer;
    sh_group_member_t *prev, *next;   /* join order: the next leader is the oldest */
};

/* A member id handed out with MEMBER_ID_REQUIRED, waiting for the member
 * to join with it (KIP-394). Expires after the session timeout. */
typedef struct sh_group_pending {
    sh_group_t *group;
    sh_group_str_t id;
    sh_timer_t timer;
} sh_group_pending_t;

struct sh_group {
    sh_group_coord_t *coord;
    sh_group_str_t id;
    sh_group_state_t state;
    int32_t generation;
    sh_group_str_t protocol_type;   /* .p NULL until the first member */
    sh_group_str_t protocol_name;   /* selected protocol; NULL unless a generation has members */
    sh_group_member_t *leader;
    sh_group_member_t *head, *tail;
    int32_t nmembers;
    int32_t nawaiting_join;
    int32_t npending_sync;
    sh_group_map_t members;         /* member id -> member */
    sh_group_map_t statics;         /* group.instance.id -> member */
    sh_group_map_t pending;         /* member id -> sh_group_pending_t */
    sh_group_map_t protocols;       /* name -> sh_group_proto_count_t */

    /* the join phase: Kafka's DelayedJoin / InitialDelayedJoin */
    sh_timer_t join_timer;
    bool join_initial;              /* first rebalance of an empty group */
    bool new_member_added;          /* ... and someone joined meanwhile */
    int64_t initial_remaining_ms;
    /* members of the new generation must SyncGroup within the rebalance
     * timeout, or they are removed and the group rebalances again */
    sh_timer_t sync_timer;

    int64_t empty_since_ms;         /* wall clock; 0 = unknown (loaded at start) */
    bool has_offsets;               /* the store holds offsets of this group */
    bool deleting;                  /* DeleteGroups in flight (state Dead) */

    /* topics the members subscribe to (consumer protocol), computed at
     * each new generation, for OffsetDelete's GROUP_SUBSCRIBED_TO_TOPIC */
    sh_group_str_t *subscribed;
    int32_t nsubscribed;
    bool subscribed_known;
};

struct sh_group_coord {
    sh_group_config_t cfg;
    sh_group_clock_t clock;
    sh_meta_t *meta;
    const sh_topics_t *topics;
    sh_group_map_t groups;          /* group id -> group */
    sh_timer_t retention_timer;
    bool retention_running;         /* a sweep is in the metadata queue */
    bool stopped;
};

/* ---- shared helpers (sh_group.c) ---- */

sh_group_t *sh_group_find(sh_group_coord_t *c, sh_slice_t id);
/* The group, created Empty if absent; NULL on allocation failure. */
sh_group_t *sh_group_get_or_create(sh_group_coord_t *c, sh_slice_t id);
sh_group_member_t *sh_group_member_find(sh_group_t *g, sh_slice_t id);
/* Call last on a group an entry point touched: frees it when nothing is
 * left (Empty, no members, no pending ids, no offsets, not deleting). */
void sh_group_release(sh_group_t *g);
/* Remove a group from the coordinator and free it (DeleteGroups). */
void sh_group_destroy(sh_group_t *g);
/* Dead while DeleteGroups runs: parked requests answered, timers off. */
void sh_group_mark_dead(sh_group_t *g);
/* Back to Empty when the deletion failed. */
void sh_group_unmark_dead(sh_group_t *g);
/* Session timer restart after a valid request from the member. */
void sh_group_member_touch(sh_group_member_t *m);
/* Kafka's member validation: FENCED_INSTANCE_ID, UNKNOWN_MEMBER_ID or 0. */
int16_t sh_group_member_validate(sh_group_t *g, sh_slice_t member_id, sh_slice_t instance_id);
bool sh_group_subscribes(const sh_group_t *g, sh_slice_t topic);

int64_t sh_group_now(const sh_group_coord_t *c);
int64_t sh_group_wall(const sh_group_coord_t *c);
void sh_group_timer_arm(sh_group_coord_t *c, sh_timer_t *t, int64_t deadline_ms);
void sh_group_timer_cancel(sh_group_coord_t *c, sh_timer_t *t);

/* A client string made safe for one log line (at most 120 bytes shown);
 * rotates through a few static buffers so several fit in one call. */
const char *sh_group_printable(const void *p, size_t len);

/* ---- sh_group_offsets.c ---- */

/* Start (or restart) the periodic offsets retention sweep. */
void sh_group_retention_schedule(sh_group_coord_t *c);
void sh_group_retention_sweep(sh_group_coord_t *c);

#endif
