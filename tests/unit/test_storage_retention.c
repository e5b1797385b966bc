/*
 * test_storage_retention.c - retention passes, DeleteRecords advances and
 * the sweep of unreferenced segment objects (storage/sh_retention.h)
 * against a real WAL, a real SQLite metadata store, a real file:// object
 * store, the uploader and partition logs, all in a temporary directory:
 *  - retention.ms drops whole chunks older than the cutoff, oldest first,
 *    stopping at the first young one; an object shared with another
 *    partition's live chunk stays until that chunk goes too;
 *  - retention.bytes keeps at least retention.bytes (Kafka's rule);
 *  - data not uploaded yet is never deleted by retention;
 *  - DeleteRecords inside a chunk, into the tail, below the current log
 *    start, and across a restart; chunks committed wholly below a log
 *    start in the tail are swept (also after a restart);
 *  - leftovers of a crash (unreferenced objects, deleted or not) are
 *    deleted and forgotten by the first pass;
 *  - freeing the engine with work in flight (orphans) leaks nothing and
 *    still answers DeleteRecords.
 *
 * Time: the retention cutoff comes from a fake wall clock; waiting is
 * bounded by a no-progress guard, never a timing assertion.
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
#include "storage/sh_cache.h"
#include "storage/sh_objstore.h"
#include "storage/sh_objstore_fault.h"
#include "storage/sh_plog.h"
#include "storage/sh_retention.h"
#include "storage/sh_uploader.h"
#include "test_storage_util.h"
#include "wal/sh_wal.h"

#define T0 1700000000000LL          /* "now" on the fake wall clock */
#define HOUR 3600000LL

/* -------------------------------------------------------------- harness */

typedef struct part {
    sh_plog_t *log;
    int64_t retention_ms, retention_bytes;
} part_t;

typedef struct h {
    char *dir;
    sh_meta_t *meta;
    sh_wal_mgr_t *wal;
    sh_objstore_t *store;
    sh_cache_t *cache;
    sh_uploader_t *up;
    sh_retention_t *rt;
    sh_uuid_t topic;
    int32_t epoch;
    int64_t wall;                 /* fake wall clock */
    part_t parts[2];
} h_t;

static int64_t h_wall(void *arg)
{
    return ((h_t *)arg)->wall;
}

static void h_partitions(void *arg, sh_retention_visit_fn visit, void *vctx)
{
    h_t *h = arg;
    for (int i = 0; i < 2; i++)
        if (h->parts[i].log)
            visit(vctx, h->parts[i].log, h->parts[i].retention_ms, h->parts[i].retention_bytes);
}

static void h_rt_new(h_t *h)
{
    sh_retention_opts_t o = {0};
    o.meta = h->meta;
    o.store = h->store;
    o.cache = h->cache;
    o.check_interval_ms = 1000000000; /* tests start passes themselves */
    o.sweep_batch = 2;                /* several listings per sweep */
    o.partitions = h_partitions;
    o.partitions_arg = h;
    o.wall_ms = h_wall;
    o.clock_arg = h;
    h->rt = sh_retention_new(&o);
    assert_non_null(h->rt);
}

static h_t *h_new(void)
{
    h_t *h = calloc(1, sizeof(*h));
    h->dir = tsu_tempdir();
    h->wall = T0;
    assert_non_null(h->dir);
    char path[600];
    snprintf(path, sizeof(path), "sqlite://%s/meta.db", h->dir);
    assert_int_equal(sh_meta_open(path, &h->meta), SH_OK);
    sh_wal_opts_t wo;
    sh_wal_opts_default(&wo);
    wo.segment_bytes = 64 * 1024;
    wo.max_unreleased_bytes = 16u << 20;
    wo.pool_segments = 1;
    snprintf(path, sizeof(path), "%s/wal", h->dir);
    assert_int_equal(sh_wal_mgr_new(path, &wo, &h->wal), SH_OK);
    snprintf(path, sizeof(path), "file://%s/objects", h->dir);
    sh_objstore_t *local = NULL;
    assert_int_equal(sh_objstore_open(path, &local), SH_OK);
    assert_int_equal(sh_objstore_fault_new(local, &h->store), SH_OK); /* no rules yet */
    h->cache = sh_cache_new(8u << 20);
    sh_uploader_opts_t uo = {0};
    uo.store = h->store;
    uo.meta = h->meta;
    uo.cache = h->cache;
    uo.writer_id = 1;
    uo.writer_epoch = sh_clock_wall_ms();
    uo.upload_bytes = 1u << 30; /* tests flush explicitly */
    uo.interval_ms = 1000000;
    uo.backoff_min_ms = 1;
    uo.backoff_max_ms = 5;
    h->up = sh_uploader_new(&uo);
    assert_non_null(h->up);
    int64_t now = sh_clock_wall_ms();
    assert_int_equal(sh_meta_topic_create(h->meta, "events", 2, NULL, 0, now, &h->topic), SH_OK);
    for (int32_t part = 0; part < 2; part++) {
        sh_meta_tp_t tp = {h->topic, part};
        assert_int_equal(sh_meta_partition_acquire(h->meta, tp, 1, -1, now, now + 60000,
                                                   &h->epoch),
                         SH_OK);
        h->parts[part].retention_ms = -1;
        h->parts[part].retention_bytes = -1;
    }
    return h;
}

static void h_pump(h_t *h)
{
    struct pollfd p[3] = {
        {.fd = sh_wal_mgr_fd(h->wal), .events = POLLIN},
        {.fd = sh_objstore_fd(h->store), .events = POLLIN},
        {.fd = sh_meta_fd(h->meta), .events = POLLIN},
    };
    poll(p, 3, 20);
    sh_wal_mgr_drain(h->wal);
    sh_objstore_drive(h->store);
    sh_meta_drain(h->meta);
    sh_uploader_drive(h->up, sh_clock_mono_ms());
    if (h->rt)
        sh_retention_drive(h->rt, sh_clock_mono_ms());
}

#define PUMP_UNTIL(h, cond)                                                    \
    do {                                                                       \
        int64_t until_ = sh_clock_mono_ms() + 10000;                           \
        while (!(cond)) {                                                      \
            assert_true(sh_clock_mono_ms() < until_);                          \
            h_pump(h);                                                         \
        }                                                                      \
    } while (0)

static sh_plog_t *h_open(h_t *h, int32_t part)
{
    sh_plog_opts_t o = {0};
    o.topic_id = h->topic;
    o.partition = part;
    o.leader_epoch = h->epoch;
    o.topic_name = "events";
    o.wal = h->wal;
    o.meta = h->meta;
    o.observer = sh_uploader_observer(h->up);
    sh_plog_t *p = NULL;
    assert_int_equal(sh_plog_open(&o, &p), SH_OK);
    assert_int_equal(sh_uploader_add(h->up, p), SH_OK);
    h->parts[part].log = p;
    return p;
}

static void h_close(h_t *h, int32_t part)
{
    sh_plog_t *p = h->parts[part].log;
    if (!p)
        return;
    sh_uploader_remove(h->up, p);
    sh_plog_close(p, false);
    h->parts[part].log = NULL;
}

static void h_free(h_t *h)
{
    if (h->rt) {
        PUMP_UNTIL(h, !sh_retention_busy(h->rt));
        sh_retention_free(h->rt);
    }
    h_close(h, 0);
    h_close(h, 1);
    sh_uploader_free(h->up);
    sh_wal_mgr_free(h->wal);
    sh_objstore_free(h->store);
    sh_cache_free(h->cache);
    sh_meta_close(h->meta);
    tsu_rmrf(h->dir);
    free(h->dir);
    free(h);
}

/* One whole retention pass (after any pass already running). */
static void h_pass(h_t *h)
{
    PUMP_UNTIL(h, !sh_retention_busy(h->rt));
    assert_int_equal(sh_retention_pass_start(h->rt, sh_clock_mono_ms()), SH_OK);
    PUMP_UNTIL(h, !sh_retention_busy(h->rt));
}

/* ------------------------------------------------------------- batches */

typedef struct frame {
    sh_block_t *block;
    sh_slice_t records;
} frame_t;

/* One batch of n records with timestamps ts.., in a block of its own. */
static frame_t mk_frame(int n, int tag, int64_t ts)
{
    sh_record_spec_t recs[64];
    char vals[64][48];
    assert_true(n <= 64);
    for (int i = 0; i < n; i++) {
        snprintf(vals[i], sizeof(vals[i]), "value-%04d-%04d-xxxxxxxxxxxxxxxx", tag, i);
        memset(&recs[i], 0, sizeof(recs[i]));
        recs[i].timestamp = ts + i;
        recs[i].value = sh_slice_str(vals[i]);
    }
    sh_record_batch_spec_t spec;
    sh_record_batch_spec_init(&spec);
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

static void on_appended(sh_plog_append_t *a)
{
    (*(int *)a->arg)++;
}

/* Append one durable batch of n records; returns its base offset. */
static int64_t h_append(h_t *h, int32_t part, int n, int64_t ts)
{
    static int tag;
    frame_t f = mk_frame(n, tag++, ts);
    sh_plog_append_t a;
    memset(&a, 0, sizeof(a));
    int done = 0;
    a.block = f.block;
    a.records = f.records;
    a.produce_version = 9;
    a.wait_durable = true;
    a.done = on_appended;
    a.arg = &done;
    assert_int_equal(sh_plog_append_start(h->parts[part].log, &a), SH_OK);
    if (a.pending)
        PUMP_UNTIL(h, done == 1);
    assert_int_equal(a.err, 0);
    sh_block_unref(f.block);
    return a.base_offset;
}

/* Upload everything durable now: one object, one chunk per partition. */
static void h_upload(h_t *h)
{
    PUMP_UNTIL(h, !sh_uploader_busy(h->up));
    assert_int_equal(sh_uploader_flush(h->up, sh_clock_mono_ms()), SH_OK);
    PUMP_UNTIL(h, !sh_uploader_busy(h->up));
}

/* The key of the object holding `offset` of a partition (heap copy). */
static char *h_key_at(h_t *h, int32_t part, int64_t offset)
{
    sh_plog_slice_t sl[4];
    sh_plog_read_t rd;
    assert_int_equal(sh_plog_read(h->parts[part].log, offset, 1 << 20, true, sl, 4, &rd), SH_OK);
    assert_int_equal(rd.where, SH_PLOG_OBJECT);
    return strdup(rd.chunk.object_key);
}

static bool h_exists(h_t *h, const char *key)
{
    tsu_res_t r;
    tsu_head(h->store, key, &r);
    sh_err_t err = r.err;
    tsu_res_fini(&r);
    assert_true(err == SH_OK || err == SH_E_NOTFOUND);
    return err == SH_OK;
}

static size_t h_objects(h_t *h)
{
    tsu_res_t r;
    tsu_list(h->store, "", NULL, 0, &r);
    size_t n = r.nentries;
    tsu_res_fini(&r);
    return n;
}

static size_t h_unreferenced(h_t *h)
{
    sh_arena_t a;
    sh_arena_init(&a, 4096);
    sh_meta_object_t *o = NULL;
    size_t n = 0;
    assert_int_equal(sh_meta_objects_unreferenced(h->meta, 100, &a, &o, &n), SH_OK);
    sh_arena_fini(&a);
    return n;
}

static int64_t h_meta_log_start(h_t *h, int32_t part)
{
    sh_meta_partition_t row;
    assert_int_equal(sh_meta_partition_get(h->meta, (sh_meta_tp_t){h->topic, part}, &row),
                     SH_OK);
    return row.log_start_offset;
}

static sh_err_t h_read_err(h_t *h, int32_t part, int64_t offset, sh_plog_read_t *rd)
{
    sh_plog_slice_t sl[16];
    return sh_plog_read(h->parts[part].log, offset, 1 << 20, true, sl, 16, rd);
}

typedef struct adv {
    int calls;
    sh_err_t err;
    int64_t log_start;
} adv_t;

static void on_adv(void *arg, sh_err_t err, int64_t log_start)
{
    adv_t *a = arg;
    a->calls++;
    a->err = err;
    a->log_start = log_start;
}

static int64_t h_delete_records(h_t *h, int32_t part, int64_t offset)
{
    adv_t a = {0};
    assert_int_equal(sh_retention_advance_start(h->rt, h->parts[part].log, offset, on_adv, &a),
                     SH_OK);
    assert_int_equal(a.calls, 0); /* never from inside the call */
    PUMP_UNTIL(h, a.calls == 1);
    assert_int_equal(a.err, SH_OK);
    PUMP_UNTIL(h, !sh_retention_busy(h->rt)); /* the sweep it asked for */
    return a.log_start;
}

/* ---------------------------------------------------------------- tests */

/* retention.ms: whole chunks older than the cutoff go, oldest first; an
 * object shared with another partition's young chunk stays. */
static void test_time_retention_shared_objects(void **state)
{
    (void)state;
    h_t *h = h_new();
    h_open(h, 0);
    h_open(h, 1);
    h_rt_new(h);
    /* upload 1: p0 old [0,5), p1 young [0,5): one shared object */
    h_append(h, 0, 5, T0 - 3 * HOUR);
    h_append(h, 1, 5, T0 - 1000);
    h_upload(h);
    /* upload 2: p0 old [5,10) alone */
    h_append(h, 0, 5, T0 - 2 * HOUR);
    h_upload(h);
    /* upload 3: p0 young [10,15) */
    h_append(h, 0, 5, T0 - 500);
    h_upload(h);
    /* p0 [15,18), old but never uploaded */
    h_append(h, 0, 3, T0 - 5 * HOUR);
    char *k1 = h_key_at(h, 0, 0), *k1b = h_key_at(h, 1, 0);
    char *k2 = h_key_at(h, 0, 5), *k3 = h_key_at(h, 0, 10);
    assert_string_equal(k1, k1b);
    assert_int_equal(h_objects(h), 3);

    /* nothing is past retention while retention is off */
    h_pass(h);
    assert_int_equal(sh_plog_log_start(h->parts[0].log), 0);

    h->parts[0].retention_ms = HOUR;
    h->parts[1].retention_ms = HOUR;
    h_pass(h);
    assert_int_equal(sh_plog_log_start(h->parts[0].log), 10);
    assert_int_equal(h_meta_log_start(h, 0), 10);
    assert_int_equal(sh_plog_log_start(h->parts[1].log), 0);
    assert_false(h_exists(h, k2));
    assert_true(h_exists(h, k1)); /* p1's young chunk still lives there */
    assert_true(h_exists(h, k3));
    assert_int_equal(h_unreferenced(h), 0);
    sh_plog_chunk_stats_t cs;
    sh_plog_chunk_stats(h->parts[0].log, &cs);
    assert_int_equal(cs.live, 1);
    assert_int_equal(cs.dead, 0);
    sh_plog_read_t rd;
    assert_int_equal(h_read_err(h, 0, 9, &rd), SH_KERR_OFFSET_OUT_OF_RANGE);
    assert_int_equal(h_read_err(h, 0, 0, &rd), SH_KERR_OFFSET_OUT_OF_RANGE);
    assert_int_equal(h_read_err(h, 0, 10, &rd), SH_OK);
    assert_int_equal(rd.where, SH_PLOG_OBJECT);
    assert_int_equal(rd.chunk.base_offset, 10);
    assert_int_equal(h_read_err(h, 1, 0, &rd), SH_OK);
    assert_int_equal(rd.where, SH_PLOG_OBJECT);

    /* two hours later everything uploaded is old: every object goes, the
     * tail [15,18) stays however old its records are */
    h->wall = T0 + 2 * HOUR;
    h_pass(h);
    assert_int_equal(sh_plog_log_start(h->parts[0].log), 15);
    assert_int_equal(sh_plog_log_start(h->parts[1].log), 5);
    assert_int_equal(h_objects(h), 0);
    assert_int_equal(h_unreferenced(h), 0);
    assert_int_equal(h_read_err(h, 0, 15, &rd), SH_OK);
    assert_int_equal(rd.where, SH_PLOG_TAIL);
    assert_int_equal(rd.nslices, 1);

    sh_retention_stats_t rs;
    sh_retention_stats(h->rt, &rs);
    assert_int_equal(rs.objects_deleted, 3);
    assert_int_equal(rs.failures, 0);
    assert_true(rs.passes >= 3);
    free(k1);
    free(k1b);
    free(k2);
    free(k3);
    h_free(h);
}

/* Retention never touches data that is only in the WAL and the tail. */
static void test_tail_never_deleted(void **state)
{
    (void)state;
    h_t *h = h_new();
    h_open(h, 0);
    h_rt_new(h);
    h->parts[0].retention_ms = 0;
    h->parts[0].retention_bytes = 0;
    h_append(h, 0, 4, T0 - 10 * HOUR);
    h_append(h, 0, 4, T0 - 9 * HOUR);
    h_pass(h);
    assert_int_equal(sh_plog_log_start(h->parts[0].log), 0);
    sh_plog_read_t rd;
    assert_int_equal(h_read_err(h, 0, 0, &rd), SH_OK);
    assert_int_equal(rd.where, SH_PLOG_TAIL);
    /* once uploaded it is fair game */
    h_upload(h);
    h_append(h, 0, 2, T0 - 8 * HOUR);
    h_pass(h);
    assert_int_equal(sh_plog_log_start(h->parts[0].log), 8);
    assert_int_equal(h_objects(h), 0);
    assert_int_equal(h_read_err(h, 0, 8, &rd), SH_OK);
    assert_int_equal(rd.where, SH_PLOG_TAIL);
    h_free(h);
}

/* retention.bytes: drop the oldest chunks while at least retention.bytes
 * remain (Kafka's rule), whole chunks only. */
static void test_size_retention(void **state)
{
    (void)state;
    h_t *h = h_new();
    h_open(h, 0);
    h_rt_new(h);
    char *keys[5];
    for (int i = 0; i < 5; i++) {
        h_append(h, 0, 10, T0 - 1000 + i);
        h_upload(h);
        keys[i] = h_key_at(h, 0, i * 10);
    }
    sh_plog_chunk_stats_t cs;
    sh_plog_chunk_stats(h->parts[0].log, &cs);
    assert_int_equal(cs.live, 5);
    int64_t one = cs.first_bytes;
    assert_int_equal(cs.live_bytes, 5 * one); /* equal batches */

    /* exactly three chunks' worth: two go */
    h->parts[0].retention_bytes = 3 * one;
    h_pass(h);
    assert_int_equal(sh_plog_log_start(h->parts[0].log), 20);
    assert_int_equal(h_meta_log_start(h, 0), 20);
    assert_false(h_exists(h, keys[0]));
    assert_false(h_exists(h, keys[1]));
    assert_true(h_exists(h, keys[2]));
    /* a budget one byte short of two chunks keeps two (never below it) */
    h->parts[0].retention_bytes = 2 * one - 1;
    h_pass(h);
    assert_int_equal(sh_plog_log_start(h->parts[0].log), 30);
    assert_int_equal(h_objects(h), 2);
    /* the same budget again: nothing more */
    h_pass(h);
    assert_int_equal(sh_plog_log_start(h->parts[0].log), 30);
    for (int i = 0; i < 5; i++)
        free(keys[i]);
    h_free(h);
}

/* DeleteRecords: inside a chunk, below the current start, into the tail,
 * dead chunks committed afterwards, and across a restart. */
static void test_delete_records(void **state)
{
    (void)state;
    h_t *h = h_new();
    h_open(h, 0);
    h_open(h, 1);
    h_rt_new(h);
    PUMP_UNTIL(h, !sh_retention_busy(h->rt));
    h_append(h, 0, 10, T0);       /* [0,10) */
    h_append(h, 1, 3, T0);        /* p1 [0,3), shares the first object */
    h_upload(h);
    h_append(h, 0, 10, T0);       /* [10,20) */
    h_upload(h);
    char *k1 = h_key_at(h, 0, 0), *k2 = h_key_at(h, 0, 10);

    /* inside the first chunk: the exact offset, the chunk stays */
    assert_int_equal(h_delete_records(h, 0, 4), 4);
    assert_int_equal(h_meta_log_start(h, 0), 4);
    sh_plog_read_t rd;
    assert_int_equal(h_read_err(h, 0, 3, &rd), SH_KERR_OFFSET_OUT_OF_RANGE);
    assert_int_equal(h_read_err(h, 0, 4, &rd), SH_OK);
    assert_int_equal(rd.where, SH_PLOG_OBJECT);
    assert_int_equal(rd.chunk.base_offset, 0); /* the straddling batch, whole */
    assert_true(h_exists(h, k1));
    /* below the current start: nothing moves, the current start answers */
    assert_int_equal(h_delete_records(h, 0, 2), 4);

    /* past the first chunk: p0's chunk goes, the object stays for p1 */
    assert_int_equal(h_delete_records(h, 0, 12), 12);
    assert_true(h_exists(h, k1));
    assert_true(h_exists(h, k2));
    assert_int_equal(h_delete_records(h, 1, 3), 3);
    assert_false(h_exists(h, k1)); /* p1's went too: unreferenced, deleted */

    /* into the tail: [20,30) and [30,40) are not uploaded */
    h_append(h, 0, 10, T0);
    h_append(h, 0, 10, T0);
    assert_int_equal(h_delete_records(h, 0, 35), 35);
    assert_false(h_exists(h, k2));
    sh_plog_chunk_stats_t cs;
    sh_plog_chunk_stats(h->parts[0].log, &cs);
    assert_int_equal(cs.live + cs.dead, 0);
    assert_int_equal(h_read_err(h, 0, 34, &rd), SH_KERR_OFFSET_OUT_OF_RANGE);
    assert_int_equal(h_read_err(h, 0, 35, &rd), SH_OK);
    assert_int_equal(rd.where, SH_PLOG_TAIL);
    assert_int_equal(rd.nslices, 1);
    /* the timestamp lookup skips what lies below the log start */
    sh_plog_slice_t one;
    assert_int_equal(sh_plog_find_time(h->parts[0].log, 0, &one, &rd), SH_OK);
    assert_int_equal(one.base_offset, 30);

    /* the whole tail: up to the high watermark; then the upload commits a
     * chunk that lies wholly below the log start (dead) */
    assert_int_equal(h_delete_records(h, 0, sh_plog_high_watermark(h->parts[0].log)), 40);
    h_upload(h);
    sh_plog_chunk_stats(h->parts[0].log, &cs);
    assert_int_equal(cs.dead, 1);
    assert_int_equal(h_objects(h), 1);
    h_pass(h); /* sweeps it */
    sh_plog_chunk_stats(h->parts[0].log, &cs);
    assert_int_equal(cs.dead, 0);
    assert_int_equal(h_objects(h), 0);

    /* the log start is durable: a reopened partition keeps it */
    h_append(h, 0, 5, T0);        /* [40,45) */
    h_close(h, 0);
    h_open(h, 0);
    assert_int_equal(sh_plog_log_start(h->parts[0].log), 40);
    assert_int_equal(h_read_err(h, 0, 39, &rd), SH_KERR_OFFSET_OUT_OF_RANGE);
    assert_int_equal(h_read_err(h, 0, 40, &rd), SH_OK);
    assert_int_equal(rd.where, SH_PLOG_TAIL);
    sh_retention_stats_t rs;
    sh_retention_stats(h->rt, &rs);
    assert_int_equal(rs.failures, 0);
    free(k1);
    free(k2);
    h_free(h);
}

/* A dead chunk committed before a restart is no longer in the index; the
 * first pass after the start still sweeps it from the store. */
static void test_dead_chunk_swept_after_restart(void **state)
{
    (void)state;
    h_t *h = h_new();
    h_open(h, 0);
    h_rt_new(h);
    PUMP_UNTIL(h, !sh_retention_busy(h->rt));
    h_append(h, 0, 10, T0);
    assert_int_equal(h_delete_records(h, 0, 10), 10);
    h_upload(h);                  /* chunk [0,10): dead on arrival */
    assert_int_equal(h_objects(h), 1);
    /* "crash" before any pass: a new engine, a reopened partition */
    sh_retention_free(h->rt);
    h->rt = NULL;
    h_close(h, 0);
    h_open(h, 0);
    sh_plog_chunk_stats_t cs;
    sh_plog_chunk_stats(h->parts[0].log, &cs);
    assert_int_equal(cs.live + cs.dead, 0);
    h_rt_new(h);
    sh_retention_drive(h->rt, sh_clock_mono_ms()); /* the first pass starts at once */
    assert_true(sh_retention_busy(h->rt));
    PUMP_UNTIL(h, !sh_retention_busy(h->rt));
    assert_int_equal(h_objects(h), 0);
    assert_int_equal(h_unreferenced(h), 0);
    h_free(h);
}

/* Leftovers of a crash between the metadata commit and the object delete,
 * or between the delete and the forget: the first pass finishes both. */
static void test_crash_leftovers(void **state)
{
    (void)state;
    h_t *h = h_new();
    h_open(h, 0);
    char *keys[5];
    for (int i = 0; i < 5; i++) {
        h_append(h, 0, 2, T0);
        h_upload(h);
        keys[i] = h_key_at(h, 0, i * 2);
    }
    /* the store moved the log start, nobody deleted anything */
    sh_arena_t a;
    sh_arena_init(&a, 4096);
    sh_meta_object_t *freed = NULL;
    size_t n = 0;
    assert_int_equal(sh_meta_partition_log_start_advance(h->meta, (sh_meta_tp_t){h->topic, 0},
                                                         8, &a, &freed, &n),
                     SH_OK);
    assert_int_equal(n, 4);
    sh_arena_fini(&a);
    /* one of them was deleted from the store already; the broker restarts */
    assert_int_equal(tsu_delete(h->store, keys[1]), SH_OK);
    h_close(h, 0);
    h_open(h, 0);
    assert_int_equal(h_unreferenced(h), 4);
    assert_int_equal(h_objects(h), 4);

    h_rt_new(h); /* sweep_batch 2: three listings */
    sh_retention_drive(h->rt, sh_clock_mono_ms());
    PUMP_UNTIL(h, !sh_retention_busy(h->rt));
    assert_int_equal(h_unreferenced(h), 0);
    assert_int_equal(h_objects(h), 1);
    assert_true(h_exists(h, keys[4]));
    assert_int_equal(sh_plog_log_start(h->parts[0].log), 8);
    sh_retention_stats_t rs;
    sh_retention_stats(h->rt, &rs);
    assert_int_equal(rs.objects_deleted, 4);
    for (int i = 0; i < 5; i++)
        free(keys[i]);
    h_free(h);
}

/* A failing object store: objects stay listed and a later pass deletes
 * them; nothing is forgotten that the store did not confirm deleted. A
 * delete that happened but was reported failed is simply done again. */
static void test_store_failure_retried(void **state)
{
    (void)state;
    h_t *h = h_new();
    h_open(h, 0);
    h_rt_new(h);
    PUMP_UNTIL(h, !sh_retention_busy(h->rt));
    h_append(h, 0, 3, T0);
    h_upload(h);
    h_append(h, 0, 3, T0);
    h_upload(h);
    char *k1 = h_key_at(h, 0, 0), *k2 = h_key_at(h, 0, 3);
    sh_objstore_fault_rule_t refuse = {.count = 1, .err = SH_E_IO, .retriable = true};
    assert_int_equal(sh_objstore_fault_set(h->store, SH_OBJSTORE_DELETE_MANY, &refuse), SH_OK);
    assert_int_equal(h_delete_records(h, 0, 3), 3);
    assert_int_equal(sh_objstore_fault_injected(h->store, SH_OBJSTORE_DELETE_MANY), 1);
    assert_true(h_exists(h, k1));
    assert_int_equal(h_unreferenced(h), 1);
    sh_retention_stats_t rs;
    sh_retention_stats(h->rt, &rs);
    assert_int_equal(rs.failures, 1);
    assert_int_equal(rs.objects_deleted, 0);
    h_pass(h);
    assert_false(h_exists(h, k1));
    assert_int_equal(h_unreferenced(h), 0);

    /* deleted, but the answer was lost: listed again, deleted again */
    sh_objstore_fault_rule_t lost = {.count = 1, .err = SH_E_IO, .after = true};
    assert_int_equal(sh_objstore_fault_set(h->store, SH_OBJSTORE_DELETE_MANY, &lost), SH_OK);
    assert_int_equal(h_delete_records(h, 0, 6), 6);
    assert_false(h_exists(h, k2));
    assert_int_equal(h_unreferenced(h), 1);
    h_pass(h);
    assert_int_equal(h_unreferenced(h), 0);
    sh_retention_stats(h->rt, &rs);
    assert_int_equal(rs.failures, 2);
    assert_int_equal(rs.objects_deleted, 2);
    free(k1);
    free(k2);
    h_free(h);
}

/* Freeing the engine with work in flight: completions only release, and a
 * DeleteRecords still gets its answer. */
static void test_free_with_work_in_flight(void **state)
{
    (void)state;
    h_t *h = h_new();
    h_open(h, 0);
    h_rt_new(h);
    PUMP_UNTIL(h, !sh_retention_busy(h->rt));
    h_append(h, 0, 5, T0 - 5 * HOUR);
    h_upload(h);
    h_append(h, 0, 5, T0 - 5 * HOUR);
    h_upload(h);
    adv_t a = {0};
    assert_int_equal(sh_retention_advance_start(h->rt, h->parts[0].log, 5, on_adv, &a), SH_OK);
    h->parts[0].retention_ms = HOUR;
    assert_int_equal(sh_retention_pass_start(h->rt, sh_clock_mono_ms()), SH_OK);
    assert_int_equal(sh_retention_pass_start(h->rt, sh_clock_mono_ms()), SH_E_AGAIN);
    sh_retention_free(h->rt);
    h->rt = NULL;
    PUMP_UNTIL(h, a.calls == 1);
    assert_int_equal(a.err, SH_OK);
    assert_int_equal(a.log_start, 5);
    for (int i = 0; i < 10; i++)
        h_pump(h);
    /* both moves were in the metadata worker's queue already (the pass
     * submits its first partition at once) and still reached the
     * partition; the sweep never started: a later engine does it */
    assert_int_equal(sh_plog_log_start(h->parts[0].log), 10);
    assert_int_equal(h_objects(h), 2);
    assert_int_equal(h_unreferenced(h), 2);
    h_rt_new(h);
    h_pass(h);
    assert_int_equal(h_objects(h), 0);
    assert_int_equal(h_unreferenced(h), 0);
    h_free(h);
}

/* Arguments no correct caller passes, and a partition that is gone. */
static void test_advance_refusals(void **state)
{
    (void)state;
    h_t *h = h_new();
    h_open(h, 0);
    h_rt_new(h);
    adv_t a = {0};
    assert_int_equal(sh_retention_advance_start(h->rt, h->parts[0].log, -1, on_adv, &a),
                     SH_E_INVAL);
    sh_plog_fence(h->parts[0].log, SH_KERR_NOT_LEADER_OR_FOLLOWER, "test");
    assert_int_equal(sh_retention_advance_start(h->rt, h->parts[0].log, 0, on_adv, &a),
                     SH_KERR_NOT_LEADER_OR_FOLLOWER);
    assert_int_equal(a.calls, 0);
    h_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_retention_shared_objects),
        cmocka_unit_test(test_tail_never_deleted),
        cmocka_unit_test(test_size_retention),
        cmocka_unit_test(test_delete_records),
        cmocka_unit_test(test_dead_chunk_swept_after_restart),
        cmocka_unit_test(test_crash_leftovers),
        cmocka_unit_test(test_store_failure_retried),
        cmocka_unit_test(test_free_with_work_in_flight),
        cmocka_unit_test(test_advance_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
