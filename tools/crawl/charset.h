/* Character encodings of fetched pages: labels, byte-order marks, and an incremental decoder to
 * UTF-8 on iconv. Labels follow the WHATWG Encoding Standard's table (all of it but the
 * "replacement" and x-user-defined encodings): latin1 and ascii mean windows-1252, GBK and GB2312
 * are read as GB18030, Shift_JIS as CP932, EUC-KR as CP949, windows-874 as CP874.
 * All functions are pure or work on caller-owned state: any thread.
 */
#ifndef WEFT_TOOLS_CRAWL_CHARSET_H
#define WEFT_TOOLS_CRAWL_CHARSET_H

#include <iconv.h>
#include <stdbool.h>
#include <stddef.h>
#include <weft/buf.h>

/* The canonical (iconv) name for an encoding label such as "gb2312" or " \"Shift_JIS\" ", or
 * NULL if the label is unknown. Case and surrounding whitespace or quotes are ignored. */
const char *crawl_charset_lookup(const char *label, size_t len);

/* What a <meta> naming `enc` means: UTF-16 there is UTF-8 (the page was readable as ASCII). */
const char *crawl_charset_for_meta(const char *enc);

/* The WHATWG prescan of the first 1024 bytes of `p` for <meta charset> or <meta http-equiv
 * content-type>: the canonical name (already through crawl_charset_for_meta), or NULL. */
const char *crawl_charset_prescan(const unsigned char *p, size_t n);

/* For bytes that are not valid UTF-8 and declare nothing: the most plausible of GB18030 (GBK),
 * CP932 (Shift_JIS), CP1251 and CP1252 judged from the bytes, or NULL if none convinces. */
const char *crawl_charset_detect(const unsigned char *p, size_t n);

/* The canonical name of the charset parameter of a Content-Type value ("text/html;
 * charset=gbk"), or NULL if there is none or it is unknown. Also used for the content attribute
 * of <meta http-equiv="Content-Type">. */
const char *crawl_charset_from_content_type(const char *ct);

/* The encoding named by a byte-order mark at the start of `p`, or NULL; *bom_len gets its size. */
const char *crawl_charset_bom(const unsigned char *p, size_t n, size_t *bom_len);

/* An incremental decoder: bytes in `enc` to UTF-8, invalid input replaced by U+FFFD. A sequence
 * split across feeds is carried over. */
typedef struct crawl_decoder {
    const char *enc;
    bool utf8;   /* validate and pass through, no iconv */
    bool cp1252; /* map the five bytes iconv leaves undefined as WHATWG does */
    iconv_t cd;
    unsigned char carry[8];
    size_t ncarry;
    bool replaced; /* an invalid sequence was replaced since the decoder was opened */
} crawl_decoder_t;

/* Returns 0 or -EINVAL (iconv does not know `enc`). */
int crawl_decoder_open(crawl_decoder_t *d, const char *enc);

/* Appends the UTF-8 for `n` more input bytes to `out`; `last` flushes an incomplete tail as
 * U+FFFD. Returns 0 or a weft_buf error. */
int crawl_decoder_feed(crawl_decoder_t *d, const char *in, size_t n, bool last, weft_buf_t *out);

void crawl_decoder_close(crawl_decoder_t *d);

#endif
