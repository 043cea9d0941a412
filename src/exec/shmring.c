/* A single-producer single-consumer record ring in shared memory (see shmring.h).
 *
 * DESIGN
 * Threads: exactly one producer and one consumer, usually in different processes; each owns a
 * private weft_shmring_t. Several threads may act as "the producer" only if they serialise
 * themselves (the process pool holds its mutex).
 *
 * Indices are free-running 64-bit byte counts: head (written by the producer), tail (written by
 * the consumer); head - tail <= size always, and a record starts at index % size. Because the
 * data area is mapped twice back to back, data + (index % size) addresses `size` contiguous
 * bytes, so records never split.
 *
 * Ordering (every pair named):
 *   - publish: the producer writes records, then stores head (seq_cst, a release at least);
 *     the consumer loads head (acquire) in peek before reading records.
 *   - release: the consumer reads records, then stores tail (seq_cst); the producer loads tail
 *     (acquire) in reserve before overwriting that space.
 *   - sleeping: store waiting flag (seq_cst) then load the other index (seq_cst), against store
 *     index (seq_cst) then load waiting flag (seq_cst): Dekker, see shmring.h. The waker then
 *     takes the flag with an exchange (only one wake per sleep) and bumps the futex word
 *     (release; pairs with the acquire load of the word before the sleeper rechecks).
 * Nothing read from the shared header is trusted: every index is range-checked.
 */
#include "exec/shmring.h"

#include <errno.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define ALIGN16(n) (((n) + 15u) & ~(uint64_t)15u)

size_t weft__shmring_data_size(size_t want)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t n = page;
    while (n < want) n *= 2;
    return n;
}

void weft__shmring_format(weft_shmring_shared_t *sh, uint64_t size)
{
    memset(sh, 0, sizeof *sh);
    atomic_init(&sh->head, 0);
    atomic_init(&sh->tail, 0);
    atomic_init(&sh->consumer_waiting, 0);
    atomic_init(&sh->producer_waiting, 0);
    atomic_init(&sh->consumer_seq, 0);
    atomic_init(&sh->producer_seq, 0);
    sh->size = size;
}

int weft__shmring_map(int fd, off_t off, size_t size, void **data)
{
    *data = NULL;
    /* Reserve 2 * size of address space, then place the same file range twice inside it. */
    unsigned char *base =
        mmap(NULL, 2 * size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) return -errno;
    for (int i = 0; i < 2; i++) {
        void *p = mmap(base + (size_t)i * size, size, PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_FIXED, fd, off);
        if (p == MAP_FAILED) {
            int e = -errno;
            munmap(base, 2 * size);
            return e;
        }
    }
    *data = base;
    return 0;
}

void weft__shmring_unmap(void *data, size_t size)
{
    if (data) munmap(data, 2 * size);
}

int weft__shmring_attach(weft_shmring_t *r, weft_shmring_shared_t *sh, void *data, uint64_t size,
                         bool producer)
{
    memset(r, 0, sizeof *r);
    if (sh->size != size || size < 4096 || (size & (size - 1))) return -EPROTO;
    r->sh = sh;
    r->data = data;
    r->size = size;
    /* Acquire: pairs with the other side's stores, in case the ring was used before. */
    uint64_t head = atomic_load_explicit(&sh->head, memory_order_acquire);
    uint64_t tail = atomic_load_explicit(&sh->tail, memory_order_acquire);
    if (head < tail || head - tail > size) return -EPROTO;
    r->pos = r->pub = producer ? head : tail;
    r->other = producer ? tail : head;
    return 0;
}

/* ---- producer ------------------------------------------------------------------------------ */

void *weft__shmring_reserve(weft_shmring_t *r, size_t len)
{
    if (len > r->size - WEFT_SHMRING_HDR) return NULL;
    uint64_t need = ALIGN16(WEFT_SHMRING_HDR + (uint64_t)len);
    if (r->pos - r->other + need > r->size) {
        /* Acquire: pairs with the consumer's seq_cst store of tail in release(), so its reads
         * of this space are done before we overwrite it. */
        uint64_t t = atomic_load_explicit(&r->sh->tail, memory_order_acquire);
        if (t < r->other || t > r->pub) return NULL; /* corrupt: treat as full */
        r->other = t;
        if (r->pos - r->other + need > r->size) return NULL;
    }
    unsigned char *p = r->data + (r->pos & (r->size - 1));
    uint64_t hdr[2] = {(uint64_t)len, 0};
    memcpy(p, hdr, sizeof hdr);
    r->pos += need;
    return p + WEFT_SHMRING_HDR;
}

void weft__shmring_unreserve(weft_shmring_t *r, uint64_t pos)
{
    if (pos >= r->pub && pos <= r->pos) r->pos = pos;
}

void *weft__shmring_record_at(const weft_shmring_t *r, uint64_t pos, size_t *len)
{
    unsigned char *p = r->data + (pos & (r->size - 1));
    uint64_t n;
    memcpy(&n, p, sizeof n);
    if (n > r->size - WEFT_SHMRING_HDR || pos + ALIGN16(WEFT_SHMRING_HDR + n) > r->pos) return NULL;
    *len = (size_t)n;
    return p + WEFT_SHMRING_HDR;
}

bool weft__shmring_claim_consumer_wake(weft_shmring_t *r)
{
    /* seq_cst load: the second half of the producer's Dekker pair (see file comment). */
    if (!atomic_load_explicit(&r->sh->consumer_waiting, memory_order_seq_cst)) return false;
    if (!atomic_exchange_explicit(&r->sh->consumer_waiting, 0, memory_order_seq_cst)) return false;
    /* Release: pairs with the acquire load of consumer_seq in consumer_prepare. */
    atomic_fetch_add_explicit(&r->sh->consumer_seq, 1, memory_order_release);
    return true;
}

bool weft__shmring_publish(weft_shmring_t *r)
{
    if (r->pos == r->pub) return false;
    /* seq_cst: publishes the records (pairs with the acquire load in peek) and is the first
     * half of the Dekker pair against consumer_prepare. */
    atomic_store_explicit(&r->sh->head, r->pos, memory_order_seq_cst);
    r->pub = r->pos;
    return weft__shmring_claim_consumer_wake(r);
}

uint64_t weft__shmring_consumed(const weft_shmring_t *r)
{
    /* Acquire: pairs with the consumer's store of tail in release(). */
    return atomic_load_explicit(&r->sh->tail, memory_order_acquire);
}

uint64_t weft__shmring_tail_for(const weft_shmring_t *r, size_t len)
{
    uint64_t need = ALIGN16(WEFT_SHMRING_HDR + (uint64_t)len);
    return r->pos + need > r->size ? r->pos + need - r->size : 0;
}

bool weft__shmring_producer_prepare(weft_shmring_t *r, uint64_t want_tail, uint32_t *seq)
{
    /* Acquire: pairs with the release increment in release(). */
    *seq = atomic_load_explicit(&r->sh->producer_seq, memory_order_acquire);
    atomic_store_explicit(&r->sh->producer_waiting, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&r->sh->tail, memory_order_seq_cst) >= want_tail) {
        atomic_store_explicit(&r->sh->producer_waiting, 0, memory_order_relaxed);
        return false;
    }
    return true;
}

static int futex_wait(_Atomic uint32_t *word, uint32_t val, int64_t timeout_ns)
{
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000);
        ts.tv_nsec = (long)(timeout_ns % 1000000000);
        tsp = &ts;
    }
    /* Not FUTEX_PRIVATE_FLAG: the word is shared between processes. */
    if (syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, val, tsp, NULL, 0) < 0) return -errno;
    return 0;
}

static void futex_wake(_Atomic uint32_t *word)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, 1, NULL, NULL, 0);
}

int weft__shmring_producer_sleep(weft_shmring_t *r, uint32_t seq, int64_t timeout_ns)
{
    int rc = futex_wait(&r->sh->producer_seq, seq, timeout_ns);
    atomic_store_explicit(&r->sh->producer_waiting, 0, memory_order_relaxed);
    return rc;
}

void weft__shmring_wake_consumer(weft_shmring_t *r)
{
    futex_wake(&r->sh->consumer_seq);
}

void weft__shmring_wake_producer(weft_shmring_t *r)
{
    futex_wake(&r->sh->producer_seq);
}

/* ---- consumer ------------------------------------------------------------------------------ */

int weft__shmring_peek(weft_shmring_t *r, void **payload, size_t *len)
{
    if (r->pos == r->other) {
        /* Acquire: pairs with the producer's seq_cst store of head in publish(). */
        uint64_t h = atomic_load_explicit(&r->sh->head, memory_order_acquire);
        if (h < r->other || h - r->pub > r->size) return -EPROTO;
        r->other = h;
        if (r->pos == h) return 0;
    }
    unsigned char *p = r->data + (r->pos & (r->size - 1));
    uint64_t n;
    memcpy(&n, p, sizeof n);
    if (n > r->size - WEFT_SHMRING_HDR) return -EPROTO;
    uint64_t need = ALIGN16(WEFT_SHMRING_HDR + n);
    if (need > r->other - r->pos) return -EPROTO;
    r->cur = need;
    *payload = p + WEFT_SHMRING_HDR;
    *len = (size_t)n;
    return 1;
}

void weft__shmring_next(weft_shmring_t *r)
{
    r->pos += r->cur;
    r->cur = 0;
}

bool weft__shmring_release(weft_shmring_t *r)
{
    if (r->pos == r->pub) return false;
    /* seq_cst: gives the space back (pairs with the acquire load in reserve) and is the first
     * half of the Dekker pair against producer_prepare. */
    atomic_store_explicit(&r->sh->tail, r->pos, memory_order_seq_cst);
    r->pub = r->pos;
    if (!atomic_load_explicit(&r->sh->producer_waiting, memory_order_seq_cst)) return false;
    if (!atomic_exchange_explicit(&r->sh->producer_waiting, 0, memory_order_seq_cst)) return false;
    /* Release: pairs with the acquire load of producer_seq in producer_prepare. */
    atomic_fetch_add_explicit(&r->sh->producer_seq, 1, memory_order_release);
    return true;
}

bool weft__shmring_empty(weft_shmring_t *r)
{
    if (r->pos != r->other) return false;
    /* Acquire: as in peek. */
    return atomic_load_explicit(&r->sh->head, memory_order_acquire) == r->pos;
}

bool weft__shmring_consumer_prepare(weft_shmring_t *r, uint32_t *seq)
{
    /* Acquire: pairs with the release increment in claim_consumer_wake. */
    *seq = atomic_load_explicit(&r->sh->consumer_seq, memory_order_acquire);
    atomic_store_explicit(&r->sh->consumer_waiting, 1, memory_order_seq_cst);
    if (r->pos != r->other || atomic_load_explicit(&r->sh->head, memory_order_seq_cst) != r->pos) {
        atomic_store_explicit(&r->sh->consumer_waiting, 0, memory_order_relaxed);
        return false;
    }
    return true;
}

void weft__shmring_consumer_unprepare(weft_shmring_t *r)
{
    atomic_store_explicit(&r->sh->consumer_waiting, 0, memory_order_relaxed);
}

int weft__shmring_consumer_sleep(weft_shmring_t *r, uint32_t seq, int64_t timeout_ns)
{
    return futex_wait(&r->sh->consumer_seq, seq, timeout_ns);
}
