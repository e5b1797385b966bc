/*
 * shbench.c - Kafka load generator and checker for StreamHouse benchmarks.
 *
 * A librdkafka client (bench code only, never linked into the broker) in
 * the spirit of kafka-producer-perf-test and OpenMessaging Benchmark, that
 * refuses to report a figure it has not verified:
 *
 *   produce  N producer instances (one rd_kafka_t and one thread each) send
 *            records until a count or a duration is reached, optionally at a
 *            fixed rate. Every record carries a 32-byte prefix (magic, run
 *            nonce, producer instance, value length, sequence number, send
 *            time). Delivery reports give the produce latency; each record
 *            must be acknowledged exactly once, without error, and the
 *            offsets acknowledged in a partition must increase.
 *   consume  reads a topic from offset 0 of every partition with the legacy
 *            (group-less) consumer API, so it works before a broker serves
 *            consumer groups, until --records records and the end of every
 *            partition are reached. Each (producer, sequence) must appear
 *            exactly once, in increasing order within a partition, and the
 *            sequences of each producer must have no holes.
 *   e2e      both at once in one process: the consumer starts first, the
 *            producers follow, and the consumer measures end-to-end latency
 *            (receive time minus the send time in the record).
 *
 * Any lost, duplicated, reordered or failed record makes the run exit 1 and
 * print FAILED instead of a throughput. Exit 3 means the broker does not
 * serve what the workload needs (an API missing from ApiVersions, a topic
 * created with the wrong partition count); exit 2 is a usage or setup error.
 *
 * Output: a human summary on stderr and one JSON line on stdout starting
 * with "SHBENCH " so a driver can pick it out of client logs.
 *
 * Threads: main (setup, reporting), one per producer instance (produce loop
 * plus its delivery reports, which librdkafka runs from rd_kafka_poll and
 * rd_kafka_flush in that same thread, so per-producer state needs no lock),
 * and one consumer thread in e2e mode. The only shared state is the stop
 * flag, the deadline and the producers-finished handoff to the consumer,
 * all atomics. Each thread owns its histogram; main merges after join.
 */
#include "bench/shb_util.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SHB_MAGIC     0x31424853u /* "SHB1" little endian */
#define SHB_HDR_LEN   32
#define SHB_MAX_PROPS 64

/* exit codes */
#define EXIT_VERIFY  1
#define EXIT_SETUP   2
#define EXIT_UNSERVED 3

/* Kafka API keys the probe looks for */
enum { API_PRODUCE = 0, API_FETCH = 1, API_METADATA = 3, API_CREATE_TOPICS = 19,
       API_INIT_PRODUCER_ID = 22, API_NKEYS = 80 };

typedef enum { MODE_PRODUCE, MODE_CONSUME, MODE_E2E } shb_mode_t;
typedef enum { KEYS_NONE, KEYS_UNIFORM, KEYS_ZIPF } shb_keys_t;
typedef enum { SPREAD_DEFAULT, SPREAD_RR } shb_spread_t;
/* test-only faults, so the smoke run can prove the checks fire */
typedef enum { INJECT_NONE, INJECT_SKIP, INJECT_DUP, INJECT_REORDER } shb_inject_t;
typedef enum { PAYLOAD_TEXT, PAYLOAD_RANDOM, PAYLOAD_REPEAT } shb_payload_t;

typedef struct {
    const char  *bootstrap;
    const char  *topic;
    const char  *label;
    shb_mode_t   mode;
    int          partitions;
    int          record_size;
    shb_keys_t   keys;
    uint32_t     key_count;
    shb_spread_t spread;
    uint32_t     spread_run;
    uint64_t     records;
    double       duration_s;
    double       rate;
    const char  *acks;
    const char  *compression;
    int          linger_ms;
    int          batch_size;
    int          idempotence;
    int          producers;
    pid_t        broker_pid;
    int          timeout_s;
    int          fetch_wait_ms;
    int          create;
    const char  *props[SHB_MAX_PROPS];
    int          nprops;
    shb_inject_t inject;
    uint64_t     inject_at;
    shb_payload_t payload;
} shb_opts_t;

static shb_opts_t opt = {
    .bootstrap = "127.0.0.1:9092",
    .mode = MODE_PRODUCE,
    .partitions = 1,
    .record_size = 100,
    .keys = KEYS_NONE,
    .spread = SPREAD_DEFAULT,
    .spread_run = 1,
    .acks = "1",
    .compression = "none",
    .linger_ms = -1,
    .batch_size = -1,
    .producers = 1,
    .timeout_s = 60,
    .fetch_wait_ms = -1,
    .create = 1,
};

static atomic_int g_stop;          /* SIGINT/SIGTERM or a fatal error */
static uint32_t   g_nonce;         /* identifies this run's records */
static double    *g_zipf_cdf;      /* read-only after setup */
static uint8_t   *g_pool;          /* payload bodies, read-only after setup */
#define SHB_POOL_LEN (4u << 20)

/* ------------------------------------------------------------------ helpers */

static void die(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "shbench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(code);
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

typedef struct {
    uint32_t nonce, instance, len;
    uint64_t seq;
    int64_t  ts_us;
} shb_hdr_t;

static int hdr_decode(const void *payload, size_t len, shb_hdr_t *h)
{
    const uint8_t *p = payload;
    if (!p || len < SHB_HDR_LEN || get32(p) != SHB_MAGIC)
        return -1;
    h->nonce = get32(p + 4);
    h->instance = get32(p + 8);
    h->len = get32(p + 12);
    h->seq = get64(p + 16);
    h->ts_us = (int64_t)get64(p + 24);
    return h->len == len ? 0 : -1;
}

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64*: plenty for choosing keys */
    uint64_t x = *s;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static uint32_t key_pick(uint64_t *rng)
{
    if (opt.keys == KEYS_UNIFORM)
        return (uint32_t)(rng_next(rng) % opt.key_count);
    double u = (double)(rng_next(rng) >> 11) / 9007199254740992.0;
    uint32_t lo = 0, hi = opt.key_count - 1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (g_zipf_cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* YCSB's skew (theta 0.99): a few keys take most records */
static void zipf_init(uint32_t k)
{
    g_zipf_cdf = malloc(sizeof(double) * k);
    if (!g_zipf_cdf)
        die(EXIT_SETUP, "out of memory for %u zipf keys", k);
    double sum = 0;
    for (uint32_t i = 0; i < k; i++) {
        sum += 1.0 / pow((double)(i + 1), 0.99);
        g_zipf_cdf[i] = sum;
    }
    for (uint32_t i = 0; i < k; i++)
        g_zipf_cdf[i] /= sum;
}

/*
 * Record bodies are slices of a 4 MiB pool at random offsets, so that
 * compression sees data like a real topic's instead of one record repeated
 * (kafka-producer-perf-test reuses a single payload, which lz4 shrinks to
 * almost nothing and inflates compressed throughput). "text" is JSON-like
 * event lines from small vocabularies (lz4 shrinks it about 3x), "random"
 * is incompressible, "repeat" is the same body every time.
 */
static void pool_init(void)
{
    g_pool = malloc(SHB_POOL_LEN + 64);
    if (!g_pool)
        die(EXIT_SETUP, "out of memory for the payload pool");
    uint64_t rng = 0x9E3779B97F4A7C15ull ^ g_nonce;
    if (opt.payload == PAYLOAD_RANDOM) {
        for (size_t i = 0; i < SHB_POOL_LEN; i += 8) {
            uint64_t v = rng_next(&rng);
            memcpy(g_pool + i, &v, 8);
        }
        return;
    }
    static const char *events[] = { "click", "view", "purchase", "login", "logout", "search",
                                    "add_to_cart", "share" };
    static const char *pages[] = { "/home", "/cart", "/checkout", "/product/detail",
                                   "/search/results", "/account/settings", "/help" };
    static const char *agents[] = { "Mozilla/5.0 (X11; Linux x86_64)", "okhttp/4.12.0",
                                    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4)",
                                    "python-requests/2.31" };
    size_t off = 0;
    while (off < SHB_POOL_LEN) {
        char line[512];
        uint64_t a = rng_next(&rng), b = rng_next(&rng);
        int n = snprintf(line, sizeof(line),
                         "{\"user\":\"u%06u\",\"session\":\"%016" PRIx64 "\",\"event\":\"%s\","
                         "\"page\":\"%s\",\"ms\":%u,\"price\":%u.%02u,\"agent\":\"%s\"}\n",
                         (unsigned)(a % 50000), b, events[(a >> 20) % 8], pages[(a >> 28) % 7],
                         (unsigned)((a >> 36) % 5000), (unsigned)((b >> 8) % 500),
                         (unsigned)(b % 100), agents[(a >> 44) % 4]);
        size_t len = (size_t)n < SHB_POOL_LEN - off ? (size_t)n : SHB_POOL_LEN - off;
        memcpy(g_pool + off, line, len);
        off += len;
    }
}

/* growable bitmap of sequence numbers seen */
typedef struct {
    uint8_t *bits;
    uint64_t cap; /* in bits */
} shb_bits_t;

/* Sets bit seq; returns 1 if it was already set, -1 on allocation failure. */
static int bits_test_set(shb_bits_t *b, uint64_t seq)
{
    if (seq >= b->cap) {
        uint64_t ncap = b->cap ? b->cap : 1 << 16;
        while (ncap <= seq)
            ncap *= 2;
        uint8_t *n = realloc(b->bits, ncap / 8);
        if (!n)
            return -1;
        memset(n + b->cap / 8, 0, (ncap - b->cap) / 8);
        b->bits = n;
        b->cap = ncap;
    }
    uint8_t m = (uint8_t)(1u << (seq & 7));
    int was = (b->bits[seq >> 3] & m) != 0;
    b->bits[seq >> 3] |= m;
    return was;
}

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&g_stop, 1);
}

static void set_conf(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char errstr[512];
    if (rd_kafka_conf_set(conf, k, v, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
        die(EXIT_SETUP, "librdkafka property %s=%s: %s", k, v, errstr);
}

/* --set key=value properties given on the command line, applied last */
static void apply_user_props(rd_kafka_conf_t *conf)
{
    for (int i = 0; i < opt.nprops; i++) {
        char buf[512];
        snprintf(buf, sizeof(buf), "%s", opt.props[i]);
        char *eq = strchr(buf, '=');
        if (!eq)
            die(EXIT_SETUP, "--set expects key=value, got \"%s\"", opt.props[i]);
        *eq = '\0';
        set_conf(conf, buf, eq + 1);
    }
}

static rd_kafka_conf_t *base_conf(const char *client_id)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set_conf(conf, "bootstrap.servers", opt.bootstrap);
    set_conf(conf, "client.id", client_id);
    /* warnings and errors only: a benchmark's stderr should stay readable */
    set_conf(conf, "log_level", "4");
    return conf;
}

/* ------------------------------------------------------------- topic setup */

typedef struct {
    int         partitions;   /* as the broker reports them */
    const char *how;          /* created | exists | auto-created | existing */
} shb_topic_info_t;

/* Wait until the topic's metadata shows every partition with a leader. */
static int topic_wait(rd_kafka_t *rk, int timeout_ms, int *partitions, char *err, size_t errlen)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, opt.topic, NULL);
    int64_t deadline = shb_now_us() + (int64_t)timeout_ms * 1000;
    int rc = -1;
    snprintf(err, errlen, "no metadata for topic %s", opt.topic);
    while (shb_now_us() < deadline && !atomic_load(&g_stop)) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 5000);
        if (e) {
            snprintf(err, errlen, "metadata request failed: %s", rd_kafka_err2str(e));
        } else if (md->topic_cnt != 1) {
            snprintf(err, errlen, "metadata for %s has %d topics", opt.topic, md->topic_cnt);
        } else if (md->topics[0].err) {
            snprintf(err, errlen, "topic %s: %s", opt.topic, rd_kafka_err2str(md->topics[0].err));
        } else if (md->topics[0].partition_cnt <= 0) {
            snprintf(err, errlen, "topic %s has no partitions", opt.topic);
        } else {
            int ready = 1;
            for (int i = 0; i < md->topics[0].partition_cnt; i++) {
                const struct rd_kafka_metadata_partition *p = &md->topics[0].partitions[i];
                if (p->err || p->leader < 0) {
                    snprintf(err, errlen, "topic %s partition %d: %s", opt.topic, p->id,
                             p->err ? rd_kafka_err2str(p->err) : "no leader");
                    ready = 0;
                    break;
                }
            }
            if (ready) {
                *partitions = md->topics[0].partition_cnt;
                rc = 0;
            }
        }
        if (md)
            rd_kafka_metadata_destroy(md);
        if (rc == 0)
            break;
        usleep(200 * 1000);
    }
    rd_kafka_topic_destroy(rkt);
    return rc;
}

/* Whether the topic is already known to the broker, without triggering
 * automatic creation (a metadata request for all topics never creates). */
static int topic_exists(rd_kafka_t *rk)
{
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(rk, 1, NULL, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    int found = 0;
    for (int i = 0; i < md->topic_cnt && !found; i++)
        found = !md->topics[i].err && !strcmp(md->topics[i].topic, opt.topic);
    rd_kafka_metadata_destroy(md);
    return found;
}

/* CreateTopics through the admin API. Returns 0 created, 1 already exists,
 * -1 failed (reason in err). */
static int topic_create(rd_kafka_t *rk, char *err, size_t errlen)
{
    char errstr[512];
    int rc = -1;
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(opt.topic, opt.partitions, 1, errstr,
                                                    sizeof(errstr));
    if (!nt) {
        snprintf(err, errlen, "%s", errstr);
        return -1;
    }
    rd_kafka_AdminOptions_t *ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(ao, 10000, errstr, sizeof(errstr));
    rd_kafka_AdminOptions_set_request_timeout(ao, 15000, errstr, sizeof(errstr));
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, ao, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 20000);
    if (!ev) {
        snprintf(err, errlen, "CreateTopics timed out");
    } else if (rd_kafka_event_error(ev)) {
        snprintf(err, errlen, "CreateTopics: %s", rd_kafka_event_error_string(ev));
    } else {
        size_t cnt = 0;
        const rd_kafka_topic_result_t **tr =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
        rd_kafka_resp_err_t e = cnt == 1 ? rd_kafka_topic_result_error(tr[0])
                                         : RD_KAFKA_RESP_ERR__BAD_MSG;
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            rc = 0;
        else if (e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
            rc = 1;
        else
            snprintf(err, errlen, "CreateTopics %s: %s", opt.topic,
                     cnt == 1 && rd_kafka_topic_result_error_string(tr[0])
                         ? rd_kafka_topic_result_error_string(tr[0])
                         : rd_kafka_err2str(e));
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_NewTopic_destroy(nt);
    return rc;
}

static void topic_setup(const int16_t *apis, shb_topic_info_t *ti)
{
    char err[512];
    rd_kafka_conf_t *conf = base_conf("shbench-setup");
    apply_user_props(conf);
    char errstr[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk)
        die(EXIT_SETUP, "could not create setup client: %s", errstr);

    int want_create = opt.create && opt.mode != MODE_CONSUME;
    ti->how = "existing";
    if (want_create && apis[API_CREATE_TOPICS] >= 0) {
        int rc = topic_create(rk, err, sizeof(err));
        if (rc < 0) {
            rd_kafka_destroy(rk);
            die(EXIT_SETUP, "%s", err);
        }
        ti->how = rc == 0 ? "created" : "exists";
    } else if (want_create && !topic_exists(rk)) {
        /* the broker does not serve CreateTopics: a producer's metadata
         * request asks for auto-creation (allow.auto.create.topics) */
        ti->how = "auto-created";
    }
    if (topic_wait(rk, 30000, &ti->partitions, err, sizeof(err)) != 0) {
        rd_kafka_destroy(rk);
        die(opt.mode == MODE_CONSUME ? EXIT_SETUP : EXIT_UNSERVED, "%s", err);
    }
    rd_kafka_destroy(rk);
    if (opt.mode != MODE_CONSUME && ti->partitions != opt.partitions)
        die(EXIT_UNSERVED,
            "topic %s has %d partitions, %d requested (topic %s; %s)", opt.topic,
            ti->partitions, opt.partitions, ti->how,
            apis[API_CREATE_TOPICS] >= 0 ? "delete it or use another name"
                                         : "the broker does not serve CreateTopics");
}

/* ---------------------------------------------------------------- producer */

typedef struct {
    int               idx;
    pthread_t         thr;
    rd_kafka_t       *rk;
    rd_kafka_topic_t *rkt;
    int               partitions;
    uint64_t          target;     /* records to send, UINT64_MAX = until deadline */
    double            rate;       /* records/s, 0 = as fast as possible */
    int64_t           deadline;   /* monotonic us, 0 = none */

    uint64_t          sent;       /* enqueued in librdkafka */
    uint64_t          acked;      /* delivery report without error */
    uint64_t          failed;     /* delivery report with error */
    uint64_t          dup_acks;   /* second report for one sequence */
    uint64_t          bad_reports;/* report whose payload is not ours */
    uint64_t          offset_regress;
    uint64_t          reordered;
    uint64_t          bytes;      /* acknowledged value bytes */
    rd_kafka_resp_err_t first_err;
    int               enqueue_fatal;
    char              enqueue_err[256];
    shb_bits_t        acked_bits;
    int64_t          *last_off;   /* per partition, last acknowledged offset */
    int64_t          *last_seq;   /* per partition, last acknowledged sequence */
    int64_t           t_last_ack;
    shb_hist_t        lat;
} shb_producer_t;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    shb_producer_t *p = opaque;
    shb_hdr_t h;
    if (hdr_decode(m->payload, m->len, &h) != 0 || h.nonce != g_nonce ||
        h.instance != (uint32_t)p->idx) {
        p->bad_reports++;
        return;
    }
    if (m->err) {
        if (!p->failed)
            p->first_err = m->err;
        p->failed++;
        return;
    }
    int was = bits_test_set(&p->acked_bits, h.seq);
    if (was != 0) {
        if (was < 0)
            die(EXIT_SETUP, "out of memory tracking acknowledgements");
        p->dup_acks++;
        return;
    }
    int64_t now = shb_now_us();
    p->acked++;
    p->bytes += m->len;
    p->t_last_ack = now;
    shb_hist_add(&p->lat, (uint64_t)(now - h.ts_us));
    /* acks=0 reports no offset */
    if (m->offset >= 0 && m->partition >= 0 && m->partition < p->partitions) {
        int32_t part = m->partition;
        if (m->offset <= p->last_off[part])
            p->offset_regress++;
        if ((int64_t)h.seq < p->last_seq[part])
            p->reordered++;
        p->last_off[part] = m->offset;
        p->last_seq[part] = (int64_t)h.seq;
    }
}

static rd_kafka_t *producer_new(shb_producer_t *p)
{
    char buf[64], errstr[512];
    snprintf(buf, sizeof(buf), "shbench-p%d", p->idx);
    rd_kafka_conf_t *conf = base_conf(buf);
    set_conf(conf, "acks", opt.acks);
    set_conf(conf, "compression.codec", opt.compression);
    set_conf(conf, "enable.idempotence", opt.idempotence ? "true" : "false");
    /* Java-compatible key hashing; null keys stick to a random partition
     * per batch, like Kafka's default sticky partitioner */
    set_conf(conf, "partitioner", "murmur2_random");
    snprintf(buf, sizeof(buf), "%d", opt.timeout_s * 1000);
    set_conf(conf, "message.timeout.ms", buf);
    if (opt.linger_ms >= 0) {
        snprintf(buf, sizeof(buf), "%d", opt.linger_ms);
        set_conf(conf, "linger.ms", buf);
    }
    if (opt.batch_size > 0) {
        snprintf(buf, sizeof(buf), "%d", opt.batch_size);
        set_conf(conf, "batch.size", buf);
    }
    apply_user_props(conf);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, p);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk)
        die(EXIT_SETUP, "could not create producer: %s", errstr);
    return rk;
}

static void *producer_main(void *arg)
{
    shb_producer_t *p = arg;
    uint8_t *buf = malloc((size_t)opt.record_size);
    if (!buf)
        die(EXIT_SETUP, "out of memory");
    size_t body = (size_t)opt.record_size - SHB_HDR_LEN;
    size_t span = body < SHB_POOL_LEN ? SHB_POOL_LEN - body : 0;
    for (size_t i = 0; i < body; i++)
        buf[SHB_HDR_LEN + i] = g_pool[i % SHB_POOL_LEN];
    put32(buf, SHB_MAGIC);
    put32(buf + 4, g_nonce);
    put32(buf + 8, (uint32_t)p->idx);
    put32(buf + 12, (uint32_t)opt.record_size);

    uint64_t rng = ((uint64_t)g_nonce << 32 | (uint32_t)p->idx) * 0x9E3779B97F4A7C15ull | 1;
    char key[16];
    int64_t start = shb_now_us();
    uint64_t seq = 0;
    /* rr:K sends K consecutive records to one partition, then moves on;
     * instances start on different partitions */
    int32_t rr = (int32_t)(((uint64_t)p->idx * opt.spread_run) % (uint64_t)p->partitions);
    uint32_t run_left = opt.spread_run;

    while (seq < p->target && !atomic_load(&g_stop)) {
        int64_t now = shb_now_us();
        if (p->deadline && now >= p->deadline)
            break;
        if (p->rate > 0) {
            int64_t due = start + (int64_t)((double)seq * 1e6 / p->rate);
            if (now < due) {
                /* serve delivery reports while waiting; ms granularity is
                 * fine, records due in the meantime go out together */
                int ms = (int)((due - now) / 1000);
                rd_kafka_poll(p->rk, ms > 0 ? ms : 0);
                if (ms == 0)
                    usleep((useconds_t)(due - now));
                continue;
            }
        }
        put64(buf + 24, (uint64_t)now);
        int32_t part = RD_KAFKA_PARTITION_UA;
        if (opt.spread == SPREAD_RR)
            part = rr;
        /* the sequence number written into the record; differs from the
         * loop counter only when a fault is injected (producer 0 only):
         * skip leaves a hole at K, dup writes K twice, reorder swaps K and
         * K+1 within partition 0 */
        uint64_t vseq = seq;
        if (p->idx == 0 && opt.inject != INJECT_NONE) {
            uint64_t k = opt.inject_at;
            if (opt.inject == INJECT_SKIP && seq >= k)
                vseq = seq + 1;
            else if (opt.inject == INJECT_DUP && seq > k)
                vseq = seq - 1;
            else if (opt.inject == INJECT_REORDER && (seq == k || seq == k + 1)) {
                vseq = seq == k ? k + 1 : k;
                part = 0;
            }
        }
        put64(buf + 16, vseq);
        if (opt.payload != PAYLOAD_REPEAT && span)
            memcpy(buf + SHB_HDR_LEN, g_pool + rng_next(&rng) % span, body);
        size_t klen = 0;
        if (opt.keys != KEYS_NONE)
            klen = (size_t)snprintf(key, sizeof(key), "k%08" PRIu32, key_pick(&rng));
        rd_kafka_resp_err_t err =
            rd_kafka_producev(p->rk, RD_KAFKA_V_RKT(p->rkt), RD_KAFKA_V_PARTITION(part),
                              RD_KAFKA_V_VALUE(buf, (size_t)opt.record_size),
                              RD_KAFKA_V_KEY(klen ? key : NULL, klen),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            /* back-pressure: wait for acknowledgements, retry this record */
            rd_kafka_poll(p->rk, 5);
            continue;
        }
        if (err) {
            snprintf(p->enqueue_err, sizeof(p->enqueue_err), "produce: %s",
                     rd_kafka_err2str(err));
            p->enqueue_fatal = 1;
            break;
        }
        seq++;
        p->sent++;
        if (opt.spread == SPREAD_RR && --run_left == 0) {
            run_left = opt.spread_run;
            if (++rr == p->partitions)
                rr = 0;
        }
        if ((seq & 127) == 0)
            rd_kafka_poll(p->rk, 0);
    }
    /* wait for every outstanding acknowledgement; message.timeout.ms turns
     * a silent broker into failed delivery reports before this returns */
    rd_kafka_flush(p->rk, (opt.timeout_s + 10) * 1000);
    free(buf);
    return NULL;
}

/* ---------------------------------------------------------------- consumer */

typedef struct {
    uint32_t   nonce, instance;
    shb_bits_t seen;
    uint64_t   unique;
    uint64_t   max_seq;
    int64_t   *last_seq; /* per partition */
} shb_cslot_t;

typedef struct {
    pthread_t         thr;
    rd_kafka_t       *rk;
    rd_kafka_topic_t *rkt;
    rd_kafka_queue_t *q;
    int               partitions;
    int               e2e;
    atomic_int        ready;          /* all partitions started */
    atomic_int        producers_done; /* e2e: expected is final */
    _Atomic uint64_t  expected;

    shb_cslot_t      *slots;
    int               nslots, slots_cap;
    int64_t          *last_off;
    uint8_t          *eof;
    int               eof_count;

    uint64_t          received, unique, dups, out_of_order, offset_regress;
    uint64_t          bad_payload, foreign, bytes, transient_errors;
    int               fatal;
    char              err[512];
    int               timed_out;
    int64_t           last_progress;
    int64_t           t_start, t_last;
    shb_hist_t        e2e_lat;
} shb_consumer_t;

static shb_cslot_t *cslot_get(shb_consumer_t *c, uint32_t nonce, uint32_t instance)
{
    for (int i = 0; i < c->nslots; i++)
        if (c->slots[i].nonce == nonce && c->slots[i].instance == instance)
            return &c->slots[i];
    if (c->nslots == c->slots_cap) {
        int ncap = c->slots_cap ? c->slots_cap * 2 : 16;
        shb_cslot_t *n = realloc(c->slots, sizeof(*n) * (size_t)ncap);
        if (!n)
            return NULL;
        c->slots = n;
        c->slots_cap = ncap;
    }
    shb_cslot_t *s = &c->slots[c->nslots];
    memset(s, 0, sizeof(*s));
    s->nonce = nonce;
    s->instance = instance;
    s->last_seq = malloc(sizeof(int64_t) * (size_t)c->partitions);
    if (!s->last_seq)
        return NULL;
    for (int i = 0; i < c->partitions; i++)
        s->last_seq[i] = -1;
    c->nslots++;
    return s;
}

static void consumer_fatal(shb_consumer_t *c, const char *fmt, ...)
{
    if (c->fatal)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof(c->err), fmt, ap);
    va_end(ap);
    c->fatal = 1;
}

static void consumer_check(shb_consumer_t *c, const rd_kafka_message_t *m, int64_t now)
{
    int32_t part = m->partition;
    if (part < 0 || part >= c->partitions) {
        consumer_fatal(c, "record from unexpected partition %d", part);
        return;
    }
    c->received++;
    c->t_last = now;
    if (c->eof[part]) {
        c->eof[part] = 0;
        c->eof_count--;
    }
    if (m->offset <= c->last_off[part])
        c->offset_regress++;
    c->last_off[part] = m->offset;

    shb_hdr_t h;
    if (hdr_decode(m->payload, m->len, &h) != 0) {
        c->bad_payload++;
        return;
    }
    if (c->e2e && h.nonce != g_nonce) {
        c->foreign++;
        return;
    }
    shb_cslot_t *s = cslot_get(c, h.nonce, h.instance);
    if (!s) {
        consumer_fatal(c, "out of memory");
        return;
    }
    int was = bits_test_set(&s->seen, h.seq);
    if (was < 0) {
        consumer_fatal(c, "out of memory");
        return;
    }
    if (was) {
        c->dups++;
        return;
    }
    c->unique++;
    s->unique++;
    c->bytes += m->len;
    if (h.seq > s->max_seq)
        s->max_seq = h.seq;
    if ((int64_t)h.seq < s->last_seq[part])
        c->out_of_order++;
    else
        s->last_seq[part] = (int64_t)h.seq;
    if (c->e2e)
        shb_hist_add(&c->e2e_lat, (uint64_t)(now - h.ts_us));
}

static int consumer_setup(shb_consumer_t *c)
{
    char errstr[256];
    rd_kafka_conf_t *conf = base_conf("shbench-c");
    /* reaching the end of each partition is how we know nothing extra
     * (duplicates, foreign records) follows the records we expect */
    set_conf(conf, "enable.partition.eof", "true");
    set_conf(conf, "enable.auto.commit", "false");
    set_conf(conf, "check.crcs", "false");
    if (opt.fetch_wait_ms >= 0) {
        char buf[32];
        snprintf(buf, sizeof(buf), "%d", opt.fetch_wait_ms);
        set_conf(conf, "fetch.wait.max.ms", buf);
    }
    apply_user_props(conf);
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!c->rk) {
        snprintf(c->err, sizeof(c->err), "could not create consumer: %s", errstr);
        return -1;
    }
    rd_kafka_topic_conf_t *tconf = rd_kafka_topic_conf_new();
    if (rd_kafka_topic_conf_set(tconf, "auto.commit.enable", "false", errstr,
                                sizeof(errstr)) != RD_KAFKA_CONF_OK ||
        rd_kafka_topic_conf_set(tconf, "auto.offset.reset", "error", errstr,
                                sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        snprintf(c->err, sizeof(c->err), "topic config: %s", errstr);
        rd_kafka_topic_conf_destroy(tconf);
        return -1;
    }
    c->rkt = rd_kafka_topic_new(c->rk, opt.topic, tconf);
    c->q = rd_kafka_queue_new(c->rk);
    c->last_off = malloc(sizeof(int64_t) * (size_t)c->partitions);
    c->eof = calloc((size_t)c->partitions, 1);
    if (!c->last_off || !c->eof) {
        snprintf(c->err, sizeof(c->err), "out of memory");
        return -1;
    }
    for (int i = 0; i < c->partitions; i++) {
        c->last_off[i] = -1;
        /* offset 0 rather than "beginning": no ListOffsets round trip, and
         * a broker that lost the head of the log fails loudly */
        if (rd_kafka_consume_start_queue(c->rkt, i, 0, c->q) != 0) {
            snprintf(c->err, sizeof(c->err), "consume_start partition %d: %s", i,
                     rd_kafka_err2str(rd_kafka_last_error()));
            return -1;
        }
    }
    shb_hist_init(&c->e2e_lat);
    c->t_start = shb_now_us();
    return 0;
}

/* Called by librdkafka for each queued message or event, from inside
 * rd_kafka_consume_callback_queue on the consumer thread; the message is
 * freed by librdkafka when this returns. */
static void consumer_msg_cb(rd_kafka_message_t *m, void *opaque)
{
    shb_consumer_t *c = opaque;
    int64_t now = shb_now_us();
    if (!m->err) {
        consumer_check(c, m, now);
        c->last_progress = now;
    } else if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        if (m->partition >= 0 && m->partition < c->partitions && !c->eof[m->partition]) {
            c->eof[m->partition] = 1;
            c->eof_count++;
        }
    } else if (m->err == RD_KAFKA_RESP_ERR__TRANSPORT ||
               m->err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        c->transient_errors++; /* librdkafka reconnects by itself */
    } else {
        consumer_fatal(c, "partition %d: %s", m->partition, rd_kafka_message_errstr(m));
    }
}

static void *consumer_main(void *arg)
{
    shb_consumer_t *c = arg;
    int64_t idle_since = shb_now_us();

    atomic_store(&c->ready, 1);
    while (!c->fatal && !atomic_load(&g_stop)) {
        /* unlike the batch call, this returns as soon as anything is queued
         * instead of waiting to fill a batch, so the receive time we stamp
         * is the time the record reached the application */
        int n = rd_kafka_consume_callback_queue(c->q, 100, consumer_msg_cb, c);
        int64_t now = shb_now_us();
        if (n < 0) {
            consumer_fatal(c, "consume: %s", rd_kafka_err2str(rd_kafka_last_error()));
            break;
        }
        if (c->last_progress > idle_since)
            idle_since = c->last_progress;
        int done_producing = !c->e2e || atomic_load(&c->producers_done);
        if (done_producing && c->received >= atomic_load(&c->expected) &&
            c->eof_count == c->partitions)
            break;
        /* idle clock only runs once nothing more is being produced */
        if (!done_producing)
            idle_since = now;
        if (now - idle_since > (int64_t)opt.timeout_s * 1000000) {
            c->timed_out = 1;
            break;
        }
    }
    for (int i = 0; i < c->partitions; i++)
        rd_kafka_consume_stop(c->rkt, i);
    return NULL;
}

static void consumer_destroy(shb_consumer_t *c)
{
    if (c->q)
        rd_kafka_queue_destroy(c->q);
    if (c->rkt)
        rd_kafka_topic_destroy(c->rkt);
    if (c->rk)
        rd_kafka_destroy(c->rk);
    for (int i = 0; i < c->nslots; i++) {
        free(c->slots[i].seen.bits);
        free(c->slots[i].last_seq);
    }
    free(c->slots);
    free(c->last_off);
    free(c->eof);
}

/* ---------------------------------------------------------------- reporting */

typedef struct {
    char   *buf;
    size_t  len, cap;
} shb_str_t;

static void sappend(shb_str_t *s, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        size_t room = s->cap - s->len;
        va_start(ap, fmt);
        int n = vsnprintf(s->buf ? s->buf + s->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < room) {
            s->len += (size_t)n;
            return;
        }
        size_t ncap = (s->cap + (size_t)n + 1) * 2;
        char *nb = realloc(s->buf, ncap);
        if (!nb)
            die(EXIT_SETUP, "out of memory");
        s->buf = nb;
        s->cap = ncap;
    }
}

/* JSON string with the few escapes an error message may need */
static void sappend_jstr(shb_str_t *s, const char *v)
{
    sappend(s, "\"");
    for (const char *c = v; *c; c++) {
        if (*c == '"' || *c == '\\')
            sappend(s, "\\%c", *c);
        else if ((unsigned char)*c < 0x20)
            sappend(s, "\\u%04x", *c);
        else
            sappend(s, "%c", *c);
    }
    sappend(s, "\"");
}

static void sappend_lat(shb_str_t *s, const char *name, const shb_hist_t *h)
{
    if (h->count == 0) {
        sappend(s, ",\"%s\":null", name);
        return;
    }
    sappend(s, ",\"%s\":{\"count\":%" PRIu64 ",\"p50\":%.3f,\"p99\":%.3f,\"p999\":%.3f,"
               "\"max\":%.3f}",
            name, h->count, shb_hist_pct(h, 50) / 1000.0, shb_hist_pct(h, 99) / 1000.0,
            shb_hist_pct(h, 99.9) / 1000.0, h->max / 1000.0);
}

static const char *mode_name(void)
{
    return opt.mode == MODE_PRODUCE ? "produce" : opt.mode == MODE_CONSUME ? "consume" : "e2e";
}

static void print_lat_human(const char *what, const shb_hist_t *h)
{
    if (h->count == 0)
        return;
    fprintf(stderr, "  %s latency ms: p50 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  (%" PRIu64
                    " samples)\n",
            what, shb_hist_pct(h, 50) / 1000.0, shb_hist_pct(h, 99) / 1000.0,
            shb_hist_pct(h, 99.9) / 1000.0, h->max / 1000.0, h->count);
}

/* ---------------------------------------------------------------- options */

static void usage(FILE *f)
{
    fprintf(f,
"usage: shbench [options]\n"
"Kafka load generator that verifies what it measures (bench/README.md).\n"
"\n"
"  -b, --bootstrap HOST:PORT  broker to use (default 127.0.0.1:9092)\n"
"  -t, --topic NAME           topic (required)\n"
"  -m, --mode MODE            produce | consume | e2e (default produce)\n"
"  -p, --partitions N         partitions to create and spread over (default 1);\n"
"                             consume mode reads every partition the topic has\n"
"  -s, --record-size BYTES    value size, >= 32 (default 100)\n"
"  -k, --keys DIST            none | uniform:K | zipf:K  (default none: null keys)\n"
"      --payload KIND         text | random | repeat (default text: JSON-like\n"
"                             event lines, ~3x for lz4; random: incompressible;\n"
"                             repeat: one body for every record)\n"
"      --spread HOW           default | rr | rr:K  (default: librdkafka's\n"
"                             partitioner, murmur2 for keys, sticky for null\n"
"                             keys; rr:K: K records to each partition in turn,\n"
"                             whatever the keys; rr = rr:1)\n"
"  -n, --records N            records to produce (total over all producers) or\n"
"                             to consume; produce stops at N or --duration\n"
"  -d, --duration SECONDS     stop producing after this long\n"
"  -r, --rate R               total records/s (default 0: as fast as possible)\n"
"  -a, --acks 0|1|all         (default 1)\n"
"  -z, --compression CODEC    none | gzip | snappy | lz4 | zstd (default none)\n"
"  -l, --linger-ms MS         linger.ms (default: librdkafka's)\n"
"      --batch-size BYTES     batch.size (default: librdkafka's)\n"
"  -i, --idempotence          enable.idempotence=true\n"
"  -P, --producers N          producer instances, one client and thread each (1)\n"
"      --broker-pid PID       report that process's CPU time and peak RSS\n"
"      --timeout SECONDS      wait this long for acknowledgements, and for the\n"
"                             consumer to see the next record (default 60)\n"
"      --fetch-wait-ms MS     consumer fetch.wait.max.ms (default: librdkafka's)\n"
"      --no-create            do not create the topic (produce/e2e)\n"
"      --label TEXT           name of the run in the output\n"
"  -X, --set KEY=VALUE        extra librdkafka property, repeatable\n"
"      --inject FAULT:K       test the checks: producer 0 skips sequence K\n"
"                             (skip), writes it twice (dup) or swaps K and K+1\n"
"                             in partition 0 (reorder); the run must fail\n"
"  -h, --help\n"
"\n"
"Output: a human summary on stderr and one line on stdout:\n"
"  SHBENCH {json}\n"
"Exit: 0 verified, 1 records lost/duplicated/reordered/failed (no figures),\n"
"      2 usage or setup error, 3 the broker does not serve this workload.\n");
}

static double parse_num(const char *s, const char *what, double lo, double hi)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < lo || v > hi)
        die(EXIT_SETUP, "bad %s \"%s\" (%g..%g)", what, s, lo, hi);
    return v;
}

static void parse_args(int argc, char **argv)
{
    enum { O_SPREAD = 256, O_BATCH, O_PID, O_TIMEOUT, O_NOCREATE, O_LABEL, O_FETCHWAIT,
           O_INJECT, O_PAYLOAD };
    static const struct option lo[] = {
        { "bootstrap", required_argument, 0, 'b' },
        { "topic", required_argument, 0, 't' },
        { "mode", required_argument, 0, 'm' },
        { "partitions", required_argument, 0, 'p' },
        { "record-size", required_argument, 0, 's' },
        { "keys", required_argument, 0, 'k' },
        { "spread", required_argument, 0, O_SPREAD },
        { "records", required_argument, 0, 'n' },
        { "duration", required_argument, 0, 'd' },
        { "rate", required_argument, 0, 'r' },
        { "acks", required_argument, 0, 'a' },
        { "compression", required_argument, 0, 'z' },
        { "linger-ms", required_argument, 0, 'l' },
        { "batch-size", required_argument, 0, O_BATCH },
        { "idempotence", no_argument, 0, 'i' },
        { "producers", required_argument, 0, 'P' },
        { "broker-pid", required_argument, 0, O_PID },
        { "timeout", required_argument, 0, O_TIMEOUT },
        { "fetch-wait-ms", required_argument, 0, O_FETCHWAIT },
        { "no-create", no_argument, 0, O_NOCREATE },
        { "label", required_argument, 0, O_LABEL },
        { "inject", required_argument, 0, O_INJECT },
        { "payload", required_argument, 0, O_PAYLOAD },
        { "set", required_argument, 0, 'X' },
        { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "b:t:m:p:s:k:n:d:r:a:z:l:iP:X:h", lo, NULL)) != -1) {
        switch (c) {
        case 'b': opt.bootstrap = optarg; break;
        case 't': opt.topic = optarg; break;
        case 'm':
            if (!strcmp(optarg, "produce")) opt.mode = MODE_PRODUCE;
            else if (!strcmp(optarg, "consume")) opt.mode = MODE_CONSUME;
            else if (!strcmp(optarg, "e2e")) opt.mode = MODE_E2E;
            else die(EXIT_SETUP, "bad --mode \"%s\"", optarg);
            break;
        case 'p': opt.partitions = (int)parse_num(optarg, "--partitions", 1, 100000); break;
        case 's': opt.record_size = (int)parse_num(optarg, "--record-size", SHB_HDR_LEN, 64 << 20); break;
        case 'k':
            if (!strcmp(optarg, "none")) {
                opt.keys = KEYS_NONE;
            } else if (!strncmp(optarg, "uniform:", 8)) {
                opt.keys = KEYS_UNIFORM;
                opt.key_count = (uint32_t)parse_num(optarg + 8, "key count", 1, 1e9);
            } else if (!strncmp(optarg, "zipf:", 5)) {
                opt.keys = KEYS_ZIPF;
                opt.key_count = (uint32_t)parse_num(optarg + 5, "key count", 1, 1e7);
            } else {
                die(EXIT_SETUP, "bad --keys \"%s\"", optarg);
            }
            break;
        case O_SPREAD:
            if (!strcmp(optarg, "default")) opt.spread = SPREAD_DEFAULT;
            else if (!strcmp(optarg, "rr")) opt.spread = SPREAD_RR;
            else if (!strncmp(optarg, "rr:", 3)) {
                opt.spread = SPREAD_RR;
                opt.spread_run = (uint32_t)parse_num(optarg + 3, "--spread rr:K", 1, 1e9);
            } else die(EXIT_SETUP, "bad --spread \"%s\"", optarg);
            break;
        case 'n': opt.records = (uint64_t)parse_num(optarg, "--records", 1, 1e12); break;
        case 'd': opt.duration_s = parse_num(optarg, "--duration", 0.001, 86400); break;
        case 'r': opt.rate = parse_num(optarg, "--rate", 0, 1e9); break;
        case 'a':
            if (strcmp(optarg, "0") && strcmp(optarg, "1") && strcmp(optarg, "all") &&
                strcmp(optarg, "-1"))
                die(EXIT_SETUP, "bad --acks \"%s\"", optarg);
            opt.acks = optarg;
            break;
        case 'z': opt.compression = optarg; break;
        case 'l': opt.linger_ms = (int)parse_num(optarg, "--linger-ms", 0, 900000); break;
        case O_BATCH: opt.batch_size = (int)parse_num(optarg, "--batch-size", 1, 2147483647); break;
        case 'i': opt.idempotence = 1; break;
        case 'P': opt.producers = (int)parse_num(optarg, "--producers", 1, 256); break;
        case O_PID: opt.broker_pid = (pid_t)parse_num(optarg, "--broker-pid", 0, 4194304); break;
        case O_TIMEOUT: opt.timeout_s = (int)parse_num(optarg, "--timeout", 1, 3600); break;
        case O_FETCHWAIT: opt.fetch_wait_ms = (int)parse_num(optarg, "--fetch-wait-ms", 0, 300000); break;
        case O_NOCREATE: opt.create = 0; break;
        case O_LABEL: opt.label = optarg; break;
        case O_PAYLOAD:
            if (!strcmp(optarg, "text")) opt.payload = PAYLOAD_TEXT;
            else if (!strcmp(optarg, "random")) opt.payload = PAYLOAD_RANDOM;
            else if (!strcmp(optarg, "repeat")) opt.payload = PAYLOAD_REPEAT;
            else die(EXIT_SETUP, "bad --payload \"%s\"", optarg);
            break;
        case O_INJECT: {
            const char *colon = strchr(optarg, ':');
            size_t n = colon ? (size_t)(colon - optarg) : 0;
            if (n == 4 && !strncmp(optarg, "skip", 4)) opt.inject = INJECT_SKIP;
            else if (n == 3 && !strncmp(optarg, "dup", 3)) opt.inject = INJECT_DUP;
            else if (n == 7 && !strncmp(optarg, "reorder", 7)) opt.inject = INJECT_REORDER;
            else die(EXIT_SETUP, "bad --inject \"%s\" (skip:K, dup:K or reorder:K)", optarg);
            opt.inject_at = (uint64_t)parse_num(colon + 1, "--inject position", 0, 1e12);
            break;
        }
        case 'X':
            if (opt.nprops == SHB_MAX_PROPS)
                die(EXIT_SETUP, "too many --set options");
            opt.props[opt.nprops++] = optarg;
            break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(EXIT_SETUP);
        }
    }
    if (optind != argc)
        die(EXIT_SETUP, "unexpected argument \"%s\" (see --help)", argv[optind]);
    if (!opt.topic)
        die(EXIT_SETUP, "--topic is required (see --help)");
    if (opt.mode == MODE_CONSUME && !opt.records)
        die(EXIT_SETUP, "consume mode needs --records (how many were produced)");
    if (opt.mode != MODE_CONSUME && !opt.records && opt.duration_s <= 0)
        die(EXIT_SETUP, "give --records or --duration (or both)");
    if (!opt.label)
        opt.label = opt.topic;
}

/* ------------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    parse_args(argc, argv);

    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    {
        uint64_t seed = (uint64_t)shb_now_us() ^ ((uint64_t)getpid() << 32);
        g_nonce = (uint32_t)(rng_next(&seed) >> 32) | 1;
    }
    if (opt.keys == KEYS_ZIPF)
        zipf_init(opt.key_count);
    if (opt.mode != MODE_CONSUME)
        pool_init();

    /* 1. can this broker serve the workload at all? */
    int16_t apis[API_NKEYS];
    char err[512];
    if (shb_probe_apis(opt.bootstrap, apis, API_NKEYS, 10000, err, sizeof(err)) != 0)
        die(EXIT_SETUP, "%s", err);
    struct { int key; const char *name; int needed; } need[] = {
        { API_METADATA, "Metadata", 1 },
        { API_PRODUCE, "Produce", opt.mode != MODE_CONSUME },
        { API_FETCH, "Fetch", opt.mode != MODE_PRODUCE },
        { API_INIT_PRODUCER_ID, "InitProducerId", opt.idempotence && opt.mode != MODE_CONSUME },
    };
    for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
        if (need[i].needed && apis[need[i].key] < 0)
            die(EXIT_UNSERVED, "broker %s does not serve %s (ApiKey %d)", opt.bootstrap,
                need[i].name, need[i].key);

    /* 2. topic */
    shb_topic_info_t ti;
    topic_setup(apis, &ti);
    int partitions = ti.partitions;

    /* 3. clients */
    shb_consumer_t cons;
    memset(&cons, 0, sizeof(cons));
    cons.partitions = partitions;
    cons.e2e = opt.mode == MODE_E2E;
    if (opt.mode == MODE_CONSUME)
        atomic_store(&cons.expected, opt.records);

    int np = opt.mode == MODE_CONSUME ? 0 : opt.producers;
    shb_producer_t *prods = calloc((size_t)(np ? np : 1), sizeof(*prods));
    if (!prods)
        die(EXIT_SETUP, "out of memory");
    for (int i = 0; i < np; i++) {
        shb_producer_t *p = &prods[i];
        p->idx = i;
        p->partitions = partitions;
        p->target = UINT64_MAX;
        if (opt.records)
            p->target = opt.records / (uint64_t)np + ((uint64_t)i < opt.records % (uint64_t)np);
        p->rate = opt.rate / np;
        p->last_off = malloc(sizeof(int64_t) * (size_t)partitions);
        p->last_seq = malloc(sizeof(int64_t) * (size_t)partitions);
        if (!p->last_off || !p->last_seq)
            die(EXIT_SETUP, "out of memory");
        for (int j = 0; j < partitions; j++)
            p->last_off[j] = p->last_seq[j] = -1;
        shb_hist_init(&p->lat);
        p->rk = producer_new(p);
        p->rkt = rd_kafka_topic_new(p->rk, opt.topic, NULL);
        /* connect and learn leaders before the clock starts */
        const struct rd_kafka_metadata *md = NULL;
        if (rd_kafka_metadata(p->rk, 0, p->rkt, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR)
            rd_kafka_metadata_destroy(md);
    }

    shb_proc_t bproc;
    shb_proc_start(&bproc, opt.broker_pid);
    double cpu0 = shb_self_cpu_s();
    int64_t t0 = shb_now_us();

    if (opt.mode != MODE_PRODUCE) {
        if (consumer_setup(&cons) != 0)
            die(EXIT_SETUP, "%s", cons.err);
        if (pthread_create(&cons.thr, NULL, consumer_main, &cons) != 0)
            die(EXIT_SETUP, "could not start consumer thread");
        while (!atomic_load(&cons.ready))
            usleep(1000);
    }

    t0 = shb_now_us();
    int64_t deadline = opt.duration_s > 0 ? t0 + (int64_t)(opt.duration_s * 1e6) : 0;
    for (int i = 0; i < np; i++) {
        prods[i].deadline = deadline;
        if (pthread_create(&prods[i].thr, NULL, producer_main, &prods[i]) != 0)
            die(EXIT_SETUP, "could not start producer thread");
    }
    for (int i = 0; i < np; i++)
        pthread_join(prods[i].thr, NULL);

    /* aggregate the producers */
    uint64_t sent = 0, acked = 0, failed = 0, dup_acks = 0, bad_reports = 0;
    uint64_t off_regress = 0, reordered = 0, pbytes = 0, unacked = 0;
    int64_t t_last_ack = t0;
    rd_kafka_resp_err_t first_err = 0;
    const char *enqueue_err = NULL;
    shb_hist_t plat;
    shb_hist_init(&plat);
    for (int i = 0; i < np; i++) {
        shb_producer_t *p = &prods[i];
        sent += p->sent;
        acked += p->acked;
        failed += p->failed;
        dup_acks += p->dup_acks;
        bad_reports += p->bad_reports;
        off_regress += p->offset_regress;
        reordered += p->reordered;
        pbytes += p->bytes;
        unacked += (uint64_t)rd_kafka_outq_len(p->rk);
        if (p->t_last_ack > t_last_ack)
            t_last_ack = p->t_last_ack;
        if (!first_err && p->first_err)
            first_err = p->first_err;
        if (!enqueue_err && p->enqueue_fatal)
            enqueue_err = p->enqueue_err;
        shb_hist_merge(&plat, &p->lat);
    }

    if (opt.mode == MODE_E2E) {
        atomic_store(&cons.expected, acked);
        atomic_store(&cons.producers_done, 1);
    }
    if (opt.mode != MODE_PRODUCE)
        pthread_join(cons.thr, NULL);

    shb_proc_stop(&bproc);
    double client_cpu = shb_self_cpu_s() - cpu0;

    /* verdict */
    shb_str_t why = { 0 };
    if (atomic_load(&g_stop))
        sappend(&why, "interrupted; ");
    if (opt.mode != MODE_CONSUME) {
        if (enqueue_err)
            sappend(&why, "%s; ", enqueue_err);
        if (sent == 0)
            sappend(&why, "nothing was sent; ");
        if (failed)
            sappend(&why, "%" PRIu64 " records failed (first error: %s); ", failed,
                    rd_kafka_err2str(first_err));
        uint64_t reported = acked + failed + dup_acks;
        uint64_t missing = sent > reported ? sent - reported : 0;
        if (missing || unacked)
            sappend(&why, "%" PRIu64 " of %" PRIu64 " records never acknowledged; ",
                    missing > unacked ? missing : unacked, sent);
        if (dup_acks)
            sappend(&why, "%" PRIu64 " duplicate acknowledgements; ", dup_acks);
        if (bad_reports)
            sappend(&why, "%" PRIu64 " delivery reports for records we did not send; ",
                    bad_reports);
        if (off_regress)
            sappend(&why, "%" PRIu64 " acknowledged offsets did not increase within a "
                          "partition; ", off_regress);
        if (reordered)
            sappend(&why, "%" PRIu64 " records acknowledged out of order within a partition; ",
                    reordered);
    }
    if (opt.mode != MODE_PRODUCE) {
        uint64_t expected = atomic_load(&cons.expected);
        if (cons.fatal)
            sappend(&why, "consumer: %s; ", cons.err);
        if (cons.unique < expected)
            sappend(&why, "lost: received %" PRIu64 " of %" PRIu64 " records%s; ", cons.unique,
                    expected, cons.timed_out ? " before the timeout" : "");
        if (cons.dups)
            sappend(&why, "%" PRIu64 " duplicate records; ", cons.dups);
        if (cons.out_of_order)
            sappend(&why, "%" PRIu64 " records out of order within a partition; ",
                    cons.out_of_order);
        if (cons.offset_regress)
            sappend(&why, "%" PRIu64 " offsets did not increase within a partition; ",
                    cons.offset_regress);
        if (cons.bad_payload)
            sappend(&why, "%" PRIu64 " records with a corrupt or foreign payload; ",
                    cons.bad_payload);
        if (cons.foreign)
            sappend(&why, "%" PRIu64 " records from another run (topic not fresh); ",
                    cons.foreign);
        if (cons.unique > expected)
            sappend(&why, "%" PRIu64 " more records than expected; ", cons.unique - expected);
        if (cons.timed_out && cons.unique >= expected && cons.eof_count < cons.partitions)
            sappend(&why, "end of %d partitions never reached; ",
                    cons.partitions - cons.eof_count);
        for (int i = 0; i < cons.nslots; i++)
            if (cons.slots[i].unique != cons.slots[i].max_seq + 1)
                sappend(&why, "producer %08x/%u: %" PRIu64 " sequence number(s) missing below "
                              "%" PRIu64 "; ",
                        cons.slots[i].nonce, cons.slots[i].instance,
                        cons.slots[i].max_seq + 1 - cons.slots[i].unique, cons.slots[i].max_seq);
    }
    int ok = why.len == 0;

    /* figures */
    uint64_t records;
    uint64_t bytes;
    double secs;
    if (opt.mode == MODE_CONSUME) {
        records = cons.unique;
        bytes = cons.bytes;
        secs = (cons.t_last > cons.t_start ? cons.t_last - cons.t_start : 1) / 1e6;
    } else {
        records = acked;
        bytes = pbytes;
        secs = (t_last_ack > t0 ? t_last_ack - t0 : 1) / 1e6;
    }
    double rps = records / secs;
    double mibps = bytes / secs / (1024.0 * 1024.0);

    shb_str_t js = { 0 };
    sappend(&js, "{\"label\":");
    sappend_jstr(&js, opt.label);
    sappend(&js, ",\"ok\":%s,\"mode\":\"%s\",\"topic\":", ok ? "true" : "false", mode_name());
    sappend_jstr(&js, opt.topic);
    sappend(&js, ",\"topic_setup\":\"%s\",\"partitions\":%d,\"record_size\":%d,\"acks\":\"%s\","
                 "\"compression\":\"%s\",\"linger_ms\":%d,\"batch_size\":%d,\"idempotence\":%s,"
                 "\"producers\":%d,\"rate\":%.0f",
            ti.how, partitions, opt.record_size, opt.acks, opt.compression, opt.linger_ms,
            opt.batch_size, opt.idempotence ? "true" : "false", np, opt.rate);
    if (opt.keys == KEYS_NONE)
        sappend(&js, ",\"keys\":\"none\"");
    else
        sappend(&js, ",\"keys\":\"%s:%u\"", opt.keys == KEYS_UNIFORM ? "uniform" : "zipf",
                opt.key_count);
    if (opt.spread == SPREAD_RR)
        sappend(&js, ",\"spread\":\"rr:%u\"", opt.spread_run);
    else
        sappend(&js, ",\"spread\":\"default\"");
    sappend(&js, ",\"fetch_wait_ms\":%d,\"payload\":\"%s\"", opt.fetch_wait_ms,
            opt.payload == PAYLOAD_TEXT ? "text" : opt.payload == PAYLOAD_RANDOM ? "random"
                                                                                  : "repeat");
    if (ok) {
        sappend(&js, ",\"records\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"seconds\":%.3f,"
                     "\"records_per_sec\":%.1f,\"mib_per_sec\":%.3f",
                records, bytes, secs, rps, mibps);
        sappend_lat(&js, "produce_latency_ms", &plat);
        sappend_lat(&js, "e2e_latency_ms", &cons.e2e_lat);
    } else {
        sappend(&js, ",\"error\":");
        why.buf[why.len - 2] = '\0'; /* drop the trailing "; " */
        sappend_jstr(&js, why.buf);
    }
    sappend(&js, ",\"sent\":%" PRIu64 ",\"acked\":%" PRIu64 ",\"failed\":%" PRIu64
                 ",\"consumed\":%" PRIu64 ",\"duplicates\":%" PRIu64,
            sent, acked, failed, cons.unique, cons.dups + dup_acks);
    if (bproc.ok && bproc.cpu_s >= 0)
        sappend(&js, ",\"broker_cpu_s\":%.3f,\"broker_cores\":%.3f", bproc.cpu_s,
                bproc.cpu_s / ((shb_now_us() - t0) / 1e6));
    else
        sappend(&js, ",\"broker_cpu_s\":null,\"broker_cores\":null");
    if (bproc.ok && bproc.rss_peak_kib >= 0)
        sappend(&js, ",\"broker_rss_peak_kib\":%ld,\"broker_rss_peak_this_run\":%s",
                bproc.rss_peak_kib, bproc.hwm_reset ? "true" : "false");
    else
        sappend(&js, ",\"broker_rss_peak_kib\":null");
    sappend(&js, ",\"client_cpu_s\":%.3f}", client_cpu);

    if (ok) {
        fprintf(stderr, "%s: %" PRIu64 " records %s in %.2f s, %.1f records/s (%.2f MiB/s)\n",
                opt.label, records, opt.mode == MODE_CONSUME ? "consumed" : "acknowledged",
                secs, rps, mibps);
        print_lat_human("produce", &plat);
        print_lat_human("end-to-end", &cons.e2e_lat);
        if (bproc.ok)
            fprintf(stderr, "  broker: %.2f s CPU, peak RSS %.1f MiB; client CPU %.2f s\n",
                    bproc.cpu_s, bproc.rss_peak_kib / 1024.0, client_cpu);
    } else {
        fprintf(stderr, "%s: FAILED: %s\n", opt.label, why.buf);
    }
    printf("SHBENCH %s\n", js.buf);
    fflush(stdout);

    for (int i = 0; i < np; i++) {
        rd_kafka_topic_destroy(prods[i].rkt);
        rd_kafka_destroy(prods[i].rk);
        free(prods[i].acked_bits.bits);
        free(prods[i].last_off);
        free(prods[i].last_seq);
    }
    free(prods);
    consumer_destroy(&cons);
    free(g_zipf_cdf);
    free(g_pool);
    free(why.buf);
    free(js.buf);
    return ok ? 0 : EXIT_VERIFY;
}
