# Independent reference for tests/crawl/real-pages.sh: title and description of each page with
# python3's html.parser (not libxml2), charset by the same documented order (BOM, header,
# prescan of the first 1024 bytes, UTF-8 if valid, else windows-1252), whitespace collapsed as
# document.title does. Reads weft's JSON Lines (argv[1]), fetches each URL itself, prints
# every disagreement; exit 1 if any.
import json, re, sys, html.parser, codecs
from urllib.request import urlopen

WS = re.compile(r'[\t\n\f\r ]+')
def norm(s):
    return WS.sub(' ', s).strip() if s is not None else None

class P(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.title = None; self.in_title = False; self.buf = []; self.desc = None; self.charset = None
    def handle_starttag(self, tag, attrs):
        a = {k.lower(): (v or '') for k, v in attrs}
        if tag == 'title' and self.title is None and not self.in_title:
            self.in_title = True; self.buf = []
        elif tag == 'meta':
            if a.get('name', '').strip().lower() == 'description' and self.desc is None and 'content' in a:
                self.desc = a['content']
            if self.charset is None:
                if 'charset' in a: self.charset = a['charset'].strip()
                elif a.get('http-equiv', '').lower() == 'content-type':
                    m = re.search(r'charset\s*=\s*["\']?([^"\';\s]+)', a.get('content', ''), re.I)
                    if m: self.charset = m.group(1)
    def handle_endtag(self, tag):
        if tag == 'title' and self.in_title:
            self.in_title = False; self.title = ''.join(self.buf)
    def handle_data(self, d):
        if self.in_title: self.buf.append(d)

def extract(raw, header_cs):
    cs = header_cs
    if raw.startswith(codecs.BOM_UTF8): cs = 'utf-8'
    if not cs:
        p = P(); p.feed(raw[:1024].decode('latin-1')); cs = p.charset
    if not cs:
        try: raw.decode('utf-8'); cs = 'utf-8'
        except UnicodeDecodeError: cs = 'cp1252'
    if cs.lower() in ('iso-8859-1', 'latin1', 'latin-1', 'us-ascii', 'ascii'): cs = 'cp1252'
    text = raw.decode(cs, 'replace')
    if text.startswith('\ufeff'): text = text[1:]
    p = P(); p.feed(text); p.close()
    if p.in_title: p.title = ''.join(p.buf)
    return norm(p.title) or None, norm(p.desc) or None

bad = n = 0
ref = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    n += 1
    if r['url'] not in ref:
        with urlopen(r['url']) as f:
            ct = f.headers.get('Content-Type', '')
            m = re.search(r'charset=([^;\s]+)', ct)
            raw = f.read()
        ref[r['url']] = extract(raw, m.group(1) if m else None)
    t, d = ref[r['url']]
    wt, wd = r.get('title') or None, r.get('description') or None
    if t != wt or d != wd:
        bad += 1
        print(f"DIFF {r['mode']} {r['url']}\n  title  weft={wt!r}\n         ref ={t!r}\n  desc   weft={wd!r}\n         ref ={d!r}")
print(f"{bad} of {n} records differ from python's html.parser")
sys.exit(1 if bad else 0)
