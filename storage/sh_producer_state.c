/*
 * sh_producer_state.c - per-partition producer state (see
 * sh_producer_state.h for the rules).
 *
 * Structure: an open-addressing hash table of entries keyed by producer
 * id, linear probing, kept at most half full; deletion shifts the
 * following cluster back instead of leaving tombstones, so lookups never
 * degrade after many expiries. Entries hold their five batches inline:
 * one allocation per table, none per producer.
 *
 * Snapshot layout (version 1, big-endian, then lowercase hex so both
 * metadata backends store it as plain text):
 *   u8 version=1, u32 count, then per producer:
 *   i64 producer_id, i16 epoch, i64 last_timestamp, i64 last_update_ms,
 *   u8 nbatches, nbatches x (i32 first_seq, i32 last_seq,
 *   i64 first_offset, i64 last_offset, i64 max_timestamp)
 *
 * Thread: whoever owns the state (the partition log's loop thread).
 * Ownership: the state owns its table; encode's text and take_touched's
 * array belong to the caller.
 */
#include "storage/sh_producer_state.h"

#include <stdlib.h>
#include <string.h>

#include "common/sh_endian.h"

#define PS_VERSION 1
#define PS_ENTRY_FIXED (8 + 2 + 8 + 8 + 1)
#define PS_BATCH_SIZE (4 + 4 + 8 + 8 + 8)

struct sh_producer_state {
    sh_producer_entry_t *slots;
    size_t cap;               /* power of two, or 0 */
    size_t count;
};

/* ------------------------------------------------------------- table */

static size_t ps_hash(int64_t id, size_t cap)
{
    /* ids are handed out in dense blocks: mix them before masking */
    uint64_t x = (uint64_t)id * 0x9E3779B97F4A7C15ull;
    x ^= x >> 29;
    return (size_t)x & (cap - 1);
}

sh_producer_state_t *sh_producer_state_new(void)
{
    return calloc(1, sizeof(sh_producer_state_t));
}

void sh_producer_state_free(sh_producer_state_t *s)
{
    if (!s)
        return;
    free(s->slots);
    free(s);
}

size_t sh_producer_state_count(const sh_producer_state_t *s)
{
    return s->count;
}

static sh_producer_entry_t *ps_find(const sh_producer_state_t *s, int64_t id)
{
    if (!s->cap)
        return NULL;
    for (size_t i = ps_hash(id, s->cap);; i = (i + 1) & (s->cap - 1)) {
        sh_producer_entry_t *e = &s->slots[i];
        if (e->producer_id == id)
            return e;
        if (e->producer_id < 0)
            return NULL;
    }
}

static sh_err_t ps_grow(sh_producer_state_t *s)
{
    size_t cap = s->cap ? s->cap * 2 : 16;
    sh_producer_entry_t *n = malloc(cap * sizeof(*n));
    if (!n)
        return SH_E_NOMEM;
    for (size_t i = 0; i < cap; i++)
        n[i].producer_id = -1;
    for (size_t i = 0; i < s->cap; i++) {
        const sh_producer_entry_t *e = &s->slots[i];
        if (e->producer_id < 0)
            continue;
        size_t j = ps_hash(e->producer_id, cap);
        while (n[j].producer_id >= 0)
            j = (j + 1) & (cap - 1);
        n[j] = *e;
    }
    free(s->slots);
    s->slots = n;
    s->cap = cap;
    return SH_OK;
}

/* The entry of id, created empty (epoch -1) if missing. */
static sh_producer_entry_t *ps_upsert(sh_producer_state_t *s, int64_t id)
{
    sh_producer_entry_t *e = ps_find(s, id);
    if (e)
        return e;
    if ((s->count + 1) * 2 > s->cap && ps_grow(s) != SH_OK)
        return NULL;
    size_t i = ps_hash(id, s->cap);
    while (s->slots[i].producer_id >= 0)
        i = (i + 1) & (s->cap - 1);
    e = &s->slots[i];
    memset(e, 0, sizeof(*e));
    e->producer_id = id;
    e->epoch = -1;
    e->last_timestamp = -1;
    s->count++;
    return e;
}

/* Backward-shift deletion: move later members of the cluster into the
 * hole when their home slot lies at or before it. */
static void ps_remove_at(sh_producer_state_t *s, size_t hole)
{
    size_t mask = s->cap - 1;
    size_t j = hole;
    for (;;) {
        j = (j + 1) & mask;
        sh_producer_entry_t *e = &s->slots[j];
        if (e->producer_id < 0)
            break;
        size_t home = ps_hash(e->producer_id, s->cap);
        /* e may fill the hole if home is not cyclically in (hole, j] */
        bool between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (between)
            continue;
        s->slots[hole] = *e;
        hole = j;
    }
    s->slots[hole].producer_id = -1;
    s->count--;
}

/* ------------------------------------------------------------- rules */

int32_t sh_producer_seq_add(int32_t seq, int32_t n)
{
    int64_t v = (int64_t)seq + n;
    if (v > INT32_MAX)
        v -= (int64_t)INT32_MAX + 1;
    return (int32_t)v;
}

static bool in_sequence(int32_t last, int32_t next)
{
    return (int64_t)next == (int64_t)last + 1 || (next == 0 && last == INT32_MAX);
}

sh_err_t sh_producer_state_check(const sh_producer_state_t *s, const sh_producer_batch_desc_t *d,
                                 int16_t epoch_floor, bool *dup, sh_producer_batch_t *orig,
                                 const char **reason)
{
    *dup = false;
    *reason = NULL;
    if (d->epoch < 0) {
        *reason = "idempotent batch has a negative producer epoch";
        return SH_KERR_INVALID_PRODUCER_EPOCH;
    }
    if (d->epoch < epoch_floor) {
        *reason = "producer epoch is older than the producer id's current epoch (fenced)";
        return SH_KERR_INVALID_PRODUCER_EPOCH;
    }
    int32_t last_seq = sh_producer_seq_add(d->first_seq, d->last_offset_delta);
    const sh_producer_entry_t *e = ps_find(s, d->producer_id);
    if (!e) {
        /* Kafka 2.5+ accepts any sequence here; we keep the older answer
         * because our state survives restarts, so "unknown" means the
         * producer expired, and accepting a retry then could store it
         * twice (docs/idempotence.md). */
        if (d->first_seq != 0) {
            *reason = "no state for this producer id in the partition (expired or never "
                      "written) and the batch does not start at sequence 0";
            return SH_KERR_UNKNOWN_PRODUCER_ID;
        }
        return SH_OK;
    }
    if (d->epoch < e->epoch) {
        *reason = "producer epoch is older than the last one this partition saw (fenced)";
        return SH_KERR_INVALID_PRODUCER_EPOCH;
    }
    if (d->epoch > e->epoch) {
        if (d->first_seq != 0) {
            *reason = "a new producer epoch must start at sequence 0";
            return SH_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
        }
        return SH_OK;
    }
    for (int i = 0; i < e->nbatches; i++) {
        const sh_producer_batch_t *b = &e->batches[i];
        if (b->first_seq == d->first_seq && b->last_seq == last_seq) {
            *dup = true;
            *orig = *b;
            return SH_OK;
        }
    }
    int32_t last = e->nbatches ? e->batches[e->nbatches - 1].last_seq : -1;
    if (!in_sequence(last, d->first_seq)) {
        *reason = "batch sequence does not follow the producer's last sequence in this "
                  "partition";
        return SH_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
    }
    return SH_OK;
}

sh_err_t sh_producer_state_record(sh_producer_state_t *s, const sh_producer_batch_desc_t *d,
                                  int64_t first_offset, int64_t last_offset, int64_t now_ms)
{
    sh_producer_entry_t *e = ps_upsert(s, d->producer_id);
    if (!e)
        return SH_E_NOMEM;
    if (d->epoch < e->epoch)
        return SH_OK; /* a fenced epoch's batch already in the log: not current */
    if (d->epoch > e->epoch) {
        e->epoch = d->epoch;
        e->nbatches = 0;
    } else if (e->nbatches && e->batches[e->nbatches - 1].last_offset >= first_offset) {
        return SH_OK; /* already applied (snapshot and replay overlap) */
    }
    if (e->nbatches == SH_PRODUCER_BATCHES) {
        memmove(&e->batches[0], &e->batches[1],
                (SH_PRODUCER_BATCHES - 1) * sizeof(e->batches[0]));
        e->nbatches--;
    }
    sh_producer_batch_t *b = &e->batches[e->nbatches++];
    b->first_seq = d->first_seq;
    b->last_seq = sh_producer_seq_add(d->first_seq, d->last_offset_delta);
    b->first_offset = first_offset;
    b->last_offset = last_offset;
    b->max_timestamp = d->max_timestamp;
    e->last_timestamp = d->max_timestamp;
    if (now_ms > e->last_update_ms)
        e->last_update_ms = now_ms;
    e->dirty = true;
    return SH_OK;
}

bool sh_producer_state_fence(sh_producer_state_t *s, int64_t producer_id, int16_t epoch)
{
    sh_producer_entry_t *e = ps_find(s, producer_id);
    if (!e || epoch <= e->epoch)
        return false;
    e->epoch = epoch;
    e->nbatches = 0;
    e->dirty = true;
    return true;
}

size_t sh_producer_state_expire(sh_producer_state_t *s, int64_t now_ms, int64_t expiration_ms)
{
    size_t gone = 0;
    if (!s->cap)
        return 0;
    /* Deleting shifts entries backwards, possibly past the scan position
     * and around the end of the table: restart at the hole until it holds
     * a live entry, and scan from a free slot so no cluster straddles the
     * start of the walk. */
    size_t start = 0;
    while (start < s->cap && s->slots[start].producer_id >= 0)
        start++;
    if (start == s->cap)
        start = 0; /* cannot happen: the table is at most half full */
    for (size_t k = 0; k < s->cap; k++) {
        size_t i = (start + k) & (s->cap - 1);
        while (s->slots[i].producer_id >= 0 &&
               now_ms - s->slots[i].last_update_ms >= expiration_ms) {
            ps_remove_at(s, i);
            gone++;
        }
    }
    return gone;
}

const sh_producer_entry_t *sh_producer_state_get(const sh_producer_state_t *s,
                                                 int64_t producer_id)
{
    return ps_find(s, producer_id);
}

const sh_producer_entry_t *sh_producer_state_next(const sh_producer_state_t *s, size_t *it)
{
    while (*it < s->cap) {
        const sh_producer_entry_t *e = &s->slots[(*it)++];
        if (e->producer_id >= 0)
            return e;
    }
    return NULL;
}

sh_err_t sh_producer_state_take_touched(sh_producer_state_t *s, sh_meta_producer_touch_t **out,
                                        size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t k = 0;
    for (size_t i = 0; i < s->cap; i++)
        if (s->slots[i].producer_id >= 0 && s->slots[i].dirty)
            k++;
    if (k == 0)
        return SH_OK;
    sh_meta_producer_touch_t *t = calloc(k, sizeof(*t));
    if (!t)
        return SH_E_NOMEM;
    size_t j = 0;
    for (size_t i = 0; i < s->cap; i++) {
        sh_producer_entry_t *e = &s->slots[i];
        if (e->producer_id < 0 || !e->dirty)
            continue;
        t[j].producer_id = e->producer_id;
        t[j].epoch = e->epoch;
        t[j].seen_ms = e->last_update_ms;
        t[j].recorded_epoch = -1;
        e->dirty = false;
        j++;
    }
    *out = t;
    *n = j;
    return SH_OK;
}

void sh_producer_state_retouch(sh_producer_state_t *s, const sh_meta_producer_touch_t *t,
                               size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sh_producer_entry_t *e = ps_find(s, t[i].producer_id);
        if (e)
            e->dirty = true;
    }
}

/* ---------------------------------------------------------- snapshots */

static const char ps_hex[] = "0123456789abcdef";

sh_err_t sh_producer_state_encode(const sh_producer_state_t *s, int64_t upto, char **text,
                                  size_t *len)
{
    *text = NULL;
    *len = 0;
    size_t size = 1 + 4 + s->count * (PS_ENTRY_FIXED + SH_PRODUCER_BATCHES * PS_BATCH_SIZE);
    uint8_t *bin = malloc(size);
    char *hex = bin ? malloc(size * 2 + 1) : NULL;
    if (!hex) {
        free(bin);
        return SH_E_NOMEM;
    }
    uint8_t *p = bin;
    *p++ = PS_VERSION;
    sh_store_be32(p, (uint32_t)s->count);
    p += 4;
    for (size_t i = 0; i < s->cap; i++) {
        const sh_producer_entry_t *e = &s->slots[i];
        if (e->producer_id < 0)
            continue;
        uint8_t nb = 0;
        while (nb < e->nbatches && e->batches[nb].last_offset < upto)
            nb++;
        sh_store_be64(p, (uint64_t)e->producer_id);
        sh_store_be16(p + 8, (uint16_t)e->epoch);
        sh_store_be64(p + 10, (uint64_t)(nb ? e->batches[nb - 1].max_timestamp : -1));
        sh_store_be64(p + 18, (uint64_t)e->last_update_ms);
        p[26] = nb;
        p += PS_ENTRY_FIXED;
        for (uint8_t k = 0; k < nb; k++) {
            const sh_producer_batch_t *b = &e->batches[k];
            sh_store_be32(p, (uint32_t)b->first_seq);
            sh_store_be32(p + 4, (uint32_t)b->last_seq);
            sh_store_be64(p + 8, (uint64_t)b->first_offset);
            sh_store_be64(p + 16, (uint64_t)b->last_offset);
            sh_store_be64(p + 24, (uint64_t)b->max_timestamp);
            p += PS_BATCH_SIZE;
        }
    }
    size_t used = (size_t)(p - bin);
    for (size_t i = 0; i < used; i++) {
        hex[2 * i] = ps_hex[bin[i] >> 4];
        hex[2 * i + 1] = ps_hex[bin[i] & 15];
    }
    hex[2 * used] = '\0';
    free(bin);
    *text = hex;
    *len = 2 * used;
    return SH_OK;
}

static int ps_unhex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static void ps_clear(sh_producer_state_t *s)
{
    for (size_t i = 0; i < s->cap; i++)
        s->slots[i].producer_id = -1;
    s->count = 0;
}

sh_err_t sh_producer_state_decode(sh_producer_state_t *s, const char *text, size_t len)
{
    ps_clear(s);
    if (!text || len % 2 || len < 10)
        return SH_E_CORRUPT;
    size_t n = len / 2;
    uint8_t *bin = malloc(n);
    if (!bin)
        return SH_E_NOMEM;
    sh_err_t err = SH_E_CORRUPT;
    for (size_t i = 0; i < n; i++) {
        int hi = ps_unhex(text[2 * i]), lo = ps_unhex(text[2 * i + 1]);
        if (hi < 0 || lo < 0)
            goto fail;
        bin[i] = (uint8_t)(hi << 4 | lo);
    }
    const uint8_t *p = bin, *end = bin + n;
    if (*p++ != PS_VERSION)
        goto fail;
    uint32_t count = sh_load_be32(p);
    p += 4;
    /* every entry takes at least PS_ENTRY_FIXED bytes: bound the count
     * before anything is sized from it */
    if (count > (size_t)(end - p) / PS_ENTRY_FIXED)
        goto fail;
    for (uint32_t k = 0; k < count; k++) {
        if ((size_t)(end - p) < PS_ENTRY_FIXED)
            goto fail;
        int64_t id = (int64_t)sh_load_be64(p);
        uint8_t nb = p[26];
        if (id < 0 || nb > SH_PRODUCER_BATCHES || ps_find(s, id) ||
            (size_t)(end - p) < PS_ENTRY_FIXED + (size_t)nb * PS_BATCH_SIZE)
            goto fail;
        sh_producer_entry_t *e = ps_upsert(s, id);
        if (!e) {
            err = SH_E_NOMEM;
            goto fail;
        }
        e->epoch = (int16_t)sh_load_be16(p + 8);
        e->last_timestamp = (int64_t)sh_load_be64(p + 10);
        e->last_update_ms = (int64_t)sh_load_be64(p + 18);
        e->nbatches = nb;
        e->dirty = false;
        p += PS_ENTRY_FIXED;
        for (uint8_t b = 0; b < nb; b++) {
            sh_producer_batch_t *bt = &e->batches[b];
            bt->first_seq = (int32_t)sh_load_be32(p);
            bt->last_seq = (int32_t)sh_load_be32(p + 4);
            bt->first_offset = (int64_t)sh_load_be64(p + 8);
            bt->last_offset = (int64_t)sh_load_be64(p + 16);
            bt->max_timestamp = (int64_t)sh_load_be64(p + 24);
            if (bt->last_offset < bt->first_offset ||
                (b > 0 && bt->first_offset <= e->batches[b - 1].last_offset))
                goto fail;
            p += PS_BATCH_SIZE;
        }
    }
    if (p != end)
        goto fail;
    free(bin);
    return SH_OK;
fail:
    free(bin);
    ps_clear(s);
    return err;
}
