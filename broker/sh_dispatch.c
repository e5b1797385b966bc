/*
 * sh_dispatch.c - the table of served APIs (see sh_dispatch.h).
 *
 * To serve a new API: write broker/api/<api>.c, declare its handler in
 * broker/api/sh_api.h and add a row here, in api_key order. The row's
 * versions are what ApiVersions advertises, so list only versions the
 * handler really implements (clients probe features from these ranges;
 * see the protocol notes, sections 4 and 7). advertised_min may be lower
 * than min_version only to reproduce a Kafka quirk (Produce: advertise 0,
 * serve 3+).
 *
 * Thread: constant data; lookups from the loop thread.
 */
#include "broker/sh_dispatch.h"

#include "broker/api/sh_api.h"
#include "common/sh_log.h"
#include "protocol/sh_proto.h"

const sh_api_entry_t sh_dispatch_table[] = {
    /* key  min  max  adv_min  handler */
    {0, 3, 11, 0, sh_api_produce_handle},     /* Produce: advertise 0 (KAFKA-18659) */
    {1, 4, 17, 4, sh_api_fetch_handle},       /* Fetch: RecordBatch v2 only */
    {2, 1, 10, 1, sh_api_list_offsets_handle}, /* ListOffsets */
    {3, 0, 12, 0, sh_api_metadata_handle},    /* Metadata */
    {8, 2, 9, 2, sh_api_offset_commit_handle},     /* OffsetCommit: 2-9 as Kafka 4 */
    {9, 1, 9, 1, sh_api_offset_fetch_handle},      /* OffsetFetch */
    {10, 0, 6, 0, sh_api_find_coordinator_handle}, /* FindCoordinator */
    {11, 0, 9, 0, sh_api_join_group_handle},       /* JoinGroup */
    {12, 0, 4, 0, sh_api_heartbeat_handle},        /* Heartbeat */
    {13, 0, 5, 0, sh_api_leave_group_handle},      /* LeaveGroup */
    {14, 0, 5, 0, sh_api_sync_group_handle},       /* SyncGroup */
    {15, 0, 5, 0, sh_api_describe_groups_handle},  /* DescribeGroups */
    {16, 0, 5, 0, sh_api_list_groups_handle},      /* ListGroups */
    {18, 0, 4, 0, sh_api_versions_handle},    /* ApiVersions */
    {19, 0, 7, 0, sh_api_create_topics_handle},    /* CreateTopics */
    {20, 0, 6, 0, sh_api_delete_topics_handle},    /* DeleteTopics */
    {21, 0, 2, 0, sh_api_delete_records_handle},   /* DeleteRecords */
    {22, 0, 5, 0, sh_api_init_producer_id_handle}, /* InitProducerId: idempotent only */
    {32, 0, 4, 0, sh_api_describe_configs_handle}, /* DescribeConfigs */
    {33, 0, 2, 0, sh_api_alter_configs_handle},    /* AlterConfigs */
    {37, 0, 3, 0, sh_api_create_partitions_handle}, /* CreatePartitions */
    {42, 0, 2, 0, sh_api_delete_groups_handle},    /* DeleteGroups */
    {44, 0, 1, 0, sh_api_incremental_alter_configs_handle}, /* IncrementalAlterConfigs */
    {47, 0, 0, 0, sh_api_offset_delete_handle},    /* OffsetDelete */
    {61, 0, 0, 0, sh_api_describe_producers_handle}, /* DescribeProducers */
};

const size_t sh_dispatch_count = sizeof(sh_dispatch_table) / sizeof(sh_dispatch_table[0]);

const sh_api_entry_t *sh_dispatch_lookup(const sh_api_entry_t *table, size_t count,
                                         int16_t api_key)
{
    size_t lo = 0, hi = count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (table[mid].api_key == api_key)
            return &table[mid];
        if (table[mid].api_key < api_key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const sh_api_entry_t *sh_dispatch_find(int16_t api_key)
{
    return sh_dispatch_lookup(sh_dispatch_table, sh_dispatch_count, api_key);
}

bool sh_dispatch_check(const sh_api_entry_t *table, size_t count)
{
    bool ok = true;
    for (size_t i = 0; i < count; i++) {
        const sh_api_entry_t *e = &table[i];
        const sh_api_info_t *info = sh_api_info(e->api_key);
        if (!info) {
            sh_log(SH_LOG_ERROR, "dispatch", "API key %d has no codec", e->api_key);
            ok = false;
            continue;
        }
        if (e->min_version < info->min_version || e->max_version > info->max_version ||
            e->min_version > e->max_version || e->advertised_min > e->min_version ||
            e->advertised_min < 0) {
            sh_log(SH_LOG_ERROR, "dispatch",
                   "%s: served versions %d-%d (advertised from %d) do not fit the "
                   "codec's %d-%d", info->name, e->min_version, e->max_version,
                   e->advertised_min, info->min_version, info->max_version);
            ok = false;
        }
        if (info->top_unstable && e->max_version == info->max_version) {
            sh_log(SH_LOG_ERROR, "dispatch", "%s v%d is unstable in Kafka; do not serve it",
                   info->name, e->max_version);
            ok = false;
        }
        if (!e->handler) {
            sh_log(SH_LOG_ERROR, "dispatch", "%s has no handler", info->name);
            ok = false;
        }
        if (i > 0 && table[i - 1].api_key >= e->api_key) {
            sh_log(SH_LOG_ERROR, "dispatch", "table not in api_key order at key %d",
                   e->api_key);
            ok = false;
        }
    }
    return ok;
}
