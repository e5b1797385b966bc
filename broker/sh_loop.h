/*
 * sh_loop.h - the broker's epoll event loop: descriptors, timers,
 * before-sleep hooks, worker-pool completions and signals.
 *
 * One loop thread owns all broker state. Everything else reaches it
 * through a descriptor the loop watches: sockets, the eventfd of an
 * sh_workq (whose done callbacks then run here), a signalfd, and an
 * internal eventfd that sh_loop_stop() pokes from any thread.
 *
 * One iteration: run before-sleep hooks (flush responses, group-commit
 * kicks) -> epoll_wait until the next timer deadline -> dispatch ready
 * descriptors -> fire due timers. Epoll is level-triggered: a callback
 * that leaves data unread is called again on the next iteration, which
 * keeps fairness simple (each callback does a bounded amount of work).
 *
 * Registrations are intrusive (sh_loop_io_t embedded in the owner). A
 * callback may unregister and free any registration, including ones with
 * events still pending in the current batch: sh_loop_io_del() scrubs them.
 *
 * Thread: everything here is loop-thread only except sh_loop_stop() and
 * sh_loop_block_signals().
 */
#ifndef SH_LOOP_H
#define SH_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "common/sh_err.h"
#include "common/sh_timer.h"
#include "common/sh_workq.h"

typedef struct sh_loop sh_loop_t;
typedef struct sh_loop_io sh_loop_io_t;

#define SH_LOOP_READ 0x1u
#define SH_LOOP_WRITE 0x2u
/* reported only: the peer hung up or the descriptor failed */
#define SH_LOOP_ERROR 0x4u

/* events: SH_LOOP_READ / WRITE / ERROR bits. */
typedef void (*sh_loop_io_fn)(sh_loop_io_t *io, uint32_t events);

struct sh_loop_io {
    int fd;
    uint32_t events;       /* current interest */
    bool registered;
    sh_loop_io_fn fn;
    void *arg;             /* for the owner */
};

typedef void (*sh_loop_hook_fn)(sh_loop_t *loop, void *arg);

typedef struct sh_loop_hook {
    sh_loop_hook_fn fn;
    void *arg;
    struct sh_loop_hook *next;
    bool linked;
} sh_loop_hook_t;

/* signo is SIGTERM, SIGINT or SIGHUP. */
typedef void (*sh_loop_signal_fn)(sh_loop_t *loop, int signo, void *arg);

sh_loop_t *sh_loop_new(void);
/* The owner unregisters its descriptors and cancels its timers first;
 * frees the loop's own descriptors and watchers. */
void sh_loop_free(sh_loop_t *loop);

/* ---------------------------------------------------------- descriptors */
void sh_loop_io_init(sh_loop_io_t *io, int fd, sh_loop_io_fn fn, void *arg);
sh_err_t sh_loop_io_add(sh_loop_t *loop, sh_loop_io_t *io, uint32_t events);
/* Change interest; no system call when it is unchanged. */
sh_err_t sh_loop_io_set(sh_loop_t *loop, sh_loop_io_t *io, uint32_t events);
/* Stop watching (does not close fd). Safe from inside any callback. */
void sh_loop_io_del(sh_loop_t *loop, sh_loop_io_t *io);

/* ---------------------------------------------------------------- time */
/* Monotonic ms, cached once per iteration (cheap, consistent in a batch). */
int64_t sh_loop_now_ms(const sh_loop_t *loop);
/* Arm (or re-arm) t to fire delay_ms after now. */
sh_err_t sh_loop_timer_arm(sh_loop_t *loop, sh_timer_t *t, int64_t delay_ms);
sh_err_t sh_loop_timer_arm_at(sh_loop_t *loop, sh_timer_t *t, int64_t deadline_ms);
void sh_loop_timer_cancel(sh_loop_t *loop, sh_timer_t *t);

/* --------------------------------------------------------------- hooks */
/* Run hook->fn before every sleep, in registration order. */
void sh_loop_before_sleep_add(sh_loop_t *loop, sh_loop_hook_t *hook,
                              sh_loop_hook_fn fn, void *arg);
void sh_loop_before_sleep_remove(sh_loop_t *loop, sh_loop_hook_t *hook);

/* ------------------------------------------------------------- workers */
/* Watch wq's eventfd and run sh_workq_drain() on this thread when it
 * fires. Remove before sh_workq_free(). */
sh_err_t sh_loop_workq_add(sh_loop_t *loop, sh_workq_t *wq);
void sh_loop_workq_remove(sh_loop_t *loop, sh_workq_t *wq);

/* ------------------------------------------------------------- signals */
/* Block SIGTERM, SIGINT and SIGHUP in the calling thread and ignore
 * SIGPIPE. Call first thing in main, before any thread starts, so every
 * thread inherits the mask and the signals reach only the signalfd. */
void sh_loop_block_signals(void);
/* Deliver SIGTERM/SIGINT/SIGHUP to fn through a signalfd. */
sh_err_t sh_loop_signals_start(sh_loop_t *loop, sh_loop_signal_fn fn, void *arg);

/* Raise the soft RLIMIT_NOFILE to the hard limit; returns the new soft
 * limit (or the old one if it could not be raised). */
long sh_loop_raise_fd_limit(void);

/* ----------------------------------------------------------------- run */
/* Iterate until sh_loop_stop(). Returns SH_OK, or SH_E_IO if epoll fails. */
sh_err_t sh_loop_run(sh_loop_t *loop);
/* One iteration, sleeping at most max_wait_ms (-1: until an event). */
sh_err_t sh_loop_run_once(sh_loop_t *loop, int max_wait_ms);
/* Make sh_loop_run return after the current iteration. Any thread. */
void sh_loop_stop(sh_loop_t *loop);
bool sh_loop_stopping(const sh_loop_t *loop);

#endif
