/*
 * sh_wal_memio.c - the in-memory, fault-injecting file system of
 * sh_wal_memio.h. Any thread: one mutex guards everything, and the gate
 * condition variable lets fdatasync wait without holding it. The
 * sh_wal_memio_t owns every file, buffer and snapshot it creates.
 */
#include "wal/sh_wal_memio.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SECTOR 512u

typedef struct mfile {
    struct mfile *next;
    char *path;      /* current name, NULL once unlinked */
    char *dpath;     /* name that survives a power cut, NULL if none */
    uint8_t *data;   /* current bytes (the page cache) */
    size_t len, cap;
    uint8_t *ddata;  /* bytes as of the last fdatasync */
    size_t dlen;
    int refs;
} mfile_t;

typedef struct mdir {
    struct mdir *next;
    char *path;
} mdir_t;

typedef struct {
    int kind; /* 0 free, 1 file, 2 directory */
    mfile_t *f;
    char *dir;
} mfd_t;

typedef struct snapfile {
    struct snapfile *next;
    char *path;
    uint8_t *data;
    size_t len;
} snapfile_t;

struct sh_wal_memio {
    sh_wal_io_t io;
    pthread_mutex_t mu;
    pthread_cond_t gate_cv;
    mfile_t *files;
    mdir_t *dirs;
    mfd_t *fds;
    int nfds;
    uint64_t calls[SH_WAL_MEMIO_NOPS];
    uint64_t fail_in[SH_WAL_MEMIO_NOPS];
    int fail_err[SH_WAL_MEMIO_NOPS];
    size_t short_max;
    bool gate_closed;
    int blocked;
    uint64_t steps;
    uint64_t crash_step;
    uint32_t crash_seed;
    bool crash_taken;
    snapfile_t *snap;
};

/* ---- helpers (mi->mu held) ---- */

/* memcpy that accepts NULL when n is 0 */
static void cp(void *d, const void *s, size_t n)
{
    if (n)
        memcpy(d, s, n);
}

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static mfile_t *find_file(sh_wal_memio_t *mi, const char *path)
{
    for (mfile_t *f = mi->files; f; f = f->next)
        if (f->path && strcmp(f->path, path) == 0)
            return f;
    return NULL;
}

static bool is_dir(sh_wal_memio_t *mi, const char *path)
{
    for (mdir_t *d = mi->dirs; d; d = d->next)
        if (strcmp(d->path, path) == 0)
            return true;
    return false;
}

/* Is `path` directly inside `dir`? */
static bool in_dir(const char *path, const char *dir)
{
    size_t dl = strlen(dir);
    return path && strncmp(path, dir, dl) == 0 && path[dl] == '/' && !strchr(path + dl + 1, '/');
}

static bool parent_exists(sh_wal_memio_t *mi, const char *path)
{
    const char *s = strrchr(path, '/');
    if (!s)
        return false;
    if (s == path)
        return is_dir(mi, "/");
    size_t l = (size_t)(s - path);
    char *p = strndup(path, l);
    bool ok = p && is_dir(mi, p);
    free(p);
    return ok;
}

static void maybe_free_file(sh_wal_memio_t *mi, mfile_t *f)
{
    if (f->refs > 0 || f->path || f->dpath)
        return;
    for (mfile_t **pp = &mi->files; *pp; pp = &(*pp)->next) {
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    }
    free(f->data);
    free(f->ddata);
    free(f);
}

static bool grow(mfile_t *f, size_t need)
{
    if (need <= f->cap)
        return true;
    size_t nc = f->cap ? f->cap : 4096;
    while (nc < need)
        nc *= 2;
    uint8_t *nd = realloc(f->data, nc);
    if (!nd)
        return false;
    memset(nd + f->cap, 0, nc - f->cap);
    f->data = nd;
    f->cap = nc;
    return true;
}

static uint32_t rnd(uint32_t *s)
{
    /* xorshift32: deterministic per seed */
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x ? x : 0x9e3779b9u;
}

static void snap_free(snapfile_t *s)
{
    while (s) {
        snapfile_t *n = s->next;
        free(s->path);
        free(s->data);
        free(s);
        s = n;
    }
}

static void take_snapshot(sh_wal_memio_t *mi, uint32_t seed)
{
    uint32_t r = seed;
    snap_free(mi->snap);
    mi->snap = NULL;
    mi->crash_taken = true;
    for (mfile_t *f = mi->files; f; f = f->next) {
        const char *name = f->dpath;
        bool name_settled = (!f->path && !f->dpath) ||
                            (f->path && f->dpath && strcmp(f->path, f->dpath) == 0);
        if (seed && !name_settled)
            name = (rnd(&r) & 1) ? f->path : f->dpath;
        if (!name)
            continue;
        size_t len = f->dlen;
        if (seed && f->len != f->dlen)
            len = (rnd(&r) & 1) ? f->len : f->dlen;
        snapfile_t *s = calloc(1, sizeof(*s));
        if (!s)
            continue;
        s->path = strdup(name);
        s->data = malloc(len ? len : 1);
        if (!s->path || !s->data) {
            free(s->path);
            free(s->data);
            free(s);
            continue;
        }
        s->len = len;
        memset(s->data, 0, len);
        if (f->ddata && f->dlen)
            memcpy(s->data, f->ddata, len < f->dlen ? len : f->dlen);
        if (seed) {
            for (size_t off = 0; off < len; off += SECTOR) {
                size_t n = len - off < SECTOR ? len - off : SECTOR;
                if (off + n > f->len)
                    continue;
                bool differs = off + n > f->dlen || memcmp(f->data + off, f->ddata + off, n) != 0;
                if (differs && (rnd(&r) & 1))
                    memcpy(s->data + off, f->data + off, n);
            }
        }
        s->next = mi->snap;
        mi->snap = s;
    }
}

/* Count a mutating step; take the crash snapshot first if it is due. */
static void step(sh_wal_memio_t *mi)
{
    mi->steps++;
    if (mi->crash_step && mi->steps == mi->crash_step && !mi->crash_taken)
        take_snapshot(mi, mi->crash_seed);
}

/* Count a call; true if it must fail (errno set). */
static bool call(sh_wal_memio_t *mi, sh_wal_memio_op_t op)
{
    mi->calls[op]++;
    if (mi->fail_in[op] && --mi->fail_in[op] == 0) {
        errno = mi->fail_err[op];
        return true;
    }
    return false;
}

static mfd_t *get_fd(sh_wal_memio_t *mi, int fd, int kind)
{
    if (fd < 3 || fd - 3 >= mi->nfds || mi->fds[fd - 3].kind != kind)
        return NULL;
    return &mi->fds[fd - 3];
}

static int new_fd(sh_wal_memio_t *mi)
{
    for (int i = 0; i < mi->nfds; i++)
        if (mi->fds[i].kind == 0)
            return i;
    int n = mi->nfds ? mi->nfds * 2 : 16;
    mfd_t *nf = realloc(mi->fds, (size_t)n * sizeof(*nf));
    if (!nf)
        return -1;
    memset(nf + mi->nfds, 0, (size_t)(n - mi->nfds) * sizeof(*nf));
    mi->fds = nf;
    int i = mi->nfds;
    mi->nfds = n;
    return i;
}

/* ---- vtable ---- */

#define LOCK() pthread_mutex_lock(&mi->mu)
#define UNLOCK() pthread_mutex_unlock(&mi->mu)
/* evaluate v under the lock, then unlock keeping errno */
#define RET(v)                                                                                 \
    do {                                                                                       \
        __typeof__(v) r_ = (v);                                                                \
        int e_ = errno;                                                                        \
        UNLOCK();                                                                              \
        errno = e_;                                                                            \
        return r_;                                                                             \
    } while (0)

static int m_open(void *ctx, const char *path, int flags, int mode)
{
    sh_wal_memio_t *mi = ctx;
    (void)mode;
    LOCK();
    if (call(mi, SH_WAL_MEMIO_OPEN))
        RET(-1);
    int i = new_fd(mi);
    if (i < 0) {
        errno = ENOMEM;
        RET(-1);
    }
    if (flags & O_DIRECTORY) {
        if (!is_dir(mi, path)) {
            errno = ENOENT;
            RET(-1);
        }
        if (!(mi->fds[i].dir = strdup(path))) {
            errno = ENOMEM;
            RET(-1);
        }
        mi->fds[i].kind = 2;
        RET(i + 3);
    }
    mfile_t *f = find_file(mi, path);
    if (f && (flags & O_CREAT) && (flags & O_EXCL)) {
        errno = EEXIST;
        RET(-1);
    }
    if (!f) {
        if (!(flags & O_CREAT)) {
            errno = ENOENT;
            RET(-1);
        }
        if (!parent_exists(mi, path)) {
            errno = ENOENT;
            RET(-1);
        }
        step(mi);
        f = calloc(1, sizeof(*f));
        if (!f || !(f->path = strdup(path))) {
            free(f);
            errno = ENOMEM;
            RET(-1);
        }
        f->next = mi->files;
        mi->files = f;
    }
    f->refs++;
    mi->fds[i].kind = 1;
    mi->fds[i].f = f;
    RET(i + 3);
}

static int m_close(void *ctx, int fd)
{
    sh_wal_memio_t *mi = ctx;
    LOCK();
    mi->calls[SH_WAL_MEMIO_CLOSE]++;
    mfd_t *d = get_fd(mi, fd, 1);
    if (!d)
        d = get_fd(mi, fd, 2);
    if (!d) {
        errno = EBADF;
        RET(-1);
    }
    if (d->kind == 1) {
        d->f->refs--;
        maybe_free_file(mi, d->f);
    }
    free(d->dir);
    memset(d, 0, sizeof(*d));
    RET(0);
}

static ssize_t m_pread(void *ctx, int fd, void *buf, size_t len, off_t off)
{
    sh_wal_memio_t *mi = ctx;
    LOCK();
    if (call(mi, SH_WAL_MEMIO_PREAD))
        RET(-1);
    mfd_t *d = get_fd(mi, fd, 1);
    if (!d || off < 0) {
        errno = d ? EINVAL : EBADF;
        RET(-1);
    }
    mfile_t *f = d->f;
    if ((size_t)off >= f->len)
        RET(0);
    size_t n = f->len - (size_t)off < len ? f->len - (size_t)off : len;
    cp(buf, f->data + off, n);
    RET((ssize_t)n);
}

static ssize_t m_pwritev(void *ctx, int fd, const struct iovec *iov, int iovcnt, off_t off)
{
    sh_wal_memio_t *mi = ctx;
    LOCK();
    step(mi);
    if (call(mi, SH_WAL_MEMIO_PWRITEV))
        RET(-1);
    mfd_t *d = get_fd(mi, fd, 1);
    if (!d || off < 0) {
        errno = d ? EINVAL : EBADF;
        RET(-1);
    }
    mfile_t *f = d->f;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (mi->short_max && total > mi->short_max)
        total = mi->short_max;
    if (!grow(f, (size_t)off + total)) {
        errno = ENOSPC;
        RET(-1);
    }
    size_t done = 0;
    for (int i = 0; i < iovcnt && done < total; i++) {
        size_t n = iov[i].iov_len < total - done ? iov[i].iov_len : total - done;
        cp(f->data + off + done, iov[i].iov_base, n);
        done += n;
    }
    if ((size_t)off + total > f->len)
        f->len = (size_t)off + total;
    RET((ssize_t)total);
}

static int flush_file(mfile_t *f)
{
    uint8_t *nd = realloc(f->ddata, f->len ? f->len : 1);
    if (!nd) {
        errno = ENOMEM;
        return -1;
    }
    cp(nd, f->data, f->len);
    f->ddata = nd;
    f->dlen = f->len;
    return 0;
}

static int m_fdatasync(void *ctx, int fd)
{
    sh_wal_memio_t *mi = ctx;
    LOCK();
    while (mi->gate_closed) {
        mi->blocked++;
        pthread_cond_broadcast(&mi->gate_cv);
        pthread_cond_wait(&mi->gate_cv, &mi->mu);
        mi->blocked--;
    }
    step(mi);
    if (call(mi, SH_WAL_MEMIO_FDATASYNC))
        RET(-1);
    mfd_t *d = get_fd(mi, fd, 1);
    if (!d) {
        errno = EBADF;
        RET(-1);
    }
    RET(flush_file(d->f));
}

static int m_fsync(void *ctx, int fd)
{
    sh_wal_memio_t *mi = ctx;
    LOCK();
    step(mi);
    if (call(mi, SH_WAL_MEMIO_FSYNC))
        RET(-1);
    mfd_t *d = get_fd(mi, fd, 2);
    if (!d) {
        d = get_fd(mi, fd, 1);
        if (!d) {
            errno = EBADF;
            RET(-1);
        }
        RET(flush_file(d->f));
    }
    for (mfile_t *f = mi->files, *next; f; f = next) {
        next = f->next;
        if (in_dir(f->path, d->dir) || (!f->path && in_dir(f->dpath, d->dir)) ||
            (in_dir(f->dpath, d->dir))) {
            free(f->dpath);
            f->dpath = xstrdup(f->path);
            maybe_free_file(mi, f);
        }
    }
    RET(0);
}

static int m_fallocate(void *ctx, int fd, off_t len)
{
    sh_wal_memio_t *mi = ctx;
    LOCK();
    step(mi);
    if (call(mi, SH_WAL_MEMIO_FALLOCATE))
        RET(-1);
    mfd_t *d = get_fd(mi, fd, 1);
    if (!d || len < 0) {
        errno = d ? EINVAL : EBADF;
        RET(-1);
    }
    if ((size_t)len > d->f->len) {
        if (!grow(d->f, (size_t)len)) {
            errno = ENOSPC;
            RET(-1);
        }
        d->f->len = (size_t)len;
    }
    RET(0);
}

static int m_file_size(void *ctx, int fd, uint64_t *size)
{
    sh_wal_memio_t *mi = ctx;
    LOCK();
    if (call(mi, SH_WAL_MEMIO_SIZE))
        RET(-1);
    mfd_t *d = get_fd(mi, fd, 1);
    if (!d) {
        errno = EBADF;
        RET(-1);
    }
    *size = d->f->len;
    RET(0);
}

static int m_rename(void *ctx, const char *from, const char *to)
{
    sh_wal_memio_t *mi = ctx;
    LOCK();
    step(mi);
    if (call(mi, SH_WAL_MEMIO_RENAME))
        RET(-1);
    mfile_t *f = find_file(mi, from);
    if (!f || !parent_exists(mi, to)) {
        errno = ENOENT;
        RET(-1);
    }
    char *np = strdup(to);
    if (!np) {
        errno = ENOMEM;
        RET(-1);
    }
    mfile_t *old = find_file(mi, to);
    if (old && old != f) {
        free(old->path);
        old->path = NULL;
        maybe_free_file(mi, old);
    }
    free(f->path);
    f->path = np;
    RET(0);
}

static int m_unlink(void *ctx, const char *path)
{
    sh_wal_memio_t *mi = ctx;
    LOCK();
    step(mi);
    if (call(mi, SH_WAL_MEMIO_UNLINK))
        RET(-1);
    mfile_t *f = find_file(mi, path);
    if (!f) {
        errno = ENOENT;
        RET(-1);
    }
    free(f->path);
    f->path = NULL;
    maybe_free_file(mi, f);
    RET(0);
}

static int add_dir(sh_wal_memio_t *mi, const char *path)
{
    mdir_t *d = calloc(1, sizeof(*d));
    if (!d || !(d->path = strdup(path))) {
        free(d);
        errno = ENOMEM;
        return -1;
    }
    d->next = mi->dirs;
    mi->dirs = d;
    return 0;
}

static int m_mkdir(void *ctx, const char *path, int mode)
{
    sh_wal_memio_t *mi = ctx;
    (void)mode;
    LOCK();
    if (call(mi, SH_WAL_MEMIO_MKDIR))
        RET(-1);
    if (is_dir(mi, path) || find_file(mi, path)) {
        errno = EEXIST;
        RET(-1);
    }
    if (!parent_exists(mi, path)) {
        errno = ENOENT;
        RET(-1);
    }
    RET(add_dir(mi, path));
}

static int m_list(void *ctx, const char *dir, sh_wal_io_list_fn fn, void *arg)
{
    sh_wal_memio_t *mi = ctx;
    char **names = NULL;
    size_t n = 0, cap = 0;
    LOCK();
    if (call(mi, SH_WAL_MEMIO_LIST))
        RET(-1);
    if (!is_dir(mi, dir)) {
        errno = ENOENT;
        RET(-1);
    }
    for (mfile_t *f = mi->files; f; f = f->next) {
        if (!in_dir(f->path, dir))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(names, cap * sizeof(*nn));
            if (!nn)
                break;
            names = nn;
        }
        if ((names[n] = strdup(strrchr(f->path, '/') + 1)) != NULL)
            n++;
    }
    UNLOCK();
    /* call out without the lock: fn may use the file system */
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (rc == 0)
            rc = fn(arg, names[i]);
        free(names[i]);
    }
    free(names);
    return rc;
}

/* ---- public ---- */

sh_wal_memio_t *sh_wal_memio_new(void)
{
    sh_wal_memio_t *mi = calloc(1, sizeof(*mi));
    if (!mi)
        return NULL;
    pthread_mutex_init(&mi->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&mi->gate_cv, &ca);
    pthread_condattr_destroy(&ca);
    mi->io = (sh_wal_io_t){
        .ctx = mi,
        .open = m_open,
        .close = m_close,
        .pread = m_pread,
        .pwritev = m_pwritev,
        .fdatasync = m_fdatasync,
        .fsync = m_fsync,
        .fallocate = m_fallocate,
        .file_size = m_file_size,
        .rename = m_rename,
        .unlink = m_unlink,
        .mkdir = m_mkdir,
        .list = m_list,
    };
    if (add_dir(mi, "/") != 0) {
        sh_wal_memio_free(mi);
        return NULL;
    }
    return mi;
}

void sh_wal_memio_free(sh_wal_memio_t *mi)
{
    if (!mi)
        return;
    for (mfile_t *f = mi->files, *n; f; f = n) {
        n = f->next;
        free(f->path);
        free(f->dpath);
        free(f->data);
        free(f->ddata);
        free(f);
    }
    for (mdir_t *d = mi->dirs, *n; d; d = n) {
        n = d->next;
        free(d->path);
        free(d);
    }
    for (int i = 0; i < mi->nfds; i++)
        free(mi->fds[i].dir);
    free(mi->fds);
    snap_free(mi->snap);
    pthread_mutex_destroy(&mi->mu);
    pthread_cond_destroy(&mi->gate_cv);
    free(mi);
}

const sh_wal_io_t *sh_wal_memio_io(sh_wal_memio_t *mi)
{
    return &mi->io;
}

void sh_wal_memio_fail(sh_wal_memio_t *mi, sh_wal_memio_op_t op, uint64_t nth, int err)
{
    LOCK();
    mi->fail_in[op] = nth;
    mi->fail_err[op] = err;
    UNLOCK();
}

void sh_wal_memio_short_writes(sh_wal_memio_t *mi, size_t max)
{
    LOCK();
    mi->short_max = max;
    UNLOCK();
}

uint64_t sh_wal_memio_calls(sh_wal_memio_t *mi, sh_wal_memio_op_t op)
{
    LOCK();
    uint64_t n = mi->calls[op];
    UNLOCK();
    return n;
}

uint64_t sh_wal_memio_steps(sh_wal_memio_t *mi)
{
    LOCK();
    uint64_t n = mi->steps;
    UNLOCK();
    return n;
}

void sh_wal_memio_gate(sh_wal_memio_t *mi, bool closed)
{
    LOCK();
    mi->gate_closed = closed;
    pthread_cond_broadcast(&mi->gate_cv);
    UNLOCK();
}

bool sh_wal_memio_wait_blocked(sh_wal_memio_t *mi, int n, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    LOCK();
    while (mi->blocked < n)
        if (pthread_cond_timedwait(&mi->gate_cv, &mi->mu, &ts) != 0)
            break;
    bool ok = mi->blocked >= n;
    UNLOCK();
    return ok;
}

void sh_wal_memio_crash_at(sh_wal_memio_t *mi, uint64_t s, uint32_t seed)
{
    LOCK();
    mi->crash_step = s;
    mi->crash_seed = seed;
    mi->crash_taken = false;
    UNLOCK();
}

void sh_wal_memio_crash_now(sh_wal_memio_t *mi, uint32_t seed)
{
    LOCK();
    take_snapshot(mi, seed);
    UNLOCK();
}

bool sh_wal_memio_crash_taken(sh_wal_memio_t *mi)
{
    LOCK();
    bool t = mi->crash_taken;
    UNLOCK();
    return t;
}

sh_wal_memio_t *sh_wal_memio_crashed(sh_wal_memio_t *mi)
{
    sh_wal_memio_t *n = NULL;
    LOCK();
    if (!mi->crash_taken)
        goto out;
    if (!(n = sh_wal_memio_new()))
        goto out;
    for (mdir_t *d = mi->dirs; d; d = d->next) {
        if (!is_dir(n, d->path) && add_dir(n, d->path) != 0)
            goto fail;
    }
    for (snapfile_t *s = mi->snap; s; s = s->next) {
        if (find_file(n, s->path))
            continue;
        mfile_t *f = calloc(1, sizeof(*f));
        if (!f)
            goto fail;
        f->next = n->files;
        n->files = f;
        f->path = strdup(s->path);
        f->dpath = strdup(s->path);
        f->data = malloc(s->len ? s->len : 1);
        f->ddata = malloc(s->len ? s->len : 1);
        if (!f->path || !f->dpath || !f->data || !f->ddata)
            goto fail;
        cp(f->data, s->data, s->len);
        cp(f->ddata, s->data, s->len);
        f->len = f->cap = f->dlen = s->len;
    }
out:
    UNLOCK();
    return n;
fail:
    UNLOCK();
    sh_wal_memio_free(n);
    return NULL;
}

sh_err_t sh_wal_memio_put(sh_wal_memio_t *mi, const char *path, const void *data, size_t len)
{
    sh_err_t rc = SH_E_NOMEM;
    LOCK();
    if (!parent_exists(mi, path)) {
        UNLOCK();
        return SH_E_NOTFOUND;
    }
    mfile_t *f = find_file(mi, path);
    if (!f) {
        if (!(f = calloc(1, sizeof(*f))) || !(f->path = strdup(path))) {
            free(f);
            goto out;
        }
        f->next = mi->files;
        mi->files = f;
    }
    free(f->dpath);
    if (!(f->dpath = strdup(path)))
        goto out;
    f->len = 0;
    if (!grow(f, len ? len : 1))
        goto out;
    cp(f->data, data, len);
    f->len = len;
    if (flush_file(f) != 0)
        goto out;
    rc = SH_OK;
out:
    UNLOCK();
    return rc;
}

sh_err_t sh_wal_memio_get(sh_wal_memio_t *mi, const char *path, uint8_t **data, size_t *len)
{
    LOCK();
    mfile_t *f = find_file(mi, path);
    if (!f) {
        UNLOCK();
        return SH_E_NOTFOUND;
    }
    *data = malloc(f->len ? f->len : 1);
    if (!*data) {
        UNLOCK();
        return SH_E_NOMEM;
    }
    cp(*data, f->data, f->len);
    *len = f->len;
    UNLOCK();
    return SH_OK;
}

sh_err_t sh_wal_memio_mkdir_p(sh_wal_memio_t *mi, const char *path)
{
    char *p = strdup(path);
    if (!p)
        return SH_E_NOMEM;
    sh_err_t rc = SH_OK;
    LOCK();
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (!is_dir(mi, p) && add_dir(mi, p) != 0) {
                rc = SH_E_NOMEM;
                break;
            }
            *s = c;
            if (!c)
                break;
        }
    }
    UNLOCK();
    free(p);
    return rc;
}

size_t sh_wal_memio_nfiles(sh_wal_memio_t *mi, const char *dir)
{
    size_t n = 0;
    LOCK();
    for (mfile_t *f = mi->files; f; f = f->next)
        if (in_dir(f->path, dir))
            n++;
    UNLOCK();
    return n;
}
