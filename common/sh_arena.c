/*
 * sh_arena.c - chunked bump allocator (see sh_arena.h).
 * Single-threaded; the owner frees the whole arena.
 */
#include "common/sh_arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct sh_arena_chunk {
    sh_arena_chunk_t *next;
    size_t size;
    size_t used;
    _Alignas(16) unsigned char data[];
};

void sh_arena_init(sh_arena_t *a, size_t chunk_size)
{
    a->head = NULL;
    a->chunk_size = chunk_size ? chunk_size : 4096;
    a->total = 0;
}

void sh_arena_fini(sh_arena_t *a)
{
    sh_arena_chunk_t *c = a->head;
    while (c) {
        sh_arena_chunk_t *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->total = 0;
}

void sh_arena_reset(sh_arena_t *a)
{
    sh_arena_chunk_t *c = a->head;
    if (!c)
        return;
    /* keep the oldest chunk: it has the ordinary size */
    while (c->next) {
        sh_arena_chunk_t *next = c->next;
        free(c);
        c = next;
    }
    c->used = 0;
    a->head = c;
    a->total = 0;
}

void *sh_arena_alloc(sh_arena_t *a, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    if (size == 0)
        size = 16;
    sh_arena_chunk_t *c = a->head;
    if (!c || c->size - c->used < size) {
        size_t want = size > a->chunk_size / 2 ? size : a->chunk_size;
        if (want > SIZE_MAX - sizeof(*c))
            return NULL;
        sh_arena_chunk_t *n = malloc(sizeof(*n) + want);
        if (!n)
            return NULL;
        n->size = want;
        n->used = 0;
        if (c && want != a->chunk_size) {
            /* big one-off allocation: slot it behind the current chunk so
             * the current chunk keeps serving small requests */
            n->next = c->next;
            c->next = n;
        } else {
            n->next = c;
            a->head = n;
        }
        c = n;
    }
    void *p = c->data + c->used;
    c->used += size;
    a->total += size;
    return p;
}

void *sh_arena_calloc(sh_arena_t *a, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *p = sh_arena_alloc(a, n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

char *sh_arena_strndup(sh_arena_t *a, const char *s, size_t len)
{
    char *p = sh_arena_alloc(a, len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}
