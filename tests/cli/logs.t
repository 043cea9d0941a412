# weft logs: the command line.
$ weft logs --help
? 0

$ weft logs gen --help
? 0

$ weft logs no-such-file.log
? 2
! weft logs: cannot open no-such-file.log: No such file or directory

$ weft logs .
? 2
! weft logs: .: is a directory

# Nothing parsed is a failure that names the format tried (it exited 0 with a report of zeros).
$ weft logs -j 1
< not a log line
< nor this one
? 2
! no line parsed: all 2 lines are malformed for the format tried (default)

# Malformed lines on stderr: controls and non-UTF-8 bytes as \xNN (no escape reaches the terminal).
$ printf 'bad \033[31mred\a \\ \377\n10.0.0.1 - - [15/Jan/2025:10:30:45 +0800] "GET /a HTTP/1.1" 200 100 0.052\n' | weft logs -j 1 > /dev/null
? 0
! (stdin):1: malformed line: bad \x1b[31mred\x07 \\ \xff

# gzip data cut short, or followed by garbage, exits 2 naming the file and the offset.
$ weft logs gen --size 20K -o z.log && gzip -c z.log | head -c 3000 > t.gz && weft logs t.gz
? 2
! weft logs: t.gz: truncated gzip data: the input ends at compressed byte 3000

$ weft logs gen --size 20K -o z.log && (gzip -c z.log; echo trailing) > g.gz && weft logs g.gz
? 2
! bytes that are not gzip data after its end

# xz, bzip2 and zstd by their magic bytes; FIFOs and <(...) as streams: the same report.
$ weft logs gen --size 30K -o y.log && weft logs --json y.log > y.json && xz -c y.log > y.xz && bzip2 -c y.log > y.bz && zstd -q -c y.log > y.zst && weft logs --json y.xz | cmp - y.json && weft logs --json y.bz | cmp - y.json && weft logs --json y.zst | cmp - y.json && weft logs --json <(cat y.log) | cmp - y.json && echo same
? 0
> same

$ weft logs --frobnicate x.log
? 2
! weft logs: unknown option '--frobnicate'

$ weft logs -j 0 x.log
? 2
! bad --jobs '0'

$ weft logs --mode fibers x.log
? 2
! bad --mode 'fibers'

$ weft logs --format apache x.log
? 2
! unknown log format: apache

$ weft logs --log-format '$remote_addr [$time_local]' x.log
? 2
! log format lacks $status

$ weft logs --chunk-size 0 x.log
? 2
! bad --chunk-size '0'

$ weft logs merge
? 2
! no partial files given

$ printf 'garbage' > p.bin && weft logs merge p.bin
? 2
! corrupt partial: not a weft logs partial (bad magic)

$ weft logs gen --size 1K --seed 1 --malformed-rate 2
? 2
! bad --malformed-rate '2'

# A small log on standard input: the JSON report (the seed's statistics only), and the malformed line on stderr.
$ weft logs --json -j 2 --panels none
< 10.0.0.1 - - [15/Jan/2025:10:30:45 +0800] "GET /a?q=1 HTTP/1.1" 200 100 0.052
< 10.0.0.2 - - [15/Jan/2025:11:00:00 +0800] "GET /a HTTP/1.1" 404 - 0.25
< not a log line
< 10.0.0.1 - - [15/Jan/2025:23:59:59 +0800] "POST /b HTTP/1.1" 500 7 1
? 0
> {"lines":4,"parsed":3,"malformed":1,"hourly":[0,0,0,0,0,0,0,0,0,0,1,1,0,0,0,0,0,0,0,0,0,0,0,1],"status":{"200":1,"404":1,"500":1},"top_ips":[{"ip":"10.0.0.1","count":2},{"ip":"10.0.0.2","count":1}],"distinct_ips":2,"bytes":107,"response_time":{"avg":0.434,"min":0.052,"max":1,"p50":0.25,"p90":1,"p95":1,"p99":1,"count":3},"status_classes":{"1xx":0,"2xx":1,"3xx":0,"4xx":1,"5xx":1,"other":0},"top_paths":[{"path":"/a","count":2},{"path":"/b","count":1}],"distinct_paths":2,"top_404_paths":[{"path":"/a","count":1}],"distinct_404_paths":1,"top_static_paths":[],"distinct_static_paths":0,"static_requests":0,"excluded":0}
! weft logs: (stdin):3: malformed line: not a log line

# Generated input, saved partials merged, processes mode: all the same JSON.
$ weft logs gen --size 200K --seed 7 -o a.log && weft logs gen --size 100K --seed 8 -o b.log && weft logs --json a.log b.log > all.json && weft logs --json --save-partial pa.bin a.log > /dev/null && weft logs --json --save-partial pb.bin --mode processes -j 2 b.log > /dev/null && weft logs merge --json pa.bin pb.bin > merged.json && cmp all.json merged.json && weft logs --json --mode processes -j 3 --chunk-size 9999 a.log b.log | cmp - all.json && gzip -c a.log > a.log.gz && weft logs --json a.log.gz - < b.log | cmp - all.json && echo same
? 0
> same

$ weft logs gen --size 50K -o c.log && weft logs --html r.html c.log > /dev/null && grep -q 'id="weft-report"' r.html && ! grep -q ' src=' r.html && echo ok
? 0
> ok

$ weft logs gen --size 50K -o c.log && head -c 300 c.log > d.bin && weft logs --save-partial p.bin c.log > /dev/null && head -c 100 p.bin > t.bin && weft logs merge t.bin
? 2
! corrupt partial

# Partials carry what they counted: the same input twice is merged once, a partial overlap is
# refused (merge a.part a.part double-counted before).
$ weft logs gen --size 60K --seed 7 -o a.log && weft logs gen --size 30K --seed 8 -o b.log && weft logs --json a.log b.log > all.json && weft logs --json --save-partial pa.bin a.log > /dev/null && gzip -c a.log > a.gz && weft logs --json --save-partial pz.bin - < a.gz > /dev/null && weft logs --json --save-partial pb.bin b.log > /dev/null && weft logs merge --json pa.bin pa.bin pz.bin pb.bin | cmp - all.json && echo same
? 0
> same
! skipping pa.bin: its input a.log was already counted (from pa.bin)

$ weft logs gen --size 60K --seed 7 -o a.log && weft logs gen --size 30K --seed 8 -o b.log && weft logs --save-partial pab.bin a.log b.log > /dev/null && weft logs --save-partial pb.bin b.log > /dev/null && weft logs merge pb.bin pab.bin
? 2
! pab.bin overlaps pb.bin: both counted b.log

# An Apache LogFormat where an nginx string is expected gets a hint (--log-format takes one, see
# logs-formats.t); every output that cannot be written exits 1 (a partial file exited 2 and the
# report 1 before).
$ weft logs -f 'nginx:%h %l %u %t "%r" %>s %b' x.log
? 2
! this looks like an Apache LogFormat

$ weft logs gen --size 2K -o w.log && weft logs --save-partial no-such-dir/p.bin w.log > /dev/null
? 1
! cannot write no-such-dir/p.bin

$ weft logs gen --size 2K -o w.log && weft logs w.log > /dev/full
? 1
! cannot write the report

# A stream's unterminated last line is a line (only a file's snapshot may end mid-line).
$ printf 'not a log line' | weft logs -j 1
? 2
! (stdin):1: malformed line: not a log line

# Filters: --exclude-ip and --ignore-status leave lines out, counted as excluded.
$ weft logs --json -j 2 --exclude-ip 10.0.0.2,::ffff:10.0.0.9 --ignore-status 500
< 10.0.0.1 - - [15/Jan/2025:10:30:45 +0800] "GET /a HTTP/1.1" 200 100 0.052
< 10.0.0.2 - - [15/Jan/2025:11:00:00 +0800] "GET /a HTTP/1.1" 404 - 0.25
< 10.0.0.1 - - [15/Jan/2025:23:59:59 +0800] "POST /b HTTP/1.1" 500 7 1
? 0
~ "lines":3,"parsed":1,"malformed":0
~ "excluded":2,

# IPv6 clients are counted by value but printed as written in the log (grep finds them): of the
# spellings of one address, the least in byte order, for any -j, mode and merge; --exclude-ip
# matches by value.
$ printf '%s\n' '2001:db8:0:0::1 - - [15/Jan/2025:10:30:45 +0800] "GET /a HTTP/1.1" 200 1 0.1' '2001:DB8::1 - - [15/Jan/2025:10:30:46 +0800] "GET /a HTTP/1.1" 200 1 0.1' '2001:0db8::0002 - - [15/Jan/2025:10:30:47 +0800] "GET /b HTTP/1.1" 200 1 0.1' > v6.log && weft logs --json -j1 v6.log > a.json && weft logs --json -j2 --mode processes --chunk-size 1 v6.log | cmp - a.json && tail -1 v6.log > b.log && head -2 v6.log | tac > c.log && weft logs --save-partial b.part b.log > /dev/null && weft logs --save-partial c.part c.log > /dev/null && weft logs merge --json c.part b.part | cmp - a.json && grep -o '"top_ips":[^]]*]' a.json && weft logs --json --exclude-ip 2001:db8::1 v6.log | grep -o '"top_ips":[^]]*]' && weft logs --json --panels ips v6.log | grep -o '"ips":.*' | grep -o '"ip":"[^"]*"'
? 0
> "top_ips":[{"ip":"2001:DB8::1","count":2},{"ip":"2001:0db8::0002","count":1}]
> "top_ips":[{"ip":"2001:0db8::0002","count":1}]
> "ip":"2001:DB8::1"
> "ip":"2001:0db8::0002"

$ weft logs --ignore-status 42 x.log
? 2
! bad --ignore-status '42'

# The GoAccess panels and CSV: byte-identical for any -j and both modes, through a partial too.
$ weft logs gen --size 200K --format combined-rt -o p.log && weft logs -j1 --panels all --csv p.log > a.csv && weft logs -j2 --panels all --csv p.log | cmp - a.csv && weft logs -j2 --mode processes --panels all --csv p.log | cmp - a.csv && weft logs -j2 --panels all --save-partial p.part p.log > /dev/null && weft logs merge --csv p.part | cmp - a.csv && head -1 a.csv | tr -d '\r' && grep -c '^urls,' a.csv
? 0
> panel,name,method,protocol,hits,visitors,bytes,rt_avg,rt_sum,rt_max
> 10

$ weft logs gen --size 50K --format combined -o q.log && weft logs --tz Europe/Berlin --since 2025-01-14 --until 14/Jan/2025 --ignore-crawlers --ignore-statics --anonymize-ip q.log
? 0
~ Visitors
~ Per day
~ Browsers: top

$ weft logs --tz Mars/Olympus x.log
? 2
! bad --tz 'Mars/Olympus'

$ weft logs --since 2025-02-30x x.log
? 2
! bad --since

$ weft logs --panels daily,charts x.log
? 2
! bad --panels 'daily,charts'

# --serve: a bad address or port is a usage error naming it; it needs --follow (tests/logs/sse.sh
# checks a port in use and the server itself).
$ weft logs gen --size 2K -o s.log && weft logs --follow s.log --serve 127.0.0.1:70000
? 2
! weft logs: bad --serve '127.0.0.1:70000' ([HOST:]PORT: an IPv4 address and a port 0..65535)

$ weft logs gen --size 2K -o s.log && weft logs --serve 8080 s.log
? 2
! weft logs: --serve needs --follow
