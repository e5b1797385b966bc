/*
 * sh_meta_properties.h - the data directory's identity file,
 * <log.dirs>/meta.properties, in the format Kafka's KRaft brokers use
 * (version=1, cluster.id, node.id).
 *
 * The cluster id is a random 16-byte UUID in Kafka's text form: 22
 * characters of unpadded base64url. It is generated on first start and
 * kept; a directory that belongs to another node id is refused, as Kafka
 * refuses it. Once the metadata store exists it will own the cluster id
 * and this file will only cache it.
 *
 * Thread: main thread at startup (blocking file I/O).
 */
#ifndef SH_META_PROPERTIES_H
#define SH_META_PROPERTIES_H

#include <stdbool.h>
#include <stdint.h>

#include "common/sh_err.h"

#define SH_META_PROPERTIES_FILE "meta.properties"

/* Create dir (and parents) if needed, then read or create its
 * meta.properties. cluster_id receives 22 characters and a NUL.
 * Errors are logged with the file name. */
sh_err_t sh_meta_properties_load(const char *dir, int32_t node_id,
                                 char cluster_id[23]);

/* The metadata store owns the cluster id; the file caches it, as Kafka's
 * meta.properties does. Create dir if needed; write the file with
 * cluster_id if it is missing; refuse (SH_E_INVAL, logged with both ids)
 * a file that names another cluster or another node. */
sh_err_t sh_meta_properties_check(const char *dir, int32_t node_id,
                                  const char *cluster_id);

/* A new random cluster id (22 chars + NUL). */
sh_err_t sh_meta_properties_new_cluster_id(char out[23]);

/* Is s (NUL-terminated) a well-formed 22-char base64url UUID? */
bool sh_meta_properties_cluster_id_valid(const char *s);

/* mkdir -p. */
sh_err_t sh_meta_properties_mkdirs(const char *path);

#endif
