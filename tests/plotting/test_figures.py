"""Figures a referee would accept: every plot of spinlens.plotting, drawn from small synthetic data, passes
`spinlens.plotting.checks.figure_problems` (axis labels, ticks, colourbar labels, a legend and a key for every
line style). The reproduce targets and the CLI figures are checked where their tests render them (the
``audit_figures`` fixture of tests/conftest.py)."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

from spinlens.plotting.checks import (  # noqa: E402
    assert_figure_ok,
    exempt,
    figure_problems,
)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _fig(obj):
    return obj[0] if isinstance(obj, tuple) else obj


# ------------------------------------------------------------------------------------ the checker itself


def test_checker_finds_each_problem():
    fig, axes = plt.subplots(1, 3)
    im = axes[0].imshow(np.eye(3))
    axes[0].set_xticks([])
    fig.colorbar(im, ax=axes[0])
    axes[1].plot([0, 1], [0, 1])
    axes[1].plot([0, 1], [1, 0], "--", label="b")
    axes[1].set_xlabel("x")
    axes[1].set_ylabel("y")
    axes[2].plot([0, 1], [0, 1], "-", label="a")
    axes[2].plot([0, 1], [1, 0], ":", label="b")
    axes[2].legend(handles=axes[2].get_lines()[:1])
    axes[2].set_xlabel("x")
    axes[2].set_ylabel("y")
    probs = " | ".join(figure_problems(fig))
    assert "axes 0: no x label" in probs and "no y label" in probs and "no x ticks" in probs
    assert "colourbar without a label" in probs
    assert "axes 1: 2 curves and no legend" in probs
    assert "axes 2: line style(s) [':'] have no key" in probs


def test_checker_accepts_shared_labels_guides_and_exemptions():
    fig, axes = plt.subplots(2, 1, sharex=True)
    for ax in axes:
        ax.plot([0, 1], [0, 1])
        ax.axhline(0, color="gray")  # a guide: no key needed
        ax.set_ylabel("y (m)")
    axes[1].set_xlabel("t (s)")  # the upper panel shares it
    g = plt.figure().add_subplot()
    g.text(0.5, 0.5, "a graph")
    g.set_axis_off()
    assert figure_problems(g.figure) == ["axes 0: axis turned off without exempt(ax, reason)"]
    exempt(g, "a drawing of a graph: positions carry no quantity")
    assert figure_problems(fig) == [] and figure_problems(g.figure) == []
    with pytest.raises(ValueError):
        exempt(g, "")


# ------------------------------------------------------------------------------------- every plot


def test_matrices_and_histograms():
    from spinlens.plotting.matrices import plot_histograms, plot_matrix

    rng = np.random.default_rng(0)
    assert_figure_ok(_fig(plot_matrix(rng.standard_normal((4, 4)), cbar_label="W_ab")))
    assert_figure_ok(_fig(plot_histograms({"a": rng.standard_normal(50), "b": rng.standard_normal(50)})))
    assert_figure_ok(_fig(plot_histograms({"one": rng.standard_normal(50)})))


def test_curves_and_training_history():
    from spinlens.plotting.curves import plot_series, plot_training_history

    x = np.arange(5.0)
    assert_figure_ok(_fig(plot_series(x, {"a": x, "b": x + 1}, reference={"paper": (x, x + 2)}, xlabel="N",
                                      ylabel="test error")))
    hist = xr.Dataset({"train_loss": ("step", np.linspace(1, 0.1, 20)), "lr": ("step", np.ones(20)),
                       "test_loss": ("eval_step", np.linspace(1, 0.2, 4))},
                      coords={"step": np.arange(20), "eval_step": np.arange(0, 20, 5)})
    assert_figure_ok(_fig(plot_training_history(hist, title="tf")))


def test_landscape_and_spectrum_plots():
    from spinlens.plotting.landscape import plot_direction_profiles, plot_energy_surface
    from spinlens.plotting.spectrum import plot_zero_mode_fraction

    t = np.linspace(-1, 1, 21)
    # three coinciding profiles must stay distinguishable: each has its own line style in the legend
    fig, ax = plot_direction_profiles(t, np.stack([t**2, t**2, 2 * t**2]), ["zero 1", "zero 2", "stiff"])
    assert_figure_ok(fig)
    assert len({ln.get_linestyle() for ln in ax.get_lines()}) == 3
    g = np.linspace(0, 1, 5)
    assert_figure_ok(_fig(plot_energy_surface(g, g, np.outer(g, g), points=np.zeros((3, 2)))))
    zm = xr.DataArray(np.array([[1.0, 0.5, 0.2], [1.0, 0.8, 0.3]]), dims=("d", "n_prompts"),
                      coords={"d": [2, 3], "n_prompts": [1, 10, 100]}, name="zero_mode_fraction")
    assert_figure_ok(_fig(plot_zero_mode_fraction(zm, x="n_prompts", hue="d", floors={2: 1 / 3, 3: 1 / 4},
                                                  thresholds={2: 6, 3: 12})))


def _steering_ds(L=3, S=4, H=2):
    rng = np.random.default_rng(0)
    hooks = [f"blocks.{i}.hook_resid_pre" for i in range(L)]
    return xr.Dataset(
        {"recovery": (("layer", "strength"), rng.random((L, S))),
         "abs_shift": (("layer", "strength"), rng.random((L, S))),
         "recovery_random": (("layer", "strength"), rng.random((L, S))),
         "recovery_mean_diff": (("layer", "strength"), rng.random((L, S))),
         "recovery_task_vector": (("layer",), rng.random(L)),
         "indirect_effect": (("ie_layer", "head"), rng.standard_normal((2, H)))},
        coords={"layer": hooks, "strength": np.arange(S, dtype=float), "ie_layer": np.arange(2), "head": np.arange(H)},
        attrs={"recovery_icl": 0.8, "fv_heads": json.dumps([[0, 1]])},
    )


def test_edit_plots():
    from spinlens.plotting.edit import (
        plot_merging,
        plot_pinpoint,
        plot_quantization,
        plot_steering,
        plot_steering_sweep,
    )

    assert_figure_ok(_fig(plot_steering(_steering_ds())), "steering")
    sweep = xr.Dataset({"abs_shift": (("hook", "strength"), np.random.default_rng(0).random((2, 3)))},
                       coords={"hook": ["a", "b"], "strength": [0.0, 1.0, 2.0]})
    assert_figure_ok(_fig(plot_steering_sweep(sweep)), "steering sweep")
    methods = ["before", "importance", "random", "bottom", "full"]
    pin = xr.Dataset({"method": ("run", methods), "target_gain": ("run", np.arange(5.0)),
                      "general_change": ("run", np.arange(5.0) - 2), "n_trainable": ("run", np.arange(5) * 10),
                      "importance": (("imp_layer", "head"), np.random.default_rng(1).random((2, 2)))},
                     attrs={"k": 1, "target": "corr", "importance": "attribution"})
    assert_figure_ok(_fig(plot_pinpoint(pin)), "pinpoint")
    mer = xr.Dataset({"mse": (("model", "task"), np.random.default_rng(2).random((3, 2)) + 0.1)},
                     coords={"model": ["base", "expert_A", "ties"], "task": ["A", "B"]})
    assert_figure_ok(_fig(plot_merging(mer)), "merging")
    sch = ["uniform", "uniform", "guided_attribution", "guided_measured", "random"]
    q = xr.Dataset({"scheme": ("run", sch), "average_bits": ("run", [2.0, 4.0, 3.0, 3.0, 3.0]),
                    "mse": ("run", [1.0, 0.1, 0.3, 0.2, 0.5])}, attrs={"group_size": 32, "fp_mse": 0.05,
                                                                       "granularity": "head"})
    assert_figure_ok(_fig(plot_quantization(q)), "quantization")


def test_lm_plots():
    from spinlens.plotting import lm as P

    g = np.random.default_rng(3)
    hist = [{"step": s, "train_loss": 5.0 / s, "val_loss": 5.5 / s, "val_ppl": np.exp(5.5 / s)} for s in (1, 2, 4)]
    assert_figure_ok(_fig(P.plot_lm_curves(hist)), "lm curves")
    rows = [{"step": s, "max_induction_score": 0.1 * i, "max_prev_token_score": 0.2 * i, "repeated_loss_first": 5.0,
             "repeated_loss_repeat": 5.0 - i, "icl_score": -0.1 * i} for i, s in enumerate((1, 10, 100))]
    assert_figure_ok(_fig(P.plot_phase_change(rows)), "phase change")
    assert_figure_ok(_fig(P.plot_head_scores(g.random((2, 3)), g.random((2, 3)))), "head scores")
    assert_figure_ok(_fig(P.plot_loss_by_position(g.random(8), icl_score=-0.2)), "loss by position")
    assert_figure_ok(_fig(P.plot_lm_lens(["embed", "0", "1"], [0.1, 0.2, 0.4])), "lm lens")
    level = ["activation"] * 4 + ["neuron"] * 4 + ["module"] * 4
    steer = xr.Dataset({"level": ("run", level), "strength": ("run", [0.0, 0.0, 2.0, 2.0] * 2 + [0.0] * 4),
                        "class_prob": ("run", g.random(12)), "repeat_loss": ("run", g.random(12)),
                        "intervention": ("run", ["none"] * 8 + ["none", "none", "ablate induction heads",
                                                                "ablate induction heads"])},
                       attrs={"class_base_rate": 0.1, "token_class": "capitalised"})
    assert_figure_ok(_fig(P.plot_lm_steering(steer)), "lm steering")
    meth = ["before", "induction_heads", "induction_heads", "full", "full"]
    pin = xr.Dataset({"method": ("run", meth), "target_gain": ("run", g.random(5)),
                      "general_change": ("run", g.random(5))})
    assert_figure_ok(_fig(P.plot_lm_pinpoint(pin)), "lm pinpoint")
    mer = xr.Dataset({"method": ("run", ["base", "finetune_a", "ties"]), "loss_a": ("run", g.random(3) + 3),
                      "loss_b": ("run", g.random(3) + 3), "loss_general": ("run", g.random(3) + 3)},
                     attrs={"domains": "a,b"})
    assert_figure_ok(_fig(P.plot_lm_merging(mer)), "lm merging")
    q = xr.Dataset({"scheme": ("run", ["uniform_4", "guided_3.4", "random_3.4"]),
                    "average_bits": ("run", [4.0, 3.4, 3.4]), "perplexity": ("run", [20.0, 25.0, 30.0])},
                   attrs={"fp_perplexity": 18.0, "group_size": 8})
    assert_figure_ok(_fig(P.plot_lm_quantization(q)), "lm quantization")


def test_theory_plots():
    from spinlens.plotting.theory import plot_learning_curve, plot_task_diversity
    from spinlens.theory import learning_curve

    ds = learning_curve(alpha=np.array([0.5, 1.0, 2.0, 4.0]), tau=np.array([2.0, 8.0]), rho=0.1, lam_lu=0.01)
    assert_figure_ok(_fig(plot_learning_curve(ds, "alpha")), "learning curve")
    # the README's curve: the λ = 0 spike spans decades, which a linear axis flattens -> log y by default
    dd = learning_curve(tau=np.linspace(0.1, 3, 40), alpha=10.0, kappa=0.5, rho=0.01, lam_lu=np.array([0.0, 0.1]))
    fig, ax = plot_learning_curve(dd, "tau")
    y = np.concatenate([ln.get_ydata() for ln in ax.get_lines()])
    y = y[np.isfinite(y)]
    assert ax.get_yscale() == ("log" if y.max() / y.min() > 30 else "linear")
    assert plot_learning_curve(dd, "tau", logy=False)[1].get_yscale() == "linear"
    import matplotlib.pyplot as plt

    plt.close("all")
    K = np.array([2.0, 8.0, np.inf])
    names = ["attention", "ridge", "dmmse", "theory"]
    div = xr.Dataset({f"{n}_{e}": ("n_tasks", np.array([0.5, 0.3, 0.2])) for n in names for e in ("icl", "idg")},
                     coords={"n_tasks": K}, attrs={"d": 4, "n_context": 8, "n_prompts": 100, "l2_strength": 0.01,
                                                   "sigma_eps": 0.5})
    assert_figure_ok(_fig(plot_task_diversity(div)), "task diversity")


def test_interp_plots_on_planted_models():
    import torch

    from spinlens.interp import flow, lens, patching, planted, tasks
    from spinlens.interp import metrics as M
    from spinlens.plotting import interp as P

    model = planted.planted_regression_model(3, 6)
    pr = tasks.regression_pairs(3, 6, 16, dtype=next(model.parameters()).dtype, rng=0)
    with torch.no_grad():
        metric = M.projection_metric(model(pr.clean), model(pr.corrupt))
    res = patching.activation_patch(model, pr.clean, pr.corrupt, metric=metric, component="z")
    assert_figure_ok(P.plot_patching(res), "patching")
    assert_figure_ok(P.plot_lens(lens.logit_lens(model, pr.clean, target=pr.y)), "lens")
    assert_figure_ok(P.plot_flow(flow.attention_rollout(model, pr.clean)), "flow")
    assert_figure_ok(P.plot_attribution_vs_exact(np.arange(4.0), np.arange(4.0) + 0.1), "attribution scatter")
