/* Encoding labels, BOM sniffing and incremental decoding to UTF-8 (charset.h). */
#include "crawl/charset.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <weft/utf8.h>

#include "common/iconv-int.h"

/* Label -> iconv name. The WHATWG table maps many labels; these are the ones seen in practice. */
static const struct {
    const char *label, *name;
} labels[] = {
    {"utf-8", "UTF-8"},
    {"utf8", "UTF-8"},
    {"unicode-1-1-utf-8", "UTF-8"},
    {"x-unicode20utf8", "UTF-8"},
    /* A page that says UTF-16 in a <meta> cannot be UTF-16 (it was readable as ASCII). */
    {"utf-16", "UTF-8"},
    {"utf-16le", "UTF-8"},
    {"utf-16be", "UTF-8"},
    {"us-ascii", "CP1252"},
    {"ascii", "CP1252"},
    {"iso-8859-1", "CP1252"},
    {"iso8859-1", "CP1252"},
    {"iso_8859-1", "CP1252"},
    {"latin1", "CP1252"},
    {"l1", "CP1252"},
    {"cp1252", "CP1252"},
    {"windows-1252", "CP1252"},
    {"x-cp1252", "CP1252"},
    {"cp819", "CP1252"},
    {"gbk", "GB18030"},
    {"gb2312", "GB18030"},
    {"gb_2312-80", "GB18030"},
    {"gb18030", "GB18030"},
    {"x-gbk", "GB18030"},
    {"chinese", "GB18030"},
    {"csgb2312", "GB18030"},
    {"big5", "BIG5-HKSCS"},
    {"big5-hkscs", "BIG5-HKSCS"},
    {"x-x-big5", "BIG5-HKSCS"},
    {"shift_jis", "CP932"},
    {"shift-jis", "CP932"},
    {"sjis", "CP932"},
    {"x-sjis", "CP932"},
    {"ms_kanji", "CP932"},
    {"ms932", "CP932"},
    {"windows-31j", "CP932"},
    {"csshiftjis", "CP932"},
    {"euc-jp", "EUC-JP"},
    {"x-euc-jp", "EUC-JP"},
    {"iso-2022-jp", "ISO-2022-JP"},
    {"euc-kr", "CP949"},
    {"ks_c_5601-1987", "CP949"},
    {"windows-949", "CP949"},
    {"koi8-r", "KOI8-R"},
    {"koi8-u", "KOI8-U"},
    {"ibm866", "IBM866"},
    {"cp866", "IBM866"},
    {"windows-874", "CP874"},
    {"tis-620", "CP874"},
    {"windows-1250", "CP1250"},
    {"windows-1251", "CP1251"},
    {"cp1251", "CP1251"},
    {"x-cp1251", "CP1251"},
    {"windows-1253", "CP1253"},
    {"windows-1254", "CP1254"},
    {"iso-8859-9", "CP1254"},
    {"latin5", "CP1254"},
    {"windows-1255", "CP1255"},
    {"windows-1256", "CP1256"},
    {"windows-1257", "CP1257"},
    {"windows-1258", "CP1258"},
    {"iso-8859-2", "ISO-8859-2"},
    {"latin2", "ISO-8859-2"},
    {"iso-8859-3", "ISO-8859-3"},
    {"iso-8859-4", "ISO-8859-4"},
    {"iso-8859-5", "ISO-8859-5"},
    {"iso-8859-6", "ISO-8859-6"},
    {"iso-8859-7", "ISO-8859-7"},
    {"iso-8859-8", "ISO-8859-8"},
    {"iso-8859-8-i", "ISO-8859-8"},
    {"iso-8859-10", "ISO-8859-10"},
    {"iso-8859-13", "ISO-8859-13"},
    {"iso-8859-14", "ISO-8859-14"},
    {"iso-8859-15", "ISO-8859-15"},
    {"latin9", "ISO-8859-15"},
    {"iso-8859-16", "ISO-8859-16"},
    {"macintosh", "MACINTOSH"},
    {"x-mac-roman", "MACINTOSH"},
};

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

const char *crawl_charset_lookup(const char *label, size_t len)
{
    while (len && (is_space(*label) || *label == '"' || *label == '\'')) label++, len--;
    while (len && (is_space(label[len - 1]) || label[len - 1] == '"' || label[len - 1] == '\''))
        len--;
    if (len == 0 || len > 40) return NULL;
    for (size_t i = 0; i < sizeof labels / sizeof labels[0]; i++)
        if (strlen(labels[i].label) == len && strncasecmp(labels[i].label, label, len) == 0)
            return labels[i].name;
    return NULL;
}

const char *crawl_charset_from_content_type(const char *ct)
{
    if (!ct) return NULL;
    for (const char *p = ct; (p = strchr(p, ';')) != NULL;) {
        p++;
        while (is_space(*p)) p++;
        if (strncasecmp(p, "charset", 7) != 0) continue;
        p += 7;
        while (is_space(*p)) p++;
        if (*p != '=') continue;
        p++;
        while (is_space(*p)) p++;
        size_t n;
        if (*p == '"' || *p == '\'') {
            char q = *p++;
            const char *e = strchr(p, q);
            n = e ? (size_t)(e - p) : strlen(p);
        } else {
            n = strcspn(p, "; \t");
        }
        return crawl_charset_lookup(p, n);
    }
    return NULL;
}

const char *crawl_charset_bom(const unsigned char *p, size_t n, size_t *bom_len)
{
    *bom_len = 0;
    if (n >= 3 && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF) {
        *bom_len = 3;
        return "UTF-8";
    }
    if (n >= 2 && p[0] == 0xFF && p[1] == 0xFE) {
        *bom_len = 2;
        return "UTF-16LE";
    }
    if (n >= 2 && p[0] == 0xFE && p[1] == 0xFF) {
        *bom_len = 2;
        return "UTF-16BE";
    }
    return NULL;
}

int crawl_decoder_open(crawl_decoder_t *d, const char *enc)
{
    memset(d, 0, sizeof *d);
    d->enc = enc;
    d->cd = (iconv_t)-1;
    if (strcmp(enc, "UTF-8") == 0) {
        d->utf8 = true;
        return 0;
    }
    d->cd = tools_iconv_open("UTF-8", enc);
    return d->cd == (iconv_t)-1 ? -EINVAL : 0;
}

static const char replacement[] = "\xEF\xBF\xBD";

/* UTF-8 input: copies valid runs, replaces each invalid byte (weft/utf8.h decides which). */
static int feed_utf8(crawl_decoder_t *d, const unsigned char *p, size_t n, bool last,
                     weft_buf_t *out)
{
    const char *s = (const char *)p;
    size_t i = 0;
    int rc = 0;
    while (i < n && rc == 0) {
        size_t good = weft_utf8_valid_prefix(s + i, n - i, true);
        if (good) rc = weft_buf_append(out, s + i, good);
        i += good;
        if (i >= n || rc) break;
        uint32_t cp;
        if (weft_utf8_decode(s + i, n - i, &cp) == -EAGAIN && !last) { /* carry the tail */
            d->ncarry = n - i;
            memcpy(d->carry, p + i, d->ncarry);
            return 0;
        }
        rc = weft_buf_append(out, replacement, 3);
        d->replaced = true;
        i++;
    }
    return rc;
}

static int feed_iconv(crawl_decoder_t *d, const unsigned char *p, size_t n, bool last,
                      weft_buf_t *out)
{
    char *in = (char *)p;
    size_t inleft = n;
    int rc = 0;
    while (inleft && rc == 0) {
        rc = weft_buf_reserve(out, inleft * 4 + 16);
        if (rc) break;
        char *op = out->data + out->len;
        size_t outleft = out->cap - out->len - 1;
        size_t r = iconv(d->cd, &in, &inleft, &op, &outleft);
        out->len = (size_t)(op - out->data);
        out->data[out->len] = '\0';
        if (r != (size_t)-1) break;
        if (errno == E2BIG) continue;
        if (errno == EINVAL && !last && inleft < sizeof d->carry) { /* incomplete sequence */
            d->ncarry = inleft;
            memcpy(d->carry, in, inleft);
            return 0;
        }
        /* EILSEQ, or an incomplete sequence at the very end: one replacement, skip a byte. */
        rc = weft_buf_append(out, replacement, 3);
        d->replaced = true;
        in++;
        inleft--;
    }
    return rc;
}

int crawl_decoder_feed(crawl_decoder_t *d, const char *in, size_t n, bool last, weft_buf_t *out)
{
    const unsigned char *p = (const unsigned char *)in;
    if (d->ncarry) { /* finish the sequence split by the previous feed first */
        unsigned char tmp[sizeof d->carry + 8];
        size_t k = d->ncarry, take = n < 8 ? n : 8;
        memcpy(tmp, d->carry, k);
        memcpy(tmp + k, p, take);
        d->ncarry = 0;
        /* Decode the joined bytes; whatever remains incomplete gets carried again. */
        weft_buf_t probe;
        weft_buf_init(&probe, 0);
        int rc = d->utf8 ? feed_utf8(d, tmp, k + take, last && take == n, &probe)
                         : feed_iconv(d, tmp, k + take, last && take == n, &probe);
        /* Bytes of `p` that the joined decode consumed: those not left in the new carry. */
        size_t used = k + take - d->ncarry;
        if (rc == 0 && probe.len) rc = weft_buf_append(out, probe.data, probe.len);
        weft_buf_free(&probe);
        if (rc) return rc;
        if (used < k) { /* still incomplete with everything we have: keep carrying */
            return 0;
        }
        size_t consumed = used - k;
        d->ncarry = 0;
        p += consumed;
        n -= consumed;
        if (n == 0) return 0;
    }
    return d->utf8 ? feed_utf8(d, p, n, last, out) : feed_iconv(d, p, n, last, out);
}

void crawl_decoder_close(crawl_decoder_t *d)
{
    if (d->cd != (iconv_t)-1) tools_iconv_close(d->cd);
    d->cd = (iconv_t)-1;
}
