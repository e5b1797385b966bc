/*
 * sh_timer.c - binary min-heap of intrusive timers (see sh_timer.h).
 *
 * Thread: whichever thread owns the heap (the broker loop thread).
 * Ownership: the heap owns only its pointer array; timers belong to the
 * structs that embed them. Ordering is (deadline, seq) so ties fire in
 * arm order.
 */
#include "common/sh_timer.h"

#include <stdlib.h>

static bool timer_before(const sh_timer_t *a, const sh_timer_t *b)
{
    if (a->deadline_ms != b->deadline_ms)
        return a->deadline_ms < b->deadline_ms;
    return a->seq < b->seq;
}

static void heap_place(sh_timer_heap_t *h, size_t i, sh_timer_t *t)
{
    h->items[i] = t;
    t->slot = i;
}

static void sift_up(sh_timer_heap_t *h, size_t i)
{
    sh_timer_t *t = h->items[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!timer_before(t, h->items[parent]))
            break;
        heap_place(h, i, h->items[parent]);
        i = parent;
    }
    heap_place(h, i, t);
}

static void sift_down(sh_timer_heap_t *h, size_t i)
{
    sh_timer_t *t = h->items[i];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const sh_timer_t *best = t;
        if (l < h->len && timer_before(h->items[l], best)) {
            m = l;
            best = h->items[l];
        }
        if (r < h->len && timer_before(h->items[r], best))
            m = r;
        if (m == i)
            break;
        heap_place(h, i, h->items[m]);
        i = m;
    }
    heap_place(h, i, t);
}

/* Take the element at slot i out, keeping the heap valid. */
static void heap_remove_at(sh_timer_heap_t *h, size_t i)
{
    sh_timer_t *gone = h->items[i];
    sh_timer_t *last = h->items[--h->len];
    gone->slot = SH_TIMER_UNARMED;
    if (i == h->len)
        return;
    heap_place(h, i, last);
    /* The moved element may belong above or below its new slot. */
    if (i > 0 && timer_before(last, h->items[(i - 1) / 2]))
        sift_up(h, i);
    else
        sift_down(h, i);
}

void sh_timer_heap_init(sh_timer_heap_t *h)
{
    h->items = NULL;
    h->len = 0;
    h->cap = 0;
    h->next_seq = 0;
}

void sh_timer_heap_fini(sh_timer_heap_t *h)
{
    for (size_t i = 0; i < h->len; i++)
        h->items[i]->slot = SH_TIMER_UNARMED;
    free(h->items);
    sh_timer_heap_init(h);
}

void sh_timer_init(sh_timer_t *t, sh_timer_fn fn, void *arg)
{
    t->deadline_ms = 0;
    t->seq = 0;
    t->slot = SH_TIMER_UNARMED;
    t->fn = fn;
    t->arg = arg;
}

sh_err_t sh_timer_arm(sh_timer_heap_t *h, sh_timer_t *t, int64_t deadline_ms)
{
    if (sh_timer_is_armed(t))
        heap_remove_at(h, t->slot);
    if (h->len == h->cap) {
        size_t ncap = h->cap ? h->cap * 2 : 64;
        sh_timer_t **n = realloc(h->items, ncap * sizeof(*n));
        if (!n)
            return SH_E_NOMEM;
        h->items = n;
        h->cap = ncap;
    }
    t->deadline_ms = deadline_ms;
    t->seq = h->next_seq++;
    heap_place(h, h->len++, t);
    sift_up(h, t->slot);
    return SH_OK;
}

void sh_timer_cancel(sh_timer_heap_t *h, sh_timer_t *t)
{
    if (sh_timer_is_armed(t))
        heap_remove_at(h, t->slot);
}

int64_t sh_timer_heap_next_deadline(const sh_timer_heap_t *h)
{
    return h->len ? h->items[0]->deadline_ms : -1;
}

int sh_timer_heap_timeout(const sh_timer_heap_t *h, int64_t now_ms, int max_ms)
{
    if (h->len == 0)
        return max_ms;
    int64_t d = h->items[0]->deadline_ms - now_ms;
    if (d <= 0)
        return 0;
    if (max_ms >= 0 && d > max_ms)
        return max_ms;
    return d > INT32_MAX ? INT32_MAX : (int)d;
}

int sh_timer_heap_run(sh_timer_heap_t *h, int64_t now_ms)
{
    /* Sequence numbers grow with every arm, so anything armed from here on
     * has seq >= limit and waits for the next run. */
    uint64_t limit = h->next_seq;
    int fired = 0;
    while (h->len > 0) {
        sh_timer_t *t = h->items[0];
        if (t->deadline_ms > now_ms || t->seq >= limit)
            break;
        heap_remove_at(h, 0);
        fired++;
        t->fn(t, t->arg);
    }
    return fired;
}
