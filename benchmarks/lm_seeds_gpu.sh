#!/usr/bin/env bash
# Seed robustness of the `spinlens lm` defaults, on a machine with a CUDA GPU and 16 cores (OUT: results folder):
#   1. the defaults on 2 pinned CPU cores (the "induction heads in under 10 minutes on 2 cores" target),
#   2. the defaults over seeds 0-5 on the GPU, on this Python's `stdlib-docs` and (if given) on a corpus file
#      CORPUS2, e.g. another Python version's `stdlib-docs` written with `spinlens.lm.corpus.builtin_corpus`.
set -u
OUT=${OUT:-lm-seeds-out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/src
(OMP_NUM_THREADS=2 taskset -c 0,1 timeout 420 python3 benchmarks/bench_lm.py --out /tmp/lm-cpu --threads 2 \
   > "$OUT/lm_cpu2.json" 2> "$OUT/lm_cpu2.log"; echo "exit $?" >> "$OUT/lm_cpu2.log") &
grid=('{"name":"defaults"}')
if [ -n "${CORPUS2:-}" ]; then grid+=("{\"name\":\"defaults-corpus2\",\"corpus\":\"$CORPUS2\"}"); fi
taskset -c 2-15 timeout 300 python3 benchmarks/lm_sweep.py --out "$OUT/seeds" --device cuda --workers 12 \
  --seeds 0 1 2 3 4 5 --every 1000 --grid "${grid[@]}" > "$OUT/seeds.log" 2>&1
wait
cat "$OUT/seeds.log" "$OUT/lm_cpu2.json"
