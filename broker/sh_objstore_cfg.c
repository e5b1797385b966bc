/*
 * sh_objstore_cfg.c - the broker's object store, opened from its
 * configuration and probed before anything depends on it.
 *
 * Why a probe at startup: a wrong secret, a typo in the bucket name or an
 * unreachable endpoint would otherwise surface only at the first upload,
 * after producers were told their data is safe in the WAL, and then as a
 * stream of retries. Refusing to start with one line that names the
 * bucket, the endpoint and the cause is kinder to the operator.
 *
 * Thread: main thread at startup. Ownership: the store goes to the caller.
 */
#include "broker/sh_objstore_cfg.h"

#include <stdlib.h>
#include <string.h>

#include "common/sh_log.h"

static const char *sh_objstore_cfg_env(const char *a, const char *b)
{
    const char *v = getenv(a);
    if ((!v || !*v) && b)
        v = getenv(b);
    return v && *v ? v : NULL;
}

void sh_objstore_cfg_options(const sh_config_t *c, sh_objstore_s3_options_t *o)
{
    sh_objstore_s3_options_init(o);
    o->endpoint = c->s3_endpoint[0] ? c->s3_endpoint : NULL;
    /* the table's default region loses to the environment; a region set
     * in the file or on the command line wins over it */
    if (c->source[SH_CONFIG_K_s3_region] != SH_CONFIG_SRC_DEFAULT && c->s3_region[0])
        o->region = c->s3_region;
    else if (!(o->region = sh_objstore_cfg_env("AWS_REGION", "AWS_DEFAULT_REGION")))
        o->region = c->s3_region;
    if (c->s3_access_key_id[0] || c->s3_secret_access_key[0]) {
        o->access_key_id = c->s3_access_key_id;
        o->secret_access_key = c->s3_secret_access_key;
    }
    sh_objstore_s3_options_env(o);
    if (c->source[SH_CONFIG_K_s3_path_style] != SH_CONFIG_SRC_DEFAULT)
        o->path_style = c->s3_path_style ? 1 : 0;
    o->max_inflight = c->s3_max_inflight;
    o->max_attempts = c->s3_max_attempts;
    o->connect_timeout_ms = c->s3_connect_timeout_ms;
    o->request_timeout_ms = c->s3_request_timeout_ms;
    /* config 0 means "no limit"; the options use 0 for "default" */
    o->read_rate = c->s3_read_rate > 0 ? c->s3_read_rate : -1;
    o->write_rate = c->s3_write_rate > 0 ? c->s3_write_rate : -1;
    o->list_rate = c->s3_list_rate > 0 ? c->s3_list_rate : -1;
    o->breaker_failures = c->s3_breaker_failures > 0 ? c->s3_breaker_failures : -1;
    o->breaker_cooldown_ms = c->s3_breaker_cooldown_ms;
    o->part_size = (uint64_t)c->s3_multipart_part_bytes;
    o->multipart_threshold = (uint64_t)c->s3_multipart_part_bytes;
}

sh_err_t sh_objstore_cfg_open(const sh_config_t *c, sh_objstore_t **out)
{
    const char *url = c->storage_url;
    *out = NULL;
    if (strncmp(url, "s3://", 5) != 0) {
        sh_err_t err = sh_objstore_open(url, out);
        if (err != SH_OK)
            sh_log(SH_LOG_ERROR, "objstore", "could not open the object store \"%s\": %s", url,
                   sh_err_str(err));
        return err;
    }
    sh_objstore_s3_options_t o;
    sh_objstore_cfg_options(c, &o);
    sh_objstore_t *s = NULL;
    sh_err_t err = sh_objstore_s3_open(url, &o, &s);
    if (err != SH_OK) {
        /* the backend logged which setting is wrong */
        sh_log(SH_LOG_ERROR, "objstore", "could not open the object store \"%s\": %s", url,
               sh_err_str(err));
        return err;
    }
    char why[768];
    sh_objstore_s3_set_quiet(s, true);
    err = sh_objstore_check(s, SH_OBJSTORE_CFG_CHECK_MS, why, sizeof(why));
    sh_objstore_s3_set_quiet(s, false);
    if (err != SH_OK) {
        const char *ak = sh_objstore_s3_access_key_id(s);
        sh_log(SH_LOG_ERROR, "objstore",
               "object store \"%s\" is not usable (endpoint \"%s\", region \"%s\", access key id \"%s\"): %s",
               url, sh_objstore_s3_endpoint(s), o.region ? o.region : "us-east-1",
               ak ? ak : "(none)", why);
        sh_objstore_free(s);
        return err;
    }
    sh_log(SH_LOG_INFO, "objstore", "object store \"%s\" at \"%s\" is reachable", url,
           sh_objstore_s3_endpoint(s));
    *out = s;
    return SH_OK;
}
