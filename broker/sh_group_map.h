/*
 * sh_group_map.h - a string-keyed hash map for the group coordinator:
 * groups by group id, members by member id, static members by instance id,
 * protocol names by name.
 *
 * Every key here is chosen by a client, so the hash is SipHash-2-4 under a
 * per-process random key: a client cannot precompute ids that all land in
 * one bucket and turn each lookup into a list walk.
 *
 * Keys are borrowed: the map stores the pointer and length given to
 * sh_group_map_put, so a key must live in the value it maps to (a group's
 * id, a member's id) and stay unchanged while the entry exists. Values are
 * never freed by the map.
 *
 * Thread: none of its own; the coordinator's loop thread uses it.
 */
#ifndef SH_GROUP_MAP_H
#define SH_GROUP_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "common/sh_err.h"

typedef struct sh_group_map_ent {
    struct sh_group_map_ent *next;
    uint64_t hash;
    const void *key;
    size_t len;
    void *val;
} sh_group_map_ent_t;

typedef struct sh_group_map {
    sh_group_map_ent_t **buckets;
    size_t nbuckets;    /* a power of two, or 0 before the first put */
    size_t count;
} sh_group_map_t;

void sh_group_map_init(sh_group_map_t *m);
/* Frees the map's own memory (entries, buckets), never the values. */
void sh_group_map_fini(sh_group_map_t *m);

void *sh_group_map_get(const sh_group_map_t *m, const void *key, size_t len);
/* Insert or replace. SH_E_NOMEM leaves the map as it was. */
sh_err_t sh_group_map_put(sh_group_map_t *m, const void *key, size_t len, void *val);
/* Remove; returns the value it held, or NULL. */
void *sh_group_map_del(sh_group_map_t *m, const void *key, size_t len);

/* Iterate: start with *it = NULL and *bucket = 0; returns NULL at the end.
 * The map must not change during an iteration. */
sh_group_map_ent_t *sh_group_map_next(const sh_group_map_t *m, size_t *bucket,
                                      sh_group_map_ent_t **it);

#endif
