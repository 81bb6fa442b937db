#!/usr/bin/env bash
# The device checks of spinlens in one run, from the repository root of a machine with a CUDA GPU:
#   1. `spinlens lm` with its defaults on 2 pinned CPU cores (the "induction heads in < 10 min on 2 cores" target),
#   2. the exact spin glass at D = 160, P = 1e6 on the GPU (torch feature accumulation + matrix-free CG),
#   3. `spinlens lm` with its defaults on the GPU.
# Results (JSON + logs) go to $OUT (default: gpu-out). Wheels in .whl/ (e.g. netCDF4) are installed first if present.
set -u
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
if [ -d .whl ]; then python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl; fi
export PYTHONPATH=/tmp/site:$PWD/src:${PYTHONPATH:-}
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; nproc
  python3 -c "import torch, numpy; print('torch', torch.__version__, 'numpy', numpy.__version__)"; } | tee "$OUT/device.txt"
(OMP_NUM_THREADS=2 taskset -c 0,1 timeout "${LM_CPU_TIMEOUT:-500}" python3 benchmarks/bench_lm.py --out /tmp/lm-cpu \
   --threads 2 > "$OUT/lm_cpu2.json" 2> "$OUT/lm_cpu2.log"; echo "exit $?" >> "$OUT/lm_cpu2.log") &
taskset -c 2-15 timeout 300 python3 benchmarks/bench_gpu.py --device cuda > "$OUT/bench_gpu.json" 2> "$OUT/bench_gpu.log"
echo "bench_gpu exit $?" | tee -a "$OUT/bench_gpu.log"
taskset -c 2-15 timeout 240 python3 benchmarks/bench_lm.py --device cuda --threads 4 --out /tmp/lm-gpu \
  > "$OUT/lm_gpu.json" 2> "$OUT/lm_gpu.log"
echo "lm gpu exit $?" | tee -a "$OUT/lm_gpu.log"
wait
cat "$OUT"/*.json
