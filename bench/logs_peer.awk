# The same four statistics as `weft logs` with mawk, for bench/bench-logs.sh: requests per hour,
# status codes, the top 10 client IPs and the average response time. Default log format:
#   IP - - [15/Jan/2025:10:30:45 +0800] "GET /path HTTP/1.1" 200 1234 0.052
# Prints one JSON object like logs_peer.py. Lines with a different field count are malformed.
NF == 11 && $9 ~ /^[1-9][0-9][0-9]$/ {
    hour[substr($4, 14, 2) + 0]++
    status[$9]++
    ip[$1]++
    rt += $11
    n++
    next
}
{ bad++ }
END {
    printf "{\"lines\":%d,\"malformed\":%d,\"hourly\":[", NR, bad
    for (h = 0; h < 24; h++) printf "%s%d", (h ? "," : ""), hour[h]
    printf "],\"status\":{"
    sep = ""
    for (s = 100; s < 1000; s++) if (s in status) { printf "%s\"%d\":%d", sep, s, status[s]; sep = "," }
    printf "},\"top_ips\":["
    distinct = 0
    for (a in ip) distinct++
    for (k = 0; k < 10 && k < distinct; k++) {
        best = ""; bc = -1
        for (a in ip) if (!(a in taken) && (ip[a] > bc || (ip[a] == bc && a < best))) { best = a; bc = ip[a] }
        taken[best] = 1
        printf "%s[\"%s\",%d]", (k ? "," : ""), best, bc
    }
    printf "],\"distinct_ips\":%d,\"avg\":%.6f}\n", distinct, n ? rt / n : 0
}
