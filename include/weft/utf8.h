/* weft/utf8.h - the one UTF-8 module: strict decoding, validation, display width and escaping.
 *
 * Every module and tool that looks inside text uses these functions, so that the same bytes are
 * judged the same way everywhere (a table pads what its printer prints, a JSON writer and an HTML
 * writer replace the same bytes). The rules are RFC 3629's: no overlong forms, no surrogates
 * (U+D800..U+DFFF), nothing above U+10FFFF. An invalid sequence is replaced one byte at a time:
 * each byte that does not start a valid sequence becomes one U+FFFD.
 *
 * Thread safety of every function here: any thread (they keep no state); a weft_buf_t is used by
 * one thread at a time. Ownership: every function borrows its text; output is appended to a
 * caller-owned buffer.
 */
#ifndef WEFT_UTF8_H
#define WEFT_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <weft/buf.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The code point written in place of an invalid byte. */
#define WEFT_UTF8_REPLACEMENT 0xFFFDu

/* Decodes the code point that starts at s[0] (s holds n >= 1 bytes). Returns its length 1..4 and
 * sets *cp; -EILSEQ if s[0] does not start a valid sequence (bad lead or continuation byte,
 * overlong form, surrogate, above U+10FFFF); -EAGAIN if s[0..n) is a valid but incomplete prefix
 * (more input may complete it). On an error *cp is WEFT_UTF8_REPLACEMENT; -EINVAL if n is 0. */
int weft_utf8_decode(const char *s, size_t n, uint32_t *cp);

/* Length of the longest valid prefix of s[0..n). When `last` is false an incomplete sequence at
 * the very end counts as valid (it may be completed by the next chunk), so the result is n. */
size_t weft_utf8_valid_prefix(const char *s, size_t n, bool last);

/* True if s[0..n) is entirely valid, complete UTF-8. */
bool weft_utf8_valid(const char *s, size_t n);

/* Terminal columns of one code point: 0 for combining marks and zero-width characters, 2 for
 * East Asian wide and fullwidth ones, 1 otherwise. Control characters count 1: a safe printer
 * shows them as one space. A short table, not a full Unicode database. */
int weft_utf8_cp_width(uint32_t cp);

/* Terminal columns of s[0..n) as a safe printer shows it: the sum of weft_utf8_cp_width over its
 * code points, each invalid byte counting 1 (its U+FFFD). */
size_t weft_utf8_width(const char *s, size_t n);

/* Appends s[0..n) to `out` with each invalid byte replaced by U+FFFD (the result is valid
 * UTF-8). Returns 0, -EMSGSIZE or -ENOMEM (then `out` holds a prefix of the result). */
int weft_utf8_repair(weft_buf_t *out, const char *s, size_t n);

/* Appends s[0..n) as the inside of a JSON string (no quotes): '"' and '\' get a backslash,
 * control characters (below 0x20, and 0x7F) become \u00XX (lowercase hex), each invalid byte
 * becomes \ufffd; everything else is copied. Returns 0, -EMSGSIZE or -ENOMEM. */
int weft_utf8_escape_json(weft_buf_t *out, const char *s, size_t n);

/* Appends s[0..n) HTML-escaped for text and quoted attributes: & < > " ' become &amp; &lt; &gt;
 * &quot; &#39;, control characters (below 0x20, and 0x7F) one space, each invalid byte &#xFFFD;.
 * Returns 0, -EMSGSIZE or -ENOMEM. */
int weft_utf8_escape_html(weft_buf_t *out, const char *s, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_UTF8_H */
