/* Internal: the one reversal of an intrusive singly linked list. Lock-free stacks (the pool's
 * inbox, a future's callbacks) push newest first; consumers reverse them into arrival order. */
#ifndef WEFT_CORE_SLIST_H
#define WEFT_CORE_SLIST_H

/* Reverses the list at `head` (an lvalue of type T *) linked through the member `next`. */
#define WEFT__SLIST_REVERSE(head, next)                                                            \
    do {                                                                                           \
        __typeof__(head) rev_ = NULL;                                                              \
        while (head) {                                                                             \
            __typeof__(head) nx_ = (head)->next;                                                   \
            (head)->next = rev_;                                                                   \
            rev_ = (head);                                                                         \
            (head) = nx_;                                                                          \
        }                                                                                          \
        (head) = rev_;                                                                             \
    } while (0)

#endif
