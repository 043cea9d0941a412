/* weft logs: user-agent classes (ua.h).
 *
 * Three ordered tables of {substring, name}: the first entry whose substring occurs in the user
 * agent wins, so the more specific tokens come first (Edge and Opera announce "Chrome", Chrome
 * announces "Safari", Android announces "Linux"). Crawlers are looked for first: a crawler's
 * browser is "Crawlers" and its operating system "Unknown", as GoAccess shows them. The lists
 * are weft's own, written from the tokens the user agents publish; matching is case-sensitive
 * except for the generic "bot", "crawl" and "spider" words.
 */
#include "logs/ua.h"

#include <string.h>

typedef struct {
    const char *token, *name;
} entry_t;

static const entry_t crawlers[] = {
    {"Googlebot", "Googlebot"},
    {"Google-InspectionTool", "Googlebot"},
    {"AdsBot-Google", "Googlebot"},
    {"bingbot", "Bingbot"},
    {"BingPreview", "Bingbot"},
    {"YandexBot", "YandexBot"},
    {"Baiduspider", "Baiduspider"},
    {"DuckDuckBot", "DuckDuckBot"},
    {"Applebot", "Applebot"},
    {"facebookexternalhit", "Facebook"},
    {"Twitterbot", "Twitterbot"},
    {"LinkedInBot", "LinkedInBot"},
    {"Slackbot", "Slackbot"},
    {"AhrefsBot", "AhrefsBot"},
    {"SemrushBot", "SemrushBot"},
    {"MJ12bot", "MJ12bot"},
    {"DotBot", "DotBot"},
    {"PetalBot", "PetalBot"},
    {"GPTBot", "GPTBot"},
    {"ClaudeBot", "ClaudeBot"},
    {"CCBot", "CCBot"},
    {"Bytespider", "Bytespider"},
    {"UptimeRobot", "UptimeRobot"},
    {"Pingdom", "Pingdom"},
    {"HeadlessChrome", "HeadlessChrome"},
};

/* Tools and libraries are browsers in GoAccess's sense, not crawlers. */
static const entry_t browsers[] = {
    {"Edg/", "Edge"},
    {"Edge/", "Edge"},
    {"OPR/", "Opera"},
    {"Opera", "Opera"},
    {"SamsungBrowser", "Samsung Internet"},
    {"YaBrowser", "Yandex Browser"},
    {"Vivaldi", "Vivaldi"},
    {"Firefox/", "Firefox"},
    {"FxiOS", "Firefox"},
    {"CriOS", "Chrome"},
    {"Chromium", "Chromium"},
    {"Chrome/", "Chrome"},
    {"MSIE ", "Internet Explorer"},
    {"Trident/", "Internet Explorer"},
    {"Safari/", "Safari"},
    {"curl/", "curl"},
    {"Wget/", "Wget"},
    {"python-requests", "Python"},
    {"Python-urllib", "Python"},
    {"aiohttp", "Python"},
    {"Go-http-client", "Go"},
    {"okhttp", "OkHttp"},
    {"Java/", "Java"},
    {"libwww-perl", "Perl"},
    {"PostmanRuntime", "Postman"},
};

static const entry_t systems[] = {
    {"Windows NT", "Windows"}, {"Windows Phone", "Windows Phone"},
    {"Windows", "Windows"},    {"iPhone", "iOS"},
    {"iPad", "iOS"},           {"iPod", "iOS"},
    {"Android", "Android"},    {"CrOS", "ChromeOS"},
    {"Mac OS X", "macOS"},     {"Macintosh", "macOS"},
    {"FreeBSD", "BSD"},        {"OpenBSD", "BSD"},
    {"NetBSD", "BSD"},         {"Linux", "Linux"},
    {"X11", "Unix-like"},
};

#define N(t) (sizeof(t) / sizeof((t)[0]))

static const char *first_match(const entry_t *t, size_t n, const char *s, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (memmem(s, len, t[i].token, strlen(t[i].token))) return t[i].name;
    return NULL;
}

/* The generic words, in any case. */
static bool has_word_ci(const char *s, size_t len, const char *w)
{
    size_t wl = strlen(w);
    for (size_t i = 0; i + wl <= len; i++) {
        size_t k = 0;
        while (k < wl && (s[i + k] | 0x20) == w[k]) k++;
        if (k == wl) return true;
    }
    return false;
}

static const char *crawler_of(const char *ua, size_t len)
{
    const char *c = first_match(crawlers, N(crawlers), ua, len);
    if (c) return c;
    if (has_word_ci(ua, len, "bot") || has_word_ci(ua, len, "crawl") ||
        has_word_ci(ua, len, "spider"))
        return "Other crawlers";
    return NULL;
}

weft_logs_ua_class_t weft_logs_ua_classify(const char *ua, size_t len)
{
    weft_logs_ua_class_t c = {"Unknown", "Unknown", NULL};
    if (!ua || len == 0 || (len == 1 && ua[0] == '-')) return c;
    c.crawler = crawler_of(ua, len);
    if (c.crawler) {
        c.browser = "Crawlers";
        return c;
    }
    const char *b = first_match(browsers, N(browsers), ua, len);
    const char *o = first_match(systems, N(systems), ua, len);
    if (b) c.browser = b;
    if (o) c.os = o;
    return c;
}

bool weft_logs_ua_is_crawler(const char *ua, size_t len)
{
    if (!ua || len == 0) return false;
    return crawler_of(ua, len) != NULL;
}
