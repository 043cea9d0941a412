/* The test harness: one executable per module (tests/test-<module>.c), each test forked into its
 * own child with a timeout, so a crash or deadlock fails one test instead of hanging CI.
 *
 *   test-pool              run every test, each in a child; prints "N passed, N failed"
 *   test-pool NAME...      run the named tests in this process (for gdb)
 *   test-pool --list       list the tests
 *
 * After each test the child checks that it leaked no file descriptors, threads or child
 * processes. WEFT_TEST_TIMEOUT (seconds, default 60) bounds each test; WEFT_TEST_SCALE
 * (default 1) multiplies the iteration knobs of stress tests.
 */
#ifndef WEFT_TEST_HARNESS_H
#define WEFT_TEST_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

typedef void (*weft_test_fn)(void);
void weft_test_register(const char *name, weft_test_fn fn, int timeout_s);
void weft_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
/* Multiplies iteration counts of stress tests; smaller under sanitizers. */
long weft_test_scale(long n);
/* Skip the leak check for this test (for tests that deliberately leave state, e.g. forks). */
void weft_test_no_leak_check(void);
/* Fault injection: installs (weft_replace_allocator) an allocator whose nth allocation from now
 * fails, counted across all threads (1 = the next one; <= 0: none fails). */
void weft_test_fail_alloc(long nth);
/* True while the failing allocation set by weft_test_fail_alloc has not happened yet. */
bool weft_test_alloc_failure_pending(void);
/* Reinstalls the C library's allocator. */
void weft_test_restore_alloc(void);
/* A URL on a loopback port nothing listens on: one the kernel just gave us, closed again (port 1
 * is not safe to assume: a test service of another suite may hold it). Static storage. */
const char *weft_test_refused_url(void);
/* A fresh empty directory for this test, removed afterwards (by the parent). */
const char *weft_test_tmpdir(void);

#define TEST_T(name, timeout_s)                                                                    \
    static void test_##name(void);                                                                 \
    __attribute__((constructor)) static void test_reg_##name(void)                                 \
    {                                                                                              \
        weft_test_register(#name, test_##name, timeout_s);                                         \
    }                                                                                              \
    static void test_##name(void)
#define TEST(name) TEST_T(name, 0)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) weft_test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);                       \
    } while (0)
#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond)) weft_test_fail(__FILE__, __LINE__, __VA_ARGS__);                              \
    } while (0)
#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        long long va_ = (long long)(a), vb_ = (long long)(b);                                      \
        if (va_ != vb_)                                                                            \
            weft_test_fail(__FILE__, __LINE__, "CHECK_EQ(%s, %s): %lld != %lld", #a, #b, va_,      \
                           vb_);                                                                   \
    } while (0)
#define CHECK_STR_EQ(a, b)                                                                         \
    do {                                                                                           \
        const char *sa_ = (a), *sb_ = (b);                                                         \
        if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0)                                                 \
            weft_test_fail(__FILE__, __LINE__, "CHECK_STR_EQ(%s, %s): \"%s\" != \"%s\"", #a, #b,   \
                           sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");                            \
    } while (0)

#endif
