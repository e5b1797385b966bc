/*
 * sh_workq.c - thread pool with eventfd completion (see sh_workq.h).
 *
 * Threads: `work` runs on pool threads; `done` runs on whoever drains,
 * normally the loop thread. One mutex guards both lists; it is never held
 * while user callbacks run.
 */
#include "common/sh_workq.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/sh_log.h"

struct sh_workq {
    pthread_mutex_t lock;
    pthread_cond_t cond;       /* work available or stopping */
    pthread_cond_t idle_cond;  /* pending reached zero */
    sh_workq_job_t *todo_head, *todo_tail;
    sh_workq_job_t *done_head, *done_tail;
    int pending;               /* submitted and not yet finished work */
    int stopping;
    int efd;
    int nthreads;
    pthread_t *threads;
};

static void sh_workq_push(sh_workq_job_t **head, sh_workq_job_t **tail, sh_workq_job_t *j)
{
    j->next = NULL;
    if (*tail)
        (*tail)->next = j;
    else
        *head = j;
    *tail = j;
}

static void *sh_workq_main(void *arg)
{
    sh_workq_t *wq = arg;
    pthread_mutex_lock(&wq->lock);
    for (;;) {
        while (!wq->todo_head && !wq->stopping)
            pthread_cond_wait(&wq->cond, &wq->lock);
        sh_workq_job_t *j = wq->todo_head;
        if (!j)
            break; /* stopping and nothing left */
        wq->todo_head = j->next;
        if (!wq->todo_head)
            wq->todo_tail = NULL;
        pthread_mutex_unlock(&wq->lock);

        j->work(j);

        pthread_mutex_lock(&wq->lock);
        sh_workq_push(&wq->done_head, &wq->done_tail, j);
        if (--wq->pending == 0)
            pthread_cond_broadcast(&wq->idle_cond);
        uint64_t one = 1;
        ssize_t w = write(wq->efd, &one, sizeof(one));
        (void)w; /* an eventfd counter cannot overflow at our rates */
    }
    pthread_mutex_unlock(&wq->lock);
    return NULL;
}

sh_workq_t *sh_workq_new(int nthreads, const char *name)
{
    sh_workq_t *wq = calloc(1, sizeof(*wq));
    if (!wq)
        return NULL;
    if (nthreads < 1)
        nthreads = 1;
    pthread_mutex_init(&wq->lock, NULL);
    pthread_cond_init(&wq->cond, NULL);
    pthread_cond_init(&wq->idle_cond, NULL);
    wq->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    wq->threads = calloc((size_t)nthreads, sizeof(pthread_t));
    if (wq->efd < 0 || !wq->threads)
        goto fail;
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&wq->threads[i], NULL, sh_workq_main, wq) != 0)
            goto fail;
        wq->nthreads++;
        char tname[32];
        snprintf(tname, sizeof(tname), "%.10s-%d", name ? name : "workq", i % 100);
        tname[15] = '\0'; /* the kernel keeps 15 characters */
        pthread_setname_np(wq->threads[i], tname);
    }
    return wq;
fail:
    sh_log(SH_LOG_ERROR, "workq", "could not start worker pool \"%s\": %s",
           name ? name : "workq", strerror(errno));
    sh_workq_free(wq);
    return NULL;
}

void sh_workq_free(sh_workq_t *wq)
{
    if (!wq)
        return;
    pthread_mutex_lock(&wq->lock);
    wq->stopping = 1;
    pthread_cond_broadcast(&wq->cond);
    pthread_mutex_unlock(&wq->lock);
    for (int i = 0; i < wq->nthreads; i++)
        pthread_join(wq->threads[i], NULL);
    sh_workq_drain(wq);
    if (wq->efd >= 0)
        close(wq->efd);
    free(wq->threads);
    pthread_mutex_destroy(&wq->lock);
    pthread_cond_destroy(&wq->cond);
    pthread_cond_destroy(&wq->idle_cond);
    free(wq);
}

int sh_workq_fd(const sh_workq_t *wq)
{
    return wq->efd;
}

sh_err_t sh_workq_submit(sh_workq_t *wq, sh_workq_job_t *job)
{
    pthread_mutex_lock(&wq->lock);
    if (wq->stopping) {
        pthread_mutex_unlock(&wq->lock);
        return SH_E_CLOSED;
    }
    sh_workq_push(&wq->todo_head, &wq->todo_tail, job);
    wq->pending++;
    pthread_cond_signal(&wq->cond);
    pthread_mutex_unlock(&wq->lock);
    return SH_OK;
}

int sh_workq_drain(sh_workq_t *wq)
{
    uint64_t cnt;
    ssize_t r = read(wq->efd, &cnt, sizeof(cnt));
    (void)r; /* EAGAIN just means no new signal; the list is the truth */
    pthread_mutex_lock(&wq->lock);
    sh_workq_job_t *j = wq->done_head;
    wq->done_head = wq->done_tail = NULL;
    pthread_mutex_unlock(&wq->lock);
    int n = 0;
    while (j) {
        sh_workq_job_t *next = j->next; /* done may free j */
        if (j->done)
            j->done(j);
        j = next;
        n++;
    }
    return n;
}

void sh_workq_wait_idle(sh_workq_t *wq)
{
    pthread_mutex_lock(&wq->lock);
    while (wq->pending > 0)
        pthread_cond_wait(&wq->idle_cond, &wq->lock);
    pthread_mutex_unlock(&wq->lock);
}

void sh_workq_run_sync(sh_workq_t *wq, sh_workq_job_t *job)
{
    if (sh_workq_submit(wq, job) != SH_OK) {
        job->work(job);
        if (job->done)
            job->done(job);
        return;
    }
    sh_workq_wait_idle(wq);
    sh_workq_drain(wq);
}
