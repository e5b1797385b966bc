/*
 * sh_workq.h - a small thread pool whose results come back to the event
 * loop through an eventfd (nginx's thread-pool habit).
 *
 * Lower layers (SQLite metadata, local object store) never block the loop:
 * they submit a job whose `work` runs on a pool thread; its `done` runs
 * later on the thread that calls sh_workq_drain(), the loop thread, when
 * the eventfd from sh_workq_fd() turns readable. Tests without a loop call
 * sh_workq_wait_idle() + sh_workq_drain().
 *
 * Ownership: the job struct is the caller's (usually embedded in a larger
 * request); it must stay valid until its done callback has run.
 * Jobs of one queue run in FIFO order per thread; with nthreads > 1 there
 * is no ordering between jobs.
 */
#ifndef SH_WORKQ_H
#define SH_WORKQ_H

#include "common/sh_err.h"

typedef struct sh_workq sh_workq_t;
typedef struct sh_workq_job sh_workq_job_t;

typedef void (*sh_workq_fn)(sh_workq_job_t *job);

struct sh_workq_job {
    sh_workq_fn work;        /* on a pool thread */
    sh_workq_fn done;        /* on the draining thread; may be NULL */
    sh_workq_job_t *next;    /* queue link, internal */
};

/* Start nthreads workers named `name` (for logs and /proc). NULL on failure. */
sh_workq_t *sh_workq_new(int nthreads, const char *name);
/* Finish queued jobs, join the threads, run remaining done callbacks, free. */
void sh_workq_free(sh_workq_t *wq);

/* The eventfd to watch for readability (EPOLLIN). */
int sh_workq_fd(const sh_workq_t *wq);

/* Queue a job. Never blocks; returns SH_E_CLOSED after shutdown began. */
sh_err_t sh_workq_submit(sh_workq_t *wq, sh_workq_job_t *job);

/* Run done callbacks of finished jobs; returns how many ran. Loop thread. */
int sh_workq_drain(sh_workq_t *wq);

/* Block until every submitted job has finished its work (not its done).
 * For tests and shutdown only. */
void sh_workq_wait_idle(sh_workq_t *wq);

/* Convenience for tests and startup code: submit, wait, drain. */
void sh_workq_run_sync(sh_workq_t *wq, sh_workq_job_t *job);

#endif
