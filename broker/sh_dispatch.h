/*
 * sh_dispatch.h - the table of served APIs.
 *
 * One row per API key: the versions the handler really implements, the
 * minimum advertised in ApiVersions (normally the same; Kafka advertises
 * Produce from 0 although it serves 3+, see README section 4 of the
 * protocol notes) and the handler. Names, decoders and encoders come from
 * the codec's table (sh_api_info). ApiVersions is generated from this
 * table, so adding a row is all it takes to advertise and serve an API.
 *
 * Requests with an unknown key or a version outside [min_version,
 * max_version] close the connection, as Kafka does, except ApiVersions
 * whose handler answers any version (KIP-511).
 */
#ifndef SH_DISPATCH_H
#define SH_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/sh_request.h"
#include "broker/sh_types.h"

struct sh_api_entry {
    int16_t api_key;
    int16_t min_version;       /* lowest version served */
    int16_t max_version;       /* highest version served */
    int16_t advertised_min;    /* min_version in ApiVersions responses */
    sh_api_handler_fn handler;
};

extern const sh_api_entry_t sh_dispatch_table[];
extern const size_t sh_dispatch_count;

/* The row for api_key in the built-in table, or NULL if not served. */
const sh_api_entry_t *sh_dispatch_find(int16_t api_key);

/* The row for api_key in any table (the broker's may be replaced by
 * tests), or NULL. Tables are in api_key order. */
const sh_api_entry_t *sh_dispatch_lookup(const sh_api_entry_t *table, size_t count,
                                         int16_t api_key);

/* Check every row against the codec (versions within what it can encode,
 * rows in key order, no duplicates). Returns false and logs otherwise. */
bool sh_dispatch_check(const sh_api_entry_t *table, size_t count);

#endif
