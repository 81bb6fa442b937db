"""Studies on pretrained language models (`spinlens.models.pretrained`: SmolLM2-135M, Gemma 3 270M, or any
local Hugging Face causal LM): text tasks with clean/corrupted prompts and answer tokens (`tasks`), and the
literature's circuits and edits run on them.

Not to be confused with `spinlens.lm`, the small language model that spinlens trains itself on real text.
"""
