/* docs/utf8.md example: a two-column table of untrusted names that lines up on a terminal
 * whatever the bytes (wide, combining, invalid), and the same names escaped for JSON and HTML.
 * Built and run by ctest as example-utf8. */
#include <stdio.h>
#include <string.h>
#include <weft/buf.h>
#include <weft/utf8.h>

int main(void)
{
    static const char *const names[] = {"plain", "caf\xC3\xA9", "\xE6\x97\xA5\xE6\x9C\xAC",
                                        "bad\xFF\xC0", "<b>&\"q\""};
    weft_buf_t json, html;
    weft_buf_init(&json, 0);
    weft_buf_init(&html, 0);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *s = names[i];
        size_t n = strlen(s), w = weft_utf8_width(s, n);
        weft_buf_reset(&json);
        weft_buf_reset(&html);
        weft_buf_t fixed;
        weft_buf_init(&fixed, 0);
        /* Repair before printing: each invalid byte becomes U+FFFD, one column, as counted. */
        if (weft_utf8_repair(&fixed, s, n) || weft_utf8_escape_json(&json, s, n) ||
            weft_utf8_escape_html(&html, s, n)) {
            weft_buf_free(&fixed);
            return 1;
        }
        printf("%s%*s| valid=%d json=\"%s\" html=%s\n", fixed.data, (int)(12 - w), "",
               weft_utf8_valid(s, n), json.data, html.data);
        weft_buf_free(&fixed);
    }
    weft_buf_free(&json);
    weft_buf_free(&html);
    return 0;
}
