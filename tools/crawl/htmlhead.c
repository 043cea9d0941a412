/* Head extraction with libxml2's push parser (htmlhead.h).
 *
 * Flow per page: bytes -> (kept in `raw` while the encoding is tentative) -> decoder to UTF-8 ->
 * htmlParseChunk -> SAX callbacks that collect the title and meta fields. The parser is told the
 * input is UTF-8 and to ignore encoding declarations (HTML_PARSE_IGNORE_ENC): we decide the
 * encoding ourselves, in the documented order, and restart from `raw` when the decision changes.
 */
#include "crawl/htmlhead.h"

#include <errno.h>
#include <libxml/HTMLparser.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <weft/buf.h>
#include <weft/utf8.h>

#include "crawl/charset.h"

struct crawl_head {
    htmlParserCtxtPtr ctxt;
    htmlSAXHandler sax;
    const char *header_enc; /* from Content-Type, or NULL */

    weft_buf_t raw;    /* the bytes so far, kept while the encoding may still change */
    weft_buf_t conv;   /* scratch: decoded UTF-8 for one parse call */
    weft_buf_t fixed;  /* scratch: conv with numeric references rewritten (fix_refs) */
    weft_buf_t joined; /* scratch: a carried reference joined to the next conv */
    char ref_tail[16]; /* an unfinished "&#..." at the end of the last conv */
    size_t nref_tail;
    crawl_decoder_t dec;
    bool dec_open;
    bool decided, certain, keep_raw;
    const char *enc, *source;
    size_t skip; /* BOM length */

    /* SAX state */
    bool in_title, title_seen, done, restart;
    bool finishing, complete; /* complete: </head> or <body> seen in the data, not implied at EOF */
    bool in_body;             /* past the head: scanning on for a late title or description */
    size_t body_bytes;        /* decoded bytes parsed since */
    const char *meta_enc;
    weft_buf_t title_raw;
    char title[CRAWL_FIELD_MAX + 4], desc[CRAWL_FIELD_MAX + 4], og[CRAWL_FIELD_MAX + 4];
    bool has_title, has_desc, has_og, finalized;
};

static void quiet(void *ctx, const char *msg, ...)
{
    (void)ctx;
    (void)msg;
}

static void quiet_structured(void *ctx, xmlErrorPtr err)
{
    (void)ctx;
    (void)err;
}

/* Collapses runs of ASCII whitespace to one space, trims, caps at CRAWL_FIELD_MAX bytes without
 * splitting a UTF-8 sequence. `dst` holds CRAWL_FIELD_MAX + 1
 * bytes. */
static void collapse(char *dst, const char *src, size_t n)
{
    size_t o = 0;
    bool space = false;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)src[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == 0) {
            space = o > 0;
            i++;
            continue;
        }
        if (c < 0x80) { /* ASCII: most of most titles */
            if (o + 1 + (space ? 1 : 0) > CRAWL_FIELD_MAX) break;
            if (space) dst[o++] = ' ';
            space = false;
            dst[o++] = (char)c;
            i++;
            continue;
        }
        uint32_t cp;
        int l = weft_utf8_decode(src + i, n - i, &cp);
        if (l == -EAGAIN) break; /* a truncated last character */
        /* The parser hands us valid UTF-8; should a bad byte slip through, it becomes U+FFFD. */
        const char *from = l > 0 ? src + i : "\xEF\xBF\xBD";
        size_t cl = l > 0 ? (size_t)l : 3;
        if (o + cl + (space ? 1 : 0) > CRAWL_FIELD_MAX) break;
        if (space) dst[o++] = ' ';
        space = false;
        memcpy(dst + o, from, cl);
        o += cl;
        i += l > 0 ? (size_t)l : 1;
    }
    dst[o] = '\0';
}

static void finalize(crawl_head_t *h)
{
    if (h->finalized) return;
    h->finalized = true;
    if (h->title_seen || h->in_title) {
        collapse(h->title, h->title_raw.data ? h->title_raw.data : "", h->title_raw.len);
        h->has_title = true;
    }
}

static void head_over(crawl_head_t *h)
{
    h->done = true;
    if (!h->finishing) h->complete = true;
    finalize(h);
    xmlStopParser(h->ctxt);
}

/* Both fields found: nothing the rest of the page could change. */
static bool enough(const crawl_head_t *h)
{
    return h->title_seen && h->has_desc;
}

/* The head is over (</head>, <body>, or content that implies a body). HTML5 still takes the
 * first <title> and <meta name=description> anywhere in the document, so unless both are known
 * the scan goes on, up to CRAWL_BODY_SCAN more bytes. */
static void body_begins(crawl_head_t *h)
{
    if (!h->in_body) {
        h->in_body = true;
        if (!h->finishing) h->complete = true;
    }
    if (enough(h)) head_over(h);
}

static const char *attr(const xmlChar **atts, const char *name)
{
    for (size_t i = 0; atts && atts[i]; i += 2)
        if (strcasecmp((const char *)atts[i], name) == 0)
            return atts[i + 1] ? (const char *)atts[i + 1] : "";
    return NULL;
}

static void on_meta(crawl_head_t *h, const xmlChar **atts)
{
    const char *cs = attr(atts, "charset");
    const char *equiv = attr(atts, "http-equiv");
    const char *content = attr(atts, "content");
    if (!h->meta_enc) {
        const char *enc = NULL;
        if (cs)
            enc = crawl_charset_for_meta(crawl_charset_lookup(cs, strlen(cs)));
        else if (equiv && content && strcasecmp(equiv, "content-type") == 0)
            enc = crawl_charset_for_meta(crawl_charset_from_content_type(content));
        if (enc) {
            h->meta_enc = enc;
            if (!h->certain) {
                if (strcmp(enc, h->enc) == 0) {
                    h->certain = true;
                    h->source = "meta";
                } else {
                    h->restart = true;
                    xmlStopParser(h->ctxt);
                    return;
                }
            }
        }
    }
    if (!content) return;
    const char *name = attr(atts, "name");
    const char *prop = attr(atts, "property");
    if (name && strcasecmp(name, "description") == 0 && !h->has_desc) {
        collapse(h->desc, content, strlen(content));
        h->has_desc = true;
        if (h->in_body && enough(h)) head_over(h);
    } else if (((prop && strcasecmp(prop, "og:description") == 0) ||
                (name && strcasecmp(name, "og:description") == 0)) &&
               !h->has_og) {
        collapse(h->og, content, strlen(content));
        h->has_og = true;
    }
}

static void on_start(void *ctx, const xmlChar *name, const xmlChar **atts)
{
    crawl_head_t *h = ctx;
    if (h->done || h->restart) return;
    const char *n = (const char *)name;
    if (strcmp(n, "body") == 0 || strcmp(n, "frameset") == 0) {
        body_begins(h);
    } else if (strcmp(n, "title") == 0) {
        if (!h->title_seen) h->in_title = true;
    } else if (strcmp(n, "meta") == 0) {
        on_meta(h, atts);
    }
}

static void on_end(void *ctx, const xmlChar *name)
{
    crawl_head_t *h = ctx;
    if (h->done || h->restart) return;
    const char *n = (const char *)name;
    if (strcmp(n, "title") == 0 && h->in_title) {
        h->in_title = false;
        h->title_seen = true;
        if (h->in_body && enough(h)) head_over(h);
    } else if (strcmp(n, "head") == 0) {
        body_begins(h);
    }
}

static void on_text(void *ctx, const xmlChar *ch, int len)
{
    crawl_head_t *h = ctx;
    if (!h->in_title || h->done || len <= 0) return;
    size_t room = 4 * CRAWL_FIELD_MAX - h->title_raw.len;
    weft_buf_append(&h->title_raw, ch, (size_t)len < room ? (size_t)len : room);
}

crawl_head_t *crawl_head_create(void)
{
    crawl_head_t *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->sax.startElement = on_start;
    h->sax.endElement = on_end;
    h->sax.characters = on_text;
    h->sax.warning = quiet;
    h->sax.error = quiet;
    h->sax.fatalError = quiet;
    h->sax.serror = quiet_structured;
    weft_buf_init(&h->raw, CRAWL_HEAD_MAX);
    weft_buf_init(&h->conv, 0);
    weft_buf_init(&h->fixed, 0);
    weft_buf_init(&h->joined, 0);
    weft_buf_init(&h->title_raw, 4 * CRAWL_FIELD_MAX);
    xmlInitParser(); /* once per process; libxml2 wants it before threads parse */
    crawl_head_reset(h, NULL);
    return h;
}

static void free_parser(crawl_head_t *h)
{
    if (h->ctxt) htmlFreeParserCtxt(h->ctxt);
    h->ctxt = NULL;
    if (h->dec_open) crawl_decoder_close(&h->dec);
    h->dec_open = false;
}

void crawl_head_destroy(crawl_head_t *h)
{
    if (!h) return;
    free_parser(h);
    weft_buf_free(&h->raw);
    weft_buf_free(&h->conv);
    weft_buf_free(&h->fixed);
    weft_buf_free(&h->joined);
    weft_buf_free(&h->title_raw);
    free(h);
}

/* Clears what the SAX callbacks collected, for a new page or a restart. */
static void clear_fields(crawl_head_t *h)
{
    h->in_title = h->title_seen = h->done = h->restart = false;
    h->finishing = h->complete = h->in_body = false;
    h->body_bytes = 0;
    h->nref_tail = 0;
    h->has_title = h->has_desc = h->has_og = h->finalized = false;
    h->meta_enc = NULL;
    weft_buf_reset(&h->title_raw);
    h->title[0] = h->desc[0] = h->og[0] = '\0';
}

void crawl_head_reset(crawl_head_t *h, const char *content_type)
{
    /* Messages libxml2 sends outside the SAX handler go nowhere. The setting is per thread and
     * an extractor may move between threads (a pool worker takes any free one), so set it on
     * every page: it is one thread-local write. */
    xmlSetGenericErrorFunc(NULL, quiet);
    xmlSetStructuredErrorFunc(NULL, quiet_structured);
    free_parser(h);
    clear_fields(h);
    weft_buf_reset(&h->raw);
    h->header_enc = crawl_charset_from_content_type(content_type);
    h->decided = h->certain = false;
    h->keep_raw = true;
    h->enc = "UTF-8";
    h->source = "utf-8";
    h->skip = 0;
}

/* (Re)creates the parser and the decoder for h->enc. Returns 0 or -ENOMEM. */
static int open_parser(crawl_head_t *h)
{
    free_parser(h);
    clear_fields(h);
    if (crawl_decoder_open(&h->dec, h->enc) < 0) {
        /* iconv lacks it: read as windows-1252, which iconv always has. */
        h->enc = "CP1252";
        if (crawl_decoder_open(&h->dec, h->enc) < 0) return -ENOMEM;
    }
    h->dec_open = true;
    h->ctxt = htmlCreatePushParserCtxt(&h->sax, h, NULL, 0, NULL, XML_CHAR_ENCODING_UTF8);
    if (!h->ctxt) return -ENOMEM;
    htmlCtxtUseOptions(h->ctxt, HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |
                                    HTML_PARSE_NONET | HTML_PARSE_IGNORE_ENC);
    return 0;
}

static void decide(crawl_head_t *h)
{
    const char *pre;
    h->decided = true;
    const char *bom = crawl_charset_bom((const unsigned char *)h->raw.data, h->raw.len, &h->skip);
    if (bom) {
        h->enc = bom;
        h->source = "bom";
        h->certain = true;
    } else if (h->header_enc) {
        h->enc = h->header_enc;
        h->source = "header";
        h->certain = true;
    } else if ((pre = crawl_charset_prescan((const unsigned char *)h->raw.data, h->raw.len))) {
        h->enc = pre;
        h->source = "prescan";
        h->certain = true;
    } else {
        h->enc = "UTF-8";
        h->source = "utf-8";
        h->certain = false;
    }
}

/* What HTML5 makes of &#128;..&#159; (the windows-1252 table, as browsers do). */
static const char *const c1_refs[32] = {
    "\xE2\x82\xAC", "\xC2\x81",     "\xE2\x80\x9A", "\xC6\x92",     "\xE2\x80\x9E", "\xE2\x80\xA6",
    "\xE2\x80\xA0", "\xE2\x80\xA1", "\xCB\x86",     "\xE2\x80\xB0", "\xC5\xA0",     "\xE2\x80\xB9",
    "\xC5\x92",     "\xC2\x8D",     "\xC5\xBD",     "\xC2\x8F",     "\xC2\x90",     "\xE2\x80\x98",
    "\xE2\x80\x99", "\xE2\x80\x9C", "\xE2\x80\x9D", "\xE2\x80\xA2", "\xE2\x80\x93", "\xE2\x80\x94",
    "\xCB\x9C",     "\xE2\x84\xA2", "\xC5\xA1",     "\xE2\x80\xBA", "\xC5\x93",     "\xC2\x9D",
    "\xC5\xBE",     "\xC5\xB8",
};

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* libxml2 follows XML for numeric character references: &#128; is U+0080 and &#0; or a
 * surrogate is dropped. HTML5 maps &#128;..&#159; through windows-1252 and the others to
 * U+FFFD, so those references are rewritten to their characters before libxml2 sees them. A
 * reference split across calls is carried to the next one. *out points at s or at h->fixed. */
static int fix_refs(crawl_head_t *h, const char *s, size_t n, bool last, const char **out,
                    size_t *outn)
{
    *out = s;
    *outn = n;
    if (!h->nref_tail && !memchr(s, '&', n)) return 0;
    if (h->nref_tail) {
        weft_buf_reset(&h->joined);
        if (weft_buf_append(&h->joined, h->ref_tail, h->nref_tail) < 0 ||
            weft_buf_append(&h->joined, s, n) < 0)
            return -ENOMEM;
        s = h->joined.data;
        n = h->joined.len;
        h->nref_tail = 0;
    }
    weft_buf_t *b = &h->fixed;
    weft_buf_reset(b);
    size_t i = 0, copied = 0, end = n;
    while (i < n) {
        const char *amp = memchr(s + i, '&', n - i);
        if (!amp) break;
        size_t a = (size_t)(amp - s), j = a + 1;
        if (j < n && s[j] == '#') {
            j++;
            bool hex = j < n && (s[j] == 'x' || s[j] == 'X');
            if (hex) j++;
            uint32_t v = 0;
            size_t digits = 0;
            for (int d; j < n && (d = hex ? hexval(s[j])
                                          : (s[j] >= '0' && s[j] <= '9' ? s[j] - '0' : -1)) >= 0;
                 j++, digits++)
                v = v > 0x10FFFF ? v : v * (hex ? 16 : 10) + (uint32_t)d;
            if (j < n && s[j] == ';')
                j++;
            else if (j >= n && !last && n - a < sizeof h->ref_tail) { /* may go on: carry it */
                end = a;
                memcpy(h->ref_tail, s + a, n - a);
                h->nref_tail = n - a;
                break;
            }
            const char *r = NULL;
            if (digits && (v == 0 || (v >= 0xD800 && v <= 0xDFFF) || v > 0x10FFFF))
                r = "\xEF\xBF\xBD";
            else if (digits && v >= 0x80 && v <= 0x9F)
                r = c1_refs[v - 0x80];
            if (r) {
                if (weft_buf_append(b, s + copied, a - copied) < 0 ||
                    weft_buf_append(b, r, strlen(r)) < 0)
                    return -ENOMEM;
                copied = j;
            }
        } else if (j >= n && !last) { /* a lone '&' at the end: it may start a reference */
            end = a;
            h->ref_tail[0] = '&';
            h->nref_tail = 1;
            break;
        }
        i = j;
    }
    if (copied == 0 && end == n && s != h->joined.data) return 0; /* nothing rewritten */
    if (weft_buf_append(b, s + copied, end - copied) < 0) return -ENOMEM;
    *out = b->data ? b->data : "";
    *outn = b->len;
    return 0;
}

/* Decodes and parses bytes [from, from + n). Returns 0, 1 if a restart is needed, or -ENOMEM. */
static int parse_bytes(crawl_head_t *h, const char *p, size_t n, bool last)
{
    weft_buf_reset(&h->conv);
    if (crawl_decoder_feed(&h->dec, p, n, last, &h->conv) < 0) return -ENOMEM;
    if (!h->certain && h->dec.utf8 && h->dec.replaced) {
        /* Not valid UTF-8, and nothing declared (yet): judge by the bytes, as browsers do. */
        const char *d = crawl_charset_detect((const unsigned char *)h->raw.data + h->skip,
                                             h->raw.len - h->skip);
        h->enc = d ? d : "CP1252";
        h->source = d ? "detected" : "default";
        return 1;
    }
    const char *text;
    size_t tlen;
    if (fix_refs(h, h->conv.data, h->conv.len, last, &text, &tlen) < 0) return -ENOMEM;
    if (tlen) {
        htmlParseChunk(h->ctxt, text, (int)tlen, 0);
        if (h->in_body && !h->done && (h->body_bytes += tlen) > CRAWL_BODY_SCAN) head_over(h);
    }
    if (last && !h->done && !h->restart) htmlParseChunk(h->ctxt, NULL, 0, 1);
    if (h->restart) {
        h->enc = h->meta_enc;
        h->source = "meta";
        h->certain = true;
        return 1;
    }
    if (h->certain) h->keep_raw = false; /* no more restarts: stop keeping bytes */
    return 0;
}

/* Feeds `n` new bytes (already appended to raw if keep_raw), handling restarts. The bytes go in
 * slices, so that a page whose whole body arrives at once is decoded only as far as its head. */
static int process(crawl_head_t *h, const char *p, size_t n, bool last)
{
    const size_t slice = 512;
    for (int restarts = 0;;) {
        int rc = 0;
        size_t off = 0;
        do {
            size_t k = n - off < slice ? n - off : slice;
            rc = parse_bytes(h, p + off, k, last && off + k == n);
            off += k;
        } while (rc == 0 && off < n && !h->done);
        if (rc <= 0) return rc;
        if (++restarts > 3 || h->raw.len < h->skip) return 0;
        /* Start again from the first byte with the new encoding. */
        if ((rc = open_parser(h)) < 0) return rc;
        p = h->raw.data + h->skip;
        n = h->raw.len - h->skip;
    }
}

int crawl_head_feed(crawl_head_t *h, const char *data, size_t len)
{
    if (h->done) return 1;
    if (len == 0) return 0;
    bool full = false;
    if (h->keep_raw) {
        size_t room = CRAWL_HEAD_MAX - h->raw.len;
        if (len > room) {
            len = room;
            full = true;
        }
        if (weft_buf_append(&h->raw, data, len) < 0) return -ENOMEM;
        if (!h->decided) {
            /* The prescan looks at the first 1024 bytes (a BOM needs 3). */
            if (h->raw.len < 1024 && !full) return 0;
            decide(h);
            int rc = open_parser(h);
            if (rc < 0) return rc;
            data = h->raw.data + h->skip;
            len = h->raw.len - h->skip;
        }
    }
    int rc = process(h, data, len, false);
    if (rc < 0) return rc;
    if (full) { /* a head this large: give up on the rest */
        h->done = true;
        finalize(h);
    }
    return h->done ? 1 : 0;
}

void crawl_head_finish(crawl_head_t *h)
{
    h->finishing = true;
    if (!h->done) {
        if (!h->decided) {
            decide(h);
            if (open_parser(h) == 0)
                process(h, h->raw.data ? h->raw.data + h->skip : "", h->raw.len - h->skip, true);
        } else if (h->ctxt) {
            process(h, "", 0, true);
        }
        h->done = true;
    }
    finalize(h);
}

const char *crawl_head_title(const crawl_head_t *h)
{
    return h->has_title ? h->title : NULL;
}

const char *crawl_head_description(const crawl_head_t *h)
{
    if (h->has_desc) return h->desc;
    return h->has_og ? h->og : NULL;
}

const char *crawl_head_charset(const crawl_head_t *h)
{
    return h->enc;
}

const char *crawl_head_charset_source(const crawl_head_t *h)
{
    return h->source;
}

bool crawl_head_done(const crawl_head_t *h)
{
    return h->done;
}

bool crawl_head_complete(const crawl_head_t *h)
{
    return h->complete;
}
