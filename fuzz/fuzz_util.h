/* fuzz/fuzz_util.h - what every libFuzzer target in fuzz/ shares.

   The loaders under test take a path (they mmap or fopen it), so each input
   is written to an anonymous in-memory file (memfd) and handed over as
   /proc/self/fd/N: no disk traffic, no temp files left behind, and the
   loaders run exactly as they do on a user's file. One memfd per process,
   truncated and rewritten for every input. */
#ifndef DC_FUZZ_UTIL_H
#define DC_FUZZ_UTIL_H

#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Writes data to this process's memfd number `slot` (0..3, made on first
   use) and returns its path; aborts if the kernel cannot make one (a
   harness failure, not a find). */
static inline const char *fuzz_file_slot(int slot, const uint8_t *data, size_t size)
{
    static int fds[4] = {-1, -1, -1, -1};
    static char paths[4][64];
    int fd = fds[slot];
    if (fd < 0) {
        fd = fds[slot] = memfd_create("dc-fuzz", 0);
        if (fd < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(paths[slot], sizeof paths[slot], "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0) abort();
    size_t done = 0;
    while (done < size) {
        ssize_t n = pwrite(fd, data + done, size - done, (off_t)done);
        if (n <= 0) abort();
        done += (size_t)n;
    }
    return paths[slot];
}

static inline const char *fuzz_file(const uint8_t *data, size_t size)
{
    return fuzz_file_slot(0, data, size);
}

/* A FILE* that swallows output (for functions that print, e.g. model info). */
static inline FILE *fuzz_devnull(void)
{
    static FILE *f;
    if (!f && !(f = fopen("/dev/null", "w"))) abort();
    return f;
}

/* The message of a failed call must be a terminated, non-empty string:
   every error path is supposed to say what went wrong. */
static inline void fuzz_check_msg(const char *msg)
{
    size_t n = strnlen(msg, 512);
    if (n == 0 || n == 512) {
        fprintf(stderr, "error message is %s\n", n ? "unterminated" : "empty");
        abort();
    }
}

#endif
