# Read after the top-level Makefile (make -f Makefile -f this) to link the
# broker into $(BUILD)/streamhouse-server instead of bin/, so a sanitized
# build can live next to the normal one. Used by build-asan-broker.sh.
$(BUILD)/streamhouse-server: $(BUILD)/broker/main.o $(call libs_for,broker)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)
