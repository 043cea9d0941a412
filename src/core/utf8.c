/* The one UTF-8 module (weft/utf8.h): a strict decoder (RFC 3629), validation, terminal width
 * and the JSON and HTML escapers built on the decoder.
 *
 * DESIGN: everything is built on weft_utf8_decode, so that "what is one character" and "which
 * bytes are replaced" have one answer. An invalid sequence is consumed one byte at a time (the
 * next byte may start a valid sequence), which is what the WHATWG decoder and iconv's //IGNORE
 * style replacement do, and what makes the width of a string equal to the columns its printer
 * uses. The width table is short and sorted (binary search); it covers the combining blocks and
 * the East Asian wide blocks that appear in page titles and log paths, not all of Unicode.
 */
#include <errno.h>
#include <string.h>
#include <weft/utf8.h>

int weft_utf8_decode(const char *str, size_t n, uint32_t *cp)
{
    const unsigned char *s = (const unsigned char *)str;
    *cp = WEFT_UTF8_REPLACEMENT;
    if (n == 0) return -EINVAL;
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int len;
    uint32_t v;
    unsigned char lo = 0x80, hi = 0xBF; /* the allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0; /* overlong */
        if (c == 0xED) hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        v = c & 0x07;
        if (c == 0xF0) lo = 0x90; /* overlong */
        if (c == 0xF4) hi = 0x8F; /* above U+10FFFF */
    } else {
        return -EILSEQ; /* a continuation byte, an overlong lead (C0, C1) or F5..FF */
    }
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n) return -EAGAIN;
        unsigned char b = s[i];
        if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xBF)) return -EILSEQ;
        v = v << 6 | (b & 0x3F);
    }
    *cp = v;
    return len;
}

size_t weft_utf8_valid_prefix(const char *s, size_t n, bool last)
{
    size_t i = 0;
    while (i < n) {
        if ((unsigned char)s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        int l = weft_utf8_decode(s + i, n - i, &cp);
        if (l > 0)
            i += (size_t)l;
        else if (l == -EAGAIN && !last)
            return n; /* an incomplete tail is fine for now */
        else
            return i;
    }
    return n;
}

bool weft_utf8_valid(const char *s, size_t n)
{
    return weft_utf8_valid_prefix(s, n, true) == n;
}

typedef struct range {
    uint32_t lo, hi;
} range_t;

/* Combining marks and zero-width characters (general categories Mn, Me, Cf in common scripts). */
static const range_t zero_width[] = {
    {0x0300, 0x036F},   {0x0483, 0x0489},   {0x0591, 0x05BD},   {0x05BF, 0x05BF},
    {0x05C1, 0x05C2},   {0x05C4, 0x05C5},   {0x05C7, 0x05C7},   {0x0610, 0x061A},
    {0x064B, 0x065F},   {0x0670, 0x0670},   {0x06D6, 0x06DC},   {0x06DF, 0x06E4},
    {0x06E7, 0x06E8},   {0x06EA, 0x06ED},   {0x0711, 0x0711},   {0x0730, 0x074A},
    {0x0900, 0x0902},   {0x093A, 0x093A},   {0x093C, 0x093C},   {0x0941, 0x0948},
    {0x094D, 0x094D},   {0x0951, 0x0957},   {0x0962, 0x0963},   {0x0E31, 0x0E31},
    {0x0E34, 0x0E3A},   {0x0E47, 0x0E4E},   {0x1160, 0x11FF},   {0x1AB0, 0x1AFF},
    {0x1DC0, 0x1DFF},   {0x200B, 0x200F},   {0x202A, 0x202E},   {0x2060, 0x2064},
    {0x20D0, 0x20FF},   {0x302A, 0x302D},   {0x3099, 0x309A},   {0xFE00, 0xFE0F},
    {0xFE20, 0xFE2F},   {0xFEFF, 0xFEFF},   {0x1D167, 0x1D169}, {0x1D173, 0x1D182},
    {0xE0001, 0xE0001}, {0xE0020, 0xE007F}, {0xE0100, 0xE01EF},
};

/* East Asian Wide (W) and Fullwidth (F): CJK, Hangul, kana, fullwidth forms, emoji. */
static const range_t wide[] = {
    {0x1100, 0x115F},   {0x231A, 0x231B},   {0x2329, 0x232A},   {0x23E9, 0x23EC},
    {0x23F0, 0x23F0},   {0x23F3, 0x23F3},   {0x25FD, 0x25FE},   {0x2614, 0x2615},
    {0x2648, 0x2653},   {0x267F, 0x267F},   {0x2693, 0x2693},   {0x26A1, 0x26A1},
    {0x26AA, 0x26AB},   {0x26BD, 0x26BE},   {0x26C4, 0x26C5},   {0x26CE, 0x26CE},
    {0x26D4, 0x26D4},   {0x26EA, 0x26EA},   {0x26F2, 0x26F3},   {0x26F5, 0x26F5},
    {0x26FA, 0x26FA},   {0x26FD, 0x26FD},   {0x2705, 0x2705},   {0x270A, 0x270B},
    {0x2728, 0x2728},   {0x274C, 0x274C},   {0x274E, 0x274E},   {0x2753, 0x2755},
    {0x2757, 0x2757},   {0x2795, 0x2797},   {0x27B0, 0x27B0},   {0x27BF, 0x27BF},
    {0x2B1B, 0x2B1C},   {0x2B50, 0x2B50},   {0x2B55, 0x2B55},   {0x2E80, 0x3029},
    {0x302E, 0x303E},   {0x3041, 0x3098},   {0x309B, 0x33FF},   {0x3400, 0x4DBF},
    {0x4E00, 0x9FFF},   {0xA000, 0xA4CF},   {0xA960, 0xA97F},   {0xAC00, 0xD7A3},
    {0xF900, 0xFAFF},   {0xFE10, 0xFE19},   {0xFE30, 0xFE6F},   {0xFF00, 0xFF60},
    {0xFFE0, 0xFFE6},   {0x16FE0, 0x16FE4}, {0x17000, 0x18AFF}, {0x1B000, 0x1B2FF},
    {0x1F004, 0x1F004}, {0x1F0CF, 0x1F0CF}, {0x1F18E, 0x1F18E}, {0x1F191, 0x1F19A},
    {0x1F200, 0x1F251}, {0x1F300, 0x1F320}, {0x1F32D, 0x1F335}, {0x1F337, 0x1F37C},
    {0x1F37E, 0x1F393}, {0x1F3A0, 0x1F3CA}, {0x1F3CF, 0x1F3D3}, {0x1F3E0, 0x1F3F0},
    {0x1F3F4, 0x1F3F4}, {0x1F3F8, 0x1F43E}, {0x1F440, 0x1F440}, {0x1F442, 0x1F4FC},
    {0x1F4FF, 0x1F53D}, {0x1F54B, 0x1F54E}, {0x1F550, 0x1F567}, {0x1F57A, 0x1F57A},
    {0x1F595, 0x1F596}, {0x1F5A4, 0x1F5A4}, {0x1F5FB, 0x1F64F}, {0x1F680, 0x1F6C5},
    {0x1F6CC, 0x1F6CC}, {0x1F6D0, 0x1F6D2}, {0x1F6D5, 0x1F6D7}, {0x1F6EB, 0x1F6EC},
    {0x1F6F4, 0x1F6FC}, {0x1F7E0, 0x1F7EB}, {0x1F90C, 0x1F93A}, {0x1F93C, 0x1F945},
    {0x1F947, 0x1F9FF}, {0x1FA70, 0x1FAFF}, {0x20000, 0x2FFFD}, {0x30000, 0x3FFFD},
};

static bool in_table(uint32_t cp, const range_t *t, size_t n)
{
    if (cp < t[0].lo || cp > t[n - 1].hi) return false;
    size_t a = 0, b = n;
    while (a < b) {
        size_t m = a + (b - a) / 2;
        if (cp > t[m].hi)
            a = m + 1;
        else if (cp < t[m].lo)
            b = m;
        else
            return true;
    }
    return false;
}

int weft_utf8_cp_width(uint32_t cp)
{
    if (cp < 0x300) return 1; /* ASCII, Latin-1 and controls (printed as one space) */
    if (in_table(cp, zero_width, sizeof zero_width / sizeof zero_width[0])) return 0;
    if (in_table(cp, wide, sizeof wide / sizeof wide[0])) return 2;
    return 1;
}

size_t weft_utf8_width(const char *s, size_t n)
{
    size_t cols = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int l = weft_utf8_decode(s + i, n - i, &cp);
        if (l < 0) l = 1; /* one U+FFFD per invalid byte */
        cols += (size_t)weft_utf8_cp_width(cp);
        i += (size_t)l;
    }
    return cols;
}

/* The walk shared by the three writers: copies runs that need no change in one append, and asks
 * `esc` for the replacement of every ASCII byte it flags and of every invalid byte (cp < 0). */
typedef const char *(*escape_fn)(int32_t cp, char tmp[8]);

static int transform(weft_buf_t *out, const char *s, size_t n, bool (*flag)(unsigned char),
                     escape_fn esc)
{
    size_t run = 0, i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        const char *rep = NULL;
        size_t l = 1;
        char tmp[8];
        if (c < 0x80) {
            if (flag && flag(c)) rep = esc(c, tmp);
        } else {
            uint32_t cp;
            int d = weft_utf8_decode(s + i, n - i, &cp);
            if (d < 0)
                rep = esc(-1, tmp);
            else
                l = (size_t)d;
        }
        if (!rep) {
            i += l;
            continue;
        }
        int rc = weft_buf_append(out, s + run, i - run);
        if (!rc) rc = weft_buf_append(out, rep, strlen(rep));
        if (rc) return rc;
        i += l;
        run = i;
    }
    return weft_buf_append(out, s + run, n - run);
}

static const char *repair_esc(int32_t cp, char tmp[8])
{
    (void)cp;
    (void)tmp;
    return "\xEF\xBF\xBD";
}

int weft_utf8_repair(weft_buf_t *out, const char *s, size_t n)
{
    return transform(out, s, n, NULL, repair_esc);
}

static const char *json_esc(int32_t cp, char tmp[8])
{
    static const char hex[] = "0123456789abcdef";
    if (cp < 0) return "\\ufffd";
    if (cp == '"') return "\\\"";
    if (cp == '\\') return "\\\\";
    memcpy(tmp, "\\u00", 4);
    tmp[4] = hex[cp >> 4];
    tmp[5] = hex[cp & 15];
    tmp[6] = '\0';
    return tmp;
}

static bool json_flag(unsigned char c)
{
    return c < 0x20 || c == 0x7F || c == '"' || c == '\\';
}

static bool html_flag(unsigned char c)
{
    return c < 0x20 || c == 0x7F || c == '&' || c == '<' || c == '>' || c == '"' || c == '\'';
}

int weft_utf8_escape_json(weft_buf_t *out, const char *s, size_t n)
{
    return transform(out, s, n, json_flag, json_esc);
}

static const char *html_esc(int32_t cp, char tmp[8])
{
    (void)tmp;
    switch (cp) {
    case -1:
        return "&#xFFFD;";
    case '&':
        return "&amp;";
    case '<':
        return "&lt;";
    case '>':
        return "&gt;";
    case '"':
        return "&quot;";
    case '\'':
        return "&#39;";
    default:
        return " "; /* control characters */
    }
}

int weft_utf8_escape_html(weft_buf_t *out, const char *s, size_t n)
{
    return transform(out, s, n, html_flag, html_esc);
}
