/*
 * sh_api.h - handler entry points, one per file in broker/api/.
 * Each is listed in the dispatch table (broker/sh_dispatch.c).
 */
#ifndef SH_API_H
#define SH_API_H

#include "broker/sh_request.h"
#include "broker/sh_types.h"

void sh_api_versions_handle(sh_broker_t *b, sh_request_t *req);
void sh_api_metadata_handle(sh_broker_t *b, sh_request_t *req);
void sh_api_produce_handle(sh_broker_t *b, sh_request_t *req);
void sh_api_fetch_handle(sh_broker_t *b, sh_request_t *req);
void sh_api_list_offsets_handle(sh_broker_t *b, sh_request_t *req);
void sh_api_offset_commit_handle(sh_broker_t *b, sh_request_t *req);
void sh_api_offset_fetch_handle(sh_broker_t *b, sh_request_t *req);
void sh_api_find_coordinator_handle(sh_broker_t *b, sh_request_t *req);
void sh_api_join_group_handle(sh_broker_t *b, sh_request_t *req);
void sh_api_heartbeat_handle(sh_broker_t *b, sh_request_t *req);
void sh_api_leave_group_handle(sh_broker_t *b, sh_request_t *req);
void sh_api_sync_group_handle(sh_broker_t *b, sh_request_t *req);
void sh_api_describe_groups_handle(sh_broker_t *b, sh_request_t *req);
void sh_api_list_groups_handle(sh_broker_t *b, sh_request_t *req);
void sh_api_delete_groups_handle(sh_broker_t *b, sh_request_t *req);
void sh_api_offset_delete_handle(sh_broker_t *b, sh_request_t *req);
void sh_api_create_topics_handle(sh_broker_t *b, sh_request_t *req);
void sh_api_delete_topics_handle(sh_broker_t *b, sh_request_t *req);
void sh_api_delete_records_handle(sh_broker_t *b, sh_request_t *req);
void sh_api_describe_configs_handle(sh_broker_t *b, sh_request_t *req);
void sh_api_alter_configs_handle(sh_broker_t *b, sh_request_t *req);
void sh_api_create_partitions_handle(sh_broker_t *b, sh_request_t *req);
void sh_api_incremental_alter_configs_handle(sh_broker_t *b, sh_request_t *req);
void sh_api_init_producer_id_handle(sh_broker_t *b, sh_request_t *req);
void sh_api_describe_producers_handle(sh_broker_t *b, sh_request_t *req);

#endif
