/*
 * sh_wal_io.c - the POSIX implementation of the WAL's I/O vtable: thin
 * wrappers that retry EINTR and nothing else. Any thread; owns nothing.
 */
#include "wal/sh_wal_io.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int px_open(void *ctx, const char *path, int flags, int mode)
{
    (void)ctx;
    int fd;
    do
        fd = open(path, flags | O_CLOEXEC, (mode_t)mode);
    while (fd < 0 && errno == EINTR);
    return fd;
}

static int px_close(void *ctx, int fd)
{
    (void)ctx;
    return close(fd);
}

static ssize_t px_pread(void *ctx, int fd, void *buf, size_t len, off_t off)
{
    (void)ctx;
    ssize_t n;
    do
        n = pread(fd, buf, len, off);
    while (n < 0 && errno == EINTR);
    return n;
}

static ssize_t px_pwritev(void *ctx, int fd, const struct iovec *iov, int iovcnt, off_t off)
{
    (void)ctx;
    ssize_t n;
    do
        n = pwritev(fd, iov, iovcnt, off);
    while (n < 0 && errno == EINTR);
    return n;
}

static int px_fdatasync(void *ctx, int fd)
{
    (void)ctx;
    /* no EINTR retry loop: a failed flush is reported, never repeated */
    return fdatasync(fd);
}

static int px_fsync(void *ctx, int fd)
{
    (void)ctx;
    return fsync(fd);
}

static int px_fallocate(void *ctx, int fd, off_t len)
{
    (void)ctx;
    int rc = posix_fallocate(fd, 0, len);
    if (rc == EINVAL || rc == EOPNOTSUPP)
        return 0; /* file system without it: the zero-fill allocates anyway */
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return 0;
}

static int px_file_size(void *ctx, int fd, uint64_t *size)
{
    (void)ctx;
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -1;
    *size = (uint64_t)st.st_size;
    return 0;
}

static int px_rename(void *ctx, const char *from, const char *to)
{
    (void)ctx;
    return rename(from, to);
}

static int px_unlink(void *ctx, const char *path)
{
    (void)ctx;
    return unlink(path);
}

static int px_mkdir(void *ctx, const char *path, int mode)
{
    (void)ctx;
    return mkdir(path, (mode_t)mode);
}

static int px_list(void *ctx, const char *dir, sh_wal_io_list_fn fn, void *arg)
{
    (void)ctx;
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int rc = 0;
    struct dirent *e;
    errno = 0;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if ((rc = fn(arg, e->d_name)) != 0)
            break;
    }
    closedir(d);
    return rc;
}

static const sh_wal_io_t px_io = {
    .ctx = NULL,
    .open = px_open,
    .close = px_close,
    .pread = px_pread,
    .pwritev = px_pwritev,
    .fdatasync = px_fdatasync,
    .fsync = px_fsync,
    .fallocate = px_fallocate,
    .file_size = px_file_size,
    .rename = px_rename,
    .unlink = px_unlink,
    .mkdir = px_mkdir,
    .list = px_list,
};

const sh_wal_io_t *sh_wal_io_posix(void)
{
    return &px_io;
}
