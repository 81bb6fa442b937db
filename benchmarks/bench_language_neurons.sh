#!/usr/bin/env bash
# Language-specific neurons of Gemma 3 270M (spinlens interp languages): the measurement quoted in docs/llm.md.
# The two parts run as two processes (the loss matrix, the language switch), each finding the same neurons.
# Usage: SPINLENS_CACHE=/work/cache bash benchmarks/bench_language_neurons.sh [OUT]   (about 30 min on 2 busy cores)
set -euo pipefail
OUT=${1:-runs/languages-gemma3}
SPINLENS=${SPINLENS:-.venv/bin/spinlens}
COMMON=(interp languages --model gemma3-270m --languages en fr ru zh --n-ctx 32 --fit-tokens 512 --seed 0 --n-seeds 3)
"$SPINLENS" "${COMMON[@]}" --parts off --eval-tokens 32 --out "$OUT-off" > "$OUT-off.log" 2>&1 &
"$SPINLENS" "${COMMON[@]}" --parts on --n-prompts 2 --prompt-tokens 8 --new-tokens 6 --out "$OUT-on" > "$OUT-on.log" 2>&1 &
wait
