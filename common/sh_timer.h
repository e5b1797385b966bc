/*
 * sh_timer.h - one-shot timers on a binary min-heap of monotonic
 * milliseconds.
 *
 * Timers are intrusive: an sh_timer_t lives inside whatever it times (a
 * connection's idle timer, a fetch's max_wait, a group member's session),
 * so arming one never allocates except when the heap array itself has to
 * grow. Each timer remembers its slot in the heap, which makes cancel and
 * re-arm O(log n) without searching.
 *
 * Timers with equal deadlines fire in the order they were armed, so runs
 * are deterministic under test.
 *
 * Not thread-safe: a heap and its timers belong to one thread (the event
 * loop). The heap never owns timers; the owner must cancel a timer before
 * freeing the memory holding it.
 */
#ifndef SH_TIMER_H
#define SH_TIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/sh_err.h"

typedef struct sh_timer sh_timer_t;

/* Called once when the deadline passes; the timer is already disarmed, so
 * the callback may re-arm it, cancel other timers or free its owner. */
typedef void (*sh_timer_fn)(sh_timer_t *t, void *arg);

struct sh_timer {
    int64_t deadline_ms;   /* monotonic ms; meaningful while armed */
    uint64_t seq;          /* arm order, breaks deadline ties */
    size_t slot;           /* index in the heap, SH_TIMER_UNARMED if none */
    sh_timer_fn fn;
    void *arg;
};

#define SH_TIMER_UNARMED SIZE_MAX

typedef struct sh_timer_heap {
    sh_timer_t **items;
    size_t len;
    size_t cap;
    uint64_t next_seq;
} sh_timer_heap_t;

void sh_timer_heap_init(sh_timer_heap_t *h);
/* Disarms every remaining timer (owners keep their memory) and frees the
 * heap array. */
void sh_timer_heap_fini(sh_timer_heap_t *h);

/* Prepare a timer; it starts disarmed. */
void sh_timer_init(sh_timer_t *t, sh_timer_fn fn, void *arg);

static inline bool sh_timer_is_armed(const sh_timer_t *t)
{
    return t->slot != SH_TIMER_UNARMED;
}

/* Arm t for deadline_ms, or move it there if already armed (re-arm).
 * SH_E_NOMEM if the heap could not grow; t is then left disarmed. */
sh_err_t sh_timer_arm(sh_timer_heap_t *h, sh_timer_t *t, int64_t deadline_ms);

/* Disarm t; harmless if it is not armed. */
void sh_timer_cancel(sh_timer_heap_t *h, sh_timer_t *t);

/* Earliest deadline, or -1 when no timer is armed. */
int64_t sh_timer_heap_next_deadline(const sh_timer_heap_t *h);

/* Milliseconds from now_ms until the earliest deadline (0 if already due),
 * capped at max_ms; max_ms when nothing is armed. Suits epoll_wait. */
int sh_timer_heap_timeout(const sh_timer_heap_t *h, int64_t now_ms, int max_ms);

/* Fire every timer whose deadline is <= now_ms, earliest first. Timers
 * armed by callbacks during this call are left for the next call even if
 * already due, so a callback that re-arms itself cannot spin forever.
 * Returns the number fired. */
int sh_timer_heap_run(sh_timer_heap_t *h, int64_t now_ms);

#endif
