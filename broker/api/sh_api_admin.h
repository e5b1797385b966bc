/*
 * sh_api_admin.h - helpers shared by the topic and config admin handlers
 * (CreateTopics, DeleteTopics, CreatePartitions, AlterConfigs,
 * IncrementalAlterConfigs). Loop thread only, like the handlers.
 */
#ifndef SH_API_ADMIN_H
#define SH_API_ADMIN_H

#include "broker/sh_request.h"
#include "common/sh_slice.h"

/* An error message formatted into the request's arena, so it lives until
 * the response is written. Truncated at 511 bytes; SH_SLICE_NULL (a null
 * message on the wire) when formatting or allocation fails. */
sh_slice_t sh_api_msgf(sh_request_t *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
