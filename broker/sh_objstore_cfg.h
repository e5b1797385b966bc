/*
 * sh_objstore_cfg.h - open the broker's object store from its
 * configuration: streamhouse.storage.url plus, for s3:// URLs, the
 * streamhouse.s3.* keys with the AWS_* environment variables as fallbacks,
 * followed by the startup probe (can we list the bucket with these
 * credentials?).
 *
 * Thread: main thread at startup, before the store joins the loop.
 * Ownership: the caller frees the store with sh_objstore_free().
 */
#ifndef SH_OBJSTORE_CFG_H
#define SH_OBJSTORE_CFG_H

#include "broker/sh_config.h"
#include "storage/sh_objstore.h"
#include "storage/sh_objstore_s3.h"

/* How long the startup probe may take; covers the retries of one request
 * against a slow or flapping endpoint. */
#define SH_OBJSTORE_CFG_CHECK_MS 60000

/* S3 options from the configuration; unset keys fall back to AWS_REGION /
 * AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL and
 * AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN). The
 * strings point into the config and the environment. */
void sh_objstore_cfg_options(const sh_config_t *c, sh_objstore_s3_options_t *o);

/* Open c->storage_url. For s3:// also run sh_objstore_check: a store that
 * cannot be listed (wrong credentials, missing bucket, unreachable
 * endpoint) is closed again and the broker must refuse to start. Every
 * failure is logged here as one line naming the URL, the endpoint and the
 * cause (never the secret). */
sh_err_t sh_objstore_cfg_open(const sh_config_t *c, sh_objstore_t **out);

#endif
