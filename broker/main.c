/*
 * main.c - bin/streamhouse-server CONFIG [--override key=value]...
 *
 * Reads the configuration (file, then overrides), refuses to start on an
 * invalid value (exit 1), prints the effective configuration, raises the
 * open-file limit, then runs the broker on this thread until SIGTERM or
 * SIGINT, and exits 0 after closing every connection.
 *
 * Thread: the main thread becomes the loop thread. Signals are blocked
 * before anything can start a thread so that they reach only the
 * broker's signalfd.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/sh_broker.h"
#include "broker/sh_config.h"
#include "common/sh_log.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: streamhouse-server CONFIG [--override key=value]...\n"
            "       streamhouse-server --help | --version\n\n"
            "CONFIG is a Java-properties file (see configs/server.properties).\n"
            "Keys (default in brackets):\n");
    for (int i = 0; i < SH_CONFIG_NKEYS; i++) {
        const sh_config_key_t *k = &sh_config_keys[i];
        fprintf(out, "  %s [%s]\n      %s\n", k->name, k->def[0] ? k->def : "derived",
                k->help);
    }
}

int main(int argc, char **argv)
{
    sh_config_t cfg;
    sh_broker_t *b = NULL;
    const char *path = NULL;
    char err[1024];
    int rc = 1;

    sh_loop_block_signals();
    if (sh_config_init(&cfg) != SH_OK) {
        fprintf(stderr, "streamhouse-server: out of memory\n");
        return 1;
    }
    /* first pass: the file, so that overrides win whatever their position */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            rc = 0;
            goto out;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("streamhouse-server %s\n", SH_BROKER_VERSION);
            rc = 0;
            goto out;
        }
        if (strcmp(argv[i], "--override") == 0) {
            if (++i == argc) {
                fprintf(stderr, "streamhouse-server: --override needs key=value\n");
                goto out;
            }
            continue;
        }
        if (strncmp(argv[i], "--override=", 11) == 0)
            continue;
        if (argv[i][0] == '-') {
            fprintf(stderr, "streamhouse-server: unknown option \"%s\"\n", argv[i]);
            usage(stderr);
            goto out;
        }
        if (path) {
            fprintf(stderr, "streamhouse-server: more than one configuration file\n");
            goto out;
        }
        path = argv[i];
    }
    if (!path) {
        usage(stderr);
        goto out;
    }
    if (sh_config_load_file(&cfg, path, err, sizeof(err)) != SH_OK) {
        sh_log(SH_LOG_ERROR, "config", "%s", err);
        goto out;
    }
    for (int i = 1; i < argc; i++) {
        const char *kv = NULL;
        if (strcmp(argv[i], "--override") == 0)
            kv = argv[++i];
        else if (strncmp(argv[i], "--override=", 11) == 0)
            kv = argv[i] + 11;
        if (kv && sh_config_set_override(&cfg, kv, err, sizeof(err)) != SH_OK) {
            sh_log(SH_LOG_ERROR, "config", "%s", err);
            goto out;
        }
    }
    if (sh_config_finalize(&cfg, err, sizeof(err)) != SH_OK) {
        sh_log(SH_LOG_ERROR, "config", "%s", err);
        goto out;
    }
    sh_log_level = (sh_log_level_t)sh_log_level_parse(cfg.log_level);

    sh_log(SH_LOG_INFO, "broker", "StreamHouse %s starting (node.id %d, pid %d, config \"%s\")",
           SH_BROKER_VERSION, cfg.node_id, (int)getpid(), path);
    sh_config_log(&cfg);
    long nofile = sh_loop_raise_fd_limit();
    sh_log(SH_LOG_INFO, "broker", "open file limit %ld", nofile);

    b = sh_broker_new(&cfg);
    if (!b)
        goto out;
    if (sh_broker_listen(b) != SH_OK || sh_broker_handle_signals(b) != SH_OK)
        goto out;
    if (sh_broker_run(b) == SH_OK)
        rc = 0;
out:
    sh_broker_free(b);
    if (b)
        sh_log(SH_LOG_INFO, "broker", "exiting with status %d", rc);
    sh_config_fini(&cfg);
    return rc;
}
