/*
 * sh_objstore_s3.c - the object store over S3's REST API (s3:// URLs),
 * with libcurl's multi-socket interface and SigV4 signing.
 *
 * Loop integration. curl tells us which sockets to watch
 * (CURLMOPT_SOCKETFUNCTION) and when to call it back without socket
 * activity (CURLMOPT_TIMERFUNCTION). We put its sockets, and the eventfd of
 * the worker that hashes payloads, into one private epoll descriptor; that
 * descriptor is sh_objstore_fd(), so the broker watches exactly one fd per
 * store. drive() takes the ready events without waiting, hands them to
 * curl, fires curl's timer when due, finishes completed transfers and then
 * dispatches queued work. next_deadline is the earliest of curl's timer, a
 * retry's backoff and a rate limiter's refill. Nothing here ever blocks:
 * DNS runs on curl's resolver thread, TLS inside curl's non-blocking state
 * machine, hashing on our worker thread.
 *
 * An operation (sh_s3_op_t) is one accepted sh_objstore_* call. It goes
 * through steps, each one HTTP request: a put is HASH then PUT, or HASH,
 * CreateMultipartUpload, UploadPart x N, CompleteMultipartUpload (and
 * AbortMultipartUpload when that fails); delete_many is one DeleteObjects
 * per 1000 keys; everything else is a single request. At any time an op
 * is hashing (owned by the worker), queued (per request class, waiting
 * for a free slot and a rate token), delayed (waiting out a retry backoff)
 * or active (a curl easy handle in the multi).
 *
 * Reliability. A request that fails with a transport error, a timeout,
 * a 5xx, 429 or S3's throttling codes is retried after a jittered
 * exponential backoff, up to max_attempts; then the op fails with
 * retriable=true. Such failures also feed a circuit breaker: after N in a
 * row it opens, and requests fail fast (retriable) instead of adding load
 * to a sick endpoint; after a cooldown one request probes, and its outcome
 * closes the breaker or re-opens it for longer. Token buckets cap the rate
 * per request class and max_inflight caps concurrent requests (and so the
 * memory of response bodies); everything beyond waits in the queues, whose
 * entries hold no payload bytes (a put's bytes are the caller's).
 * Non-retriable answers (403, NoSuchBucket, 400s) fail at once with one
 * log line; a 404 on GET/HEAD is SH_E_NOTFOUND and not logged.
 *
 * Thread: the loop thread runs everything except the hashing work
 * function. Ownership: each op owns copies of its strings and iovec array
 * (not the payload bytes), its curl handle and buffers, and is freed after
 * its callback returns. Get blocks are created here with one reference,
 * dropped after the callback. Do not free the store from one of its own
 * callbacks.
 */
#include "storage/sh_objstore_s3.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "common/sh_clock.h"
#include "common/sh_log.h"
#include "common/sh_workq.h"
#include "storage/sh_objstore_impl.h"
#include "storage/sh_s3_policy.h"
#include "storage/sh_s3_sign.h"
#include "storage/sh_s3_xml.h"

#define SH_S3_MIB (1024ull * 1024ull)
#define SH_S3_MAX_PARTS 10000                 /* S3's limit per upload */
#define SH_S3_DELETE_MAX_KEYS 1000               /* S3's limit per DeleteObjects */
#define SH_S3_ERR_BODY_MAX (64 * 1024)        /* error documents are small */
#define SH_S3_XML_BODY_MAX (16 * SH_S3_MIB)   /* a list page of 1000 long keys */
#define SH_S3_AUTH_LOG_EVERY_MS 60000         /* one line per minute for a bad setup */
#define SH_S3_ERR_LOG_EVERY_MS 1000
#define SH_S3_CLOSE_WAIT_MS 30000             /* free(): finish in-flight work this long */
#define SH_S3_CHUNKED_GET_MAX (1024 * SH_S3_MIB)

enum { SH_S3_READ, SH_S3_WRITE, SH_S3_LIST, SH_S3_NCLASS };

typedef enum sh_s3_step {
    SH_S3_HASH,
    SH_S3_PUT,
    SH_S3_MP_CREATE,
    SH_S3_MP_PART,
    SH_S3_MP_COMPLETE,
    SH_S3_MP_ABORT,
    SH_S3_GET,
    SH_S3_HEAD,
    SH_S3_DELETE,
    SH_S3_DELETE_BATCH,
    SH_S3_LIST_PAGE,
} sh_s3_step_t;

static const char *const sh_s3_step_name[] = {
    "hash", "put", "create multipart upload for", "upload part of", "complete multipart upload of",
    "abort multipart upload of", "get", "head", "delete", "delete objects under", "list",
};

typedef enum sh_s3_where {
    SH_S3_NOWHERE,
    SH_S3_QUEUED,
    SH_S3_DELAYED,
    SH_S3_ACTIVE,
} sh_s3_where_t;

typedef struct sh_objstore_s3 sh_objstore_s3_t;

typedef struct sh_s3_op {
    sh_workq_job_t job;          /* first: the hashing job pointer is the op */
    struct sh_s3_op *next, *prev;
    sh_s3_where_t where;
    int cls;
    sh_objstore_s3_t *st;
    sh_objstore_op_t kind;
    sh_objstore_cb cb;
    void *arg;
    char *key;                   /* the caller's key (list: prefix) */
    char *okey;                  /* object key in the bucket: store prefix + key */
    sh_s3_step_t step;
    int attempt;                 /* tries of the current step so far */
    int64_t ready_ms;            /* delayed: when to queue again */

    /* put */
    struct iovec *iov;
    int iovcnt;
    uint64_t total;
    char (*hashes)[65];          /* payload hash per part (one for a plain put) */
    int nparts, part;
    char *upload_id;
    char **etags;
    sh_err_t hash_err;
    uint64_t rd_start, rd_len, rd_pos;  /* current body: [rd_start, +rd_len), sent rd_pos */
    int rd_iov;                  /* read cursor: iovec index ... */
    uint64_t rd_iov_off;         /* ... and offset inside it */
    sh_err_t saved_err;          /* multipart: why we are aborting */
    bool saved_retriable;

    /* get */
    uint64_t off, len;

    /* delete_many */
    char **keys;
    sh_err_t *errs;
    size_t nkeys, batch_start, batch_n;

    /* list */
    char *token;
    size_t max_keys;
    sh_objstore_entry_t *entries;
    size_t nentries;
    char *next_token;

    /* the request in flight */
    CURL *easy;
    struct curl_slist *hdrs;
    sh_s3_buf_t body;            /* request body we built (POST) */
    sh_s3_buf_t resp;            /* response body when not a get's payload */
    size_t resp_max;
    bool resp_truncated;
    sh_block_t *block;           /* get payload */
    size_t block_got;
    uint64_t skip;               /* bytes of a 200 answer to a range to drop */
    bool body_decided;
    bool range_unsatisfiable;
    bool body_too_big;
    bool local_oom;
    long status;
    uint64_t content_length;
    bool have_length;
    uint64_t range_total;
    bool have_range;
    int64_t last_modified_ms;
    char etag[128];
    char errbuf[CURL_ERROR_SIZE];
    bool let_through;            /* counted by the breaker */
    bool trivial;                /* needs no request: completes on the next drive */

    sh_objstore_result_t res;
    char detail[512];            /* res.detail */
} sh_s3_op_t;

typedef struct sh_s3_list {
    sh_s3_op_t *head, *tail;
    size_t n;
} sh_s3_list_t;

struct sh_objstore_s3 {
    sh_objstore_t base;
    /* settings */
    char *bucket;
    char *prefix;                /* "" or ends with '/' */
    char *endpoint;              /* scheme://host[:port], for URLs and logs */
    char *url_base;              /* scheme://[bucket.]host[:port] */
    char *host_header;           /* [bucket.]host[:port] */
    bool path_style;
    char *region;
    char *access_key_id;
    char *secret_access_key;
    char *session_token;
    int max_inflight, max_attempts;
    int64_t backoff_base_ms, backoff_max_ms;
    int64_t connect_timeout_ms, request_timeout_ms;
    uint64_t multipart_threshold, part_size;

    /* machinery */
    int epfd;
    CURLM *multi;
    int64_t curl_deadline;       /* -1: no curl timer */
    sh_workq_t *wq;              /* payload hashing */
    sh_s3_list_t queue[SH_S3_NCLASS];
    sh_s3_list_t delayed;        /* unordered; few entries */
    sh_s3_list_t active;
    sh_s3_bucket_t rate[SH_S3_NCLASS];
    int64_t rate_wait[SH_S3_NCLASS]; /* a queue head waits for a token until then */
    int rr;                      /* round-robin start class */
    sh_s3_breaker_t breaker;
    char last_failure[300];      /* why the endpoint looks sick, for fail-fast details */
    sh_objstore_s3_stats_t stats;
    uint64_t rnd;
    size_t hashing;
    bool closing, cancelling;

    /* log throttling */
    bool quiet;                  /* failures at DEBUG: a caller reports them */
    int64_t auth_log_next, err_log_next;
    unsigned err_log_suppressed;
};

static pthread_once_t sh_s3_curl_once = PTHREAD_ONCE_INIT;
static CURLcode sh_s3_curl_init_rc;

static void sh_s3_curl_global_init(void)
{
    sh_s3_curl_init_rc = curl_global_init(CURL_GLOBAL_ALL);
}

/* ---------------------------------------------------------------- lists */

static void sh_s3_list_push(sh_s3_list_t *l, sh_s3_op_t *op, sh_s3_where_t where)
{
    op->next = NULL;
    op->prev = l->tail;
    if (l->tail)
        l->tail->next = op;
    else
        l->head = op;
    l->tail = op;
    l->n++;
    op->where = where;
}

static void sh_s3_list_remove(sh_s3_list_t *l, sh_s3_op_t *op)
{
    if (op->prev)
        op->prev->next = op->next;
    else
        l->head = op->next;
    if (op->next)
        op->next->prev = op->prev;
    else
        l->tail = op->prev;
    l->n--;
    op->next = op->prev = NULL;
    op->where = SH_S3_NOWHERE;
}

/* ------------------------------------------------------------- helpers */

static size_t sh_s3_ops_pending(const sh_objstore_s3_t *st)
{
    size_t n = st->hashing + st->delayed.n + st->active.n;
    for (int c = 0; c < SH_S3_NCLASS; c++)
        n += st->queue[c].n;
    return n;
}

/* Log an operation's failure, at most once a second per store (a dead
 * endpoint fails every op; one line per op would bury everything else). */
static void sh_s3_log_failure(sh_objstore_s3_t *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sh_s3_log_failure(sh_objstore_s3_t *st, const char *fmt, ...)
{
    int64_t now = sh_clock_mono_ms();
    if (st->quiet)
        return;
    if (now < st->err_log_next) {
        st->err_log_suppressed++;
        return;
    }
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (st->err_log_suppressed)
        sh_log(SH_LOG_ERROR, "objstore", "%s (and %u similar failures in the last second)", msg,
               st->err_log_suppressed);
    else
        sh_log(SH_LOG_ERROR, "objstore", "%s", msg);
    st->err_log_suppressed = 0;
    st->err_log_next = now + SH_S3_ERR_LOG_EVERY_MS;
}

static int64_t sh_s3_parse_http_date(const char *v)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *e = strptime(v, "%a, %d %b %Y %H:%M:%S", &tm);
    if (!e)
        return 0;
    return (int64_t)timegm(&tm) * 1000;
}

static int64_t sh_s3_parse_iso_date(const char *v)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    int ms = 0;
    if (sscanf(v, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec) != 6)
        return 0;
    const char *dot = strchr(v, '.');
    if (dot)
        ms = atoi(dot + 1) % 1000;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

static bool sh_s3_parse_u64(const char *s, uint64_t *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || (*end && !isspace((unsigned char)*end)))
        return false;
    *out = v;
    return true;
}

/* "s3://bucket/prefix/key" for log lines. */
static void sh_s3_name(const sh_s3_op_t *op, char *out, size_t n)
{
    snprintf(out, n, "s3://%s/%.300s", op->st->bucket, op->okey ? op->okey : "");
}

/* ------------------------------------------------------- curl callbacks */

static int sh_s3_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    sh_objstore_s3_t *st = userp;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(st->epfd, EPOLL_CTL_DEL, fd, NULL);
        curl_multi_assign(st->multi, fd, NULL);
        return 0;
    }
    struct epoll_event ev = {0};
    ev.data.fd = fd;
    if (what & CURL_POLL_IN)
        ev.events |= EPOLLIN;
    if (what & CURL_POLL_OUT)
        ev.events |= EPOLLOUT;
    int op = socketp ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(st->epfd, op, fd, &ev) != 0) {
        /* curl may reuse a descriptor number it closed without telling us */
        if (errno == EEXIST)
            epoll_ctl(st->epfd, EPOLL_CTL_MOD, fd, &ev);
        else if (errno == ENOENT)
            epoll_ctl(st->epfd, EPOLL_CTL_ADD, fd, &ev);
        else
            sh_log(SH_LOG_WARN, "objstore", "could not watch S3 connection socket: %s",
                   strerror(errno));
    }
    if (!socketp)
        curl_multi_assign(st->multi, fd, (void *)1);
    return 0;
}

static int sh_s3_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    sh_objstore_s3_t *st = userp;
    st->curl_deadline = timeout_ms < 0 ? -1 : sh_clock_mono_ms() + timeout_ms;
    return 0;
}

static size_t sh_s3_header_cb(char *buf, size_t size, size_t n, void *userp)
{
    sh_s3_op_t *op = userp;
    size_t len = size * n;
    if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        /* a new response (after a 100 Continue, say): forget the last one */
        op->have_length = op->have_range = false;
        op->etag[0] = '\0';
        op->last_modified_ms = 0;
        return len;
    }
    const char *colon = memchr(buf, ':', len);
    if (!colon)
        return len;
    size_t nlen = (size_t)(colon - buf);
    const char *v = colon + 1;
    const char *end = buf + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    char val[256];
    size_t vl = (size_t)(end - v);
    if (vl >= sizeof(val))
        vl = sizeof(val) - 1;
    memcpy(val, v, vl);
    val[vl] = '\0';
    if (nlen == 14 && strncasecmp(buf, "content-length", 14) == 0) {
        op->have_length = sh_s3_parse_u64(val, &op->content_length);
    } else if (nlen == 13 && strncasecmp(buf, "content-range", 13) == 0) {
        /* "bytes 0-99/1234", or "bytes *" "/1234" for a 416 */
        const char *slash = strrchr(val, '/');
        op->have_range = slash && sh_s3_parse_u64(slash + 1, &op->range_total);
    } else if (nlen == 13 && strncasecmp(buf, "last-modified", 13) == 0) {
        op->last_modified_ms = sh_s3_parse_http_date(val);
    } else if (nlen == 4 && strncasecmp(buf, "etag", 4) == 0) {
        snprintf(op->etag, sizeof(op->etag), "%.127s", val);
    }
    return len;
}

/* Decide, at the first body byte, where a response body goes: a get's
 * successful payload into a block sized from the headers, anything else
 * (XML documents, error bodies) into op->resp under a size cap. */
static void sh_s3_body_decide(sh_s3_op_t *op)
{
    op->body_decided = true;
    curl_easy_getinfo(op->easy, CURLINFO_RESPONSE_CODE, &op->status);
    bool ok = op->status >= 200 && op->status < 300;
    if (op->step != SH_S3_GET || !ok) {
        op->resp_max = ok ? SH_S3_XML_BODY_MAX : SH_S3_ERR_BODY_MAX;
        return;
    }
    op->skip = 0;
    if (!op->have_length)
        return; /* chunked: collected in resp, copied into a block at the end */
    uint64_t keep = op->content_length;
    if (op->status == 200 && (op->off > 0 || op->len != SH_OBJSTORE_TO_END)) {
        /* the server ignored our Range and sent the whole object */
        if (op->off >= op->content_length && op->content_length > 0) {
            op->range_unsatisfiable = true;
            return;
        }
        op->skip = op->off;
        keep = op->content_length - op->off;
        if (op->len < keep)
            keep = op->len;
    } else if (op->status == 206 && op->len != SH_OBJSTORE_TO_END && keep > op->len) {
        op->body_too_big = true; /* more than we asked for: not S3 */
        return;
    }
    if (keep > SIZE_MAX / 2 || !(op->block = sh_block_new((size_t)keep)))
        op->local_oom = true;
}

static size_t sh_s3_write_cb(char *buf, size_t size, size_t n, void *userp)
{
    sh_s3_op_t *op = userp;
    size_t len = size * n;
    if (!op->body_decided)
        sh_s3_body_decide(op);
    if (op->range_unsatisfiable || op->body_too_big || op->local_oom)
        return 0; /* abort the transfer; the completion explains why */
    if (op->step == SH_S3_GET && op->status >= 200 && op->status < 300 && op->have_length) {
        size_t at = 0;
        if (op->skip > 0) {
            size_t d = op->skip < len ? (size_t)op->skip : len;
            op->skip -= d;
            at = d;
        }
        size_t room = op->block->size - op->block_got;
        size_t take = len - at < room ? len - at : room;
        memcpy(op->block->data + op->block_got, buf + at, take);
        op->block_got += take;
        if (take < len - at && op->status == 206) {
            op->body_too_big = true; /* more than Content-Length said */
            return 0;
        }
        return len; /* a 200 to a range: bytes past the range are dropped */
    }
    bool get_ok = op->step == SH_S3_GET && op->status >= 200 && op->status < 300;
    size_t cap = op->resp_max ? op->resp_max : SH_S3_XML_BODY_MAX;
    if (get_ok) {
        /* a chunked get (no Content-Length; S3 itself never does this):
         * bounded by what we asked for */
        cap = SH_S3_CHUNKED_GET_MAX;
        if (op->len != SH_OBJSTORE_TO_END && op->off + op->len >= op->off &&
            op->off + op->len < cap)
            cap = (size_t)(op->off + op->len);
    }
    if (op->resp.len + len > cap) {
        size_t room = cap > op->resp.len ? cap - op->resp.len : 0;
        sh_s3_buf_add(&op->resp, buf, room);
        op->resp_truncated = true;
        if (get_ok) {
            if (op->status == 200 && op->len != SH_OBJSTORE_TO_END)
                return len; /* the rest is past the range we want */
            op->body_too_big = true;
            return 0;
        }
        return len; /* error bodies: keep the start, drop the rest */
    }
    sh_s3_buf_add(&op->resp, buf, len);
    if (op->resp.oom) {
        op->local_oom = true;
        return 0;
    }
    return len;
}

/* Position the read cursor at byte `pos` of the current body. */
static void sh_s3_read_seek_to(sh_s3_op_t *op, uint64_t pos)
{
    op->rd_pos = pos;
    uint64_t abs = op->rd_start + pos, at = 0;
    op->rd_iov = 0;
    op->rd_iov_off = 0;
    while (op->rd_iov < op->iovcnt && at + op->iov[op->rd_iov].iov_len <= abs) {
        at += op->iov[op->rd_iov].iov_len;
        op->rd_iov++;
    }
    op->rd_iov_off = abs - at;
}

/* Feed curl the payload straight from the caller's iovecs: the only copy
 * is the one into curl's send buffer. */
static size_t sh_s3_read_cb(char *buf, size_t size, size_t n, void *userp)
{
    sh_s3_op_t *op = userp;
    size_t want = size * n, done = 0;
    while (done < want && op->rd_pos < op->rd_len && op->rd_iov < op->iovcnt) {
        const struct iovec *v = &op->iov[op->rd_iov];
        uint64_t avail = v->iov_len - op->rd_iov_off;
        uint64_t left = op->rd_len - op->rd_pos;
        size_t take = want - done;
        if (take > avail)
            take = (size_t)avail;
        if (take > left)
            take = (size_t)left;
        if (take > 0) /* an empty iovec may have a NULL base */
            memcpy(buf + done, (const uint8_t *)v->iov_base + op->rd_iov_off, take);
        done += take;
        op->rd_pos += take;
        op->rd_iov_off += take;
        if (op->rd_iov_off == v->iov_len) {
            op->rd_iov++;
            op->rd_iov_off = 0;
        }
    }
    return done;
}

static int sh_s3_seek_cb(void *userp, curl_off_t offset, int origin)
{
    sh_s3_op_t *op = userp;
    if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > op->rd_len)
        return CURL_SEEKFUNC_CANTSEEK;
    sh_s3_read_seek_to(op, (uint64_t)offset);
    return CURL_SEEKFUNC_OK;
}

/* ------------------------------------------------------------ requests */

static void sh_s3_req_reset(sh_s3_op_t *op)
{
    if (op->easy) {
        if (op->where == SH_S3_ACTIVE)
            curl_multi_remove_handle(op->st->multi, op->easy);
        curl_easy_cleanup(op->easy);
        op->easy = NULL;
    }
    curl_slist_free_all(op->hdrs);
    op->hdrs = NULL;
    sh_s3_buf_reset(&op->body);
    sh_s3_buf_reset(&op->resp);
    sh_block_unref(op->block);
    op->block = NULL;
    op->block_got = 0;
    op->skip = 0;
    op->resp_max = 0;
    op->resp_truncated = op->body_decided = op->range_unsatisfiable = false;
    op->body_too_big = op->local_oom = false;
    op->status = 0;
    op->have_length = op->have_range = false;
    op->content_length = op->range_total = 0;
    op->last_modified_ms = 0;
    op->etag[0] = '\0';
    op->errbuf[0] = '\0';
}

static bool sh_s3_add_header(sh_s3_op_t *op, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static bool sh_s3_add_header(sh_s3_op_t *op, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line))
        return false;
    struct curl_slist *l = curl_slist_append(op->hdrs, line);
    if (!l)
        return false;
    op->hdrs = l;
    return true;
}

/* Set up the curl handle for the op's current step. SH_OK or SH_E_NOMEM
 * (or SH_E_INVAL for what cannot be expressed). */
static sh_err_t sh_s3_req_build(sh_s3_op_t *op)
{
    sh_objstore_s3_t *st = op->st;
    sh_err_t err = SH_E_NOMEM;
    sh_s3_param_t params[5];
    size_t np = 0;
    const char *method = "GET";
    const char *payload_hash = SH_S3_EMPTY_SHA256;
    char body_hash[65], md5[25], range[80], num[32], maxk[32];
    bool bucket_level = false, has_body = false, post = false;
    uint64_t body_len = 0;
    range[0] = md5[0] = '\0';

    sh_s3_req_reset(op);
    switch (op->step) {
    case SH_S3_PUT:
        method = "PUT";
        payload_hash = op->hashes[0];
        op->rd_start = 0;
        op->rd_len = op->total;
        has_body = true;
        break;
    case SH_S3_MP_CREATE:
        method = "POST";
        post = true;
        params[np++] = (sh_s3_param_t){"uploads", NULL};
        break;
    case SH_S3_MP_PART:
        method = "PUT";
        payload_hash = op->hashes[op->part];
        op->rd_start = (uint64_t)op->part * st->part_size;
        op->rd_len = op->total - op->rd_start < st->part_size ? op->total - op->rd_start
                                                               : st->part_size;
        has_body = true;
        snprintf(num, sizeof(num), "%d", op->part + 1);
        params[np++] = (sh_s3_param_t){"partNumber", num};
        params[np++] = (sh_s3_param_t){"uploadId", op->upload_id};
        break;
    case SH_S3_MP_COMPLETE:
        method = "POST";
        post = true;
        params[np++] = (sh_s3_param_t){"uploadId", op->upload_id};
        sh_s3_buf_adds(&op->body, "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
        for (int i = 0; i < op->nparts; i++) {
            sh_s3_buf_addf(&op->body, "<Part><PartNumber>%d</PartNumber><ETag>", i + 1);
            sh_s3_xml_escape(&op->body, op->etags[i] ? op->etags[i] : "");
            sh_s3_buf_adds(&op->body, "</ETag></Part>");
        }
        sh_s3_buf_adds(&op->body, "</CompleteMultipartUpload>");
        break;
    case SH_S3_MP_ABORT:
        method = "DELETE";
        params[np++] = (sh_s3_param_t){"uploadId", op->upload_id};
        break;
    case SH_S3_GET:
        if (op->off > 0 || op->len != SH_OBJSTORE_TO_END) {
            /* an end past any possible object is the same as no end */
            if (op->len == SH_OBJSTORE_TO_END || op->off + op->len < op->off ||
                op->off + op->len - 1 > (uint64_t)INT64_MAX)
                snprintf(range, sizeof(range), "bytes=%" PRIu64 "-", op->off);
            else
                snprintf(range, sizeof(range), "bytes=%" PRIu64 "-%" PRIu64, op->off,
                         op->off + op->len - 1);
        }
        break;
    case SH_S3_HEAD:
        method = "HEAD";
        break;
    case SH_S3_DELETE:
        method = "DELETE";
        break;
    case SH_S3_DELETE_BATCH:
        method = "POST";
        post = true;
        bucket_level = true;
        params[np++] = (sh_s3_param_t){"delete", NULL};
        /* Quiet: S3 then lists only the keys it failed on */
        sh_s3_buf_adds(&op->body, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
                                  "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                                  "<Quiet>true</Quiet>");
        for (size_t i = op->batch_start; i < op->batch_start + op->batch_n; i++) {
            sh_s3_buf_adds(&op->body, "<Object><Key>");
            sh_s3_buf_adds(&op->body, st->prefix);
            sh_s3_xml_escape(&op->body, op->keys[i]);
            sh_s3_buf_adds(&op->body, "</Key></Object>");
        }
        sh_s3_buf_adds(&op->body, "</Delete>");
        break;
    case SH_S3_LIST_PAGE: {
        bucket_level = true;
        params[np++] = (sh_s3_param_t){"list-type", "2"};
        snprintf(maxk, sizeof(maxk), "%zu", op->max_keys);
        params[np++] = (sh_s3_param_t){"max-keys", maxk};
        params[np++] = (sh_s3_param_t){"prefix", op->okey};
        if (op->token)
            params[np++] = (sh_s3_param_t){"continuation-token", op->token};
        break;
    }
    case SH_S3_HASH:
        return SH_E_INVAL;
    }
    if (op->body.oom)
        return SH_E_NOMEM;
    if (post) {
        body_len = op->body.len;
        if (sh_s3_sha256_hex(sh_s3_buf_str(&op->body), op->body.len, body_hash) != SH_OK)
            return SH_E_NOMEM;
        payload_hash = body_hash;
        /* DeleteObjects insists on an integrity header for its body */
        if (op->step == SH_S3_DELETE_BATCH &&
            sh_s3_md5_base64(sh_s3_buf_str(&op->body), op->body.len, md5) != SH_OK)
            md5[0] = '\0';
    }

    sh_s3_buf_t path, query, canon_query, url, auth;
    sh_s3_buf_init(&path);
    sh_s3_buf_init(&query);
    sh_s3_buf_init(&canon_query);
    sh_s3_buf_init(&url);
    sh_s3_buf_init(&auth);
    sh_s3_buf_adds(&path, "/");
    if (st->path_style) {
        sh_s3_buf_add_uri(&path, st->bucket, strlen(st->bucket), false);
        if (!bucket_level)
            sh_s3_buf_adds(&path, "/");
    }
    if (!bucket_level)
        sh_s3_buf_add_uri(&path, op->okey, strlen(op->okey), true);
    if (sh_s3_query_build(params, np, &canon_query) != SH_OK)
        goto fail;
    /* the URL spells valueless parameters bare ("?uploads"), as SDKs do;
     * the canonical form always has the '=' */
    {
        const char *cq = sh_s3_buf_str(&canon_query);
        const char *p = cq;
        while (*p) {
            const char *amp = strchr(p, '&');
            size_t l = amp ? (size_t)(amp - p) : strlen(p);
            if (query.len)
                sh_s3_buf_add(&query, "&", 1);
            if (l > 0 && p[l - 1] == '=')
                sh_s3_buf_add(&query, p, l - 1);
            else
                sh_s3_buf_add(&query, p, l);
            p += l;
            if (*p == '&')
                p++;
        }
    }
    sh_s3_buf_addf(&url, "%s%s%s%s", st->url_base, sh_s3_buf_str(&path), query.len ? "?" : "",
                   sh_s3_buf_str(&query));
    if (path.oom || query.oom || url.oom || canon_query.oom)
        goto fail;

    char amz_date[17];
    sh_s3_amz_date(time(NULL), amz_date);
    sh_s3_header_t hs[8];
    size_t nh = 0;
    hs[nh++] = (sh_s3_header_t){"host", st->host_header};
    hs[nh++] = (sh_s3_header_t){"x-amz-content-sha256", payload_hash};
    hs[nh++] = (sh_s3_header_t){"x-amz-date", amz_date};
    if (st->session_token)
        hs[nh++] = (sh_s3_header_t){"x-amz-security-token", st->session_token};
    if (range[0])
        hs[nh++] = (sh_s3_header_t){"range", range};
    if (md5[0])
        hs[nh++] = (sh_s3_header_t){"content-md5", md5};
    if (st->access_key_id) {
        sh_s3_sign_input_t in = {
            .method = method,
            .canonical_uri = sh_s3_buf_str(&path),
            .canonical_query = sh_s3_buf_str(&canon_query),
            .headers = hs,
            .nheaders = nh,
            .payload_hash = payload_hash,
            .amz_date = amz_date,
            .region = st->region,
            .service = "s3",
            .access_key_id = st->access_key_id,
            .secret_access_key = st->secret_access_key,
        };
        if ((err = sh_s3_sign(&in, &auth, NULL, NULL)) != SH_OK)
            goto fail;
        err = SH_E_NOMEM;
    }

    /* headers curl sends: ours exactly as signed */
    if (!sh_s3_add_header(op, "Host: %s", st->host_header) ||
        !sh_s3_add_header(op, "x-amz-content-sha256: %s", payload_hash) ||
        !sh_s3_add_header(op, "x-amz-date: %s", amz_date) ||
        (st->session_token && !sh_s3_add_header(op, "x-amz-security-token: %s", st->session_token)) ||
        (range[0] && !sh_s3_add_header(op, "Range: %s", range)) ||
        (md5[0] && !sh_s3_add_header(op, "Content-MD5: %s", md5)) ||
        (post && !sh_s3_add_header(op, "Content-Type: application/xml")) ||
        (st->access_key_id && !sh_s3_add_header(op, "Authorization: %s", sh_s3_buf_str(&auth))))
        goto fail;

    CURL *e = curl_easy_init();
    if (!e)
        goto fail;
    op->easy = e;
    curl_easy_setopt(e, CURLOPT_URL, sh_s3_buf_str(&url));
    curl_easy_setopt(e, CURLOPT_PRIVATE, op);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, op->hdrs);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, op->errbuf);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)st->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)st->request_timeout_ms);
    /* a hung server that trickles bytes must not hold a slot for the
     * whole request timeout */
    long stall_s = (long)(st->request_timeout_ms / 1000);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, stall_s < 1 ? 1L : stall_s > 30 ? 30L : stall_s);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, sh_s3_header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, op);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sh_s3_write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, op);
    if (has_body) {
        sh_s3_read_seek_to(op, 0);
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)op->rd_len);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, sh_s3_read_cb);
        curl_easy_setopt(e, CURLOPT_READDATA, op);
        curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, sh_s3_seek_cb);
        curl_easy_setopt(e, CURLOPT_SEEKDATA, op);
    } else if (post) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, sh_s3_buf_str(&op->body));
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "DELETE") == 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "DELETE");
    }
    err = SH_OK;
fail:
    if (auth.p)
        memset(auth.p, 0, auth.cap);
    sh_s3_buf_fini(&path);
    sh_s3_buf_fini(&query);
    sh_s3_buf_fini(&canon_query);
    sh_s3_buf_fini(&url);
    sh_s3_buf_fini(&auth);
    if (err != SH_OK)
        sh_s3_req_reset(op);
    return err;
}

/* ------------------------------------------------------ op completion */

static void sh_s3_op_free(sh_s3_op_t *op)
{
    if (!op)
        return;
    sh_s3_req_reset(op);
    sh_s3_buf_fini(&op->body);
    sh_s3_buf_fini(&op->resp);
    free(op->key);
    free(op->okey);
    free(op->iov);
    free(op->hashes);
    free(op->upload_id);
    if (op->etags)
        for (int i = 0; i < op->nparts; i++)
            free(op->etags[i]);
    free(op->etags);
    if (op->keys)
        for (size_t i = 0; i < op->nkeys; i++)
            free(op->keys[i]);
    free(op->keys);
    free(op->errs);
    free(op->token);
    for (size_t i = 0; i < op->nentries; i++)
        free((char *)op->entries[i].key);
    free(op->entries);
    free(op->next_token);
    sh_block_unref(op->res.block);
    free(op);
}

static void sh_s3_op_finish(sh_s3_op_t *op, sh_err_t err, bool retriable)
{
    sh_objstore_s3_t *st = op->st;
    sh_objstore_result_t *res = &op->res;
    res->op = op->kind;
    res->err = err;
    res->retriable = err != SH_OK && retriable;
    res->key = op->key;
    if (op->detail[0] && err != SH_OK)
        res->detail = op->detail;
    if (op->kind == SH_OBJSTORE_DELETE_MANY) {
        if (err != SH_OK)
            for (size_t i = 0; i < op->nkeys; i++)
                if (op->errs[i] == SH_OK && i >= op->batch_start)
                    op->errs[i] = err; /* never attempted: report the failure */
        res->keys = (const char *const *)op->keys;
        res->key_errs = op->errs;
        res->nkeys = op->nkeys;
        for (size_t i = 0; i < op->nkeys && err == SH_OK; i++)
            if (op->errs[i] != SH_OK)
                res->err = op->errs[i];
    }
    if (res->err == SH_OK && op->kind == SH_OBJSTORE_LIST) {
        res->entries = op->entries;
        res->nentries = op->nentries;
        res->next_token = op->next_token;
    }
    if (res->err != SH_OK && res->block) {
        sh_block_unref(res->block);
        res->block = NULL;
    }
    sh_objstore_complete(&st->base, op->cb, op->arg, res);
    sh_s3_op_free(op);
}

static void sh_s3_queue(sh_s3_op_t *op)
{
    sh_s3_list_push(&op->st->queue[op->cls], op, SH_S3_QUEUED);
}

/* Move to the next step with a fresh attempt count. */
static void sh_s3_op_step(sh_s3_op_t *op, sh_s3_step_t step, int cls)
{
    op->step = step;
    op->cls = cls;
    op->attempt = 0;
    sh_s3_queue(op);
}

/* A multipart upload that cannot finish: abort it so its parts stop
 * costing storage, then report the original failure. */
static void sh_s3_op_fail(sh_s3_op_t *op, sh_err_t err, bool retriable)
{
    if (op->upload_id && op->step != SH_S3_MP_ABORT && !op->st->cancelling &&
        op->st->breaker.state == SH_S3_BREAKER_CLOSED) {
        op->saved_err = err;
        op->saved_retriable = retriable;
        sh_s3_op_step(op, SH_S3_MP_ABORT, SH_S3_WRITE);
        op->attempt = op->st->max_attempts - 1; /* best effort: one try */
        return;
    }
    if (op->step == SH_S3_MP_ABORT) {
        err = op->saved_err;
        retriable = op->saved_retriable;
    }
    sh_s3_op_finish(op, err, retriable);
}

/* What an S3 error answer means for us. */
typedef struct sh_s3_verdict {
    sh_err_t err;
    bool retriable;   /* worth another attempt */
    bool unhealthy;   /* counts against the endpoint (breaker) */
    bool setup;       /* wrong credentials, bucket or region: logged apart */
} sh_s3_verdict_t;

static sh_s3_verdict_t sh_s3_judge(long status, const char *code)
{
    sh_s3_verdict_t v = {SH_E_IO, false, false, false};
    code = code ? code : "";
    if (status >= 500 || status == 429 || strcmp(code, "SlowDown") == 0 ||
        strcmp(code, "InternalError") == 0 || strcmp(code, "ServiceUnavailable") == 0) {
        v.retriable = v.unhealthy = true;
        if (status == 501 || strcmp(code, "NotImplemented") == 0)
            v.retriable = v.unhealthy = false;
        return v;
    }
    /* S3 closes idle uploads with 400 RequestTimeout; 409 OperationAborted
     * is a conflicting operation in progress: both pass */
    if (strcmp(code, "RequestTimeout") == 0 || strcmp(code, "OperationAborted") == 0 ||
        status == 408 || status == 409) {
        v.retriable = true;
        return v;
    }
    if (status == 403 || strcmp(code, "InvalidAccessKeyId") == 0 ||
        strcmp(code, "SignatureDoesNotMatch") == 0 || strcmp(code, "NoSuchBucket") == 0 ||
        strcmp(code, "AuthorizationHeaderMalformed") == 0 ||
        strcmp(code, "PermanentRedirect") == 0 || strcmp(code, "ExpiredToken") == 0 ||
        strcmp(code, "InvalidToken") == 0 || status == 301 || status == 307)
        v.setup = true;
    if (status == 416 || strcmp(code, "InvalidRange") == 0)
        v.err = SH_E_INVAL;
    return v;
}

static const char *sh_s3_setup_hint(const char *code, long status)
{
    if (strcmp(code, "NoSuchBucket") == 0)
        return "the bucket does not exist at this endpoint";
    if (strcmp(code, "InvalidAccessKeyId") == 0)
        return "check streamhouse.s3.access.key.id (or AWS_ACCESS_KEY_ID)";
    if (strcmp(code, "SignatureDoesNotMatch") == 0)
        return "check streamhouse.s3.secret.access.key (or AWS_SECRET_ACCESS_KEY)";
    if (strcmp(code, "RequestTimeTooSkewed") == 0)
        return "this machine's clock is more than 15 minutes off";
    if (strcmp(code, "AuthorizationHeaderMalformed") == 0 ||
        strcmp(code, "PermanentRedirect") == 0 || status == 301 || status == 307)
        return "check streamhouse.s3.region and streamhouse.s3.endpoint";
    if (strcmp(code, "ExpiredToken") == 0 || strcmp(code, "InvalidToken") == 0)
        return "the session token (AWS_SESSION_TOKEN) expired or is invalid";
    if (status == 403)
        return "the credentials lack permission: see docs/operations-s3.md for the policy";
    return "check the S3 settings";
}

/* Parse an error document into code/message/region (all optional). */
static void sh_s3_error_doc(sh_s3_op_t *op, char *code, size_t codelen, char *msg, size_t msglen)
{
    code[0] = msg[0] = '\0';
    if (op->resp.len == 0)
        return;
    sh_s3_xml_t x;
    if (sh_s3_xml_parse(op->resp.p, op->resp.len, &x) != SH_OK)
        return;
    int root = sh_s3_xml_child(&x, -1, "Error");
    if (root >= 0) {
        const char *c = sh_s3_xml_child_text(&x, root, "Code");
        const char *m = sh_s3_xml_child_text(&x, root, "Message");
        const char *r = sh_s3_xml_child_text(&x, root, "Region");
        const char *ep = sh_s3_xml_child_text(&x, root, "Endpoint");
        snprintf(code, codelen, "%s", c ? c : "");
        if (r)
            snprintf(msg, msglen, "%.300s (the bucket's region is \"%.40s\")", m ? m : "", r);
        else if (ep)
            snprintf(msg, msglen, "%.300s (use endpoint \"%.100s\")", m ? m : "", ep);
        else
            snprintf(msg, msglen, "%.400s", m ? m : "");
    }
    sh_s3_xml_fini(&x);
}

/* Handle a failed attempt: retry it later, or fail the op. */
static void sh_s3_attempt_failed(sh_s3_op_t *op, sh_s3_verdict_t v, const char *why)
{
    sh_objstore_s3_t *st = op->st;
    char name[400];
    sh_s3_name(op, name, sizeof(name));
    snprintf(op->detail, sizeof(op->detail), "%s", why);
    if (v.retriable && op->attempt < st->max_attempts && !st->closing) {
        int64_t delay = sh_s3_backoff_ms(op->attempt, st->backoff_base_ms, st->backoff_max_ms,
                                         sh_s3_rand_next(&st->rnd));
        sh_log(SH_LOG_DEBUG, "objstore", "could not %s \"%s\" (attempt %d of %d): %s; retrying in %" PRId64 " ms",
               sh_s3_step_name[op->step], name, op->attempt, st->max_attempts, why, delay);
        op->ready_ms = sh_clock_mono_ms() + delay;
        sh_s3_list_push(&st->delayed, op, SH_S3_DELAYED);
        st->stats.retries++;
        return;
    }
    if (v.setup) {
        int64_t now = sh_clock_mono_ms();
        if (now >= st->auth_log_next && !st->quiet) {
            sh_log(SH_LOG_ERROR, "objstore",
                   "S3 refused access to bucket \"%s\" at endpoint \"%s\" (access key id \"%s\"): %s",
                   st->bucket, st->endpoint, st->access_key_id ? st->access_key_id : "(none)",
                   why);
            st->auth_log_next = now + SH_S3_AUTH_LOG_EVERY_MS;
        }
    } else if (!(v.err == SH_E_INVAL && op->step == SH_S3_GET)) {
        if (v.retriable)
            sh_s3_log_failure(st, "could not %s \"%s\" after %d attempts: %s",
                              sh_s3_step_name[op->step], name, op->attempt, why);
        else
            sh_s3_log_failure(st, "could not %s \"%s\": %s", sh_s3_step_name[op->step], name, why);
    }
    sh_s3_op_fail(op, v.err, v.retriable);
}

/* ------------------------------------------------ per-step success */

static void sh_s3_done_get(sh_s3_op_t *op)
{
    sh_objstore_result_t *res = &op->res;
    uint64_t got_len;
    if (!op->block) {
        /* no Content-Length (chunked) or an empty body */
        const uint8_t *src = (const uint8_t *)sh_s3_buf_str(&op->resp);
        uint64_t n = op->resp.len;
        uint64_t skip = 0;
        if (op->status == 200 && (op->off > 0 || op->len != SH_OBJSTORE_TO_END)) {
            if (op->off >= n && n > 0) {
                sh_s3_op_finish(op, SH_E_INVAL, false);
                return;
            }
            skip = op->off < n ? op->off : n;
            n -= skip;
            if (op->len < n)
                n = op->len;
        }
        if (!(op->block = sh_block_new((size_t)n))) {
            sh_s3_op_finish(op, SH_E_NOMEM, true);
            return;
        }
        if (n)
            memcpy(op->block->data, src + skip, (size_t)n);
        op->block_got = (size_t)n;
        if (!op->have_length) {
            op->content_length = op->resp.len;
            op->have_length = true;
        }
    }
    got_len = op->block_got;
    if (got_len != op->block->size) {
        snprintf(op->detail, sizeof(op->detail), "response body ended early (%zu of %zu bytes)",
                 op->block_got, op->block->size);
        sh_s3_verdict_t v = {SH_E_IO, true, true, false};
        sh_s3_attempt_failed(op, v, op->detail);
        return;
    }
    res->block = op->block;
    op->block = NULL;
    res->offset = op->off;
    if (op->status == 206 && op->have_range)
        res->object_size = op->range_total;
    else
        res->object_size = op->content_length;
    res->mtime_ms = op->last_modified_ms;
    sh_s3_op_finish(op, SH_OK, false);
}

static void sh_s3_done_list(sh_s3_op_t *op)
{
    sh_objstore_s3_t *st = op->st;
    sh_s3_xml_t x;
    sh_s3_verdict_t bad = {SH_E_IO, true, false, false};
    if (op->resp_truncated || sh_s3_xml_parse(sh_s3_buf_str(&op->resp), op->resp.len, &x) != SH_OK) {
        sh_s3_attempt_failed(op, bad, "unreadable ListObjectsV2 response");
        return;
    }
    int root = sh_s3_xml_child(&x, -1, "ListBucketResult");
    if (root < 0) {
        sh_s3_xml_fini(&x);
        sh_s3_attempt_failed(op, bad, "unexpected ListObjectsV2 response");
        return;
    }
    size_t n = 0;
    for (int c = sh_s3_xml_child(&x, root, "Contents"); c >= 0; c = sh_s3_xml_next(&x, c, "Contents"))
        n++;
    op->entries = calloc(n ? n : 1, sizeof(*op->entries));
    if (!op->entries)
        goto nomem;
    size_t plen = strlen(st->prefix);
    for (int c = sh_s3_xml_child(&x, root, "Contents"); c >= 0; c = sh_s3_xml_next(&x, c, "Contents")) {
        const char *k = sh_s3_xml_child_text(&x, c, "Key");
        const char *sz = sh_s3_xml_child_text(&x, c, "Size");
        const char *lm = sh_s3_xml_child_text(&x, c, "LastModified");
        if (!k || strncmp(k, st->prefix, plen) != 0)
            continue; /* not ours: cannot happen with a prefix query */
        uint64_t size = 0;
        if (sz)
            sh_s3_parse_u64(sz, &size);
        char *dup = strdup(k + plen);
        if (!dup)
            goto nomem;
        op->entries[op->nentries++] =
            (sh_objstore_entry_t){dup, size, lm ? sh_s3_parse_iso_date(lm) : 0};
    }
    const char *trunc = sh_s3_xml_child_text(&x, root, "IsTruncated");
    const char *tok = sh_s3_xml_child_text(&x, root, "NextContinuationToken");
    if (trunc && strcmp(trunc, "true") == 0 && tok && *tok) {
        if (!(op->next_token = strdup(tok)))
            goto nomem;
    }
    sh_s3_xml_fini(&x);
    sh_s3_op_finish(op, SH_OK, false);
    return;
nomem:
    sh_s3_xml_fini(&x);
    sh_s3_op_finish(op, SH_E_NOMEM, true);
}

static void sh_s3_done_delete_batch(sh_s3_op_t *op)
{
    sh_objstore_s3_t *st = op->st;
    sh_s3_xml_t x;
    sh_s3_verdict_t bad = {SH_E_IO, true, false, false};
    if (op->resp_truncated || sh_s3_xml_parse(sh_s3_buf_str(&op->resp), op->resp.len, &x) != SH_OK) {
        sh_s3_attempt_failed(op, bad, "unreadable DeleteObjects response");
        return;
    }
    int root = sh_s3_xml_child(&x, -1, "DeleteResult");
    if (root < 0) {
        sh_s3_xml_fini(&x);
        sh_s3_attempt_failed(op, bad, "unexpected DeleteObjects response");
        return;
    }
    size_t plen = strlen(st->prefix);
    /* only failures matter: every key not listed as an error is deleted */
    for (int e = sh_s3_xml_child(&x, root, "Error"); e >= 0; e = sh_s3_xml_next(&x, e, "Error")) {
        const char *k = sh_s3_xml_child_text(&x, e, "Key");
        const char *code = sh_s3_xml_child_text(&x, e, "Code");
        const char *msg = sh_s3_xml_child_text(&x, e, "Message");
        if (!k || strncmp(k, st->prefix, plen) != 0)
            continue;
        sh_s3_verdict_t v = sh_s3_judge(code && strcmp(code, "AccessDenied") == 0 ? 403 : 500, code);
        for (size_t i = op->batch_start; i < op->batch_start + op->batch_n; i++) {
            if (strcmp(op->keys[i], k + plen) == 0 && op->errs[i] == SH_OK) {
                op->errs[i] = v.err;
                char name[400];
                snprintf(name, sizeof(name), "s3://%s/%.300s", st->bucket, k);
                sh_s3_log_failure(st, "could not delete \"%s\": %s: %s", name,
                                  code ? code : "?", msg ? msg : "");
                snprintf(op->detail, sizeof(op->detail), "%s: %s", code ? code : "?",
                         msg ? msg : "");
                if (v.retriable)
                    op->saved_retriable = true;
            }
        }
    }
    sh_s3_xml_fini(&x);
    op->batch_start += op->batch_n;
    if (op->batch_start < op->nkeys) {
        op->batch_n = op->nkeys - op->batch_start;
        if (op->batch_n > SH_S3_DELETE_MAX_KEYS)
            op->batch_n = SH_S3_DELETE_MAX_KEYS;
        sh_s3_op_step(op, SH_S3_DELETE_BATCH, SH_S3_WRITE);
        return;
    }
    sh_err_t first = SH_OK;
    for (size_t i = 0; i < op->nkeys && first == SH_OK; i++)
        first = op->errs[i];
    sh_s3_op_finish(op, first, op->saved_retriable);
}

/* A 2xx answer to the op's current step. */
static void sh_s3_step_ok(sh_s3_op_t *op)
{
    sh_objstore_s3_t *st = op->st;
    switch (op->step) {
    case SH_S3_PUT:
    case SH_S3_DELETE:
        sh_s3_op_finish(op, SH_OK, false);
        return;
    case SH_S3_HEAD:
        op->res.object_size = op->have_length ? op->content_length : 0;
        op->res.mtime_ms = op->last_modified_ms;
        sh_s3_op_finish(op, SH_OK, false);
        return;
    case SH_S3_GET:
        sh_s3_done_get(op);
        return;
    case SH_S3_LIST_PAGE:
        sh_s3_done_list(op);
        return;
    case SH_S3_DELETE_BATCH:
        sh_s3_done_delete_batch(op);
        return;
    case SH_S3_MP_CREATE: {
        sh_s3_xml_t x;
        const char *id = NULL;
        if (sh_s3_xml_parse(sh_s3_buf_str(&op->resp), op->resp.len, &x) == SH_OK)
            id = sh_s3_xml_child_text(&x, sh_s3_xml_child(&x, -1, "InitiateMultipartUploadResult"),
                                      "UploadId");
        if (id && *id)
            op->upload_id = strdup(id);
        sh_s3_xml_fini(&x);
        if (!op->upload_id) {
            sh_s3_verdict_t v = {SH_E_IO, true, false, false};
            sh_s3_attempt_failed(op, v, "CreateMultipartUpload answered without an UploadId");
            return;
        }
        op->part = 0;
        sh_s3_op_step(op, SH_S3_MP_PART, SH_S3_WRITE);
        return;
    }
    case SH_S3_MP_PART:
        if (!op->etag[0] || !(op->etags[op->part] = strdup(op->etag))) {
            sh_s3_verdict_t v = {SH_E_IO, true, false, false};
            sh_s3_attempt_failed(op, v, op->etag[0] ? "out of memory" : "UploadPart answered without an ETag");
            return;
        }
        if (++op->part < op->nparts)
            sh_s3_op_step(op, SH_S3_MP_PART, SH_S3_WRITE);
        else
            sh_s3_op_step(op, SH_S3_MP_COMPLETE, SH_S3_WRITE);
        return;
    case SH_S3_MP_COMPLETE: {
        /* S3 may answer 200 and still report an error in the body */
        char code[64], msg[512];
        sh_s3_error_doc(op, code, sizeof(code), msg, sizeof(msg));
        if (code[0]) {
            char why[700];
            snprintf(why, sizeof(why), "%s: %s", code, msg);
            sh_s3_attempt_failed(op, sh_s3_judge(500, code), why);
            return;
        }
        free(op->upload_id); /* nothing to abort any more */
        op->upload_id = NULL;
        sh_s3_op_finish(op, SH_OK, false);
        return;
    }
    case SH_S3_MP_ABORT:
        sh_s3_op_fail(op, op->saved_err, op->saved_retriable);
        return;
    case SH_S3_HASH:
        break;
    }
    (void)st;
}

/* A request ended: decide what it means. */
static void sh_s3_req_done(sh_s3_op_t *op, CURLcode rc)
{
    sh_objstore_s3_t *st = op->st;
    int64_t now = sh_clock_mono_ms();
    sh_s3_list_remove(&st->active, op);
    curl_multi_remove_handle(st->multi, op->easy);
    curl_easy_getinfo(op->easy, CURLINFO_RESPONSE_CODE, &op->status);
    long status = op->status;
    bool let = op->let_through;
    op->let_through = false;

    /* s3rver (and some gateways) answer a range on an empty object with a
     * 206 that promises one byte and sends none: that object is empty */
    if (rc == CURLE_PARTIAL_FILE && op->step == SH_S3_GET && status == 206 && op->have_range &&
        op->range_total == 0) {
        sh_block_unref(op->block);
        op->block = NULL;
        op->block_got = 0;
        op->have_length = true;
        op->content_length = 0;
        op->status = status = 200;
        op->have_range = false;
        sh_s3_buf_reset(&op->resp);
        rc = CURLE_OK;
    }

    if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && (op->range_unsatisfiable ||
                                                        op->body_too_big || op->local_oom))) {
        /* transport: the endpoint's health is in question */
        char why[400];
        snprintf(why, sizeof(why), "%s", op->errbuf[0] ? op->errbuf : curl_easy_strerror(rc));
        bool config = rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT ||
                      rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
                      rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_NOT_BUILT_IN;
        if (!config)
            snprintf(st->last_failure, sizeof(st->last_failure), "%.290s", why);
        if (let && config)
            sh_s3_breaker_cancel(&st->breaker);
        else if (let && sh_s3_breaker_failure(&st->breaker, now)) {
            st->stats.breaker_opens++;
            sh_log(st->quiet ? SH_LOG_DEBUG : SH_LOG_WARN, "objstore",
                   "S3 endpoint \"%s\" is failing (%s): pausing requests for %" PRId64 " ms",
                   st->endpoint, why, st->breaker.cur_cooldown_ms);
        }
        sh_s3_verdict_t v = {SH_E_IO, !config, true, config};
        sh_s3_attempt_failed(op, v, why);
        return;
    }
    if (rc == CURLE_WRITE_ERROR) {
        if (let)
            sh_s3_breaker_cancel(&st->breaker);
        if (op->range_unsatisfiable) {
            sh_s3_op_fail(op, SH_E_INVAL, false);
        } else if (op->local_oom) {
            snprintf(op->detail, sizeof(op->detail), "out of memory");
            sh_s3_op_fail(op, SH_E_NOMEM, true);
        } else {
            sh_s3_verdict_t v = {SH_E_IO, true, false, false};
            sh_s3_attempt_failed(op, v, "response body larger than requested");
        }
        return;
    }

    char code[64] = "", msg[512] = "";
    if (status < 200 || status >= 300)
        sh_s3_error_doc(op, code, sizeof(code), msg, sizeof(msg));
    sh_s3_verdict_t v = sh_s3_judge(status, code);
    if (v.unhealthy)
        snprintf(st->last_failure, sizeof(st->last_failure), "HTTP %ld %s", status, code);
    if (let) {
        bool changed = (status >= 200 && status < 300) || !v.unhealthy
                           ? sh_s3_breaker_success(&st->breaker)
                           : sh_s3_breaker_failure(&st->breaker, now);
        if (changed && st->breaker.state == SH_S3_BREAKER_CLOSED)
            sh_log(st->quiet ? SH_LOG_DEBUG : SH_LOG_INFO, "objstore",
                   "S3 endpoint \"%s\" answers again: resuming requests",
                   st->endpoint);
        else if (changed && ++st->stats.breaker_opens)
            sh_log(st->quiet ? SH_LOG_DEBUG : SH_LOG_WARN, "objstore",
                   "S3 endpoint \"%s\" is failing (HTTP %ld %s): pausing requests for %" PRId64 " ms",
                   st->endpoint, status, code, st->breaker.cur_cooldown_ms);
    }
    if (status >= 200 && status < 300) {
        sh_s3_step_ok(op);
        return;
    }
    if (status == 404 && (op->step == SH_S3_GET || op->step == SH_S3_HEAD) &&
        strcmp(code, "NoSuchBucket") != 0) {
        sh_s3_op_finish(op, SH_E_NOTFOUND, false);
        return;
    }
    if (status == 404 && op->step == SH_S3_MP_ABORT) {
        sh_s3_op_fail(op, op->saved_err, op->saved_retriable);
        return;
    }
    if (status == 304 || status == 412) {
        v.retriable = true; /* never asked for; a proxy's doing */
    }
    char why[800];
    if (code[0] && v.setup)
        snprintf(why, sizeof(why), "HTTP %ld %s: %s; %s", status, code, msg,
                 sh_s3_setup_hint(code, status));
    else if (code[0])
        snprintf(why, sizeof(why), "HTTP %ld %s: %s", status, code, msg);
    else if (v.setup)
        snprintf(why, sizeof(why), "HTTP %ld; %s", status, sh_s3_setup_hint(code, status));
    else
        snprintf(why, sizeof(why), "HTTP %ld", status);
    sh_s3_attempt_failed(op, v, why);
}

/* ------------------------------------------------------------- dispatch */

static void sh_s3_dispatch_one(sh_objstore_s3_t *st, sh_s3_op_t *op, int64_t now)
{
    if (!sh_s3_breaker_allow(&st->breaker, now)) {
        st->stats.failed_fast++;
        char name[400];
        sh_s3_name(op, name, sizeof(name));
        snprintf(op->detail, sizeof(op->detail),
                 "S3 endpoint \"%s\" is failing (%s); requests paused", st->endpoint,
                 st->last_failure[0] ? st->last_failure : "too many failed requests");
        sh_s3_log_failure(st, "could not %s \"%s\": %s", sh_s3_step_name[op->step], name,
                          op->detail);
        sh_s3_op_fail(op, SH_E_IO, true);
        return;
    }
    op->attempt++;
    sh_err_t err = sh_s3_req_build(op);
    if (err == SH_OK && curl_multi_add_handle(st->multi, op->easy) != CURLM_OK)
        err = SH_E_NOMEM;
    if (err != SH_OK) {
        sh_s3_breaker_cancel(&st->breaker);
        snprintf(op->detail, sizeof(op->detail), "could not set up the request: %s",
                 err == SH_E_NOMEM ? "out of memory" : "invalid request");
        sh_s3_op_fail(op, err, err == SH_E_NOMEM);
        return;
    }
    op->let_through = true;
    sh_s3_list_push(&st->active, op, SH_S3_ACTIVE);
    st->stats.requests++;
    if (st->active.n > st->stats.max_active)
        st->stats.max_active = st->active.n;
}

static void sh_s3_dispatch(sh_objstore_s3_t *st)
{
    int64_t now = sh_clock_mono_ms();
    /* delayed retries whose time has come go back to their queue */
    for (sh_s3_op_t *op = st->delayed.head, *next; op; op = next) {
        next = op->next;
        if (op->ready_ms <= now || st->closing) {
            sh_s3_list_remove(&st->delayed, op);
            if (op->trivial)
                sh_s3_op_finish(op, SH_OK, false);
            else
                sh_s3_queue(op);
        }
    }
    bool progress = true;
    while (progress && (int)st->active.n < st->max_inflight) {
        progress = false;
        for (int i = 0; i < SH_S3_NCLASS && (int)st->active.n < st->max_inflight; i++) {
            int c = (st->rr + i) % SH_S3_NCLASS;
            sh_s3_op_t *op = st->queue[c].head;
            if (!op)
                continue;
            int64_t wait = sh_s3_bucket_take(&st->rate[c], now);
            if (wait > 0 && !st->rate_wait[c])
                st->stats.rate_waits++;
            st->rate_wait[c] = wait > 0 ? now + wait : 0;
            if (wait > 0)
                continue;
            sh_s3_list_remove(&st->queue[c], op);
            sh_s3_dispatch_one(st, op, now);
            progress = true;
        }
        st->rr = (st->rr + 1) % SH_S3_NCLASS;
    }
}

/* --------------------------------------------------------------- drive */

static void sh_s3_drive(sh_objstore_t *s)
{
    sh_objstore_s3_t *st = (sh_objstore_s3_t *)s;
    int running = 0;
    if (st->wq)
        sh_workq_drain(st->wq);
    struct epoll_event evs[64];
    int n;
    int rounds = 0;
    /* bounded so one busy store cannot starve the rest of the loop */
    while (rounds++ < 4 && (n = epoll_wait(st->epfd, evs, 64, 0)) > 0) {
        for (int i = 0; i < n; i++) {
            if (st->wq && evs[i].data.fd == sh_workq_fd(st->wq))
                continue;
            int flags = 0;
            if (evs[i].events & EPOLLIN)
                flags |= CURL_CSELECT_IN;
            if (evs[i].events & EPOLLOUT)
                flags |= CURL_CSELECT_OUT;
            if (evs[i].events & (EPOLLERR | EPOLLHUP))
                flags |= CURL_CSELECT_ERR;
            curl_multi_socket_action(st->multi, evs[i].data.fd, flags, &running);
        }
        if (n < 64)
            break;
    }
    if (st->curl_deadline >= 0 && sh_clock_mono_ms() >= st->curl_deadline) {
        st->curl_deadline = -1;
        curl_multi_socket_action(st->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(st->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        sh_s3_op_t *op = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&op);
        if (op)
            sh_s3_req_done(op, m->data.result);
    }
    if (st->wq)
        sh_workq_drain(st->wq);
    sh_s3_dispatch(st);
}

static int sh_s3_fd(const sh_objstore_t *s)
{
    return ((const sh_objstore_s3_t *)s)->epfd;
}

static int64_t sh_s3_next_deadline_ms(const sh_objstore_t *s)
{
    const sh_objstore_s3_t *st = (const sh_objstore_s3_t *)s;
    int64_t d = st->curl_deadline;
#define SH_S3_EARLIER(t) \
    do { \
        if ((t) >= 0 && (d < 0 || (t) < d)) \
            d = (t); \
    } while (0)
    for (const sh_s3_op_t *op = st->delayed.head; op; op = op->next)
        SH_S3_EARLIER(op->ready_ms);
    if ((int)st->active.n < st->max_inflight) {
        /* queued work waits for drive: now, or when its token is due */
        int64_t now = sh_clock_mono_ms();
        for (int c = 0; c < SH_S3_NCLASS; c++) {
            if (st->queue[c].n == 0)
                continue;
            int64_t t = st->rate_wait[c] > now ? st->rate_wait[c] : now;
            SH_S3_EARLIER(t);
        }
    }
#undef SH_S3_EARLIER
    return d;
}

/* ------------------------------------------------------------ hashing */

static void sh_s3_hash_work(sh_workq_job_t *j)
{
    sh_s3_op_t *op = (sh_s3_op_t *)j;
    uint64_t part = op->nparts > 1 ? op->st->part_size : op->total;
    for (int i = 0; i < op->nparts; i++) {
        uint64_t off = (uint64_t)i * part;
        uint64_t len = op->total - off < part ? op->total - off : part;
        sh_err_t err = sh_s3_sha256_hex_range(op->iov, op->iovcnt, off, len, op->hashes[i]);
        if (err != SH_OK) {
            op->hash_err = err;
            return;
        }
    }
    op->hash_err = SH_OK;
}

static void sh_s3_hash_done(sh_workq_job_t *j)
{
    sh_s3_op_t *op = (sh_s3_op_t *)j;
    sh_objstore_s3_t *st = op->st;
    st->hashing--;
    if (st->cancelling) {
        snprintf(op->detail, sizeof(op->detail), "object store closed");
        sh_s3_op_finish(op, SH_E_IO, true);
        return;
    }
    if (op->hash_err != SH_OK) {
        snprintf(op->detail, sizeof(op->detail), "could not hash the payload");
        sh_s3_op_finish(op, SH_E_NOMEM, true);
        return;
    }
    if (op->nparts > 1)
        sh_s3_op_step(op, SH_S3_MP_CREATE, SH_S3_WRITE);
    else
        sh_s3_op_step(op, SH_S3_PUT, SH_S3_WRITE);
}

/* ------------------------------------------------------------ op starts */

static sh_s3_op_t *sh_s3_op_new(sh_objstore_t *s, sh_objstore_op_t kind, const char *key,
                                sh_objstore_cb cb, void *arg)
{
    sh_objstore_s3_t *st = (sh_objstore_s3_t *)s;
    sh_s3_op_t *op = calloc(1, sizeof(*op));
    if (!op)
        return NULL;
    op->st = st;
    op->kind = kind;
    op->cb = cb;
    op->arg = arg;
    op->res.op = kind;
    sh_s3_buf_init(&op->body);
    sh_s3_buf_init(&op->resp);
    op->key = strdup(key ? key : "");
    size_t need = strlen(st->prefix) + (key ? strlen(key) : 0) + 1;
    op->okey = malloc(need);
    if (!op->key || !op->okey) {
        sh_s3_op_free(op);
        return NULL;
    }
    snprintf(op->okey, need, "%s%s", st->prefix, key ? key : "");
    return op;
}

static sh_err_t sh_s3_put_start(sh_objstore_t *s, const char *key, const struct iovec *iov,
                                int iovcnt, sh_objstore_cb cb, void *arg)
{
    sh_objstore_s3_t *st = (sh_objstore_s3_t *)s;
    uint64_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    int nparts = 1;
    if (total > st->multipart_threshold) {
        uint64_t np = (total + st->part_size - 1) / st->part_size;
        if (np > SH_S3_MAX_PARTS) {
            sh_log(SH_LOG_ERROR, "objstore",
                   "could not put \"s3://%s/%s%.300s\": %" PRIu64 " bytes need more than %d parts of %" PRIu64 " bytes",
                   st->bucket, st->prefix, key, total, SH_S3_MAX_PARTS, st->part_size);
            return SH_E_INVAL;
        }
        nparts = (int)np;
    }
    sh_s3_op_t *op = sh_s3_op_new(s, SH_OBJSTORE_PUT, key, cb, arg);
    if (!op)
        return SH_E_NOMEM;
    op->iov = malloc(((size_t)iovcnt + 1) * sizeof(*iov));
    op->hashes = calloc((size_t)nparts, sizeof(*op->hashes));
    op->etags = nparts > 1 ? calloc((size_t)nparts, sizeof(char *)) : NULL;
    if (!op->iov || !op->hashes || (nparts > 1 && !op->etags)) {
        sh_s3_op_free(op);
        return SH_E_NOMEM;
    }
    if (iovcnt > 0)
        memcpy(op->iov, iov, (size_t)iovcnt * sizeof(*iov));
    op->iovcnt = iovcnt;
    op->total = total;
    op->nparts = nparts;
    op->step = SH_S3_HASH;
    op->cls = SH_S3_WRITE;
    if (total < 64 * 1024) {
        /* small payloads: hashing costs less than the thread handoff */
        sh_s3_hash_work(&op->job);
        if (op->hash_err != SH_OK) {
            sh_s3_op_free(op);
            return SH_E_NOMEM;
        }
        sh_s3_op_step(op, nparts > 1 ? SH_S3_MP_CREATE : SH_S3_PUT, SH_S3_WRITE);
        return SH_OK;
    }
    op->job.work = sh_s3_hash_work;
    op->job.done = sh_s3_hash_done;
    st->hashing++;
    sh_err_t err = sh_workq_submit(st->wq, &op->job);
    if (err != SH_OK) {
        st->hashing--;
        sh_s3_op_free(op);
    }
    return err;
}

static sh_err_t sh_s3_get_start(sh_objstore_t *s, const char *key, uint64_t offset,
                                uint64_t length, sh_objstore_cb cb, void *arg)
{
    sh_s3_op_t *op = sh_s3_op_new(s, SH_OBJSTORE_GET, key, cb, arg);
    if (!op)
        return SH_E_NOMEM;
    op->off = offset;
    op->len = length;
    sh_s3_op_step(op, SH_S3_GET, SH_S3_READ);
    return SH_OK;
}

static sh_err_t sh_s3_head_start(sh_objstore_t *s, const char *key, sh_objstore_cb cb, void *arg)
{
    sh_s3_op_t *op = sh_s3_op_new(s, SH_OBJSTORE_HEAD, key, cb, arg);
    if (!op)
        return SH_E_NOMEM;
    sh_s3_op_step(op, SH_S3_HEAD, SH_S3_READ);
    return SH_OK;
}

static sh_err_t sh_s3_delete_start(sh_objstore_t *s, const char *key, sh_objstore_cb cb,
                                   void *arg)
{
    sh_s3_op_t *op = sh_s3_op_new(s, SH_OBJSTORE_DELETE, key, cb, arg);
    if (!op)
        return SH_E_NOMEM;
    sh_s3_op_step(op, SH_S3_DELETE, SH_S3_WRITE);
    return SH_OK;
}

/* Complete an op that needs no request, on the next drive (never from
 * inside the *_start call). */
static void sh_s3_complete_later(sh_s3_op_t *op)
{
    op->ready_ms = 0;
    op->trivial = true;
    sh_s3_list_push(&op->st->delayed, op, SH_S3_DELAYED);
}

static sh_err_t sh_s3_delete_many_start(sh_objstore_t *s, const char *const *keys, size_t nkeys,
                                        sh_objstore_cb cb, void *arg)
{
    sh_s3_op_t *op = sh_s3_op_new(s, SH_OBJSTORE_DELETE_MANY, NULL, cb, arg);
    if (!op)
        return SH_E_NOMEM;
    op->keys = calloc(nkeys ? nkeys : 1, sizeof(char *));
    op->errs = calloc(nkeys ? nkeys : 1, sizeof(sh_err_t));
    if (!op->keys || !op->errs)
        goto fail;
    for (size_t i = 0; i < nkeys; i++) {
        op->nkeys = i + 1; /* so a partial copy is freed */
        if (!(op->keys[i] = strdup(keys[i])))
            goto fail;
    }
    op->nkeys = nkeys;
    if (nkeys == 0) {
        sh_s3_complete_later(op);
        return SH_OK;
    }
    op->batch_start = 0;
    op->batch_n = nkeys > SH_S3_DELETE_MAX_KEYS ? SH_S3_DELETE_MAX_KEYS : nkeys;
    sh_s3_op_step(op, SH_S3_DELETE_BATCH, SH_S3_WRITE);
    return SH_OK;
fail:
    sh_s3_op_free(op);
    return SH_E_NOMEM;
}

static sh_err_t sh_s3_list_start(sh_objstore_t *s, const char *prefix, const char *token,
                                 size_t max_keys, sh_objstore_cb cb, void *arg)
{
    sh_s3_op_t *op = sh_s3_op_new(s, SH_OBJSTORE_LIST, prefix, cb, arg);
    if (!op)
        return SH_E_NOMEM;
    op->max_keys = max_keys;
    if (token && !(op->token = strdup(token))) {
        sh_s3_op_free(op);
        return SH_E_NOMEM;
    }
    sh_s3_op_step(op, SH_S3_LIST_PAGE, SH_S3_LIST);
    return SH_OK;
}

/* ------------------------------------------------------------- free */

static void sh_s3_cancel_list(sh_objstore_s3_t *st, sh_s3_list_t *l)
{
    sh_s3_op_t *op;
    while ((op = l->head)) {
        sh_s3_list_remove(l, op);
        if (op->easy) {
            curl_multi_remove_handle(st->multi, op->easy);
            if (op->let_through)
                sh_s3_breaker_cancel(&st->breaker);
        }
        snprintf(op->detail, sizeof(op->detail), "object store closed");
        sh_s3_op_finish(op, SH_E_IO, true);
    }
}

static void sh_s3_free(sh_objstore_t *s)
{
    sh_objstore_s3_t *st = (sh_objstore_s3_t *)s;
    /* finish what is in flight (no new retries), within a bound */
    st->closing = true;
    int64_t end = sh_clock_mono_ms() + SH_S3_CLOSE_WAIT_MS;
    if (st->multi && st->epfd >= 0) {
        while (sh_s3_ops_pending(st) > 0 && sh_clock_mono_ms() < end) {
            int64_t d = sh_s3_next_deadline_ms(s), now = sh_clock_mono_ms();
            int t = 100;
            if (d >= 0)
                t = d <= now ? 0 : (d - now < 100 ? (int)(d - now) : 100);
            struct pollfd p = {.fd = st->epfd, .events = POLLIN};
            poll(&p, 1, t);
            sh_s3_drive(s);
        }
    }
    st->cancelling = true;
    if (st->wq) {
        /* runs what is still hashing; its done callbacks cancel those ops */
        sh_workq_free(st->wq);
        st->wq = NULL;
    }
    for (int c = 0; c < SH_S3_NCLASS; c++)
        sh_s3_cancel_list(st, &st->queue[c]);
    sh_s3_cancel_list(st, &st->delayed);
    sh_s3_cancel_list(st, &st->active);
    if (st->multi)
        curl_multi_cleanup(st->multi);
    if (st->epfd >= 0)
        close(st->epfd);
    free(st->bucket);
    free(st->prefix);
    free(st->endpoint);
    free(st->url_base);
    free(st->host_header);
    free(st->region);
    free(st->access_key_id);
    if (st->secret_access_key) {
        memset(st->secret_access_key, 0, strlen(st->secret_access_key));
        free(st->secret_access_key);
    }
    free(st->session_token);
    sh_objstore_base_fini(&st->base);
    free(st);
}

static const sh_objstore_ops_t sh_s3_ops = {
    .name = "s3",
    .put_start = sh_s3_put_start,
    .get_start = sh_s3_get_start,
    .head_start = sh_s3_head_start,
    .delete_start = sh_s3_delete_start,
    .delete_many_start = sh_s3_delete_many_start,
    .list_start = sh_s3_list_start,
    .fd = sh_s3_fd,
    .drive = sh_s3_drive,
    .next_deadline_ms = sh_s3_next_deadline_ms,
    .free = sh_s3_free,
};

/* ------------------------------------------------------------- open */

void sh_objstore_s3_options_init(sh_objstore_s3_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->path_style = -1;
}

static const char *sh_s3_env(const char *a, const char *b)
{
    const char *v = getenv(a);
    if ((!v || !*v) && b)
        v = getenv(b);
    return v && *v ? v : NULL;
}

void sh_objstore_s3_options_env(sh_objstore_s3_options_t *o)
{
    if (!o->endpoint || !*o->endpoint)
        o->endpoint = sh_s3_env("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL");
    if (!o->region || !*o->region)
        o->region = sh_s3_env("AWS_REGION", "AWS_DEFAULT_REGION");
    /* credentials come as a set: never mix an id from one place with a
     * secret from another */
    if ((!o->access_key_id || !*o->access_key_id) &&
        (!o->secret_access_key || !*o->secret_access_key)) {
        o->access_key_id = sh_s3_env("AWS_ACCESS_KEY_ID", NULL);
        o->secret_access_key = sh_s3_env("AWS_SECRET_ACCESS_KEY", NULL);
        if (!o->session_token)
            o->session_token = sh_s3_env("AWS_SESSION_TOKEN", NULL);
    }
}

sh_err_t sh_objstore_s3_stats(const sh_objstore_t *s, sh_objstore_s3_stats_t *out)
{
    if (!s || strcmp(s->ops->name, "s3") != 0)
        return SH_E_INVAL;
    const sh_objstore_s3_t *st = (const sh_objstore_s3_t *)s;
    *out = st->stats;
    out->active = st->active.n;
    out->queued = sh_s3_ops_pending(st) - st->active.n;
    out->breaker_state = (int)st->breaker.state;
    return SH_OK;
}

void sh_objstore_s3_set_quiet(sh_objstore_t *s, bool quiet)
{
    if (s && strcmp(s->ops->name, "s3") == 0)
        ((sh_objstore_s3_t *)s)->quiet = quiet;
}

const char *sh_objstore_s3_access_key_id(const sh_objstore_t *s)
{
    if (!s || strcmp(s->ops->name, "s3") != 0)
        return NULL;
    return ((const sh_objstore_s3_t *)s)->access_key_id;
}

const char *sh_objstore_s3_endpoint(const sh_objstore_t *s)
{
    if (!s || strcmp(s->ops->name, "s3") != 0)
        return NULL;
    return ((const sh_objstore_s3_t *)s)->endpoint;
}

static bool sh_s3_bucket_ok(const char *b, size_t n)
{
    if (n < 1 || n > 255)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)b[i];
        if (!isalnum(c) && c != '.' && c != '-' && c != '_')
            return false;
    }
    return true;
}

/* Split "http[s]://host[:port][/]" into scheme and authority. */
static bool sh_s3_endpoint_parse(const char *ep, char **scheme, char **authority)
{
    const char *rest;
    if (strncasecmp(ep, "https://", 8) == 0) {
        *scheme = strdup("https");
        rest = ep + 8;
    } else if (strncasecmp(ep, "http://", 7) == 0) {
        *scheme = strdup("http");
        rest = ep + 7;
    } else {
        return false;
    }
    size_t n = strcspn(rest, "/?#");
    if (n == 0 || (rest[n] && strcmp(rest + n, "/") != 0) || memchr(rest, '@', n)) {
        free(*scheme);
        *scheme = NULL;
        return false;
    }
    *authority = strndup(rest, n);
    for (size_t i = 0; *authority && (*authority)[i]; i++)
        (*authority)[i] = (char)tolower((unsigned char)(*authority)[i]);
    return *scheme && *authority;
}

static char *sh_s3_strdup_or_null(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

sh_err_t sh_objstore_s3_open(const char *url, const sh_objstore_s3_options_t *o,
                             sh_objstore_t **out)
{
    sh_err_t err = SH_E_NOMEM;
    char *scheme = NULL, *authority = NULL;
    *out = NULL;
    pthread_once(&sh_s3_curl_once, sh_s3_curl_global_init);
    if (sh_s3_curl_init_rc != CURLE_OK) {
        sh_log(SH_LOG_ERROR, "objstore", "could not initialise libcurl: %s",
               curl_easy_strerror(sh_s3_curl_init_rc));
        return SH_E_IO;
    }
    if (!url || strncmp(url, "s3://", 5) != 0) {
        sh_log(SH_LOG_ERROR, "objstore", "invalid object store URL \"%s\": expected s3://bucket[/prefix]",
               url ? url : "");
        return SH_E_INVAL;
    }
    const char *b = url + 5;
    size_t blen = strcspn(b, "/");
    const char *pfx = b[blen] == '/' ? b + blen + 1 : "";
    if (!sh_s3_bucket_ok(b, blen)) {
        sh_log(SH_LOG_ERROR, "objstore",
               "invalid object store URL \"%s\": the bucket name must be 1-255 letters, digits, '.', '-' or '_'",
               url);
        return SH_E_INVAL;
    }
    size_t plen = strlen(pfx);
    while (plen > 0 && pfx[plen - 1] == '/')
        plen--;
    if (plen > 0) {
        /* the prefix is the first components of every key: same rules */
        char *tmp = strndup(pfx, plen);
        sh_err_t kc = tmp ? sh_objstore_key_check(tmp) : SH_E_NOMEM;
        free(tmp);
        if (kc != SH_OK || plen > 512) {
            sh_log(SH_LOG_ERROR, "objstore",
                   "invalid object store URL \"%s\": the prefix must be a valid key of at most 512 bytes",
                   url);
            return kc == SH_E_NOMEM ? SH_E_NOMEM : SH_E_INVAL;
        }
    }
    const char *region = o->region && *o->region ? o->region : "us-east-1";
    for (const char *c = region; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '-') {
            sh_log(SH_LOG_ERROR, "objstore", "invalid S3 region \"%s\"", region);
            return SH_E_INVAL;
        }
    bool custom = o->endpoint && *o->endpoint;
    char aws[160];
    snprintf(aws, sizeof(aws), "https://s3.%s.amazonaws.com", region);
    if (!sh_s3_endpoint_parse(custom ? o->endpoint : aws, &scheme, &authority)) {
        sh_log(SH_LOG_ERROR, "objstore",
               "invalid S3 endpoint \"%s\": expected http://host[:port] or https://host[:port]",
               o->endpoint);
        return SH_E_INVAL;
    }
    bool path_style = o->path_style < 0 ? custom : o->path_style != 0;
    bool have_id = o->access_key_id && *o->access_key_id;
    bool have_secret = o->secret_access_key && *o->secret_access_key;
    if (have_id != have_secret) {
        sh_log(SH_LOG_ERROR, "objstore",
               "incomplete S3 credentials for \"%s\": %s is set but %s is not", url,
               have_id ? "the access key id" : "the secret access key",
               have_id ? "the secret access key" : "the access key id");
        err = SH_E_INVAL;
        goto fail_early;
    }
    if (o->part_size && o->part_size < 1024) {
        sh_log(SH_LOG_ERROR, "objstore", "invalid S3 part size %" PRIu64, o->part_size);
        err = SH_E_INVAL;
        goto fail_early;
    }

    sh_objstore_s3_t *st = calloc(1, sizeof(*st));
    if (!st)
        goto fail_early;
    st->epfd = -1;
    st->curl_deadline = -1;
    if (sh_objstore_base_init(&st->base, &sh_s3_ops, url) != SH_OK) {
        free(st);
        goto fail_early;
    }
    st->bucket = strndup(b, blen);
    st->prefix = malloc(plen + 2);
    if (st->prefix)
        snprintf(st->prefix, plen + 2, "%.*s%s", (int)plen, pfx, plen ? "/" : "");
    st->region = strdup(region);
    st->path_style = path_style;
    size_t need = strlen(scheme) + strlen(authority) + blen + 8;
    st->endpoint = malloc(need);
    st->url_base = malloc(need);
    st->host_header = malloc(need);
    if (st->endpoint && st->url_base && st->host_header) {
        snprintf(st->endpoint, need, "%s://%s", scheme, authority);
        if (path_style) {
            snprintf(st->host_header, need, "%s", authority);
        } else {
            snprintf(st->host_header, need, "%.*s.%s", (int)blen, b, authority);
        }
        snprintf(st->url_base, need, "%s://%s", scheme, st->host_header);
    }
    st->access_key_id = sh_s3_strdup_or_null(o->access_key_id);
    st->secret_access_key = sh_s3_strdup_or_null(o->secret_access_key);
    st->session_token = have_id ? sh_s3_strdup_or_null(o->session_token) : NULL;
    if (!st->bucket || !st->prefix || !st->region || !st->endpoint || !st->url_base ||
        !st->host_header || (have_id && (!st->access_key_id || !st->secret_access_key)) ||
        (have_id && o->session_token && *o->session_token && !st->session_token))
        goto fail;

    st->max_inflight = o->max_inflight > 0 ? o->max_inflight : 64;
    st->max_attempts = o->max_attempts > 0 ? o->max_attempts : 6;
    st->backoff_base_ms = o->backoff_base_ms > 0 ? o->backoff_base_ms : 100;
    st->backoff_max_ms = o->backoff_max_ms > 0 ? o->backoff_max_ms : 10000;
    st->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 5000;
    st->request_timeout_ms = o->request_timeout_ms > 0 ? o->request_timeout_ms : 120000;
    st->part_size = o->part_size ? o->part_size : 16 * SH_S3_MIB;
    st->multipart_threshold = o->multipart_threshold ? o->multipart_threshold : 16 * SH_S3_MIB;
    if (st->multipart_threshold < st->part_size)
        st->multipart_threshold = st->part_size; /* one part is a plain put */
    int64_t now = sh_clock_mono_ms();
    double rates[SH_S3_NCLASS] = {o->read_rate, o->write_rate, o->list_rate};
    static const double def_rates[SH_S3_NCLASS] = {5500, 3500, 100};
    for (int c = 0; c < SH_S3_NCLASS; c++) {
        double r = rates[c] == 0 ? def_rates[c] : rates[c];
        sh_s3_bucket_init(&st->rate[c], r, 0, now);
    }
    int64_t cool = o->breaker_cooldown_ms > 0 ? o->breaker_cooldown_ms : 5000;
    sh_s3_breaker_init(&st->breaker, o->breaker_failures == 0 ? 5 : o->breaker_failures, cool,
                       cool * 12);
    st->rnd = (uint64_t)sh_clock_mono_us() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)st;

    err = SH_E_IO;
    st->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (st->epfd < 0) {
        sh_log(SH_LOG_ERROR, "objstore", "could not create epoll descriptor: %s", strerror(errno));
        goto fail;
    }
    err = SH_E_NOMEM;
    st->wq = sh_workq_new(1, "s3hash");
    if (!st->wq)
        goto fail;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = sh_workq_fd(st->wq)};
    if (epoll_ctl(st->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev) != 0) {
        err = SH_E_IO;
        goto fail;
    }
    st->multi = curl_multi_init();
    if (!st->multi)
        goto fail;
    curl_multi_setopt(st->multi, CURLMOPT_SOCKETFUNCTION, sh_s3_socket_cb);
    curl_multi_setopt(st->multi, CURLMOPT_SOCKETDATA, st);
    curl_multi_setopt(st->multi, CURLMOPT_TIMERFUNCTION, sh_s3_timer_cb);
    curl_multi_setopt(st->multi, CURLMOPT_TIMERDATA, st);
    curl_multi_setopt(st->multi, CURLMOPT_MAXCONNECTS, (long)st->max_inflight);
    curl_multi_setopt(st->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)st->max_inflight);

    if (!st->access_key_id)
        sh_log(SH_LOG_WARN, "objstore",
               "no S3 credentials for \"%s\": requests are sent unsigned (anonymous)", url);
    sh_log(SH_LOG_DEBUG, "objstore",
           "opened S3 object store \"%s\": endpoint \"%s\", region \"%s\", %s-style addressing",
           url, st->endpoint, st->region, path_style ? "path" : "virtual-hosted");
    free(scheme);
    free(authority);
    *out = &st->base;
    return SH_OK;
fail:
    sh_s3_free(&st->base);
fail_early:
    free(scheme);
    free(authority);
    return err;
}
