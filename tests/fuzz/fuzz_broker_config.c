/*
 * fuzz_broker_config.c - libFuzzer target for the configuration parser
 * (broker/sh_config.h): arbitrary text as a Java-properties file, each of
 * its lines as an --override, and the value checkers on raw text.
 *
 * Beyond "no crash, no leak, no sanitizer report":
 *   - a failed load says why (a non-empty message);
 *   - write-then-read: whatever the load accepted (every key it set, as
 *     sh_config_value_str prints it) written back as a properties file,
 *     escaped the way the parser unescapes, loads without error into a
 *     fresh configuration with exactly the same values for every key, and
 *     writing that one gives the same text again;
 *   - finalize either fails with a message or yields listeners and an
 *     absolute data directory; the effective configuration can be logged
 *     (password masking runs on every string value).
 * Seeds: tests/fuzz/corpus/fuzz_broker_config/: configs/ (server and production examples) and
 * small files for escapes, continuations, aliases and bad values.
 * Single-threaded; everything is freed before returning. Logs go to
 * /dev/null.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/sh_config.h"
#include "common/sh_log.h"

#define MAX_INPUT (64 * 1024)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    sh_log_set_fd(open("/dev/null", O_WRONLY | O_CLOEXEC));
    sh_log_level = SH_LOG_INFO; /* sh_config_log formats every key */
    return 0;
}

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_broker_config: %s\n", what);
        abort();
    }
}

typedef struct {
    char *p;
    size_t len, cap;
} buf_t;

static void put(buf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (b->len + n + 1 > cap)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            abort();
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* Every key that was set, as "name=value", the value escaped for
 * props_split: the characters it unescapes and the backslash itself.
 * Stored values are trimmed, so no leading or trailing blank needs
 * protecting. Keys left at their defaults are left out (a derived
 * default such as the storage URL is "", which no file may say). */
static void write_config(const sh_config_t *c, buf_t *out, char *val, size_t vallen)
{
    out->len = 0;
    put(out, "", 0);
    for (int i = 0; i < SH_CONFIG_NKEYS; i++) {
        if (c->source[i] == SH_CONFIG_SRC_DEFAULT)
            continue;
        sh_config_value_str(c, i, val, vallen);
        put(out, sh_config_keys[i].name, strlen(sh_config_keys[i].name));
        put(out, "=", 1);
        for (const char *p = val; *p; p++) {
            switch (*p) {
            case '\\': put(out, "\\\\", 2); break;
            case '\n': put(out, "\\n", 2); break;
            case '\r': put(out, "\\r", 2); break;
            case '\t': put(out, "\\t", 2); break;
            case '\f': put(out, "\\f", 2); break;
            default: put(out, p, 1);
            }
        }
        put(out, "\n", 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        abort();
    if (size)
        memcpy(text, data, size);
    text[size] = '\0'; /* a NUL inside ends the text, as a C string */

    char err[512] = "";
    sh_config_t c;
    check(sh_config_init(&c) == SH_OK, "init");
    sh_err_t e = sh_config_load_string(&c, text, "fuzz", err, sizeof(err));
    check(e == SH_OK || err[0] != '\0', "a failed load without a message");

    /* write what was accepted, read it back, write again */
    size_t vallen = strlen(text) + 4096; /* longer than any value */
    char *val = malloc(vallen);
    if (!val)
        abort();
    buf_t w1 = {0}, w2 = {0};
    write_config(&c, &w1, val, vallen);
    sh_config_t c2;
    check(sh_config_init(&c2) == SH_OK, "init");
    err[0] = '\0';
    if (sh_config_load_string(&c2, w1.p, "rewritten", err, sizeof(err)) != SH_OK) {
        fprintf(stderr, "fuzz_broker_config: %s\n", err);
        check(0, "the written configuration does not load");
    }
    write_config(&c2, &w2, val, vallen);
    check(w1.len == w2.len && memcmp(w1.p, w2.p, w1.len) == 0,
          "write(read(write(x))) differs from write(x)");
    char *val2 = malloc(vallen);
    if (!val2)
        abort();
    for (int i = 0; i < SH_CONFIG_NKEYS; i++) {
        sh_config_value_str(&c, i, val, vallen);
        sh_config_value_str(&c2, i, val2, vallen);
        check(strcmp(val, val2) == 0 && c.source[i] == c2.source[i],
              "values changed through write and read");
    }
    free(val2);

    /* finalize and print, as the broker does at startup */
    err[0] = '\0';
    if (sh_config_finalize(&c, err, sizeof(err)) == SH_OK) {
        check(c.finalized && c.listener_count >= 1 &&
                  c.listener_count <= SH_CONFIG_MAX_LISTENERS,
              "finalized without listeners");
        check(c.data_dir && c.data_dir[0] == '/', "data directory not absolute");
        check(c.storage_url[0] && c.metadata_url[0], "derived URLs missing");
        sh_config_log(&c);
    } else {
        check(err[0] != '\0', "a failed finalize without a message");
    }
    sh_config_fini(&c);
    sh_config_fini(&c2);

    /* each line as --override key=value */
    sh_config_t c3;
    check(sh_config_init(&c3) == SH_OK, "init");
    for (char *line = text, *nl; line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        err[0] = '\0';
        if (sh_config_set_override(&c3, line, err, sizeof(err)) != SH_OK)
            check(err[0] != '\0', "a refused override without a message");
        if (nl)
            *nl = '\n';
    }
    sh_config_fini(&c3);

    /* the checkers on the raw text */
    char why[256];
    sh_config_listener_t ls[SH_CONFIG_MAX_LISTENERS];
    int n = sh_config_parse_listeners(text, ls, SH_CONFIG_MAX_LISTENERS, why, sizeof(why));
    check(n == -1 || (n >= 1 && n <= SH_CONFIG_MAX_LISTENERS), "listener count");
    for (int i = 0; i < n; i++)
        check(ls[i].port >= 0 && ls[i].port <= 65535 && ls[i].name[0], "listener fields");
    (void)sh_config_check_protocol_map(text, why, sizeof(why));
    (void)sh_config_check_storage_url(text, why, sizeof(why));
    (void)sh_config_check_metadata_url(text, why, sizeof(why));
    (void)sh_config_check_log_level(text, why, sizeof(why));
    (void)sh_config_key_find(text);

    free(w1.p);
    free(w2.p);
    free(val);
    free(text);
    return 0;
}
