/*
 * sh_segment.c - segment object builder, index reader, in-chunk batch
 * search and object key naming (see sh_segment.h, docs/segment-format.md).
 *
 * Threads: none of its own; any thread, one object at a time. Ownership: the
 * builder owns its iovec array, descriptors, header and index bytes, and
 * borrows the chunk bytes; a parsed index owns its chunk array.
 *
 * The reader is fed untrusted bytes (objects written by another version,
 * damaged, or fuzzed): it reads only through sh_reader_t, checks every
 * count against the bytes it was given before allocating, and checks every
 * chunk range against the object before anyone uses it.
 */
#include "storage/sh_segment.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sh_crc32c.h"
#include "common/sh_endian.h"

static const uint8_t sh_segment_magic[4] = {'S', 'H', 'S', 'G'};

/* RecordBatch header fields we read (RECORD-BATCH.md section 2). */
#define SH_SEG_RB_BATCH_LENGTH 8
#define SH_SEG_RB_MAGIC 16
#define SH_SEG_RB_LAST_OFFSET_DELTA 23
#define SH_SEG_RB_MAX_TIMESTAMP 35
#define SH_SEG_RB_LOG_OVERHEAD 12     /* baseOffset + batchLength */
#define SH_SEG_RB_MIN_SIZE 61         /* header of a batch with no records */
#define SH_SEG_RB_PEEK 43             /* bytes needed to read up to maxTimestamp */

struct sh_segment_builder {
    struct iovec *iov;           /* [0] header, chunk pieces, [last] index */
    int iovcnt, iovcap;
    sh_segment_chunk_t *chunks;
    size_t nchunks, chunkcap;
    uint64_t pos;                /* object size so far, header included */
    uint8_t header[SH_SEGMENT_HEADER_SIZE];
    uint8_t *index;              /* entries + trailer, written by finish */
    int finished;
};

/* ---------------------------------------------------------------- builder */

sh_segment_builder_t *sh_segment_builder_new(void)
{
    sh_segment_builder_t *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->iovcap = 16;
    b->iov = malloc((size_t)b->iovcap * sizeof(*b->iov));
    if (!b->iov) {
        free(b);
        return NULL;
    }
    memcpy(b->header, sh_segment_magic, 4);
    sh_store_be16(b->header + 4, SH_SEGMENT_VERSION);
    sh_store_be16(b->header + 6, 0);
    b->iov[0] = (struct iovec){b->header, SH_SEGMENT_HEADER_SIZE};
    b->iovcnt = 1;
    b->pos = SH_SEGMENT_HEADER_SIZE;
    return b;
}

void sh_segment_builder_free(sh_segment_builder_t *b)
{
    if (!b)
        return;
    free(b->iov);
    free(b->chunks);
    free(b->index);
    free(b);
}

/* Forward-only gather reader over an iovec list, so batch headers that
 * straddle iovecs can be read without copying the chunk. */
typedef struct sh_seg_cursor {
    const struct iovec *iov;
    int iovcnt;
    int i;            /* current iovec */
    size_t in;        /* offset inside it */
    uint64_t at;      /* absolute offset of (i, in) */
} sh_seg_cursor_t;

/* Copy n bytes at absolute offset `off` (>= the previous one) into dst. */
static int sh_seg_cursor_read(sh_seg_cursor_t *c, uint64_t off, uint8_t *dst, size_t n)
{
    while (c->i < c->iovcnt && off - c->at >= c->iov[c->i].iov_len - c->in) {
        c->at += c->iov[c->i].iov_len - c->in;
        c->i++;
        c->in = 0;
    }
    if (c->i >= c->iovcnt)
        return -1;
    c->in += (size_t)(off - c->at);
    c->at = off;
    int i = c->i;
    size_t in = c->in;
    while (n > 0) {
        if (i >= c->iovcnt)
            return -1;
        size_t take = c->iov[i].iov_len - in;
        if (take > n)
            take = n;
        if (take > 0) { /* an empty iovec may have a NULL base */
            memcpy(dst, (const uint8_t *)c->iov[i].iov_base + in, take);
            dst += take;
            n -= take;
        }
        i++;
        in = 0;
    }
    return 0;
}

/* Walk the batch headers of a chunk: whole magic-2 batches, offsets
 * strictly increasing. Fills the offset range and max timestamp. */
static sh_err_t sh_seg_scan_batches(const struct iovec *iov, int iovcnt, uint64_t total,
                                    sh_segment_chunk_t *c)
{
    sh_seg_cursor_t cur = {iov, iovcnt, 0, 0, 0};
    uint64_t pos = 0;
    int64_t prev_last = -1;
    int64_t max_ts = -1;
    int64_t first = -1;
    while (pos < total) {
        uint8_t h[SH_SEG_RB_PEEK];
        if (total - pos < SH_SEG_RB_MIN_SIZE || sh_seg_cursor_read(&cur, pos, h, sizeof(h)) != 0)
            return SH_E_INVAL;
        int64_t base = (int64_t)sh_load_be64(h);
        int32_t blen = (int32_t)sh_load_be32(h + SH_SEG_RB_BATCH_LENGTH);
        int32_t delta = (int32_t)sh_load_be32(h + SH_SEG_RB_LAST_OFFSET_DELTA);
        int64_t ts = (int64_t)sh_load_be64(h + SH_SEG_RB_MAX_TIMESTAMP);
        if (h[SH_SEG_RB_MAGIC] != 2 || blen < SH_SEG_RB_MIN_SIZE - SH_SEG_RB_LOG_OVERHEAD ||
            (uint64_t)blen + SH_SEG_RB_LOG_OVERHEAD > total - pos)
            return SH_E_INVAL;
        if (base < 0 || delta < 0 || base > INT64_MAX - delta || base <= prev_last)
            return SH_E_INVAL;
        if (first < 0)
            first = base;
        prev_last = base + delta;
        if (ts > max_ts)
            max_ts = ts;
        pos += (uint64_t)blen + SH_SEG_RB_LOG_OVERHEAD;
    }
    if (first < 0)
        return SH_E_INVAL; /* empty chunk */
    c->base_offset = first;
    c->last_offset = prev_last;
    c->max_timestamp = max_ts;
    return SH_OK;
}

sh_err_t sh_segment_builder_add(sh_segment_builder_t *b, sh_uuid_t topic_id, int32_t partition,
                                int32_t leader_epoch, const struct iovec *iov, int iovcnt,
                                const sh_segment_chunk_t **out)
{
    if (b->finished || partition < 0 || iovcnt <= 0 || !iov)
        return SH_E_INVAL;
    uint64_t total = 0;
    int pieces = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > UINT32_MAX || (iov[i].iov_len && !iov[i].iov_base))
            return SH_E_INVAL;
        total += iov[i].iov_len;
        pieces += iov[i].iov_len > 0;
    }
    if (total == 0 || total > UINT32_MAX)
        return SH_E_INVAL;
    sh_segment_chunk_t c = {
        .topic_id = topic_id,
        .partition = partition,
        .leader_epoch = leader_epoch,
        .byte_offset = b->pos,
        .byte_length = (uint32_t)total,
    };
    sh_err_t err = sh_seg_scan_batches(iov, iovcnt, total, &c);
    if (err != SH_OK)
        return err;
    uint32_t crc = 0;
    for (int i = 0; i < iovcnt; i++)
        crc = sh_crc32c(crc, iov[i].iov_base, iov[i].iov_len);
    c.crc = crc;

    /* reserve room first so failure leaves the builder unchanged; one
     * spare iovec slot stays free for the index */
    if (b->nchunks == b->chunkcap) {
        size_t cap = b->chunkcap ? b->chunkcap * 2 : 16;
        sh_segment_chunk_t *nc = realloc(b->chunks, cap * sizeof(*nc));
        if (!nc)
            return SH_E_NOMEM;
        b->chunks = nc;
        b->chunkcap = cap;
    }
    if (b->iovcnt + pieces + 1 > b->iovcap) {
        if (pieces > INT32_MAX / 2 - b->iovcap)
            return SH_E_INVAL;
        int cap = b->iovcap * 2;
        while (cap < b->iovcnt + pieces + 1)
            cap *= 2;
        struct iovec *ni = realloc(b->iov, (size_t)cap * sizeof(*ni));
        if (!ni)
            return SH_E_NOMEM;
        b->iov = ni;
        b->iovcap = cap;
    }
    for (int i = 0; i < iovcnt; i++)
        if (iov[i].iov_len > 0)
            b->iov[b->iovcnt++] = iov[i];
    b->chunks[b->nchunks] = c;
    if (out)
        *out = &b->chunks[b->nchunks];
    b->nchunks++;
    b->pos += total;
    return SH_OK;
}

size_t sh_segment_builder_count(const sh_segment_builder_t *b)
{
    return b->nchunks;
}

uint64_t sh_segment_builder_size(const sh_segment_builder_t *b)
{
    return b->pos + (uint64_t)b->nchunks * SH_SEGMENT_ENTRY_SIZE + SH_SEGMENT_TRAILER_SIZE;
}

static void sh_seg_entry_write(uint8_t *p, const sh_segment_chunk_t *c)
{
    memcpy(p, c->topic_id.b, 16);
    sh_store_be32(p + 16, (uint32_t)c->partition);
    sh_store_be32(p + 20, (uint32_t)c->leader_epoch);
    sh_store_be64(p + 24, (uint64_t)c->base_offset);
    sh_store_be64(p + 32, (uint64_t)c->last_offset);
    sh_store_be64(p + 40, (uint64_t)c->max_timestamp);
    sh_store_be64(p + 48, c->byte_offset);
    sh_store_be32(p + 56, c->byte_length);
    sh_store_be32(p + 60, c->crc);
}

sh_err_t sh_segment_builder_finish(sh_segment_builder_t *b, int64_t created_ms,
                                   const struct iovec **iov, int *iovcnt,
                                   uint64_t *object_size)
{
    if (b->finished || b->nchunks == 0 || b->nchunks > SH_SEGMENT_MAX_CHUNKS)
        return SH_E_INVAL;
    size_t isize = b->nchunks * SH_SEGMENT_ENTRY_SIZE + SH_SEGMENT_TRAILER_SIZE;
    b->index = malloc(isize);
    if (!b->index)
        return SH_E_NOMEM;
    for (size_t i = 0; i < b->nchunks; i++)
        sh_seg_entry_write(b->index + i * SH_SEGMENT_ENTRY_SIZE, &b->chunks[i]);
    uint8_t *t = b->index + b->nchunks * SH_SEGMENT_ENTRY_SIZE;
    sh_store_be64(t + 0, b->pos);
    sh_store_be64(t + 8, (uint64_t)created_ms);
    sh_store_be32(t + 16, (uint32_t)b->nchunks);
    sh_store_be16(t + 20, SH_SEGMENT_ENTRY_SIZE);
    sh_store_be16(t + 22, SH_SEGMENT_VERSION);
    sh_store_be32(t + 24, sh_crc32c(0, b->index, isize - 8));
    memcpy(t + 28, sh_segment_magic, 4);
    b->iov[b->iovcnt++] = (struct iovec){b->index, isize};
    b->finished = 1;
    *iov = b->iov;
    *iovcnt = b->iovcnt;
    if (object_size)
        *object_size = b->pos + isize;
    return SH_OK;
}

const sh_segment_chunk_t *sh_segment_builder_chunks(const sh_segment_builder_t *b, size_t *n)
{
    *n = b->nchunks;
    return b->chunks;
}

/* ----------------------------------------------------------------- reader */

void sh_segment_index_fini(sh_segment_index_t *idx)
{
    free(idx->chunks);
    memset(idx, 0, sizeof(*idx));
}

sh_err_t sh_segment_index_parse(const uint8_t *tail, size_t tail_len, uint64_t object_size,
                                sh_segment_index_t *out, uint64_t *need)
{
    memset(out, 0, sizeof(*out));
    if (need)
        *need = 0;
    const uint64_t min_object = SH_SEGMENT_HEADER_SIZE + SH_SEGMENT_TRAILER_SIZE;
    if (tail_len > object_size || object_size < min_object)
        return SH_E_CORRUPT;
    if (tail_len < SH_SEGMENT_TRAILER_SIZE) {
        if (need)
            *need = SH_SEGMENT_TRAILER_SIZE;
        return SH_E_AGAIN;
    }

    sh_reader_t r;
    sh_reader_init(&r, tail + tail_len - SH_SEGMENT_TRAILER_SIZE, SH_SEGMENT_TRAILER_SIZE);
    uint64_t index_offset = (uint64_t)sh_wire_get_i64(&r);
    int64_t created_ms = sh_wire_get_i64(&r);
    uint32_t nchunks = sh_wire_get_u32(&r);
    uint16_t entry_size = sh_wire_get_u16(&r);
    uint16_t version = sh_wire_get_u16(&r);
    uint32_t crc = sh_wire_get_u32(&r);
    const uint8_t *magic = sh_reader_take(&r, 4);
    if (r.err || memcmp(magic, sh_segment_magic, 4) != 0)
        return SH_E_CORRUPT;
    if (version != SH_SEGMENT_VERSION)
        return SH_E_UNSUPPORTED;
    /* a newer minor revision may append fields to entries; never shrink */
    if (entry_size < SH_SEGMENT_ENTRY_SIZE || nchunks > SH_SEGMENT_MAX_CHUNKS)
        return SH_E_CORRUPT;
    uint64_t isize = (uint64_t)nchunks * entry_size + SH_SEGMENT_TRAILER_SIZE;
    if (index_offset < SH_SEGMENT_HEADER_SIZE || index_offset > object_size ||
        object_size - index_offset != isize)
        return SH_E_CORRUPT;
    if (tail_len < isize) {
        if (need)
            *need = isize;
        return SH_E_AGAIN;
    }
    const uint8_t *ip = tail + tail_len - isize;
    if (sh_crc32c(0, ip, (size_t)isize - 8) != crc)
        return SH_E_CORRUPT;
    if (tail_len == object_size) {
        /* the whole object is here: the leading header must agree too */
        if (memcmp(tail, sh_segment_magic, 4) != 0 || sh_load_be16(tail + 4) != version)
            return SH_E_CORRUPT;
    }

    sh_segment_chunk_t *chunks = calloc(nchunks ? nchunks : 1, sizeof(*chunks));
    if (!chunks)
        return SH_E_NOMEM;
    uint64_t prev_end = SH_SEGMENT_HEADER_SIZE;
    for (uint32_t i = 0; i < nchunks; i++) {
        sh_reader_init(&r, ip + (size_t)i * entry_size, entry_size);
        sh_segment_chunk_t *c = &chunks[i];
        c->topic_id = sh_wire_get_uuid(&r);
        c->partition = sh_wire_get_i32(&r);
        c->leader_epoch = sh_wire_get_i32(&r);
        c->base_offset = sh_wire_get_i64(&r);
        c->last_offset = sh_wire_get_i64(&r);
        c->max_timestamp = sh_wire_get_i64(&r);
        c->byte_offset = (uint64_t)sh_wire_get_i64(&r);
        c->byte_length = sh_wire_get_u32(&r);
        c->crc = sh_wire_get_u32(&r);
        /* chunks lie in object order between the header and the index,
         * without overlap, so a ranged GET of one never reads another */
        if (r.err || c->partition < 0 || c->base_offset < 0 ||
            c->last_offset < c->base_offset || c->byte_length == 0 ||
            c->byte_offset < prev_end || c->byte_offset > index_offset ||
            c->byte_length > index_offset - c->byte_offset) {
            free(chunks);
            return SH_E_CORRUPT;
        }
        prev_end = c->byte_offset + c->byte_length;
    }
    out->version = version;
    out->created_ms = created_ms;
    out->object_size = object_size;
    out->index_offset = index_offset;
    out->nchunks = nchunks;
    out->chunks = chunks;
    return SH_OK;
}

const sh_segment_chunk_t *sh_segment_index_find(const sh_segment_index_t *idx,
                                                sh_uuid_t topic_id, int32_t partition,
                                                int64_t offset)
{
    for (uint32_t i = 0; i < idx->nchunks; i++) {
        const sh_segment_chunk_t *c = &idx->chunks[i];
        if (c->partition == partition && offset >= c->base_offset &&
            offset <= c->last_offset && memcmp(c->topic_id.b, topic_id.b, 16) == 0)
            return c;
    }
    return NULL;
}

sh_err_t sh_segment_chunk_verify(const sh_segment_chunk_t *c, const uint8_t *bytes, size_t len)
{
    if (!bytes || len != c->byte_length)
        return SH_E_CORRUPT;
    return sh_crc32c(0, bytes, len) == c->crc ? SH_OK : SH_E_CORRUPT;
}

sh_err_t sh_segment_chunk_find(const uint8_t *chunk, size_t len, int64_t target, size_t *pos)
{
    size_t p = 0;
    while (p < len) {
        *pos = p;
        sh_reader_t r;
        sh_reader_init(&r, chunk + p, len - p);
        int64_t base = sh_wire_get_i64(&r);
        int32_t blen = sh_wire_get_i32(&r);
        sh_reader_take(&r, SH_SEG_RB_LAST_OFFSET_DELTA - SH_SEG_RB_LOG_OVERHEAD);
        int32_t delta = sh_wire_get_i32(&r);
        if (r.err || blen < SH_SEG_RB_MIN_SIZE - SH_SEG_RB_LOG_OVERHEAD ||
            (size_t)blen > len - p - SH_SEG_RB_LOG_OVERHEAD || base < 0 || delta < 0 ||
            base > INT64_MAX - delta)
            return SH_E_CORRUPT;
        if (base + delta >= target)
            return SH_OK;
        p += (size_t)blen + SH_SEG_RB_LOG_OVERHEAD;
    }
    *pos = len;
    return SH_E_NOTFOUND;
}

/* ------------------------------------------------------------ object keys */

#define SH_SEG_KEY_BODY_FMT "seg/%08x-%016llx-%016llx"
#define SH_SEG_KEY_BODY_LEN (4 + 8 + 1 + 16 + 1 + 16)

static unsigned sh_seg_key_hash(const char *body, size_t len)
{
    return sh_crc32c(0, body, len) & 0xff;
}

int sh_segment_key_format(char *buf, size_t cap, int32_t writer_id, int64_t writer_epoch,
                          uint64_t seq)
{
    if (writer_id < 0 || writer_epoch < 0 || cap < 3 + SH_SEG_KEY_BODY_LEN + 1)
        return -1;
    char body[SH_SEG_KEY_BODY_LEN + 1];
    snprintf(body, sizeof(body), SH_SEG_KEY_BODY_FMT, (unsigned)writer_id,
             (unsigned long long)writer_epoch, (unsigned long long)seq);
    return snprintf(buf, cap, "%02x/%s", sh_seg_key_hash(body, SH_SEG_KEY_BODY_LEN), body);
}

static int sh_seg_hex_field(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        unsigned d;
        if (ch >= '0' && ch <= '9')
            d = (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f')
            d = (unsigned)(ch - 'a' + 10);
        else
            return -1; /* upper case too: one spelling per key */
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

sh_err_t sh_segment_key_parse(const char *key, int32_t *writer_id, int64_t *writer_epoch,
                              uint64_t *seq)
{
    if (!key || strlen(key) != 3 + SH_SEG_KEY_BODY_LEN || key[2] != '/')
        return SH_E_INVAL;
    const char *body = key + 3;
    uint64_t hh, w, e, s;
    if (memcmp(body, "seg/", 4) != 0 || body[12] != '-' || body[29] != '-' ||
        sh_seg_hex_field(key, 2, &hh) || sh_seg_hex_field(body + 4, 8, &w) ||
        sh_seg_hex_field(body + 13, 16, &e) || sh_seg_hex_field(body + 30, 16, &s))
        return SH_E_INVAL;
    if (hh != sh_seg_key_hash(body, SH_SEG_KEY_BODY_LEN) || w > INT32_MAX || e > INT64_MAX)
        return SH_E_INVAL;
    if (writer_id)
        *writer_id = (int32_t)w;
    if (writer_epoch)
        *writer_epoch = (int64_t)e;
    if (seq)
        *seq = s;
    return SH_OK;
}
