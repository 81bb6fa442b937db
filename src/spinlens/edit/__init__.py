"""Weight-space edits guided by interpretability: pinpoint tuning, merging, mixed-precision quantization.

Each edit acts on *components* (heads, MLP neurons, MLPs, attention layers, blocks; see
`spinlens.edit.components`) of a model with the `spinlens.models.transformer.Transformer` layout and
returns a new model (the input is never modified). Activation-level control (steering) lives in
`spinlens.interp.interventions` (vectors from data: `spinlens.interp.function_vectors`).
"""

from spinlens.edit.components import Component as Component
from spinlens.edit.components import component_masks as component_masks
from spinlens.edit.components import component_slices as component_slices
from spinlens.edit.components import list_components as list_components
from spinlens.edit.components import random_components as random_components
from spinlens.edit.components import select_components as select_components
from spinlens.edit.importance import attribution_importance as attribution_importance
from spinlens.edit.importance import component_importance as component_importance
from spinlens.edit.merging import merge_models as merge_models
from spinlens.edit.merging import neuron_merge as neuron_merge
from spinlens.edit.merging import task_arithmetic as task_arithmetic
from spinlens.edit.merging import ties_merge as ties_merge
from spinlens.edit.pinpoint import apply_delta as apply_delta
from spinlens.edit.pinpoint import load_delta as load_delta
from spinlens.edit.pinpoint import pinpoint_comparison as pinpoint_comparison
from spinlens.edit.pinpoint import pinpoint_tune as pinpoint_tune
from spinlens.edit.pinpoint import save_delta as save_delta
from spinlens.edit.quantization import allocate_bits as allocate_bits
from spinlens.edit.quantization import fake_quantize as fake_quantize
from spinlens.edit.quantization import quantize_model as quantize_model

__all__ = [
    "Component",
    "component_masks",
    "component_slices",
    "list_components",
    "random_components",
    "select_components",
    "merge_models",
    "neuron_merge",
    "task_arithmetic",
    "ties_merge",
    "apply_delta",
    "attribution_importance",
    "component_importance",
    "load_delta",
    "pinpoint_comparison",
    "pinpoint_tune",
    "save_delta",
    "allocate_bits",
    "fake_quantize",
    "quantize_model",
]
