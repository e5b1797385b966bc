/*
 * sh_wal_format.c - encode and check WAL segment headers and frames (see
 * sh_wal_format.h for the layout). Pure functions on caller memory; any
 * thread; nothing allocated. Every length read from disk is checked
 * against the bytes actually available before it is used, because replay
 * feeds this code whatever a crash or a bad disk left behind.
 */
#include "wal/sh_wal_format.h"

#include <string.h>

#include "common/sh_crc32c.h"
#include "common/sh_endian.h"

void sh_wal_seghdr_encode(uint8_t *out, const sh_wal_seghdr_t *h)
{
    memset(out, 0, SH_WAL_SEG_HDR_SIZE);
    memcpy(out, SH_WAL_SEG_MAGIC, 8);
    sh_store_be32(out + 8, SH_WAL_SEG_VERSION);
    sh_store_be32(out + 12, SH_WAL_SEG_HDR_SIZE);
    sh_store_be64(out + 16, h->seq);
    sh_store_be64(out + 24, h->segment_bytes);
    sh_store_be64(out + 32, (uint64_t)h->created_ms);
    sh_store_be32(out + 44, sh_crc32c(0, out, 44));
}

sh_err_t sh_wal_seghdr_decode(const uint8_t *buf, size_t len, sh_wal_seghdr_t *h)
{
    if (len < SH_WAL_SEG_HDR_USED || memcmp(buf, SH_WAL_SEG_MAGIC, 8) != 0)
        return SH_E_CORRUPT;
    if (sh_load_be32(buf + 44) != sh_crc32c(0, buf, 44))
        return SH_E_CORRUPT;
    if (sh_load_be32(buf + 8) != SH_WAL_SEG_VERSION ||
        sh_load_be32(buf + 12) != SH_WAL_SEG_HDR_SIZE || sh_load_be32(buf + 40) != 0)
        return SH_E_CORRUPT;
    h->seq = sh_load_be64(buf + 16);
    h->segment_bytes = sh_load_be64(buf + 24);
    h->created_ms = (int64_t)sh_load_be64(buf + 32);
    if (h->seq == 0 || h->segment_bytes < SH_WAL_SEG_HDR_SIZE)
        return SH_E_CORRUPT;
    return SH_OK;
}

void sh_wal_frame_hdr_encode(uint8_t *hdr, uint8_t type, uint64_t seq, uint16_t key_len,
                             uint32_t len, int64_t first_offset, int64_t last_offset)
{
    sh_store_be32(hdr, 0);
    sh_store_be32(hdr + 4, len);
    sh_store_be64(hdr + 8, seq);
    hdr[16] = type;
    hdr[17] = 0;
    sh_store_be16(hdr + 18, key_len);
    sh_store_be32(hdr + 20, SH_WAL_FRAME_MAGIC);
    sh_store_be64(hdr + 24, (uint64_t)first_offset);
    sh_store_be64(hdr + 32, (uint64_t)last_offset);
}

uint32_t sh_wal_frame_hdr_crc(const uint8_t *hdr)
{
    return sh_crc32c(0, hdr + 4, SH_WAL_FRAME_HDR_SIZE - 4);
}

void sh_wal_frame_hdr_set_crc(uint8_t *hdr, uint32_t crc)
{
    sh_store_be32(hdr, crc);
}

uint32_t sh_wal_frame_peek(const uint8_t *p, size_t avail, uint64_t seq, uint64_t room)
{
    if (avail < SH_WAL_FRAME_HDR_SIZE || room < SH_WAL_FRAME_HDR_SIZE)
        return 0;
    uint32_t len = sh_load_be32(p + 4);
    uint16_t key_len = sh_load_be16(p + 18);
    uint8_t type = p[16];
    if (sh_load_be32(p + 20) != SH_WAL_FRAME_MAGIC || sh_load_be64(p + 8) != seq || p[17] != 0)
        return 0;
    if (len < SH_WAL_FRAME_HDR_SIZE || (uint64_t)len > room ||
        (uint64_t)key_len > (uint64_t)len - SH_WAL_FRAME_HDR_SIZE || key_len > SH_WAL_KEY_MAX)
        return 0;
    switch (type) {
    case SH_WAL_FRAME_DATA:
        if (key_len == 0)
            return 0;
        break;
    case SH_WAL_FRAME_RELEASE:
    case SH_WAL_FRAME_DELETE:
        if (key_len == 0 || len != SH_WAL_FRAME_HDR_SIZE + key_len)
            return 0;
        break;
    case SH_WAL_FRAME_SEAL:
        if (key_len != 0 || len != SH_WAL_FRAME_HDR_SIZE)
            return 0;
        break;
    default:
        return 0;
    }
    return len;
}

sh_err_t sh_wal_frame_decode(const uint8_t *p, size_t avail, uint64_t seq, sh_wal_frame_t *out)
{
    uint32_t len = sh_wal_frame_peek(p, avail, seq, avail);
    if (len == 0)
        return SH_E_CORRUPT;
    uint32_t crc = sh_crc32c(0, p + 4, len - 4);
    if (crc != sh_load_be32(p))
        return SH_E_CORRUPT;
    uint16_t key_len = sh_load_be16(p + 18);
    int64_t first = (int64_t)sh_load_be64(p + 24);
    int64_t last = (int64_t)sh_load_be64(p + 32);
    uint8_t type = p[16];
    if (type == SH_WAL_FRAME_DATA && (first < 0 || last < first))
        return SH_E_CORRUPT;
    if (type == SH_WAL_FRAME_RELEASE && last < 0)
        return SH_E_CORRUPT;
    out->type = type;
    out->len = len;
    out->seq = seq;
    out->first_offset = first;
    out->last_offset = last;
    out->key = (sh_slice_t){p + SH_WAL_FRAME_HDR_SIZE, key_len};
    out->payload = (sh_slice_t){p + SH_WAL_FRAME_HDR_SIZE + key_len,
                                len - SH_WAL_FRAME_HDR_SIZE - key_len};
    return SH_OK;
}
