/*
 * test_meta_pg.c - what is specific to the PostgreSQL backend: surviving a
 * server restart and an outage (fail fast with a retriable error, recover
 * by itself), a server connection killed under us, a hung server (bounded
 * wait), two stores on one database acting as two brokers (only the
 * current epoch's writes win, including when they race), brokers opening
 * a fresh database at once (each migration applied once), and the log
 * lines of a store that cannot start (unreachable server, wrong password,
 * missing database: one clear line, never the password).
 *
 * Needs a server: SH_TEST_META_URL=postgresql://... (make unit-pg starts a
 * throwaway one with tests/tools/pg-start.sh --run). Without it every test
 * is skipped, so `make unit` passes on machines without PostgreSQL. The
 * restart and outage tests also need SH_TEST_PG_STATE (the state file of
 * that throwaway server) to stop and start it; the hung-server test needs
 * to signal the server's processes (root, or the server's owner).
 * Recovery times are printed, never asserted: no wall-clock assertions.
 *
 * Thread: cmocka assertions run on the main thread only; helper threads
 * and child processes report results back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/sh_clock.h"
#include "common/sh_log.h"
#include "meta/sh_meta.h"
#include "meta/sh_meta_backend.h"

#define OK(x) assert_int_equal((x), SH_OK)

static const char *url;     /* SH_TEST_META_URL, a postgresql:// URL */
static const char *state;   /* SH_TEST_PG_STATE, or NULL */
static int devnull = -1;
static int server_stopped;  /* a test stopped it; teardown restarts it */
static char pfx[12];        /* random: the database may be shared */

static void quiet_logs(void)
{
    sh_log_set_fd(getenv("SH_TEST_VERBOSE") ? 2 : devnull);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* tests/tools/pg-start.sh or pg-stop.sh with arguments; 0 on success. */
static int pg_tool(const char *script, const char *arg)
{
    const char *tools = getenv("SH_TEST_PG_TOOLS");
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "'%s/%s' %s '%s' >/dev/null", tools ? tools : "tests/tools",
             script, arg, state);
    int rc = system(cmd);
    return rc == 0 ? 0 : -1;
}

static int server_resume(void)
{
    if (!server_stopped)
        return 0;
    if (pg_tool("pg-start.sh", "--resume") != 0)
        return -1;
    server_stopped = 0;
    return 0;
}

/* First thing in every test: without a server there is nothing to test
 * (skip() belongs in the test body; in a setup function cmocka counts it
 * as an error). */
#define NEED_SERVER()                                                          \
    do {                                                                       \
        if (!url)                                                              \
            skip();                                                            \
    } while (0)

static int after_test(void **state_)
{
    (void)state_;
    quiet_logs();
    return server_resume();
}

/* A libpq connection of our own, for what the API does not offer
 * (terminating backends, creating schemas, reading schema_version). */
static PGconn *admin(void)
{
    const char *kw[] = {"dbname", "application_name", "options", NULL};
    const char *val[] = {url, "sh-test-admin", "-c client_min_messages=warning", NULL};
    PGconn *pg = PQconnectdbParams(kw, val, 1);
    assert_non_null(pg);
    if (PQstatus(pg) != CONNECTION_OK)
        fail_msg("admin connection failed: %s", PQerrorMessage(pg));
    return pg;
}

static void admin_exec(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("\"%s\" failed: %s", sql, PQerrorMessage(pg));
    PQclear(r);
}

static long admin_long(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1)
        fail_msg("\"%s\" failed: %s", sql, PQerrorMessage(pg));
    long v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

/* "<prefix>-<base>" in a static ring of buffers */
static const char *nm(const char *base)
{
    static char ring[16][80];
    static int next;
    char *s = ring[next++ % 16];
    snprintf(s, sizeof(ring[0]), "%s-%s", pfx, base);
    return s;
}

static sh_meta_chunk_t chunk(sh_uuid_t t, int32_t part, int64_t base, int64_t last,
                             int32_t epoch)
{
    return (sh_meta_chunk_t){.topic_id = t, .partition = part, .base_offset = base,
                             .last_offset = last, .max_timestamp = 1, .byte_offset = 0,
                             .byte_length = 10, .leader_epoch = epoch};
}

static int64_t hwm(sh_meta_t *m, sh_uuid_t t, int32_t part)
{
    sh_meta_partition_t p;
    OK(sh_meta_partition_get(m, (sh_meta_tp_t){t, part}, &p));
    return p.high_watermark;
}

/* A topic with partition 0 led by broker 1; returns its epoch. */
static int32_t topic_led(sh_meta_t *m, const char *name, sh_uuid_t *id)
{
    int32_t e;
    OK(sh_meta_topic_create(m, name, 1, NULL, 0, 1, id));
    OK(sh_meta_partition_acquire(m, (sh_meta_tp_t){*id, 0}, 1, -1, 0, INT64_MAX / 2, &e));
    return e;
}

/* ---------------------------------------------------------------------- */
/* Restart and outage                                                      */

/* Call partition_get until it succeeds (bounded by attempts, not time);
 * every failure must be the retriable one. Returns the attempts used. */
static int wait_usable(sh_meta_t *m, sh_meta_tp_t tp, int64_t *ms)
{
    int64_t t0 = sh_clock_mono_ms();
    sh_meta_partition_t p;
    for (int i = 1; i <= 200; i++) {
        sh_err_t err = sh_meta_partition_get(m, tp, &p);
        if (err == SH_OK) {
            *ms = sh_clock_mono_ms() - t0;
            return i;
        }
        assert_int_equal(err, SH_E_AGAIN);
        sleep_ms(50);
    }
    fail_msg("the store did not come back after 200 attempts");
    return -1;
}

static int restart_done, restart_rc;

static void *restart_thread(void *arg)
{
    (void)arg;
    sleep_ms(100);
    restart_rc = pg_tool("pg-start.sh", "--restart");
    __atomic_store_n(&restart_done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void test_restart(void **state_)
{
    (void)state_;
    NEED_SERVER();
    if (!state)
        skip();
    sh_meta_t *m;
    sh_uuid_t id;
    OK(sh_meta_open(url, &m));
    int32_t e = topic_led(m, nm("restart"), &id);
    sh_meta_chunk_t c1 = chunk(id, 0, 0, 9, e);
    OK(sh_meta_chunks_commit(m, nm("restart-1"), 10, &c1, 1, 1));

    int64_t t0 = sh_clock_mono_ms();
    assert_int_equal(pg_tool("pg-start.sh", "--restart"), 0);
    int64_t restart_ms = sh_clock_mono_ms() - t0;

    /* The old connection died while idle; a read notices that (or loses
     * the connection under it, which reads may survive) and runs on a new
     * connection, so the first call already succeeds. */
    sh_meta_partition_t p;
    t0 = sh_clock_mono_ms();
    OK(sh_meta_partition_get(m, (sh_meta_tp_t){id, 0}, &p));
    int64_t first_ms = sh_clock_mono_ms() - t0;
    assert_int_equal(p.high_watermark, 10);
    /* writes and multi-statement transactions work again */
    sh_meta_chunk_t c2 = chunk(id, 0, 10, 19, e);
    OK(sh_meta_chunks_commit(m, nm("restart-2"), 10, &c2, 1, 2));
    assert_int_equal(hwm(m, id, 0), 20);
    print_message("      pg_ctl restart took %lld ms; first call after it: %lld ms, OK\n",
                  (long long)restart_ms, (long long)first_ms);

    /* Restart under a stream of writes, from another thread so commits
     * keep coming while the server goes down and up: each fails
     * retriably or works, nothing acknowledged is lost, and the window of
     * retriable errors is measured. */
    pthread_t th;
    restart_done = 0;
    assert_int_equal(pthread_create(&th, NULL, restart_thread, NULL), 0);
    int64_t base = 20, first_fail = 0, last_fail = 0;
    int failures = 0, commits = 0, after_done = 0;
    for (int i = 0; i < 2000 && after_done < 10; i++) {
        char key[32];
        snprintf(key, sizeof(key), "stream-%d", i);
        sh_meta_chunk_t c = chunk(id, 0, base, base + 9, e);
        sh_err_t err;
        for (int k = 0; k < 400; k++) {
            err = sh_meta_chunks_commit(m, nm(key), 10, &c, 1, 3);
            if (err != SH_E_AGAIN)
                break;
            /* unknown outcome: the retry with the same chunks settles it */
            failures++;
            last_fail = sh_clock_mono_ms();
            if (!first_fail)
                first_fail = last_fail;
            sleep_ms(25);
        }
        OK(err);
        base += 10;
        commits++;
        if (__atomic_load_n(&restart_done, __ATOMIC_ACQUIRE))
            after_done++;
        sleep_ms(10);
    }
    pthread_join(th, NULL);
    assert_int_equal(restart_rc, 0);
    assert_int_equal(hwm(m, id, 0), base);
    sh_arena_t a;
    sh_arena_init(&a, 4096);
    sh_meta_chunk_t *cs;
    size_t n;
    OK(sh_meta_chunks_find(m, (sh_meta_tp_t){id, 0}, 0, 10000, &a, &cs, &n));
    assert_int_equal(n, (size_t)commits + 2);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(cs[i].base_offset, (int64_t)i * 10);
    sh_arena_fini(&a);
    print_message("      restart during %d chunk commits: %d retriable failures over %lld ms, "
                  "no loss\n",
                  commits, failures, (long long)(failures ? last_fail - first_fail : 0));
    sh_meta_close(m);
}

typedef struct {
    sh_meta_op_t op;
    sh_meta_tp_t tp;
    int done;
} getop_t;

static sh_err_t getop_run(sh_meta_t *m, sh_meta_op_t *op)
{
    sh_meta_partition_t p;
    return sh_meta_partition_get(m, ((getop_t *)op)->tp, &p);
}

static void getop_done(sh_meta_op_t *op)
{
    ((getop_t *)op)->done = 1;
}

static void test_outage(void **state_)
{
    (void)state_;
    NEED_SERVER();
    if (!state)
        skip();
    sh_meta_t *m;
    sh_uuid_t id;
    OK(sh_meta_open(url, &m));
    int32_t e = topic_led(m, nm("outage"), &id);
    sh_meta_tp_t tp = {id, 0};

    assert_int_equal(pg_tool("pg-stop.sh", "--keep"), 0);
    server_stopped = 1;

    /* While it is down: every kind of call fails at once, retriably. */
    sh_meta_partition_t p;
    sh_meta_chunk_t c = chunk(id, 0, 0, 9, e);
    int64_t t0 = sh_clock_mono_ms();
    for (int i = 0; i < 20; i++) {
        assert_int_equal(sh_meta_partition_get(m, tp, &p), SH_E_AGAIN);
        assert_int_equal(sh_meta_chunks_commit(m, nm("down"), 10, &c, 1, 1), SH_E_AGAIN);
        assert_int_equal(sh_meta_broker_heartbeat(m, 1, 1, 1), SH_E_AGAIN);
    }
    int64_t down_ms = sh_clock_mono_ms() - t0;
    getop_t op = {.tp = tp};
    op.op.run = getop_run;
    op.op.done = getop_done;
    OK(sh_meta_submit(m, &op.op));
    while (!op.done)
        sh_meta_drain(m), sleep_ms(5);
    assert_int_equal(op.op.err, SH_E_AGAIN);

    assert_int_equal(server_resume(), 0);
    int64_t back_ms = 0;
    int attempts = wait_usable(m, tp, &back_ms);
    OK(sh_meta_chunks_commit(m, nm("down"), 10, &c, 1, 1));
    assert_int_equal(hwm(m, id, 0), 10);
    print_message("      60 calls while down took %lld ms in all; after the server was "
                  "back: usable after %d call(s), %lld ms\n",
                  (long long)down_ms, attempts, (long long)back_ms);
    sh_meta_close(m);
}

/* The server closes our connection (pg_terminate_backend): the next call
 * runs on a new one. */
static void test_connection_killed(void **state_)
{
    (void)state_;
    NEED_SERVER();
    sh_meta_t *m;
    sh_uuid_t id;
    OK(sh_meta_open(url, &m));
    int32_t e = topic_led(m, nm("killed"), &id);
    PGconn *pg = admin();
    for (int round = 0; round < 3; round++) {
        admin_exec(pg, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                       "application_name = 'streamhouse' AND datname = current_database()");
        sleep_ms(20);
        /* a read may always be rerun on a fresh connection */
        assert_int_equal(hwm(m, id, 0), round * 10);
        sh_meta_chunk_t c = chunk(id, 0, round * 10, round * 10 + 9, e);
        char key[32];
        snprintf(key, sizeof(key), "killed-%d", round);
        OK(sh_meta_chunks_commit(m, nm(key), 10, &c, 1, 1));
    }
    /* killed in the middle of nothing, then a transaction first: BEGIN
     * can always be resent */
    admin_exec(pg, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                   "application_name = 'streamhouse' AND datname = current_database()");
    sleep_ms(20);
    sh_meta_chunk_t c = chunk(id, 0, 30, 39, e);
    OK(sh_meta_chunks_commit(m, nm("killed-tx"), 10, &c, 1, 1));
    assert_int_equal(hwm(m, id, 0), 40);
    PQfinish(pg);
    sh_meta_close(m);
}

/* A server that stops answering costs one call a bounded wait, then the
 * store reconnects. SIGSTOP on the backend serving us plays the hung
 * server; SH_META_PG_IO_TIMEOUT_MS shortens the wait for the test. */
static void test_hung_server(void **state_)
{
    (void)state_;
    NEED_SERVER();
    setenv("SH_META_PG_IO_TIMEOUT_MS", "1500", 1);
    sh_meta_t *m;
    sh_uuid_t id;
    char hurl[1024], sql[256];
    snprintf(hurl, sizeof(hurl), "%s%capplication_name=sh-hung-%s", url,
             strchr(url, '?') ? '&' : '?', pfx);
    sh_err_t open_err = sh_meta_open(hurl, &m);
    unsetenv("SH_META_PG_IO_TIMEOUT_MS");
    OK(open_err);
    topic_led(m, nm("hung"), &id);
    PGconn *pg = admin();
    snprintf(sql, sizeof(sql),
             "SELECT coalesce(max(pid), 0) FROM pg_stat_activity WHERE application_name = "
             "'sh-hung-%s'",
             pfx);
    long pid = admin_long(pg, sql);
    assert_true(pid > 0);
    if (kill((pid_t)pid, SIGSTOP) != 0) {
        PQfinish(pg);
        sh_meta_close(m);
        skip(); /* not allowed to signal the server's processes */
    }
    sh_meta_partition_t p;
    int64_t t0 = sh_clock_mono_ms();
    sh_err_t err = sh_meta_partition_get(m, (sh_meta_tp_t){id, 0}, &p);
    int64_t waited = sh_clock_mono_ms() - t0;
    kill((pid_t)pid, SIGCONT);
    assert_int_equal(err, SH_E_AGAIN);
    OK(sh_meta_partition_get(m, (sh_meta_tp_t){id, 0}, &p));
    print_message("      hung server: the call gave up after %lld ms (limit 1500)\n",
                  (long long)waited);
    PQfinish(pg);
    sh_meta_close(m);
}

/* ---------------------------------------------------------------------- */
/* Two brokers on one database                                             */

static void test_two_stores_fencing(void **state_)
{
    (void)state_;
    NEED_SERVER();
    sh_meta_t *b1, *b2;
    OK(sh_meta_open(url, &b1));
    OK(sh_meta_open(url, &b2));
    sh_uuid_t id;
    int32_t e1, e2;
    OK(sh_meta_topic_create(b1, nm("fence2"), 2, NULL, 0, 1, &id));
    sh_meta_tp_t tp = {id, 0};
    OK(sh_meta_partition_acquire(b1, tp, 1, -1, 1000, 10000, &e1));
    /* broker 2 sees broker 1's lease through its own connection */
    assert_int_equal(sh_meta_partition_acquire(b2, tp, 2, e1, 5000, 20000, &e2), SH_E_AGAIN);
    sh_meta_chunk_t c = chunk(id, 0, 0, 9, e1);
    OK(sh_meta_chunks_commit(b1, nm("b1-first"), 10, &c, 1, 1));

    /* broker 1 pauses; its lease runs out; broker 2 takes over */
    OK(sh_meta_partition_acquire(b2, tp, 2, e1, 10000, 20000, &e2));
    assert_true(e2 > e1);
    sh_meta_chunk_t zombie = chunk(id, 0, 10, 19, e1);
    assert_int_equal(sh_meta_chunks_commit(b1, nm("b1-zombie"), 10, &zombie, 1, 2),
                     SH_E_FENCED);
    assert_int_equal(sh_meta_partition_renew(b1, tp, e1, 99999), SH_E_FENCED);
    assert_int_equal(sh_meta_partition_release(b1, tp, e1), SH_E_FENCED);
    sh_meta_chunk_t fresh = chunk(id, 0, 10, 19, e2);
    OK(sh_meta_chunks_commit(b2, nm("b2-fresh"), 10, &fresh, 1, 3));
    assert_int_equal(hwm(b1, id, 0), 20);

    /* broker epochs fence a zombie incarnation across connections too */
    sh_meta_endpoint_t ep = {"PLAINTEXT", "h", 9092, 0};
    int32_t bid = 500000 + (int32_t)(strtoul(pfx, NULL, 16) % 100000);
    sh_meta_broker_t reg = {.broker_id = bid, .endpoints = &ep, .nendpoints = 1};
    int64_t be1, be2;
    OK(sh_meta_broker_register(b1, &reg, 1, &be1));
    OK(sh_meta_broker_register(b2, &reg, 2, &be2));
    assert_int_equal(sh_meta_broker_heartbeat(b1, bid, be1, 3), SH_E_FENCED);
    OK(sh_meta_broker_heartbeat(b2, bid, be2, 3));
    OK(sh_meta_broker_unregister(b2, bid, be2));
    sh_meta_close(b1);
    sh_meta_close(b2);
}

/* Two threads, each with its own store (connection), released together
 * at every gate. */
typedef struct race race_t;
typedef struct {
    race_t *r;
    int who;
    sh_meta_t *m;
    pthread_t th;
} racer_t;

struct race {
    pthread_barrier_t gate;
    int rounds;
    sh_err_t (*step)(racer_t *rc, int round);
    sh_meta_tp_t tp;
    sh_err_t results[2][64]; /* what step returned */
    int64_t values[2][64];   /* what else a step wants to report */
    sh_err_t extra[2][64];
};

static void *racer_main(void *arg)
{
    racer_t *rc = arg;
    for (int i = 0; i < rc->r->rounds; i++) {
        pthread_barrier_wait(&rc->r->gate);
        rc->r->results[rc->who][i] = rc->r->step(rc, i);
    }
    return NULL;
}

static void race_run(race_t *r, sh_meta_t *m[2], int rounds)
{
    racer_t rc[2];
    r->rounds = rounds;
    assert_int_equal(pthread_barrier_init(&r->gate, NULL, 2), 0);
    for (int i = 0; i < 2; i++) {
        rc[i] = (racer_t){.r = r, .who = i, .m = m[i]};
        assert_int_equal(pthread_create(&rc[i].th, NULL, racer_main, &rc[i]), 0);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(rc[i].th, NULL);
    pthread_barrier_destroy(&r->gate);
}

/* Both brokers read the same epoch and try to take leadership from it,
 * then both commit the next chunk under what they believe: exactly one
 * acquire wins each round, and the loser's commit is fenced. */
static sh_err_t step_takeover(racer_t *rc, int round)
{
    race_t *r = rc->r;
    int32_t e = -1;
    int64_t now = 1000 + round; /* each lease ends when the next round starts */
    sh_meta_partition_t p;
    sh_err_t err = sh_meta_partition_get(rc->m, r->tp, &p);
    pthread_barrier_wait(&r->gate); /* both have read */
    if (err != SH_OK)
        return err;
    err = sh_meta_partition_acquire(rc->m, r->tp, 10 + rc->who, p.leader_epoch, now, now, &e);
    int32_t mine = err == SH_OK ? e : p.leader_epoch;
    r->values[rc->who][round] = err;
    pthread_barrier_wait(&r->gate); /* both have tried */
    char key[48];
    snprintf(key, sizeof(key), "%s-race-%d-%d", pfx, round, rc->who);
    sh_meta_chunk_t c = chunk(r->tp.topic_id, 0, round * 10, round * 10 + 9, mine);
    return sh_meta_chunks_commit(rc->m, key, 10, &c, 1, 1);
}

static void test_race_takeover(void **state_)
{
    (void)state_;
    NEED_SERVER();
    sh_meta_t *m[2];
    OK(sh_meta_open(url, &m[0]));
    OK(sh_meta_open(url, &m[1]));
    sh_uuid_t id;
    OK(sh_meta_topic_create(m[0], nm("race"), 1, NULL, 0, 1, &id));
    /* a first leader whose lease is over: every racer then holds an epoch
     * the front end accepts (>= 0) */
    int32_t e0;
    OK(sh_meta_partition_acquire(m[0], (sh_meta_tp_t){id, 0}, 1, -1, 0, 0, &e0));
    race_t r = {.step = step_takeover, .tp = {id, 0}};
    enum { ROUNDS = 20 };
    race_run(&r, m, ROUNDS);
    int wins[2] = {0, 0};
    for (int i = 0; i < ROUNDS; i++) {
        int a0 = r.values[0][i] == SH_OK, a1 = r.values[1][i] == SH_OK;
        assert_int_equal(a0 + a1, 1); /* one acquire per round */
        int w = a0 ? 0 : 1;
        assert_int_equal(r.values[1 - w][i], SH_E_FENCED);
        wins[w]++;
        OK(r.results[w][i]);
        assert_int_equal(r.results[1 - w][i], SH_E_FENCED);
    }
    assert_int_equal(hwm(m[0], id, 0), ROUNDS * 10);
    sh_meta_partition_t p;
    OK(sh_meta_partition_get(m[1], (sh_meta_tp_t){id, 0}, &p));
    assert_int_equal(p.leader_epoch, e0 + ROUNDS);
    print_message("      %d rounds: broker A won %d, broker B won %d\n", ROUNDS, wins[0],
                  wins[1]);
    sh_meta_close(m[0]);
    sh_meta_close(m[1]);
}

/* Two stores that both (wrongly) hold the same epoch commit the same
 * range: the database serialises them, one wins and the other finds the
 * range taken (SH_E_INVAL), never both. In the same rounds both allocate
 * producer id blocks and create a topic of one name. */
static sh_err_t step_same_epoch(racer_t *rc, int round)
{
    race_t *r = rc->r;
    char key[48];
    snprintf(key, sizeof(key), "%s-same-%d-%d", pfx, round, rc->who);
    sh_meta_chunk_t c = chunk(r->tp.topic_id, 0, round * 10, round * 10 + 9, 0);
    sh_err_t err = sh_meta_chunks_commit(rc->m, key, 10, &c, 1, 1);
    int64_t first = -1;
    sh_err_t perr = sh_meta_producer_ids_allocate(rc->m, rc->who, 7, 1, &first);
    r->values[rc->who][round] = perr == SH_OK ? first : -1;
    pthread_barrier_wait(&r->gate);
    char name[48];
    sh_uuid_t id;
    snprintf(name, sizeof(name), "%s-twice-%d", pfx, round);
    r->extra[rc->who][round] = sh_meta_topic_create(rc->m, name, 3, NULL, 0, 1, &id);
    return err;
}

static void test_race_same_epoch(void **state_)
{
    (void)state_;
    NEED_SERVER();
    sh_meta_t *m[2];
    OK(sh_meta_open(url, &m[0]));
    OK(sh_meta_open(url, &m[1]));
    sh_uuid_t id;
    int32_t e;
    OK(sh_meta_topic_create(m[0], nm("same"), 1, NULL, 0, 1, &id));
    OK(sh_meta_partition_acquire(m[0], (sh_meta_tp_t){id, 0}, 1, -1, 0, 1, &e));
    assert_int_equal(e, 0);
    race_t r = {.step = step_same_epoch, .tp = {id, 0}};
    enum { ROUNDS = 30 };
    race_run(&r, m, ROUNDS);
    int64_t blocks[2 * ROUNDS];
    for (int i = 0; i < ROUNDS; i++) {
        /* one commit won, the other found the range taken */
        int w = r.results[0][i] == SH_OK ? 0 : 1;
        OK(r.results[w][i]);
        assert_int_equal(r.results[1 - w][i], SH_E_INVAL);
        /* one create won, the other found the name taken */
        w = r.extra[0][i] == SH_OK ? 0 : 1;
        OK(r.extra[w][i]);
        assert_int_equal(r.extra[1 - w][i], SH_KERR_TOPIC_ALREADY_EXISTS);
        blocks[2 * i] = r.values[0][i];
        blocks[2 * i + 1] = r.values[1][i];
    }
    assert_int_equal(hwm(m[1], id, 0), ROUNDS * 10);
    /* producer id blocks of 7 never overlap */
    for (int i = 0; i < 2 * ROUNDS; i++) {
        assert_true(blocks[i] >= 0);
        for (int j = 0; j < i; j++)
            assert_true(blocks[i] >= blocks[j] + 7 || blocks[j] >= blocks[i] + 7);
    }
    sh_meta_close(m[0]);
    sh_meta_close(m[1]);
}

/* ---------------------------------------------------------------------- */
/* Migrations                                                              */

/* Brokers starting on a fresh database at once: each migration is applied
 * exactly once and every broker opens. A fresh schema (search_path set
 * through the URL's options) stands in for a fresh database. */
static void test_concurrent_migrations(void **state_)
{
    (void)state_;
    NEED_SERVER();
    char schema[40], sql[160], murl[1024];
    snprintf(schema, sizeof(schema), "sh_mig_%s", pfx);
    PGconn *pg = admin();
    snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", schema);
    admin_exec(pg, sql);
    snprintf(murl, sizeof(murl), "%s%coptions=-csearch_path%%3D%s", url,
             strchr(url, '?') ? '&' : '?', schema);

    enum { N = 4 };
    int go[2];
    assert_int_equal(pipe(go), 0);
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            char b;
            close(go[1]);
            if (read(go[0], &b, 1) != 1)
                _exit(80);
            sh_meta_t *cm;
            if (sh_meta_open(murl, &cm) != SH_OK)
                _exit(81);
            sh_uuid_t tid;
            char name[32];
            snprintf(name, sizeof(name), "mig-%d", i);
            if (sh_meta_topic_create(cm, name, 1, NULL, 0, 1, &tid) != SH_OK)
                _exit(82);
            sh_meta_close(cm);
            _exit(0);
        }
    }
    close(go[0]);
    char release[N];
    memset(release, 'g', sizeof(release));
    assert_int_equal(write(go[1], release, N), N); /* all at once */
    close(go[1]);
    for (int i = 0; i < N; i++) {
        int status = 0;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s.schema_version", schema);
    assert_int_equal(admin_long(pg, sql), sh_meta_pg_migrations_count);
    snprintf(sql, sizeof(sql), "SELECT count(DISTINCT version) FROM %s.schema_version",
             schema);
    assert_int_equal(admin_long(pg, sql), sh_meta_pg_migrations_count);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s.topics", schema);
    assert_int_equal(admin_long(pg, sql), N);

    /* and the same list as SQLite's, version for version */
    assert_int_equal(sh_meta_pg_migrations_count, sh_meta_sqlite_migrations_count);
    for (int i = 0; i < sh_meta_pg_migrations_count; i++) {
        assert_int_equal(sh_meta_pg_migrations[i].version, i + 1);
        assert_int_equal(sh_meta_sqlite_migrations[i].version, i + 1);
        assert_string_equal(sh_meta_pg_migrations[i].description,
                            sh_meta_sqlite_migrations[i].description);
    }
    snprintf(sql, sizeof(sql), "DROP SCHEMA %s CASCADE", schema);
    admin_exec(pg, sql);
    PQfinish(pg);
}

/* ---------------------------------------------------------------------- */
/* Startup failures and what they log                                      */

static char logbuf[16384];

/* sh_meta_open(u) with the log captured into logbuf. */
static sh_err_t open_logged(const char *u, sh_meta_t **m)
{
    char path[] = "/tmp/sh-meta-pg-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    sh_log_set_fd(fd);
    *m = NULL;
    sh_err_t err = sh_meta_open(u, m);
    quiet_logs();
    ssize_t n = pread(fd, logbuf, sizeof(logbuf) - 1, 0);
    close(fd);
    logbuf[n > 0 ? n : 0] = '\0';
    return err;
}

static int count_lines_with(const char *text, const char *what)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, what)) != NULL; p += strlen(what))
        n++;
    return n;
}

/* url with its password (between "user:" and '@') replaced; NULL if the
 * URL has no password there. */
static char *url_with_password(const char *pw)
{
    const char *auth = strstr(url, "://");
    if (!auth)
        return NULL;
    auth += 3;
    const char *at = strchr(auth, '@');
    const char *slash = strchr(auth, '/');
    if (!at || (slash && slash < at))
        return NULL;
    const char *colon = memchr(auth, ':', (size_t)(at - auth));
    if (!colon)
        return NULL;
    size_t n = strlen(url) + strlen(pw) + 1;
    char *r = malloc(n);
    snprintf(r, n, "%.*s%s%s", (int)(colon + 1 - url), url, pw, at);
    return r;
}

static void test_unreachable_at_open(void **state_)
{
    (void)state_;
    NEED_SERVER();
    sh_meta_t *m;
    /* nothing listens on port 1 */
    assert_int_equal(open_logged("postgresql://sh_user:topsecret99@127.0.0.1:1/sh_db", &m),
                     SH_E_IO);
    assert_null(m);
    assert_int_equal(count_lines_with(logbuf, "ERROR"), 1);
    assert_non_null(strstr(logbuf, "could not connect to metadata database"));
    assert_non_null(strstr(logbuf, "host 127.0.0.1, port 1, database sh_db, user sh_user"));
    assert_non_null(strstr(logbuf, "Connection refused"));
    assert_null(strstr(logbuf, "topsecret99"));

    /* a malformed URL names the problem without echoing the password */
    assert_int_equal(open_logged("postgresql://u:pa%zzss-word@127.0.0.1:1/d", &m), SH_E_INVAL);
    assert_non_null(strstr(logbuf, "invalid metadata URL"));
    assert_null(strstr(logbuf, "pa%zzss-word"));
    assert_null(strstr(logbuf, "ss-word"));
}

static void test_bad_credentials_and_database(void **state_)
{
    (void)state_;
    NEED_SERVER();
    sh_meta_t *m;
    char *bad = url_with_password("wrong-pass-7781");
    if (!bad)
        skip(); /* the test server's URL carries no password */
    assert_int_equal(open_logged(bad, &m), SH_E_IO);
    assert_null(m);
    assert_int_equal(count_lines_with(logbuf, "ERROR"), 1);
    assert_non_null(strstr(logbuf, "password authentication failed"));
    assert_non_null(strstr(logbuf, ", user "));
    assert_null(strstr(logbuf, "wrong-pass-7781"));
    free(bad);

    /* the right credentials, a database that does not exist: the path
     * after the authority names it */
    char nodb[1024];
    const char *auth = strstr(url, "://");
    const char *slash = auth ? strchr(auth + 3, '/') : NULL;
    if (!slash || strchr(url, '?'))
        skip();
    snprintf(nodb, sizeof(nodb), "%.*s/no_such_db_%s", (int)(slash - url), url, pfx);
    assert_int_equal(open_logged(nodb, &m), SH_E_IO);
    assert_int_equal(count_lines_with(logbuf, "ERROR"), 1);
    assert_non_null(strstr(logbuf, "does not exist"));
    assert_non_null(strstr(logbuf, "database no_such_db_"));
}

static void test_password_redaction(void **state_)
{
    (void)state_;
    NEED_SERVER();
    sh_meta_t *m;
    PQconninfoOption *opts = PQconninfoParse(url, NULL);
    assert_non_null(opts);
    const char *pw = NULL, *host = NULL, *port = NULL, *user = NULL, *db = NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (strcmp(o->keyword, "password") == 0)
            pw = o->val;
        else if (strcmp(o->keyword, "host") == 0)
            host = o->val;
        else if (strcmp(o->keyword, "port") == 0)
            port = o->val;
        else if (strcmp(o->keyword, "user") == 0)
            user = o->val;
        else if (strcmp(o->keyword, "dbname") == 0)
            db = o->val;
    }
    if (!pw || !pw[0] || !host || !port || !user || !db || strchr(url, '?')) {
        PQconninfoFree(opts);
        skip();
    }
    /* the password in the user info */
    OK(open_logged(url, &m));
    assert_non_null(strstr(logbuf, "opened metadata store"));
    assert_non_null(strstr(logbuf, ":***@"));
    assert_null(strstr(logbuf, pw));
    sh_meta_close(m);

    /* the password as a query parameter */
    char qurl[1024];
    snprintf(qurl, sizeof(qurl), "postgresql://%s:%s/%s?user=%s&password=%s&sslmode=disable",
             host, port, db, user, pw);
    OK(open_logged(qurl, &m));
    assert_non_null(strstr(logbuf, "password=***&sslmode=disable"));
    assert_null(strstr(logbuf, pw));
    sh_meta_close(m);

    /* and on the failure paths: refused, wrong password */
    snprintf(qurl, sizeof(qurl), "postgres://%s:1/%s?user=%s&password=%s", host, db, user,
             pw);
    assert_int_equal(open_logged(qurl, &m), SH_E_IO);
    assert_non_null(strstr(logbuf, "password=***"));
    assert_null(strstr(logbuf, pw));
    PQconninfoFree(opts);
}

int main(void)
{
    url = getenv("SH_TEST_META_URL");
    if (url && strncmp(url, "postgresql://", 13) != 0 && strncmp(url, "postgres://", 11) != 0)
        url = NULL;
    state = url ? getenv("SH_TEST_PG_STATE") : NULL;
    if (state && !state[0])
        state = NULL;
    devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    quiet_logs();
    sh_uuid_t u;
    if (sh_meta_uuid_random(&u) != SH_OK)
        return 1;
    snprintf(pfx, sizeof(pfx), "%02x%02x%02x%02x", u.b[0], u.b[1], u.b[2], u.b[3]);
    if (!url)
        printf("meta_pg: SH_TEST_META_URL is not a postgresql:// URL; skipping "
               "(make unit-pg runs these against a throwaway server)\n");
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_teardown(fn, after_test)
        T(test_restart),
        T(test_outage),
        T(test_connection_killed),
        T(test_hung_server),
        T(test_two_stores_fencing),
        T(test_race_takeover),
        T(test_race_same_epoch),
        T(test_concurrent_migrations),
        T(test_unreachable_at_open),
        T(test_bad_credentials_and_database),
        T(test_password_redaction),
#undef T
    };
    int failed = cmocka_run_group_tests_name("meta_pg", tests, NULL, NULL);
    /* whatever happened, leave the server running for the next user */
    server_resume();
    return failed;
}
