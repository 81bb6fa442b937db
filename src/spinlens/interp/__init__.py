"""Interpretability of ICL transformers: hooks on spinlens and Hugging Face models, read-out lens, activation
and path patching, circuit discovery (exact and attribution patching), unit descriptions, information flow,
function vectors on token models.

Everything runs on any `spinlens.models.hooks.HookedModule` with the hook names of ``docs/design.md``:
`spinlens.models.transformer.Transformer` and Hugging Face causal LMs wrapped by `HookedHF` / `load_hf`.
See ``docs/interp.md``.
"""

from spinlens.interp.attribution import AttributionCircuit as AttributionCircuit
from spinlens.interp.attribution import EdgeAttribution as EdgeAttribution
from spinlens.interp.attribution import attribution_circuit as attribution_circuit
from spinlens.interp.attribution import edge_attribution as edge_attribution
from spinlens.interp.flow import FlowResult as FlowResult
from spinlens.interp.flow import attention_rollout as attention_rollout
from spinlens.interp.function_vectors import FunctionVectorResult as FunctionVectorResult
from spinlens.interp.function_vectors import fixed_task_prompts as fixed_task_prompts
from spinlens.interp.function_vectors import fixed_token_tasks as fixed_token_tasks
from spinlens.interp.function_vectors import function_vector_experiment as function_vector_experiment
from spinlens.interp.function_vectors import token_function_vector as token_function_vector
from spinlens.interp.function_vectors import token_head_indirect_effect as token_head_indirect_effect
from spinlens.interp.hf import HookedHF as HookedHF
from spinlens.interp.hf import load_hf as load_hf
from spinlens.interp.hf import tiny_hf as tiny_hf
from spinlens.interp.lens import LensResult as LensResult
from spinlens.interp.lens import TunedLens as TunedLens
from spinlens.interp.lens import fit_tuned_lens as fit_tuned_lens
from spinlens.interp.lens import logit_lens as logit_lens
from spinlens.interp.metrics import logit_diff_metric as logit_diff_metric
from spinlens.interp.metrics import logprob_metric as logprob_metric
from spinlens.interp.metrics import projection_metric as projection_metric
from spinlens.interp.metrics import regression_metric as regression_metric
from spinlens.interp.neurons import UnitReport as UnitReport
from spinlens.interp.neurons import describe_units as describe_units
from spinlens.interp.patching import Circuit as Circuit
from spinlens.interp.patching import PatchingResult as PatchingResult
from spinlens.interp.patching import activation_patch as activation_patch
from spinlens.interp.patching import cache_in_batches as cache_in_batches
from spinlens.interp.patching import circuit_faithfulness as circuit_faithfulness
from spinlens.interp.patching import find_circuit as find_circuit
from spinlens.interp.patching import path_patch as path_patch
from spinlens.interp.patching import run_variants as run_variants
from spinlens.interp.tasks import regression_pairs as regression_pairs
from spinlens.interp.tasks import task_quantities as task_quantities
from spinlens.interp.tasks import token_icl_pairs as token_icl_pairs
