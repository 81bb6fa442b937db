"""One experiment layer: a *setting* is a model source, a task and a metric, defined once for every command.

Every ``interp`` and edit command (``steer``, ``pinpoint``, ``merge``, ``quantize``) is parse → one library
call → report. This module is the library side of the first step: what a model argument holds, which setting
that makes, which options that setting uses, and how its model is opened.

=================  =======================================================  ==================================
setting            model source                                             opened by
=================  =======================================================  ==================================
``"regression"``   a spinlens model folder of an ICL-regression transformer `open_regression`
                   (``--checkpoint DIR``), or the small base trained here
``"lm"``           a language model folder of ``spinlens lm``               `open_lm`
                   (``--checkpoint DIR``), or the default LM trained here
``"hf"``           a Hugging Face causal-LM folder or a named pretrained    `spinlens.interp.hf.load_hf` /
                   model (``--model DIR|NAME``)                             `load_hf_model`
=================  =======================================================  ==================================

`folder_kind` is the one place that decides what a folder holds (it reads a spinlens folder through
`spinlens.models.checkpoint.read_checkpoint`, the one reader of spinlens' ``config.json``); `resolve_source`
turns the command-line model arguments into a `ModelSource` and refuses options of another setting
(`SETTING_OPTIONS`) in one line. Tasks: `spinlens.interp.tasks` (regression and token pairs),
`spinlens.lm.icl_tasks`, `spinlens.llm.tasks` (text tasks of pretrained LLMs). Metrics:
`spinlens.interp.metrics`.

Where each piece lives (this module re-exports them, and holds the dispatchers above the settings): the
sources and the one loader of spinlens folders in `spinlens.models.source`; `open_regression` in
`spinlens.edit.experiments`; `open_lm` in `spinlens.lm.experiments`; the results `EditResult` and `StudyReport`
in `spinlens.results`. The settings' modules import from those homes, never from here, so data flows one way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from spinlens.errors import InvalidParameterError
from spinlens.models.checkpoint import folder_kind
from spinlens.models.source import (
    SETTING_OPTIONS,
    SETTINGS,
    ModelSource,
    check_setting_options,
    load_spinlens_model,
    resolve_source,
)
from spinlens.results import EditResult, StudyReport

if TYPE_CHECKING:
    from spinlens.interp.hf import HookedHF
    from spinlens.models.transformer import Transformer

__all__ = ["SETTINGS", "SETTING_OPTIONS", "ModelSource", "folder_kind", "resolve_source", "check_setting_options",
           "load_spinlens_model", "InterpSetting", "interp_setting", "EditResult",
           "run_edit_command", "StudyReport", "INTERP_METHODS", "interp_method", "function_vector_report"]



@dataclass
class InterpSetting:
    """The setting of an ``interp`` method: a model, clean and corrupted inputs, and the metric.

    Attributes
    ----------
    model : HookedModule
        In eval mode.
    clean, corrupt : Tensor
        Regression prompts ``(n, D+1, N+1)`` or token ids ``(n, T)``.
    metric : callable
        ``metric(model output) -> (n,)`` (`spinlens.interp.metrics`): the projection metric for regression, the
        logit difference of the answer over the corrupted answer for tokens.
    extras : dict
        ``kind`` ("regression" / "tokens"), ``target``, and the task quantities or token categories used by
        neuron descriptions.
    source : str
        ``hf:PATH``, ``checkpoint:PATH`` or ``planted:KIND``.
    """

    model: object
    clean: object
    corrupt: object
    metric: object
    extras: dict
    source: str


def interp_setting(*, model=None, checkpoint=None, planted=None, n_prompts: int = 256, n_pairs=None, d: int = 4,
                   n_context=None, corruption: str = "label_swap", seed: int = 0,
                   allow_pickle_weights: bool = False) -> InterpSetting:
    """Build the setting of an ``interp`` method from one model source (a Hugging Face folder or named model, a
    spinlens checkpoint, or a planted model; default the planted regression model) and its task: regression
    prompt pairs (`spinlens.interp.tasks.regression_pairs`), the in-context token task of the checkpoint
    (`token_icl_pairs`, with the task sizes recorded in its metadata), or the planted copy task."""
    import torch

    from spinlens.errors import check_choice, check_int
    from spinlens.interp import metrics as M
    from spinlens.interp import planted as planted_models
    from spinlens.interp import tasks

    n = check_int("n-prompts", n_prompts, low=2)
    if n_pairs is not None:
        check_int("n-pairs", n_pairs, low=1)
    check_int("seed", seed, low=0)
    check_choice("corruption", corruption, ("label_swap", "input_swap"))
    for flag, value in (("--model", model), ("--checkpoint", checkpoint), ("--planted", planted)):
        if value is not None and not str(value).strip():
            raise InvalidParameterError(f"The '{flag}' parameter must not be empty.")
    given = [x for x in (model, checkpoint, planted) if x]
    if len(given) > 1:
        raise InvalidParameterError("Give at most one of --model, --checkpoint, --planted.")
    from spinlens.models.transformer import TransformerConfig

    extras: dict = {}
    ck_n_context, ck_meta = None, {}
    net: HookedHF | Transformer
    if model:
        from spinlens.interp.hf import load_hf

        net = load_hf(model, allow_pickle_weights=allow_pickle_weights)
        source = f"hf:{model}"
    elif checkpoint:
        net, ck = load_spinlens_model(ModelSource("regression", str(checkpoint)))
        ck_n_context, ck_meta = ck.n_context(), ck.metadata
        source = f"checkpoint:{checkpoint}"
    else:
        kind = planted or "regression"
        if kind == "regression":
            d = check_int("d", d, low=1)
            N = check_int("n-context", n_context if n_context is not None else 10, low=1)
            net = planted_models.planted_regression_model(d, N)
        elif kind == "copy":
            net = planted_models.planted_copy_model()
        else:
            raise InvalidParameterError(f"The 'planted' parameter must be one of {{'regression', 'copy'}}. Got {kind!r} instead.")
        source = f"planted:{kind}"
    net.eval()
    cfg = net.cfg
    dtype = next(net.parameters()).dtype
    if isinstance(cfg, TransformerConfig) and cfg.input_kind == "regression":
        assert cfg.d_in is not None  # set for regression models (TransformerConfig checks it)
        d = cfg.d_in - 1
        N = n_context if n_context is not None else (ck_n_context or cfg.max_pos - 1)
        N = check_int("n-context", N, low=1, high=cfg.max_pos - 1)
        pr = tasks.regression_pairs(d, N, n, dtype=dtype, rng=seed)
        clean, corrupt = pr.clean, pr.corrupt
        with torch.no_grad():
            metric = M.projection_metric(net(clean), net(corrupt))
        extras.update(target=pr.y, quantities=tasks.task_quantities(clean, pr.y, pr.w), kind="regression")
    else:
        V = cfg.d_vocab
        assert V is not None  # set for token models (TransformerConfig checks it)
        if source == "planted:copy" and isinstance(cfg, TransformerConfig):
            g = torch.Generator().manual_seed(seed)
            T = cfg.max_pos
            clean = torch.randint(0, V, (n, T), generator=g)
            corrupt = clean.clone()
            corrupt[:, 0] = (clean[:, 0] + torch.randint(1, V, (n,), generator=g)) % V
            ans, alt = clean[:, 0], corrupt[:, 0]
        else:
            meta = ck_meta
            n_pairs = n_pairs if n_pairs is not None else int(meta.get("n_pairs", 4))
            max_pos = getattr(cfg, "max_pos", None)
            check_int("n-pairs", n_pairs, low=1, high=None if max_pos is None else max(1, (max_pos - 1) // 2))
            n_in = max(n_pairs, min(12, V // 2))
            n_lab = min(6, V - n_in)
            if "n_inputs" in meta and "n_labels" in meta:  # the task the model was trained on
                n_in, n_lab = int(meta["n_inputs"]), int(meta["n_labels"])
            if n_lab < 2:
                raise InvalidParameterError(f"The model's vocabulary ({V}) is too small for the token task (needs >= {n_pairs + 2}).")
            tp = tasks.token_icl_pairs(n, n_pairs=n_pairs, n_inputs=n_in, n_labels=n_lab, corruption=corruption,
                                       rng=seed)
            clean, corrupt, ans, alt = tp.clean, tp.corrupt, tp.answer, tp.corrupt_answer
        metric = M.logit_diff_metric(ans, alt)
        pos = torch.arange(clean.shape[1]).repeat(n)
        cat = {"token": clean.reshape(-1).numpy(), "position": pos.numpy()}
        if source == "planted:copy":
            cat["first_token"] = clean[:, :1].expand(-1, clean.shape[1]).reshape(-1).numpy()
        else:
            cat["answer"] = ans[:, None].expand(-1, clean.shape[1]).reshape(-1).numpy()
        extras.update(target=ans, kind="tokens", categorical=cat)
    return InterpSetting(net, clean, corrupt, metric, extras, source)


# ------------------------------------------------------------------------------------------------ edit commands


def run_edit_command(command: str, opts) -> EditResult:
    """The one library call of an edit command: the experiment of ``opts.source``'s setting (`resolve_source`).

    ``opts`` holds the command's options as attributes (an `argparse.Namespace`; every option of the setting
    present, defaults filled; ``source``: the `ModelSource`). Options are checked before any model is trained or
    anything written. Settings: ``lm`` → `spinlens.lm.experiments.run_edit_command`, ``regression`` →
    `spinlens.edit.experiments.run_edit_command`, ``hf`` → `spinlens.llm.tuning.run_edit_command` (pinpoint, merge);
    ``hf`` quantize goes through the regression setting's option checks to
    `spinlens.edit.hf_quantization.run_quantize_command` (``--study``: `spinlens.llm.quantization.run_study_command`).
    """
    src = opts.source
    if src.setting == "lm":
        from spinlens.lm.experiments import run_edit_command as run_lm

        return run_lm(command, opts)
    if src.setting == "hf" and command in ("pinpoint", "merge"):
        from spinlens.llm.tuning import run_edit_command as run_llm

        return run_llm(command, opts)
    if src.setting == "hf" and command == "steer":
        raise InvalidParameterError(
            "The '--model' parameter (a pretrained LM) is steered by 'spinlens interp control --model "
            f"{opts.model}' (a prompt prefix, a residual vector, neurons, located heads; effect and cost); "
            "'steer' takes spinlens models (--checkpoint, --setting).")
    from spinlens.edit.experiments import run_edit_command as run_regression

    return run_regression(command, opts)


# ------------------------------------------------------------------------------------------------ interp studies


INTERP_METHODS = ("lens", "patch", "path", "circuit", "attribution", "neurons", "flow")


def _parse_heads(spec: str) -> list[tuple[int, int]]:
    heads = []
    for part in spec.split(","):
        try:
            L, h = part.strip().split(".")
            heads.append((int(L), int(h)))
        except ValueError:
            raise InvalidParameterError(f"The 'receivers' parameter must be 'output' or heads 'L.H,L.H'. Got {spec!r} "
                                        "instead.") from None
    return heads


def interp_method(method: str, *, threshold: float | None = 0.1, top: int | None = 12, head: int | None = None, tuned: bool = False,
                  component: str = "z", per_position: bool = False, direction: str = "denoise",
                  receivers: str = "output", receiver_input: str = "q", residual_weight: float = 0.5,
                  progress: bool = True, **setting) -> StudyReport:
    """Run one ``interp`` method (`INTERP_METHODS`) on the setting `interp_setting` builds from ``setting``.

    ``lens``: read-out lens (``tuned``: also a tuned lens); ``patch``: activation patching of ``component``;
    ``path``: path patching into ``receivers`` (``"output"`` or ``"L.H,L.H"``) through ``receiver_input``;
    ``circuit`` / ``attribution``: circuit discovery (exact / attribution patching) with edges above
    ``threshold``; ``neurons``: the ``top`` unit descriptions; ``flow``: attention rollout (``head``: one head).
    Returns the `StudyReport` of ``spinlens interp METHOD`` (no result.json; the files are listed in
    ``summary["files"]``; the headline is its ``lines``).
    """
    import torch

    from spinlens.errors import check_float, check_int

    t0 = time.perf_counter()
    if threshold is not None:
        check_float("threshold", threshold, low=0.0)
    if top is not None:
        check_int("top", top, low=1)
    with torch.enable_grad():  # attribution needs gradients; restored for an in-process caller
        st = interp_setting(**setting)
        net: Any = st.model
        if head is not None:
            check_int("head", head, low=0, high=net.cfg.n_heads - 1)
        rep = _interp_method(st, method, threshold=threshold, top=top, head=head, tuned=tuned, component=component,
                             per_position=per_position, direction=direction, receivers=receivers,
                             receiver_input=receiver_input, residual_weight=residual_weight, progress=progress)
    rep.summary["elapsed_s"] = time.perf_counter() - t0
    rep.lines = _interp_headline(method, rep.summary)
    return rep


def _interp_method(st: Any, m: str, *, threshold, top, head, tuned, component, per_position, direction,
                   receivers, receiver_input, residual_weight, progress) -> StudyReport:
    import numpy as np

    from spinlens import interp as I
    from spinlens.plotting import interp as P

    model, clean, corrupt, metric, extras = st.model, st.clean, st.corrupt, st.metric, st.extras
    rep = StudyReport("interp " + m, {"model": st.source, "n_prompts": int(clean.shape[0])}, result_json=False,
                      files_key="files")
    summary, figs, data = rep.summary, rep.figures, rep.data
    if m == "lens":
        res = I.logit_lens(model, clean, target=extras.get("target"))
        summary["stages"] = [str(s) for s in res.summary.coords["stage"].values]
        for k in res.summary.data_vars:
            summary[k] = [float(v) for v in res.summary[k].values]
        if tuned:
            tl = I.fit_tuned_lens(model, clean[: max(2, len(clean) // 2)])
            rt = I.logit_lens(model, clean, target=extras.get("target"), tuned=tl)
            summary["tuned"] = {k: [float(v) for v in rt.summary[k].values] for k in rt.summary.data_vars}
        figs["lens"], data["lens"] = lambda: P.plot_lens(res), res.summary
    elif m == "patch":
        pr = I.activation_patch(model, clean, corrupt, metric=metric, component=component,
                                per_position=per_position, direction=direction, progress=progress)
        summary.update(component=component, metric_base=pr.metric_base, metric_source=pr.metric_source,
                       top=[{**k, "score": v} for k, v in pr.top(5)])
        figs["patch"], data["patch"] = lambda: P.plot_patching(pr), pr.scores
    elif m == "path":
        rec = "output" if receivers == "output" else _parse_heads(receivers)
        pp = I.path_patch(model, clean, corrupt, metric=metric, receivers=rec, receiver_input=receiver_input)
        summary.update(receivers=receivers, input=receiver_input, top=[{**k, "score": v} for k, v in pp.top(5)])
        figs["path"] = lambda: P.plot_heatmap(pp.scores, title=f"path patching → {receivers} ({receiver_input})")
        data["path"] = pp.scores
    elif m == "circuit":
        c = I.find_circuit(model, clean, corrupt, metric=metric, threshold=threshold, progress=progress)
        f = I.circuit_faithfulness(model, clean, corrupt, c.nodes, metric=metric)
        summary.update(c.to_dict(), faithfulness=f)
        figs["circuit"] = lambda: P.plot_circuit(c, title=f"circuit (threshold {threshold}, faithfulness {f:.2f})")
        data["circuit.json"] = c.to_dict() | {"faithfulness": f}
    elif m == "attribution":
        ac = I.attribution_circuit(model, clean, corrupt, metric=metric, threshold=threshold)
        exact = I.path_patch(model, clean, corrupt, metric=metric, receivers="output")
        a = ac.attribution.output.values.ravel()
        e = exact.scores.values.ravel()
        ok = np.isfinite(a) & np.isfinite(e)
        r = (float(np.corrcoef(a[ok], e[ok])[0, 1]) if ok.sum() > 2 and np.std(a[ok]) > 0 and np.std(e[ok]) > 0
             else float("nan"))
        summary.update(ac.circuit.to_dict(), faithfulness=ac.faithfulness, faithfulness_empty=ac.faithfulness_empty,
                       output_edges_corr_with_exact=r, output_edges_max_abs_diff=float(np.max(np.abs(a[ok] - e[ok]))))
        figs["attribution_vs_exact"] = lambda: P.plot_attribution_vs_exact(a, e, title="head → output edges")
        figs["attribution_circuit"] = lambda: P.plot_circuit(
            ac.circuit, title=f"attribution circuit (faithfulness {ac.faithfulness:.2f})")
        data["edge_attribution"], data["output_attribution"] = ac.attribution.edges, ac.attribution.output
    elif m == "neurons":
        if extras["kind"] == "regression":
            units = I.describe_units(model, clean, extras["quantities"])
        else:
            units = I.describe_units(model, clean, None, position=None, categorical=extras["categorical"])
        summary["units"] = [{"unit": u, "quantity": q, "r": r, "description": d} for u, q, r, d in units.table(top)]
        figs["neurons"], data["neurons"] = lambda: P.plot_units(units, k=top), units.corr
    elif m == "flow":
        flow = I.attention_rollout(model, clean, head=head, residual_weight=residual_weight)
        qf = flow.query_flow.values
        summary.update(query_flow_last_layer=[float(v) for v in qf[-1]], top_source_position=int(np.argmax(qf[-1])))
        figs["flow"], data["flow"] = lambda: P.plot_flow(flow), flow.rollout
    return rep


def _interp_headline(m: str, s: dict) -> list[str]:
    lines = [f"spinlens interp {m}: {s['model']}, {s['n_prompts']} prompts, {s['elapsed_s']:.2f} s"]
    for row in s.get("top", []):
        lines.append("  " + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    if "nodes" in s:
        lines.append(f"  nodes: {s['nodes']}")
        lines += [f"  {e['sender']} -> {e['receiver']} ({e['input']}): {e['score']:+.3f}" for e in s["edges"]]
        lines.append(f"  faithfulness: {s['faithfulness']:.3f}")
    lines += ["  " + u["description"] for u in s.get("units", [])]
    for i, st in enumerate(s.get("stages", [])):
        vals = ", ".join(f"{k}={s[k][i]:.4g}" for k in ("mse", "mse_to_final", "corr_to_final", "prob", "rank") if k in s)
        lines.append(f"  {st:>8}: {vals}")
    if "query_flow_last_layer" in s:
        lines.append(f"  most information at the query comes from position {s['top_source_position']}")
    return lines


def function_vector_report(*, checkpoint=None, planted: bool = False, model=None, task: str | None = None,
                           n_prompts: int = 256, n_pairs: int | None = None, top_k: int = 3,
                           corruption: str = "shuffled", strength: float = 1.0, seed: int = 0, n_seeds: int = 3,
                           progress: bool = True) -> StudyReport:
    """``spinlens interp fv``: function vectors on one model source, as a `spinlens.experiment.StudyReport`.

    ``model`` (a named pretrained model or a Hugging Face folder): word tasks ``task`` (comma-separated) of
    `spinlens.llm.icl` (`spinlens.llm.icl.fv_report`); ``checkpoint`` of a language model from ``spinlens lm``:
    the text task ``task`` over seeds (`spinlens.lm.icl_tasks.text_fv_report`); ``checkpoint`` of a token
    Transformer whose metadata holds the task table ``tasks``, or the planted task model (default):
    `function_vector_experiment` with `fv_verdict`, the figure ``function_vectors`` and its data.
    """
    import numpy as np
    import torch

    from spinlens.errors import check_choice, check_float, check_int
    from spinlens.interp.function_vectors import function_vector_experiment, fv_verdict

    n = check_int("n-prompts", n_prompts, low=8)
    check_int("--seed", seed, low=0)
    if n_pairs is not None:
        check_int("n-pairs", n_pairs, low=1)
    check_int("top-k", top_k, low=1)
    check_int("n-seeds", n_seeds, low=1, high=100)
    check_choice("corruption", corruption, ("shuffled", "other_task"))
    check_float("strength", strength)
    if sum(bool(x) for x in (checkpoint, planted, model)) > 1:
        raise InvalidParameterError("Give at most one of --checkpoint, --planted, --model.")
    common: dict[str, Any] = dict(task=task, n_prompts=n, n_pairs=n_pairs, top_k=top_k, corruption=corruption, seed=seed,
                  n_seeds=n_seeds, progress=progress)
    if model:
        from spinlens.llm.icl import fv_report

        return fv_report(model, **common)
    if checkpoint and folder_kind(checkpoint) == "lm":
        from spinlens.lm.icl_tasks import text_fv_report

        return text_fv_report(checkpoint, strength=strength, **common)
    if task is not None:
        raise InvalidParameterError("The 'task' parameter needs --checkpoint DIR of a language model from 'spinlens lm'. "
                                    f"Got --task {task!r} without one.")
    if checkpoint:
        net, ck = load_spinlens_model(ModelSource("regression", str(checkpoint)))
        meta = ck.metadata
        if "tasks" not in meta or getattr(net.cfg, "input_kind", "") != "tokens":
            raise InvalidParameterError(
                "The 'checkpoint' parameter must be a token Transformer whose config.json metadata holds the task "
                f"table 'tasks' (see examples/icl_circuit_tokens_fv.py). Got {checkpoint!r}."
            )
        tasks = np.asarray(meta["tasks"], dtype=np.int64)
        n_pairs = n_pairs if n_pairs is not None else int(meta.get("n_pairs", 3))
        source = f"checkpoint:{checkpoint}"
    else:
        from spinlens.interp.planted import planted_task_model

        n_pairs = n_pairs if n_pairs is not None else 3
        net, tasks = planted_task_model(n_pairs=check_int("n-pairs", n_pairs, low=1, high=3))
        source = "planted:task"
    check_int("n-pairs", n_pairs, low=1, high=min(tasks.shape[1] - 1, (net.cfg.max_pos - 1) // 2))
    check_int("top-k", top_k, low=1, high=net.cfg.n_layers * net.cfg.n_heads)
    net.eval()
    with torch.no_grad():
        res = function_vector_experiment(net, tasks, n_prompts=n, n_pairs=n_pairs, top_k=top_k,
                                         corruption=corruption, strength=strength, rng=seed)
    d = res.to_dict()
    d["source"] = source
    d["verdict"] = fv_verdict(res)
    rows = [("source", source), ("heads", " ".join(f"{L}.{h}" for L, h in res.heads)),
            ("clean accuracy", d["clean_accuracy"])]
    for c in ("zero_shot", "shuffled"):
        rows.append((f"{c} accuracy (no FV)", d[c]["base_accuracy"]))
        for L, a in d[c]["accuracy_by_layer"].items():
            where = f"before layer {L}" if L < net.cfg.n_layers else "after the last layer"
            rows.append((f"{c} accuracy, FV {where}", a))
    from spinlens.plotting.interp import plot_function_vectors

    return StudyReport("interp fv", d, rows, [d["verdict"]["line"]],
                       figures={"function_vectors": lambda: plot_function_vectors(res)},
                       data={"function_vectors_eval": res.evaluation,
                             "function_vectors_indirect_effect": res.indirect_effect})
