#!/usr/bin/env bash
# The measurements of docs/llm.md, sections "Factual recall" and "In-context learning" (SmolLM2-135M, CPU):
#   1. induction scores and repeated-sequence loss (64 sequences of 2 x 64 random tokens, seed 0),
#   2. causal tracing of 40 known country facts, 3 noise seeds (noise 3 x sigma, window 6 of 30 layers),
#   3. function vectors on word tasks, seeds 0-2 (heads and FVs from one half of each task's words, accuracy
#      on the other half).
# OUT: results folder (default runs/llm-recall-icl). Needs `make install-test` (the [llm] extra).
set -u
OUT=${OUT:-runs/llm-recall-icl}
SPINLENS=${SPINLENS:-.venv/bin/spinlens}
export SPINLENS_CACHE=${SPINLENS_CACHE:-$HOME/.cache/spinlens}
mkdir -p "$OUT"
/usr/bin/time -v $SPINLENS interp induction --model smollm2-135m --n-seq 64 --seed 0 --out "$OUT/induction" --json \
  > "$OUT/induction.json" 2> "$OUT/induction.log"
/usr/bin/time -v $SPINLENS interp recall --model smollm2-135m --relations capital,continent,demonym --n-facts 40 \
  --n-seeds 3 --seed 0 --out "$OUT/recall" --json > "$OUT/recall.json" 2> "$OUT/recall.log"
/usr/bin/time -v $SPINLENS interp fv --model smollm2-135m \
  --task capital,continent,translate_fr,translate_de,translate_es,past,plural,uppercase \
  --n-prompts 32 --n-pairs 5 --top-k 10 --n-seeds 3 --seed 0 --out "$OUT/fv" --json > "$OUT/fv.json" 2> "$OUT/fv.log"
