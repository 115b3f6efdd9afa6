#!/usr/bin/env bash
# CPU per job of a burst of trivial jobs, by process, in units of the CPU
# of `true` itself: a measure that the VM's minute-to-minute drift in speed
# cancels out of (docs/benchmarks.md, Local scheduling). Needs perf
# (linux-perf) and python3; run as root on an otherwise idle machine.
#
#   scripts/jobs-cpu-profile.sh [HPCML_BINARY] [CPUS_PER_JOB]
#
# It runs bench/jobs with 4,000 jobs, records every CPU with perf for 5 s
# from 2.5 s in (the burst, after its submissions), and prints the burst's
# line of bench/jobs, then the samples of the server, the executor, the
# benchmark's client and the idle CPUs per sample of `true`. TMPDIR picks
# the data dir's filesystem (default: this disk's /var/tmp).
set -euo pipefail
bin=${1:-bin/hpcml}
cpus=${2:-1}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
go build -o "$out/benchjobs" ./bench/jobs
TMPDIR=${TMPDIR:-/var/tmp} "$out/benchjobs" -hpcml "$bin" -runs 1 -n 4000 -c 8 -cpus "$cpus" -idle 20 >"$out/bench.txt" 2>&1 &
bench=$!
sleep 2.5
perf record -F 1999 -a -g -o "$out/perf.data" -- sleep 5 >/dev/null 2>&1
wait "$bench"
grep -E '^hpcml ' "$out/bench.txt"
perf script -i "$out/perf.data" -F comm,pid,ip,sym 2>/dev/null >"$out/perf.txt"
python3 - "$out/perf.txt" <<'PY'
import collections, sys
stacks, cur = [], None
for line in open(sys.argv[1]):
    if not line.strip():
        if cur: stacks.append(cur)
        cur = None
        continue
    parts = line.split()
    if cur is None:
        cur = (parts[0], parts[1], [])
    else:
        cur[2].append(parts[-1])
if cur: stacks.append(cur)
per_pid = collections.Counter(pid for _, pid, _ in stacks)
ntrue = sum(1 for comm, _, _ in stacks if comm == "true") or 1
def role(pid):
    frames = " ".join(f for p, s in [(p, s) for _, p, s in stacks if p == pid][:200] for f in s)
    if "sched.(*Scheduler)" in frames: return "server"
    if "(*Executor)" in frames: return "executor"
    if "benchjobs" in frames or "main.(*bench)" in frames or "load.InParallel" in frames: return "client"
    return None
print("samples per sample of true (%d of those):" % ntrue)
shown = set()
for pid, n in per_pid.most_common(8):
    name = "idle" if pid == "0" else role(pid)
    if name and name not in shown:
        shown.add(name)
        print("  %-8s %.2f" % (name, n / ntrue))
PY
