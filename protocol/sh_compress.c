/*
 * sh_compress.c - gzip, snappy (xerial framing and raw), lz4 frame and zstd
 * codecs for record batches, with a hard limit on decompressed output.
 *
 * Threading: pure functions; any thread. Every call creates and frees its
 * own codec context, so nothing is shared.
 * Ownership: `in` is borrowed; output is appended to the caller's
 * sh_outbuf_t (see sh_compress.h for who frees which kind).
 *
 * Bounding the output. Streaming decoders (zlib, lz4 frame, zstd) write
 * into windows handed out by a small "sink": windows come from the output
 * buffer until the limit is reached, after which the sink offers a one-byte
 * scratch window. If the decoder ever writes into that scratch byte, the
 * stream holds more than the limit allows and we stop with
 * SH_KERR_MESSAGE_TOO_LARGE. That detects overflow without trusting any size
 * the stream declares; a growable buffer doubles, so it stays below twice
 * the limit.
 * Snappy declares each block's length up front; we check it against the
 * limit before reserving anything.
 */
#include "protocol/sh_compress.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <lz4frame.h>
#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "common/sh_endian.h"

/* Window size the streaming decoders get while the buffer has no spare
 * capacity; the buffer doubles, so large outputs need few windows. */
#define SH_DECOMP_WINDOW (64u * 1024u)

/* xerial snappy-java stream header: magic, version 1, min-compatible 1. */
static const uint8_t sh_xerial_magic[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};
#define SH_XERIAL_HEADER_LEN 16
/* Block size snappy-java uses; librdkafka and kafka-python match it. */
#define SH_XERIAL_BLOCK (32u * 1024u)

/* ------------------------------------------------------------ names */

static const char *const sh_codec_names[] = {"none", "gzip", "snappy", "lz4", "zstd"};

const char *sh_codec_name(int codec)
{
    if (codec < 0 || codec > SH_CODEC_MAX)
        return "unknown";
    return sh_codec_names[codec];
}

int sh_codec_parse(const char *name)
{
    for (int i = 0; i <= SH_CODEC_MAX; i++)
        if (strcmp(name, sh_codec_names[i]) == 0)
            return i;
    return -1;
}

/* ----------------------------------------------------------- outbuf */

void sh_outbuf_init_heap(sh_outbuf_t *b)
{
    memset(b, 0, sizeof(*b));
    b->kind = SH_OUTBUF_HEAP;
}

void sh_outbuf_init_fixed(sh_outbuf_t *b, void *mem, size_t size)
{
    memset(b, 0, sizeof(*b));
    b->kind = SH_OUTBUF_FIXED;
    b->data = mem;
    b->cap = mem ? size : 0;
}

void sh_outbuf_init_arena(sh_outbuf_t *b, sh_arena_t *a)
{
    memset(b, 0, sizeof(*b));
    b->kind = SH_OUTBUF_ARENA;
    b->arena = a;
}

void sh_outbuf_fini(sh_outbuf_t *b)
{
    if (b->kind == SH_OUTBUF_HEAP)
        free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

sh_err_t sh_outbuf_reserve(sh_outbuf_t *b, size_t extra)
{
    if (extra <= b->cap - b->len)
        return 0;
    if (b->kind == SH_OUTBUF_FIXED)
        return SH_KERR_MESSAGE_TOO_LARGE;
    if (extra > SIZE_MAX / 2 - b->len)
        return SH_E_NOMEM;
    size_t need = b->len + extra;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < need)
        ncap *= 2;
    uint8_t *p;
    if (b->kind == SH_OUTBUF_HEAP) {
        p = realloc(b->data, ncap);
        if (!p)
            return SH_E_NOMEM;
    } else {
        /* An arena cannot grow a block in place: copy into a larger one and
         * leave the old one to the arena (at most doubling the footprint). */
        p = sh_arena_alloc(b->arena, ncap);
        if (!p)
            return SH_E_NOMEM;
        if (b->len)
            memcpy(p, b->data, b->len);
    }
    b->data = p;
    b->cap = ncap;
    return 0;
}

sh_err_t sh_outbuf_append(sh_outbuf_t *b, const void *p, size_t n)
{
    sh_err_t err = sh_outbuf_reserve(b, n);
    if (err)
        return err;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

/* ------------------------------------------------------------- sink */

typedef struct sh_sink {
    sh_outbuf_t *out;
    size_t limit;        /* bytes this call may add */
    size_t produced;
    uint8_t scratch;     /* the overflow detector */
    int in_scratch;      /* the current window is the scratch byte */
} sh_sink_t;

static void sh_sink_init(sh_sink_t *s, sh_outbuf_t *out, size_t max_out)
{
    s->out = out;
    s->limit = max_out;
    /* a fixed buffer is its own limit */
    if (out->kind == SH_OUTBUF_FIXED && out->cap - out->len < s->limit)
        s->limit = out->cap - out->len;
    s->produced = 0;
    s->in_scratch = 0;
}

/* Hand out the next window. */
static sh_err_t sh_sink_window(sh_sink_t *s, uint8_t **p, size_t *n)
{
    size_t left = s->limit - s->produced;
    if (left == 0) {
        s->in_scratch = 1;
        *p = &s->scratch;
        *n = 1;
        return 0;
    }
    size_t want = s->out->cap - s->out->len;
    if (want < SH_DECOMP_WINDOW)
        want = SH_DECOMP_WINDOW;
    if (want > left)
        want = left;
    sh_err_t err = sh_outbuf_reserve(s->out, want);
    if (err)
        return err;
    /* use whatever spare capacity growth produced, still within limit */
    want = s->out->cap - s->out->len;
    if (want > left)
        want = left;
    *p = s->out->data + s->out->len;
    *n = want;
    return 0;
}

/* Account for `used` bytes written into the last window. */
static sh_err_t sh_sink_commit(sh_sink_t *s, size_t used)
{
    if (s->in_scratch) {
        s->in_scratch = 0;
        return used ? SH_KERR_MESSAGE_TOO_LARGE : 0;
    }
    s->out->len += used;
    s->produced += used;
    return 0;
}

/* ------------------------------------------------------------- gzip */

static sh_err_t sh_gzip_compress(sh_slice_t in, sh_outbuf_t *out)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    /* 16 + 15 window bits: gzip wrapper, as Java's GZIPOutputStream */
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        return SH_E_NOMEM;
    sh_err_t err;
    size_t bound = deflateBound(&zs, (uLong)in.len);
    err = sh_outbuf_reserve(out, bound);
    if (err)
        goto fail;
    zs.next_in = (Bytef *)(uintptr_t)in.ptr;
    zs.avail_in = (uInt)in.len;
    zs.next_out = out->data + out->len;
    zs.avail_out = (uInt)bound;
    if (deflate(&zs, Z_FINISH) != Z_STREAM_END) {
        err = SH_E_INVAL;
        goto fail;
    }
    out->len += bound - zs.avail_out;
    deflateEnd(&zs);
    return 0;
fail:
    deflateEnd(&zs);
    return err;
}

static sh_err_t sh_gzip_decompress(sh_slice_t in, sh_sink_t *sink)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
        return SH_E_NOMEM;
    sh_err_t err = 0;
    zs.next_in = (Bytef *)(uintptr_t)in.ptr;
    zs.avail_in = (uInt)in.len; /* callers cap in.len below 2 GiB */
    int members = 0;
    for (;;) {
        uint8_t *w;
        size_t wn;
        err = sh_sink_window(sink, &w, &wn);
        if (err)
            goto fail;
        zs.next_out = w;
        zs.avail_out = (uInt)(wn > UINT_MAX ? UINT_MAX : wn);
        uInt before_out = zs.avail_out;
        uInt before_in = zs.avail_in;
        int rc = inflate(&zs, Z_NO_FLUSH);
        err = sh_sink_commit(sink, before_out - zs.avail_out);
        if (err)
            goto fail;
        if (rc == Z_STREAM_END) {
            members++;
            if (zs.avail_in == 0)
                break;
            /* Java's GZIPInputStream reads concatenated members too */
            if (inflateReset(&zs) != Z_OK) {
                err = SH_E_DECODE;
                goto fail;
            }
            continue;
        }
        if (rc == Z_BUF_ERROR && zs.avail_in == 0) {
            err = SH_E_DECODE; /* truncated */
            goto fail;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            err = rc == Z_MEM_ERROR ? SH_E_NOMEM : SH_E_DECODE;
            goto fail;
        }
        if (before_in == zs.avail_in && before_out == zs.avail_out) {
            err = SH_E_DECODE; /* no progress possible */
            goto fail;
        }
    }
    if (members == 0)
        err = SH_E_DECODE;
fail:
    inflateEnd(&zs);
    return err;
}

/* ----------------------------------------------------------- snappy */

static sh_err_t sh_snappy_compress(sh_slice_t in, sh_outbuf_t *out)
{
    uint8_t hdr[SH_XERIAL_HEADER_LEN];
    memcpy(hdr, sh_xerial_magic, 8);
    sh_store_be32(hdr + 8, 1);
    sh_store_be32(hdr + 12, 1);
    sh_err_t err = sh_outbuf_append(out, hdr, sizeof(hdr));
    if (err)
        return err;
    for (size_t off = 0; off < in.len; off += SH_XERIAL_BLOCK) {
        size_t n = in.len - off < SH_XERIAL_BLOCK ? in.len - off : SH_XERIAL_BLOCK;
        size_t bound = snappy_max_compressed_length(n);
        err = sh_outbuf_reserve(out, 4 + bound);
        if (err)
            return err;
        size_t clen = bound;
        if (snappy_compress((const char *)in.ptr + off, n,
                            (char *)out->data + out->len + 4, &clen) != SNAPPY_OK)
            return SH_E_INVAL;
        sh_store_be32(out->data + out->len, (uint32_t)clen);
        out->len += 4 + clen;
    }
    return 0;
}

/* One raw snappy block, its declared length checked before any reserve. */
static sh_err_t sh_snappy_block(const uint8_t *p, size_t n, sh_sink_t *sink)
{
    size_t ulen;
    if (n == 0 || snappy_uncompressed_length((const char *)p, n, &ulen) != SNAPPY_OK)
        return SH_E_DECODE;
    if (ulen > sink->limit - sink->produced)
        return SH_KERR_MESSAGE_TOO_LARGE;
    sh_err_t err = sh_outbuf_reserve(sink->out, ulen);
    if (err)
        return err;
    /* an empty block still gets decoded (validated) somewhere real */
    char none;
    char *dst = ulen ? (char *)sink->out->data + sink->out->len : &none;
    size_t got = ulen;
    if (snappy_uncompress((const char *)p, n, dst, &got) != SNAPPY_OK || got != ulen)
        return SH_E_DECODE;
    sink->out->len += ulen;
    sink->produced += ulen;
    return 0;
}

static int sh_is_xerial(sh_slice_t in)
{
    return in.len >= SH_XERIAL_HEADER_LEN && memcmp(in.ptr, sh_xerial_magic, 8) == 0;
}

static sh_err_t sh_snappy_decompress(sh_slice_t in, sh_sink_t *sink)
{
    if (!sh_is_xerial(in))
        return sh_snappy_block(in.ptr, in.len, sink);
    /* The version words are not checked: snappy-java only ever wrote 1,
     * and the chunk layout has never changed. */
    size_t off = SH_XERIAL_HEADER_LEN;
    while (off < in.len) {
        if (in.len - off < 4)
            return SH_E_DECODE;
        uint32_t clen = sh_load_be32(in.ptr + off);
        off += 4;
        if (clen > in.len - off)
            return SH_E_DECODE;
        sh_err_t err = sh_snappy_block(in.ptr + off, clen, sink);
        if (err)
            return err;
        off += clen;
    }
    return 0;
}

/* -------------------------------------------------------------- lz4 */

static sh_err_t sh_lz4_compress(sh_slice_t in, sh_outbuf_t *out)
{
    LZ4F_preferences_t prefs;
    memset(&prefs, 0, sizeof(prefs));
    /* Java's KafkaLZ4BlockInputStream decodes blocks one by one, so they
     * must be independent; 64 KiB is the size Java itself writes. */
    prefs.frameInfo.blockSizeID = LZ4F_max64KB;
    prefs.frameInfo.blockMode = LZ4F_blockIndependent;
    prefs.frameInfo.contentSize = in.len;
    size_t bound = LZ4F_compressFrameBound(in.len, &prefs);
    sh_err_t err = sh_outbuf_reserve(out, bound);
    if (err)
        return err;
    size_t n = LZ4F_compressFrame(out->data + out->len, bound, in.ptr, in.len, &prefs);
    if (LZ4F_isError(n))
        return SH_E_INVAL;
    out->len += n;
    return 0;
}

static sh_err_t sh_lz4_decompress(sh_slice_t in, sh_sink_t *sink)
{
    LZ4F_dctx *dctx = NULL;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&dctx, LZ4F_VERSION)))
        return SH_E_NOMEM;
    sh_err_t err = 0;
    size_t off = 0;
    size_t hint = 1; /* nonzero: a frame is in progress or none seen yet */
    int frames = 0;
    for (;;) {
        uint8_t *w;
        size_t wn;
        err = sh_sink_window(sink, &w, &wn);
        if (err)
            goto fail;
        size_t dst_n = wn;
        size_t src_n = in.len - off;
        hint = LZ4F_decompress(dctx, w, &dst_n, in.ptr + off, &src_n, NULL);
        if (LZ4F_isError(hint)) {
            err = SH_E_DECODE;
            goto fail;
        }
        err = sh_sink_commit(sink, dst_n);
        if (err)
            goto fail;
        off += src_n;
        if (hint == 0) {
            frames++;
            if (off == in.len)
                break;
            continue; /* the context restarts on the next frame */
        }
        if (src_n == 0 && dst_n == 0) {
            /* no input left (truncated) or no progress possible */
            err = SH_E_DECODE;
            goto fail;
        }
    }
    if (frames == 0)
        err = SH_E_DECODE;
fail:
    LZ4F_freeDecompressionContext(dctx);
    return err;
}

/* ------------------------------------------------------------- zstd */

static sh_err_t sh_zstd_compress(sh_slice_t in, sh_outbuf_t *out)
{
    size_t bound = ZSTD_compressBound(in.len);
    sh_err_t err = sh_outbuf_reserve(out, bound);
    if (err)
        return err;
    /* one-shot: the frame records its content size, so a decoder needs
     * no more window memory than the data itself */
    size_t n = ZSTD_compress(out->data + out->len, bound, in.ptr, in.len, ZSTD_CLEVEL_DEFAULT);
    if (ZSTD_isError(n))
        return SH_E_INVAL;
    out->len += n;
    return 0;
}

/* Largest window a frame may ask for: enough for the limit, and at least
 * 8 MiB so frames from producers at high levels (window log 23) decode;
 * never more than zstd's own default ceiling. */
#define SH_ZSTD_WINDOWLOG_CEIL 27 /* ZSTD_WINDOWLOG_LIMIT_DEFAULT, static-only */
static int sh_zstd_window_log(size_t limit)
{
    int lg = 23;
    while (lg < SH_ZSTD_WINDOWLOG_CEIL && ((size_t)1 << lg) < limit)
        lg++;
    return lg;
}

static sh_err_t sh_zstd_decompress(sh_slice_t in, sh_sink_t *sink)
{
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    if (!dctx)
        return SH_E_NOMEM;
    sh_err_t err = 0;
    if (ZSTD_isError(ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax,
                                            sh_zstd_window_log(sink->limit)))) {
        err = SH_E_NOMEM;
        goto fail;
    }
    ZSTD_inBuffer zin = {in.ptr, in.len, 0};
    size_t rc = 1;
    int frames = 0;
    for (;;) {
        uint8_t *w;
        size_t wn;
        err = sh_sink_window(sink, &w, &wn);
        if (err)
            goto fail;
        ZSTD_outBuffer zout = {w, wn, 0};
        size_t in_before = zin.pos;
        rc = ZSTD_decompressStream(dctx, &zout, &zin);
        if (ZSTD_isError(rc)) {
            err = ZSTD_getErrorCode(rc) == ZSTD_error_memory_allocation ? SH_E_NOMEM
                                                                        : SH_E_DECODE;
            goto fail;
        }
        err = sh_sink_commit(sink, zout.pos);
        if (err)
            goto fail;
        if (rc == 0) {
            frames++;
            if (zin.pos == zin.size)
                break;
            continue;
        }
        /* A full window may hide more output; otherwise input must move. */
        if (zout.pos < zout.size && zin.pos == in_before) {
            err = SH_E_DECODE; /* truncated frame */
            goto fail;
        }
    }
    if (frames == 0)
        err = SH_E_DECODE;
fail:
    ZSTD_freeDCtx(dctx);
    return err;
}

/* ----------------------------------------------------------- public */

sh_err_t sh_compress(sh_codec_t codec, sh_slice_t in, sh_outbuf_t *out)
{
    if (in.len > INT32_MAX)
        return SH_E_INVAL;
    size_t len0 = out->len;
    sh_err_t err;
    switch (codec) {
    case SH_CODEC_NONE:
        err = sh_outbuf_append(out, in.ptr, in.len);
        break;
    case SH_CODEC_GZIP:
        err = sh_gzip_compress(in, out);
        break;
    case SH_CODEC_SNAPPY:
        err = sh_snappy_compress(in, out);
        break;
    case SH_CODEC_LZ4:
        err = sh_lz4_compress(in, out);
        break;
    case SH_CODEC_ZSTD:
        err = sh_zstd_compress(in, out);
        break;
    default:
        return SH_E_INVAL;
    }
    if (err)
        out->len = len0;
    return err;
}

sh_err_t sh_decompress(sh_codec_t codec, sh_slice_t in, sh_outbuf_t *out, size_t max_out)
{
    if (in.len > INT32_MAX)
        return SH_E_INVAL;
    if (in.len && !in.ptr)
        return SH_E_INVAL;
    size_t len0 = out->len;
    sh_sink_t sink;
    sh_sink_init(&sink, out, max_out);
    sh_err_t err;
    switch (codec) {
    case SH_CODEC_NONE:
        err = in.len > sink.limit ? SH_KERR_MESSAGE_TOO_LARGE
                                  : sh_outbuf_append(out, in.ptr, in.len);
        break;
    case SH_CODEC_GZIP:
        err = sh_gzip_decompress(in, &sink);
        break;
    case SH_CODEC_SNAPPY:
        err = sh_snappy_decompress(in, &sink);
        break;
    case SH_CODEC_LZ4:
        err = sh_lz4_decompress(in, &sink);
        break;
    case SH_CODEC_ZSTD:
        err = sh_zstd_decompress(in, &sink);
        break;
    default:
        return SH_E_INVAL;
    }
    if (err)
        out->len = len0;
    return err;
}
