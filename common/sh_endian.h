/*
 * sh_endian.h - big-endian loads and stores on unaligned bytes, and the
 * unsigned (LEB128) and zig-zag varints of the Kafka protocol.
 * Header-only; callers check bounds before calling the load/store helpers.
 */
#ifndef SH_ENDIAN_H
#define SH_ENDIAN_H

#include <stddef.h>
#include <stdint.h>

static inline uint16_t sh_load_be16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t sh_load_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t sh_load_be64(const uint8_t *p)
{
    return (uint64_t)sh_load_be32(p) << 32 | sh_load_be32(p + 4);
}

static inline void sh_store_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void sh_store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void sh_store_be64(uint8_t *p, uint64_t v)
{
    sh_store_be32(p, (uint32_t)(v >> 32));
    sh_store_be32(p + 4, (uint32_t)v);
}

/* Unsigned varint: returns bytes consumed (1..max), 0 if truncated or too
 * long. max_bytes is 5 for 32-bit values, 10 for 64-bit. */
static inline size_t sh_uvarint_read(const uint8_t *p, size_t avail, unsigned max_bytes,
                                     uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < avail && i < max_bytes; i++) {
        v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *out = v;
            return i + 1;
        }
    }
    return 0;
}

/* Bytes needed to encode v as an unsigned varint. */
static inline size_t sh_uvarint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Encode v; p must have sh_uvarint_size(v) bytes. Returns bytes written. */
static inline size_t sh_uvarint_write(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static inline uint64_t sh_zigzag_encode(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static inline int64_t sh_zigzag_decode(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

#endif
