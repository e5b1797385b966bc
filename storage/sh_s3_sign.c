/*
 * sh_s3_sign.c - AWS Signature Version 4 and the helpers around it
 * (growable strings, URI encoding, SHA-256/MD5 through OpenSSL's EVP API).
 *
 * The algorithm, as AWS documents it:
 *   canonical request = method \n path \n query \n headers \n signed \n hash
 *   string to sign    = "AWS4-HMAC-SHA256" \n date-time \n scope \n
 *                       hex(sha256(canonical request))
 *   signing key       = HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region),
 *                       service), "aws4_request")
 *   signature         = hex(HMAC(signing key, string to sign))
 * The secret never leaves this file's stack frames; nothing here logs.
 *
 * Thread: any; no shared state. Ownership: callers own every buffer.
 */
#include "storage/sh_s3_sign.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

/* ------------------------------------------------------------- strings */

void sh_s3_buf_init(sh_s3_buf_t *b)
{
    memset(b, 0, sizeof(*b));
}

void sh_s3_buf_fini(sh_s3_buf_t *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

void sh_s3_buf_reset(sh_s3_buf_t *b)
{
    b->len = 0;
    b->oom = false;
    if (b->p)
        b->p[0] = '\0';
}

static bool sh_s3_buf_grow(sh_s3_buf_t *b, size_t more)
{
    if (b->oom)
        return false;
    if (b->len + more + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + more + 1) {
        if (cap > SIZE_MAX / 2) {
            b->oom = true;
            return false;
        }
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void sh_s3_buf_add(sh_s3_buf_t *b, const void *s, size_t n)
{
    if (!sh_s3_buf_grow(b, n))
        return;
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void sh_s3_buf_adds(sh_s3_buf_t *b, const char *s)
{
    sh_s3_buf_add(b, s, strlen(s));
}

void sh_s3_buf_addf(sh_s3_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !sh_s3_buf_grow(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

const char *sh_s3_buf_str(const sh_s3_buf_t *b)
{
    return b->p ? b->p : "";
}

static bool sh_s3_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.' || c == '~';
}

void sh_s3_buf_add_uri(sh_s3_buf_t *b, const char *s, size_t n, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    if (!sh_s3_buf_grow(b, n * 3))
        return;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (sh_s3_unreserved(c) || (keep_slash && c == '/')) {
            b->p[b->len++] = (char)c;
        } else {
            b->p[b->len++] = '%';
            b->p[b->len++] = hex[c >> 4];
            b->p[b->len++] = hex[c & 15];
        }
    }
    b->p[b->len] = '\0';
}

/* ------------------------------------------------------------- hashing */

static void sh_s3_hex(const unsigned char *d, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[2 * n] = '\0';
}

sh_err_t sh_s3_sha256_hex_range(const struct iovec *iov, int iovcnt, uint64_t off, uint64_t len,
                                char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    sh_err_t err = SH_E_NOMEM;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return SH_E_NOMEM;
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        goto fail;
    uint64_t pos = 0;
    for (int i = 0; i < iovcnt && len > 0; i++) {
        uint64_t ilen = iov[i].iov_len;
        if (pos + ilen <= off) {
            pos += ilen;
            continue;
        }
        uint64_t skip = off > pos ? off - pos : 0;
        uint64_t take = ilen - skip;
        if (take > len)
            take = len;
        if (EVP_DigestUpdate(ctx, (const uint8_t *)iov[i].iov_base + skip, (size_t)take) != 1)
            goto fail;
        len -= take;
        off += take;
        pos += ilen;
    }
    if (len > 0) {
        err = SH_E_INVAL; /* range past the end of the data */
        goto fail;
    }
    if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1)
        goto fail;
    sh_s3_hex(md, mdlen, out);
    err = SH_OK;
fail:
    EVP_MD_CTX_free(ctx);
    return err;
}

sh_err_t sh_s3_sha256_hex_iov(const struct iovec *iov, int iovcnt, char out[65])
{
    uint64_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    return sh_s3_sha256_hex_range(iov, iovcnt, 0, total, out);
}

sh_err_t sh_s3_sha256_hex(const void *data, size_t len, char out[65])
{
    struct iovec v = {(void *)data, len};
    return sh_s3_sha256_hex_range(&v, 1, 0, len, out);
}

sh_err_t sh_s3_md5_base64(const void *data, size_t len, char out[25])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(data, len, md, &mdlen, EVP_md5(), NULL) != 1 || mdlen != 16)
        return SH_E_UNSUPPORTED; /* MD5 disabled (FIPS mode) */
    EVP_EncodeBlock((unsigned char *)out, md, 16);
    return SH_OK;
}

static sh_err_t sh_s3_hmac(const void *key, size_t keylen, const void *data, size_t len,
                           unsigned char out[32])
{
    size_t outlen = 0;
    if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, keylen, data, len, out, 32, &outlen) ||
        outlen != 32)
        return SH_E_NOMEM;
    return SH_OK;
}

/* ------------------------------------------------------------- signing */

void sh_s3_amz_date(time_t t, char out[17])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

static int sh_s3_header_cmp(const void *a, const void *b)
{
    return strcmp(((const sh_s3_header_t *)a)->name, ((const sh_s3_header_t *)b)->name);
}

/* Value trimmed, with inner runs of blanks collapsed to one space. */
static void sh_s3_add_header_value(sh_s3_buf_t *b, const char *v)
{
    while (*v == ' ' || *v == '\t')
        v++;
    bool space = false;
    for (; *v; v++) {
        if (*v == ' ' || *v == '\t') {
            space = true;
            continue;
        }
        if (space)
            sh_s3_buf_add(b, " ", 1);
        space = false;
        sh_s3_buf_add(b, v, 1);
    }
}

sh_err_t sh_s3_sign(const sh_s3_sign_input_t *in, sh_s3_buf_t *auth, sh_s3_buf_t *creq_out,
                    sh_s3_buf_t *sts_out)
{
    if (!in->method || !in->canonical_uri || !in->payload_hash || !in->amz_date ||
        strlen(in->amz_date) != 16 || !in->region || !in->service || !in->access_key_id ||
        !in->secret_access_key || in->nheaders == 0 || in->nheaders > SH_S3_SIGN_MAX_HEADERS)
        return SH_E_INVAL;
    sh_s3_header_t hs[SH_S3_SIGN_MAX_HEADERS];
    memcpy(hs, in->headers, in->nheaders * sizeof(hs[0]));
    qsort(hs, in->nheaders, sizeof(hs[0]), sh_s3_header_cmp);
    for (size_t i = 0; i < in->nheaders; i++) {
        for (const char *c = hs[i].name; *c; c++)
            if (isupper((unsigned char)*c))
                return SH_E_INVAL;
        if (i > 0 && strcmp(hs[i - 1].name, hs[i].name) == 0)
            return SH_E_INVAL;
    }

    sh_err_t err = SH_E_NOMEM;
    sh_s3_buf_t creq, signed_hdrs, sts, secret;
    sh_s3_buf_init(&creq);
    sh_s3_buf_init(&signed_hdrs);
    sh_s3_buf_init(&sts);
    sh_s3_buf_init(&secret);
    unsigned char k[32], sig[32];
    char hexsig[65], creq_hash[65], date[9];
    memcpy(date, in->amz_date, 8);
    date[8] = '\0';

    for (size_t i = 0; i < in->nheaders; i++) {
        if (i)
            sh_s3_buf_add(&signed_hdrs, ";", 1);
        sh_s3_buf_adds(&signed_hdrs, hs[i].name);
    }
    sh_s3_buf_addf(&creq, "%s\n%s\n%s\n", in->method, in->canonical_uri,
                   in->canonical_query ? in->canonical_query : "");
    for (size_t i = 0; i < in->nheaders; i++) {
        sh_s3_buf_adds(&creq, hs[i].name);
        sh_s3_buf_add(&creq, ":", 1);
        sh_s3_add_header_value(&creq, hs[i].value ? hs[i].value : "");
        sh_s3_buf_add(&creq, "\n", 1);
    }
    sh_s3_buf_addf(&creq, "\n%s\n%s", sh_s3_buf_str(&signed_hdrs), in->payload_hash);
    if (creq.oom || signed_hdrs.oom)
        goto fail;
    if ((err = sh_s3_sha256_hex(creq.p, creq.len, creq_hash)) != SH_OK)
        goto fail;
    err = SH_E_NOMEM;
    sh_s3_buf_addf(&sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s", in->amz_date, date,
                   in->region, in->service, creq_hash);
    sh_s3_buf_addf(&secret, "AWS4%s", in->secret_access_key);
    if (sts.oom || secret.oom)
        goto fail;

    if (sh_s3_hmac(secret.p, secret.len, date, 8, k) != SH_OK ||
        sh_s3_hmac(k, 32, in->region, strlen(in->region), k) != SH_OK ||
        sh_s3_hmac(k, 32, in->service, strlen(in->service), k) != SH_OK ||
        sh_s3_hmac(k, 32, "aws4_request", 12, k) != SH_OK ||
        sh_s3_hmac(k, 32, sts.p, sts.len, sig) != SH_OK)
        goto fail;
    sh_s3_hex(sig, 32, hexsig);

    sh_s3_buf_addf(auth, "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, "
                         "SignedHeaders=%s, Signature=%s",
                   in->access_key_id, date, in->region, in->service,
                   sh_s3_buf_str(&signed_hdrs), hexsig);
    if (creq_out)
        sh_s3_buf_add(creq_out, creq.p, creq.len);
    if (sts_out)
        sh_s3_buf_add(sts_out, sts.p, sts.len);
    err = auth->oom || (creq_out && creq_out->oom) || (sts_out && sts_out->oom) ? SH_E_NOMEM
                                                                                : SH_OK;
fail:
    /* the derived key and the "AWS4"+secret copy are as good as the secret */
    OPENSSL_cleanse(k, sizeof(k));
    if (secret.p)
        OPENSSL_cleanse(secret.p, secret.cap);
    sh_s3_buf_fini(&creq);
    sh_s3_buf_fini(&signed_hdrs);
    sh_s3_buf_fini(&sts);
    sh_s3_buf_fini(&secret);
    return err;
}

typedef struct sh_s3_enc_param {
    char *name;
    char *value;
} sh_s3_enc_param_t;

static int sh_s3_param_cmp(const void *a, const void *b)
{
    const sh_s3_enc_param_t *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

sh_err_t sh_s3_query_build(const sh_s3_param_t *params, size_t n, sh_s3_buf_t *out)
{
    sh_err_t err = SH_E_NOMEM;
    sh_s3_enc_param_t *enc = calloc(n ? n : 1, sizeof(*enc));
    if (!enc)
        return SH_E_NOMEM;
    for (size_t i = 0; i < n; i++) {
        sh_s3_buf_t b;
        sh_s3_buf_init(&b);
        sh_s3_buf_add_uri(&b, params[i].name, strlen(params[i].name), false);
        if (b.oom || !b.p) {
            sh_s3_buf_fini(&b);
            goto fail;
        }
        enc[i].name = b.p;
        sh_s3_buf_init(&b);
        const char *v = params[i].value ? params[i].value : "";
        sh_s3_buf_add_uri(&b, v, strlen(v), false);
        sh_s3_buf_add(&b, "", 0); /* so an empty value still allocates */
        if (b.oom || !b.p) {
            sh_s3_buf_fini(&b);
            goto fail;
        }
        enc[i].value = b.p;
    }
    /* sorting encoded names is what SigV4 specifies (byte order of the
     * encoded form), which differs from sorting raw names for some bytes */
    qsort(enc, n, sizeof(*enc), sh_s3_param_cmp);
    for (size_t i = 0; i < n; i++)
        sh_s3_buf_addf(out, "%s%s=%s", i ? "&" : "", enc[i].name, enc[i].value);
    err = out->oom ? SH_E_NOMEM : SH_OK;
fail:
    for (size_t i = 0; i < n; i++) {
        free(enc[i].name);
        free(enc[i].value);
    }
    free(enc);
    return err;
}
