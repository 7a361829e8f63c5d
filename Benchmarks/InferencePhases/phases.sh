#!/bin/bash
# Benchmarks/InferencePhases/phases.sh — where one request's time goes inside inference-gateway,
# from reading the request to writing the reply, as the time from the request's read(2) to each
# milestone of the path (the HTTP front's handlers, the task, the router, the provider client,
# libcurl, the provider's answer, the reply's writev). Each milestone is measured in a pass of its
# own (a uprobe costs its own trap, ~10–15 µs on a VM: two in one pass would add up).
#
#   usage: sudo Benchmarks/InferencePhases/phases.sh URL TOKEN [seconds per milestone, default 3]
#   e.g.   phases.sh http://127.0.0.1:9103/v1/chat/completions "$KB_AUTH_TOKEN"
#
# Needs bpftrace and wrk (apt-get install bpftrace wrk), root, and a release inference-gateway
# listening at URL whose route for the request below is a fast local provider (the set-up of
# inference-benchmark: one OpenAI-compatible fake). Load: one connection, a request 2 ms after
# each answer (~400 req/s), so
# requests never overlap and each milestone is reached once per request. Symbols are the mangled
# names of this source tree: after renaming one of the functions below, update its pattern.
set -euo pipefail
url=${1:?usage: phases.sh URL TOKEN [seconds]}; token=${2:?usage: phases.sh URL TOKEN [seconds]}; seconds=${3:-3}
for tool in bpftrace wrk nm ss python3; do command -v $tool >/dev/null || { echo "phases.sh: $tool is missing" >&2; exit 1; }; done
port=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.urlparse(sys.argv[1]).port)' "$url")
pid=$(ss -ltnpH "sport = :$port" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
[ -n "$pid" ] || { echo "phases.sh: nothing listens on port $port" >&2; exit 1; }
binary=$(readlink -f /proc/$pid/exe)
curl_library=$(awk '$6 ~ /libcurl/ {print $6; exit}' /proc/$pid/maps)
[ -n "$curl_library" ] || { echo "phases.sh: process $pid ($binary) has no libcurl mapped: not inference-gateway?" >&2; exit 1; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
nm --defined-only "$binary" | awk '{print $3}' > "$work/symbols"
symbol() {  # the one mangled name matching a pattern
    local found; found=$(grep -E "$1" "$work/symbols" || true)
    [ "$(printf '%s\n' "$found" | grep -c .)" = 1 ] || { echo "phases.sh: pattern $1 matches $(printf '%s\n' "$found" | grep -c .) symbols of $binary" >&2; exit 1; }
    echo "$found"
}
cat > "$work/load.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"model":"fake-model","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16,"temperature":0.7}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
function delay() return 2 end
LUA
guard_read=$(symbol '19HTTPConnectionGuardC11channelRead7context4data.*F$')
dispatch=$(symbol '22HTTPDirectRouteHandlerC8dispatch.*ContextCtF$')
task=$(symbol '22HTTPDirectRouteHandlerC8dispatch.*ContextCtFyyYacfU_$')
front=$(symbol '21OpenAICompatibleFrontO3add2to7gateway.*YaYbcfU_$')
router=$(symbol '0A6RouterC8complete_8deadline.*YaKF$')
provider=$(symbol '14ProviderClientV8complete_8deadline.*YaKF$')
finish=$(symbol '12KBHTTPClient8TransferC6finishyys6ResultOyytAA15HTTPClientErrorVGF$')
completion=$(symbol '21OpenAICompatibleFrontO14completionJSON2id7created.*_n$')
write_direct=$(symbol '22HTTPDirectRouteHandlerC11writeDirect.*ContextCtF$')
# name | probe (bpftrace) — in the order a request reaches them.
milestones=(
    "HTTP head through the connection guard|uprobe:$binary:\"$guard_read\""
    "request whole, direct route dispatched|uprobe:$binary:\"$dispatch\""
    "the request's task running|uprobe:$binary:\"$task\""
    "the front's handler (after Hummingbird's router)|uprobe:$binary:\"$front\""
    "InferenceRouter.complete|uprobe:$binary:\"$router\""
    "ProviderClient.complete|uprobe:$binary:\"$provider\""
    "curl_easy_init|uprobe:$curl_library:curl_easy_init"
    "request sent to the provider (sendto)|tracepoint:syscalls:sys_enter_sendto"
    "provider's answer read (recvfrom)|tracepoint:syscalls:sys_exit_recvfrom"
    "libcurl's transfer done (Transfer.finish)|uprobe:$binary:\"$finish\""
    "the front writing its answer (completionJSON)|uprobe:$binary:\"$completion\""
    "the answer into the pipeline (writeDirect)|uprobe:$binary:\"$write_direct\""
    "reply written (writev)|tracepoint:syscalls:sys_enter_writev"
)
printf '%-52s %10s %10s %8s\n' "milestone (µs after the request's read)" p50 p90 requests
for entry in "${milestones[@]}"; do
    name=${entry%%|*}; probe=${entry#*|}
    cat > "$work/probe.bt" <<BT
tracepoint:syscalls:sys_exit_read /pid == $pid && args->ret > 100/ { @start = nsecs; }
$probe /pid == $pid && @start/ { printf("T %d\n", (nsecs - @start) / 1000); @start = 0; }
BT
    (sleep 1; wrk -t1 -c1 -d${seconds}s -s "$work/load.lua" "$url" >/dev/null) &
    timeout $((seconds + 2)) bpftrace "$work/probe.bt" 2>/dev/null | awk '$1 == "T" {print $2}' > "$work/times" || true
    wait
    python3 - "$name" "$work/times" <<'PY'
import sys
values = sorted(int(line) for line in open(sys.argv[2]) if line.strip())
if not values: print(f"{sys.argv[1]:<52} {'–':>10} {'–':>10} {0:>8}"); sys.exit()
print(f"{sys.argv[1]:<52} {values[len(values) // 2]:>10} {values[int(len(values) * 0.9)]:>10} {len(values):>8}")
PY
done
