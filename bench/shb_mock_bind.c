/*
 * shb_mock_bind.c - pins librdkafka's mock broker listener to a chosen port.
 *
 * librdkafka 2.0.2 (rdkafka_mock.h) has no way to choose the mock broker's
 * port: it binds 127.0.0.1:0 and the kernel picks an ephemeral port. The
 * benchmark must stay inside the port range it was given and be restartable
 * on the same address, so the mock launcher defines bind() itself: the
 * executable's definition comes first in symbol lookup, librdkafka's call
 * lands here, and the first loopback bind to port 0 is redirected to
 * shb_mock_bind_port, or to one of the next shb_mock_bind_tries - 1 ports
 * when it is taken (the range we may use lies inside the kernel's
 * ephemeral range, so another program's outgoing connection can hold a
 * port for a minute in TIME_WAIT). Every other bind passes through. The
 * launcher still prints the address librdkafka reports, so a newer library
 * that binds differently shows up as a port mismatch, not a silent failure.
 *
 * This file is compiled without _GNU_SOURCE so that <sys/socket.h> declares
 * bind() with a plain pointer (glibc uses a transparent union otherwise).
 * The real bind is the system call itself.
 *
 * Threads: librdkafka may call bind from any thread; the one-shot switch is
 * an atomic exchange.
 */
#undef _GNU_SOURCE
#define _DEFAULT_SOURCE 1

#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* set by the launcher before the mock cluster is created; 0 = leave alone */
atomic_int shb_mock_bind_port;
int        shb_mock_bind_tries = 1;

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    if (addr && addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        if (in->sin_port == 0 && in->sin_addr.s_addr == htonl(INADDR_LOOPBACK)) {
            int port = atomic_exchange(&shb_mock_bind_port, 0);
            if (port > 0) {
                struct sockaddr_in fixed = *in;
                int on = 1, rc = -1;
                /* our own previous run's connections may linger in TIME_WAIT */
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
                for (int i = 0; i < shb_mock_bind_tries && port + i <= 65535; i++) {
                    fixed.sin_port = htons((uint16_t)(port + i));
                    rc = (int)syscall(SYS_bind, fd, &fixed, (socklen_t)sizeof(fixed));
                    if (rc == 0 || errno != EADDRINUSE)
                        break;
                }
                return rc;
            }
        }
    }
    return (int)syscall(SYS_bind, fd, addr, len);
}
