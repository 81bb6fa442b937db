#!/usr/bin/env bash
# Output-language control of Gemma 3 270M at four levels (spinlens interp control): the measurement quoted in
# docs/llm.md. Usage: SPINLENS_CACHE=/work/cache bash benchmarks/bench_language_control.sh [OUT]
set -euo pipefail
OUT=${1:-runs/control-gemma3}
SPINLENS=${SPINLENS:-.venv/bin/spinlens}
/usr/bin/time -v "$SPINLENS" interp control --model gemma3-270m --languages en fr ru zh --source en --target fr \
  --alphas 2 4 --head-alphas 4 8 --neuron-scales 2 --prefix-messages 2 --n-heads 4 --n-ctx 64 \
  --fit-tokens 256 --eval-tokens 64 --n-prompts 4 --prompt-tokens 8 --new-tokens 8 --seed 0 --n-seeds 3 --out "$OUT"
