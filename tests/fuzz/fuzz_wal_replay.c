/*
 * fuzz_wal_replay.c - arbitrary bytes as a WAL segment file, then the
 * startup scan and a replay of every key it finds. Must never crash or
 * read out of bounds, whatever a torn write or a bad disk left behind.
 *
 * Input: one mode byte, then the rest.
 *   mode & 1: the rest is the frame area; a valid segment header (seq 7)
 *             is put in front, so the fuzzer starts past the header CRC.
 *   mode & 2: also stamp seq 7 and the magic on every frame whose length
 *             fits and fix its CRC, so the fuzzer reaches the frame
 *             semantics (keys, offsets, RELEASE/DELETE/SEAL) quickly.
 *   otherwise the rest is the whole file.
 * Runs on the in-memory file system; the seed corpus holds segment files
 * written by the WAL itself.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/sh_crc32c.h"
#include "common/sh_endian.h"
#include "common/sh_log.h"
#include "wal/sh_wal.h"
#include "wal/sh_wal_format.h"
#include "wal/sh_wal_memio.h"

#define SEQ 7

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    sh_log_set_fd(open("/dev/null", O_WRONLY));
    return 0;
}

typedef struct {
    sh_wal_mgr_t *m;
    uint64_t sum;
} ctx_t;

static sh_err_t touch(void *arg, int64_t first, int64_t last, sh_slice_t payload)
{
    ctx_t *c = arg;
    c->sum += (uint64_t)(first ^ last);
    for (size_t i = 0; i < payload.len; i++)
        c->sum += payload.ptr[i]; /* every byte read: ASan sees any over-read */
    return SH_OK;
}

static int open_key(void *arg, const char *key)
{
    ctx_t *c = arg;
    sh_wal_t *w = NULL;
    if (sh_wal_open(c->m, key, touch, c, &w) == SH_OK) {
        sh_wal_release(w, sh_wal_last_offset(w));
        sh_wal_close(w);
    }
    return 0;
}

static void fix_frames(uint8_t *img, size_t len)
{
    size_t pos = SH_WAL_SEG_HDR_SIZE;
    while (len - pos >= SH_WAL_FRAME_HDR_SIZE) {
        uint8_t *p = img + pos;
        uint32_t flen = sh_load_be32(p + 4);
        if (flen < SH_WAL_FRAME_HDR_SIZE || flen > len - pos)
            break;
        sh_store_be64(p + 8, SEQ);
        sh_store_be32(p + 20, SH_WAL_FRAME_MAGIC);
        p[17] = 0;
        sh_store_be32(p, sh_crc32c(0, p + 4, flen - 4));
        pos += flen;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20))
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    size_t len = (mode & 1) ? SH_WAL_SEG_HDR_SIZE + size : size;
    uint8_t *img = malloc(len ? len : 1);
    if (!img)
        return 0;
    if (mode & 1) {
        sh_wal_seghdr_t h = {.seq = SEQ, .segment_bytes = len, .created_ms = 0};
        sh_wal_seghdr_encode(img, &h);
        if (size)
            memcpy(img + SH_WAL_SEG_HDR_SIZE, data, size);
        if (mode & 2)
            fix_frames(img, len);
    } else if (size) {
        memcpy(img, data, size);
    }

    sh_wal_memio_t *mi = sh_wal_memio_new();
    if (!mi || sh_wal_memio_mkdir_p(mi, "/w") != SH_OK ||
        sh_wal_memio_put(mi, "/w/wal-00000001.seg", img, len) != SH_OK) {
        sh_wal_memio_free(mi);
        free(img);
        return 0;
    }
    free(img);
    sh_wal_opts_t o = {0};
    o.segment_bytes = 16 << 10;
    o.max_unreleased_bytes = 64ull << 20;
    o.pool_segments = 1;
    o.io = sh_wal_memio_io(mi);
    ctx_t c = {0};
    if (sh_wal_mgr_new("/w", &o, &c.m) == SH_OK) {
        sh_wal_mgr_keys(c.m, open_key, &c);
        sh_wal_mgr_free(c.m);
    }
    sh_wal_memio_free(mi);
    return 0;
}
