/*
 * test_wal_util.h - helpers shared by the WAL unit tests: deterministic
 * payloads, a completion recorder, a replay collector and a bounded wait
 * on the manager's eventfd. Header-only, static functions.
 */
#ifndef TEST_WAL_UTIL_H
#define TEST_WAL_UTIL_H

#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wal/sh_wal.h"
#include "wal/sh_wal_memio.h"

/* The bytes of frame idx of partition k: recognisable, length-dependent. */
static inline void tw_fill(uint8_t *buf, size_t len, int k, int idx)
{
    uint32_t x = (uint32_t)(k * 1000003 + idx * 7919 + 17);
    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
}

/* Completion recorder: each append gets one slot. */
typedef struct tw_done {
    int *done;          /* times each slot completed (must end at 1) */
    sh_err_t *err;
    int *order;         /* slots in completion order */
    int norder;
    int total;
} tw_done_t;

typedef struct {
    tw_done_t *d;
    int slot;
} tw_slot_t;

static inline void tw_done_cb(void *arg, sh_err_t err)
{
    tw_slot_t *s = arg;
    s->d->done[s->slot]++;
    s->d->err[s->slot] = err;
    s->d->order[s->d->norder++] = s->slot;
    s->d->total++;
}

static inline tw_done_t *tw_done_new(int n)
{
    tw_done_t *d = calloc(1, sizeof(*d));
    d->done = calloc((size_t)n, sizeof(int));
    d->err = calloc((size_t)n, sizeof(sh_err_t));
    d->order = calloc((size_t)n, sizeof(int));
    return d;
}

static inline void tw_done_free(tw_done_t *d)
{
    free(d->done);
    free(d->err);
    free(d->order);
    free(d);
}

/* Drain until *counter reaches target; 0 if it did, -1 if nothing
 * happened for 10 s (a hang guard, never a timing assertion). */
static inline int tw_wait(sh_wal_mgr_t *m, const int *counter, int target)
{
    while (*counter < target) {
        struct pollfd p = {.fd = sh_wal_mgr_fd(m), .events = POLLIN};
        if (poll(&p, 1, 10000) <= 0)
            return -1;
        sh_wal_mgr_drain(m);
    }
    return 0;
}

/* Replay collector. */
typedef struct {
    int64_t first, last;
    uint8_t *data;
    size_t len;
} tw_frame_t;

typedef struct {
    tw_frame_t *f;
    int n, cap;
} tw_replay_t;

static inline sh_err_t tw_replay_cb(void *arg, int64_t first, int64_t last, sh_slice_t payload)
{
    tw_replay_t *r = arg;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->f = realloc(r->f, (size_t)r->cap * sizeof(*r->f));
    }
    tw_frame_t *f = &r->f[r->n++];
    f->first = first;
    f->last = last;
    f->len = payload.len;
    f->data = malloc(payload.len ? payload.len : 1);
    if (payload.len)
        memcpy(f->data, payload.ptr, payload.len);
    return SH_OK;
}

static inline void tw_replay_reset(tw_replay_t *r)
{
    for (int i = 0; i < r->n; i++)
        free(r->f[i].data);
    free(r->f);
    memset(r, 0, sizeof(*r));
}

/* Fatal hook that records instead of aborting. */
typedef struct {
    int calls;
    char what[32];
    int err;
} tw_fatal_t;

static inline void tw_fatal_cb(void *arg, const char *what, const char *path, int err)
{
    (void)path;
    tw_fatal_t *f = arg;
    f->calls++;
    strncpy(f->what, what, sizeof(f->what) - 1);
    f->err = err;
}

#endif
