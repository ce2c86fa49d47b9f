#!/usr/bin/env bash
# Idle cost of many shards: a 3-node loopback cluster (deploy/local/up) pre-split at 500
# prefixes /p000/ ... /p499/ (1,001 shards, every node a replica of each), no traffic; prints
# each node's CPU (utime + stime from /proc, sampled every second for 30 s, starting 20 s
# after start-up): the median of the one-second samples and the mean over the 30 s, both in
# % of one core; its RSS; and how many of its replicas hibernate (`/metrics`, when served).
# Run from anywhere after `cargo build --release` (B= points elsewhere). Results:
# benchmarks/RESULTS.md, "Idle cost of many shards".
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-target/release}
root=${ROOT:-/tmp/atoll-idle-shards}
window=${WINDOW_SECONDS:-30}
rm -rf "$root"
split=$(python3 -c "print(','.join('/p%03d/' % i for i in range(500)))")
ATOLL_LOCAL_DIR=$root ATOLL_BIN=$B/atoll ATOLL_INITIAL_SPLIT="$split" deploy/local/up >/dev/null
trap 'ATOLL_LOCAL_DIR=$root deploy/local/down --clean >/dev/null' EXIT
sleep 20
tick=$(getconf CLK_TCK)
samples=$root/cpu-samples
: >"$samples"
for s in $(seq 0 "$window"); do
    for n in n1 n2 n3; do
        echo "$s $n $(awk '{print $14+$15}' "/proc/$(cat "$root/$n.pid")/stat")" >>"$samples"
    done
    [[ $s -lt $window ]] && sleep 1
done
metrics_ports=(2381 22381 32381)
for i in 0 1 2; do
    n=n$((i + 1))
    pid=$(cat "$root/$n.pid")
    rss=$(awk '/VmRSS/{print $2}' "/proc/$pid/status")
    hib=$(curl -s "http://127.0.0.1:${metrics_ports[$i]}/metrics" |
        awk '/^atoll_shard_replicas_hibernating /{print $2}')
    python3 - "$samples" "$n" "$tick" "$rss" "${hib:-n/a}" <<'PY'
import statistics, sys
path, node, tick, rss, hib = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
ticks = [int(t) for _, n, t in (l.split() for l in open(path)) if n == node]
per_second = [(b - a) / tick * 100 for a, b in zip(ticks, ticks[1:])]
mean = (ticks[-1] - ticks[0]) / tick / len(per_second) * 100
print(f"{node} cpu median {statistics.median(per_second):.1f}% mean {mean:.1f}% of one core, "
      f"rss {rss // 1024} MiB, replicas hibernating {hib}")
PY
done
python3 -c "import json;print(len(json.load(open('$root/n1/shard-map.json'))['shards']), 'shards')"
