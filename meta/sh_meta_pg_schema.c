/*
 * sh_meta_pg_schema.c - the PostgreSQL schema, as an append-only list of
 * migrations (see sh_meta_migration_t), entry for entry the same tables,
 * columns, keys and indexes as sh_meta_sqlite_schema.c.
 *
 * No code runs here; sh_meta_pg.c applies the entries on open, each in its
 * own transaction under an advisory lock, on whichever thread opens the
 * store. Never edit a released entry: databases in the field have already
 * run it. To add tables, append the next version here and in the SQLite
 * list, and describe it in docs/metadata.md.
 *
 * Dialect choices, so behaviour matches SQLite exactly:
 *  - Topic ids are `uuid` (16 bytes, shown by psql in the usual form).
 *  - Integers that SQLite stores as 64-bit are `bigint`; counts, ids,
 *    partition indexes and epochs that the API carries as int32 are
 *    `integer`, so an out-of-range value fails loudly instead of wrapping.
 *  - Every text column that is compared, ordered or unique is
 *    COLLATE "C": SQLite compares bytes, and a database created with a
 *    natural-language locale would otherwise order topic names, config
 *    keys, listeners and group ids differently (the API promises byte
 *    order).
 */
#include "meta/sh_meta_backend.h"

const sh_meta_migration_t sh_meta_pg_migrations[] = {
    {
        1,
        "cluster, brokers, topics, partitions, segment chunks and objects",
        "CREATE TABLE cluster ("
        "  ckey   text COLLATE \"C\" PRIMARY KEY,"
        "  cvalue text NOT NULL"
        ");"
        "CREATE TABLE brokers ("
        "  broker_id     integer PRIMARY KEY,"
        "  broker_epoch  bigint NOT NULL,"
        "  rack          text,"
        "  registered_ms bigint NOT NULL,"
        "  heartbeat_ms  bigint NOT NULL"
        ");"
        "CREATE TABLE broker_endpoints ("
        "  broker_id         integer NOT NULL"
        "                    REFERENCES brokers (broker_id) ON DELETE CASCADE,"
        "  listener          text COLLATE \"C\" NOT NULL,"
        "  host              text NOT NULL,"
        "  port              integer NOT NULL,"
        "  security_protocol integer NOT NULL,"
        "  PRIMARY KEY (broker_id, listener)"
        ");"
        "CREATE TABLE topics ("
        "  topic_id        uuid PRIMARY KEY,"
        "  name            text COLLATE \"C\" NOT NULL UNIQUE,"
        "  partition_count integer NOT NULL CHECK (partition_count > 0),"
        "  created_ms      bigint NOT NULL,"
        "  state           integer NOT NULL DEFAULT 0 CHECK (state IN (0, 1))"
        ");"
        "CREATE TABLE topic_configs ("
        "  topic_id     uuid NOT NULL REFERENCES topics (topic_id) ON DELETE CASCADE,"
        "  config_key   text COLLATE \"C\" NOT NULL,"
        "  config_value text NOT NULL,"
        "  PRIMARY KEY (topic_id, config_key)"
        ");"
        "CREATE TABLE partitions ("
        "  topic_id         uuid NOT NULL REFERENCES topics (topic_id) ON DELETE CASCADE,"
        "  partition_index  integer NOT NULL CHECK (partition_index >= 0),"
        "  leader_id        integer NOT NULL DEFAULT -1,"
        "  leader_epoch     integer NOT NULL DEFAULT -1,"
        "  lease_expiry_ms  bigint NOT NULL DEFAULT 0,"
        "  log_start_offset bigint NOT NULL DEFAULT 0,"
        "  high_watermark   bigint NOT NULL DEFAULT 0,"
        "  PRIMARY KEY (topic_id, partition_index)"
        ");"
        "CREATE TABLE segment_objects ("
        "  object_key  text COLLATE \"C\" PRIMARY KEY,"
        "  size_bytes  bigint NOT NULL CHECK (size_bytes >= 0),"
        "  live_chunks bigint NOT NULL CHECK (live_chunks >= 0),"
        "  created_ms  bigint NOT NULL"
        ");"
        /* The garbage list: only rows at zero are indexed. */
        "CREATE INDEX segment_objects_unreferenced"
        "  ON segment_objects (created_ms, object_key) WHERE live_chunks = 0;"
        "CREATE TABLE segment_chunks ("
        "  topic_id        uuid NOT NULL,"
        "  partition_index integer NOT NULL,"
        "  base_offset     bigint NOT NULL,"
        "  last_offset     bigint NOT NULL,"
        "  max_timestamp   bigint NOT NULL,"
        "  object_key      text COLLATE \"C\" NOT NULL"
        "                  REFERENCES segment_objects (object_key),"
        "  byte_offset     bigint NOT NULL CHECK (byte_offset >= 0),"
        "  byte_length     bigint NOT NULL CHECK (byte_length > 0),"
        "  leader_epoch    integer NOT NULL,"
        "  committed_ms    bigint NOT NULL,"
        "  PRIMARY KEY (topic_id, partition_index, base_offset),"
        "  FOREIGN KEY (topic_id, partition_index)"
        "    REFERENCES partitions (topic_id, partition_index),"
        "  CHECK (last_offset >= base_offset)"
        ");"
        /* Chunks of a partition never overlap, so last_offset orders them
         * like base_offset and "first chunk with last_offset >= X" is one
         * index seek (the Fetch lookup). */
        "CREATE UNIQUE INDEX segment_chunks_by_last"
        "  ON segment_chunks (topic_id, partition_index, last_offset);"
        "CREATE INDEX segment_chunks_by_object ON segment_chunks (object_key);",
    },
    {
        2,
        "consumer group offsets and producer id blocks",
        /* Keyed by topic name, as OffsetCommit addresses them; dropping a
         * topic removes its rows so a new topic of the same name starts
         * clean. */
        "CREATE TABLE group_offsets ("
        "  group_id         text COLLATE \"C\" NOT NULL,"
        "  topic_name       text COLLATE \"C\" NOT NULL,"
        "  partition_index  integer NOT NULL,"
        "  committed_offset bigint NOT NULL,"
        "  leader_epoch     integer NOT NULL DEFAULT -1,"
        "  metadata         text,"
        "  commit_ms        bigint NOT NULL,"
        "  PRIMARY KEY (group_id, topic_name, partition_index)"
        ");"
        "CREATE INDEX group_offsets_by_topic ON group_offsets (topic_name);"
        "CREATE TABLE producer_id_blocks ("
        "  first_id     bigint PRIMARY KEY,"
        "  block_size   integer NOT NULL CHECK (block_size > 0),"
        "  broker_id    integer NOT NULL,"
        "  allocated_ms bigint NOT NULL"
        ");",
    },
    {
        3,
        "producer epochs and partition producer snapshots",
        /* One row per producer id handed out: the epoch every broker
         * fences against (docs/idempotence.md). */
        "CREATE TABLE producers ("
        "  producer_id bigint PRIMARY KEY CHECK (producer_id >= 0),"
        "  epoch       integer NOT NULL,"
        "  last_epoch  integer NOT NULL DEFAULT -1,"
        "  updated_ms  bigint NOT NULL"
        ");"
        "CREATE INDEX producers_by_update ON producers (updated_ms);"
        /* A partition's producer state as of an offset, kept opaque: the
         * row at the committed offset and at most one above it. */
        "CREATE TABLE producer_snapshots ("
        "  topic_id        uuid NOT NULL,"
        "  partition_index integer NOT NULL,"
        "  as_of_offset    bigint NOT NULL CHECK (as_of_offset >= 0),"
        "  leader_epoch    integer NOT NULL,"
        "  created_ms      bigint NOT NULL,"
        "  data            text NOT NULL,"
        "  PRIMARY KEY (topic_id, partition_index, as_of_offset),"
        "  FOREIGN KEY (topic_id, partition_index)"
        "    REFERENCES partitions (topic_id, partition_index) ON DELETE CASCADE"
        ");",
    },
};

const int sh_meta_pg_migrations_count =
    (int)(sizeof(sh_meta_pg_migrations) / sizeof(sh_meta_pg_migrations[0]));
