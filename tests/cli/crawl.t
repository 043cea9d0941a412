# weft crawl and weft fixture on the command line.
$ weft crawl
? 2
! weft crawl: no input file

$ weft crawl --mode fast urls.txt
? 2
! --mode: 'fast' is not seq, threads, async or all

$ weft crawl --threads 0 urls.txt
? 2
! --threads: '0' is not in 1..1024

$ weft crawl --rate
? 2
! --rate needs a value

$ weft crawl /nonexistent/urls.txt
? 2
! cannot open /nonexistent/urls.txt

$ weft crawl a.txt b.txt
? 2
! one input file only

$ weft crawl --help | head -1
? 0
> usage: weft crawl [OPTIONS] FILE

# Invalid lines are reported per line, in order, not fatal; comments are skipped.
$ weft crawl --no-progress --jsonl - -
< # a comment
< not a url
< ftp://example.com/file
? 1
> {"mode":"async","line":2,"url":"not a url","final_url":null,"status":0,"redirects":0,"title":null,"description":null,"charset":null,"charset_source":null,"bytes":0,"truncated":false,"attempts":0,"ms":0.0,"dns_ms":0.0,"connect_ms":0.0,"tls_ms":0.0,"ttfb_ms":0.0,"queued_ms":0.0,"start_ms":0.0,"error":"URL contains a space or control character","error_kind":"invalid-url"}
> {"mode":"async","line":3,"url":"ftp://example.com/file","final_url":null,"status":0,"redirects":0,"title":null,"description":null,"charset":null,"charset_source":null,"bytes":0,"truncated":false,"attempts":0,"ms":0.0,"dns_ms":0.0,"connect_ms":0.0,"tls_ms":0.0,"ttfb_ms":0.0,"queued_ms":0.0,"start_ms":0.0,"error":"not an http:// or https:// URL","error_kind":"invalid-url"}

# Against the fixture: every mode extracts the same title; stdin is spooled for --mode all.
$ weft fixture run --port 0 -- sh -c 'printf "%s/page/2\n%s/charset/gbk\n" "$WEFT_FIXTURE" "$WEFT_FIXTURE" | weft crawl --mode all --no-progress --jsonl - - | grep -o "\"title\":\"[^\"]*\"" | sort | uniq -c'
? 0
>       3 "title":"Page 2: cedar onyx"
>       3 "title":"中文网页 GBK"

# The summary compares the modes and checks the fields agree.
$ weft fixture run --port 0 -- sh -c 'printf "%s/page/1\n" "$WEFT_FIXTURE" > u.txt && weft crawl --mode all -q --no-progress u.txt | grep "^fields"'
? 0
> fields     status, title and description identical in every mode (2 pages compared)

$ weft fixture --help | head -1
? 0
> usage: weft fixture serve [OPTIONS]

$ weft fixture serve --port 99999
? 2
! --port: '99999' is not a port number

$ weft fixture launch
? 2
! unknown subcommand 'launch'

$ weft fixture run --port 0
? 2
! run: no COMMAND given

$ weft fixture run --port 0 -- false
? 1

$ weft crawl /
? 2
! weft crawl: / is a directory

# A FIFO or <(...) is spooled for --mode all like standard input: every mode sees every URL.
$ weft fixture run --port 0 -- bash -c 'weft crawl --mode all --no-progress --jsonl - <(printf "%s/page/2\n%s/page/3\n" "$WEFT_FIXTURE" "$WEFT_FIXTURE") | grep -c "\"status\":200"'
? 0
> 6

# A UTF-8 byte-order mark before line 1 is not part of the URL.
$ weft fixture run --port 0 -- bash -c 'printf "\xEF\xBB\xBF%s/page/1\n" "$WEFT_FIXTURE" | weft crawl --no-progress --jsonl - - | grep -o "\"line\":1,[^,]*,[^,]*,\"status\":200"' | sed 's/http[^"]*//g'
? 0
> "line":1,"url":"","final_url":"","status":200

# A NUL byte would silently cut the URL short: the line is rejected.
$ printf 'http://127.0.0.1:1/a\0b\n' | weft crawl --no-progress --jsonl - - | grep -o '"error":"[^"]*"'
? 0
> "error":"line contains a NUL byte"

$ weft crawl --robots-cache 0 urls.txt
? 2
! --robots-cache: '0' is not in 1..10000000

$ weft crawl --help
? 0
~ --per-host K          at most K connections per host
~ --robots-cache N
