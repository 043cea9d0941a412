/* Character encodings of fetched pages: labels, byte-order marks, and an incremental decoder to
 * UTF-8 on iconv. Labels follow the WHATWG Encoding Standard's table (the common part of it):
 * latin1 and ascii mean windows-1252, GBK and GB2312 are read as GB18030, Shift_JIS as CP932.
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
    bool utf8; /* validate and pass through, no iconv */
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
