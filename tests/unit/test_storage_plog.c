/*
 * test_storage_plog.c - the partition log and the uploader against a real
 * WAL, a real SQLite metadata store and a real file:// object store, all
 * in a temporary directory: offsets patched in the frame, durability
 * completions in order, Kafka's validation codes, reads from the tail and
 * from objects, replay after a restart (with and without uploads), object
 * durability, WAL-full parking in FIFO order, LogAppendTime, timestamp
 * lookups, watches, and fencing by a newer leader epoch.
 *
 * Waiting is bounded by a no-progress guard (10 s), never a timing
 * assertion.
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
#include "common/sh_endian.h"
#include "meta/sh_meta.h"
#include "protocol/sh_record_batch.h"
#include "storage/sh_cache.h"
#include "storage/sh_objstore.h"
#include "storage/sh_plog.h"
#include "storage/sh_segment.h"
#include "storage/sh_uploader.h"
#include "test_storage_util.h"
#include "wal/sh_wal.h"

typedef struct h {
    char *dir;
    sh_meta_t *meta;
    sh_wal_mgr_t *wal;
    sh_wal_opts_t wal_opts;
    sh_objstore_t *store;
    sh_cache_t *cache;
    sh_uploader_t *up;
    sh_uuid_t topic;
    int32_t epoch;
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
    o.cache = h->cache;
    o.writer_id = 1;
    o.writer_epoch = sh_clock_wall_ms();
    o.upload_bytes = 1u << 30;   /* tests flush explicitly */
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
    h->cache = sh_cache_new(8u << 20);
    h_uploader_new(h);
    int64_t now = sh_clock_wall_ms();
    assert_int_equal(sh_meta_topic_create(h->meta, "events", 2, NULL, 0, now, &h->topic),
                     SH_OK);
    for (int32_t part = 0; part < 2; part++) {
        sh_meta_tp_t tp = {h->topic, part};
        assert_int_equal(sh_meta_partition_acquire(h->meta, tp, 1, -1, now, now + 60000,
                                                   &h->epoch),
                         SH_OK);
    }
    return h;
}

static void h_free(h_t *h)
{
    sh_uploader_free(h->up);
    sh_wal_mgr_free(h->wal);
    sh_objstore_free(h->store);
    sh_cache_free(h->cache);
    sh_meta_close(h->meta);
    tsu_rmrf(h->dir);
    free(h->dir);
    free(h);
}

/* Wait for any completion source once (bounded), then run completions. */
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

static sh_plog_t *h_open(h_t *h, int32_t part, const sh_plog_cfg_t *cfg)
{
    sh_plog_opts_t o = {0};
    o.topic_id = h->topic;
    o.partition = part;
    o.leader_epoch = h->epoch;
    o.topic_name = "events";
    o.wal = h->wal;
    o.meta = h->meta;
    if (cfg)
        o.cfg = *cfg;
    o.observer = sh_uploader_observer(h->up);
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

/* ------------------------------------------------------------ batches */

/* A "request frame": junk, one batch of n records, junk, like a Produce
 * frame where the batch sits between other fields. */
typedef struct frame {
    sh_block_t *block;
    sh_slice_t records;
} frame_t;

static frame_t mk_frame(int n, int tag, int64_t ts, int64_t producer_id, int codec)
{
    sh_record_spec_t recs[64];
    char keys[64][16], vals[64][32];
    assert_true(n <= 64);
    for (int i = 0; i < n; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%d", i);
        snprintf(vals[i], sizeof(vals[i]), "v-%d-%d", tag, i);
        memset(&recs[i], 0, sizeof(recs[i]));
        recs[i].timestamp = ts + i;
        recs[i].key = sh_slice_str(keys[i]);
        recs[i].value = sh_slice_str(vals[i]);
    }
    sh_record_batch_spec_t spec;
    sh_record_batch_spec_init(&spec);
    spec.codec = (sh_codec_t)codec;
    if (producer_id >= 0) {
        spec.producer_id = producer_id;
        spec.producer_epoch = 0;
        spec.base_sequence = 0;
    }
    sh_outbuf_t ob;
    sh_outbuf_init_heap(&ob);
    assert_int_equal(sh_record_batch_build(&spec, recs, (size_t)n, &ob), SH_OK);
    sh_slice_t s = sh_outbuf_slice(&ob);
    frame_t f;
    f.block = sh_block_new(s.len + 10);
    memset(f.block->data, 0xAB, s.len + 10);
    memcpy(f.block->data + 7, s.ptr, s.len);
    f.records = (sh_slice_t){f.block->data + 7, s.len};
    sh_outbuf_fini(&ob);
    return f;
}

typedef struct done_log {
    int n;
    int64_t base[256];
    sh_err_t err[256];
} done_log_t;

static void on_done(sh_plog_append_t *a)
{
    done_log_t *d = a->arg;
    d->base[d->n] = a->base_offset;
    d->err[d->n] = a->err;
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

static int64_t batch_base(const uint8_t *b)
{
    return (int64_t)sh_load_be64(b);
}

static int32_t batch_epoch(const uint8_t *b)
{
    return (int32_t)sh_load_be32(b + SH_RB_OFF_LEADER_EPOCH);
}

static int64_t durable_of(const sh_plog_t *p)
{
    sh_plog_state_t st;
    sh_plog_state(p, &st);
    return st.durable_offset;
}

/* -------------------------------------------------------------- tests */

static void test_append_durable_read(void **state)
{
    (void)state;
    h_t *h = h_new(0);
    sh_plog_t *p = h_open(h, 0, NULL);
    frame_t f[5];
    sh_plog_append_t a[5];
    done_log_t d = {0};
    for (int i = 0; i < 5; i++) {
        f[i] = mk_frame(3 + i, i, 1700000000000 + i * 100, -1, 0);
        assert_int_equal(append(p, &a[i], &f[i], true, &d), SH_OK);
        assert_true(a[i].pending);
    }
    /* offsets are assigned at once, in the frame itself */
    int64_t expect = 0;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(a[i].base_offset, expect);
        assert_int_equal(batch_base(f[i].records.ptr), expect);
        assert_int_equal(batch_epoch(f[i].records.ptr), h->epoch);
        assert_int_equal(a[i].log_append_time_ms, -1);
        expect += 3 + i;
    }
    sh_plog_state_t st;
    sh_plog_state(p, &st);
    assert_int_equal(st.log_end_offset, expect);
    assert_true(st.high_watermark <= expect);
    assert_int_equal(d.n, 0); /* never from inside append_start */

    PUMP_UNTIL(h, d.n == 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(d.err[i], SH_OK);
        assert_int_equal(d.base[i], a[i].base_offset); /* in offset order */
    }
    assert_int_equal(sh_plog_high_watermark(p), expect);

    /* read from the middle of batch 2: starts with batch 2, whole batches */
    sh_plog_slice_t sl[8];
    sh_plog_read_t rd;
    assert_int_equal(sh_plog_read(p, a[2].base_offset + 1, 1u << 20, true, sl, 8, &rd), SH_OK);
    assert_int_equal(rd.where, SH_PLOG_TAIL);
    assert_int_equal(rd.nslices, 3);
    assert_ptr_equal(sl[0].ptr, f[2].records.ptr);
    assert_int_equal(sl[0].len, f[2].records.len);
    /* byte limit: only what fits, but min_one gives the first anyway */
    assert_int_equal(sh_plog_read(p, 0, f[0].records.len + 1, true, sl, 8, &rd), SH_OK);
    assert_int_equal(rd.nslices, 1);
    assert_int_equal(sh_plog_read(p, 0, 10, true, sl, 8, &rd), SH_OK);
    assert_int_equal(rd.nslices, 1);
    assert_int_equal(sh_plog_read(p, 0, 10, false, sl, 8, &rd), SH_OK);
    assert_int_equal(rd.nslices, 0);
    assert_int_equal(rd.where, SH_PLOG_NONE);
    /* at the end: nothing; past it: out of range */
    assert_int_equal(sh_plog_read(p, expect, 1000, true, sl, 8, &rd), SH_OK);
    assert_int_equal(rd.where, SH_PLOG_NONE);
    assert_int_equal(sh_plog_read(p, expect + 1, 1000, true, sl, 8, &rd),
                     SH_KERR_OFFSET_OUT_OF_RANGE);
    assert_int_equal(sh_plog_read(p, -1, 1000, true, sl, 8, &rd), SH_KERR_OFFSET_OUT_OF_RANGE);

    for (int i = 0; i < 5; i++)
        sh_block_unref(f[i].block);
    h_close(h, p);
    h_free(h);
}

static void test_validation_errors(void **state)
{
    (void)state;
    h_t *h = h_new(0);
    sh_plog_cfg_t cfg = {.max_message_bytes = 200};
    sh_plog_t *p = h_open(h, 0, &cfg);
    done_log_t d = {0};
    sh_plog_append_t a;

    frame_t ok = mk_frame(1, 0, 1700000000000, -1, 0);
    frame_t big = mk_frame(20, 1, 1700000000000, -1, 0);
    assert_int_equal(append(p, &a, &big, true, &d), SH_KERR_MESSAGE_TOO_LARGE);
    assert_false(a.pending);

    frame_t crc = mk_frame(2, 2, 1700000000000, -1, 0);
    ((uint8_t *)crc.records.ptr)[crc.records.len - 1] ^= 0x55;
    assert_int_equal(append(p, &a, &crc, true, &d), SH_KERR_CORRUPT_MESSAGE);

    /* an idempotent producer the partition never saw must start at
     * sequence 0 (the sequence is under the CRC: recompute it) */
    frame_t idem = mk_frame(2, 3, 1700000000000, 1234, 0);
    uint8_t *ib = (uint8_t *)idem.records.ptr;
    sh_store_be32(ib + SH_RB_OFF_BASE_SEQUENCE, 5);
    sh_store_be32(ib + SH_RB_OFF_CRC, sh_record_batch_crc_compute(ib, idem.records.len));
    assert_int_equal(append(p, &a, &idem, true, &d), SH_KERR_UNKNOWN_PRODUCER_ID);
    assert_non_null(a.reason);

    frame_t nul = ok;
    nul.records = SH_SLICE_NULL;
    assert_int_equal(append(p, &a, &nul, true, &d), SH_KERR_INVALID_RECORD);

    /* nothing consumed an offset */
    assert_int_equal(append(p, &a, &ok, false, &d), SH_OK);
    assert_int_equal(a.base_offset, 0);
    assert_false(a.pending); /* acks=0: nothing to wait for */
    PUMP_UNTIL(h, sh_plog_high_watermark(p) == 1);
    assert_int_equal(d.n, 0);

    sh_block_unref(ok.block);
    sh_block_unref(big.block);
    sh_block_unref(crc.block);
    sh_block_unref(idem.block);
    h_close(h, p);
    h_free(h);
}

static void test_replay_after_restart(void **state)
{
    (void)state;
    h_t *h = h_new(0);
    sh_plog_t *p = h_open(h, 1, NULL);
    frame_t f[4];
    sh_plog_append_t a[4];
    done_log_t d = {0};
    uint8_t *copy[4];
    for (int i = 0; i < 4; i++) {
        f[i] = mk_frame(2, i, 1700000000000 + i, -1, i % 2 ? 1 : 0); /* some gzip */
        assert_int_equal(append(p, &a[i], &f[i], true, &d), SH_OK);
    }
    PUMP_UNTIL(h, d.n == 4);
    for (int i = 0; i < 4; i++) {
        copy[i] = malloc(f[i].records.len);
        memcpy(copy[i], f[i].records.ptr, f[i].records.len);
        sh_block_unref(f[i].block);
    }
    h_close(h, p);
    /* restart: new WAL manager over the same directory */
    sh_uploader_free(h->up);
    sh_wal_mgr_free(h->wal);
    h_wal_open(h);
    h_uploader_new(h);

    p = h_open(h, 1, NULL);
    sh_plog_state_t st;
    sh_plog_state(p, &st);
    assert_int_equal(st.log_end_offset, 8);
    assert_int_equal(st.high_watermark, 8);
    assert_int_equal(st.tail_entries, 4);
    sh_plog_slice_t sl[8];
    sh_plog_read_t rd;
    assert_int_equal(sh_plog_read(p, 0, 1u << 20, true, sl, 8, &rd), SH_OK);
    assert_int_equal(rd.nslices, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(sl[i].len, f[i].records.len);
        assert_memory_equal(sl[i].ptr, copy[i], sl[i].len);
        free(copy[i]);
    }
    /* appends continue after the replayed offsets */
    frame_t g = mk_frame(1, 9, 1700000000000, -1, 0);
    sh_plog_append_t b;
    assert_int_equal(append(p, &b, &g, true, &d), SH_OK);
    assert_int_equal(b.base_offset, 8);
    PUMP_UNTIL(h, d.n == 5);
    sh_block_unref(g.block);
    h_close(h, p);
    h_free(h);
}

static void test_upload_then_read_and_restart(void **state)
{
    (void)state;
    h_t *h = h_new(0);
    sh_plog_t *p0 = h_open(h, 0, NULL);
    sh_plog_t *p1 = h_open(h, 1, NULL);
    frame_t f[6];
    sh_plog_append_t a[6];
    done_log_t d = {0};
    for (int i = 0; i < 6; i++) {
        f[i] = mk_frame(4, i, 1700000000000 + i * 10, -1, 0);
        assert_int_equal(append(i % 2 ? p1 : p0, &a[i], &f[i], true, &d), SH_OK);
    }
    PUMP_UNTIL(h, d.n == 6);
    assert_int_equal(sh_uploader_flush(h->up, sh_clock_mono_ms()), SH_OK);
    assert_true(sh_uploader_busy(h->up));
    PUMP_UNTIL(h, !sh_uploader_busy(h->up));
    sh_uploader_stats_t us;
    sh_uploader_stats(h->up, &us);
    assert_int_equal(us.objects, 1);
    assert_int_equal(us.chunks, 2);
    assert_int_equal(us.pending_bytes, 0);

    sh_plog_state_t st;
    sh_plog_state(p0, &st);
    assert_int_equal(st.committed_offset, 12);
    assert_int_equal(st.tail_entries, 0);
    assert_int_equal(st.chunks, 1);
    /* the metadata store agrees */
    sh_meta_partition_t row;
    assert_int_equal(sh_meta_partition_get(h->meta, (sh_meta_tp_t){h->topic, 0}, &row), SH_OK);
    assert_int_equal(row.high_watermark, 12);

    /* reads now point into the object; the cache has the chunk */
    sh_plog_slice_t sl[4];
    sh_plog_read_t rd;
    assert_int_equal(sh_plog_read(p0, 5, 1u << 20, true, sl, 4, &rd), SH_OK);
    assert_int_equal(rd.where, SH_PLOG_OBJECT);
    assert_int_equal(rd.chunk.base_offset, 0);
    assert_int_equal(rd.chunk.last_offset, 11);
    sh_cache_ref_t cr;
    assert_int_equal(sh_cache_get(h->cache, rd.chunk.object_key, rd.chunk.byte_offset,
                                  rd.chunk.byte_length, &cr), SH_OK);
    size_t pos;
    assert_int_equal(sh_segment_chunk_find(cr.ptr, cr.len, 5, &pos), SH_OK);
    assert_int_equal(batch_base(cr.ptr + pos), 4);
    assert_memory_equal(cr.ptr + pos, f[2].records.ptr, f[2].records.len);
    sh_block_unref(cr.block);
    /* and the object store holds the same bytes */
    tsu_res_t res;
    tsu_get_range(h->store, rd.chunk.object_key, rd.chunk.byte_offset, rd.chunk.byte_length,
                  &res);
    assert_int_equal(res.err, SH_OK);
    assert_int_equal(res.block->size, rd.chunk.byte_length);
    tsu_res_fini(&res);

    /* more data after the upload stays in the tail */
    frame_t g = mk_frame(2, 7, 1700000001000, -1, 0);
    sh_plog_append_t b;
    assert_int_equal(append(p0, &b, &g, true, &d), SH_OK);
    assert_int_equal(b.base_offset, 12);
    PUMP_UNTIL(h, d.n == 7);
    assert_int_equal(sh_plog_read(p0, 12, 1u << 20, true, sl, 4, &rd), SH_OK);
    assert_int_equal(rd.where, SH_PLOG_TAIL);

    /* timestamp lookups span chunks and the tail */
    sh_plog_slice_t one;
    assert_int_equal(sh_plog_find_time(p0, 1700000000015, &one, &rd), SH_OK);
    assert_int_equal(rd.where, SH_PLOG_OBJECT);
    assert_int_equal(sh_plog_find_time(p0, 1700000000500, &one, &rd), SH_OK);
    assert_int_equal(rd.where, SH_PLOG_TAIL);
    assert_int_equal(one.base_offset, 12);
    assert_int_equal(sh_plog_find_time(p0, 1800000000000, &one, &rd), SH_E_NOTFOUND);
    assert_int_equal(sh_plog_find_max_time(p0, &one, &rd), SH_OK);
    assert_int_equal(rd.where, SH_PLOG_TAIL);
    assert_int_equal(one.base_offset, 12);

    for (int i = 0; i < 6; i++)
        sh_block_unref(f[i].block);
    sh_block_unref(g.block);
    h_close(h, p0);
    h_close(h, p1);

    /* restart: chunk index from the metadata store, the WAL holds only
     * the batch above the committed offset */
    sh_uploader_free(h->up);
    sh_wal_mgr_free(h->wal);
    h_wal_open(h);
    h_uploader_new(h);
    p0 = h_open(h, 0, NULL);
    sh_plog_state(p0, &st);
    assert_int_equal(st.committed_offset, 12);
    assert_int_equal(st.chunks, 1);
    assert_int_equal(st.tail_entries, 1);
    assert_int_equal(st.log_end_offset, 14);
    assert_int_equal(sh_plog_read(p0, 0, 1u << 20, true, sl, 4, &rd), SH_OK);
    assert_int_equal(rd.where, SH_PLOG_OBJECT);
    h_close(h, p0);
    h_free(h);
}

static void test_object_durability(void **state)
{
    (void)state;
    h_t *h = h_new(0);
    sh_plog_cfg_t cfg = {.durability_object = true};
    sh_plog_t *p = h_open(h, 0, &cfg);
    frame_t f = mk_frame(3, 0, 1700000000000, -1, 0);
    sh_plog_append_t a;
    done_log_t d = {0};
    assert_int_equal(append(p, &a, &f, true, &d), SH_OK);
    /* durable in the WAL is not enough, and consumers do not see it */
    PUMP_UNTIL(h, durable_of(p) == 3);
    assert_int_equal(d.n, 0);
    assert_int_equal(sh_plog_high_watermark(p), 0);
    assert_int_equal(sh_uploader_flush(h->up, sh_clock_mono_ms()), SH_OK);
    PUMP_UNTIL(h, d.n == 1);
    assert_int_equal(d.err[0], SH_OK);
    assert_int_equal(sh_plog_high_watermark(p), 3);
    sh_block_unref(f.block);
    h_close(h, p);
    h_free(h);
}

static void test_wal_full_parks_in_order(void **state)
{
    (void)state;
    /* two 64 KiB segments of WAL: a hundred ~1.3 KiB batches fill it */
    h_t *h = h_new(128 * 1024);
    sh_plog_t *p = h_open(h, 0, NULL);
    enum { N = 200 };
    frame_t f[N];
    sh_plog_append_t a[N];
    done_log_t d = {0};
    int parked = 0;
    for (int i = 0; i < N; i++) {
        f[i] = mk_frame(60, i, 1700000000000 + i, -1, 0);
        assert_int_equal(append(p, &a[i], &f[i], true, &d), SH_OK);
        if (a[i].base_offset < 0)
            parked++;
    }
    assert_true(parked > 0);
    assert_int_equal(sh_plog_parked(p), (size_t)parked);
    /* the uploader sees the parked appends and uploads without waiting
     * for its thresholds, which releases WAL space */
    PUMP_UNTIL(h, d.n == N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(d.err[i], SH_OK);
        assert_int_equal(d.base[i], (int64_t)i * 60); /* FIFO: offsets in append order */
        assert_int_equal(batch_base(f[i].records.ptr), (int64_t)i * 60);
    }
    for (int i = 0; i < N; i++)
        sh_block_unref(f[i].block);
    h_close(h, p);
    h_free(h);
}

static void test_parked_cancel(void **state)
{
    (void)state;
    h_t *h = h_new(128 * 1024);
    sh_plog_t *p = h_open(h, 0, NULL);
    enum { N = 150 };
    frame_t f[N];
    sh_plog_append_t a[N];
    done_log_t d = {0};
    int first_parked = -1;
    for (int i = 0; i < N; i++) {
        f[i] = mk_frame(60, i, 1700000000000 + i, -1, 0);
        assert_int_equal(append(p, &a[i], &f[i], true, &d), SH_OK);
        if (a[i].base_offset < 0 && first_parked < 0)
            first_parked = i;
    }
    assert_true(first_parked > 0);
    assert_true(sh_plog_append_cancel(&a[first_parked]));
    assert_int_equal(a[first_parked].err, SH_KERR_REQUEST_TIMED_OUT);
    assert_false(sh_plog_append_cancel(&a[first_parked]));
    PUMP_UNTIL(h, d.n == N - 1);
    for (int i = 0; i < d.n; i++)
        assert_int_equal(d.err[i], SH_OK);
    for (int i = 0; i < N; i++)
        sh_block_unref(f[i].block);
    h_close(h, p);
    h_free(h);
}

static void test_log_append_time(void **state)
{
    (void)state;
    h_t *h = h_new(0);
    sh_plog_cfg_t cfg = {.log_append_time = true};
    sh_plog_t *p = h_open(h, 0, &cfg);
    frame_t f = mk_frame(3, 0, 1000, -1, 0);
    sh_plog_append_t a;
    done_log_t d = {0};
    int64_t before = sh_clock_wall_ms();
    assert_int_equal(append(p, &a, &f, true, &d), SH_OK);
    assert_true(a.log_append_time_ms >= before);
    sh_record_batch_t b;
    assert_int_equal(sh_record_batch_parse(&b, f.records), SH_OK);
    assert_int_equal(sh_record_batch_timestamp_type(&b), SH_TS_LOG_APPEND_TIME);
    assert_int_equal(b.max_timestamp, a.log_append_time_ms);
    assert_true(sh_record_batch_crc_ok(&b));
    PUMP_UNTIL(h, d.n == 1);
    sh_block_unref(f.block);
    h_close(h, p);
    h_free(h);
}

typedef struct wake {
    int n;
} wake_t;

static void on_wake(sh_plog_watch_t *w, void *arg)
{
    (void)w;
    ((wake_t *)arg)->n++;
}

static void test_watch_and_fence(void **state)
{
    (void)state;
    h_t *h = h_new(0);
    sh_plog_t *p = h_open(h, 0, NULL);
    sh_plog_watch_t w = {0};
    wake_t wk = {0};
    sh_plog_watch(p, &w, on_wake, &wk);
    frame_t f = mk_frame(2, 0, 1700000000000, -1, 0);
    sh_plog_append_t a;
    done_log_t d = {0};
    assert_int_equal(append(p, &a, &f, true, &d), SH_OK);
    PUMP_UNTIL(h, d.n == 1);
    assert_int_equal(wk.n, 1);   /* one shot */
    assert_null(w.list);

    /* another broker takes the partition: the next commit is fenced */
    sh_meta_tp_t tp = {h->topic, 0};
    int32_t newer;
    int64_t now = sh_clock_wall_ms();
    /* (its lease check runs on a clock past ours) */
    assert_int_equal(sh_meta_partition_acquire(h->meta, tp, 2, h->epoch, now + 120000,
                                               now + 180000, &newer), SH_OK);
    sh_plog_watch(p, &w, on_wake, &wk);
    frame_t g = mk_frame(2, 1, 1700000000000, -1, 0);
    sh_plog_cfg_t cfg = {.durability_object = true};
    sh_plog_set_cfg(p, &cfg);
    sh_plog_append_t b;
    assert_int_equal(append(p, &b, &g, true, &d), SH_OK);
    PUMP_UNTIL(h, durable_of(p) == 4);
    assert_int_equal(sh_uploader_flush(h->up, sh_clock_mono_ms()), SH_OK);
    PUMP_UNTIL(h, d.n == 2);
    assert_int_equal(d.err[1], SH_KERR_NOT_LEADER_OR_FOLLOWER);
    assert_int_equal(sh_plog_error(p), SH_KERR_NOT_LEADER_OR_FOLLOWER);
    assert_int_equal(wk.n, 2);
    sh_uploader_stats_t us;
    sh_uploader_stats(h->up, &us);
    assert_int_equal(us.fenced, 1);
    sh_plog_slice_t sl[2];
    sh_plog_read_t rd;
    assert_int_equal(sh_plog_read(p, 0, 100, true, sl, 2, &rd), SH_KERR_NOT_LEADER_OR_FOLLOWER);
    assert_int_equal(append(p, &b, &g, true, &d), SH_KERR_NOT_LEADER_OR_FOLLOWER);
    sh_block_unref(f.block);
    sh_block_unref(g.block);
    h_close(h, p);
    h_free(h);
}

static void test_close_fails_waiters(void **state)
{
    (void)state;
    h_t *h = h_new(0);
    sh_plog_cfg_t cfg = {.durability_object = true};
    sh_plog_t *p = h_open(h, 0, &cfg);
    frame_t f = mk_frame(2, 0, 1700000000000, -1, 0);
    sh_plog_append_t a;
    done_log_t d = {0};
    assert_int_equal(append(p, &a, &f, true, &d), SH_OK);
    sh_uploader_remove(h->up, p);
    sh_plog_close(p, true); /* deleted: the WAL forgets it */
    assert_int_equal(d.n, 1);
    assert_int_equal(d.err[0], SH_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    /* the WAL append still completes into the freed-later plog */
    for (int i = 0; i < 5; i++)
        h_pump(h);
    sh_block_unref(f.block);
    h_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_durable_read),
        cmocka_unit_test(test_validation_errors),
        cmocka_unit_test(test_replay_after_restart),
        cmocka_unit_test(test_upload_then_read_and_restart),
        cmocka_unit_test(test_object_durability),
        cmocka_unit_test(test_wal_full_parks_in_order),
        cmocka_unit_test(test_parked_cancel),
        cmocka_unit_test(test_log_append_time),
        cmocka_unit_test(test_watch_and_fence),
        cmocka_unit_test(test_close_fails_waiters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
