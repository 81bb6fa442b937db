"""Where a command's model comes from: the settings, a model argument resolved into a `ModelSource`, the
options that belong to one setting, and the one loader of spinlens model folders.

`spinlens.experiment` (the experiment layer) re-exports these names; they live here, below every setting's
module (the regression, language-model and Hugging Face experiments import them), so that data flows one way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from spinlens.errors import InvalidParameterError
from spinlens.models.checkpoint import folder_kind

__all__ = ["SETTINGS", "SETTING_OPTIONS", "ModelSource", "resolve_source", "check_setting_options",
           "load_spinlens_model"]

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
