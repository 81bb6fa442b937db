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

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spinlens.errors import InvalidParameterError
from spinlens.models.checkpoint import folder_kind

if TYPE_CHECKING:
    from spinlens.interp.hf import HookedHF
    from spinlens.models.transformer import Transformer

__all__ = ["SETTINGS", "SETTING_OPTIONS", "ModelSource", "folder_kind", "resolve_source", "check_setting_options",
           "open_regression", "open_lm", "load_spinlens_model", "InterpSetting", "interp_setting", "EditResult",
           "run_edit_command"]

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
