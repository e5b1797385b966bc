/*
 * sh_crc32c.h - CRC-32C (Castagnoli), as Kafka's RecordBatch and our WAL
 * frames use it. Uses the SSE4.2 crc32 instruction when the CPU has it
 * (checked once at first use), else a slice-by-8 table.
 * Thread-safe.
 */
#ifndef SH_CRC32C_H
#define SH_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continue a CRC: start with crc = 0 for a fresh checksum. */
uint32_t sh_crc32c(uint32_t crc, const void *buf, size_t len);

/* The portable implementation, exposed so tests can compare both paths. */
uint32_t sh_crc32c_sw(uint32_t crc, const void *buf, size_t len);

/* 1 when the hardware path is in use. */
int sh_crc32c_hw_available(void);

#endif
