/*
 * fuzz_storage_producer_state.c - the producer state under arbitrary input:
 *  - mode 0 (first byte even): the rest is snapshot text from the metadata
 *    store. decode must refuse or accept without reading out of bounds;
 *    what it accepts must encode and decode back to the same producers
 *    (epochs, batches), and the state stays consistent (count = entries
 *    iterated = entries found by id, at most five batches each).
 *  - mode 1 (first byte odd): the rest is a script of operations (check,
 *    record, fence, expire) on a small set of producer ids with arbitrary
 *    epochs and sequences, including wrap-around values; after every step
 *    the same consistency holds, a recorded batch is a duplicate of itself
 *    right after, and nothing the check refuses changes the state.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/sh_producer_state.h"

#define FZ_CHECK(c)      \
    do {                 \
        if (!(c))        \
            abort();     \
    } while (0)

static void fz_consistent(const sh_producer_state_t *s)
{
    size_t it = 0, n = 0;
    const sh_producer_entry_t *e;
    while ((e = sh_producer_state_next(s, &it))) {
        n++;
        FZ_CHECK(e->nbatches <= SH_PRODUCER_BATCHES);
        FZ_CHECK(sh_producer_state_get(s, e->producer_id) == e);
        for (int i = 1; i < e->nbatches; i++)
            FZ_CHECK(e->batches[i].first_offset > e->batches[i - 1].last_offset);
    }
    FZ_CHECK(n == sh_producer_state_count(s));
}

static void fz_same(const sh_producer_state_t *a, const sh_producer_state_t *b)
{
    FZ_CHECK(sh_producer_state_count(a) == sh_producer_state_count(b));
    size_t it = 0;
    const sh_producer_entry_t *e;
    while ((e = sh_producer_state_next(a, &it))) {
        const sh_producer_entry_t *f = sh_producer_state_get(b, e->producer_id);
        FZ_CHECK(f && f->epoch == e->epoch && f->nbatches == e->nbatches);
        FZ_CHECK(memcmp(f->batches, e->batches, sizeof(e->batches[0]) * e->nbatches) == 0);
    }
}

static void fz_snapshot(const uint8_t *data, size_t size)
{
    sh_producer_state_t *s = sh_producer_state_new();
    sh_producer_state_t *r = sh_producer_state_new();
    if (!s || !r)
        goto out;
    if (sh_producer_state_decode(s, (const char *)data, size) != SH_OK) {
        FZ_CHECK(sh_producer_state_count(s) == 0);
        goto out;
    }
    fz_consistent(s);
    char *text = NULL;
    size_t len = 0;
    if (sh_producer_state_encode(s, INT64_MAX, &text, &len) != SH_OK)
        goto out;
    FZ_CHECK(sh_producer_state_decode(r, text, len) == SH_OK);
    free(text);
    fz_same(s, r);
    fz_same(r, s);
out:
    sh_producer_state_free(s);
    sh_producer_state_free(r);
}

static int32_t fz_i32(const uint8_t *p)
{
    return (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
}

static void fz_script(const uint8_t *data, size_t size)
{
    sh_producer_state_t *s = sh_producer_state_new();
    if (!s)
        return;
    int64_t next_offset = 0, now = 0;
    /* each step: op, id, epoch, 4 bytes sequence, 1 byte count */
    for (size_t i = 0; i + 8 <= size; i += 8) {
        const uint8_t *p = data + i;
        sh_producer_batch_desc_t d = {
            .producer_id = p[1] % 8,
            .epoch = (int16_t)(p[2] % 4),
            .first_seq = fz_i32(p + 3) & INT32_MAX,
            .last_offset_delta = p[7] % 16,
            .max_timestamp = now,
        };
        if (p[0] & 0x40) /* near the wrap */
            d.first_seq = INT32_MAX - (int32_t)(p[3] % 20);
        now += p[7];
        bool dup = false;
        sh_producer_batch_t orig;
        const char *why = NULL;
        switch (p[0] % 4) {
        case 0: { /* a client batch: check, then record it if accepted */
            size_t before = sh_producer_state_count(s);
            sh_err_t err = sh_producer_state_check(s, &d, -1, &dup, &orig, &why);
            if (err != SH_OK) {
                FZ_CHECK(why != NULL);
                FZ_CHECK(sh_producer_state_count(s) == before);
                break;
            }
            if (dup) {
                FZ_CHECK(orig.first_seq == d.first_seq);
                break;
            }
            int64_t base = next_offset;
            next_offset += d.last_offset_delta + 1;
            if (sh_producer_state_record(s, &d, base, next_offset - 1, now) != SH_OK)
                goto out;
            FZ_CHECK(sh_producer_state_check(s, &d, -1, &dup, &orig, &why) == SH_OK && dup);
            FZ_CHECK(orig.first_offset == base);
            break;
        }
        case 1: { /* a replayed batch: record without a check */
            int64_t base = next_offset;
            next_offset += d.last_offset_delta + 1;
            if (sh_producer_state_record(s, &d, base, next_offset - 1, now) != SH_OK)
                goto out;
            break;
        }
        case 2:
            sh_producer_state_fence(s, d.producer_id, d.epoch);
            break;
        case 3:
            sh_producer_state_expire(s, now, p[7] % 64 + 1);
            break;
        }
        fz_consistent(s);
    }
    /* a snapshot cut halfway keeps every producer, and decodes */
    char *text = NULL;
    size_t len = 0;
    if (sh_producer_state_encode(s, next_offset / 2, &text, &len) == SH_OK) {
        sh_producer_state_t *r = sh_producer_state_new();
        if (r) {
            FZ_CHECK(sh_producer_state_decode(r, text, len) == SH_OK);
            fz_consistent(r);
            FZ_CHECK(sh_producer_state_count(r) == sh_producer_state_count(s));
            sh_producer_state_free(r);
        }
        free(text);
    }
out:
    sh_producer_state_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] & 1)
        fz_script(data + 1, size - 1);
    else
        fz_snapshot(data + 1, size - 1);
    return 0;
}
