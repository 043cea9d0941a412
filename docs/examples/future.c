/* docs/future.md example: complete a future from another thread, wait for it, read the result,
 * and get a completion callback. Built and run by ctest as example-future. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft/err.h>
#include <weft/future.h>

static void *producer(void *arg)
{
    weft_future_t *f = arg;
    if (weft_future_start(f) != 0) return NULL; /* cancelled before we began */
    char *answer = strdup("42");
    if (!answer) {
        weft_future_fail(f, -ENOMEM, "no memory for the answer");
        return NULL;
    }
    weft_future_complete(f, 0, answer, strlen(answer) + 1, free); /* the future owns it now */
    return NULL;
}

static void on_done(weft_future_t *f, void *arg)
{
    printf("callback: status %d (%s)\n", weft_future_status(f), (const char *)arg);
}

int main(void)
{
    weft_future_t *f = weft_future_create();
    if (!f) return 1;
    if (weft_future_on_complete(f, on_done, "runs once, in the completing thread") != 0) return 1;

    pthread_t t;
    weft_future_retain(f); /* the producer's reference */
    if (pthread_create(&t, NULL, producer, f) != 0) return 1;

    if (weft_future_wait(f, 5000000000LL) == -ETIMEDOUT) { /* 5 s */
        fprintf(stderr, "timed out\n");
        return 1;
    }
    pthread_join(t, NULL);
    weft_future_release(f); /* the producer's reference, dropped for it after the join */

    int status = weft_future_status(f);
    if (status < 0) {
        const char *msg = weft_future_message(f);
        fprintf(stderr, "failed: %s: %s\n", weft_strerror(status), msg ? msg : "");
        weft_future_release(f);
        return 1;
    }
    size_t size;
    const char *value = weft_future_value(f, &size);
    printf("value: %s (%zu bytes)\n", value, size);
    weft_future_release(f); /* frees the future and its value */
    return 0;
}
