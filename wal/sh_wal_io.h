/*
 * sh_wal_io.h - the file-system calls the WAL makes, behind a vtable so
 * tests can swap in a file system that fails, short-writes, blocks in
 * fdatasync or "crashes" (SQLite's test-VFS habit). sh_wal_io_posix() is
 * the real one; wal/sh_wal_memio.h is the in-memory fault injector.
 *
 * Every call follows POSIX: -1 (or a negative count) with errno set on
 * failure. Implementations must be thread-safe: the loop thread (replay),
 * the commit worker and the segment preparer call them concurrently, on
 * different descriptors.
 */
#ifndef SH_WAL_IO_H
#define SH_WAL_IO_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef int (*sh_wal_io_list_fn)(void *arg, const char *name);

typedef struct sh_wal_io {
    void *ctx;
    int (*open)(void *ctx, const char *path, int flags, int mode);
    int (*close)(void *ctx, int fd);
    ssize_t (*pread)(void *ctx, int fd, void *buf, size_t len, off_t off);
    /* may write fewer bytes than asked (the caller continues) */
    ssize_t (*pwritev)(void *ctx, int fd, const struct iovec *iov, int iovcnt, off_t off);
    int (*fdatasync)(void *ctx, int fd);
    /* fsync of a directory descriptor, to make creates/renames/unlinks durable */
    int (*fsync)(void *ctx, int fd);
    int (*fallocate)(void *ctx, int fd, off_t len);
    int (*file_size)(void *ctx, int fd, uint64_t *size);
    int (*rename)(void *ctx, const char *from, const char *to);
    int (*unlink)(void *ctx, const char *path);
    int (*mkdir)(void *ctx, const char *path, int mode);
    /* call fn for each entry name of dir (not "." or ".."); a nonzero
     * return from fn stops the walk and is returned */
    int (*list)(void *ctx, const char *dir, sh_wal_io_list_fn fn, void *arg);
} sh_wal_io_t;

/* The real file system. Static, never freed. */
const sh_wal_io_t *sh_wal_io_posix(void);

#endif
