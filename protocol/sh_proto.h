/*
 * sh_proto.h - the Kafka message codec as the broker sees it: every
 * generated request and response (protocol/generated/, from
 * protocol/spec/), the request and response headers, and a table of all
 * APIs for generic code.
 *
 * Per message <m> (e.g. metadata_request, api_versions_response):
 *   sh_<m>_t                                     the decoded struct
 *   void     sh_<m>_init(sh_<m>_t *m)            every field to its default
 *   sh_err_t sh_<m>_decode(sh_reader_t *r, sh_arena_t *a, int16_t version,
 *                          sh_<m>_t *out)
 *   void     sh_<m>_encode(sh_writer_t *w, int16_t version,
 *                          const sh_<m>_t *in)
 * Semantics, ownership and threading are described in protocol/sh_msg.h;
 * naming rules in protocol/README.md.
 */
#ifndef SH_PROTO_H
#define SH_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/generated/sh_messages.h"
#include "protocol/sh_msg.h"
#include "protocol/sh_wire.h"

/* ------------------------------------------------------------- headers */

/* The request header version for (api_key, api_version): 2 when that
 * version of the API is flexible, else 1; 0 only for ControlledShutdown
 * v0. Unknown APIs and versions above the API's range read as 1, except
 * ApiVersions, whose too-new versions read as 2 from its first flexible
 * version on (a client sends its newest ApiVersions before it knows what
 * the broker supports, and the broker must still answer). */
int16_t sh_request_header_version(int16_t api_key, int16_t api_version);

/*
 * Decode a request header at the start of a frame (after the size
 * prefix): api key and version first, then the rest in the header
 * version they imply (sh_request_header_version), stored in
 * *header_version_out. client_id borrows the frame. The reader is left
 * at the start of the body. Returns SH_OK or SH_E_DECODE.
 */
sh_err_t sh_request_header_decode(sh_reader_t *r, int16_t *header_version_out,
                                  sh_request_header_t *out);

/* Encode a request header (clients and tests). */
void sh_request_header_encode(sh_writer_t *w, int16_t header_version,
                              const sh_request_header_t *in);

/* Response header version: 1 for flexible versions of known APIs, else
 * 0; ApiVersions always 0, so a client can read the reply before it knows
 * which versions the broker speaks. */
int16_t sh_response_header_version(int16_t api_key, int16_t api_version);

void sh_response_header_encode(sh_writer_t *w, int16_t header_version,
                               int32_t correlation_id);

/* ---------------------------------------------------------- API table */

/* sh_api_info_t.listeners: roles that serve the API in Kafka */
#define SH_API_LISTENER_ZK_BROKER 0x01
#define SH_API_LISTENER_BROKER 0x02
#define SH_API_LISTENER_CONTROLLER 0x04

typedef sh_err_t (*sh_api_decode_fn)(sh_reader_t *r, sh_arena_t *a, int16_t version, void *out);
typedef void (*sh_api_encode_fn)(sh_writer_t *w, int16_t version, const void *in);
typedef void (*sh_api_init_fn)(void *m);

typedef struct sh_api_info {
    int16_t api_key;
    const char *name;                /* "Metadata", "ApiVersions" */
    int16_t min_version, max_version; /* what the codec can read and write */
    int16_t flexible_from;           /* first flexible version; -1 none */
    bool top_unstable;               /* max_version is still unstable in Kafka:
                                      * do not advertise it */
    uint8_t listeners;               /* SH_API_LISTENER_* */
    size_t request_size, response_size; /* sizeof the C structs */
    const sh_msg_desc_t *request_desc, *response_desc;
    sh_api_decode_fn request_decode, response_decode;
    sh_api_encode_fn request_encode, response_encode;
    sh_api_init_fn request_init, response_init;
} sh_api_info_t;

/* Entry for api_key, or NULL if the key is unknown. */
const sh_api_info_t *sh_api_info(int16_t api_key);
/* All APIs in increasing key order: sh_api_at(0 .. sh_api_count()-1). */
size_t sh_api_count(void);
const sh_api_info_t *sh_api_at(size_t i);

/* Is (api_key, version) something the codec can decode? */
static inline bool sh_api_version_known(const sh_api_info_t *ai, int16_t version)
{
    return ai && version >= ai->min_version && version <= ai->max_version;
}

/* Generated in protocol/generated/sh_api_table.c. */
extern const sh_api_info_t sh_api_table[SH_API_COUNT];
extern const sh_api_info_t *const sh_api_by_key[SH_API_KEY_LIMIT];

#endif
