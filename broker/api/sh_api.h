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

#endif
