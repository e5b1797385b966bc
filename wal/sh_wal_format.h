/*
 * sh_wal_format.h - the on-disk bytes of a WAL segment: its header and its
 * frames. Pure encode/decode on memory, no I/O, so replay, the commit
 * worker, the unit tests and the fuzz target share one definition.
 * docs/wal.md describes the same layout in prose.
 *
 * Every integer is big-endian (as on the Kafka wire).
 *
 * Segment header, at offset 0, SH_WAL_SEG_HDR_SIZE (512) bytes so that it
 * fits one disk sector and is rewritten atomically when a file is recycled:
 *     0  magic "SHWALSEG"          8 bytes
 *     8  version                   u32 (1)
 *    12  header size               u32 (512; first frame starts here)
 *    16  seq                       u64 segment sequence number, never reused
 *    24  segment bytes             u64 file size when prepared
 *    32  created                   i64 wall-clock ms (diagnostics only)
 *    40  reserved                  u32 (0)
 *    44  crc32c                    u32 over bytes 0..43
 *    48  zero up to 512
 *
 * Frame, SH_WAL_FRAME_HDR_SIZE (40) bytes then key then payload:
 *     0  crc32c                    u32 over bytes 4 .. length-1
 *     4  length                    u32 whole frame (header + key + payload)
 *     8  seq                       u64 must equal the segment header's seq
 *    16  type                      u8  DATA, RELEASE, DELETE, SEAL
 *    17  flags                     u8  (0)
 *    18  key length                u16
 *    20  magic                     u32 0x5357414c ("SWAL")
 *    24  first offset              i64
 *    32  last offset               i64
 *    40  key bytes, then payload bytes
 *
 * A frame belongs to the file's current life only when its seq matches the
 * header's and its CRC holds; anything else (zeros, stale frames from a
 * recycled file's previous life, a torn write) ends the segment.
 */
#ifndef SH_WAL_FORMAT_H
#define SH_WAL_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "common/sh_err.h"
#include "common/sh_slice.h"

#define SH_WAL_SEG_MAGIC "SHWALSEG"
#define SH_WAL_SEG_VERSION 1u
#define SH_WAL_SEG_HDR_SIZE 512u
#define SH_WAL_SEG_HDR_USED 48u

#define SH_WAL_FRAME_HDR_SIZE 40u
#define SH_WAL_FRAME_MAGIC 0x5357414cu
#define SH_WAL_KEY_MAX 1024u

enum {
    SH_WAL_FRAME_DATA = 1,    /* payload for offsets first..last of key */
    SH_WAL_FRAME_RELEASE = 2, /* key's frames with last <= last_offset are uploaded */
    SH_WAL_FRAME_DELETE = 3,  /* key's earlier frames are void (partition deleted) */
    SH_WAL_FRAME_SEAL = 4,    /* no more frames in this segment */
};

typedef struct sh_wal_seghdr {
    uint64_t seq;
    uint64_t segment_bytes;
    int64_t created_ms;
} sh_wal_seghdr_t;

typedef struct sh_wal_frame {
    uint8_t type;
    uint32_t len;          /* whole frame */
    uint64_t seq;
    int64_t first_offset;
    int64_t last_offset;
    sh_slice_t key;        /* borrowed from the decoded buffer */
    sh_slice_t payload;    /* borrowed from the decoded buffer */
} sh_wal_frame_t;

/* Fill a whole SH_WAL_SEG_HDR_SIZE buffer (zero padding included). */
void sh_wal_seghdr_encode(uint8_t *out, const sh_wal_seghdr_t *h);

/* SH_E_CORRUPT unless buf holds a valid header (magic, version, CRC). */
sh_err_t sh_wal_seghdr_decode(const uint8_t *buf, size_t len, sh_wal_seghdr_t *h);

/* Write the 40 header bytes except the CRC (left zero). */
void sh_wal_frame_hdr_encode(uint8_t *hdr, uint8_t type, uint64_t seq, uint16_t key_len,
                             uint32_t len, int64_t first_offset, int64_t last_offset);

/* CRC of the header part the frame CRC covers (bytes 4..39); continue it
 * over key and payload with sh_crc32c(), then store with _set_crc. */
uint32_t sh_wal_frame_hdr_crc(const uint8_t *hdr);
void sh_wal_frame_hdr_set_crc(uint8_t *hdr, uint32_t crc);

/* Look at a frame header (avail >= SH_WAL_FRAME_HDR_SIZE bytes at p) and
 * return the frame length if the header is plausible for segment `seq`
 * and the frame fits in `room` bytes (what is left of the segment), else
 * 0. Cheap: no CRC. */
uint32_t sh_wal_frame_peek(const uint8_t *p, size_t avail, uint64_t seq, uint64_t room);

/* Full check of one frame held entirely in p[0..avail): header, lengths,
 * CRC, offsets per type. SH_E_CORRUPT if it is not a current frame. */
sh_err_t sh_wal_frame_decode(const uint8_t *p, size_t avail, uint64_t seq, sh_wal_frame_t *out);

#endif
