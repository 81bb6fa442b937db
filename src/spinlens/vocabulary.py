"""One vocabulary: the paper's symbols for what a user types or reads, descriptive names in Python.

Every quantity of the model has one **symbol** (the paper's letter, written in ASCII), used as

* the command-line flag ``--D``, ``--lam``, ``--sigma-eps`` on every command that takes it,
* the key in JSON output and in ``run.json``,
* the parameter name of a sweep and the coordinate of result datasets,

a **long flag**, a descriptive alias accepted everywhere the symbol is (``--token-dim`` for ``--D``), and a
**Python name**, the keyword in the library (``PromptDistribution(d=..., n_context=...)``). Every command
declares such a flag as ``add_argument("--D", "--token-dim", ...)``. Old command-line spellings (``--d``,
``--n-context``, ``--l2-strength``) still work and print a deprecation warning.

This table is the only place the mapping lives; ``docs/vocabulary.md`` shows it, the CLI checks its flags
against it and adds the old spellings (`spinlens.cli._common.apply_vocabulary`), the sweep grid takes its
parameters' names from it (`spinlens.sweeps._grid`), and `to_symbols` / `to_python` translate dictionaries.

``act_name(kind, layer)`` builds the hook names of `spinlens.interp` (``blocks.{L}.attn.hook_z``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Term", "TERMS", "act_name", "ACT_KINDS", "by_symbol", "to_symbols", "to_python", "cli_spellings",
           "markdown_table", "dataset_to_symbols", "dataset_to_python"]


@dataclass(frozen=True)
class Term:
    """One quantity: its symbol (flag / JSON key / dataset coordinate), its aliases and its Python name."""

    symbol: str  # e.g. "D", "lam", "sigma_eps" (flags write "_" as "-": --sigma-eps)
    python: str  # keyword in the library: "d", "l2_strength"
    long: str  # descriptive flag alias, without dashes: "token-dim"
    meaning: str
    math: str  # as the paper writes it
    deprecated: tuple[str, ...] = ()  # old flags, without dashes, that still parse and warn

    @property
    def flag(self) -> str:
        return "--" + self.symbol.replace("_", "-")

    @property
    def long_flag(self) -> str:
        return "--" + self.long


TERMS: tuple[Term, ...] = (
    Term("D", "d", "token-dim", "token (input) dimension", "D", ("d",)),
    Term("N", "n_context", "context-length", "number of context pairs in a prompt", "N", ("n-context",)),
    Term("P", "n_prompts", "train-prompts", "number of pretraining prompts", "P", ()),
    Term("K", "n_tasks", "task-pool", "size of a finite task pool (inf or none: a fresh task per prompt)", "K",
         ("n-tasks",)),
    Term("lam", "l2_strength", "ridge", "ridge strength of the Hamiltonian E(W)", "λ", ("l2-strength",)),
    Term("lam_lu", "lam_lu", "lu-ridge", "asymptotic theory: Lu et al.'s ridge, D·λ·(1+1/N)²/(σ_x⁶σ_w²)", "λ_LU", ()),
    Term("beta", "beta", "inverse-temperature", "inverse temperature of the Boltzmann measure", "β", ()),
    Term("damping", "damping", "cavity-damping", "damping of the cavity iteration", "θ", ()),
    Term("sigma_x", "sigma_x", "input-std", "std of input coordinates", "σ_x", ()),
    Term("sigma_w", "sigma_w", "task-std", "std of task coordinates", "σ_w", ()),
    Term("sigma_eps", "sigma_eps", "noise-std", "std of the label noise", "σ_ε", ()),
    Term("corr", "corr", "position-corr", "correlation between positions", "c", ()),
    Term("alpha", "alpha", "context-ratio", "asymptotic theory: N / D", "α", ()),
    Term("tau", "tau", "prompt-ratio", "asymptotic theory: P / D²", "τ", ()),
    Term("kappa", "kappa", "task-ratio", "asymptotic theory: K / D", "κ", ()),
    Term("rho", "rho", "noise-ratio", "asymptotic theory: σ_ε² / (σ_x σ_w)²", "ρ", ()),
)

_BY_SYMBOL = {t.symbol: t for t in TERMS}
_BY_PYTHON = {t.python: t for t in TERMS}


def by_symbol(symbol: str) -> Term:
    """The `Term` of a symbol (``"D"``, ``"lam"``)."""
    return _BY_SYMBOL[symbol]


def to_symbols(mapping: dict, *, keep: tuple[str, ...] = ()) -> dict:
    """Rename the keys of a dict from Python names to symbols (``{"d": 5}`` → ``{"D": 5}``), order kept.

    Keys that are not Python names of the table pass unchanged, and so do those listed in ``keep``.
    If a symbol is already present, the Python-named duplicate is dropped.
    """
    out: dict = {}
    for k, v in mapping.items():
        t = _BY_PYTHON.get(k) if k not in keep else None
        key = t.symbol if t is not None else k
        if key in out and t is not None:
            continue
        out[key] = v
    return out


def dataset_to_symbols(ds):
    """A copy of an ``xarray.Dataset`` whose dimensions, coordinates and attributes named by Python names of the
    table carry the symbols instead (``n_context`` → ``N``, ``l2_strength`` → ``lam``); data variables keep their
    names. `spinlens.io.save_dataset` applies it, so every dataset spinlens writes uses the symbols."""
    return _rename_dataset(ds, {k: t.symbol for k, t in _BY_PYTHON.items()}, to_symbols)


def dataset_to_python(ds):
    """Inverse of `dataset_to_symbols`: a Dataset read from a file spinlens wrote (dims, coordinates and attributes
    ``N``, ``P``, ``lam``) with the library's Python names again (``n_context``, ``n_prompts``, ``l2_strength``).

    The rule: a Dataset in memory, from a library function, carries Python names; the same Dataset on disk
    (`spinlens.io.save_dataset`) carries the symbols, as JSON does. The two maps are inverse on every name of
    the table (tested), so ``dataset_to_python(xr.open_dataset(path))`` is the Dataset the library returned.
    """
    return _rename_dataset(ds, {k: t.python for k, t in _BY_SYMBOL.items()}, to_python)


def _rename_dataset(ds, names: dict, rename_attrs):
    """A copy of ``ds`` with the dims/coordinates in ``names`` renamed (where the new name is free) and its
    attributes renamed by ``rename_attrs``; data variables keep their names."""
    new = {k: names[k] for k in [*ds.dims, *ds.coords]
           if k in names and names[k] != k and names[k] not in ds.variables and names[k] not in ds.dims}
    out = ds.rename(new) if new else ds.copy()
    out.attrs = rename_attrs(dict(out.attrs))
    return out


def to_python(mapping: dict) -> dict:
    """Rename the keys of a dict from symbols to Python names (inverse of `to_symbols`)."""
    return {(_BY_SYMBOL[k].python if k in _BY_SYMBOL else k): v for k, v in mapping.items()}


def cli_spellings() -> dict[str, tuple[str, str, bool]]:
    """Every command-line spelling of a table quantity: ``"--n-context" -> ("N", "--N", deprecated=True)``."""
    out: dict[str, tuple[str, str, bool]] = {}
    for t in TERMS:
        out[t.flag] = (t.symbol, t.flag, False)
        out[t.long_flag] = (t.symbol, t.flag, False)
        for old in t.deprecated:
            out["--" + old] = (t.symbol, t.flag, True)
    return out


# ------------------------------------------------------------------------------------------- hook names
ACT_KINDS = {
    "embed": "hook_embed",
    "resid_pre": "blocks.{L}.hook_resid_pre",
    "resid_mid": "blocks.{L}.hook_resid_mid",
    "resid_post": "blocks.{L}.hook_resid_post",
    "attn_out": "blocks.{L}.hook_attn_out",
    "mlp_out": "blocks.{L}.hook_mlp_out",
    "q": "blocks.{L}.attn.hook_q",
    "k": "blocks.{L}.attn.hook_k",
    "v": "blocks.{L}.attn.hook_v",
    "z": "blocks.{L}.attn.hook_z",
    "pattern": "blocks.{L}.attn.hook_pattern",
    "scores": "blocks.{L}.attn.hook_attn_scores",
    "result": "blocks.{L}.attn.hook_result",
    "mlp_pre": "blocks.{L}.mlp.hook_pre",
    "mlp_post": "blocks.{L}.mlp.hook_post",
    "q_input": "blocks.{L}.attn.hook_q_input",
    "k_input": "blocks.{L}.attn.hook_k_input",
    "v_input": "blocks.{L}.attn.hook_v_input",
    "resid_final": "hook_resid_final",
    "readout": "readout.hook_out",
}


def act_name(kind: str, layer: int | None = None) -> str:
    """The hook name of an activation, e.g. ``act_name("z", 1) == "blocks.1.attn.hook_z"``.

    ``kind`` is a key of `ACT_KINDS` (``resid_pre``, ``attn_out``, ``q``/``k``/``v``/``z``, ``pattern``,
    ``mlp_post``, ...); per-block kinds need ``layer``, model-wide ones (``embed``, ``resid_final``) take none.

    >>> act_name("resid_pre", 0)
    'blocks.0.hook_resid_pre'
    >>> act_name("mlp_post", 2)
    'blocks.2.mlp.hook_post'
    """
    from spinlens.errors import InvalidParameterError

    if kind not in ACT_KINDS:
        raise InvalidParameterError(
            f"The 'kind' parameter must be one of {{{', '.join(repr(k) for k in ACT_KINDS)}}}. Got {kind!r} instead.")
    template = ACT_KINDS[kind]
    if "{L}" not in template:
        if layer is not None:
            raise InvalidParameterError(f"The activation {kind!r} belongs to no layer; pass layer=None. Got {layer!r}.")
        return template
    if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
        raise InvalidParameterError(f"The 'layer' parameter of {kind!r} must be an integer >= 0. Got {layer!r} instead.")
    return template.replace("{L}", str(layer))


def markdown_table() -> str:
    """The vocabulary as a Markdown table (docs/vocabulary.md holds its output; a test keeps them equal)."""
    rows = ["| symbol (flag, JSON key, coordinate) | long flag | Python name | paper | meaning | old flags (deprecated) |",
            "|---|---|---|---|---|---|"]
    for t in TERMS:
        old = ", ".join(f"`--{o}`" for o in t.deprecated) or "–"
        rows.append(f"| `{t.flag}` · `{t.symbol}` | `{t.long_flag}` | `{t.python}` | {t.math} | {t.meaning} | {old} |")
    return "\n".join(rows) + "\n"
