# bench/bench.mk - build rules for the benchmark tools, included by the
# top-level Makefile. Bench code links librdkafka as a client; nothing here
# is ever linked into the broker. Outputs go to $(BUILD)/bench/.

BENCH_DIR    := $(BUILD)/bench
BENCH_CFLAGS := -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -I. -pthread -MMD -MP
BENCH_TOOLS  := $(BENCH_DIR)/shbench $(BENCH_DIR)/shbench-mock $(BENCH_DIR)/shbench-hw

$(BENCH_DIR)/%.o: bench/%.c
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -c -o $@ $<

$(BENCH_DIR)/shbench: $(BENCH_DIR)/shbench.o $(BENCH_DIR)/shb_util.o
	$(CC) $(BENCH_CFLAGS) -o $@ $^ -lrdkafka -lm -lpthread

$(BENCH_DIR)/shbench-mock: $(BENCH_DIR)/mockbroker.o $(BENCH_DIR)/shb_mock_bind.o
	$(CC) $(BENCH_CFLAGS) -o $@ $^ -lrdkafka -lpthread

$(BENCH_DIR)/shbench-hw: $(BENCH_DIR)/hwlimits.o $(BENCH_DIR)/shb_util.o
	$(CC) $(BENCH_CFLAGS) -o $@ $^ -lm -lpthread

.PHONY: bench-tools
bench-tools: $(BENCH_TOOLS)
