#!/usr/bin/env bash
# 3-node Atoll (one data shard) and 3-node etcd 3.4 on loopback, put and get at 64 and 256
# clients, alternating Atoll native (QUIC), Atoll through its etcd gRPC gateway (the same
# gRPC client as etcd's line) and etcd, two rounds, each point 10 s after a 2 s warm-up; prints
# one line per point: round, system, workload, clients, then atoll-bench's JSON line.
# Run from the repository root after `cargo build --release` (B= points elsewhere); needs
# Debian's etcd-server. Results: benchmarks/RESULTS.md, "3 nodes".
set -u
cd "$(dirname "$0")/.."
B=${B:-target/release}
root=${ROOT:-/tmp/atoll-three-node}; rm -rf $root; mkdir -p $root
ATOLL_LOCAL_DIR=$root/atoll ATOLL_BIN=$B/atoll ATOLL_INITIAL_SPLIT="" deploy/local/up >/dev/null
for i in 1 2 3; do
  etcd --name e$i --data-dir $root/e$i \
    --listen-client-urls http://127.0.0.1:1${i}379 --advertise-client-urls http://127.0.0.1:1${i}379 \
    --listen-peer-urls http://127.0.0.1:1${i}380 --initial-advertise-peer-urls http://127.0.0.1:1${i}380 \
    --initial-cluster e1=http://127.0.0.1:11380,e2=http://127.0.0.1:12380,e3=http://127.0.0.1:13380 \
    --initial-cluster-state new --log-level error > $root/e$i.log 2>&1 &
  echo $! > $root/e$i.pid
done
sleep 5
A="--endpoints 127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379 --cacert $root/atoll/ca/ca.pem"
G="--target etcd --endpoints 127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379"
E="--target etcd --endpoints 127.0.0.1:11379,127.0.0.1:12379,127.0.0.1:13379"
$B/atoll-bench load $A --keys 10000 > /dev/null 2>&1
$B/atoll-bench load $E --keys 10000 > /dev/null 2>&1
for round in 1 2; do
 for c in 64 256; do
  for w in put get; do
    for sys in atoll atoll-grpc etcd; do
      case $sys in atoll) T="$A";; atoll-grpc) T="$G";; *) T="$E";; esac
      out=$($B/atoll-bench run $T --workload $w --clients $c --connections 4 --duration 10s --warmup 2s --key-space 10000 2>/dev/null | tail -1)
      echo "$round $sys $w $c $out"
    done
  done
 done
done
for i in 1 2 3; do kill $(cat $root/e$i.pid); done
ATOLL_LOCAL_DIR=$root/atoll deploy/local/down --clean > /dev/null
