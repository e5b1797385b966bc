/*
 * test_storage_producer_plog.c - idempotent producers through the partition
 * log, against a real WAL, a real SQLite metadata store and a file://
 * object store in a temporary directory:
 *   - a retry of a batch that is still waiting for its fsync (in flight)
 *     and one after it is durable are both answered with the original
 *     offsets, and the log holds the batch once;
 *   - the same while batches wait for WAL space (parked): the duplicate is
 *     judged when its turn comes, after the original got its offset;
 *   - durability=object: a duplicate is answered only once the original is
 *     committed;
 *   - restart from the WAL alone, and from a snapshot written with an
 *     upload plus the WAL above it: the last five batches are still
 *     recognised, gaps still refused, sequences continue;
 *   - fencing: a snapshot write tells the partition that another broker
 *     bumped the epoch; a reopened partition checks the store; the
 *     broker's floor hook; expiry.
 * Waiting is bounded by a no-progress guard, never a timing assertion.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sh_clock.h"
#include "meta/sh_meta.h"
#include "protocol/sh_record_batch.h"
#include "storage/sh_objstore.h"
#include "storage/sh_plog.h"
#include "storage/sh_producer_state.h"
#include "storage/sh_uploader.h"
#include "test_storage_util.h"
#include "wal/sh_wal.h"

typedef struct h {
    char *dir;
    sh_meta_t *meta;
    sh_wal_mgr_t *wal;
    sh_wal_opts_t wal_opts;
    sh_objstore_t *store;
    sh_uploader_t *up;
    sh_uuid_t topic;
    int32_t epoch;
    int16_t floor;        /* what the floor hook answers for producer 77 */
} h_t;

static void h_wal_open(h_t *h)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/wal", h->dir);
    assert_int_equal(sh_wal_mgr_new(path, &h->wal_opts, &h->wal), SH_OK);
}

static void h_uploader_new(h_t *h)
{
    sh_uploader_opts_t o = {0};
    o.store = h->store;
    o.meta = h->meta;
    o.writer_id = 1;
    o.writer_epoch = sh_clock_wall_ms();
    o.upload_bytes = 1u << 30; /* explicit flushes, or WAL-full pressure */
    o.interval_ms = 1000000;
    o.backoff_min_ms = 1;
    o.backoff_max_ms = 5;
    h->up = sh_uploader_new(&o);
    assert_non_null(h->up);
}

static h_t *h_new(uint64_t wal_max)
{
    h_t *h = calloc(1, sizeof(*h));
    h->dir = tsu_tempdir();
    h->floor = -1;
    assert_non_null(h->dir);
    char path[600];
    snprintf(path, sizeof(path), "sqlite://%s/meta.db", h->dir);
    assert_int_equal(sh_meta_open(path, &h->meta), SH_OK);
    sh_wal_opts_default(&h->wal_opts);
    h->wal_opts.segment_bytes = 64 * 1024;
    h->wal_opts.max_unreleased_bytes = wal_max ? wal_max : 16u << 20;
    h->wal_opts.pool_segments = 1;
    h_wal_open(h);
    snprintf(path, sizeof(path), "file://%s/objects", h->dir);
    assert_int_equal(sh_objstore_open(path, &h->store), SH_OK);
    h_uploader_new(h);
    int64_t now = sh_clock_wall_ms();
    assert_int_equal(sh_meta_topic_create(h->meta, "idem", 1, NULL, 0, now, &h->topic), SH_OK);
    assert_int_equal(sh_meta_partition_acquire(h->meta, (sh_meta_tp_t){h->topic, 0}, 1, -1,
                                               now, now + 60000, &h->epoch),
                     SH_OK);
    return h;
}

static void h_free(h_t *h)
{
    sh_uploader_free(h->up);
    sh_wal_mgr_free(h->wal);
    sh_objstore_free(h->store);
    sh_meta_close(h->meta);
    tsu_rmrf(h->dir);
    free(h->dir);
    free(h);
}

static void h_pump(h_t *h)
{
    struct pollfd p[3] = {
        {.fd = sh_wal_mgr_fd(h->wal), .events = POLLIN},
        {.fd = sh_objstore_fd(h->store), .events = POLLIN},
        {.fd = sh_meta_fd(h->meta), .events = POLLIN},
    };
    poll(p, 3, 50);
    sh_wal_mgr_drain(h->wal);
    sh_objstore_drive(h->store);
    sh_meta_drain(h->meta);
    sh_uploader_drive(h->up, sh_clock_mono_ms());
}

#define PUMP_UNTIL(h, cond)                                                    \
    do {                                                                       \
        int64_t until_ = sh_clock_mono_ms() + 10000;                           \
        while (!(cond)) {                                                      \
            assert_true(sh_clock_mono_ms() < until_);                          \
            h_pump(h);                                                         \
        }                                                                      \
    } while (0)

static int16_t floor_hook(void *arg, int64_t producer_id)
{
    h_t *h = arg;
    return producer_id == 77 ? h->floor : -1;
}

static sh_plog_t *h_open(h_t *h, const sh_plog_cfg_t *cfg)
{
    sh_plog_opts_t o = {0};
    o.topic_id = h->topic;
    o.partition = 0;
    o.leader_epoch = h->epoch;
    o.topic_name = "idem";
    o.wal = h->wal;
    o.meta = h->meta;
    if (cfg)
        o.cfg = *cfg;
    o.observer = sh_uploader_observer(h->up);
    o.producer_epoch_floor = floor_hook;
    o.producer_arg = h;
    sh_plog_t *p = NULL;
    assert_int_equal(sh_plog_open(&o, &p), SH_OK);
    assert_int_equal(sh_uploader_add(h->up, p), SH_OK);
    return p;
}

static void h_close(h_t *h, sh_plog_t *p)
{
    sh_uploader_remove(h->up, p);
    sh_plog_close(p, false);
}

/* Close everything a restart loses and open the partition again over the
 * same WAL directory and metadata store. */
static sh_plog_t *h_restart(h_t *h, sh_plog_t *p, const sh_plog_cfg_t *cfg)
{
    h_close(h, p);
    sh_uploader_free(h->up);
    sh_wal_mgr_free(h->wal);
    h_wal_open(h);
    h_uploader_new(h);
    return h_open(h, cfg);
}

static void h_flush(h_t *h)
{
    assert_int_equal(sh_uploader_flush(h->up, sh_clock_mono_ms()), SH_OK);
    PUMP_UNTIL(h, !sh_uploader_busy(h->up));
}

/* ------------------------------------------------------------ batches */

/* One idempotent batch of n records in its own block (a request frame). */
typedef struct frame {
    sh_block_t *block;
    sh_slice_t records;
} frame_t;

static frame_t mk_batch(int64_t pid, int16_t epoch, int32_t seq, int n, int pad)
{
    sh_record_spec_t recs[64];
    char vals[64][96];
    assert_true(n <= 64);
    for (int i = 0; i < n; i++) {
        snprintf(vals[i], sizeof(vals[i]), "p%lld-e%d-s%d-%*s", (long long)pid, epoch, seq + i,
                 pad, "x");
        memset(&recs[i], 0, sizeof(recs[i]));
        recs[i].timestamp = 1700000000000 + seq + i;
        recs[i].value = sh_slice_str(vals[i]);
    }
    sh_record_batch_spec_t spec;
    sh_record_batch_spec_init(&spec);
    spec.producer_id = pid;
    spec.producer_epoch = epoch;
    spec.base_sequence = seq;
    sh_outbuf_t ob;
    sh_outbuf_init_heap(&ob);
    assert_int_equal(sh_record_batch_build(&spec, recs, (size_t)n, &ob), SH_OK);
    sh_slice_t s = sh_outbuf_slice(&ob);
    frame_t f;
    f.block = sh_block_new(s.len);
    memcpy(f.block->data, s.ptr, s.len);
    f.records = (sh_slice_t){f.block->data, s.len};
    sh_outbuf_fini(&ob);
    return f;
}

/* A retry is a new request frame holding the same bytes the client sent
 * first (base offset 0 again: the broker patched only its own copy). */
static frame_t copy_of(const frame_t *f)
{
    frame_t c;
    c.block = sh_block_new(f->records.len);
    memcpy(c.block->data, f->records.ptr, f->records.len);
    memset(c.block->data, 0, 8);
    c.records = (sh_slice_t){c.block->data, f->records.len};
    return c;
}

typedef struct done_log {
    int n;
    int64_t base[512];
    sh_err_t err[512];
    bool dup[512];
} done_log_t;

static void on_done(sh_plog_append_t *a)
{
    done_log_t *d = a->arg;
    d->base[d->n] = a->base_offset;
    d->err[d->n] = a->err;
    d->dup[d->n] = a->duplicate;
    d->n++;
}

static sh_err_t append(sh_plog_t *p, sh_plog_append_t *a, frame_t *f, bool wait, done_log_t *d)
{
    memset(a, 0, sizeof(*a));
    a->block = f->block;
    a->records = f->records;
    a->produce_version = 9;
    a->wait_durable = wait;
    a->done = on_done;
    a->arg = d;
    return sh_plog_append_start(p, a);
}

/* Append and wait until durable; returns the base offset. */
static int64_t append_sync(h_t *h, sh_plog_t *p, frame_t *f, bool *dup)
{
    sh_plog_append_t a;
    done_log_t d = {0};
    assert_int_equal(append(p, &a, f, true, &d), SH_OK);
    if (a.pending)
        PUMP_UNTIL(h, d.n == 1);
    assert_int_equal(a.err, SH_OK);
    if (dup)
        *dup = a.duplicate;
    return a.base_offset;
}

static sh_err_t append_err(sh_plog_t *p, frame_t *f)
{
    sh_plog_append_t a;
    done_log_t d = {0};
    sh_err_t err = append(p, &a, f, true, &d);
    assert_false(a.pending && err != SH_OK);
    if (err != SH_OK)
        assert_non_null(a.reason);
    return err;
}

static int64_t log_end(const sh_plog_t *p)
{
    sh_plog_state_t st;
    sh_plog_state(p, &st);
    return st.log_end_offset;
}

/* -------------------------------------------------------------- tests */

static void test_duplicate_in_flight_and_durable(void **state)
{
    (void)state;
    h_t *h = h_new(0);
    sh_plog_t *p = h_open(h, NULL);
    frame_t f0 = mk_batch(500, 0, 0, 3, 1);
    frame_t r1 = copy_of(&f0), r2 = copy_of(&f0);
    sh_plog_append_t a0, a1;
    done_log_t d = {0};
    /* the retry arrives while the first copy still waits for its fsync */
    assert_int_equal(append(p, &a0, &f0, true, &d), SH_OK);
    assert_true(a0.pending);
    assert_int_equal(append(p, &a1, &r1, true, &d), SH_OK);
    assert_true(a1.duplicate);
    assert_true(a1.pending); /* answered only when the original is durable */
    assert_int_equal(a1.base_offset, 0);
    assert_int_equal(log_end(p), 3);
    PUMP_UNTIL(h, d.n == 2);
    assert_int_equal(d.err[0], SH_OK);
    assert_int_equal(d.err[1], SH_OK);
    assert_int_equal(d.base[0], 0);
    assert_int_equal(d.base[1], 0);
    assert_false(d.dup[0]);
    assert_true(d.dup[1]);
    /* a retry after it is durable is answered at once */
    assert_int_equal(append(p, &a1, &r2, true, &d), SH_OK);
    assert_false(a1.pending);
    assert_true(a1.duplicate);
    assert_int_equal(a1.base_offset, 0);
    assert_int_equal(a1.last_offset, 2);
    /* and so is an acks=0 retry */
    frame_t r3 = copy_of(&f0);
    assert_int_equal(append(p, &a1, &r3, false, &d), SH_OK);
    assert_true(a1.duplicate);
    assert_int_equal(a1.base_offset, 0);

    /* the next batches continue; a gap and a re-split batch are refused */
    frame_t f1 = mk_batch(500, 0, 3, 2, 1);
    assert_int_equal(append_sync(h, p, &f1, NULL), 3);
    frame_t gap = mk_batch(500, 0, 6, 1, 1);
    assert_int_equal(append_err(p, &gap), SH_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    frame_t split = mk_batch(500, 0, 0, 2, 1);
    assert_int_equal(append_err(p, &split), SH_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    frame_t unknown = mk_batch(501, 0, 4, 1, 1);
    assert_int_equal(append_err(p, &unknown), SH_KERR_UNKNOWN_PRODUCER_ID);
    assert_int_equal(log_end(p), 5);

    /* the log holds each batch once */
    sh_plog_slice_t sl[8];
    sh_plog_read_t rd;
    assert_int_equal(sh_plog_read(p, 0, 1u << 20, true, sl, 8, &rd), SH_OK);
    assert_int_equal(rd.nslices, 2);

    const sh_producer_entry_t *e = sh_producer_state_get(sh_plog_producers(p), 500);
    assert_non_null(e);
    assert_int_equal(e->nbatches, 2);
    assert_int_equal(e->batches[1].last_seq, 4);

    frame_t *all[] = {&f0, &r1, &r2, &r3, &f1, &gap, &split, &unknown};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        sh_block_unref(all[i]->block);
    h_close(h, p);
    h_free(h);
}

static void test_duplicate_while_parked(void **state)
{
    (void)state;
    /* a small WAL: batches park for space, duplicates among them */
    h_t *h = h_new(128 * 1024);
    sh_plog_t *p = h_open(h, NULL);
    enum { N = 120 };
    frame_t f[N], r[N];
    sh_plog_append_t a[N], b[N];
    done_log_t d = {0};
    int parked = 0, dups_at_once = 0;
    for (int i = 0; i < N; i++) {
        f[i] = mk_batch(600, 0, i * 10, 10, 80);
        r[i] = copy_of(&f[i]);
        assert_int_equal(append(p, &a[i], &f[i], true, &d), SH_OK);
        /* every batch is retried at once (a client that timed out) */
        assert_int_equal(append(p, &b[i], &r[i], true, &d), SH_OK);
        if (a[i].base_offset < 0)
            parked++;
        if (b[i].duplicate)
            dups_at_once++;
    }
    assert_true(parked > 0);
    assert_true(dups_at_once > 0);
    PUMP_UNTIL(h, d.n == 2 * N);
    for (int i = 0; i < 2 * N; i++)
        assert_int_equal(d.err[i], SH_OK);
    for (int i = 0; i < N; i++) {
        assert_false(a[i].duplicate);
        assert_true(b[i].duplicate);
        assert_int_equal(a[i].base_offset, (int64_t)i * 10);
        assert_int_equal(b[i].base_offset, (int64_t)i * 10);
    }
    assert_int_equal(log_end(p), N * 10);
    for (int i = 0; i < N; i++) {
        sh_block_unref(f[i].block);
        sh_block_unref(r[i].block);
    }
    h_close(h, p);
    h_free(h);
}

static void test_duplicate_object_durability(void **state)
{
    (void)state;
    h_t *h = h_new(0);
    sh_plog_cfg_t cfg = {.durability_object = true};
    sh_plog_t *p = h_open(h, &cfg);
    frame_t f = mk_batch(700, 2, 0, 4, 1);
    frame_t r = copy_of(&f);
    sh_plog_append_t a, b;
    done_log_t d = {0};
    assert_int_equal(append(p, &a, &f, true, &d), SH_OK);
    sh_plog_state_t st;
    do {
        h_pump(h);
        sh_plog_state(p, &st);
    } while (st.durable_offset < 4);
    /* durable in the WAL, not committed: the duplicate waits too */
    assert_int_equal(append(p, &b, &r, true, &d), SH_OK);
    assert_true(b.duplicate);
    assert_true(b.pending);
    assert_int_equal(d.n, 0);
    h_flush(h);
    PUMP_UNTIL(h, d.n == 2);
    assert_int_equal(d.base[0], 0);
    assert_int_equal(d.base[1], 0);
    assert_true(d.dup[1]);
    sh_block_unref(f.block);
    sh_block_unref(r.block);
    h_close(h, p);
    h_free(h);
}

/* Seven batches of producer 800 (so the oldest two fell out of the five)
 * and one of 801; bases[] gets their offsets. */
static void write_seven(h_t *h, sh_plog_t *p, frame_t f[8], int64_t bases[8])
{
    for (int i = 0; i < 7; i++) {
        f[i] = mk_batch(800, 1, i * 5, 5, 1);
        bases[i] = append_sync(h, p, &f[i], NULL);
    }
    f[7] = mk_batch(801, 0, 0, 2, 1);
    bases[7] = append_sync(h, p, &f[7], NULL);
}

static void check_seven(h_t *h, sh_plog_t *p, frame_t f[8], const int64_t bases[8])
{
    int64_t end = log_end(p);
    for (int i = 2; i < 7; i++) {
        frame_t r = copy_of(&f[i]);
        bool dup = false;
        assert_int_equal(append_sync(h, p, &r, &dup), bases[i]);
        assert_true(dup);
        sh_block_unref(r.block);
    }
    frame_t old = copy_of(&f[1]);
    assert_int_equal(append_err(p, &old), SH_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    sh_block_unref(old.block);
    frame_t r7 = copy_of(&f[7]);
    bool dup = false;
    assert_int_equal(append_sync(h, p, &r7, &dup), bases[7]);
    assert_true(dup);
    sh_block_unref(r7.block);
    assert_int_equal(log_end(p), end); /* nothing was written twice */
    frame_t gap = mk_batch(800, 1, 36, 1, 1);
    assert_int_equal(append_err(p, &gap), SH_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    sh_block_unref(gap.block);
}

static void test_restart_from_wal(void **state)
{
    (void)state;
    h_t *h = h_new(0);
    sh_plog_t *p = h_open(h, NULL);
    frame_t f[8];
    int64_t bases[8];
    write_seven(h, p, f, bases);
    p = h_restart(h, p, NULL);
    assert_int_equal(sh_producer_state_count(sh_plog_producers(p)), 2);
    check_seven(h, p, f, bases);
    /* and the sequence goes on */
    frame_t next = mk_batch(800, 1, 35, 1, 1);
    bool dup = true;
    int64_t end = log_end(p);
    assert_int_equal(append_sync(h, p, &next, &dup), end);
    assert_false(dup);
    for (int i = 0; i < 8; i++)
        sh_block_unref(f[i].block);
    sh_block_unref(next.block);
    h_close(h, p);
    h_free(h);
}

static void test_restart_from_snapshot_and_wal(void **state)
{
    (void)state;
    h_t *h = h_new(0);
    sh_plog_t *p = h_open(h, NULL);
    frame_t f[8];
    int64_t bases[8];
    /* four batches go into an object with the snapshot, the rest stay in
     * the WAL: the last five straddle the cut */
    for (int i = 0; i < 4; i++) {
        f[i] = mk_batch(800, 1, i * 5, 5, 1);
        bases[i] = append_sync(h, p, &f[i], NULL);
    }
    h_flush(h);
    sh_plog_state_t st;
    sh_plog_state(p, &st);
    assert_int_equal(st.committed_offset, 20);
    int64_t as_of;
    const char *data;
    sh_arena_t ar;
    sh_arena_init(&ar, 1024);
    assert_int_equal(sh_meta_producer_snapshot_get(h->meta, (sh_meta_tp_t){h->topic, 0},
                                                   INT64_MAX, &ar, &as_of, &data),
                     SH_OK);
    assert_int_equal(as_of, 20);
    sh_arena_fini(&ar);
    for (int i = 4; i < 7; i++) {
        f[i] = mk_batch(800, 1, i * 5, 5, 1);
        bases[i] = append_sync(h, p, &f[i], NULL);
    }
    f[7] = mk_batch(801, 0, 0, 2, 1);
    bases[7] = append_sync(h, p, &f[7], NULL);

    p = h_restart(h, p, NULL);
    sh_plog_state(p, &st);
    assert_int_equal(st.committed_offset, 20);
    check_seven(h, p, f, bases);

    /* a second upload moves the snapshot; restart again from it alone */
    h_flush(h);
    p = h_restart(h, p, NULL);
    sh_plog_state(p, &st);
    assert_int_equal(st.tail_entries, 0);
    check_seven(h, p, f, bases);
    for (int i = 0; i < 8; i++)
        sh_block_unref(f[i].block);
    h_close(h, p);
    h_free(h);
}

static void test_fenced_by_other_broker(void **state)
{
    (void)state;
    h_t *h = h_new(0);
    sh_plog_t *p = h_open(h, NULL);
    int64_t pid;
    assert_int_equal(sh_meta_producer_ids_allocate(h->meta, 1, 10, 1, &pid), SH_OK);
    assert_int_equal(sh_meta_producer_init(h->meta, pid, 1), SH_OK);
    frame_t a0 = mk_batch(pid, 0, 0, 2, 1);
    append_sync(h, p, &a0, NULL);
    /* another broker's InitProducerId bumps the epoch; this partition does
     * not know yet, so the old epoch still goes in ... */
    sh_meta_producer_t rec;
    assert_int_equal(sh_meta_producer_bump(h->meta, pid, 0, 2, &rec), SH_OK);
    assert_int_equal(rec.epoch, 1);
    frame_t a1 = mk_batch(pid, 0, 2, 2, 1);
    append_sync(h, p, &a1, NULL);
    /* ... until the next snapshot write reports the store's epoch */
    h_flush(h);
    frame_t a2 = mk_batch(pid, 0, 4, 2, 1);
    assert_int_equal(append_err(p, &a2), SH_KERR_INVALID_PRODUCER_EPOCH);
    frame_t n0 = mk_batch(pid, 1, 0, 1, 1);
    append_sync(h, p, &n0, NULL);

    /* a bump while the partition is closed is found when it opens */
    assert_int_equal(sh_meta_producer_bump(h->meta, pid, 1, 3, &rec), SH_OK);
    assert_int_equal(rec.epoch, 2);
    p = h_restart(h, p, NULL);
    frame_t n1 = mk_batch(pid, 1, 1, 1, 1);
    assert_int_equal(append_err(p, &n1), SH_KERR_INVALID_PRODUCER_EPOCH);
    frame_t m0 = mk_batch(pid, 2, 0, 1, 1);
    append_sync(h, p, &m0, NULL);

    /* the broker's own floor (its InitProducerId bumped producer 77) */
    frame_t x0 = mk_batch(77, 3, 0, 1, 1);
    append_sync(h, p, &x0, NULL);
    h->floor = 4;
    frame_t x1 = mk_batch(77, 3, 1, 1, 1);
    assert_int_equal(append_err(p, &x1), SH_KERR_INVALID_PRODUCER_EPOCH);
    frame_t x2 = mk_batch(77, 4, 0, 1, 1);
    append_sync(h, p, &x2, NULL);

    /* transactional batches are refused: transactions are not served */
    sh_record_spec_t rs = {.timestamp = 1700000000000, .value = sh_slice_str("t")};
    sh_record_batch_spec_t spec;
    sh_record_batch_spec_init(&spec);
    spec.producer_id = 78;
    spec.producer_epoch = 0;
    spec.base_sequence = 0;
    spec.transactional = true;
    sh_outbuf_t ob;
    sh_outbuf_init_heap(&ob);
    assert_int_equal(sh_record_batch_build(&spec, &rs, 1, &ob), SH_OK);
    frame_t tx;
    tx.block = sh_block_new(sh_outbuf_slice(&ob).len);
    memcpy(tx.block->data, sh_outbuf_slice(&ob).ptr, tx.block->size);
    tx.records = (sh_slice_t){tx.block->data, tx.block->size};
    sh_outbuf_fini(&ob);
    assert_int_equal(append_err(p, &tx), SH_KERR_INVALID_TXN_STATE);

    frame_t *all[] = {&a0, &a1, &a2, &n0, &n1, &m0, &x0, &x1, &x2, &tx};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        sh_block_unref(all[i]->block);
    h_close(h, p);
    h_free(h);
}

static void test_expiry(void **state)
{
    (void)state;
    h_t *h = h_new(0);
    sh_plog_t *p = h_open(h, NULL);
    frame_t a = mk_batch(900, 0, 0, 1, 1);
    frame_t b = mk_batch(900, 0, 1, 1, 1);
    append_sync(h, p, &a, NULL);
    int64_t now = sh_clock_wall_ms();
    assert_int_equal(sh_plog_producers_expire(p, now, 86400000), 0);
    assert_int_equal(sh_plog_producers_expire(p, now + 86400000 + 1000, 86400000), 1);
    /* expired: its next sequence is no longer known */
    assert_int_equal(append_err(p, &b), SH_KERR_UNKNOWN_PRODUCER_ID);
    sh_block_unref(a.block);
    sh_block_unref(b.block);
    h_close(h, p);
    h_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duplicate_in_flight_and_durable),
        cmocka_unit_test(test_duplicate_while_parked),
        cmocka_unit_test(test_duplicate_object_durability),
        cmocka_unit_test(test_restart_from_wal),
        cmocka_unit_test(test_restart_from_snapshot_and_wal),
        cmocka_unit_test(test_fenced_by_other_broker),
        cmocka_unit_test(test_expiry),
    };
    return cmocka_run_group_tests_name("storage_producer_plog", tests, NULL, NULL);
}
