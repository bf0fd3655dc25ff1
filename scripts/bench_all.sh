#!/usr/bin/env bash
# Every workload of scripts/bench.py, one at a time, on one thread; prints each workload's last two lines.
#   scripts/bench_all.sh                                  # this checkout's dlf
#   PYTHONPATH=<other checkout>/src scripts/bench_all.sh  # another dlf (e.g. an older main), same harness
#   REPEATS=9 THREADS=2 scripts/bench_all.sh              # more rounds / threads
#   EXTRA="--clock cpu" scripts/bench_all.sh              # CPU time per step (a loaded machine); or "--precision bf16-mixed"
# Measure on an idle machine; seven rounds of the steps below keep each workload to one or two minutes there.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
THREADS=${THREADS:-1}
REPEATS=${REPEATS:-7}
export OMP_NUM_THREADS=$THREADS
uptime
status=0
for spec in parity:100 xor:300 mlp:300 cnn:120 cnn1d:200 rnn:60 lstm:40 gan:200; do
  w=${spec%%:*}; steps=${spec##*:}
  out=$($PY scripts/bench.py "$w" --threads "$THREADS" --steps "$steps" --repeats "$REPEATS" ${EXTRA:-} 2>/dev/null)
  rc=$?
  [ $rc -ne 0 ] && status=1
  last=$(printf '%s\n' "$out" | tail -n 2)   # dlf against Lightning with the same features, then the last line
  echo "${last:-$w: failed (exit $rc; run python scripts/bench.py $w to see why)}"
done
uptime
exit $status
