# weft logs: the formats beyond nginx's (tools/logs/format-*.c), each recognised from its first
# lines (the samples are the ones in each format's documentation).

# W3C extended (IIS): the #Fields: line names the columns; directives are not entries.
$ weft logs -j 1 -
< #Software: Microsoft Internet Information Services 6.0
< #Version: 1.0
< #Date: 2002-05-02 17:42:15
< #Fields: date time c-ip cs-username s-ip s-port cs-method cs-uri-stem cs-uri-query sc-status cs(User-Agent)
< 2002-05-02 17:42:15 172.22.255.255 - 172.30.255.255 80 GET /images/picture.jpg - 200 Mozilla/4.0+(compatible;MSIE+5.5;+Windows+2000+Server)
< #Date: 2002-05-02 18:00:00
< #Fields: date time c-ip cs-username s-ip s-port cs-method cs-uri-stem cs-uri-query sc-status cs(User-Agent)
< 2002-05-02 18:01:15 172.22.255.255 - 172.30.255.255 80 GET /images/picture.jpg - 304 Mozilla/4.0+(compatible;MSIE+5.5;+Windows+2000+Server)
? 0
~ (format: w3c)
~ Lines          2   parsed 2   malformed 0
~ /images/picture.jpg

# AWS CloudFront: W3C with tab-separated entries and time-taken in seconds.
$ printf '#Version: 1.0\n#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) cs(User-Agent) cs-uri-query time-taken\n2019-12-04\t21:02:31\tLAX1\t392\t192.0.2.100\tGET\td111111abcdef8.cloudfront.net\t/index.html\t200\t-\tMozilla/5.0\t-\t0.001\n' > cf.log && weft logs -j 1 cf.log
? 0
~ (format: cloudfront)
~ Lines          1   parsed 1   malformed 0
~ /index.html

$ weft logs -j 1 -
< 2015-05-13T23:39:43.945958Z my-loadbalancer 192.168.131.39:2817 10.0.0.1:80 0.000073 0.001048 0.000057 200 200 0 29 "GET http://www.example.com:80/ HTTP/1.1" "curl/7.38.0" - -
? 0
~ (format: elb)
~ 192.168.131.39

$ weft logs -j 1 -
< http 2018-07-02T22:23:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 192.168.131.39:2817 10.0.0.1:80 0.000 0.001 0.000 200 200 34 366 "GET http://www.example.com:80/ HTTP/1.1" "curl/7.46.0" - - arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067 "Root=1-58337262-36d228ad5d99923122bbe354" "-" "-" 0 2018-07-02T22:22:48.364000Z "forward" "-" "-" "10.0.0.1:80" "200" "-" "-" TID_1234abcd5678ef90
? 0
~ (format: alb)

$ weft logs -j 1 -
< 79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be awsexamplebucket1 [06/Feb/2019:00:00:38 +0000] 192.0.2.3 79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be 3E57427F3EXAMPLE REST.GET.VERSIONING - "GET /awsexamplebucket1?versioning HTTP/1.1" 200 - 113 - 7 - "-" "S3Console/0.4" - s9lzHYrFp76ZVxRcpX9+5cjAnEH2ROuNkd2BHfIa6UkFVdtjf5mKR3/eTPFvsiP/XV/VLi31234= SigV2 ECDHE-RSA-AES128-GCM-SHA256 AuthHeader awsexamplebucket1.s3.us-west-1.amazonaws.com TLSV1.1
? 0
~ (format: s3)
~ /awsexamplebucket1

# Caddy's JSON; a line of another logger is malformed, with its text on stderr.
$ weft logs -j 1 -
< {"level":"info","ts":1646861401.5241024,"logger":"http.log.access","msg":"handled request","request":{"remote_ip":"127.0.0.1","remote_port":"41342","client_ip":"127.0.0.1","proto":"HTTP/2.0","method":"GET","host":"localhost","uri":"/","headers":{"User-Agent":["curl/7.82.0"],"Accept":["*/*"],"Accept-Encoding":["gzip, deflate, br"]},"tls":{"resumed":false,"version":772,"cipher_suite":4865,"proto":"h2","server_name":"example.com"}},"bytes_read":0,"user_id":"","duration":0.000929675,"size":10900,"status":200,"resp_headers":{"Server":["Caddy"],"Content-Encoding":["gzip"],"Content-Type":["text/html; charset=utf-8"],"Vary":["Accept-Encoding"]}}
< {"level":"info","ts":1646861402.1,"logger":"tls.obtain","msg":"certificate obtained successfully"}
? 0
~ (format: caddy)
~ Lines          2   parsed 1   malformed 1
! (stdin):2: malformed line: {"level":"info"

$ weft logs -j 1 -
< 192.168.2.1 - - [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)" 1 "Host-example-com-0" "http://10.0.0.2:80" 7ms
? 0
~ (format: traefik)
~ /apache_pb.gif

$ weft logs -j 1 -
< www.example.com:80 127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"
? 0
~ (format: vcombined)

# An Apache LogFormat gives the report of the equivalent preset, from --log-format or -f apache:.
$ weft logs gen --size 30K --format combined -o c.log && weft logs --json --log-format '%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\"' c.log > a.json && weft logs --json -f 'apache:%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"' c.log | cmp - a.json && weft logs --json -f combined c.log | cmp - a.json && echo same
? 0
> same

# An Apache string where an nginx one is expected gets a hint.
$ weft logs -f '%h %l %u %t "%r" %>s %b' x.log
? 2
! looks like an Apache LogFormat

$ weft logs --log-format '$remote_addr %u [$time_local] "$request" %>s' x.log
? 2
! lacks $status

$ weft logs -f 'apache:%h %t "%r" %{Referer' x.log
? 2
! unterminated %{

# -f w3c on a file without a header: IIS's default columns; a header names others.
$ printf '2024-03-01 10:00:00 10.0.0.9 GET /a - 443 - 10.0.0.1 curl/8 - 200 0 0 15\n' | weft logs -j 1 -f w3c -
? 0
~ (format: w3c)
~ Lines          1   parsed 1   malformed 0
