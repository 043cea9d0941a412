/* Internal: a single-producer single-consumer ring of variable-length records in memory shared
 * between two processes (or threads), with sleep/wake-up only when the other side is asleep.
 *
 * The shared part is a small header (two indices, two "waiting" flags, two futex words) and a
 * data area of a power-of-two size that is mapped TWICE back to back (weft__shmring_map), so a
 * record that runs past the end of the area is still contiguous in memory: no wrap-around
 * padding, and a record of up to size - 16 bytes always fits in an empty ring. Each side keeps
 * a private handle (weft_shmring_t) in its own memory; nothing the other side writes is trusted
 * without validation (a crashed or buggy peer cannot make us read out of bounds).
 *
 * Records are 16-byte aligned: a 16-byte header (the length) then the payload, so the payload
 * is 16-byte aligned too.
 *
 * Sleeping is Dekker-style with sequentially consistent operations: the sleeper stores its
 * "waiting" flag then re-reads the other index; the other side stores its index then reads the
 * flag. In the single total order of seq_cst operations one of them sees the other, so either
 * the sleeper notices the new data or the other side notices the sleeper and wakes it. A side
 * that never sleeps makes no system call: a busy pipeline costs two atomic stores per batch.
 * The wake-up itself is the caller's choice: a futex on the seq word (weft__shmring_wake_*), or
 * anything else (an eventfd) when the sleeper waits for several things at once.
 */
#ifndef WEFT_EXEC_SHMRING_H
#define WEFT_EXEC_SHMRING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The shared header: place it in shared memory and initialise it with weft__shmring_format. */
typedef struct weft_shmring_shared {
    _Alignas(64) _Atomic uint64_t head; /* bytes published by the producer */
    _Atomic uint32_t consumer_waiting;  /* 1: the consumer is asleep or about to sleep */
    _Atomic uint32_t consumer_seq;      /* futex word the consumer sleeps on */
    _Alignas(64) _Atomic uint64_t tail; /* bytes released by the consumer */
    _Atomic uint32_t producer_waiting;  /* 1: the producer waits for space */
    _Atomic uint32_t producer_seq;      /* futex word the producer sleeps on */
    _Alignas(64) uint64_t size;         /* data bytes; written once by format */
} weft_shmring_shared_t;

/* One side's private handle. Fields are private to shmring.c. */
typedef struct weft_shmring {
    weft_shmring_shared_t *sh;
    unsigned char *data; /* the double mapping: 2 * size bytes */
    uint64_t size;
    uint64_t pos;   /* producer: end of the reserved records; consumer: the next unread record */
    uint64_t pub;   /* producer: head last published; consumer: tail last released */
    uint64_t other; /* cached copy of the other side's index */
    uint64_t cur;   /* consumer: bytes of the record returned by the last peek */
} weft_shmring_t;

#define WEFT_SHMRING_HDR 16u

/* Rounds `want` up to a usable data size: a power of two and a multiple of the page size. */
size_t weft__shmring_data_size(size_t want);

/* Initialises a shared header for a data area of `size` bytes (from weft__shmring_data_size).
 * Thread safety: before the ring is shared. */
void weft__shmring_format(weft_shmring_shared_t *sh, uint64_t size);

/* Maps `size` bytes of `fd` at page-aligned offset `off` twice, back to back. Returns 0 and
 * *data, or a negative errno. Unmap with weft__shmring_unmap(data, size). */
int weft__shmring_map(int fd, off_t off, size_t size, void **data);
void weft__shmring_unmap(void *data, size_t size);

/* Attaches a handle as the producer or the consumer. Returns 0, or -EPROTO if the shared
 * header does not describe `size` bytes. */
int weft__shmring_attach(weft_shmring_t *r, weft_shmring_shared_t *sh, void *data, uint64_t size,
                         bool producer);

/* The largest payload a record can carry. */
static inline size_t weft__shmring_max_record(const weft_shmring_t *r)
{
    return (size_t)r->size - WEFT_SHMRING_HDR;
}

/* ---- producer ---- */

/* Reserves a record of `len` payload bytes and returns a pointer to its payload (16-byte
 * aligned), or NULL if the ring has no room now (or the consumer's index is corrupt). The record
 * is invisible to the consumer until weft__shmring_publish. */
void *weft__shmring_reserve(weft_shmring_t *r, size_t len);

/* The ring position where the next reserved record will start (record positions identify
 * records for weft__shmring_record_at). */
static inline uint64_t weft__shmring_wpos(const weft_shmring_t *r)
{
    return r->pos;
}

/* Drops the records reserved at or after position `pos` that are not published yet. */
void weft__shmring_unreserve(weft_shmring_t *r, uint64_t pos);

/* Returns the payload of the record at position `pos` (reserved earlier by this producer and not
 * yet released by the consumer), with its length; NULL if the stored length is corrupt. */
void *weft__shmring_record_at(const weft_shmring_t *r, uint64_t pos, size_t *len);

/* Makes every reserved record visible. Returns true if the consumer was asleep: the caller must
 * then wake it (weft__shmring_wake_consumer, or its own mechanism). */
bool weft__shmring_publish(weft_shmring_t *r);

/* For a producer that wants to wake a sleeping consumer without publishing (e.g. to tell it
 * something through another shared word it stored with seq_cst before this call). Returns true
 * if the consumer was asleep (and the caller must wake it). */
bool weft__shmring_claim_consumer_wake(weft_shmring_t *r);

/* The consumer's released index, read now (acquire). */
uint64_t weft__shmring_consumed(const weft_shmring_t *r);

/* The tail value at which `len` more payload bytes fit. */
uint64_t weft__shmring_tail_for(const weft_shmring_t *r, size_t len);

/* Prepares to sleep until the consumer's tail reaches `want_tail`: returns false if it already
 * has (do not sleep), else true with *seq set for weft__shmring_producer_sleep. */
bool weft__shmring_producer_prepare(weft_shmring_t *r, uint64_t want_tail, uint32_t *seq);
/* Sleeps on the producer futex word (at most timeout_ns; < 0: no limit). Returns 0 or -errno;
 * spurious returns are possible: re-check. */
int weft__shmring_producer_sleep(weft_shmring_t *r, uint32_t seq, int64_t timeout_ns);

/* Futex wake-ups for the two sides (after publish/release returned true). */
void weft__shmring_wake_consumer(weft_shmring_t *r);
void weft__shmring_wake_producer(weft_shmring_t *r);

/* ---- consumer ---- */

/* Looks at the next record: returns 1 with *payload and *len, 0 if the ring is empty, or
 * -EPROTO if the producer's data is corrupt. The record stays until weft__shmring_next. */
int weft__shmring_peek(weft_shmring_t *r, void **payload, size_t *len);

/* Steps past the record returned by the last successful peek (still not released). */
void weft__shmring_next(weft_shmring_t *r);

/* Gives every record stepped past back to the producer. Returns true if the producer was
 * waiting for space: the caller must wake it (weft__shmring_wake_producer). */
bool weft__shmring_release(weft_shmring_t *r);

/* True if nothing unread was published (reads the producer's index now). */
bool weft__shmring_empty(weft_shmring_t *r);

/* Prepares to sleep until a record arrives: returns false if one already has (do not sleep),
 * else true with *seq set for weft__shmring_consumer_sleep. After waking up by any means, call
 * weft__shmring_consumer_unprepare. */
bool weft__shmring_consumer_prepare(weft_shmring_t *r, uint32_t *seq);
void weft__shmring_consumer_unprepare(weft_shmring_t *r);
int weft__shmring_consumer_sleep(weft_shmring_t *r, uint32_t seq, int64_t timeout_ns);

#endif /* WEFT_EXEC_SHMRING_H */
