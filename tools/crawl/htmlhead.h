/* Extracts <title> and the meta description from the head of an HTML page, fed as it arrives.
 *
 * libxml2's HTML parser in push mode with SAX callbacks (no tree is built), stopped once the head
 * is over (</head> or the start of <body>). Entities are decoded by the parser; whitespace is
 * collapsed and each field capped at CRAWL_FIELD_MAX bytes (at a character boundary).
 *
 * Charset, in this order (WHATWG): a byte-order mark; the Content-Type header; the prescan of
 * the first 1024 bytes for <meta charset> or <meta http-equiv="Content-Type">; else UTF-8 while
 * the bytes are valid UTF-8; else detected from the bytes (GBK, Shift_JIS, windows-1251 or
 * windows-1252). Numeric references are read as HTML5 does (&#128;..&#159; via windows-1252).
 *
 * Fields follow HTML5's tree construction: the first <title> and the first description meta
 * anywhere count, even after content that implies <body>; past the head the scan goes on only
 * while a field is missing, for at most CRAWL_BODY_SCAN bytes.
 * The parser always sees UTF-8: bytes are decoded with iconv first. Until an encoding is certain
 * (BOM or header) the decoder is tentative: invalid UTF-8 switches to windows-1252, and a <meta>
 * naming another encoding restarts the parse from the bytes kept so far (as browsers do).
 *
 * An extractor is used by one thread at a time (it may move between threads); reuse it for page
 * after page with crawl_head_reset(). Create the first one before other threads parse (it
 * initialises libxml2).
 */
#ifndef WEFT_TOOLS_CRAWL_HTMLHEAD_H
#define WEFT_TOOLS_CRAWL_HTMLHEAD_H

#include <stdbool.h>
#include <stddef.h>

#define CRAWL_FIELD_MAX 512
#define CRAWL_HEAD_MAX (1u << 20)   /* bytes of head kept for a restart; past this, give up */
#define CRAWL_BODY_SCAN (32u << 10) /* past the head, bytes scanned for a missing field */

typedef struct crawl_head crawl_head_t;

/* Returns NULL on allocation failure. */
crawl_head_t *crawl_head_create(void);
void crawl_head_destroy(crawl_head_t *h);

/* Starts a new page; `content_type` is the Content-Type header value or NULL. */
void crawl_head_reset(crawl_head_t *h, const char *content_type);

/* Feeds more body bytes. Returns 1 once the head is complete (further bytes are ignored), 0 if
 * more are wanted, or -ENOMEM. */
int crawl_head_feed(crawl_head_t *h, const char *data, size_t len);

/* Ends the page (no more bytes will come). */
void crawl_head_finish(crawl_head_t *h);

/* Results, valid until the next reset: NULL when absent. The title is known once the head is
 * done or crawl_head_finish() was called. Ownership: borrowed. */
const char *crawl_head_title(const crawl_head_t *h);
const char *crawl_head_description(const crawl_head_t *h);
/* The iconv name of the encoding used, and why: "bom", "header", "prescan" (a <meta> in the
 * first 1024 bytes), "meta" (a later <meta>: the parse restarted), "utf-8" (valid UTF-8 without
 * a declaration), "detected" (judged from the bytes: GBK, Shift_JIS, windows-1251 or -1252) or
 * "default" (windows-1252: nothing convinced). */
const char *crawl_head_charset(const crawl_head_t *h);
const char *crawl_head_charset_source(const crawl_head_t *h);
/* True once no more bytes are wanted: the head is over, the head grew past CRAWL_HEAD_MAX, or
 * the page ended. */
bool crawl_head_done(const crawl_head_t *h);

/* True if </head> or <body> (written or implied by the content) was seen in the bytes fed, not
 * just implied by the end of the page. */
bool crawl_head_complete(const crawl_head_t *h);

#endif
