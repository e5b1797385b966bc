/*
 * test_storage_util.h - helpers shared by the storage unit tests: temporary
 * directories, and blocking wrappers over the asynchronous object store
 * (start an operation, drive the store until it completes, copy out what
 * the callback saw). Header-only; include after cmocka.h.
 */
#ifndef TEST_STORAGE_UTIL_H
#define TEST_STORAGE_UTIL_H

#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/sh_objstore.h"

#define TSU_WAIT_MS 20000 /* safety bound so a hung store fails the test */

static int tsu_rm_one(const char *p, const struct stat *sb, int type, struct FTW *f)
{
    (void)sb;
    (void)type;
    (void)f;
    return remove(p);
}

/* rm -rf; tests only ever pass directories they created with mkdtemp. */
static inline void tsu_rmrf(const char *dir)
{
    nftw(dir, tsu_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh directory under $TMPDIR (or /tmp); caller frees and removes it. */
static inline char *tsu_tempdir(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof(tmpl), "%s/sh-storage-test-XXXXXX", base && *base ? base : "/tmp");
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

/* What one callback saw, copied so it outlives the callback. */
typedef struct tsu_res {
    int calls;
    sh_objstore_op_t op;
    sh_err_t err;
    bool retriable;
    sh_block_t *block;          /* a reference of our own, or NULL */
    uint64_t offset;
    uint64_t object_size;
    int64_t mtime_ms;
    size_t nkeys;
    sh_err_t key_errs[64];
    size_t nentries;
    char *keys[SH_OBJSTORE_LIST_MAX];
    uint64_t sizes[SH_OBJSTORE_LIST_MAX];
    char *next_token;
    pthread_t thread;
} tsu_res_t;

static inline void tsu_res_fini(tsu_res_t *r)
{
    sh_block_unref(r->block);
    for (size_t i = 0; i < r->nentries; i++)
        free(r->keys[i]);
    free(r->next_token);
    memset(r, 0, sizeof(*r));
}

static inline void tsu_cb(void *arg, const sh_objstore_result_t *res)
{
    tsu_res_t *r = arg;
    r->calls++;
    r->thread = pthread_self();
    r->op = res->op;
    r->err = res->err;
    r->retriable = res->retriable;
    r->offset = res->offset;
    r->object_size = res->object_size;
    r->mtime_ms = res->mtime_ms;
    if (res->block)
        r->block = sh_block_ref(res->block);
    r->nkeys = res->nkeys;
    for (size_t i = 0; i < res->nkeys && i < 64; i++)
        r->key_errs[i] = res->key_errs[i];
    r->nentries = res->nentries;
    for (size_t i = 0; i < res->nentries && i < SH_OBJSTORE_LIST_MAX; i++) {
        r->keys[i] = strdup(res->entries[i].key);
        r->sizes[i] = res->entries[i].size;
    }
    r->next_token = res->next_token ? strdup(res->next_token) : NULL;
}

/* Drive until idle and check that the callback ran exactly once. */
static inline void tsu_finish(sh_objstore_t *s, tsu_res_t *r)
{
    assert_int_equal(sh_objstore_wait_idle(s, TSU_WAIT_MS), SH_OK);
    assert_int_equal(r->calls, 1);
}

static inline sh_err_t tsu_put(sh_objstore_t *s, const char *key, const void *data, size_t len)
{
    tsu_res_t r = {0};
    struct iovec iov = {(void *)data, len};
    assert_int_equal(sh_objstore_put_start(s, key, &iov, 1, tsu_cb, &r), SH_OK);
    tsu_finish(s, &r);
    sh_err_t err = r.err;
    tsu_res_fini(&r);
    return err;
}

static inline void tsu_put_ok(sh_objstore_t *s, const char *key, const void *data, size_t len)
{
    assert_int_equal(tsu_put(s, key, data, len), SH_OK);
}

/* Range get into *r (caller runs tsu_res_fini). */
static inline void tsu_get_range(sh_objstore_t *s, const char *key, uint64_t off, uint64_t len,
                                 tsu_res_t *r)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(sh_objstore_get_range_start(s, key, off, len, tsu_cb, r), SH_OK);
    tsu_finish(s, r);
}

static inline void tsu_get(sh_objstore_t *s, const char *key, tsu_res_t *r)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(sh_objstore_get_start(s, key, tsu_cb, r), SH_OK);
    tsu_finish(s, r);
}

static inline void tsu_head(sh_objstore_t *s, const char *key, tsu_res_t *r)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(sh_objstore_head_start(s, key, tsu_cb, r), SH_OK);
    tsu_finish(s, r);
}

static inline sh_err_t tsu_delete(sh_objstore_t *s, const char *key)
{
    tsu_res_t r = {0};
    assert_int_equal(sh_objstore_delete_start(s, key, tsu_cb, &r), SH_OK);
    tsu_finish(s, &r);
    sh_err_t err = r.err;
    tsu_res_fini(&r);
    return err;
}

static inline void tsu_list(sh_objstore_t *s, const char *prefix, const char *token,
                            size_t max_keys, tsu_res_t *r)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(sh_objstore_list_start(s, prefix, token, max_keys, tsu_cb, r), SH_OK);
    tsu_finish(s, r);
}

/* Deterministic content so a reader can check bytes without keeping them. */
static inline void tsu_fill(uint8_t *p, size_t len, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
}

#endif
