"""Steering: interventions, spec files and vectors from data (one import path for all of them).

The code lives in three modules, re-exported here so that ``from spinlens.interp import steering as st``
keeps working:

* `spinlens.interp.interventions` — `AddVector`, `SetActivation`, `SetNeurons`, `Scale`, `Ablate`,
  `TokenEdit`, `steer`, `run_steered`, `hook_fns`, `steering_sweep`;
* `spinlens.interp.specs` — `load_spec`, `interventions_from_spec`;
* `spinlens.interp.function_vectors` — `mean_activation`, `difference_of_means`, `function_vector`,
  `task_vector`, `head_indirect_effect` (and the token-model function vectors);
* the plot `plot_steering_sweep` lives in `spinlens.plotting.edit`.
"""

from __future__ import annotations

from spinlens.interp.function_vectors import (
    difference_of_means,
    function_vector,
    head_indirect_effect,
    mean_activation,
    task_vector,
)
from spinlens.interp.interventions import (
    Ablate,
    AddVector,
    Positions,
    Scale,
    SetActivation,
    SetNeurons,
    TokenEdit,
    hook_fns,
    run_steered,
    steer,
    steering_sweep,
)
from spinlens.interp.specs import interventions_from_spec, load_spec

__all__ = [
    "AddVector",
    "SetActivation",
    "SetNeurons",
    "Scale",
    "Ablate",
    "TokenEdit",
    "Positions",
    "steer",
    "run_steered",
    "hook_fns",
    "load_spec",
    "interventions_from_spec",
    "difference_of_means",
    "mean_activation",
    "function_vector",
    "task_vector",
    "head_indirect_effect",
    "steering_sweep",
]


def __getattr__(name: str):
    if name == "plot_steering_sweep":  # plots live in spinlens.plotting
        from spinlens.plotting.edit import plot_steering_sweep

        return plot_steering_sweep
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
