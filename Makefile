# StreamHouse build. Plain make; every module folder is compiled from its
# own sources, so adding a .c file needs no edit here.
#
#   make            build bin/streamhouse-server
#   make run        install what is missing, build, start one broker (configs/server.properties)
#   make test       install what is missing, then every test: unit, ASan+UBSan, fuzz, end to end
#   make unit       cmocka unit tests (normal build)
#   make unit-pg    metadata conformance + PostgreSQL tests against a throwaway server
#   make unit-s3    object-store conformance + S3 tests against a throwaway s3rver
#   make asan       ASan+UBSan build of the unit tests, and run them
#   make fuzz       libFuzzer targets for a bounded time over their corpora
#   make compat     kafka-compat-suite against the built broker
#   make compat-s3  the same, every broker on S3 object storage (STORAGE=s3)
#   make compat-prod  the same in the production configuration: PostgreSQL + S3
#   make compat-pg  the same, every broker on PostgreSQL metadata (META=postgresql)
#   make check-layers  enforce the include rule between layers
#   make gen        regenerate protocol/generated from protocol/spec
#   make clean
#
# Unit tests are tests/unit/test_<module>[_what].c and link only their
# module and the layers below it; fuzz targets are tests/fuzz/fuzz_<module>_<what>.c.

CC      ?= cc
CFLAGS  ?= -O2 -g
override CFLAGS += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -I. -pthread -MMD -MP
# libpq's headers live in their own directory on Debian (libpq-dev)
PQ_CFLAGS := $(shell pkg-config --cflags libpq 2>/dev/null || echo -I/usr/include/postgresql)
override CFLAGS += $(PQ_CFLAGS)
LDLIBS  := -lsqlite3 -lpq -llz4 -lzstd -lsnappy -lz -lssl -lcrypto -lcurl -lpthread -lm
PYTHON  := /usr/bin/python3

BUILD   ?= build
ASAN_BUILD := build-asan
FUZZ_BUILD := build-fuzz

MODULES := common protocol wal meta storage broker
# each module and the layers it may use (CONVENTIONS.md)
deps_common   := common
deps_protocol := protocol common
deps_wal      := wal protocol common
deps_meta     := meta protocol common
deps_storage  := storage wal meta protocol common
deps_broker   := broker storage wal meta protocol common

src_common   := $(wildcard common/*.c)
src_protocol := $(wildcard protocol/*.c protocol/generated/*.c)
src_wal      := $(wildcard wal/*.c)
src_meta     := $(wildcard meta/*.c)
src_storage  := $(wildcard storage/*.c)
src_broker   := $(filter-out broker/main.c,$(wildcard broker/*.c broker/api/*.c))

lib = $(BUILD)/lib/libsh_$(1).a
libs_for = $(foreach m,$(deps_$(1)),$(call lib,$(m)))

define module_rules
$(call lib,$(1)): $$(src_$(1):%.c=$$(BUILD)/%.o)
	@mkdir -p $$(dir $$@)
	rm -f $$@
	ar rcs $$@ $$^
endef
$(foreach m,$(MODULES),$(eval $(call module_rules,$(m))))

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
test_module = $(firstword $(subst _, ,$(patsubst test_%,%,$(1))))

define unit_rule
$(BUILD)/tests/$(1): tests/unit/$(1).c $(call libs_for,$(call test_module,$(1)))
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) -o $$@ $$< $(call libs_for,$(call test_module,$(1))) $$(LDFLAGS) $$(LDLIBS) -lcmocka
endef
$(foreach t,$(UNIT_SRC:tests/unit/%.c=%),$(eval $(call unit_rule,$(t))))

FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
fuzz_module = $(firstword $(subst _, ,$(patsubst fuzz_%,%,$(1))))
FUZZ_SECONDS ?= 10

define fuzz_rule
$(BUILD)/fuzz/$(1): tests/fuzz/$(1).c $(call libs_for,$(call fuzz_module,$(1)))
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) -fsanitize=fuzzer -o $$@ $$< $(call libs_for,$(call fuzz_module,$(1))) $$(LDFLAGS) $$(LDLIBS)
endef
$(foreach t,$(FUZZ_SRC:tests/fuzz/%.c=%),$(eval $(call fuzz_rule,$(t))))

.PHONY: all run test unit unit-build asan fuzz fuzz-build compat deps deps-test clean check-layers gen check-gen
.PHONY: unit-pg compat-pg
.PHONY: unit-s3 compat-s3 compat-prod

all: bin/streamhouse-server

bin/streamhouse-server: $(BUILD)/broker/main.o $(call libs_for,broker)
	@mkdir -p bin
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

unit-build: $(UNIT_BIN)

unit: $(UNIT_BIN)
	@tests/tools/run-unit.sh $(UNIT_BIN)

# The metadata conformance suite and tests/unit/test_meta_pg*.c against a
# throwaway PostgreSQL server; pg-start.sh --run stops it however the
# tests end.
PG_UNIT_BIN := $(BUILD)/tests/test_meta_conformance $(filter $(BUILD)/tests/test_meta_pg%,$(UNIT_BIN))
unit-pg: $(PG_UNIT_BIN)
	@tests/tools/pg-start.sh --run tests/tools/run-unit.sh $(PG_UNIT_BIN)

# The object-store conformance suite and tests/unit/test_storage_s3*.c
# against a throwaway s3rver (S3 with SigV4 checks); s3-start.sh --run
# stops it however the tests end.
S3_UNIT_BIN := $(BUILD)/tests/test_storage_objstore $(filter $(BUILD)/tests/test_storage_s3%,$(UNIT_BIN))
unit-s3: $(S3_UNIT_BIN)
	@tests/tools/s3-start.sh --run tests/tools/run-unit-s3.sh $(S3_UNIT_BIN)

asan:
	$(MAKE) BUILD=$(ASAN_BUILD) CC=clang \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  LDFLAGS="-fsanitize=address,undefined" unit

fuzz-build:
	$(MAKE) BUILD=$(FUZZ_BUILD) CC=clang \
	  CFLAGS="-O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined" \
	  LDFLAGS="-fsanitize=address,undefined" \
	  $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_BUILD)/fuzz/%)

fuzz: fuzz-build
	@tests/tools/run-fuzz.sh $(FUZZ_BUILD)/fuzz $(FUZZ_SECONDS)

compat: all
	@kafka-compat-suite/run.sh

# The same scenarios with every broker's segments in S3 (a throwaway s3rver
# per scenario; kafka-compat-suite/README.md, STORAGE).
compat-s3: all
	@STORAGE=s3 kafka-compat-suite/run.sh

# The production configuration: PostgreSQL metadata and S3 segments.
compat-prod: all
	@META=postgresql STORAGE=s3 kafka-compat-suite/run.sh

# The same scenarios in the production configuration's metadata store:
# every broker on PostgreSQL (kafka-compat-suite/README.md, META).
compat-pg: all
	@META=postgresql kafka-compat-suite/run.sh

deps:
	@.ci/install-deps run

deps-test:
	@.ci/install-deps test

run: deps all
	bin/streamhouse-server configs/server.properties

test: deps-test
	$(MAKE) all
	$(MAKE) check-layers
	$(MAKE) check-gen
	$(MAKE) unit
	$(MAKE) unit-pg
	$(MAKE) unit-s3
	$(MAKE) asan
	$(MAKE) fuzz
	$(MAKE) bench-smoke
	$(MAKE) compat
	$(MAKE) compat-prod

gen:
	$(PYTHON) protocol/gen/shgen.py protocol/spec protocol/generated

check-gen:
	@tests/tools/check-gen.sh

check-layers:
	@tests/tools/check-layers.sh

clean:
	rm -rf build $(ASAN_BUILD) $(FUZZ_BUILD) bin

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# Benchmarks (bench/README.md): tools built from bench/bench.mk, never linked
# into the broker. `bench` is the full standard set; `bench-smoke` is the
# seconds-long correctness run meant for `make test`.
include bench/bench.mk
.PHONY: bench bench-smoke
bench: bench-tools
	bench/run.sh
bench-smoke: bench-tools
	SHBENCH_SHORT=1 bench/run.sh
