/*
 * sh_objstore_s3.h - opening an S3-compatible object store with the
 * settings a URL cannot carry (endpoint, region, addressing style,
 * credentials, limits).
 *
 * sh_objstore_open("s3://bucket/prefix") works too: it takes every
 * setting from the environment (sh_objstore_s3_options_env). The broker
 * fills the options from its configuration instead, with the same
 * environment variables as fallbacks.
 *
 * Environment (the names AWS tools use):
 *   AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL   endpoint, e.g. http://127.0.0.1:9000
 *   AWS_REGION, AWS_DEFAULT_REGION          region (default us-east-1)
 *   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
 *
 * Thread: open on any thread; the store then belongs to the thread that
 * drives it. Ownership: options are read during the open call only
 * (strings are copied).
 */
#ifndef SH_OBJSTORE_S3_H
#define SH_OBJSTORE_S3_H

#include <stdbool.h>
#include <stdint.h>

#include "storage/sh_objstore.h"

typedef struct sh_objstore_s3_options {
    /* where and who */
    const char *endpoint;          /* http(s)://host[:port]; NULL or "": AWS,
                                      https://s3.<region>.amazonaws.com */
    const char *region;            /* NULL or "": us-east-1 */
    int path_style;                /* 1: http://host/bucket/key, 0: http://bucket.host/key,
                                      -1: path style exactly when an endpoint is given */
    const char *access_key_id;     /* NULL or "": requests are sent unsigned */
    const char *secret_access_key; /* never logged */
    const char *session_token;     /* temporary credentials; NULL if none */

    /* limits; 0 means the default in brackets */
    int max_inflight;              /* HTTP requests at once [64]; the rest queue */
    int max_attempts;              /* tries per request, first one included [6] */
    int64_t backoff_base_ms;       /* first retry delay ceiling [100] */
    int64_t backoff_max_ms;        /* retry delay ceiling [10000] */
    int64_t connect_timeout_ms;    /* TCP + TLS connect [5000] */
    int64_t request_timeout_ms;    /* one whole request [120000]; a transfer that
                                      stalls below 1 KiB/s for 30 s fails sooner */
    double read_rate;              /* GET/HEAD per second [5500]; < 0: unlimited */
    double write_rate;             /* PUT/POST/DELETE per second [3500]; < 0: unlimited */
    double list_rate;              /* LIST per second [100]; < 0: unlimited */
    int breaker_failures;          /* consecutive failures that open the breaker [5];
                                      < 0: no breaker */
    int64_t breaker_cooldown_ms;   /* first open period [5000]; doubles per failed
                                      probe up to 12x */
    uint64_t multipart_threshold;  /* multipart upload above this size [16 MiB] */
    uint64_t part_size;            /* part size [16 MiB]; S3 needs >= 5 MiB */
} sh_objstore_s3_options_t;

/* Every field unset (zero / NULL / path_style -1). */
void sh_objstore_s3_options_init(sh_objstore_s3_options_t *o);

/* Fill the unset endpoint, region and credentials from the environment.
 * The pointers point into the environment: use before it changes. */
void sh_objstore_s3_options_env(sh_objstore_s3_options_t *o);

/* Open "s3://bucket[/prefix]" with these options. Object keys become
 * "<prefix>/<key>". Logs and returns SH_E_INVAL for a bad URL or option.
 * No request is made: see sh_objstore_check for the startup probe. */
sh_err_t sh_objstore_s3_open(const char *url, const sh_objstore_s3_options_t *opts,
                             sh_objstore_t **out);

/* The endpoint an S3 store talks to ("https://s3.us-east-1.amazonaws.com"),
 * or NULL for other stores. For log lines. */
const char *sh_objstore_s3_endpoint(const sh_objstore_t *s);
/* The access key id in use (not secret; for log lines), or NULL. */
const char *sh_objstore_s3_access_key_id(const sh_objstore_t *s);

/* Counters since open, for monitoring and tests. */
typedef struct sh_objstore_s3_stats {
    uint64_t requests;           /* HTTP requests sent (every attempt) */
    uint64_t retries;            /* attempts scheduled after a retriable failure */
    uint64_t failed_fast;        /* requests refused while the breaker was open */
    uint64_t rate_waits;         /* times a request waited for a rate token */
    uint64_t breaker_opens;      /* closed/half-open -> open transitions */
    size_t active;               /* requests in flight now */
    size_t max_active;           /* most requests ever in flight at once */
    size_t queued;               /* ops waiting for a slot, a token or a retry */
    int breaker_state;           /* 0 closed, 1 open, 2 half-open */
} sh_objstore_s3_stats_t;

/* SH_E_INVAL for a store that is not S3. */
sh_err_t sh_objstore_s3_stats(const sh_objstore_t *s, sh_objstore_s3_stats_t *out);

/* Quiet: operation failures are logged at DEBUG only, because the caller
 * reports them itself (the startup probe). No-op for other stores. */
void sh_objstore_s3_set_quiet(sh_objstore_t *s, bool quiet);

#endif
