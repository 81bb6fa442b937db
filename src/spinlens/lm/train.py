"""Train a small GPT-style causal LM (spinlens' own `Transformer`, token mode) on text.

The model folder (``save_lm``) is spinlens' one transformer format, ``model.safetensors`` + ``config.json``
(`spinlens.models.checkpoint.save_transformer`), plus the corpus tokenizer ``tokenizer.json``; every
``interp``/edit command that takes ``--checkpoint DIR`` reads it. Checkpoints along training are complete
model folders under ``DIR/checkpoints/step-XXXXXX``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from spinlens.errors import InvalidParameterError
from spinlens.lm.config import VARIANTS, LMConfig  # noqa: F401  (torch-free, re-exported)

LM_KIND = "lm"
CHECKPOINTS = "checkpoints"


def sinusoidal_positions_(model) -> None:
    """Set ``W_pos`` to sin/cos features of the position (Vaswani et al. 2017), scaled like the random init."""
    W = model.W_pos
    T, d = W.shape
    pos = torch.arange(T, dtype=torch.float64)[:, None]
    freq = torch.exp(-math.log(10_000.0) * torch.arange(0, d, 2, dtype=torch.float64) / d)
    pe = torch.zeros(T, d, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)[:, : d // 2]
    with torch.no_grad():
        W.copy_((pe * math.sqrt(2.0 / d)).to(W.dtype))


def repeat_spans(windows: torch.Tensor, which, *, rng=None, min_len: int = 4) -> torch.Tensor:
    """Windows ``(n, T)`` where each row in ``which`` repeats a span of its own text: a random span
    ``[s, s + h)`` (length ``h`` uniform in ``[min_len, T/2]``, start uniform) is copied right after itself,
    so the lag between the two copies varies and only content (not position) tells where to copy from."""
    g = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    w = windows.clone()
    T = w.shape[1]
    for i in np.flatnonzero(np.asarray(which)):
        h = int(g.integers(min(min_len, T // 2), T // 2 + 1))
        s = int(g.integers(0, T - 2 * h + 1))
        w[i, s + h:s + 2 * h] = w[i, s:s + h]
    return w


def checkpoint_steps(steps: int, n: int) -> list[int]:
    """``n`` roughly log-spaced steps in ``[1, steps]`` (dense early, where induction heads form), with ``steps``."""
    if n <= 0:
        return []
    s = np.unique(np.round(np.geomspace(max(1, steps / 64), steps, n)).astype(int))
    return sorted(set(int(x) for x in s) | {int(steps)})


@dataclass
class LMResult:
    """What `train_lm` returns.

    Attributes
    ----------
    model : Transformer (eval mode, on the training device)
    tokenizer : tokenizers.Tokenizer
    history : list of dicts {step, tokens_seen, train_loss, val_loss, val_ppl, seconds}
    checkpoints : list of (step, folder)
    seconds : wall time of the training loop
    n_train_tokens, n_val_tokens : sizes of the split
    heldout : int64 array, the held-out token ids (what ``heldout_tokens.npy`` holds)
    time_estimate : spinlens.progress.TimeEstimate, made before the first step (`estimate_lm_time`)
    """

    model: object
    tokenizer: object
    history: list
    checkpoints: list = field(default_factory=list)
    seconds: float = 0.0
    n_train_tokens: int = 0
    n_val_tokens: int = 0
    metadata: dict = field(default_factory=dict)
    heldout: np.ndarray | None = None
    time_estimate: object = None


def _lr_at(step: int, cfg: LMConfig) -> float:
    if cfg.warmup and step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


HELDOUT_FILE = "heldout_tokens.npy"


def save_lm(model, tokenizer, folder, *, metadata: dict | None = None, heldout=None, force: bool = False) -> Path:
    """Write a model folder as one transaction (`spinlens.io.folder_transaction`): ``model.safetensors`` +
    ``config.json`` (metadata ``kind: "lm"`` and the tokenizer's SHA-256) + ``tokenizer.json`` (+
    ``heldout_tokens.npy``, the held-out token ids, when ``heldout`` is given) + ``manifest.json``."""
    from spinlens.io import folder_transaction, sha256_file
    from spinlens.lm.tokenizer import TOKENIZER_FILE, save_tokenizer
    from spinlens.models.checkpoint import model_files, write_model_files

    folder = Path(folder)
    with folder_transaction(folder, kind=LM_KIND, force=force, name="out") as stage:
        save_tokenizer(tokenizer, stage)
        meta = {"kind": LM_KIND, **(metadata or {}), "tokenizer_sha256": sha256_file(stage / TOKENIZER_FILE)}
        write_model_files(stage, model_files(model, meta))
        if heldout is not None:
            save_heldout(stage, heldout)
    return folder


def save_heldout(folder, ids) -> Path:
    """Write ``folder/heldout_tokens.npy`` (int32 token ids) atomically."""
    from spinlens.io import atomic_path

    path = Path(folder) / HELDOUT_FILE
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, np.asarray(ids, dtype=np.int32))
    return path


def load_heldout(folder, *, vocab_size: int | None = None) -> np.ndarray | None:
    """The held-out token ids saved with a model (in the folder, or in the run folder above a checkpoint).

    The file is checked against the folder's manifest and must hold a 1-D integer array with ids in
    ``[0, vocab_size)`` (one-line `InvalidParameterError` otherwise).
    """
    from spinlens.io import check_regular_file, verify_files

    folder = Path(folder)
    for d in (folder, folder.parent.parent):
        f = d / HELDOUT_FILE
        if f.exists() or f.is_symlink():
            check_regular_file("checkpoint", f)
            verify_files(d, [HELDOUT_FILE])
            try:
                ids = np.load(f, allow_pickle=False)
            except (OSError, ValueError, EOFError) as exc:
                raise InvalidParameterError(f"The 'checkpoint' parameter: {str(f)!r} is not a readable .npy array "
                                            f"({type(exc).__name__}).") from None
            if ids.ndim != 1 or ids.dtype.kind not in "iu":
                raise InvalidParameterError(f"The 'checkpoint' parameter: {str(f)!r} must hold a 1-D array of integer "
                                            f"token ids. Got shape {list(ids.shape)}, dtype {ids.dtype}.")
            ids = ids.astype(np.int64)
            if ids.size and (ids.min() < 0 or (vocab_size is not None and ids.max() >= vocab_size)):
                bad = int(ids.min()) if ids.min() < 0 else int(ids.max())
                raise InvalidParameterError(f"The 'checkpoint' parameter: {str(f)!r} holds token id {bad}, outside the "
                                            f"vocabulary [0, {vocab_size if vocab_size is not None else 'V'}).")
            return ids
    return None


def load_lm(folder, *, device: str = "cpu"):
    """``(model, tokenizer, metadata)`` of a folder written by `save_lm` / ``spinlens lm``.

    A folder that is not a language model (another format, no tokenizer, no token input) gets one line.
    """
    from spinlens.lm.tokenizer import load_tokenizer
    from spinlens.models.checkpoint import load_transformer
    from spinlens.models.schema import TRANSFORMER_FORMAT

    folder = Path(folder)
    cfg_file = folder / "config.json"
    if not folder.is_dir() or not cfg_file.is_file():
        raise InvalidParameterError(f"The 'checkpoint' parameter must be a language model folder written by 'spinlens lm' "
                                    f"(config.json, model.safetensors, tokenizer.json). Got {str(folder)!r}.")
    from spinlens.models.checkpoint import read_json

    try:
        record = read_json(cfg_file)
    except InvalidParameterError:
        record = {}
    meta = record.get("metadata", {}) if isinstance(record, dict) else {}
    if not isinstance(record, dict) or record.get("format") != TRANSFORMER_FORMAT or meta.get("kind") != LM_KIND:
        fmt = record.get("format") if isinstance(record, dict) else None
        raise InvalidParameterError(f"The checkpoint {str(folder)!r} is not a language model (format {fmt!r}, kind "
                                    f"{meta.get('kind')!r}); train one with 'spinlens lm --out DIR'.")
    from spinlens.io import check_regular_file, sha256_file
    from spinlens.lm.tokenizer import TOKENIZER_FILE

    model = load_transformer(folder, device=device)  # checks the manifest and the config first
    tok_file = folder / TOKENIZER_FILE
    if tok_file.exists():
        check_regular_file("checkpoint", tok_file)
        want = meta.get("tokenizer_sha256")
        if want is not None and sha256_file(tok_file) != want:
            raise InvalidParameterError(f"The checkpoint {str(folder)!r} has a {TOKENIZER_FILE} that is not the one the "
                                        "model was trained with (SHA-256 differs from config.json's).")
    tok = load_tokenizer(folder)
    if model.cfg.input_kind != "tokens" or model.cfg.d_vocab != tok.get_vocab_size():
        raise InvalidParameterError(f"The checkpoint {str(folder)!r} does not match its tokenizer "
                                    f"(d_vocab {model.cfg.d_vocab}, tokenizer {tok.get_vocab_size()}).")
    return model, tok, dict(meta)


def list_checkpoints(folder) -> list[tuple[int, Path]]:
    """``[(step, folder)]`` of the checkpoints saved along training, in step order."""
    root = Path(folder) / CHECKPOINTS
    out = []
    for d in sorted(root.glob("step-*")) if root.is_dir() else []:
        try:
            out.append((int(d.name.split("-", 1)[1]), d))
        except ValueError:
            continue
    return sorted(out)


def train_lm(text: str, cfg: LMConfig = LMConfig(), *, out=None, device: str = "cpu", corpus_name: str = "text",
             tokenizer=None, progress: bool = False, callback=None, force: bool = False,
             on_estimate=None) -> LMResult:
    """Train a tokenizer (unless given) and a causal LM on ``text``; save folders under ``out`` if given.

    Parameters
    ----------
    text : str
        The corpus.
    cfg : LMConfig
    out : path, optional
        Final model folder (`save_lm`), checkpoints in ``out/checkpoints/step-XXXXXX``; written as one
        transaction (`spinlens.io.folder_transaction`): an error or a kill leaves the folder as it was.
    force : bool
        Write into an ``out`` that holds files of another kind (kept; same-named ones replaced).
    device : torch device string ("cpu", "cuda", ...).
    tokenizer : tokenizers.Tokenizer, optional
        Use this tokenizer instead of training one (fine-tuning on a new domain keeps the vocabulary).
    callback : callable(step, model), optional
        Called after every held-out evaluation.
    on_estimate : callable, optional
        Called with the time (and memory) estimate (`estimate_lm_time`) before the first step
        (`spinlens.training.fit`).
    """
    from spinlens.lm.corpus import text_digest
    from spinlens.lm.data import eval_windows, split_tokens
    from spinlens.lm.tokenizer import encode, train_tokenizer
    from spinlens.models.transformer import Transformer

    if not text or not text.strip():
        raise InvalidParameterError("The 'corpus' is empty.")
    if out is not None:
        from spinlens.io import check_replaceable

        check_replaceable("out", out, kind=LM_KIND, force=force)  # before any work
    if tokenizer is None:
        tokenizer = train_tokenizer(text, cfg.vocab_size)
    ids = encode(tokenizer, text)
    split = split_tokens(ids, val_fraction=cfg.val_fraction, n_ctx=cfg.n_ctx)
    V = tokenizer.get_vocab_size()
    rng = np.random.default_rng(cfg.seed)
    model = Transformer(cfg.transformer_config(V), rng=cfg.seed)
    if cfg.pos_init == "sinusoidal":
        sinusoidal_positions_(model)
    model = model.to(device)
    val = eval_windows(split.val, cfg.n_ctx)
    ck_steps = set(checkpoint_steps(cfg.steps, cfg.n_checkpoints))
    meta = {"corpus": corpus_name, "corpus_sha256": text_digest(text), "corpus_chars": len(text),
            "n_train_tokens": int(len(split.train)), "n_val_tokens": int(len(split.val)), "lm_config": cfg.to_dict()}
    if out is None:
        return _train_loop(model, tokenizer, split, cfg, meta, None, device, progress, callback, V, rng, val, ck_steps,
                           on_estimate)
    from spinlens.io import folder_transaction

    out = Path(out)
    with folder_transaction(out, kind=LM_KIND, force=force) as stage:  # the whole folder, or nothing
        save_heldout(stage, split.val)  # first: checkpoints read it from the run folder during training
        res = _train_loop(model, tokenizer, split, cfg, meta, stage, device, progress, callback, V, rng, val,
                          ck_steps, on_estimate)
    res.checkpoints = [(step, out / CHECKPOINTS / d.name) for step, d in res.checkpoints]
    return res


def estimate_lm_time(model, cfg: LMConfig, *, n_val_windows: int = 0, n_train_tokens: int = 0, device: str = "cpu"):
    """The time estimate of `train_lm` (`spinlens.progress.estimate_training_time`): ``cfg.steps`` steps of
    ``cfg.batch_size`` windows of ``cfg.n_ctx`` tokens, and the held-out evaluations."""
    from spinlens.progress import estimate_training_time

    probe = torch.zeros(cfg.batch_size, cfg.n_ctx, dtype=torch.long, device=device)
    n_eval = len(set(range(cfg.eval_every, cfg.steps + 1, cfg.eval_every)) | {1, cfg.steps}
                 | set(checkpoint_steps(cfg.steps, cfg.n_checkpoints)))
    return estimate_training_time(model, probe, steps=cfg.steps, eval_inputs=n_val_windows,
                                  eval_every=max(1, cfg.steps // max(1, n_eval)), data_bytes=n_train_tokens * 8,
                                  eval_batch=64)


def _train_loop(model, tokenizer, split, cfg, meta, out, device, progress, callback, V, rng, val, ck_steps,
                on_estimate=None):
    from spinlens.lm.data import random_windows, token_losses
    from spinlens.training import fit

    history, checkpoints = [], []
    state = {"ema": None, "t0": 0.0}

    def batch_loss(m, step):
        m.train()
        w = random_windows(split.train, cfg.batch_size, cfg.n_ctx, rng=rng)
        if cfg.repeat_fraction > 0:
            w = repeat_spans(w, rng.random(cfg.batch_size) < cfg.repeat_fraction, rng=rng)
        w = w.to(device)
        logits = m(w[:, :-1])
        return torch.nn.functional.cross_entropy(logits.reshape(-1, V).float(), w[:, 1:].reshape(-1))

    def on_step(m, step, train_loss):
        ema = state["ema"] = train_loss if state["ema"] is None else 0.9 * state["ema"] + 0.1 * train_loss
        if step % cfg.eval_every == 0 or step == cfg.steps or step == 1 or step in ck_steps:
            m.eval()
            vl = float(token_losses(m, val).mean())
            history.append({"step": step, "tokens_seen": step * cfg.batch_size * cfg.n_ctx, "train_loss": ema,
                            "val_loss": vl, "val_ppl": math.exp(vl), "elapsed_s": time.perf_counter() - state["t0"]})
            if callback is not None:
                callback(step, m)
        if out is not None and step in ck_steps:
            d = out / CHECKPOINTS / f"step-{step:06d}"
            save_lm(m, tokenizer, d, metadata={**meta, "step": step, "val_loss": history[-1]["val_loss"]})
            checkpoints.append((step, d))

    est = estimate_lm_time(model, cfg, n_val_windows=int(val.shape[0]), n_train_tokens=len(split.train), device=device)
    t0 = state["t0"] = time.perf_counter()
    res = fit(model, batch_loss, steps=cfg.steps, optimizer="adamw", lr=cfg.lr, weight_decay=cfg.weight_decay,
              betas=(0.9, 0.98), lr_at=lambda step: _lr_at(step, cfg), grad_clip=1.0, on_step=on_step,
              progress=progress, label="lm", time_estimate=est, on_estimate=on_estimate)
    if not res.converged:
        raise InvalidParameterError(f"Training diverged at step {res.n_steps} (loss {res.losses[-1]}); lower --lr "
                                    f"(now {cfg.lr}).")
    seconds = time.perf_counter() - t0
    model.eval()
    meta.update(step=cfg.steps, val_loss=history[-1]["val_loss"], val_ppl=history[-1]["val_ppl"], train_elapsed_s=seconds)
    if out is not None:
        save_lm(model, tokenizer, out, metadata=meta)
    return LMResult(model, tokenizer, history, checkpoints, seconds, len(split.train), len(split.val), meta, split.val,
                    est)
