/* The physical floor for `weft logs`: count the lines of a file with memchr and nothing else,
 * over a memory mapping or through pread into a small buffer, on 1..N threads, timed as a whole
 * process by bench/bench-logs.sh.
 *
 *   bench-logs FILE [mmap|read] [THREADS]     prints the line count
 *   bench-logs                                (from bench/run.sh) says where the benchmark is
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *map;
static int fd, nthreads;
static uint64_t size;

static void *count(void *arg)
{
    long id = (long)arg;
    uint64_t per = size / (uint64_t)nthreads, s = (uint64_t)id * per;
    uint64_t e = id == nthreads - 1 ? size : s + per;
    uint64_t n = 0;
    if (map) {
        for (const char *p = map + s, *end = map + e; (p = memchr(p, '\n', (size_t)(end - p)));)
            n++, p++;
    } else {
        enum { BUF = 1 << 20 };
        char *buf = malloc(BUF);
        for (uint64_t off = s; buf && off < e;) {
            ssize_t got = pread(fd, buf, e - off < BUF ? (size_t)(e - off) : BUF, (off_t)off);
            if (got <= 0) break;
            for (const char *p = buf, *end = buf + got; (p = memchr(p, '\n', (size_t)(end - p)));)
                n++, p++;
            off += (uint64_t)got;
        }
        free(buf);
    }
    return (void *)(uintptr_t)n;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        printf("bench-logs: the memchr line-count floor; run bench/bench-logs.sh for the table\n");
        return 0;
    }
    fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        perror(argv[1]);
        return 2;
    }
    size = (uint64_t)st.st_size;
    nthreads = argc > 3 ? atoi(argv[3]) : 1;
    if (nthreads < 1 || nthreads > 64) nthreads = 1;
    if (argc < 3 || strcmp(argv[2], "mmap") == 0) {
        map = mmap(NULL, size ? size : 1, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            perror("mmap");
            return 2;
        }
        madvise((void *)map, size, MADV_SEQUENTIAL);
    }
    pthread_t t[64];
    for (long i = 0; i < nthreads; i++) pthread_create(&t[i], NULL, count, (void *)i);
    uint64_t lines = 0;
    for (int i = 0; i < nthreads; i++) {
        void *r;
        pthread_join(t[i], &r);
        lines += (uint64_t)(uintptr_t)r;
    }
    printf("%llu\n", (unsigned long long)lines);
    return 0;
}
