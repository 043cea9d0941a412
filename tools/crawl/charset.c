/* Encoding labels, BOM sniffing and incremental decoding to UTF-8 (charset.h). */
#include "crawl/charset.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <weft/utf8.h>

#include "common/iconv-int.h"

/* Label -> iconv name: every label of the WHATWG Encoding Standard's table except those of the
 * "replacement" and x-user-defined encodings, sorted by label (for bsearch). Names iconv may lack
 * fall back to windows-1252 when the decoder is opened. */
static const struct label {
    const char *label, *name;
} labels[] = {
    {"866", "IBM866"},
    {"ansi_x3.4-1968", "CP1252"},
    {"arabic", "ISO-8859-6"},
    {"ascii", "CP1252"},
    {"asmo-708", "ISO-8859-6"},
    {"big5", "BIG5-HKSCS"},
    {"big5-hkscs", "BIG5-HKSCS"},
    {"chinese", "GB18030"},
    {"cn-big5", "BIG5-HKSCS"},
    {"cp1250", "CP1250"},
    {"cp1251", "CP1251"},
    {"cp1252", "CP1252"},
    {"cp1253", "CP1253"},
    {"cp1254", "CP1254"},
    {"cp1255", "CP1255"},
    {"cp1256", "CP1256"},
    {"cp1257", "CP1257"},
    {"cp1258", "CP1258"},
    {"cp819", "CP1252"},
    {"cp866", "IBM866"},
    {"csbig5", "BIG5-HKSCS"},
    {"cseuckr", "CP949"},
    {"cseucpkdfmtjapanese", "EUC-JP"},
    {"csgb2312", "GB18030"},
    {"csibm866", "IBM866"},
    {"csiso2022jp", "ISO-2022-JP"},
    {"csiso58gb231280", "GB18030"},
    {"csiso88596e", "ISO-8859-6"},
    {"csiso88596i", "ISO-8859-6"},
    {"csiso88598e", "ISO-8859-8"},
    {"csiso88598i", "ISO-8859-8"},
    {"csisolatin1", "CP1252"},
    {"csisolatin2", "ISO-8859-2"},
    {"csisolatin3", "ISO-8859-3"},
    {"csisolatin4", "ISO-8859-4"},
    {"csisolatin5", "CP1254"},
    {"csisolatin6", "ISO-8859-10"},
    {"csisolatin9", "ISO-8859-15"},
    {"csisolatinarabic", "ISO-8859-6"},
    {"csisolatincyrillic", "ISO-8859-5"},
    {"csisolatingreek", "ISO-8859-7"},
    {"csisolatinhebrew", "ISO-8859-8"},
    {"cskoi8r", "KOI8-R"},
    {"csksc56011987", "CP949"},
    {"csmacintosh", "MACINTOSH"},
    {"csshiftjis", "CP932"},
    {"csunicode", "UTF-16LE"},
    {"cyrillic", "ISO-8859-5"},
    {"dos-874", "CP874"},
    {"ecma-114", "ISO-8859-6"},
    {"ecma-118", "ISO-8859-7"},
    {"elot_928", "ISO-8859-7"},
    {"euc-jp", "EUC-JP"},
    {"euc-kr", "CP949"},
    {"gb18030", "GB18030"},
    {"gb2312", "GB18030"},
    {"gb_2312", "GB18030"},
    {"gb_2312-80", "GB18030"},
    {"gbk", "GB18030"},
    {"greek", "ISO-8859-7"},
    {"greek8", "ISO-8859-7"},
    {"hebrew", "ISO-8859-8"},
    {"ibm819", "CP1252"},
    {"ibm866", "IBM866"},
    {"iso-10646-ucs-2", "UTF-16LE"},
    {"iso-2022-jp", "ISO-2022-JP"},
    {"iso-8859-1", "CP1252"},
    {"iso-8859-10", "ISO-8859-10"},
    {"iso-8859-11", "CP874"},
    {"iso-8859-13", "ISO-8859-13"},
    {"iso-8859-14", "ISO-8859-14"},
    {"iso-8859-15", "ISO-8859-15"},
    {"iso-8859-16", "ISO-8859-16"},
    {"iso-8859-2", "ISO-8859-2"},
    {"iso-8859-3", "ISO-8859-3"},
    {"iso-8859-4", "ISO-8859-4"},
    {"iso-8859-5", "ISO-8859-5"},
    {"iso-8859-6", "ISO-8859-6"},
    {"iso-8859-6-e", "ISO-8859-6"},
    {"iso-8859-6-i", "ISO-8859-6"},
    {"iso-8859-7", "ISO-8859-7"},
    {"iso-8859-8", "ISO-8859-8"},
    {"iso-8859-8-e", "ISO-8859-8"},
    {"iso-8859-8-i", "ISO-8859-8"},
    {"iso-8859-9", "CP1254"},
    {"iso-ir-100", "CP1252"},
    {"iso-ir-101", "ISO-8859-2"},
    {"iso-ir-109", "ISO-8859-3"},
    {"iso-ir-110", "ISO-8859-4"},
    {"iso-ir-126", "ISO-8859-7"},
    {"iso-ir-127", "ISO-8859-6"},
    {"iso-ir-138", "ISO-8859-8"},
    {"iso-ir-144", "ISO-8859-5"},
    {"iso-ir-148", "CP1254"},
    {"iso-ir-149", "CP949"},
    {"iso-ir-157", "ISO-8859-10"},
    {"iso-ir-58", "GB18030"},
    {"iso8859-1", "CP1252"},
    {"iso8859-10", "ISO-8859-10"},
    {"iso8859-11", "CP874"},
    {"iso8859-13", "ISO-8859-13"},
    {"iso8859-14", "ISO-8859-14"},
    {"iso8859-15", "ISO-8859-15"},
    {"iso8859-2", "ISO-8859-2"},
    {"iso8859-3", "ISO-8859-3"},
    {"iso8859-4", "ISO-8859-4"},
    {"iso8859-5", "ISO-8859-5"},
    {"iso8859-6", "ISO-8859-6"},
    {"iso8859-7", "ISO-8859-7"},
    {"iso8859-8", "ISO-8859-8"},
    {"iso8859-9", "CP1254"},
    {"iso88591", "CP1252"},
    {"iso885910", "ISO-8859-10"},
    {"iso885911", "CP874"},
    {"iso885913", "ISO-8859-13"},
    {"iso885914", "ISO-8859-14"},
    {"iso885915", "ISO-8859-15"},
    {"iso88592", "ISO-8859-2"},
    {"iso88593", "ISO-8859-3"},
    {"iso88594", "ISO-8859-4"},
    {"iso88595", "ISO-8859-5"},
    {"iso88596", "ISO-8859-6"},
    {"iso88597", "ISO-8859-7"},
    {"iso88598", "ISO-8859-8"},
    {"iso88599", "CP1254"},
    {"iso_8859-1", "CP1252"},
    {"iso_8859-15", "ISO-8859-15"},
    {"iso_8859-1:1987", "CP1252"},
    {"iso_8859-2", "ISO-8859-2"},
    {"iso_8859-2:1987", "ISO-8859-2"},
    {"iso_8859-3", "ISO-8859-3"},
    {"iso_8859-3:1988", "ISO-8859-3"},
    {"iso_8859-4", "ISO-8859-4"},
    {"iso_8859-4:1988", "ISO-8859-4"},
    {"iso_8859-5", "ISO-8859-5"},
    {"iso_8859-5:1988", "ISO-8859-5"},
    {"iso_8859-6", "ISO-8859-6"},
    {"iso_8859-6:1987", "ISO-8859-6"},
    {"iso_8859-7", "ISO-8859-7"},
    {"iso_8859-7:1987", "ISO-8859-7"},
    {"iso_8859-8", "ISO-8859-8"},
    {"iso_8859-8:1988", "ISO-8859-8"},
    {"iso_8859-9", "CP1254"},
    {"iso_8859-9:1989", "CP1254"},
    {"koi", "KOI8-R"},
    {"koi8", "KOI8-R"},
    {"koi8-r", "KOI8-R"},
    {"koi8-ru", "KOI8-U"},
    {"koi8-u", "KOI8-U"},
    {"koi8_r", "KOI8-R"},
    {"korean", "CP949"},
    {"ks_c_5601-1987", "CP949"},
    {"ks_c_5601-1989", "CP949"},
    {"ksc5601", "CP949"},
    {"ksc_5601", "CP949"},
    {"l1", "CP1252"},
    {"l2", "ISO-8859-2"},
    {"l3", "ISO-8859-3"},
    {"l4", "ISO-8859-4"},
    {"l5", "CP1254"},
    {"l6", "ISO-8859-10"},
    {"l9", "ISO-8859-15"},
    {"latin1", "CP1252"},
    {"latin2", "ISO-8859-2"},
    {"latin3", "ISO-8859-3"},
    {"latin4", "ISO-8859-4"},
    {"latin5", "CP1254"},
    {"latin6", "ISO-8859-10"},
    {"logical", "ISO-8859-8"},
    {"mac", "MACINTOSH"},
    {"macintosh", "MACINTOSH"},
    {"ms932", "CP932"},
    {"ms_kanji", "CP932"},
    {"shift-jis", "CP932"},
    {"shift_jis", "CP932"},
    {"sjis", "CP932"},
    {"sun_eu_greek", "ISO-8859-7"},
    {"tis-620", "CP874"},
    {"ucs-2", "UTF-16LE"},
    {"unicode", "UTF-16LE"},
    {"unicode-1-1-utf-8", "UTF-8"},
    {"unicode11utf8", "UTF-8"},
    {"unicode20utf8", "UTF-8"},
    {"unicodefeff", "UTF-16LE"},
    {"unicodefffe", "UTF-16BE"},
    {"us-ascii", "CP1252"},
    {"utf-16", "UTF-16LE"},
    {"utf-16be", "UTF-16BE"},
    {"utf-16le", "UTF-16LE"},
    {"utf-8", "UTF-8"},
    {"utf8", "UTF-8"},
    {"visual", "ISO-8859-8"},
    {"windows-1250", "CP1250"},
    {"windows-1251", "CP1251"},
    {"windows-1252", "CP1252"},
    {"windows-1253", "CP1253"},
    {"windows-1254", "CP1254"},
    {"windows-1255", "CP1255"},
    {"windows-1256", "CP1256"},
    {"windows-1257", "CP1257"},
    {"windows-1258", "CP1258"},
    {"windows-31j", "CP932"},
    {"windows-874", "CP874"},
    {"windows-949", "CP949"},
    {"x-cp1250", "CP1250"},
    {"x-cp1251", "CP1251"},
    {"x-cp1252", "CP1252"},
    {"x-cp1253", "CP1253"},
    {"x-cp1254", "CP1254"},
    {"x-cp1255", "CP1255"},
    {"x-cp1256", "CP1256"},
    {"x-cp1257", "CP1257"},
    {"x-cp1258", "CP1258"},
    {"x-euc-jp", "EUC-JP"},
    {"x-gbk", "GB18030"},
    {"x-mac-cyrillic", "MAC-CYRILLIC"},
    {"x-mac-roman", "MACINTOSH"},
    {"x-mac-ukrainian", "MAC-CYRILLIC"},
    {"x-sjis", "CP932"},
    {"x-unicode20utf8", "UTF-8"},
    {"x-x-big5", "BIG5-HKSCS"},
};

static int label_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const struct label *)elem)->label);
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

const char *crawl_charset_lookup(const char *label, size_t len)
{
    while (len && (is_space(*label) || *label == '"' || *label == '\'')) label++, len--;
    while (len && (is_space(label[len - 1]) || label[len - 1] == '"' || label[len - 1] == '\''))
        len--;
    char low[24];
    if (len == 0 || len >= sizeof low) return NULL;
    for (size_t i = 0; i < len; i++) {
        char c = label[i];
        low[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    low[len] = '\0';
    const struct label *l =
        bsearch(low, labels, sizeof labels / sizeof labels[0], sizeof labels[0], label_cmp);
    return l ? l->name : NULL;
}

const char *crawl_charset_for_meta(const char *enc)
{
    if (enc && strncmp(enc, "UTF-16", 6) == 0) return "UTF-8";
    return enc;
}

/* The WHATWG "algorithm for extracting a character encoding from a meta element", which is also
 * lenient enough for a Content-Type header: the first "charset" followed by optional whitespace
 * and "=", then a quoted value or one ending at whitespace or ";". No ";" is needed before it. */
const char *crawl_charset_from_content_type(const char *ct)
{
    if (!ct) return NULL;
    for (const char *p = ct; (p = strcasestr(p, "charset")) != NULL;) {
        p += 7;
        while (is_space(*p)) p++;
        if (*p != '=') continue;
        p++;
        while (is_space(*p)) p++;
        size_t n;
        if (*p == '"' || *p == '\'') {
            char q = *p++;
            const char *e = strchr(p, q);
            if (!e) return NULL; /* an unmatched quote: nothing */
            n = (size_t)(e - p);
        } else {
            n = strcspn(p, "; \t\n\r\f");
        }
        return crawl_charset_lookup(p, n);
    }
    return NULL;
}

/* ---- the WHATWG prescan ("prescan a byte stream to determine its encoding") ---- */

static bool is_spc(unsigned char c)
{
    return c == 0x09 || c == 0x0A || c == 0x0C || c == 0x0D || c == 0x20;
}

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* "Get an attribute": at *pos; the name and value (lowercased, truncated) go to name/value.
 * Returns false when there is no attribute (at '>' or the end). */
static bool get_attr(const unsigned char *p, size_t n, size_t *pos, char *name, size_t nsize,
                     char *value, size_t vsize)
{
    size_t i = *pos, nl = 0, vl = 0;
    while (i < n && (is_spc(p[i]) || p[i] == '/')) i++;
    if (i >= n || p[i] == '>') {
        *pos = i;
        return false;
    }
    for (;; i++) { /* the name */
        if (i >= n) goto end;
        unsigned char c = p[i];
        if (c == '=' && nl > 0) break;
        if (is_spc(c)) {
            while (i < n && is_spc(p[i])) i++;
            if (i >= n || p[i] != '=') goto end; /* no value */
            break;
        }
        if ((c == '/' || c == '>') && nl > 0) goto end;
        if (nl + 1 < nsize) name[nl++] = (char)lower(c);
    }
    i++; /* past '=' */
    while (i < n && is_spc(p[i])) i++;
    if (i >= n) goto end;
    if (p[i] == '"' || p[i] == '\'') {
        unsigned char q = p[i++];
        while (i < n && p[i] != q) {
            if (vl + 1 < vsize) value[vl++] = (char)lower(p[i]);
            i++;
        }
        if (i < n) i++;
        goto end;
    }
    if (p[i] == '>') goto end;
    while (i < n && !is_spc(p[i]) && p[i] != '>') {
        if (vl + 1 < vsize) value[vl++] = (char)lower(p[i]);
        i++;
    }
end:
    name[nl] = '\0';
    value[vl] = '\0';
    *pos = i;
    return nl > 0 || vl > 0;
}

static bool is_alpha(unsigned char c)
{
    c = lower(c);
    return c >= 'a' && c <= 'z';
}

const char *crawl_charset_prescan(const unsigned char *p, size_t n)
{
    if (n > 1024) n = 1024;
    for (size_t i = 0; i < n;) {
        if (p[i] != '<') {
            i++;
            continue;
        }
        if (n - i >= 4 && memcmp(p + i, "<!--", 4) == 0) {
            const unsigned char *e = memmem(p + i + 2, n - i - 2, "-->", 3);
            if (!e) return NULL;
            i = (size_t)(e - p) + 3;
        } else if (n - i >= 6 && lower(p[i + 1]) == 'm' && lower(p[i + 2]) == 'e' &&
                   lower(p[i + 3]) == 't' && lower(p[i + 4]) == 'a' &&
                   (is_spc(p[i + 5]) || p[i + 5] == '/')) {
            size_t pos = i + 6;
            char name[16], value[128];
            bool got_equiv = false, got_content = false, got_charset = false, pragma = false;
            const char *enc = NULL;
            int need = 0; /* 1: charset attribute, 2: content with http-equiv */
            while (get_attr(p, n, &pos, name, sizeof name, value, sizeof value)) {
                if (strcmp(name, "http-equiv") == 0 && !got_equiv) {
                    got_equiv = true;
                    if (strcmp(value, "content-type") == 0) pragma = true;
                } else if (strcmp(name, "content") == 0 && !got_content) {
                    got_content = true;
                    if (!enc) {
                        const char *e = crawl_charset_from_content_type(value);
                        if (e) {
                            enc = e;
                            need = 2;
                        }
                    }
                } else if (strcmp(name, "charset") == 0 && !got_charset) {
                    got_charset = true;
                    enc = crawl_charset_lookup(value, strlen(value));
                    need = 1;
                }
            }
            if (pos >= n) return NULL; /* the tag runs past the bytes we have */
            if (enc && (need == 1 || (need == 2 && pragma))) return crawl_charset_for_meta(enc);
            i = pos + 1;
        } else if (n - i >= 2 &&
                   (is_alpha(p[i + 1]) || (p[i + 1] == '/' && n - i >= 3 && is_alpha(p[i + 2])))) {
            size_t pos = i + 2;
            while (pos < n && !is_spc(p[pos]) && p[pos] != '>') pos++;
            char name[16], value[128];
            while (get_attr(p, n, &pos, name, sizeof name, value, sizeof value)) {
            }
            i = pos + 1;
        } else if (n - i >= 2 && (p[i + 1] == '!' || p[i + 1] == '/' || p[i + 1] == '?')) {
            const unsigned char *e = memchr(p + i + 1, '>', n - i - 1);
            if (!e) return NULL;
            i = (size_t)(e - p) + 1;
        } else {
            i++;
        }
    }
    return NULL;
}

/* ---- detection without a declaration ---- */

/* Scores how plausible `p` is in each candidate, as the share of its non-ASCII bytes that form
 * likely characters (see crawl_charset_detect in charset.h). */
const char *crawl_charset_detect(const unsigned char *p, size_t n)
{
    size_t high = 0, gbk = 0, gbk_bad = 0, sjis = 0, sjis_bad = 0, cyr = 0, lat = 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] >= 0x80) high++;
    if (high == 0) return "CP1252";
    /* GBK: two-byte characters; the 3,755 common hanzi and the punctuation rows score. */
    for (size_t i = 0; i < n; i++) {
        if (p[i] < 0x80) continue;
        if (p[i] == 0x80 || p[i] == 0xFF || i + 1 >= n) {
            gbk_bad++;
            continue;
        }
        unsigned char a = p[i], b = p[i + 1];
        if (b < 0x40 || b == 0x7F || b == 0xFF) {
            gbk_bad++;
            continue;
        }
        if (b >= 0xA1 && ((a >= 0xB0 && a <= 0xD7) || (a >= 0xA1 && a <= 0xA3))) gbk += 2;
        i++;
    }
    /* Shift_JIS: kana, punctuation and level-1 kanji score; half-width katakana are valid. */
    for (size_t i = 0; i < n; i++) {
        unsigned char a = p[i];
        if (a < 0x80 || (a >= 0xA1 && a <= 0xDF)) continue;
        if (a == 0x80 || a == 0xA0 || a > 0xFC || i + 1 >= n) {
            sjis_bad++;
            continue;
        }
        unsigned char b = p[++i];
        if (b < 0x40 || b == 0x7F || b > 0xFC) {
            sjis_bad++;
            continue;
        }
        if (a == 0x81 || (a == 0x82 && b >= 0x9F) || (a == 0x83 && b <= 0x96) ||
            (a >= 0x88 && a <= 0x98))
            sjis += 2;
    }
    /* windows-1251: runs of two or more Cyrillic letters, mostly lower case. windows-1252:
     * accented letters next to ASCII letters, and typographic punctuation. */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if (c < 0x80) continue;
        bool prev_hi = i > 0 && p[i - 1] >= 0xC0, next_hi = i + 1 < n && p[i + 1] >= 0xC0;
        bool prev_az = i > 0 && is_alpha(p[i - 1]), next_az = i + 1 < n && is_alpha(p[i + 1]);
        if (c >= 0xE0 && (prev_hi || next_hi)) cyr++;
        if (c >= 0xC0 && c < 0xE0 && next_hi && !prev_hi) cyr++; /* a capital starts a word */
        if (c >= 0xC0 && (prev_az || next_az)) lat++;
        if (c == 0x85 || (c >= 0x91 && c <= 0x97) || c == 0x80 || c == 0xA0 || c == 0xA9) lat++;
    }
    struct {
        const char *name;
        size_t score, bad;
    } cand[] = {{"GB18030", gbk, gbk_bad},
                {"CP932", sjis, sjis_bad},
                {"CP1251", cyr, 0},
                {"CP1252", lat, 0}};
    const char *best = NULL;
    double best_score = 0.5; /* below half of the non-ASCII bytes: no candidate convinces */
    for (size_t k = 0; k < sizeof cand / sizeof cand[0]; k++) {
        if (cand[k].bad * 50 > high) continue; /* more than 2 % invalid */
        double s = (double)cand[k].score / (double)high;
        if (s > best_score + 1e-9) {
            best = cand[k].name;
            best_score = s;
        }
    }
    return best;
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
    d->cp1252 = strcmp(enc, "CP1252") == 0;
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
        /* EILSEQ, or an incomplete sequence at the very end: one replacement, skip a byte.
         * windows-1252's five unassigned bytes are U+0081 etc. in the WHATWG index, which
         * iconv does not map. */
        unsigned char c = (unsigned char)*in;
        if (d->cp1252 && (c == 0x81 || c == 0x8D || c == 0x8F || c == 0x90 || c == 0x9D)) {
            char c1[2] = {(char)0xC2, (char)c};
            rc = weft_buf_append(out, c1, 2);
            in++;
            inleft--;
            continue;
        }
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
