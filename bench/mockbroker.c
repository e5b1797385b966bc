/*
 * mockbroker.c - the reference broker for side-by-side benchmarks.
 *
 * Runs librdkafka's built-in mock cluster (rdkafka_mock.h) with one broker
 * as a process of its own, so that it is measured like StreamHouse: a
 * separate pid, reached over loopback TCP by an unmodified client. The mock
 * keeps every record in memory and fsyncs nothing; it is an upper bound for
 * an in-memory broker, not an equal of a durable one.
 *
 *   shbench-mock [--port P [--port-tries N]] [--topic NAME:PARTITIONS]...
 *
 * The mock does not serve CreateTopics, and its automatic creation uses a
 * fixed partition count, so the topics a benchmark needs are created here
 * up front. It prints "BOOTSTRAP 127.0.0.1:<port>" on stdout once it
 * listens, then runs until SIGTERM or SIGINT.
 *
 * Threads: librdkafka runs the mock cluster on its own thread; the main
 * thread only waits for a signal (blocked in every thread, taken with
 * sigwait) and then tears the cluster down.
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern atomic_int shb_mock_bind_port; /* shb_mock_bind.c */
extern int        shb_mock_bind_tries;

#define MAX_TOPICS 256

static void usage(FILE *f)
{
    fprintf(f,
"usage: shbench-mock [--port P [--port-tries N]] [--topic NAME:PARTITIONS]...\n"
"Reference broker: librdkafka's in-memory mock cluster with one broker.\n"
"  --port P                 listen on 127.0.0.1:P (default 0: any free port)\n"
"  --port-tries N           if P is taken, try P+1 .. P+N-1 (default 10)\n"
"  --topic NAME:PARTITIONS  create a topic before serving (repeatable)\n"
"Prints \"BOOTSTRAP host:port\" on stdout when ready; stops on SIGTERM/SIGINT.\n");
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        { "port", required_argument, 0, 'p' },
        { "port-tries", required_argument, 0, 'n' },
        { "topic", required_argument, 0, 't' },
        { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    const char *topics[MAX_TOPICS];
    int ntopics = 0, port = 0, tries = 10, c;
    while ((c = getopt_long(argc, argv, "p:n:t:h", lo, NULL)) != -1) {
        switch (c) {
        case 'p':
            port = atoi(optarg);
            if (port < 0 || port > 65535) {
                fprintf(stderr, "shbench-mock: bad port \"%s\"\n", optarg);
                return 2;
            }
            break;
        case 'n':
            tries = atoi(optarg);
            if (tries < 1)
                tries = 1;
            break;
        case 't':
            if (ntopics == MAX_TOPICS || !strchr(optarg, ':')) {
                fprintf(stderr, "shbench-mock: bad or too many --topic \"%s\"\n", optarg);
                return 2;
            }
            topics[ntopics++] = optarg;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }

    /* block the stop signals before librdkafka starts threads, so they
     * inherit the mask and only sigwait below ever takes them */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* the handle only hosts the cluster; it never connects anywhere */
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "shbench-mock: %s\n", errstr);
        return 1;
    }
    shb_mock_bind_tries = tries;
    atomic_store(&shb_mock_bind_port, port);
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, 1);
    if (!mc) {
        fprintf(stderr, "shbench-mock: could not start the mock cluster%s\n",
                port ? " (is the port in use?)" : "");
        rd_kafka_destroy(rk);
        return 1;
    }
    const char *bs = rd_kafka_mock_cluster_bootstraps(mc);
    if (port) {
        const char *colon = strrchr(bs, ':');
        int got = colon ? atoi(colon + 1) : 0;
        if (got < port || got >= port + tries)
            fprintf(stderr, "shbench-mock: warning: asked for ports %d..%d, listening on %s\n",
                    port, port + tries - 1, bs);
    }

    for (int i = 0; i < ntopics; i++) {
        char name[256];
        const char *colon = strrchr(topics[i], ':');
        size_t nl = (size_t)(colon - topics[i]);
        int parts = atoi(colon + 1);
        if (nl == 0 || nl >= sizeof(name) || parts <= 0) {
            fprintf(stderr, "shbench-mock: bad --topic \"%s\"\n", topics[i]);
            goto fail;
        }
        memcpy(name, topics[i], nl);
        name[nl] = '\0';
        rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(mc, name, parts, 1);
        if (err) {
            fprintf(stderr, "shbench-mock: could not create topic %s: %s\n", name,
                    rd_kafka_err2str(err));
            goto fail;
        }
    }

    printf("BOOTSTRAP %s\n", bs);
    fflush(stdout);

    int sig = 0;
    sigwait(&stop, &sig);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
fail:
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 1;
}
