/*
 * sh_arena.h - bump allocator for memory that dies together.
 *
 * A request's decoded structs and its response scaffolding live in one
 * arena, freed whole when the response is written (nginx's pool habit).
 * Not thread-safe: an arena belongs to one request on one thread.
 */
#ifndef SH_ARENA_H
#define SH_ARENA_H

#include <stddef.h>

typedef struct sh_arena_chunk sh_arena_chunk_t;

typedef struct sh_arena {
    sh_arena_chunk_t *head;  /* current chunk; older chunks chained behind */
    size_t chunk_size;       /* size of the next ordinary chunk */
    size_t total;            /* bytes handed out, for budgets and tests */
} sh_arena_t;

void sh_arena_init(sh_arena_t *a, size_t chunk_size);
/* Free every chunk; the arena may be reused after sh_arena_init. */
void sh_arena_fini(sh_arena_t *a);
/* Free all but keep the first chunk for reuse. */
void sh_arena_reset(sh_arena_t *a);

/* 16-byte aligned allocation; NULL only when malloc fails. */
void *sh_arena_alloc(sh_arena_t *a, size_t size);
/* Zero-filled allocation of n * size, overflow-checked. */
void *sh_arena_calloc(sh_arena_t *a, size_t n, size_t size);
/* Copy len bytes and add a NUL. */
char *sh_arena_strndup(sh_arena_t *a, const char *s, size_t len);

#endif
