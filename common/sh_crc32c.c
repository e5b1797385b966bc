/*
 * sh_crc32c.c - CRC-32C with a hardware path (SSE4.2) and a slice-by-8
 * software fallback. The table is built once under pthread_once; the CPU
 * check happens once too. Any thread.
 */
#include "common/sh_crc32c.h"

#include <pthread.h>
#include <string.h>

#define SH_CRC32C_POLY 0x82F63B78u /* reflected Castagnoli polynomial */

static uint32_t sh_crc32c_table[8][256];
static pthread_once_t sh_crc32c_once = PTHREAD_ONCE_INIT;
static int sh_crc32c_hw;

#if defined(__x86_64__)
#include <cpuid.h>

__attribute__((target("sse4.2"))) static uint32_t sh_crc32c_hw_run(uint32_t crc,
                                                                    const uint8_t *p,
                                                                    size_t len)
{
    uint64_t c = crc;
    while (len && ((uintptr_t)p & 7)) {
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
        len--;
    }
    /* three-way interleave would be faster on big buffers; one stream
     * already runs at several GB/s, well above what any caller needs */
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        len -= 8;
    }
    while (len--)
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
    return (uint32_t)c;
}
#endif

static void sh_crc32c_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (SH_CRC32C_POLY & (0u - (c & 1)));
        sh_crc32c_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            sh_crc32c_table[t][i] = (sh_crc32c_table[t - 1][i] >> 8) ^
                                    sh_crc32c_table[0][sh_crc32c_table[t - 1][i] & 0xff];
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (__get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSE4_2))
        sh_crc32c_hw = 1;
#endif
}

uint32_t sh_crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    uint32_t c = ~crc;
    pthread_once(&sh_crc32c_once, sh_crc32c_init);
    while (len >= 8) {
        uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                           (uint32_t)p[3] << 24);
        c = sh_crc32c_table[7][lo & 0xff] ^ sh_crc32c_table[6][(lo >> 8) & 0xff] ^
            sh_crc32c_table[5][(lo >> 16) & 0xff] ^ sh_crc32c_table[4][lo >> 24] ^
            sh_crc32c_table[3][p[4]] ^ sh_crc32c_table[2][p[5]] ^
            sh_crc32c_table[1][p[6]] ^ sh_crc32c_table[0][p[7]];
        p += 8;
        len -= 8;
    }
    while (len--)
        c = (c >> 8) ^ sh_crc32c_table[0][(c ^ *p++) & 0xff];
    return ~c;
}

uint32_t sh_crc32c(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&sh_crc32c_once, sh_crc32c_init);
#if defined(__x86_64__)
    if (sh_crc32c_hw)
        return ~sh_crc32c_hw_run(~crc, buf, len);
#endif
    return sh_crc32c_sw(crc, buf, len);
}

int sh_crc32c_hw_available(void)
{
    pthread_once(&sh_crc32c_once, sh_crc32c_init);
    return sh_crc32c_hw;
}
