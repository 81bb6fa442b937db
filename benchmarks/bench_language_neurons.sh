#!/usr/bin/env bash
# Language-specific neurons of Gemma 3 270M (spinlens interp languages): the measurement quoted in docs/llm.md.
# A 20-second smoke run first (two languages, tiny sizes) so that a broken setup fails before the long run.
# Usage: SPINLENS_CACHE=/work/cache bash benchmarks/bench_language_neurons.sh [OUT]   (about an hour on 2 busy cores)
set -euo pipefail
OUT=${1:-runs/languages-gemma3}
SPINLENS=${SPINLENS:-.venv/bin/spinlens}
"$SPINLENS" interp languages --model gemma3-270m --languages en fr --n-ctx 16 --fit-tokens 32 --eval-tokens 16 \
  --n-prompts 1 --prompt-tokens 4 --new-tokens 2 --n-seeds 1 --json > /dev/null
/usr/bin/time -v "$SPINLENS" interp languages --model gemma3-270m --languages en fr ru zh --n-ctx 64 \
  --fit-tokens 1024 --eval-tokens 128 --n-prompts 4 --prompt-tokens 8 --new-tokens 10 --seed 0 --n-seeds 3 \
  --out "$OUT"
