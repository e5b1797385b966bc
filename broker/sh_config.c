/*
 * sh_config.c - parse, validate and print the broker configuration from
 * the one key table in sh_config.h.
 *
 * Thread: main thread at startup only (and tests).
 * Ownership: sh_config_t owns its STR values and data_dir (heap strings,
 * freed by sh_config_fini); everything else is inline.
 */
#include "broker/sh_config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/sh_log.h"

const sh_config_key_t sh_config_keys[] = {
#define SH_CONFIG_X_ROW(name, field, type, def, min, max, check, help)        \
    {name, SH_CONFIG_##type, def, (int64_t)(min), (int64_t)(max), check, help, \
     offsetof(sh_config_t, field)},
    SH_CONFIG_KEYS(SH_CONFIG_X_ROW)
#undef SH_CONFIG_X_ROW
};

static const sh_config_alias_t sh_config_aliases[] = {
    {"broker.id", SH_CONFIG_K_node_id},
    {"log.dir", SH_CONFIG_K_log_dirs},
};

#define NALIASES (sizeof(sh_config_aliases) / sizeof(sh_config_aliases[0]))

int sh_config_key_find(const char *name)
{
    for (int i = 0; i < SH_CONFIG_NKEYS; i++)
        if (strcmp(sh_config_keys[i].name, name) == 0)
            return i;
    for (size_t i = 0; i < NALIASES; i++)
        if (strcmp(sh_config_aliases[i].alias, name) == 0)
            return (int)sh_config_aliases[i].key;
    return -1;
}

static void *field_ptr(sh_config_t *c, int key)
{
    return (char *)c + sh_config_keys[key].offset;
}

static const void *field_cptr(const sh_config_t *c, int key)
{
    return (const char *)c + sh_config_keys[key].offset;
}

/* ------------------------------------------------------------ checkers */

static bool listener_name_ok(const char *s, size_t n)
{
    if (n == 0 || n >= SH_CONFIG_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
            return false;
    return true;
}

static bool parse_port(const char *s, size_t n, int *port)
{
    int v = 0;
    if (n == 0 || n > 5)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v > 65535)
        return false;
    *port = v;
    return true;
}

/* One "NAME://host:port" of length n (IPv6 hosts in brackets). */
static bool parse_one_listener(const char *s, size_t n, sh_config_listener_t *l,
                               char *why, size_t whylen)
{
    const char *sep = NULL;
    for (size_t i = 0; i + 2 < n; i++)
        if (s[i] == ':' && s[i + 1] == '/' && s[i + 2] == '/') {
            sep = s + i;
            break;
        }
    if (!sep) {
        snprintf(why, whylen, "\"%.*s\" is not of the form NAME://host:port",
                 (int)n, s);
        return false;
    }
    size_t namelen = (size_t)(sep - s);
    if (!listener_name_ok(s, namelen)) {
        snprintf(why, whylen, "invalid listener name \"%.*s\"", (int)namelen, s);
        return false;
    }
    for (size_t i = 0; i < namelen; i++)
        l->name[i] = (char)toupper((unsigned char)s[i]);
    l->name[namelen] = '\0';

    const char *hp = sep + 3, *end = s + n;
    const char *hs, *he, *colon;
    if (hp < end && *hp == '[') {
        const char *rb = memchr(hp, ']', (size_t)(end - hp));
        if (!rb || rb + 1 >= end || rb[1] != ':') {
            snprintf(why, whylen, "bad IPv6 address in \"%.*s\"", (int)n, s);
            return false;
        }
        hs = hp + 1;
        he = rb;
        colon = rb + 1;
    } else {
        colon = NULL;
        for (const char *p = end; p > hp; p--)
            if (p[-1] == ':') {
                colon = p - 1;
                break;
            }
        if (!colon) {
            snprintf(why, whylen, "missing port in \"%.*s\"", (int)n, s);
            return false;
        }
        hs = hp;
        he = colon;
        if (memchr(hs, ':', (size_t)(he - hs))) {
            snprintf(why, whylen,
                     "IPv6 address must be in brackets in \"%.*s\"", (int)n, s);
            return false;
        }
    }
    size_t hl = (size_t)(he - hs);
    if (hl >= SH_CONFIG_HOST_MAX) {
        snprintf(why, whylen, "host name too long in \"%.*s\"", (int)n, s);
        return false;
    }
    for (size_t i = 0; i < hl; i++)
        if (isspace((unsigned char)hs[i]) || hs[i] == '/' || hs[i] == ',') {
            snprintf(why, whylen, "invalid host in \"%.*s\"", (int)n, s);
            return false;
        }
    memcpy(l->host, hs, hl);
    l->host[hl] = '\0';
    if (!parse_port(colon + 1, (size_t)(end - colon - 1), &l->port)) {
        snprintf(why, whylen, "invalid port in \"%.*s\"", (int)n, s);
        return false;
    }
    return true;
}

int sh_config_parse_listeners(const char *v, sh_config_listener_t *out, int max,
                              char *why, size_t whylen)
{
    int count = 0;
    const char *p = v;
    while (*p) {
        const char *comma = strchr(p, ',');
        const char *e = comma ? comma : p + strlen(p);
        while (p < e && isspace((unsigned char)*p))
            p++;
        const char *te = e;
        while (te > p && isspace((unsigned char)te[-1]))
            te--;
        if (te > p) {
            if (count == max) {
                snprintf(why, whylen, "more than %d listeners", max);
                return -1;
            }
            if (!parse_one_listener(p, (size_t)(te - p), &out[count], why,
                                    whylen))
                return -1;
            for (int i = 0; i < count; i++)
                if (strcmp(out[i].name, out[count].name) == 0) {
                    snprintf(why, whylen, "listener name \"%s\" used twice",
                             out[count].name);
                    return -1;
                }
            count++;
        }
        p = comma ? comma + 1 : e;
    }
    if (count == 0) {
        snprintf(why, whylen, "no listener given");
        return -1;
    }
    return count;
}

bool sh_config_check_listeners(const char *v, char *why, size_t n)
{
    sh_config_listener_t tmp[SH_CONFIG_MAX_LISTENERS];
    return sh_config_parse_listeners(v, tmp, SH_CONFIG_MAX_LISTENERS, why, n) > 0;
}

/* Looks up NAME in "A:PLAINTEXT,B:SSL"; writes the protocol. */
static bool protocol_map_lookup(const char *map, const char *name, char *proto,
                                size_t protolen)
{
    size_t nl = strlen(name);
    const char *p = map;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *colon = strchr(p, ':');
        const char *comma = strchr(p, ',');
        if (!colon || (comma && comma < colon))
            return false;
        const char *e = comma ? comma : p + strlen(p);
        size_t kl = (size_t)(colon - p);
        while (kl > 0 && p[kl - 1] == ' ')
            kl--;
        if (kl == nl && strncasecmp(p, name, nl) == 0) {
            const char *vs = colon + 1;
            while (vs < e && *vs == ' ')
                vs++;
            size_t vl = (size_t)(e - vs);
            while (vl > 0 && vs[vl - 1] == ' ')
                vl--;
            snprintf(proto, protolen, "%.*s", (int)vl, vs);
            return true;
        }
        p = e;
    }
    return false;
}

bool sh_config_check_listeners_or_empty(const char *v, char *why, size_t n)
{
    return *v == '\0' || sh_config_check_listeners(v, why, n);
}

bool sh_config_check_protocol_map(const char *v, char *why, size_t n)
{
    const char *p = v;
    while (*p) {
        const char *comma = strchr(p, ',');
        const char *e = comma ? comma : p + strlen(p);
        const char *colon = memchr(p, ':', (size_t)(e - p));
        if (!colon) {
            snprintf(why, n, "\"%.*s\" is not of the form NAME:PROTOCOL",
                     (int)(e - p), p);
            return false;
        }
        static const char *const protos[] = {"PLAINTEXT", "SSL", "SASL_PLAINTEXT",
                                             "SASL_SSL"};
        const char *vs = colon + 1;
        while (vs < e && *vs == ' ')
            vs++;
        size_t vl = (size_t)(e - vs);
        while (vl > 0 && vs[vl - 1] == ' ')
            vl--;
        bool known = false;
        for (size_t i = 0; i < 4; i++)
            if (strlen(protos[i]) == vl && strncasecmp(vs, protos[i], vl) == 0)
                known = true;
        if (!known) {
            snprintf(why, n, "unknown security protocol \"%.*s\"", (int)vl, vs);
            return false;
        }
        p = comma ? comma + 1 : e;
    }
    return true;
}

bool sh_config_check_log_level(const char *v, char *why, size_t n)
{
    if (sh_log_level_parse(v) >= 0)
        return true;
    snprintf(why, n, "must be one of error, warn, info, debug");
    return false;
}

bool sh_config_check_nonempty(const char *v, char *why, size_t n)
{
    if (*v)
        return true;
    snprintf(why, n, "must not be empty");
    return false;
}

bool sh_config_check_storage_url(const char *v, char *why, size_t n)
{
    if (strncmp(v, "file:///", 8) == 0 && v[8] != '\0')
        return true;
    if (strncmp(v, "s3://", 5) == 0 && v[5] != '\0' && v[5] != '/')
        return true;
    snprintf(why, n, "must be file:///absolute/dir or s3://bucket[/prefix]");
    return false;
}

bool sh_config_check_metadata_url(const char *v, char *why, size_t n)
{
    if (strncmp(v, "sqlite:///", 10) == 0 && v[10] != '\0')
        return true;
    if (strncmp(v, "postgresql://", 13) == 0 || strncmp(v, "postgres://", 11) == 0)
        return true;
    snprintf(why, n, "must be sqlite:///absolute/file.db or postgresql://...");
    return false;
}

/* ---------------------------------------------------------- set values */

static sh_err_t parse_value(const sh_config_key_t *k, const char *value,
                            void *dst, char *why, size_t whylen)
{
    switch (k->type) {
    case SH_CONFIG_STR: {
        if (k->check && !k->check(value, why, whylen))
            return SH_E_INVAL;
        char *s = strdup(value);
        if (!s)
            return SH_E_NOMEM;
        free(*(char **)dst);
        *(char **)dst = s;
        return SH_OK;
    }
    case SH_CONFIG_INT:
    case SH_CONFIG_LONG: {
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (*value == '\0' || *end != '\0' || errno == ERANGE) {
            snprintf(why, whylen, "not an integer");
            return SH_E_INVAL;
        }
        if (v < k->min || v > k->max) {
            snprintf(why, whylen, "must be between %" PRId64 " and %" PRId64,
                     k->min, k->max);
            return SH_E_INVAL;
        }
        if (k->type == SH_CONFIG_INT)
            *(int32_t *)dst = (int32_t)v;
        else
            *(int64_t *)dst = (int64_t)v;
        return SH_OK;
    }
    case SH_CONFIG_BOOL:
        if (strcasecmp(value, "true") == 0)
            *(bool *)dst = true;
        else if (strcasecmp(value, "false") == 0)
            *(bool *)dst = false;
        else {
            snprintf(why, whylen, "must be true or false");
            return SH_E_INVAL;
        }
        return SH_OK;
    }
    return SH_E_INVAL;
}

sh_err_t sh_config_init(sh_config_t *c)
{
    char why[256];
    sh_err_t err = SH_E_NOMEM;
    memset(c, 0, sizeof(*c));
    for (int i = 0; i < SH_CONFIG_NKEYS; i++) {
        const sh_config_key_t *k = &sh_config_keys[i];
        if (k->type == SH_CONFIG_STR && k->def[0] == '\0') {
            /* derived later; no checker applies to "unset" */
            char *s = strdup("");
            if (!s) {
                err = SH_E_NOMEM;
                goto fail;
            }
            *(char **)field_ptr(c, i) = s;
            continue;
        }
        err = parse_value(k, k->def, field_ptr(c, i), why, sizeof(why));
        if (err == SH_E_NOMEM)
            goto fail;
        if (err) {
            /* a bad default is a programming error; say so loudly */
            sh_log(SH_LOG_ERROR, "config", "default of \"%s\" is invalid: %s",
                   k->name, why);
            goto fail;
        }
    }
    return SH_OK;
fail:
    sh_config_fini(c);
    return err == SH_E_NOMEM ? SH_E_NOMEM : SH_E_INVAL;
}

void sh_config_fini(sh_config_t *c)
{
    for (int i = 0; i < SH_CONFIG_NKEYS; i++)
        if (sh_config_keys[i].type == SH_CONFIG_STR) {
            char **s = field_ptr(c, i);
            free(*s);
            *s = NULL;
        }
    free(c->data_dir);
    c->data_dir = NULL;
}

static sh_err_t set_from(sh_config_t *c, const char *key, const char *value,
                         sh_config_source_t src, const char *where, char *err,
                         size_t errlen)
{
    char why[256];
    int idx = sh_config_key_find(key);
    if (idx < 0) {
        sh_log(SH_LOG_WARN, "config", "unknown configuration key \"%s\"%s%s, ignored",
               key, where ? " at " : "", where ? where : "");
        return SH_OK;
    }
    const sh_config_key_t *k = &sh_config_keys[idx];
    const char *canon = k->name;
    const char *as = strcmp(key, canon) == 0 ? canon : NULL;
    if (!as)
        for (size_t i = 0; i < NALIASES; i++)
            if (strcmp(sh_config_aliases[i].alias, key) == 0)
                as = sh_config_aliases[i].alias;

    /* Two spellings of one key in the same source must agree; a later
     * source (override over file) simply wins. */
    char before[512] = "";
    bool check_conflict =
        c->source[idx] == src && c->set_as[idx] && c->set_as[idx] != as;
    if (check_conflict)
        sh_config_value_str(c, idx, before, sizeof(before));
    sh_err_t e = parse_value(k, value, field_ptr(c, idx), why, sizeof(why));
    if (e == SH_E_NOMEM) {
        snprintf(err, errlen, "out of memory");
        return e;
    }
    if (e) {
        snprintf(err, errlen, "invalid value \"%s\" for \"%s\": %s%s%s", value,
                 key, why, where ? " at " : "", where ? where : "");
        return e;
    }
    if (check_conflict) {
        char after[512];
        sh_config_value_str(c, idx, after, sizeof(after));
        if (strcmp(before, after) != 0) {
            snprintf(err, errlen,
                     "conflicting values for \"%s\" (\"%s\") and \"%s\" "
                     "(\"%s\")%s%s",
                     c->set_as[idx], before, key, after, where ? " at " : "",
                     where ? where : "");
            return SH_E_INVAL;
        }
    }
    c->source[idx] = src;
    c->set_as[idx] = as;
    c->finalized = false;
    return SH_OK;
}

sh_err_t sh_config_set(sh_config_t *c, const char *key, const char *value,
                       sh_config_source_t src, char *err, size_t errlen)
{
    return set_from(c, key, value, src, NULL, err, errlen);
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

sh_err_t sh_config_set_override(sh_config_t *c, const char *kv, char *err,
                                size_t errlen)
{
    const char *eq = strchr(kv, '=');
    if (!eq) {
        snprintf(err, errlen, "override \"%s\" is not of the form key=value", kv);
        return SH_E_INVAL;
    }
    char *dup = strdup(kv);
    if (!dup) {
        snprintf(err, errlen, "out of memory");
        return SH_E_NOMEM;
    }
    dup[eq - kv] = '\0';
    char *key = trim(dup), *value = trim(dup + (eq - kv) + 1);
    sh_err_t e;
    if (*key == '\0') {
        snprintf(err, errlen, "override \"%s\" has an empty key", kv);
        e = SH_E_INVAL;
    } else {
        e = set_from(c, key, value, SH_CONFIG_SRC_OVERRIDE, "--override", err,
                     errlen);
    }
    free(dup);
    return e;
}

/* ------------------------------------------------------ properties file */

/* Java-properties logical line -> key and value, unescaped in place.
 * Returns false for blank and comment lines. */
static bool props_split(char *line, char **key, char **value)
{
    char *p = line;
    while (*p == ' ' || *p == '\t' || *p == '\f')
        p++;
    if (*p == '\0' || *p == '#' || *p == '!')
        return false;
    /* key: up to the first unescaped '=', ':' or whitespace */
    char *k = p, *w = p;
    while (*p && *p != '=' && *p != ':' && *p != ' ' && *p != '\t' && *p != '\f') {
        if (*p == '\\' && p[1])
            p++;
        *w++ = *p++;
    }
    char *keyend = w;
    while (*p == ' ' || *p == '\t' || *p == '\f')
        p++;
    if (*p == '=' || *p == ':')
        p++;
    *keyend = '\0';
    while (*p == ' ' || *p == '\t' || *p == '\f')
        p++;
    /* value: unescape \t \n \r \f \\ \uXXXX (ASCII only), \x -> x */
    char *v = p;
    w = p;
    while (*p) {
        if (*p == '\\' && p[1]) {
            p++;
            switch (*p) {
            case 't': *w++ = '\t'; p++; break;
            case 'n': *w++ = '\n'; p++; break;
            case 'r': *w++ = '\r'; p++; break;
            case 'f': *w++ = '\f'; p++; break;
            case 'u': {
                unsigned cp = 0;
                int i;
                for (i = 1; i <= 4 && isxdigit((unsigned char)p[i]); i++)
                    cp = cp * 16 + (unsigned)(isdigit((unsigned char)p[i])
                                                  ? p[i] - '0'
                                                  : (tolower((unsigned char)p[i]) - 'a' + 10));
                if (i == 5 && cp > 0 && cp < 0x80) {
                    *w++ = (char)cp;
                    p += 5;
                } else {
                    *w++ = *p++;
                }
                break;
            }
            default: *w++ = *p++; break;
            }
        } else {
            *w++ = *p++;
        }
    }
    *w = '\0';
    *key = k;
    *value = trim(v);
    return true;
}

/* Does this physical line end in an odd number of backslashes? */
static bool props_continues(const char *s, size_t n)
{
    size_t bs = 0;
    while (n > 0 && s[n - 1] == '\\') {
        bs++;
        n--;
    }
    return bs % 2 == 1;
}

sh_err_t sh_config_load_string(sh_config_t *c, const char *text,
                               const char *origin, char *err, size_t errlen)
{
    size_t cap = strlen(text) + 1;
    char *logical = malloc(cap);
    sh_err_t e = SH_OK;
    if (!logical) {
        snprintf(err, errlen, "out of memory");
        return SH_E_NOMEM;
    }
    const char *p = text;
    int lineno = 0;
    while (*p) {
        size_t ln = 0;
        int start_line = lineno + 1;
        bool cont;
        bool first = true;
        do {
            const char *nl = strchr(p, '\n');
            size_t n = nl ? (size_t)(nl - p) : strlen(p);
            lineno++;
            const char *s = p;
            p = nl ? nl + 1 : p + n;
            if (n > 0 && s[n - 1] == '\r')
                n--;
            if (!first) /* continuation lines lose their leading blanks */
                while (n > 0 && (*s == ' ' || *s == '\t' || *s == '\f')) {
                    s++;
                    n--;
                }
            /* a comment line never continues */
            const char *fs = s;
            while (fs < s + n && (*fs == ' ' || *fs == '\t'))
                fs++;
            bool comment = first && fs < s + n && (*fs == '#' || *fs == '!');
            cont = !comment && props_continues(s, n);
            if (cont)
                n--;
            memcpy(logical + ln, s, n);
            ln += n;
            first = false;
        } while (cont && *p);
        logical[ln] = '\0';

        char *key, *value;
        if (!props_split(logical, &key, &value))
            continue;
        char where[512];
        snprintf(where, sizeof(where), "%s line %d", origin, start_line);
        if (*key == '\0') {
            snprintf(err, errlen, "missing key at %s", where);
            e = SH_E_INVAL;
            break;
        }
        e = set_from(c, key, value, SH_CONFIG_SRC_FILE, where, err, errlen);
        if (e)
            break;
    }
    free(logical);
    return e;
}

sh_err_t sh_config_load_file(sh_config_t *c, const char *path, char *err,
                             size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    sh_err_t e;
    if (!f) {
        snprintf(err, errlen, "could not open configuration file \"%s\": %s",
                 path, strerror(errno));
        return SH_E_IO;
    }
    size_t cap = 4096, len = 0;
    buf = malloc(cap);
    if (!buf)
        goto nomem;
    for (;;) {
        if (len + 1 >= cap) {
            if (cap > (16u << 20)) {
                snprintf(err, errlen, "configuration file \"%s\" is too large",
                         path);
                e = SH_E_INVAL;
                goto fail;
            }
            char *n = realloc(buf, cap * 2);
            if (!n)
                goto nomem;
            buf = n;
            cap *= 2;
        }
        size_t r = fread(buf + len, 1, cap - len - 1, f);
        len += r;
        if (r == 0)
            break;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "could not read configuration file \"%s\"", path);
        e = SH_E_IO;
        goto fail;
    }
    buf[len] = '\0';
    if (memchr(buf, '\0', len)) {
        snprintf(err, errlen, "configuration file \"%s\" contains a NUL byte",
                 path);
        e = SH_E_INVAL;
        goto fail;
    }
    e = sh_config_load_string(c, buf, path, err, errlen);
    goto out;
nomem:
    snprintf(err, errlen, "out of memory");
    e = SH_E_NOMEM;
fail:
out:
    free(buf);
    fclose(f);
    return e;
}

/* ------------------------------------------------------------ finalize */

static bool host_is_wildcard(const char *h)
{
    return *h == '\0' || strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0;
}

/* The name other machines can use for this one: the host name if it
 * resolves, else loopback. */
static void default_advertised_host(char *out, size_t n)
{
    char hn[SH_CONFIG_HOST_MAX];
    struct addrinfo hints = {0}, *res = NULL;
    if (gethostname(hn, sizeof(hn)) == 0) {
        hn[sizeof(hn) - 1] = '\0';
        hints.ai_socktype = SOCK_STREAM;
        if (hn[0] && getaddrinfo(hn, NULL, &hints, &res) == 0) {
            freeaddrinfo(res);
            snprintf(out, n, "%s", hn);
            return;
        }
    }
    snprintf(out, n, "127.0.0.1");
}

sh_err_t sh_config_finalize(sh_config_t *c, char *err, size_t errlen)
{
    char why[256];
    int n = sh_config_parse_listeners(c->listeners, c->listener,
                                      SH_CONFIG_MAX_LISTENERS, why, sizeof(why));
    if (n < 0) {
        snprintf(err, errlen, "invalid value for \"listeners\": %s", why);
        return SH_E_INVAL;
    }
    c->listener_count = n;
    for (int i = 0; i < n; i++) {
        char proto[32];
        if (!protocol_map_lookup(c->listener_security_protocol_map,
                                 c->listener[i].name, proto, sizeof(proto))) {
            snprintf(err, errlen,
                     "listener \"%s\" in \"listeners\" has no entry in "
                     "\"listener.security.protocol.map\"",
                     c->listener[i].name);
            return SH_E_INVAL;
        }
        if (strcasecmp(proto, "PLAINTEXT") != 0) {
            snprintf(err, errlen,
                     "invalid value for \"listeners\": security protocol %s of "
                     "listener \"%s\" is not supported yet (only PLAINTEXT)",
                     proto, c->listener[i].name);
            return SH_E_INVAL;
        }
        for (int j = 0; j < i; j++)
            if (c->listener[j].port != 0 && c->listener[j].port == c->listener[i].port &&
                strcmp(c->listener[j].host, c->listener[i].host) == 0) {
                snprintf(err, errlen,
                         "invalid value for \"listeners\": %s:%d is given twice",
                         c->listener[i].host, c->listener[i].port);
                return SH_E_INVAL;
            }
    }

    /* advertised.listeners: explicit entries by name, the rest derived */
    sh_config_listener_t adv[SH_CONFIG_MAX_LISTENERS];
    int na = 0;
    if (c->advertised_listeners[0]) {
        na = sh_config_parse_listeners(c->advertised_listeners, adv,
                                       SH_CONFIG_MAX_LISTENERS, why, sizeof(why));
        if (na < 0) {
            snprintf(err, errlen, "invalid value for \"advertised.listeners\": %s",
                     why);
            return SH_E_INVAL;
        }
    }
    for (int j = 0; j < na; j++) {
        bool found = false;
        for (int i = 0; i < n; i++)
            found |= strcmp(adv[j].name, c->listener[i].name) == 0;
        if (!found) {
            snprintf(err, errlen,
                     "invalid value for \"advertised.listeners\": listener "
                     "\"%s\" is not in \"listeners\"", adv[j].name);
            return SH_E_INVAL;
        }
        if (host_is_wildcard(adv[j].host) || adv[j].port == 0) {
            snprintf(err, errlen,
                     "invalid value for \"advertised.listeners\": \"%s\" needs "
                     "a concrete host and port", adv[j].name);
            return SH_E_INVAL;
        }
    }
    for (int i = 0; i < n; i++) {
        int j;
        for (j = 0; j < na; j++)
            if (strcmp(adv[j].name, c->listener[i].name) == 0)
                break;
        if (j < na) {
            c->advertised[i] = adv[j];
        } else {
            c->advertised[i] = c->listener[i];
            if (host_is_wildcard(c->listener[i].host))
                default_advertised_host(c->advertised[i].host,
                                        sizeof(c->advertised[i].host));
        }
    }

    /* data directory, absolute so derived URLs are well-formed */
    if (strchr(c->log_dirs, ',')) {
        snprintf(err, errlen,
                 "invalid value for \"log.dirs\": only one directory is supported");
        return SH_E_INVAL;
    }
    free(c->data_dir);
    c->data_dir = NULL;
    {
        char cwd[PATH_MAX];
        const char *d = c->log_dirs;
        char *abs;
        size_t dl;
        if (d[0] == '/') {
            abs = strdup(d);
        } else {
            if (!getcwd(cwd, sizeof(cwd))) {
                snprintf(err, errlen, "could not get current directory: %s",
                         strerror(errno));
                return SH_E_IO;
            }
            while (d[0] == '.' && d[1] == '/')
                d += 2;
            if (strcmp(d, ".") == 0)
                d = "";
            size_t need = strlen(cwd) + 1 + strlen(d) + 1;
            abs = malloc(need);
            if (abs)
                snprintf(abs, need, "%s%s%s", cwd, *d ? "/" : "", d);
        }
        if (!abs) {
            snprintf(err, errlen, "out of memory");
            return SH_E_NOMEM;
        }
        dl = strlen(abs);
        while (dl > 1 && abs[dl - 1] == '/')
            abs[--dl] = '\0';
        c->data_dir = abs;
    }

    if (c->storage_url[0] == '\0' || c->metadata_url[0] == '\0') {
        size_t need = strlen(c->data_dir) + 32;
        char *s = malloc(need);
        if (!s) {
            snprintf(err, errlen, "out of memory");
            return SH_E_NOMEM;
        }
        if (c->storage_url[0] == '\0') {
            snprintf(s, need, "file://%s/objects", c->data_dir);
            free(c->storage_url);
            c->storage_url = s;
            s = NULL;
        }
        if (c->metadata_url[0] == '\0') {
            if (!s)
                s = malloc(need);
            if (!s) {
                snprintf(err, errlen, "out of memory");
                return SH_E_NOMEM;
            }
            snprintf(s, need, "sqlite://%s/meta.db", c->data_dir);
            free(c->metadata_url);
            c->metadata_url = s;
            s = NULL;
        }
        free(s);
    }

    /* Kafka's precedence: ms, then minutes, then hours. */
    if (c->source[SH_CONFIG_K_log_retention_ms] != SH_CONFIG_SRC_DEFAULT)
        c->retention_ms = c->log_retention_ms;
    else if (c->source[SH_CONFIG_K_log_retention_minutes] != SH_CONFIG_SRC_DEFAULT)
        c->retention_ms = c->log_retention_minutes < 0
                              ? -1 : (int64_t)c->log_retention_minutes * 60000;
    else if (c->source[SH_CONFIG_K_log_retention_hours] != SH_CONFIG_SRC_DEFAULT)
        c->retention_ms = c->log_retention_hours < 0
                              ? -1 : (int64_t)c->log_retention_hours * 3600000;
    else
        c->retention_ms = c->log_retention_ms;

    if ((int64_t)c->message_max_bytes > (int64_t)c->socket_request_max_bytes)
        sh_log(SH_LOG_WARN, "config",
               "\"message.max.bytes\" (%d) is larger than "
               "\"socket.request.max.bytes\" (%d); such batches can never arrive",
               c->message_max_bytes, c->socket_request_max_bytes);
    c->finalized = true;
    return SH_OK;
}

void sh_config_value_str(const sh_config_t *c, int key, char *buf, size_t n)
{
    const void *p = field_cptr(c, key);
    switch (sh_config_keys[key].type) {
    case SH_CONFIG_STR:
        snprintf(buf, n, "%s", *(char *const *)p ? *(char *const *)p : "");
        break;
    case SH_CONFIG_INT:
        snprintf(buf, n, "%" PRId32, *(const int32_t *)p);
        break;
    case SH_CONFIG_LONG:
        snprintf(buf, n, "%" PRId64, *(const int64_t *)p);
        break;
    case SH_CONFIG_BOOL:
        snprintf(buf, n, "%s", *(const bool *)p ? "true" : "false");
        break;
    }
}

/* Hide the password of "scheme://user:password@host..." in v, in place. */
static void mask_url_password(char *v)
{
    char *scheme = strstr(v, "://");
    if (!scheme)
        return;
    char *user = scheme + 3;
    char *at = strchr(user, '@');
    char *slash = strchr(user, '/');
    if (!at || (slash && slash < at))
        return;
    char *colon = memchr(user, ':', (size_t)(at - user));
    if (!colon || colon + 1 == at)
        return;
    memmove(colon + 5, at, strlen(at) + 1);
    memcpy(colon + 1, "****", 4);
}

/* Hide every "password=" query parameter of a URL in v (libpq URIs may
 * carry the password there), in place; cap is the size of v. */
static void mask_url_query_password(char *v, size_t cap)
{
    for (char *q = strchr(v, '?'); q; q = strchr(q + 1, '&')) {
        if (strncasecmp(q + 1, "password=", 9) != 0)
            continue;
        char *val = q + 10;
        size_t len = strcspn(val, "&#"), tail = strlen(val + len);
        if ((size_t)(val - v) + 4 + tail + 1 > cap)
            return;
        memmove(val + 4, val + len, tail + 1);
        memcpy(val, "****", 4);
    }
}

bool sh_config_key_sensitive(int key)
{
    const char *n = sh_config_keys[key].name;
    return strstr(n, "secret") || strstr(n, "password");
}

void sh_config_log(const sh_config_t *c)
{
    static const char *const src_name[] = {"default", "file", "override"};
    char v[1024];
    for (int i = 0; i < SH_CONFIG_NKEYS; i++) {
        sh_config_value_str(c, i, v, sizeof(v));
        if (sh_config_keys[i].type == SH_CONFIG_STR && strlen(v) + 8 < sizeof(v)) {
            mask_url_password(v);
            mask_url_query_password(v, sizeof(v));
        }
        if (v[0] && sh_config_key_sensitive(i))
            snprintf(v, sizeof(v), "****");
        sh_log(SH_LOG_INFO, "config", "%s = %s (%s)", sh_config_keys[i].name,
               v[0] ? v : "<derived>", src_name[c->source[i]]);
    }
    for (int i = 0; i < c->listener_count; i++)
        sh_log(SH_LOG_INFO, "config", "listener %s advertised as %s:%d",
               c->listener[i].name, c->advertised[i].host, c->advertised[i].port);
}
