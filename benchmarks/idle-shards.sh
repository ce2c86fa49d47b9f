#!/usr/bin/env bash
# Idle cost of many shards: a 3-node loopback cluster (deploy/local/up) pre-split at 500
# prefixes /p000/ ... /p499/ (1,001 shards, every node a replica of each), no traffic; prints
# each node's CPU (utime + stime from /proc over 30 s, starting 20 s after start-up) and RSS.
# Run from anywhere after `cargo build --release` (B= points elsewhere). Results:
# benchmarks/RESULTS.md, "Idle cost of many shards".
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-target/release}
root=${ROOT:-/tmp/atoll-idle-shards}
rm -rf "$root"
split=$(python3 -c "print(','.join('/p%03d/' % i for i in range(500)))")
ATOLL_LOCAL_DIR=$root ATOLL_BIN=$B/atoll ATOLL_INITIAL_SPLIT="$split" deploy/local/up >/dev/null
trap 'ATOLL_LOCAL_DIR=$root deploy/local/down --clean >/dev/null' EXIT
sleep 20
tick=$(getconf CLK_TCK)
declare -A before
for n in n1 n2 n3; do
    before[$n]=$(awk '{print $14+$15}' "/proc/$(cat "$root/$n.pid")/stat")
done
sleep 30
for n in n1 n2 n3; do
    pid=$(cat "$root/$n.pid")
    after=$(awk '{print $14+$15}' "/proc/$pid/stat")
    rss=$(awk '/VmRSS/{print $2}' "/proc/$pid/status")
    python3 -c "print('$n cpu %.1f%% of one core, rss %d MiB' % (($after-${before[$n]})/$tick/30*100, $rss/1024))"
done
python3 -c "import json;print(len(json.load(open('$root/n1/shard-map.json'))['shards']), 'shards')"
