/*
 * sh_wal_memio.h - an in-memory file system for the WAL's I/O vtable, with
 * the faults the WAL must survive: an error from the Nth call of any
 * operation, short writes, an fdatasync that blocks until the test lets it
 * go, and power loss.
 *
 * Power loss is modelled on the page cache: each file has the bytes
 * written so far and the bytes made durable by its last fdatasync; names
 * (create, rename, unlink) become durable when their directory is
 * fsync'd. sh_wal_memio_crash_at(step) snapshots what a power cut just
 * before mutating operation number `step` would leave: the durable state,
 * plus, with a nonzero seed, a random subset of the unflushed 512-byte
 * sectors and of the unflushed name changes (disks write back dirty pages
 * in any order; one sector is assumed to be written atomically). The
 * workload then runs on, and sh_wal_memio_crashed() builds a fresh file
 * system from the snapshot for the "after reboot" half of the test.
 *
 * For tests and fuzz targets only; thread-safe (one mutex).
 */
#ifndef SH_WAL_MEMIO_H
#define SH_WAL_MEMIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/sh_err.h"
#include "wal/sh_wal_io.h"

typedef struct sh_wal_memio sh_wal_memio_t;

typedef enum {
    SH_WAL_MEMIO_OPEN,
    SH_WAL_MEMIO_CLOSE,
    SH_WAL_MEMIO_PREAD,
    SH_WAL_MEMIO_PWRITEV,
    SH_WAL_MEMIO_FDATASYNC,
    SH_WAL_MEMIO_FSYNC,
    SH_WAL_MEMIO_FALLOCATE,
    SH_WAL_MEMIO_SIZE,
    SH_WAL_MEMIO_RENAME,
    SH_WAL_MEMIO_UNLINK,
    SH_WAL_MEMIO_MKDIR,
    SH_WAL_MEMIO_LIST,
    SH_WAL_MEMIO_NOPS
} sh_wal_memio_op_t;

sh_wal_memio_t *sh_wal_memio_new(void);
void sh_wal_memio_free(sh_wal_memio_t *mi);

/* The vtable to put in sh_wal_opts_t.io; valid while mi lives. */
const sh_wal_io_t *sh_wal_memio_io(sh_wal_memio_t *mi);

/* The nth call of op from now (1 = the next one) fails with errno err. */
void sh_wal_memio_fail(sh_wal_memio_t *mi, sh_wal_memio_op_t op, uint64_t nth, int err);

/* pwritev writes at most max bytes per call (0 = no limit). */
void sh_wal_memio_short_writes(sh_wal_memio_t *mi, size_t max);

/* Calls of op so far. */
uint64_t sh_wal_memio_calls(sh_wal_memio_t *mi, sh_wal_memio_op_t op);

/* Mutating operations so far (the step numbers crash_at counts). */
uint64_t sh_wal_memio_steps(sh_wal_memio_t *mi);

/* While closed, fdatasync calls block. */
void sh_wal_memio_gate(sh_wal_memio_t *mi, bool closed);

/* Wait until at least n threads are blocked at the gate; false after
 * timeout_ms (a guard against a hung test, not a timing assertion). */
bool sh_wal_memio_wait_blocked(sh_wal_memio_t *mi, int n, int timeout_ms);

/* Snapshot a power cut just before mutating step `step` (see above). */
void sh_wal_memio_crash_at(sh_wal_memio_t *mi, uint64_t step, uint32_t seed);
/* Snapshot a power cut now. */
void sh_wal_memio_crash_now(sh_wal_memio_t *mi, uint32_t seed);
/* Whether the snapshot has been taken. */
bool sh_wal_memio_crash_taken(sh_wal_memio_t *mi);
/* A new file system holding what survived the power cut, or NULL if no
 * snapshot was taken (or out of memory). */
sh_wal_memio_t *sh_wal_memio_crashed(sh_wal_memio_t *mi);

/* Create or replace path with these bytes, durable at once (directory
 * must exist, see sh_wal_memio_mkdir_p). */
sh_err_t sh_wal_memio_put(sh_wal_memio_t *mi, const char *path, const void *data, size_t len);
/* The current bytes of path in a malloc'd buffer (caller frees). */
sh_err_t sh_wal_memio_get(sh_wal_memio_t *mi, const char *path, uint8_t **data, size_t *len);
sh_err_t sh_wal_memio_mkdir_p(sh_wal_memio_t *mi, const char *path);
/* Files currently named inside dir. */
size_t sh_wal_memio_nfiles(sh_wal_memio_t *mi, const char *dir);

#endif
