/*
 * sh_objstore_local.c - the object store as a local directory (file:// URLs).
 *
 * Used for the embedded single-node setup, tests and development. Key
 * "ab/seg/x" is the file <root>/ab/seg/x; directories appear as needed and
 * are never removed (segment keys spread over a fixed set of prefixes, so
 * the number of directories stays bounded).
 *
 * Durability, the property the rest of the system relies on: a put writes
 * a temporary file ".sh-tmp.<pid>.<seq>" in the key's directory, fsyncs it,
 * renames it over the key and fsyncs the directory; directories it had to
 * create are made durable by fsyncing their parents. So a reader sees the
 * old object or the whole new one, and an acknowledged put survives a crash.
 * A crash mid-put can leave a temporary file behind; list never shows them
 * (names starting ".sh-" are reserved, see sh_objstore_key_check).
 *
 * Threads: the blocking syscalls run on a 2-thread sh_workq pool; results
 * come back through the pool's eventfd and callbacks run on the thread that
 * calls sh_objstore_drive() (the loop). Operations are independent: two
 * puts of one key race and the later rename wins, as on S3.
 *
 * Ownership: each operation is one heap sh_local_op_t holding copies of its
 * strings and iovec array, freed after its callback returns. Get blocks are
 * created here with one reference, dropped after the callback.
 *
 * Limitation (not in S3): a key and a longer key using it as a directory
 * ("a" and "a/b") cannot coexist; the second put fails with SH_E_INVAL.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/sh_log.h"
#include "common/sh_workq.h"
#include "storage/sh_objstore_impl.h"

#define SH_LOCAL_THREADS 2
#define SH_LOCAL_PATH_MAX (SH_OBJSTORE_KEY_MAX + 64)
#define SH_LOCAL_TMP_PREFIX ".sh-tmp."

typedef struct sh_objstore_local {
    sh_objstore_t base;
    sh_workq_t *wq;
    int rootfd;
    char *root;              /* absolute directory, for log lines */
    atomic_uint tmp_seq;     /* makes temporary names unique within the process */
} sh_objstore_local_t;

typedef struct sh_local_op {
    sh_workq_job_t job;      /* first: the job pointer is the op pointer */
    sh_objstore_local_t *st;
    sh_objstore_cb cb;
    void *arg;
    sh_objstore_result_t res;
    char *key;               /* key, or list prefix */
    /* put */
    struct iovec *iov;
    int iovcnt;
    /* get */
    uint64_t off, len;
    /* delete many */
    char **keys;
    sh_err_t *errs;
    size_t nkeys;
    /* list */
    char *token;
    size_t max_keys;
    sh_objstore_entry_t *entries;
    size_t nentries, entries_cap;
    char *next_token;
} sh_local_op_t;

/* ------------------------------------------------------------- helpers */

/* Errors that come from momentary resource shortage rather than a broken
 * disk or a bad request: worth retrying later. */
static bool sh_local_errno_retriable(int e)
{
    return e == ENOSPC || e == EDQUOT || e == EMFILE || e == ENFILE || e == ENOMEM ||
           e == EAGAIN || e == EINTR;
}

static void sh_local_fail_errno(sh_local_op_t *op, int e, const char *what, const char *key)
{
    sh_log(SH_LOG_ERROR, "objstore", "could not %s \"%s/%s\": %s", what, op->st->root, key,
           strerror(e));
    op->res.err = SH_E_IO;
    op->res.retriable = sh_local_errno_retriable(e);
}

/* The local layout cannot hold "a" and "a/b" at once (see file comment). */
static void sh_local_fail_conflict(sh_local_op_t *op, const char *key)
{
    sh_log(SH_LOG_ERROR, "objstore",
           "could not store \"%s/%s\": key conflicts with a directory or file of another key",
           op->st->root, key);
    op->res.err = SH_E_INVAL;
    op->res.retriable = false;
}

/* fsync the directory holding `key` (the root if the key has no '/'). */
static int sh_local_fsync_parent(sh_objstore_local_t *st, const char *key)
{
    char dir[SH_LOCAL_PATH_MAX];
    const char *slash = strrchr(key, '/');
    if (slash)
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - key), key);
    else
        snprintf(dir, sizeof(dir), ".");
    int fd = openat(st->rootfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int r = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return r;
}

/* Create the directories of key[0..dlen) under the root and make each
 * durable through its parent, so an acknowledged object is reachable after
 * a crash. Existing ones are fsynced too: another thread may have created
 * one a moment ago and not have fsynced its parent yet. Only runs when the
 * key's directory was missing, so the cost is paid once per directory.
 * Returns 0 or -1 with errno set. */
static int sh_local_mkdirs(sh_objstore_local_t *st, const char *key, size_t dlen)
{
    char path[SH_LOCAL_PATH_MAX];
    for (size_t i = 1; i <= dlen; i++) {
        if (i < dlen && key[i] != '/')
            continue;
        snprintf(path, sizeof(path), "%.*s", (int)i, key);
        if (mkdirat(st->rootfd, path, 0755) != 0 && errno != EEXIST)
            return -1;
        if (sh_local_fsync_parent(st, path) != 0)
            return -1;
    }
    return 0;
}

/* pwritev everything, coping with short writes and IOV_MAX. */
static int sh_local_write_all(int fd, struct iovec *iov, int iovcnt)
{
    off_t pos = 0;
    int i = 0;
    while (i < iovcnt) {
        if (iov[i].iov_len == 0) {
            i++;
            continue;
        }
        int n = iovcnt - i > IOV_MAX ? IOV_MAX : iovcnt - i;
        ssize_t w = pwritev(fd, iov + i, n, pos);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (w == 0) {
            errno = EIO;
            return -1;
        }
        pos += w;
        size_t left = (size_t)w;
        while (left > 0 && i < iovcnt) {
            if (left >= iov[i].iov_len) {
                left -= iov[i].iov_len;
                i++;
            } else {
                iov[i].iov_base = (uint8_t *)iov[i].iov_base + left;
                iov[i].iov_len -= left;
                left = 0;
            }
        }
    }
    return 0;
}

static int64_t sh_local_mtime_ms(const struct stat *sb)
{
    return (int64_t)sb->st_mtim.tv_sec * 1000 + sb->st_mtim.tv_nsec / 1000000;
}

/* ----------------------------------------------------------- operations */

static void sh_local_put_work(sh_workq_job_t *j)
{
    sh_local_op_t *op = (sh_local_op_t *)j;
    sh_objstore_local_t *st = op->st;
    const char *key = op->key;
    const char *slash = strrchr(key, '/');
    size_t dlen = slash ? (size_t)(slash - key) : 0;
    char tmp[SH_LOCAL_PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%.*s%s" SH_LOCAL_TMP_PREFIX "%ld.%u", (int)dlen, key,
             dlen ? "/" : "", (long)getpid(), atomic_fetch_add(&st->tmp_seq, 1));

    int fd = openat(st->rootfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ENOENT && dlen > 0) {
        if (sh_local_mkdirs(st, key, dlen) != 0) {
            if (errno == ENOTDIR || errno == EEXIST)
                sh_local_fail_conflict(op, key);
            else
                sh_local_fail_errno(op, errno, "create directories for", key);
            return;
        }
        fd = openat(st->rootfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    }
    if (fd < 0) {
        if (errno == ENOTDIR)
            sh_local_fail_conflict(op, key);
        else
            sh_local_fail_errno(op, errno, "create temporary file for", key);
        return;
    }
    if (sh_local_write_all(fd, op->iov, op->iovcnt) != 0) {
        sh_local_fail_errno(op, errno, "write temporary file for", key);
        goto fail;
    }
    /* a failed fsync leaves the file's state unknown; this temporary file
     * is discarded and a retry writes a fresh one */
    if (fsync(fd) != 0) {
        sh_local_fail_errno(op, errno, "fsync temporary file for", key);
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        sh_local_fail_errno(op, errno, "close temporary file for", key);
        goto fail;
    }
    fd = -1;
    if (renameat(st->rootfd, tmp, st->rootfd, key) != 0) {
        if (errno == EISDIR || errno == ENOTEMPTY || errno == EEXIST || errno == ENOTDIR)
            sh_local_fail_conflict(op, key);
        else
            sh_local_fail_errno(op, errno, "rename temporary file to", key);
        goto fail;
    }
    if (sh_local_fsync_parent(st, key) != 0) {
        /* the object may or may not survive a crash: report failure so the
         * caller keeps its data and retries (puts are idempotent) */
        sh_local_fail_errno(op, errno, "fsync directory of", key);
        return;
    }
    op->res.err = SH_OK;
    return;
fail:
    if (fd >= 0)
        close(fd);
    unlinkat(st->rootfd, tmp, 0);
}

static void sh_local_get_work(sh_workq_job_t *j)
{
    sh_local_op_t *op = (sh_local_op_t *)j;
    int fd = openat(op->st->rootfd, op->key, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            op->res.err = SH_E_NOTFOUND;
        else
            sh_local_fail_errno(op, errno, "open", op->key);
        return;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        sh_local_fail_errno(op, errno, "stat", op->key);
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        op->res.err = SH_E_NOTFOUND; /* a directory is a key prefix, not an object */
        goto out;
    }
    uint64_t size = (uint64_t)sb.st_size;
    op->res.object_size = size;
    op->res.mtime_ms = sh_local_mtime_ms(&sb);
    op->res.offset = op->off;
    bool whole_empty = size == 0 && op->off == 0;
    if (op->off >= size && !whole_empty) {
        op->res.err = SH_E_INVAL; /* range not satisfiable */
        goto out;
    }
    uint64_t n = size - op->off;
    if (op->len < n)
        n = op->len;
    if (n > SIZE_MAX || !(op->res.block = sh_block_new((size_t)n))) {
        op->res.err = SH_E_NOMEM;
        op->res.retriable = true;
        goto out;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, op->res.block->data + got, (size_t)n - got,
                          (off_t)(op->off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            /* objects are immutable once renamed in, so EOF here means the
             * file was tampered with or the disk is failing */
            sh_local_fail_errno(op, r < 0 ? errno : EIO, "read", op->key);
            sh_block_unref(op->res.block);
            op->res.block = NULL;
            goto out;
        }
        got += (size_t)r;
    }
    op->res.err = SH_OK;
out:
    close(fd);
}

static void sh_local_head_work(sh_workq_job_t *j)
{
    sh_local_op_t *op = (sh_local_op_t *)j;
    struct stat sb;
    if (fstatat(op->st->rootfd, op->key, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            op->res.err = SH_E_NOTFOUND;
        else
            sh_local_fail_errno(op, errno, "stat", op->key);
        return;
    }
    if (!S_ISREG(sb.st_mode)) {
        op->res.err = SH_E_NOTFOUND;
        return;
    }
    op->res.object_size = (uint64_t)sb.st_size;
    op->res.mtime_ms = sh_local_mtime_ms(&sb);
    op->res.err = SH_OK;
}

/* 1 if unlinked, 0 if there was nothing to delete, -1 on error (logged). */
static int sh_local_unlink(sh_local_op_t *op, const char *key, sh_err_t *err)
{
    if (unlinkat(op->st->rootfd, key, 0) == 0) {
        *err = SH_OK;
        return 1;
    }
    if (errno == ENOENT || errno == ENOTDIR || errno == EISDIR) {
        *err = SH_OK;
        return 0;
    }
    sh_local_fail_errno(op, errno, "delete", key);
    *err = op->res.err;
    return -1;
}

static void sh_local_delete_work(sh_workq_job_t *j)
{
    sh_local_op_t *op = (sh_local_op_t *)j;
    sh_err_t err;
    if (sh_local_unlink(op, op->key, &err) == 1 && sh_local_fsync_parent(op->st, op->key) != 0)
        sh_local_fail_errno(op, errno, "fsync directory of", op->key);
    else
        op->res.err = err;
}

static size_t sh_local_dirlen(const char *key)
{
    const char *slash = strrchr(key, '/');
    return slash ? (size_t)(slash - key) : 0;
}

static void sh_local_delete_many_work(sh_workq_job_t *j)
{
    sh_local_op_t *op = (sh_local_op_t *)j;
    sh_err_t first = SH_OK;
    bool retriable = false;
    bool *unlinked = calloc(op->nkeys ? op->nkeys : 1, sizeof(bool));
    if (!unlinked) {
        op->res.err = SH_E_NOMEM;
        op->res.retriable = true;
        for (size_t i = 0; i < op->nkeys; i++)
            op->errs[i] = SH_E_NOMEM;
        return;
    }
    for (size_t i = 0; i < op->nkeys; i++) {
        op->res.retriable = false;
        unlinked[i] = sh_local_unlink(op, op->keys[i], &op->errs[i]) == 1;
        if (op->errs[i] != SH_OK && first == SH_OK) {
            first = op->errs[i];
            retriable = op->res.retriable;
        }
    }
    /* one directory fsync per distinct parent: GC deletes many keys that
     * share a few hash-prefix directories */
    for (size_t i = 0; i < op->nkeys; i++) {
        if (!unlinked[i])
            continue;
        size_t dl = sh_local_dirlen(op->keys[i]);
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++)
            seen = unlinked[k] && sh_local_dirlen(op->keys[k]) == dl &&
                   memcmp(op->keys[k], op->keys[i], dl) == 0;
        if (seen)
            continue;
        if (sh_local_fsync_parent(op->st, op->keys[i]) != 0) {
            sh_local_fail_errno(op, errno, "fsync directory of", op->keys[i]);
            /* every key in that directory is now of unknown durability */
            for (size_t k = i; k < op->nkeys; k++)
                if (unlinked[k] && sh_local_dirlen(op->keys[k]) == dl &&
                    memcmp(op->keys[k], op->keys[i], dl) == 0)
                    op->errs[k] = SH_E_IO;
            if (first == SH_OK) {
                first = SH_E_IO;
                retriable = false;
            }
        }
    }
    free(unlinked);
    op->res.err = first;
    op->res.retriable = retriable;
}

/* ---------------------------------------------------------------- list */

typedef struct sh_local_dent {
    char *name;
    bool dir;
    uint64_t size;
    int64_t mtime_ms;
} sh_local_dent_t;

/* Order directory entries as their keys sort: a directory "a" stands for
 * keys "a/...", so it compares as "a/" - after "a-b", before "a0". */
static int sh_local_dent_cmp(const void *pa, const void *pb)
{
    const sh_local_dent_t *a = pa, *b = pb;
    size_t la = strlen(a->name), lb = strlen(b->name);
    for (size_t i = 0;; i++) {
        int ca = i < la ? (unsigned char)a->name[i] : (i == la && a->dir ? '/' : -1);
        int cb = i < lb ? (unsigned char)b->name[i] : (i == lb && b->dir ? '/' : -1);
        if (ca != cb)
            return ca < cb ? -1 : 1;
        if (ca == -1)
            return 0;
    }
}

static bool sh_local_starts_with(const char *s, size_t slen, const char *p, size_t plen)
{
    return slen >= plen && memcmp(s, p, plen) == 0;
}

static int sh_local_list_add(sh_local_op_t *op, const char *key, const sh_local_dent_t *d)
{
    if (op->nentries == op->entries_cap) {
        size_t cap = op->entries_cap ? op->entries_cap * 2 : 64;
        sh_objstore_entry_t *e = realloc(op->entries, cap * sizeof(*e));
        if (!e)
            return -1;
        op->entries = e;
        op->entries_cap = cap;
    }
    char *k = strdup(key);
    if (!k)
        return -1;
    op->entries[op->nentries++] = (sh_objstore_entry_t){k, d->size, d->mtime_ms};
    return 0;
}

/* Walk the directory `fd` (consumed) whose keys start with path[0..plen).
 * Returns 1 when the page is full, 0 to continue, -1 on error (op->res set). */
static int sh_local_list_dir(sh_local_op_t *op, int fd, char *path, size_t plen)
{
    sh_local_dent_t *ents = NULL;
    size_t n = 0, cap = 0;
    int ret = -1;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        sh_local_fail_errno(op, errno, "open directory", plen ? path : ".");
        return -1;
    }
    for (;;) {
        errno = 0; /* readdir reports errors only through errno */
        struct dirent *de = readdir(d);
        if (!de)
            break;
        const char *nm = de->d_name;
        if (strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0 || strncmp(nm, ".sh-", 4) == 0)
            continue;
        struct stat sb;
        if (fstatat(dirfd(d), nm, &sb, AT_SYMLINK_NOFOLLOW) != 0)
            continue; /* deleted since readdir */
        if (!S_ISDIR(sb.st_mode) && !S_ISREG(sb.st_mode))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            sh_local_dent_t *e = realloc(ents, cap * sizeof(*e));
            if (!e)
                goto nomem;
            ents = e;
        }
        ents[n].name = strdup(nm);
        if (!ents[n].name)
            goto nomem;
        ents[n].dir = S_ISDIR(sb.st_mode);
        ents[n].size = (uint64_t)sb.st_size;
        ents[n].mtime_ms = sh_local_mtime_ms(&sb);
        n++;
    }
    if (errno != 0) {
        sh_local_fail_errno(op, errno, "read directory", plen ? path : ".");
        goto out;
    }
    if (n > 1) /* an empty directory leaves ents NULL, which qsort may not get */
        qsort(ents, n, sizeof(*ents), sh_local_dent_cmp);

    const char *prefix = op->key;
    size_t pfx_len = strlen(prefix);
    const char *token = op->token;
    size_t tok_len = token ? strlen(token) : 0;
    for (size_t i = 0; i < n; i++) {
        size_t nlen = strlen(ents[i].name);
        size_t klen = plen + nlen + (ents[i].dir ? 1 : 0);
        if (klen > SH_OBJSTORE_KEY_MAX)
            continue; /* not addressable as a key */
        memcpy(path + plen, ents[i].name, nlen);
        if (ents[i].dir)
            path[plen + nlen] = '/';
        path[klen] = '\0';
        size_t common = klen < pfx_len ? klen : pfx_len;
        if (memcmp(path, prefix, common) != 0)
            continue; /* nothing below can match the prefix */
        if (ents[i].dir) {
            /* every key under a directory that sorts before the token, and
             * which the token is not inside, was on an earlier page */
            if (token && !sh_local_starts_with(token, tok_len, path, klen) &&
                strcmp(path, token) < 0)
                continue;
            int sub = openat(dirfd(d), ents[i].name, O_RDONLY | O_DIRECTORY | O_CLOEXEC |
                                                         O_NOFOLLOW);
            if (sub < 0)
                continue; /* vanished; nothing to list */
            int r = sh_local_list_dir(op, sub, path, klen);
            if (r != 0) {
                ret = r;
                goto out;
            }
        } else {
            if (klen < pfx_len)
                continue;
            if (token && strcmp(path, token) <= 0)
                continue;
            if (sh_local_list_add(op, path, &ents[i]) != 0)
                goto nomem;
            if (op->nentries > op->max_keys) {
                ret = 1;
                goto out;
            }
        }
    }
    ret = 0;
    goto out;
nomem:
    op->res.err = SH_E_NOMEM;
    op->res.retriable = true;
    ret = -1;
out:
    for (size_t i = 0; i < n; i++)
        free(ents[i].name);
    free(ents);
    closedir(d);
    path[plen] = '\0';
    return ret;
}

static void sh_local_list_work(sh_workq_job_t *j)
{
    sh_local_op_t *op = (sh_local_op_t *)j;
    char path[SH_OBJSTORE_KEY_MAX + 2];
    path[0] = '\0';
    int fd = openat(op->st->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        sh_local_fail_errno(op, errno, "open directory", ".");
        return;
    }
    if (sh_local_list_dir(op, fd, path, 0) < 0)
        return;
    if (op->nentries > op->max_keys) {
        /* one extra key was collected to learn that another page exists */
        free((char *)op->entries[op->max_keys].key);
        op->nentries = op->max_keys;
        op->next_token = strdup(op->entries[op->max_keys - 1].key);
        if (!op->next_token) {
            op->res.err = SH_E_NOMEM;
            op->res.retriable = true;
            return;
        }
    }
    op->res.err = SH_OK;
}

/* ------------------------------------------------------ op plumbing */

static void sh_local_op_free(sh_local_op_t *op)
{
    if (!op)
        return;
    free(op->key);
    free(op->iov);
    if (op->keys)
        for (size_t i = 0; i < op->nkeys; i++)
            free(op->keys[i]);
    free(op->keys);
    free(op->errs);
    free(op->token);
    for (size_t i = 0; i < op->nentries; i++)
        free((char *)op->entries[i].key);
    free(op->entries);
    free(op->next_token);
    sh_block_unref(op->res.block);
    free(op);
}

static void sh_local_done(sh_workq_job_t *j)
{
    sh_local_op_t *op = (sh_local_op_t *)j;
    sh_objstore_result_t *res = &op->res;
    res->key = op->key;
    if (op->keys) {
        res->keys = (const char *const *)op->keys;
        res->key_errs = op->errs;
        res->nkeys = op->nkeys;
    }
    if (res->err == SH_OK) {
        res->entries = op->entries;
        res->nentries = op->nentries;
        res->next_token = op->next_token;
    } else if (res->block) {
        sh_block_unref(res->block);
        res->block = NULL;
    }
    sh_objstore_complete(&op->st->base, op->cb, op->arg, res);
    sh_local_op_free(op);
}

static sh_local_op_t *sh_local_op_new(sh_objstore_t *s, sh_objstore_op_t kind, const char *key,
                                      sh_workq_fn work, sh_objstore_cb cb, void *arg)
{
    sh_local_op_t *op = calloc(1, sizeof(*op));
    if (!op)
        return NULL;
    op->st = (sh_objstore_local_t *)s;
    op->job.work = work;
    op->job.done = sh_local_done;
    op->cb = cb;
    op->arg = arg;
    op->res.op = kind;
    op->res.err = SH_E_IO; /* every work function overwrites this */
    op->key = strdup(key ? key : "");
    if (!op->key) {
        free(op);
        return NULL;
    }
    return op;
}

static sh_err_t sh_local_submit(sh_local_op_t *op)
{
    sh_err_t err = sh_workq_submit(op->st->wq, &op->job);
    if (err != SH_OK)
        sh_local_op_free(op);
    return err;
}

static sh_err_t sh_local_put_start(sh_objstore_t *s, const char *key, const struct iovec *iov,
                                   int iovcnt, sh_objstore_cb cb, void *arg)
{
    sh_local_op_t *op = sh_local_op_new(s, SH_OBJSTORE_PUT, key, sh_local_put_work, cb, arg);
    if (!op)
        return SH_E_NOMEM;
    op->iov = malloc(((size_t)iovcnt + 1) * sizeof(*iov));
    if (!op->iov) {
        sh_local_op_free(op);
        return SH_E_NOMEM;
    }
    if (iovcnt > 0)
        memcpy(op->iov, iov, (size_t)iovcnt * sizeof(*iov));
    op->iovcnt = iovcnt;
    return sh_local_submit(op);
}

static sh_err_t sh_local_get_start(sh_objstore_t *s, const char *key, uint64_t offset,
                                   uint64_t length, sh_objstore_cb cb, void *arg)
{
    sh_local_op_t *op = sh_local_op_new(s, SH_OBJSTORE_GET, key, sh_local_get_work, cb, arg);
    if (!op)
        return SH_E_NOMEM;
    op->off = offset;
    op->len = length;
    return sh_local_submit(op);
}

static sh_err_t sh_local_head_start(sh_objstore_t *s, const char *key, sh_objstore_cb cb,
                                    void *arg)
{
    sh_local_op_t *op = sh_local_op_new(s, SH_OBJSTORE_HEAD, key, sh_local_head_work, cb, arg);
    return op ? sh_local_submit(op) : SH_E_NOMEM;
}

static sh_err_t sh_local_delete_start(sh_objstore_t *s, const char *key, sh_objstore_cb cb,
                                      void *arg)
{
    sh_local_op_t *op =
        sh_local_op_new(s, SH_OBJSTORE_DELETE, key, sh_local_delete_work, cb, arg);
    return op ? sh_local_submit(op) : SH_E_NOMEM;
}

static sh_err_t sh_local_delete_many_start(sh_objstore_t *s, const char *const *keys,
                                           size_t nkeys, sh_objstore_cb cb, void *arg)
{
    sh_local_op_t *op =
        sh_local_op_new(s, SH_OBJSTORE_DELETE_MANY, NULL, sh_local_delete_many_work, cb, arg);
    if (!op)
        return SH_E_NOMEM;
    op->keys = calloc(nkeys ? nkeys : 1, sizeof(char *));
    op->errs = calloc(nkeys ? nkeys : 1, sizeof(sh_err_t));
    if (!op->keys || !op->errs)
        goto fail;
    for (size_t i = 0; i < nkeys; i++) {
        op->nkeys = i + 1; /* so a partial copy is freed */
        if (!(op->keys[i] = strdup(keys[i])))
            goto fail;
    }
    op->nkeys = nkeys;
    return sh_local_submit(op);
fail:
    sh_local_op_free(op);
    return SH_E_NOMEM;
}

static sh_err_t sh_local_list_start(sh_objstore_t *s, const char *prefix, const char *token,
                                    size_t max_keys, sh_objstore_cb cb, void *arg)
{
    sh_local_op_t *op = sh_local_op_new(s, SH_OBJSTORE_LIST, prefix, sh_local_list_work, cb, arg);
    if (!op)
        return SH_E_NOMEM;
    op->max_keys = max_keys;
    if (token && !(op->token = strdup(token))) {
        sh_local_op_free(op);
        return SH_E_NOMEM;
    }
    return sh_local_submit(op);
}

static int sh_local_fd(const sh_objstore_t *s)
{
    return sh_workq_fd(((const sh_objstore_local_t *)s)->wq);
}

static void sh_local_drive(sh_objstore_t *s)
{
    sh_workq_drain(((sh_objstore_local_t *)s)->wq);
}

static int64_t sh_local_next_deadline_ms(const sh_objstore_t *s)
{
    (void)s;
    return -1; /* no timers: every local operation ends by itself */
}

static void sh_local_free(sh_objstore_t *s)
{
    sh_objstore_local_t *st = (sh_objstore_local_t *)s;
    /* completes queued operations and runs their callbacks */
    sh_workq_free(st->wq);
    if (st->rootfd >= 0)
        close(st->rootfd);
    free(st->root);
    sh_objstore_base_fini(&st->base);
    free(st);
}

static const sh_objstore_ops_t sh_local_ops = {
    .name = "local",
    .put_start = sh_local_put_start,
    .get_start = sh_local_get_start,
    .head_start = sh_local_head_start,
    .delete_start = sh_local_delete_start,
    .delete_many_start = sh_local_delete_many_start,
    .list_start = sh_local_list_start,
    .fd = sh_local_fd,
    .drive = sh_local_drive,
    .next_deadline_ms = sh_local_next_deadline_ms,
    .free = sh_local_free,
};

/* mkdir -p for the root itself; ordinary blocking code, run once at
 * startup. A directory it creates is fsynced into its parent: objects
 * acknowledged later must not vanish with their root after a crash. */
static int sh_local_mkdir_p(const char *dir)
{
    char path[PATH_MAX];
    size_t len = strlen(dir);
    if (len >= sizeof(path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(path, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (i < len && path[i] != '/')
            continue;
        char c = path[i];
        path[i] = '\0';
        if (mkdir(path, 0755) == 0) {
            char *slash = strrchr(path, '/');
            const char *parent = slash == path ? "/" : slash ? path : ".";
            if (slash && slash != path)
                *slash = '\0';
            int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            int r = fd >= 0 ? fsync(fd) : -1;
            int e = errno;
            if (fd >= 0)
                close(fd);
            if (slash && slash != path)
                *slash = '/';
            if (r != 0) {
                errno = e;
                path[i] = c;
                return -1;
            }
        } else if (errno != EEXIST) {
            path[i] = c;
            return -1;
        }
        path[i] = c;
    }
    return 0;
}

sh_err_t sh_objstore_local_open(const char *url, const char *dir, sh_objstore_t **out)
{
    sh_err_t err = SH_E_NOMEM;
    sh_objstore_local_t *st = calloc(1, sizeof(*st));
    if (!st)
        return SH_E_NOMEM;
    st->rootfd = -1;
    atomic_init(&st->tmp_seq, 0);
    if (sh_objstore_base_init(&st->base, &sh_local_ops, url) != SH_OK)
        goto fail;
    if (sh_local_mkdir_p(dir) != 0) {
        sh_log(SH_LOG_ERROR, "objstore", "could not create directory \"%s\": %s", dir,
               strerror(errno));
        err = SH_E_IO;
        goto fail;
    }
    st->rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (st->rootfd < 0) {
        sh_log(SH_LOG_ERROR, "objstore", "could not open directory \"%s\": %s", dir,
               strerror(errno));
        err = SH_E_IO;
        goto fail;
    }
    st->root = realpath(dir, NULL);
    if (!st->root)
        goto fail;
    st->wq = sh_workq_new(SH_LOCAL_THREADS, "objstore");
    if (!st->wq)
        goto fail;
    sh_log(SH_LOG_DEBUG, "objstore", "opened local object store \"%s\"", st->root);
    *out = &st->base;
    return SH_OK;
fail:
    if (st->rootfd >= 0)
        close(st->rootfd);
    free(st->root);
    sh_objstore_base_fini(&st->base);
    free(st);
    return err;
}
