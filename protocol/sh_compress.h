/*
 * sh_compress.h - the four Kafka record codecs (gzip, snappy, lz4, zstd)
 * behind one call each way, writing into a bounded output buffer.
 *
 * Every decompressor stops at a hard output limit: a small input that
 * inflates to gigabytes (a decompression bomb) fails with
 * SH_KERR_MESSAGE_TOO_LARGE after at most `max_out` bytes were produced;
 * output memory stays within about twice max_out whatever sizes the stream
 * declares (zstd additionally caps its window, see sh_compress.c).
 *
 * Stream formats are the ones Kafka clients write inside RecordBatch v2:
 *   gzip    RFC 1952 member(s) (zlib)
 *   snappy  xerial snappy-java framing (what the Java client and
 *           librdkafka write); raw snappy is accepted on input too
 *   lz4     LZ4 frame format, 64 KiB independent blocks (liblz4 frame API)
 *   zstd    zstd frame(s) (streaming API)
 *
 * Output goes to an sh_outbuf_t, which is one of: a growable heap buffer,
 * a caller's fixed buffer that never grows, or memory taken from an arena.
 * Functions append to it; the caller owns it and finishes it with
 * sh_outbuf_fini(). Pure functions otherwise; any thread.
 */
#ifndef SH_COMPRESS_H
#define SH_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "common/sh_arena.h"
#include "common/sh_err.h"
#include "common/sh_slice.h"

/* Values are the attribute bits 0-2 of a v2 batch. */
typedef enum sh_codec {
    SH_CODEC_NONE = 0,
    SH_CODEC_GZIP = 1,
    SH_CODEC_SNAPPY = 2,
    SH_CODEC_LZ4 = 3,
    SH_CODEC_ZSTD = 4,
} sh_codec_t;

#define SH_CODEC_MAX SH_CODEC_ZSTD

/* "none", "gzip", "snappy", "lz4", "zstd", or "unknown". */
const char *sh_codec_name(int codec);
/* Parse a compression.type name; returns -1 if unknown. */
int sh_codec_parse(const char *name);

typedef enum sh_outbuf_kind {
    SH_OUTBUF_HEAP = 0,   /* realloc'd; sh_outbuf_fini frees it */
    SH_OUTBUF_FIXED = 1,  /* caller's memory; never grows */
    SH_OUTBUF_ARENA = 2,  /* grows by copying into a larger arena block;
                           * the arena frees everything */
} sh_outbuf_kind_t;

typedef struct sh_outbuf {
    uint8_t *data;
    size_t len;
    size_t cap;
    sh_outbuf_kind_t kind;
    sh_arena_t *arena;
} sh_outbuf_t;

void sh_outbuf_init_heap(sh_outbuf_t *b);
/* mem (size bytes) stays owned by the caller. */
void sh_outbuf_init_fixed(sh_outbuf_t *b, void *mem, size_t size);
/* a is borrowed and must outlive every use of b->data. */
void sh_outbuf_init_arena(sh_outbuf_t *b, sh_arena_t *a);
/* Frees heap memory; a no-op for the other kinds. */
void sh_outbuf_fini(sh_outbuf_t *b);

static inline void sh_outbuf_reset(sh_outbuf_t *b)
{
    b->len = 0;
}

static inline sh_slice_t sh_outbuf_slice(const sh_outbuf_t *b)
{
    return (sh_slice_t){b->data, b->len};
}

/* Make room for `extra` more bytes after len. SH_E_NOMEM on allocation
 * failure, SH_KERR_MESSAGE_TOO_LARGE when a fixed buffer is too small. */
sh_err_t sh_outbuf_reserve(sh_outbuf_t *b, size_t extra);
/* Append n bytes (reserve + copy). */
sh_err_t sh_outbuf_append(sh_outbuf_t *b, const void *p, size_t n);

/*
 * Compress `in` with `codec` and append the stream to out. SH_CODEC_NONE
 * copies. Returns 0, SH_E_NOMEM, SH_E_INVAL (unknown codec, or input over
 * 2 GiB), or SH_KERR_MESSAGE_TOO_LARGE (fixed buffer too small).
 */
sh_err_t sh_compress(sh_codec_t codec, sh_slice_t in, sh_outbuf_t *out);

/*
 * Decompress `in` and append the result to out, producing at most max_out
 * bytes. Returns 0; SH_KERR_MESSAGE_TOO_LARGE when the output would exceed
 * max_out (or a fixed buffer); SH_E_DECODE for a malformed, truncated or
 * trailing-garbage stream; SH_E_INVAL for an unknown codec; SH_E_NOMEM.
 * On failure out->len is restored to its value at entry.
 */
sh_err_t sh_decompress(sh_codec_t codec, sh_slice_t in, sh_outbuf_t *out, size_t max_out);

#endif
