/*
 * sh_meta_properties.c - read or create <log.dirs>/meta.properties
 * (cluster id, node id), Kafka's format (see sh_meta_properties.h).
 *
 * Thread: main thread at startup; blocking file I/O is fine there.
 * Ownership: nothing outlives a call; the file is written to a temporary
 * name, fsynced and renamed so a crash never leaves half a file.
 */
#include "broker/sh_meta_properties.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/sh_log.h"

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

bool sh_meta_properties_cluster_id_valid(const char *s)
{
    if (strlen(s) != 22)
        return false;
    for (int i = 0; i < 22; i++)
        if (!strchr(b64url, s[i]) || s[i] == '\0')
            return false;
    return true;
}

sh_err_t sh_meta_properties_new_cluster_id(char out[23])
{
    uint8_t b[16];
    for (;;) {
        size_t got = 0;
        while (got < sizeof(b)) {
            ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                sh_log(SH_LOG_ERROR, "broker", "could not get random bytes: %s",
                       strerror(errno));
                return SH_E_IO;
            }
            got += (size_t)n;
        }
        /* a version-4 UUID, as Java's UUID.randomUUID makes */
        b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
        b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
        int o = 0;
        for (int i = 0; i < 15; i += 3) {
            uint32_t v = (uint32_t)b[i] << 16 | (uint32_t)b[i + 1] << 8 | b[i + 2];
            out[o++] = b64url[(v >> 18) & 63];
            out[o++] = b64url[(v >> 12) & 63];
            out[o++] = b64url[(v >> 6) & 63];
            out[o++] = b64url[v & 63];
        }
        out[o++] = b64url[b[15] >> 2];
        out[o++] = b64url[(b[15] & 3) << 4];
        out[o] = '\0';
        /* Kafka never hands out ids starting with '-': they read as flags
         * on command lines. */
        if (out[0] != '-')
            return SH_OK;
    }
}

sh_err_t sh_meta_properties_mkdirs(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(buf))
        return SH_E_INVAL;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST) {
            sh_log(SH_LOG_ERROR, "broker", "could not create directory \"%s\": %s", buf,
                   strerror(errno));
            return SH_E_IO;
        }
        buf[i] = saved;
    }
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
        sh_log(SH_LOG_ERROR, "broker", "\"%s\" is not a directory", path);
        return SH_E_IO;
    }
    return SH_OK;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' ||
                     s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

/* Parse an existing file. SH_E_NOTFOUND if it does not exist. */
static sh_err_t read_props(const char *path, int32_t node_id, char cluster_id[23])
{
    FILE *f = fopen(path, "r");
    char line[512];
    bool have_id = false, have_node = false;
    long file_node = -1;
    sh_err_t err = SH_OK;

    if (!f) {
        if (errno == ENOENT)
            return SH_E_NOTFOUND;
        sh_log(SH_LOG_ERROR, "broker", "could not open \"%s\": %s", path, strerror(errno));
        return SH_E_IO;
    }
    while (fgets(line, sizeof(line), f)) {
        char *s = trim(line);
        if (*s == '#' || *s == '!' || *s == '\0')
            continue;
        char *eq = strchr(s, '=');
        if (!eq)
            continue;
        *eq = '\0';
        char *k = trim(s), *v = trim(eq + 1);
        if (strcmp(k, "cluster.id") == 0) {
            if (!sh_meta_properties_cluster_id_valid(v)) {
                sh_log(SH_LOG_ERROR, "broker", "invalid cluster.id \"%s\" in \"%s\"", v,
                       path);
                err = SH_E_CORRUPT;
                goto out;
            }
            memcpy(cluster_id, v, 23);
            have_id = true;
        } else if (strcmp(k, "node.id") == 0 || strcmp(k, "broker.id") == 0) {
            char *end;
            file_node = strtol(v, &end, 10);
            have_node = *v && *end == '\0';
        }
    }
    if (!have_id) {
        sh_log(SH_LOG_ERROR, "broker", "\"%s\" has no cluster.id", path);
        err = SH_E_CORRUPT;
    } else if (have_node && file_node != node_id) {
        sh_log(SH_LOG_ERROR, "broker",
               "data directory belongs to node %ld but node.id is %d (from \"%s\")",
               file_node, node_id, path);
        err = SH_E_INVAL;
    }
out:
    fclose(f);
    return err;
}

static sh_err_t write_props(const char *dir, const char *path, int32_t node_id,
                            const char *cluster_id)
{
    char tmp[4096], body[512], when[64];
    time_t now = time(NULL);
    struct tm tm;
    int fd = -1, dfd = -1;

    gmtime_r(&now, &tm);
    strftime(when, sizeof(when), "%a %b %d %H:%M:%S UTC %Y", &tm);
    int n = snprintf(body, sizeof(body),
                     "#\n#%s\nnode.id=%d\nversion=1\ncluster.id=%s\n", when, node_id,
                     cluster_id);
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
        return SH_E_INVAL;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        goto fail;
    if (write(fd, body, (size_t)n) != n || fsync(fd) < 0)
        goto fail;
    if (close(fd) < 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) < 0)
        goto fail;
    /* make the rename itself durable */
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return SH_OK;
fail:
    sh_log(SH_LOG_ERROR, "broker", "could not write \"%s\": %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return SH_E_IO;
}

sh_err_t sh_meta_properties_load(const char *dir, int32_t node_id, char cluster_id[23])
{
    char path[4096];
    sh_err_t err = sh_meta_properties_mkdirs(dir);
    if (err)
        return err;
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, SH_META_PROPERTIES_FILE) >=
        sizeof(path)) {
        sh_log(SH_LOG_ERROR, "broker", "data directory path is too long");
        return SH_E_INVAL;
    }
    err = read_props(path, node_id, cluster_id);
    if (err != SH_E_NOTFOUND)
        return err;
    err = sh_meta_properties_new_cluster_id(cluster_id);
    if (err)
        return err;
    err = write_props(dir, path, node_id, cluster_id);
    if (err == SH_OK)
        sh_log(SH_LOG_INFO, "broker", "new cluster id %s written to \"%s\"", cluster_id,
               path);
    return err;
}

sh_err_t sh_meta_properties_check(const char *dir, int32_t node_id, const char *cluster_id)
{
    char path[4096], file_id[23];
    sh_err_t err = sh_meta_properties_mkdirs(dir);
    if (err)
        return err;
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, SH_META_PROPERTIES_FILE) >=
        sizeof(path)) {
        sh_log(SH_LOG_ERROR, "broker", "data directory path is too long");
        return SH_E_INVAL;
    }
    err = read_props(path, node_id, file_id);
    if (err == SH_E_NOTFOUND) {
        err = write_props(dir, path, node_id, cluster_id);
        if (err == SH_OK)
            sh_log(SH_LOG_INFO, "broker", "cluster id %s written to \"%s\"", cluster_id, path);
        return err;
    }
    if (err)
        return err;
    if (strcmp(file_id, cluster_id) != 0) {
        /* Like Kafka's INCONSISTENT_CLUSTER_ID: the directory was formatted
         * for another cluster, or the metadata store is not the one this
         * directory was used with. Starting anyway would mix two clusters. */
        sh_log(SH_LOG_ERROR, "broker",
               "cluster id mismatch: \"%s\" says %s but the metadata store says %s; "
               "point streamhouse.metadata.url at this directory's store, or use an "
               "empty log.dirs for this cluster", path, file_id, cluster_id);
        return SH_E_INVAL;
    }
    return SH_OK;
}
