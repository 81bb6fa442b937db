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
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spinlens.errors import InvalidParameterError
from spinlens.models.checkpoint import folder_kind

if TYPE_CHECKING:
    from spinlens.interp.hf import HookedHF
    from spinlens.models.transformer import Transformer

__all__ = ["SETTINGS", "SETTING_OPTIONS", "ModelSource", "folder_kind", "resolve_source", "check_setting_options",
           "open_regression", "open_lm", "load_spinlens_model", "InterpSetting", "interp_setting", "EditResult",
           "run_edit_command", "StudyReport", "INTERP_METHODS", "interp_method"]

SETTINGS = ("regression", "lm", "hf")

#: options (argparse dest / keyword names) that only one setting of a command uses; given under another setting
#: they are refused in one line (never silently dropped)
SETTING_OPTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "steer": {"regression": ("d", "n_context", "spec", "n_prompts", "n_top_heads"),
              "lm": ("token_class", "n_seeds")},
    "pinpoint": {"regression": ("d", "n_context", "target", "importance", "importance_file"),
                 "lm": ("domain", "n_seeds"),
                 "hf": ("task", "methods", "k_mlps", "components", "batch_size", "eval_every", "no_save_models",
                        "n_seeds")},
    "merge": {"regression": ("d", "n_context", "tasks", "models", "method", "scale", "save"),
              "lm": ("domains", "n_seeds"), "hf": ("models", "method", "scale", "save")},
    "quantize": {"regression": ("d", "n_context"), "lm": ("n_seeds",)},
}


@dataclass(frozen=True)
class ModelSource:
    """Where a command's model comes from.

    Attributes
    ----------
    setting : {"regression", "lm", "hf"}
    path : str or None
        The folder or model name; None: the setting's default model, trained here (cached in ``OUT/base``).
    flag : str
        The option that gave it (for messages): ``checkpoint``, ``model``, ``base``.
    deprecated : str or None
        A deprecation line to print once the model has loaded (an old spelling that still works).
    """

    setting: str
    path: str | None = None
    flag: str = "checkpoint"
    deprecated: str | None = None

    @property
    def label(self) -> str:
        return str(self.path) if self.path is not None else f"default {self.setting} model"


def resolve_source(command: str, *, checkpoint=None, model=None, base=None, setting: str | None = None,
                   base_steps=None) -> ModelSource:
    """The model source of an edit command from its model arguments.

    ``--model`` is a Hugging Face folder or a named model (a spinlens folder there still works, moved to
    ``--checkpoint`` with a deprecation line); ``--checkpoint`` decides the setting by what it holds; otherwise
    ``setting`` (default ``"lm"``). A ``setting`` that contradicts the folder, both ``--model`` and
    ``--checkpoint``, or ``base_steps`` with a given model, is refused in one line.
    """
    flag, deprecated = "checkpoint", None
    if base is not None:  # merge --base: the old spelling of --checkpoint
        if checkpoint is not None:
            raise InvalidParameterError("Give the base model once, under --checkpoint (--base is its old spelling).")
        checkpoint, flag, deprecated = base, "base", "--base: the base model goes under --checkpoint DIR"
    if model is not None:
        kind = folder_kind(model)
        if kind in ("lm", "regression") or (kind is None and Path(str(model)).is_file()):
            if checkpoint is not None:
                raise InvalidParameterError("Give the spinlens model once, under --checkpoint (not also --model).")
            checkpoint, model, flag = model, None, "model"
            deprecated = (f"--model {checkpoint}: a spinlens model goes under --checkpoint DIR (--model is for "
                          "Hugging Face folders)")
        elif checkpoint is not None:
            raise InvalidParameterError("Give one model: --model (a Hugging Face folder or a named model) or "
                                        "--checkpoint (a spinlens model folder), not both.")
    if (checkpoint is not None or model is not None) and base_steps is not None:
        raise InvalidParameterError("The '--base-steps' option sets how long the default base model trains; a given "
                                    "model (--checkpoint / --model) is not trained again: drop --base-steps.")
    if model is not None:
        if setting is not None and setting != "hf":
            raise InvalidParameterError(f"The '--setting {setting}' option contradicts --model {str(model)!r} (a Hugging "
                                        "Face model); drop --setting.")
        return ModelSource("hf", str(model), "model")
    if checkpoint is not None:
        kind = folder_kind(checkpoint) or "regression"  # an unreadable folder fails, with its reason, when loaded
        if kind == "hf":
            raise InvalidParameterError(f"The '--{flag}' parameter must be a spinlens model folder; "
                                        f"{str(checkpoint)!r} is a Hugging Face model: give it under --model.")
        if setting is not None and setting != kind:
            raise InvalidParameterError(f"The '--setting {setting}' option contradicts --{flag} {str(checkpoint)!r}, "
                                        f"which holds a {'language' if kind == 'lm' else 'regression'} model; "
                                        "drop --setting (the checkpoint decides).")
        return ModelSource(kind, str(checkpoint), flag, deprecated)
    if setting is not None and setting not in ("regression", "lm"):
        raise InvalidParameterError(f"The 'setting' parameter must be one of {{'lm', 'regression'}} without --model. "
                                    f"Got {setting!r} instead.")
    return ModelSource(setting or "lm")


def check_setting_options(command: str, setting: str, given: dict, *, spell=None) -> None:
    """Refuse, in one line, an option that ``setting`` does not use (``given``: option → value, None = not given).

    ``spell(dest)`` gives the flag as the user typed it (default ``--dest-with-dashes``).
    """
    table = SETTING_OPTIONS.get(command, {})
    own = {s: set(v) for s, v in table.items()}
    used = own.get(setting, set())
    spell = spell or (lambda d: "--" + d.replace("_", "-"))
    for dest, value in given.items():
        if value is None:
            continue
        owners = [s for s, v in own.items() if dest in v]
        if owners and setting not in owners and dest not in used:
            flag = spell(dest)
            if owners == ["hf"]:
                raise InvalidParameterError(f"The '{flag}' option is for a pretrained language model: give --model "
                                            "NAME (e.g. smollm2-135m) or a Hugging Face folder.")
            if setting == "lm":
                raise InvalidParameterError(f"The '{flag}' option is for the regression setting; add '--setting "
                                            "regression' (the default setting is a language model) or give a "
                                            "regression --checkpoint.")
            if setting == "hf":
                raise InvalidParameterError(f"The '{flag}' option is for the {owners[0]} setting, not for a Hugging "
                                            "Face --model.")
            raise InvalidParameterError(f"The '{flag}' option is for the language-model setting (the default); drop "
                                        "it, or drop '--setting regression' / the regression --checkpoint.")


def open_regression(source: ModelSource, *, d: int, n_context: int, out=None, base_steps: int = 2000, seed: int = 0,
                    progress: bool = True):
    """``(model, d, n_context)`` of the regression setting: the ``--checkpoint`` transformer, or the base trained
    here (cached in ``OUT/base``). The checkpoint's own D and N win over the arguments."""
    from spinlens.edit.experiments import pretrained_base

    if source.path is not None:
        model, ck = load_spinlens_model(source)
        if getattr(model.cfg, "input_kind", "regression") != "regression":
            raise InvalidParameterError(f"The '--{source.flag}' parameter must hold a regression Transformer (prompt "
                                        f"matrices in, a number out). Got a token Transformer in {source.path!r}.")
        return model, model.cfg.d_in - 1, ck.n_context() or model.cfg.max_pos - 1
    cache = Path(out) / "base" if out else None
    model = pretrained_base(d, n_context, steps=base_steps, path=cache, rng=seed, progress=progress)
    return model, d, n_context


def load_spinlens_model(source: ModelSource, *, transformer: bool = True):
    """``(model, Checkpoint)`` of a spinlens model folder, messages naming the flag that gave it; older layouts
    load with a deprecation line on stderr."""
    import sys
    import warnings

    from spinlens.models.checkpoint import load_model, read_checkpoint
    from spinlens.models.transformer import Transformer

    flag = source.flag
    try:
        ck = read_checkpoint(source.path)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", FutureWarning)
            model = load_model(source.path, kind=Transformer if transformer else None)
    except InvalidParameterError as exc:
        raise InvalidParameterError(str(exc).replace("The 'checkpoint' parameter", f"The '{flag}' parameter")) from None
    if source.deprecated:
        print(f"spinlens: deprecated: {source.deprecated}", file=sys.stderr)
    for w in caught:
        if issubclass(w.category, FutureWarning):
            print(f"spinlens: deprecated: --{flag} {source.path}: {w.message}", file=sys.stderr)
    return model, ck


def open_lm(source: ModelSource, *, out=None, base_steps: int | None = None, seed: int = 0, progress: bool = False):
    """``(model, tokenizer, held-out windows, label, reused)`` of the language-model setting: the ``--checkpoint``
    folder of ``spinlens lm``, or the default LM (`spinlens.lm.experiments.default_lm`, cached in ``OUT/base``)."""
    if source.path is None:
        from spinlens.lm.experiments import default_lm

        base = Path(out) / "base" if out else None
        model, tok, val, folder, reused = default_lm(base, base_steps=base_steps, seed=seed, progress=progress)
        label = str(folder) if folder is not None else "default language model (in memory)"
        return model, tok, val, label, reused
    from spinlens.lm.analysis import heldout_windows
    from spinlens.lm.train import load_lm

    model, tok, _ = load_lm(source.path)
    val = heldout_windows(model, tok, source.path)
    if val is None:
        raise InvalidParameterError(f"The checkpoint {source.path!r} has no held-out tokens (heldout_tokens.npy).")
    return model, tok, val, str(source.path), True


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


@dataclass
class EditResult:
    """What one edit command (``steer``, ``pinpoint``, ``merge``, ``quantize``) computed, in any setting: the
    command line prints it (``summary`` as JSON, or ``rows`` / ``text`` then the ``headline``) and writes
    ``dataset`` with ``figure`` under ``OUT`` (``OUT/<stem>.csv/.nc/.png/.pdf`` and run.json with ``record``).

    Attributes
    ----------
    command, setting : str
    summary : dict
        The ``--json`` output.
    headline : dict or None
        ``text`` (one line) and, where the experiment has an uninformed baseline, ``verdict``.
    text : str
        The table or lines printed without ``--json`` (before the headline); ``rows``: a two-column table instead.
    dataset, figure, stem, record
        The experiment's Dataset and figure, its file stem and the extra keys of its run.json; ``dataset`` None:
        the setting wrote its own files (or none).
    converged : bool
        False when a fine-tune diverged (``divergence``: the reason); the command then exits 3.
    """

    command: str
    setting: str
    summary: dict
    headline: dict | None = None
    text: str = ""
    rows: list | None = None
    dataset: Any = None
    figure: Any = None
    stem: str = ""
    record: dict | None = None
    converged: bool = True
    divergence: str = ""


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


@dataclass
class StudyReport:
    """What a study (every ``interp`` method, ``interp ioi``, ``arithmetic``, ``recall``, ``fv``, ``induction``,
    ``languages``, ``control``, ``sycophancy``) returns to its command: the result, its headline and its files.

    Attributes
    ----------
    command : str
        The command for run.json (``"interp ioi"``).
    summary : dict
        The result: ``result.json``, what ``--json`` prints, and run.json's ``summary``.
    rows : list of (label, value)
        The headline table (empty: no table).
    lines : list of str
        Lines printed after the table (a verdict line; the whole headline of the ``interp`` methods).
    figures : dict
        File stem → a function making the figure (a Figure, or a tuple whose first item is one); made only by
        `write`, saved as PNG + PDF with ``figure_kw``.
    data : dict
        File stem → an xarray Dataset/DataArray (``stem.nc``), a dict of columns (``stem.csv``), or, for a stem
        ending in ``.json``, an object written as that JSON file.
    result_json : bool
        Write ``summary`` as ``result.json``.
    files_key : str or None
        Keep the written paths in ``summary[files_key]`` (after any already there) and list each one in the
        headline; otherwise a headline with a table ends with ``wrote OUT``.
    record : dict or None
        run.json fields after the standard ones (default ``{"summary": summary}``).
    """

    command: str
    summary: dict
    rows: list = field(default_factory=list)
    lines: list = field(default_factory=list)
    figures: dict[str, Callable[[], object]] = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    result_json: bool = True
    files_key: str | None = None
    record: dict | None = None
    figure_kw: dict = field(default_factory=lambda: {"bbox_inches": "tight", "dpi": 150})

    def write(self, out, args=None, *, seed: int | None = None) -> list[str]:
        """Write the figures, the data, ``result.json`` and run.json (with ``args`` and ``seed``) under ``out``;
        return the figure and data paths."""
        import os

        from spinlens import io

        os.makedirs(out, exist_ok=True)
        files: list[str] = []
        for stem, make in self.figures.items():
            fig = make()
            files += io.save_figure(fig[0] if isinstance(fig, tuple) else fig, out, stem, **self.figure_kw)
        for stem, obj in self.data.items():
            if stem.endswith(".json"):
                files.append(str(io.write_json(os.path.join(out, stem), obj)))
            elif isinstance(obj, dict):
                files.append(io.save_columns(obj, out, stem))
            else:
                files.append(io.save_dataset(obj, out, stem))
        if self.files_key is not None:
            self.summary[self.files_key] = [*self.summary.get(self.files_key, []), *files]
        if self.result_json:
            io.write_json(os.path.join(out, "result.json"), self.summary)
        io.write_run_json(out, io.run_record(self.command, args=args, seed=seed,
                                             **(self.record if self.record is not None else {"summary": self.summary})))
        return files


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
