/*
 * sh_s3_sign.h - AWS Signature Version 4 for S3 requests, and the small
 * string, hash and encoding helpers the S3 backend needs around it.
 *
 * The signer is pure: the caller supplies everything (method, encoded
 * path, canonical query, headers to sign, payload hash, time, region,
 * credentials) and gets the Authorization header value back, optionally
 * with the intermediate canonical request and string to sign (tests and
 * debug logs compare those). Nothing here does I/O or reads a clock.
 *
 * S3 differs from other services in one detail that matters: the path is
 * URI-encoded once (each segment, '/' kept), not twice.
 *
 * Thread: any; no shared state. Ownership: sh_s3_buf_t owns its memory
 * (sh_s3_buf_fini); everything else writes into caller buffers.
 */
#ifndef SH_S3_SIGN_H
#define SH_S3_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <time.h>

#include "common/sh_err.h"

/* ------------------------------------------------------------- strings */

/* A growable NUL-terminated string. A failed append sets `oom` and leaves
 * the contents unchanged; check it once at the end instead of per call. */
typedef struct sh_s3_buf {
    char *p;
    size_t len, cap;
    bool oom;
} sh_s3_buf_t;

void sh_s3_buf_init(sh_s3_buf_t *b);
void sh_s3_buf_fini(sh_s3_buf_t *b);
void sh_s3_buf_reset(sh_s3_buf_t *b);
void sh_s3_buf_add(sh_s3_buf_t *b, const void *s, size_t n);
void sh_s3_buf_adds(sh_s3_buf_t *b, const char *s);
void sh_s3_buf_addf(sh_s3_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The text so far ("" when empty, never NULL). */
const char *sh_s3_buf_str(const sh_s3_buf_t *b);

/* Append s[0..n) URI-encoded as SigV4 wants: unreserved characters
 * (A-Z a-z 0-9 - _ . ~) stay, everything else becomes %XX (upper-case
 * hex); '/' stays only when keep_slash (object paths). */
void sh_s3_buf_add_uri(sh_s3_buf_t *b, const char *s, size_t n, bool keep_slash);

/* ------------------------------------------------------------- hashing */

#define SH_S3_SHA256_HEX_LEN 64
#define SH_S3_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* Lower-case hex SHA-256 of the bytes in iov (out: 65 bytes). */
sh_err_t sh_s3_sha256_hex_iov(const struct iovec *iov, int iovcnt, char out[65]);
sh_err_t sh_s3_sha256_hex(const void *data, size_t len, char out[65]);

/* SHA-256 of the byte range [off, off+len) of the concatenated iovecs. */
sh_err_t sh_s3_sha256_hex_range(const struct iovec *iov, int iovcnt, uint64_t off, uint64_t len,
                                char out[65]);

/* Base64 of the MD5 of data (Content-MD5 header; out: 25 bytes). */
sh_err_t sh_s3_md5_base64(const void *data, size_t len, char out[25]);

/* ------------------------------------------------------------- signing */

/* One header to sign. Names must be lower case; values are trimmed and
 * inner runs of spaces collapsed when canonicalised. */
typedef struct sh_s3_header {
    const char *name;
    const char *value;
} sh_s3_header_t;

typedef struct sh_s3_sign_input {
    const char *method;            /* "GET", "PUT", ... */
    const char *canonical_uri;     /* already URI-encoded path, starts with '/' */
    const char *canonical_query;   /* "a=1&b=2": names sorted, encoded; "" if none */
    const sh_s3_header_t *headers; /* must include host and x-amz-date */
    size_t nheaders;               /* at most SH_S3_SIGN_MAX_HEADERS */
    const char *payload_hash;      /* hex SHA-256 or "UNSIGNED-PAYLOAD" */
    const char *amz_date;          /* "YYYYMMDDTHHMMSSZ" */
    const char *region;            /* "us-east-1" */
    const char *service;           /* "s3" */
    const char *access_key_id;
    const char *secret_access_key;
} sh_s3_sign_input_t;

#define SH_S3_SIGN_MAX_HEADERS 16

/* Compute the Authorization header value into `auth`. When creq / sts are
 * non-NULL the canonical request and the string to sign are appended to
 * them (for tests and debug logs). SH_E_INVAL for bad input, SH_E_NOMEM. */
sh_err_t sh_s3_sign(const sh_s3_sign_input_t *in, sh_s3_buf_t *auth, sh_s3_buf_t *creq,
                    sh_s3_buf_t *sts);

/* "YYYYMMDDTHHMMSSZ" for a UTC time (out: 17 bytes). */
void sh_s3_amz_date(time_t t, char out[17]);

/* Build a canonical query string (also usable as the URL's query) from
 * name/value pairs: each encoded, sorted by name then value, joined with
 * '&'; a NULL value is written as "name=" as SigV4 requires. */
typedef struct sh_s3_param {
    const char *name;
    const char *value;
} sh_s3_param_t;

sh_err_t sh_s3_query_build(const sh_s3_param_t *params, size_t n, sh_s3_buf_t *out);

#endif
