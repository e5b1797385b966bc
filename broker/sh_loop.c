/*
 * sh_loop.c - epoll event loop with a timer heap, before-sleep hooks,
 * worker-pool eventfds and a signalfd (see sh_loop.h).
 *
 * Thread: the loop thread, except sh_loop_stop() (any thread: an atomic
 * flag plus an eventfd write) and sh_loop_block_signals() (main, early).
 * Ownership: the loop owns its epoll fd, wakeup eventfd, signalfd and the
 * small watcher structs of sh_loop_workq_add(); registrations, timers and
 * hooks belong to their callers.
 */
#include "broker/sh_loop.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common/sh_clock.h"
#include "common/sh_log.h"

#define SH_LOOP_BATCH 256

typedef struct sh_loop_wq_watch {
    sh_loop_io_t io;
    sh_workq_t *wq;
    struct sh_loop_wq_watch *next;
} sh_loop_wq_watch_t;

struct sh_loop {
    int epfd;
    int64_t now_ms;
    sh_timer_heap_t timers;
    sh_loop_hook_t *hooks;
    atomic_bool stop;

    /* the batch being dispatched, so io_del can scrub stale entries */
    struct epoll_event *batch;
    int batch_len;
    int batch_pos;

    sh_loop_io_t wake_io;       /* eventfd poked by sh_loop_stop */
    sh_loop_io_t sig_io;        /* signalfd, -1 until signals_start */
    sh_loop_signal_fn sig_fn;
    void *sig_arg;
    sh_loop_wq_watch_t *wq_watches;
};

static uint32_t to_epoll(uint32_t ev)
{
    return ((ev & SH_LOOP_READ) ? EPOLLIN : 0u) |
           ((ev & SH_LOOP_WRITE) ? EPOLLOUT : 0u);
}

static void wake_cb(sh_loop_io_t *io, uint32_t events)
{
    uint64_t v;
    (void)events;
    /* drain the counter; the stop flag was already set */
    ssize_t r = read(io->fd, &v, sizeof(v));
    (void)r;
}

sh_loop_t *sh_loop_new(void)
{
    sh_loop_t *loop = calloc(1, sizeof(*loop));
    if (!loop)
        return NULL;
    loop->epfd = -1;
    loop->wake_io.fd = -1;
    loop->sig_io.fd = -1;
    sh_timer_heap_init(&loop->timers);
    atomic_init(&loop->stop, false);
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0)
        goto fail;
    int wfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wfd < 0)
        goto fail;
    sh_loop_io_init(&loop->wake_io, wfd, wake_cb, loop);
    if (sh_loop_io_add(loop, &loop->wake_io, SH_LOOP_READ) != SH_OK)
        goto fail;
    loop->now_ms = sh_clock_mono_ms();
    return loop;
fail:
    sh_log(SH_LOG_ERROR, "loop", "could not create event loop: %s", strerror(errno));
    sh_loop_free(loop);
    return NULL;
}

void sh_loop_free(sh_loop_t *loop)
{
    if (!loop)
        return;
    while (loop->wq_watches)
        sh_loop_workq_remove(loop, loop->wq_watches->wq);
    if (loop->sig_io.fd >= 0) {
        sh_loop_io_del(loop, &loop->sig_io);
        close(loop->sig_io.fd);
    }
    if (loop->wake_io.fd >= 0) {
        sh_loop_io_del(loop, &loop->wake_io);
        close(loop->wake_io.fd);
    }
    if (loop->epfd >= 0)
        close(loop->epfd);
    sh_timer_heap_fini(&loop->timers);
    free(loop);
}

/* ---------------------------------------------------------- descriptors */

void sh_loop_io_init(sh_loop_io_t *io, int fd, sh_loop_io_fn fn, void *arg)
{
    io->fd = fd;
    io->events = 0;
    io->registered = false;
    io->fn = fn;
    io->arg = arg;
}

sh_err_t sh_loop_io_add(sh_loop_t *loop, sh_loop_io_t *io, uint32_t events)
{
    struct epoll_event ev = {.events = to_epoll(events), .data.ptr = io};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, io->fd, &ev) < 0) {
        sh_log(SH_LOG_ERROR, "loop", "could not watch descriptor %d: %s", io->fd,
               strerror(errno));
        return errno == ENOMEM || errno == ENOSPC ? SH_E_NOMEM : SH_E_IO;
    }
    io->events = events;
    io->registered = true;
    return SH_OK;
}

sh_err_t sh_loop_io_set(sh_loop_t *loop, sh_loop_io_t *io, uint32_t events)
{
    if (!io->registered)
        return sh_loop_io_add(loop, io, events);
    if (io->events == events)
        return SH_OK;
    struct epoll_event ev = {.events = to_epoll(events), .data.ptr = io};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0) {
        sh_log(SH_LOG_ERROR, "loop", "could not change interest of descriptor %d: %s",
               io->fd, strerror(errno));
        return SH_E_IO;
    }
    io->events = events;
    return SH_OK;
}

void sh_loop_io_del(sh_loop_t *loop, sh_loop_io_t *io)
{
    if (!io->registered)
        return;
    struct epoll_event ev = {0};
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, &ev);
    io->registered = false;
    io->events = 0;
    /* The owner may free io as soon as we return; make sure no event
     * still queued in this batch points at it. */
    for (int i = loop->batch_pos; i < loop->batch_len; i++)
        if (loop->batch[i].data.ptr == io)
            loop->batch[i].data.ptr = NULL;
}

/* ---------------------------------------------------------------- time */

int64_t sh_loop_now_ms(const sh_loop_t *loop)
{
    return loop->now_ms;
}

sh_err_t sh_loop_timer_arm(sh_loop_t *loop, sh_timer_t *t, int64_t delay_ms)
{
    return sh_timer_arm(&loop->timers, t, loop->now_ms + (delay_ms > 0 ? delay_ms : 0));
}

sh_err_t sh_loop_timer_arm_at(sh_loop_t *loop, sh_timer_t *t, int64_t deadline_ms)
{
    return sh_timer_arm(&loop->timers, t, deadline_ms);
}

void sh_loop_timer_cancel(sh_loop_t *loop, sh_timer_t *t)
{
    sh_timer_cancel(&loop->timers, t);
}

/* --------------------------------------------------------------- hooks */

void sh_loop_before_sleep_add(sh_loop_t *loop, sh_loop_hook_t *hook,
                              sh_loop_hook_fn fn, void *arg)
{
    sh_loop_hook_t **pp = &loop->hooks;
    hook->fn = fn;
    hook->arg = arg;
    hook->next = NULL;
    while (*pp)
        pp = &(*pp)->next;
    *pp = hook;
    hook->linked = true;
}

void sh_loop_before_sleep_remove(sh_loop_t *loop, sh_loop_hook_t *hook)
{
    if (!hook->linked)
        return;
    for (sh_loop_hook_t **pp = &loop->hooks; *pp; pp = &(*pp)->next)
        if (*pp == hook) {
            *pp = hook->next;
            break;
        }
    hook->linked = false;
    hook->next = NULL;
}

/* ------------------------------------------------------------- workers */

static void wq_cb(sh_loop_io_t *io, uint32_t events)
{
    sh_loop_wq_watch_t *w = io->arg;
    (void)events;
    sh_workq_drain(w->wq);
}

sh_err_t sh_loop_workq_add(sh_loop_t *loop, sh_workq_t *wq)
{
    sh_loop_wq_watch_t *w = calloc(1, sizeof(*w));
    if (!w)
        return SH_E_NOMEM;
    w->wq = wq;
    sh_loop_io_init(&w->io, sh_workq_fd(wq), wq_cb, w);
    sh_err_t err = sh_loop_io_add(loop, &w->io, SH_LOOP_READ);
    if (err) {
        free(w);
        return err;
    }
    w->next = loop->wq_watches;
    loop->wq_watches = w;
    return SH_OK;
}

void sh_loop_workq_remove(sh_loop_t *loop, sh_workq_t *wq)
{
    for (sh_loop_wq_watch_t **pp = &loop->wq_watches; *pp; pp = &(*pp)->next)
        if ((*pp)->wq == wq) {
            sh_loop_wq_watch_t *w = *pp;
            *pp = w->next;
            sh_loop_io_del(loop, &w->io);
            free(w);
            return;
        }
}

/* ------------------------------------------------------------- signals */

static void fill_sigset(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
}

void sh_loop_block_signals(void)
{
    sigset_t set;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    fill_sigset(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static void sig_cb(sh_loop_io_t *io, uint32_t events)
{
    sh_loop_t *loop = io->arg;
    struct signalfd_siginfo si;
    (void)events;
    while (read(io->fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        if (loop->sig_fn)
            loop->sig_fn(loop, (int)si.ssi_signo, loop->sig_arg);
}

sh_err_t sh_loop_signals_start(sh_loop_t *loop, sh_loop_signal_fn fn, void *arg)
{
    sigset_t set;
    if (loop->sig_io.fd >= 0)
        return SH_E_EXISTS;
    sh_loop_block_signals();
    fill_sigset(&set);
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) {
        sh_log(SH_LOG_ERROR, "loop", "could not create signalfd: %s", strerror(errno));
        return SH_E_IO;
    }
    loop->sig_fn = fn;
    loop->sig_arg = arg;
    sh_loop_io_init(&loop->sig_io, fd, sig_cb, loop);
    sh_err_t err = sh_loop_io_add(loop, &loop->sig_io, SH_LOOP_READ);
    if (err) {
        close(fd);
        loop->sig_io.fd = -1;
    }
    return err;
}

long sh_loop_raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t old = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
            sh_log(SH_LOG_WARN, "loop", "could not raise open-file limit to %llu: %s",
                   (unsigned long long)rl.rlim_max, strerror(errno));
            return (long)old;
        }
    }
    return rl.rlim_cur == RLIM_INFINITY ? LONG_MAX : (long)rl.rlim_cur;
}

/* ----------------------------------------------------------------- run */

static void run_hooks(sh_loop_t *loop)
{
    sh_loop_hook_t *h = loop->hooks;
    while (h) {
        /* a hook may remove itself */
        sh_loop_hook_t *next = h->next;
        h->fn(loop, h->arg);
        h = next;
    }
}

sh_err_t sh_loop_run_once(sh_loop_t *loop, int max_wait_ms)
{
    struct epoll_event events[SH_LOOP_BATCH];

    run_hooks(loop);
    loop->now_ms = sh_clock_mono_ms();
    int timeout = atomic_load(&loop->stop)
                      ? 0
                      : sh_timer_heap_timeout(&loop->timers, loop->now_ms, max_wait_ms);
    int n = epoll_wait(loop->epfd, events, SH_LOOP_BATCH, timeout);
    if (n < 0) {
        if (errno != EINTR) {
            sh_log(SH_LOG_ERROR, "loop", "epoll_wait failed: %s", strerror(errno));
            return SH_E_IO;
        }
        n = 0;
    }
    loop->now_ms = sh_clock_mono_ms();
    loop->batch = events;
    loop->batch_len = n;
    for (loop->batch_pos = 0; loop->batch_pos < n;) {
        struct epoll_event *ev = &events[loop->batch_pos++];
        sh_loop_io_t *io = ev->data.ptr;
        if (!io)
            continue; /* unregistered earlier in this batch */
        uint32_t got = 0;
        if (ev->events & EPOLLIN)
            got |= SH_LOOP_READ;
        if (ev->events & EPOLLOUT)
            got |= SH_LOOP_WRITE;
        if (ev->events & (EPOLLERR | EPOLLHUP))
            got |= SH_LOOP_ERROR;
        io->fn(io, got);
    }
    loop->batch = NULL;
    loop->batch_len = loop->batch_pos = 0;
    sh_timer_heap_run(&loop->timers, loop->now_ms);
    return SH_OK;
}

sh_err_t sh_loop_run(sh_loop_t *loop)
{
    while (!atomic_load(&loop->stop)) {
        sh_err_t err = sh_loop_run_once(loop, -1);
        if (err)
            return err;
    }
    /* let hooks flush once more (e.g. last responses before closing) */
    run_hooks(loop);
    return SH_OK;
}

void sh_loop_stop(sh_loop_t *loop)
{
    uint64_t one = 1;
    atomic_store(&loop->stop, true);
    ssize_t r = write(loop->wake_io.fd, &one, sizeof(one));
    (void)r;
}

bool sh_loop_stopping(const sh_loop_t *loop)
{
    return atomic_load(&loop->stop);
}
