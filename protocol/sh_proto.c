/*
 * sh_proto.c - hand-written glue around the generated messages: choosing
 * request and response header versions, and looking up the API table.
 * Header versions are not a property of the header schema but of the API
 * and version the frame carries, which is why this is not generated.
 *
 * Pure functions over constant tables; any thread. Decoded headers borrow
 * the frame (client_id).
 */
#include "protocol/sh_proto.h"

#include "common/sh_log.h"

const sh_api_info_t *sh_api_info(int16_t api_key)
{
    if (api_key < 0 || api_key >= SH_API_KEY_LIMIT)
        return NULL;
    return sh_api_by_key[api_key];
}

size_t sh_api_count(void)
{
    return SH_API_COUNT;
}

const sh_api_info_t *sh_api_at(size_t i)
{
    return i < SH_API_COUNT ? &sh_api_table[i] : NULL;
}

static bool flexible(const sh_api_info_t *ai, int16_t version)
{
    return ai->flexible_from >= 0 && version >= ai->flexible_from;
}

int16_t sh_request_header_version(int16_t api_key, int16_t api_version)
{
    if (api_key == SH_API_CONTROLLED_SHUTDOWN && api_version == 0)
        return 0; /* the one request that predates client_id */
    const sh_api_info_t *ai = sh_api_info(api_key);
    if (!ai || api_version < ai->min_version)
        return 1;
    if (api_version > ai->max_version)
        return api_key == SH_API_API_VERSIONS && flexible(ai, api_version) ? 2 : 1;
    return flexible(ai, api_version) ? 2 : 1;
}

sh_err_t sh_request_header_decode(sh_reader_t *r, int16_t *header_version_out,
                                  sh_request_header_t *out)
{
    if (sh_reader_remaining(r) < 4) {
        sh_reader_fail(r);
        sh_log(SH_LOG_DEBUG, "protocol", "could not decode request header: frame of %zu bytes is too short",
               (size_t)(r->end - r->start));
        return SH_E_DECODE;
    }
    int16_t key = (int16_t)sh_load_be16(r->pos);
    int16_t version = (int16_t)sh_load_be16(r->pos + 2);
    int16_t hv = sh_request_header_version(key, version);
    if (header_version_out)
        *header_version_out = hv;
    return sh_request_header_decode_version(r, hv, out);
}

void sh_request_header_encode(sh_writer_t *w, int16_t header_version,
                              const sh_request_header_t *in)
{
    sh_request_header_encode_version(w, header_version, in);
}

int16_t sh_response_header_version(int16_t api_key, int16_t api_version)
{
    if (api_key == SH_API_API_VERSIONS)
        return 0;
    const sh_api_info_t *ai = sh_api_info(api_key);
    return ai && flexible(ai, api_version) ? 1 : 0;
}

void sh_response_header_encode(sh_writer_t *w, int16_t header_version, int32_t correlation_id)
{
    sh_response_header_t h;
    sh_response_header_init(&h);
    h.correlation_id = correlation_id;
    sh_response_header_encode_version(w, header_version, &h);
}
