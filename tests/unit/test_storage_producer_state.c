/*
 * test_storage_producer_state.c - the idempotent-producer sequence rules of
 * one partition: first batch, in-order appends, a duplicate of each of the
 * last five batches answered with its original offsets (and the sixth
 * oldest no longer recognised), gaps, sequence wrap-around at 2^31, epoch
 * bumps and fencing (by a newer epoch in the partition, by the broker's
 * floor, by another broker's record), unknown producers, expiry (with
 * enough producers that deletion reshuffles the table), the touched list
 * and the snapshot text (round trip, the offset cut, corrupt input).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/sh_producer_state.h"

typedef struct {
    sh_producer_state_t *s;
    int64_t next_offset;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    f->s = sh_producer_state_new();
    assert_non_null(f->s);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    sh_producer_state_free(f->s);
    free(f);
    return 0;
}

static sh_producer_batch_desc_t desc(int64_t pid, int16_t epoch, int32_t first, int32_t count)
{
    return (sh_producer_batch_desc_t){.producer_id = pid, .epoch = epoch, .first_seq = first,
                                      .last_offset_delta = count - 1,
                                      .max_timestamp = (int64_t)1000 + first};
}

static sh_err_t check(fx_t *f, int64_t pid, int16_t epoch, int32_t first, int32_t count,
                      int16_t floor, bool *dup, sh_producer_batch_t *orig)
{
    const char *why = NULL;
    sh_producer_batch_desc_t d = desc(pid, epoch, first, count);
    sh_err_t err = sh_producer_state_check(f->s, &d, floor, dup, orig, &why);
    if (err != SH_OK)
        assert_non_null(why);
    return err;
}

/* Check, expect "append", record at the next offsets; returns the base. */
static int64_t append(fx_t *f, int64_t pid, int16_t epoch, int32_t first, int32_t count,
                      int64_t now)
{
    bool dup = true;
    sh_producer_batch_t orig;
    assert_int_equal(check(f, pid, epoch, first, count, -1, &dup, &orig), SH_OK);
    assert_false(dup);
    sh_producer_batch_desc_t d = desc(pid, epoch, first, count);
    int64_t base = f->next_offset;
    assert_int_equal(sh_producer_state_record(f->s, &d, base, base + count - 1, now), SH_OK);
    f->next_offset += count;
    return base;
}

static void expect_dup(fx_t *f, int64_t pid, int16_t epoch, int32_t first, int32_t count,
                       int64_t base)
{
    bool dup = false;
    sh_producer_batch_t orig;
    assert_int_equal(check(f, pid, epoch, first, count, -1, &dup, &orig), SH_OK);
    assert_true(dup);
    assert_int_equal(orig.first_offset, base);
    assert_int_equal(orig.last_offset, base + count - 1);
    assert_int_equal(orig.first_seq, first);
}

static void test_seq_add(void **state)
{
    (void)state;
    assert_int_equal(sh_producer_seq_add(0, 0), 0);
    assert_int_equal(sh_producer_seq_add(5, 4), 9);
    assert_int_equal(sh_producer_seq_add(INT32_MAX, 0), INT32_MAX);
    assert_int_equal(sh_producer_seq_add(INT32_MAX, 1), 0);
    assert_int_equal(sh_producer_seq_add(INT32_MAX - 1, 3), 1);
    assert_int_equal(sh_producer_seq_add(INT32_MAX - 9, INT32_MAX), INT32_MAX - 10);
}

static void test_first_batch_and_unknown(void **state)
{
    fx_t *f = *state;
    bool dup;
    sh_producer_batch_t orig;
    /* a producer the partition never saw must start at 0 */
    assert_int_equal(check(f, 7, 0, 5, 1, -1, &dup, &orig), SH_KERR_UNKNOWN_PRODUCER_ID);
    assert_int_equal(append(f, 7, 0, 0, 3, 1), 0);
    assert_int_equal(append(f, 7, 0, 3, 2, 1), 3);
    const sh_producer_entry_t *e = sh_producer_state_get(f->s, 7);
    assert_non_null(e);
    assert_int_equal(e->epoch, 0);
    assert_int_equal(e->nbatches, 2);
    assert_int_equal(e->batches[1].last_seq, 4);
    assert_int_equal(e->last_timestamp, 1003);
    assert_int_equal(sh_producer_state_count(f->s), 1);
    assert_null(sh_producer_state_get(f->s, 8));
    /* a negative epoch with a producer id is refused outright */
    assert_int_equal(check(f, 9, -1, 0, 1, -1, &dup, &orig), SH_KERR_INVALID_PRODUCER_EPOCH);
}

static void test_duplicates_of_last_five(void **state)
{
    fx_t *f = *state;
    int64_t base[7];
    for (int i = 0; i < 7; i++)
        base[i] = append(f, 42, 3, i * 10, 10, 1);
    /* batches 2..6 are the last five: each is a duplicate of itself */
    for (int i = 2; i < 7; i++)
        expect_dup(f, 42, 3, i * 10, 10, base[i]);
    /* batch 1 fell out: its sequences are old, so it is out of order,
     * never silently written again */
    bool dup;
    sh_producer_batch_t orig;
    assert_int_equal(check(f, 42, 3, 10, 10, -1, &dup, &orig),
                     SH_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    /* same first sequence but another length: not the same batch */
    assert_int_equal(check(f, 42, 3, 60, 5, -1, &dup, &orig),
                     SH_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    /* a duplicate under another epoch is no duplicate: older is fenced */
    assert_int_equal(check(f, 42, 2, 60, 10, -1, &dup, &orig),
                     SH_KERR_INVALID_PRODUCER_EPOCH);
    /* and the next batch still goes in after all that */
    assert_int_equal(append(f, 42, 3, 70, 1, 1), 70);
    expect_dup(f, 42, 3, 70, 1, 70);
}

static void test_gap(void **state)
{
    fx_t *f = *state;
    bool dup;
    sh_producer_batch_t orig;
    append(f, 1, 0, 0, 5, 1);
    assert_int_equal(check(f, 1, 0, 6, 1, -1, &dup, &orig),
                     SH_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_int_equal(check(f, 1, 0, 4, 2, -1, &dup, &orig),
                     SH_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    /* a refused batch changes nothing: 5 is still next */
    append(f, 1, 0, 5, 1, 1);
}

static void test_wrap_around(void **state)
{
    fx_t *f = *state;
    bool dup;
    sh_producer_batch_t orig;
    /* get near the end of the sequence space: start a fresh epoch at 0
     * and record a batch that ends just before INT32_MAX (records may be
     * recorded without a check: that is what replay does) */
    append(f, 5, 0, 0, 1, 1);
    sh_producer_batch_desc_t d = desc(5, 0, 1, INT32_MAX - 2); /* 1 .. INT32_MAX-2 */
    assert_int_equal(sh_producer_state_record(f->s, &d, 1, (int64_t)INT32_MAX - 2, 1), SH_OK);
    f->next_offset = 1 + (int64_t)INT32_MAX - 2;
    assert_int_equal(sh_producer_state_get(f->s, 5)->batches[1].last_seq, INT32_MAX - 2);
    /* INT32_MAX-1 .. 1 spans the wrap */
    int64_t b = append(f, 5, 0, INT32_MAX - 1, 4, 1);
    assert_int_equal(sh_producer_state_get(f->s, 5)->batches[2].last_seq, 1);
    expect_dup(f, 5, 0, INT32_MAX - 1, 4, b);
    assert_int_equal(check(f, 5, 0, 3, 1, -1, &dup, &orig),
                     SH_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    append(f, 5, 0, 2, 1, 1);

    /* a batch ending exactly at INT32_MAX is followed by 0 (the first
     * batch is 0..4, so 0..0 is not mistaken for a retry of it) */
    int64_t b6 = append(f, 6, 0, 0, 5, 1);
    d = desc(6, 0, 5, INT32_MAX - 4);
    assert_int_equal(sh_producer_state_record(f->s, &d, f->next_offset,
                                              f->next_offset + INT32_MAX - 5, 1),
                     SH_OK);
    f->next_offset += INT32_MAX - 4;
    assert_int_equal(sh_producer_state_get(f->s, 6)->batches[1].last_seq, INT32_MAX);
    assert_int_equal(check(f, 6, 0, 1, 1, -1, &dup, &orig),
                     SH_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    append(f, 6, 0, 0, 1, 1);
    expect_dup(f, 6, 0, 0, 5, b6);
}

static void test_epoch_bump_and_fencing(void **state)
{
    fx_t *f = *state;
    bool dup;
    sh_producer_batch_t orig;
    append(f, 11, 0, 0, 2, 1);
    append(f, 11, 0, 2, 2, 1);
    /* a new epoch must start at 0 */
    assert_int_equal(check(f, 11, 1, 4, 1, -1, &dup, &orig),
                     SH_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    append(f, 11, 1, 0, 3, 1);
    const sh_producer_entry_t *e = sh_producer_state_get(f->s, 11);
    assert_int_equal(e->epoch, 1);
    assert_int_equal(e->nbatches, 1);
    /* the old epoch is fenced, even a retry of one of its batches */
    assert_int_equal(check(f, 11, 0, 4, 1, -1, &dup, &orig), SH_KERR_INVALID_PRODUCER_EPOCH);
    assert_int_equal(check(f, 11, 0, 2, 2, -1, &dup, &orig), SH_KERR_INVALID_PRODUCER_EPOCH);

    /* the broker's floor (an InitProducerId bump it made) fences an epoch
     * this partition has not seen yet */
    assert_int_equal(check(f, 11, 1, 3, 1, 2, &dup, &orig), SH_KERR_INVALID_PRODUCER_EPOCH);
    assert_int_equal(check(f, 99, 0, 0, 1, 1, &dup, &orig), SH_KERR_INVALID_PRODUCER_EPOCH);
    assert_int_equal(check(f, 11, 2, 0, 1, 2, &dup, &orig), SH_OK);

    /* another broker's record says epoch 4: fence it here */
    assert_false(sh_producer_state_fence(f->s, 11, 1)); /* not newer */
    assert_false(sh_producer_state_fence(f->s, 12, 9)); /* unknown: left alone */
    assert_null(sh_producer_state_get(f->s, 12));
    assert_true(sh_producer_state_fence(f->s, 11, 4));
    assert_int_equal(check(f, 11, 1, 3, 1, -1, &dup, &orig), SH_KERR_INVALID_PRODUCER_EPOCH);
    assert_int_equal(check(f, 11, 3, 0, 1, -1, &dup, &orig), SH_KERR_INVALID_PRODUCER_EPOCH);
    /* epoch 4 itself starts at 0 (no batches yet under it) */
    assert_int_equal(check(f, 11, 4, 1, 1, -1, &dup, &orig),
                     SH_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    append(f, 11, 4, 0, 1, 1);
    /* replaying a batch of a fenced epoch (already in the log) is ignored */
    sh_producer_batch_desc_t d = desc(11, 1, 3, 1);
    assert_int_equal(sh_producer_state_record(f->s, &d, 1000, 1000, 1), SH_OK);
    e = sh_producer_state_get(f->s, 11);
    assert_int_equal(e->epoch, 4);
    assert_int_equal(e->nbatches, 1);
}

static void test_record_ignores_replayed_ranges(void **state)
{
    fx_t *f = *state;
    int64_t b0 = append(f, 3, 0, 0, 4, 1);
    append(f, 3, 0, 4, 4, 1);
    /* replay of a batch the state already covers: nothing changes */
    sh_producer_batch_desc_t d = desc(3, 0, 0, 4);
    assert_int_equal(sh_producer_state_record(f->s, &d, b0, b0 + 3, 1), SH_OK);
    const sh_producer_entry_t *e = sh_producer_state_get(f->s, 3);
    assert_int_equal(e->nbatches, 2);
    assert_int_equal(e->batches[1].first_seq, 4);
}

static void test_expiry(void **state)
{
    fx_t *f = *state;
    /* 1000 producers, every third old: enough for the table to grow and
     * for deletions to shift clusters around */
    for (int64_t id = 0; id < 1000; id++)
        append(f, id * 7 + 1, 0, 0, 1, id % 3 == 0 ? 100 : 5000);
    assert_int_equal(sh_producer_state_count(f->s), 1000);
    assert_int_equal(sh_producer_state_expire(f->s, 5000, 10000), 0);
    size_t gone = sh_producer_state_expire(f->s, 10100, 10000);
    assert_int_equal(gone, 334);
    assert_int_equal(sh_producer_state_count(f->s), 666);
    for (int64_t id = 0; id < 1000; id++) {
        const sh_producer_entry_t *e = sh_producer_state_get(f->s, id * 7 + 1);
        if (id % 3 == 0) {
            assert_null(e);
        } else {
            assert_non_null(e);
            assert_int_equal(e->producer_id, id * 7 + 1);
        }
    }
    size_t it = 0, seen = 0;
    while (sh_producer_state_next(f->s, &it))
        seen++;
    assert_int_equal(seen, 666);
    /* an expired producer is unknown again: only sequence 0 is taken */
    bool dup;
    sh_producer_batch_t orig;
    assert_int_equal(check(f, 1, 0, 1, 1, -1, &dup, &orig), SH_KERR_UNKNOWN_PRODUCER_ID);
    assert_int_equal(check(f, 1, 0, 0, 1, -1, &dup, &orig), SH_OK);
    /* everything goes at once */
    assert_int_equal(sh_producer_state_expire(f->s, 1000000, 10000), 666);
    assert_int_equal(sh_producer_state_count(f->s), 0);
    it = 0;
    assert_null(sh_producer_state_next(f->s, &it));
}

static void test_touched(void **state)
{
    fx_t *f = *state;
    sh_meta_producer_touch_t *t;
    size_t n;
    assert_int_equal(sh_producer_state_take_touched(f->s, &t, &n), SH_OK);
    assert_int_equal(n, 0);
    assert_null(t);
    append(f, 20, 2, 0, 1, 500);
    append(f, 21, 0, 0, 1, 600);
    assert_int_equal(sh_producer_state_take_touched(f->s, &t, &n), SH_OK);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        assert_true(t[i].producer_id == 20 || t[i].producer_id == 21);
        assert_int_equal(t[i].epoch, t[i].producer_id == 20 ? 2 : 0);
        assert_int_equal(t[i].seen_ms, t[i].producer_id == 20 ? 500 : 600);
    }
    free(t);
    assert_int_equal(sh_producer_state_take_touched(f->s, &t, &n), SH_OK);
    assert_int_equal(n, 0);
    append(f, 21, 0, 1, 1, 700);
    assert_int_equal(sh_producer_state_take_touched(f->s, &t, &n), SH_OK);
    assert_int_equal(n, 1);
    assert_int_equal(t[0].producer_id, 21);
    free(t);
}

static void test_snapshot_round_trip(void **state)
{
    fx_t *f = *state;
    int64_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = append(f, 100, 1, i * 2, 2, 50 + i); /* offsets 0..15 */
    append(f, 200, 0, 0, 5, 70);                   /* offsets 16..20 */
    append(f, 300, 4, 0, 1, 80);                   /* offset 21 */

    /* as of offset 12: producer 100 keeps its batches below 12 (of the
     * five it holds: 3..5 at 6..11), 200 and 300 keep their entry but no
     * batch; replaying 12.. brings the rest back */
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(sh_producer_state_encode(f->s, 12, &text, &len), SH_OK);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);

    sh_producer_state_t *r = sh_producer_state_new();
    assert_int_equal(sh_producer_state_decode(r, text, len), SH_OK);
    assert_int_equal(sh_producer_state_count(r), 3);
    const sh_producer_entry_t *e = sh_producer_state_get(r, 100);
    assert_non_null(e);
    assert_int_equal(e->epoch, 1);
    assert_int_equal(e->nbatches, 3);
    assert_int_equal(e->batches[0].first_offset, b[3]);
    assert_int_equal(e->batches[2].last_offset, 11);
    assert_int_equal(e->batches[2].last_seq, 11);
    assert_false(e->dirty);
    e = sh_producer_state_get(r, 200);
    assert_int_equal(e->nbatches, 0);
    assert_int_equal(e->epoch, 0);
    assert_int_equal(sh_producer_state_get(r, 300)->epoch, 4);
    /* replay of offsets 12.. gives back the same answers as the original */
    for (int i = 6; i < 8; i++) {
        sh_producer_batch_desc_t d = desc(100, 1, i * 2, 2);
        assert_int_equal(sh_producer_state_record(r, &d, b[i], b[i] + 1, 1), SH_OK);
    }
    sh_producer_batch_desc_t d2 = desc(200, 0, 0, 5);
    assert_int_equal(sh_producer_state_record(r, &d2, 16, 20, 1), SH_OK);
    const sh_producer_entry_t *x = sh_producer_state_get(f->s, 100);
    e = sh_producer_state_get(r, 100);
    assert_int_equal(e->nbatches, x->nbatches);
    assert_memory_equal(e->batches, x->batches, sizeof(x->batches[0]) * x->nbatches);
    free(text);

    /* everything, then nothing */
    assert_int_equal(sh_producer_state_encode(f->s, INT64_MAX, &text, &len), SH_OK);
    assert_int_equal(sh_producer_state_decode(r, text, len), SH_OK);
    assert_int_equal(sh_producer_state_get(r, 100)->nbatches, 5);
    assert_int_equal(sh_producer_state_get(r, 300)->nbatches, 1);
    free(text);
    sh_producer_state_t *empty = sh_producer_state_new();
    assert_int_equal(sh_producer_state_encode(empty, 0, &text, &len), SH_OK);
    assert_string_equal(text, "0100000000");
    assert_int_equal(sh_producer_state_decode(r, text, len), SH_OK);
    assert_int_equal(sh_producer_state_count(r), 0);
    free(text);
    sh_producer_state_free(empty);
    sh_producer_state_free(r);
}

static void test_snapshot_corrupt(void **state)
{
    fx_t *f = *state;
    append(f, 100, 1, 0, 2, 1);
    append(f, 100, 1, 2, 2, 1);
    char *text;
    size_t len;
    assert_int_equal(sh_producer_state_encode(f->s, INT64_MAX, &text, &len), SH_OK);
    sh_producer_state_t *r = sh_producer_state_new();
    char *bad = malloc(len + 3);

    assert_int_equal(sh_producer_state_decode(r, text, len - 1), SH_E_CORRUPT); /* odd */
    assert_int_equal(sh_producer_state_decode(r, text, len - 2), SH_E_CORRUPT); /* short */
    assert_int_equal(sh_producer_state_decode(r, NULL, 0), SH_E_CORRUPT);
    memcpy(bad, text, len + 1);
    bad[3] = 'G';
    assert_int_equal(sh_producer_state_decode(r, bad, len), SH_E_CORRUPT);
    memcpy(bad, text, len + 1);
    bad[1] = '2'; /* version 2 */
    assert_int_equal(sh_producer_state_decode(r, bad, len), SH_E_CORRUPT);
    memcpy(bad, text, len + 1);
    memcpy(bad + 2, "7fffffff", 8); /* count far beyond the bytes */
    assert_int_equal(sh_producer_state_decode(r, bad, len), SH_E_CORRUPT);
    memcpy(bad, text, len + 1);
    bad[2 * 31] = '0';
    bad[2 * 31 + 1] = '9'; /* nbatches (byte 5 + 26) = 9 */
    assert_int_equal(sh_producer_state_decode(r, bad, len), SH_E_CORRUPT);
    memcpy(bad, text, len + 1);
    memcpy(bad + len, "00", 3); /* trailing byte */
    assert_int_equal(sh_producer_state_decode(r, bad, len + 2), SH_E_CORRUPT);
    /* a failed decode leaves an empty state, and a good one still works */
    assert_int_equal(sh_producer_state_count(r), 0);
    assert_int_equal(sh_producer_state_decode(r, text, len), SH_OK);
    assert_int_equal(sh_producer_state_get(r, 100)->nbatches, 2);
    free(bad);
    free(text);
    sh_producer_state_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_seq_add),
        T(test_first_batch_and_unknown),
        T(test_duplicates_of_last_five),
        T(test_gap),
        T(test_wrap_around),
        T(test_epoch_bump_and_fencing),
        T(test_record_ignores_replayed_ranges),
        T(test_expiry),
        T(test_touched),
        T(test_snapshot_round_trip),
        T(test_snapshot_corrupt),
#undef T
    };
    return cmocka_run_group_tests_name("storage_producer_state", tests, NULL, NULL);
}
