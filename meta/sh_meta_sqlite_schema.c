/*
 * sh_meta_sqlite_schema.c - the SQLite schema, as an append-only list of
 * migrations (see sh_meta_migration_t).
 *
 * No code runs here; sh_meta_sqlite.c applies the entries on open, on
 * whichever thread opens the store. To add tables: append an entry with
 * the next version number, mirror it in the PostgreSQL list, describe it in
 * docs/metadata.md. Never edit a released entry: databases in the field
 * have already run it.
 *
 * Column names avoid words that are reserved in either dialect ("offset",
 * "partition", "key"), so the two lists stay line-for-line comparable.
 */
#include "meta/sh_meta_backend.h"

const sh_meta_migration_t sh_meta_sqlite_migrations[] = {
    {
        1,
        "cluster, brokers, topics, partitions, segment chunks and objects",
        /* Small singletons (the cluster id) as key/value rows. */
        "CREATE TABLE cluster ("
        "  ckey   TEXT PRIMARY KEY,"
        "  cvalue TEXT NOT NULL"
        ");"
        "CREATE TABLE brokers ("
        "  broker_id     INTEGER PRIMARY KEY,"
        "  broker_epoch  INTEGER NOT NULL,"
        "  rack          TEXT,"
        "  registered_ms INTEGER NOT NULL,"
        "  heartbeat_ms  INTEGER NOT NULL"
        ");"
        "CREATE TABLE broker_endpoints ("
        "  broker_id         INTEGER NOT NULL"
        "                    REFERENCES brokers (broker_id) ON DELETE CASCADE,"
        "  listener          TEXT NOT NULL,"
        "  host              TEXT NOT NULL,"
        "  port              INTEGER NOT NULL,"
        "  security_protocol INTEGER NOT NULL,"
        "  PRIMARY KEY (broker_id, listener)"
        ") WITHOUT ROWID;"
        "CREATE TABLE topics ("
        "  topic_id        BLOB PRIMARY KEY CHECK (length(topic_id) = 16),"
        "  name            TEXT NOT NULL UNIQUE,"
        "  partition_count INTEGER NOT NULL CHECK (partition_count > 0),"
        "  created_ms      INTEGER NOT NULL,"
        "  state           INTEGER NOT NULL DEFAULT 0 CHECK (state IN (0, 1))"
        ");"
        "CREATE TABLE topic_configs ("
        "  topic_id     BLOB NOT NULL REFERENCES topics (topic_id) ON DELETE CASCADE,"
        "  config_key   TEXT NOT NULL,"
        "  config_value TEXT NOT NULL,"
        "  PRIMARY KEY (topic_id, config_key)"
        ") WITHOUT ROWID;"
        "CREATE TABLE partitions ("
        "  topic_id         BLOB NOT NULL REFERENCES topics (topic_id) ON DELETE CASCADE,"
        "  partition_index  INTEGER NOT NULL CHECK (partition_index >= 0),"
        "  leader_id        INTEGER NOT NULL DEFAULT -1,"
        "  leader_epoch     INTEGER NOT NULL DEFAULT -1,"
        "  lease_expiry_ms  INTEGER NOT NULL DEFAULT 0,"
        "  log_start_offset INTEGER NOT NULL DEFAULT 0,"
        "  high_watermark   INTEGER NOT NULL DEFAULT 0,"
        "  PRIMARY KEY (topic_id, partition_index)"
        ") WITHOUT ROWID;"
        "CREATE TABLE segment_objects ("
        "  object_key  TEXT PRIMARY KEY,"
        "  size_bytes  INTEGER NOT NULL CHECK (size_bytes >= 0),"
        "  live_chunks INTEGER NOT NULL CHECK (live_chunks >= 0),"
        "  created_ms  INTEGER NOT NULL"
        ");"
        /* The garbage list: only rows at zero are indexed. */
        "CREATE INDEX segment_objects_unreferenced"
        "  ON segment_objects (created_ms, object_key) WHERE live_chunks = 0;"
        "CREATE TABLE segment_chunks ("
        "  topic_id        BLOB NOT NULL,"
        "  partition_index INTEGER NOT NULL,"
        "  base_offset     INTEGER NOT NULL,"
        "  last_offset     INTEGER NOT NULL,"
        "  max_timestamp   INTEGER NOT NULL,"
        "  object_key      TEXT NOT NULL REFERENCES segment_objects (object_key),"
        "  byte_offset     INTEGER NOT NULL CHECK (byte_offset >= 0),"
        "  byte_length     INTEGER NOT NULL CHECK (byte_length > 0),"
        "  leader_epoch    INTEGER NOT NULL,"
        "  committed_ms    INTEGER NOT NULL,"
        "  PRIMARY KEY (topic_id, partition_index, base_offset),"
        "  FOREIGN KEY (topic_id, partition_index)"
        "    REFERENCES partitions (topic_id, partition_index),"
        "  CHECK (last_offset >= base_offset)"
        ") WITHOUT ROWID;"
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
        "  group_id         TEXT NOT NULL,"
        "  topic_name       TEXT NOT NULL,"
        "  partition_index  INTEGER NOT NULL,"
        "  committed_offset INTEGER NOT NULL,"
        "  leader_epoch     INTEGER NOT NULL DEFAULT -1,"
        "  metadata         TEXT,"
        "  commit_ms        INTEGER NOT NULL,"
        "  PRIMARY KEY (group_id, topic_name, partition_index)"
        ") WITHOUT ROWID;"
        "CREATE INDEX group_offsets_by_topic ON group_offsets (topic_name);"
        "CREATE TABLE producer_id_blocks ("
        "  first_id     INTEGER PRIMARY KEY,"
        "  block_size   INTEGER NOT NULL CHECK (block_size > 0),"
        "  broker_id    INTEGER NOT NULL,"
        "  allocated_ms INTEGER NOT NULL"
        ");",
    },
    {
        3,
        "producer epochs and partition producer snapshots",
        /* One row per producer id handed out: the epoch every broker
         * fences against (docs/idempotence.md). */
        "CREATE TABLE producers ("
        "  producer_id INTEGER PRIMARY KEY CHECK (producer_id >= 0),"
        "  epoch       INTEGER NOT NULL,"
        "  last_epoch  INTEGER NOT NULL DEFAULT -1,"
        "  updated_ms  INTEGER NOT NULL"
        ");"
        "CREATE INDEX producers_by_update ON producers (updated_ms);"
        /* A partition's producer state as of an offset, kept opaque: the
         * row at the committed offset and at most one above it. */
        "CREATE TABLE producer_snapshots ("
        "  topic_id        BLOB NOT NULL,"
        "  partition_index INTEGER NOT NULL,"
        "  as_of_offset    INTEGER NOT NULL CHECK (as_of_offset >= 0),"
        "  leader_epoch    INTEGER NOT NULL,"
        "  created_ms      INTEGER NOT NULL,"
        "  data            TEXT NOT NULL,"
        "  PRIMARY KEY (topic_id, partition_index, as_of_offset),"
        "  FOREIGN KEY (topic_id, partition_index)"
        "    REFERENCES partitions (topic_id, partition_index) ON DELETE CASCADE"
        ") WITHOUT ROWID;",
    },
};

const int sh_meta_sqlite_migrations_count =
    (int)(sizeof(sh_meta_sqlite_migrations) / sizeof(sh_meta_sqlite_migrations[0]));
