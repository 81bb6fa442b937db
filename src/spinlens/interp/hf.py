"""Hugging Face causal LMs under spinlens hook names (an architecture-adapter table over plain torch hooks).

`HookedHF` wraps an HF causal LM (GPT-2 family or Llama family: Llama, Mistral, Qwen2/3) *without changing
its weights or its forward*: permanent forward (pre-)hooks on the HF submodules route each activation through
a `HookPoint` named as in ``docs/design.md``, so `hooks`, `run_with_hooks` and `run_with_cache` work exactly as
on `spinlens.models.transformer.Transformer`, and interpretability methods run unchanged on both.

Where each name comes from (``L`` = layer):

======================================  ====================================================  ========
name                                    GPT-2 (``transformer.h.L``) / Llama (``model.layers.L``)  write
======================================  ====================================================  ========
``hook_embed``                          input of layer 0                                        yes
``blocks.L.hook_resid_pre``             input of the decoder layer                              yes
``blocks.L.attn.hook_q/k/v``            ``c_attn`` output split in 3 / ``q_proj``, ``k_proj``,   yes
                                        ``v_proj`` outputs, viewed ``[b, p, head, d_head]``
                                        (Llama: before RoPE; k/v have ``n_kv_heads`` heads)
``blocks.L.attn.hook_pattern``          attention weights returned by the attention module      read
                                        (eager attention is switched on)
``blocks.L.attn.hook_z``                input of ``c_proj`` / ``o_proj`` viewed per head          yes
``blocks.L.attn.hook_result``           z_h @ W_O[h] per head ``[b, p, head, d_model]`` (the     yes
                                        projection is recomputed as their sum + bias)
``blocks.L.hook_attn_out``              attention module output                                 yes
``blocks.L.hook_resid_mid``             input of ``ln_2`` / ``post_attention_layernorm``        read
``blocks.L.mlp.hook_pre``               ``c_fc`` output / ``gate_proj`` output (pre-activation)  yes
``blocks.L.mlp.hook_post``              input of ``mlp.c_proj`` / ``down_proj`` (Llama:         yes
                                        act(gate) * up)
``blocks.L.hook_mlp_out``               MLP output                                              yes
``blocks.L.hook_resid_post``            decoder layer output                                    yes
``hook_resid_final``                    final norm output (``ln_f`` / ``model.norm``)            yes
``readout.hook_out``                    ``lm_head`` output (logits)                              yes
======================================  ====================================================  ========

"read" hook points are `ReadOnlyHookPoint` s: a hook returning a new tensor raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import nn

from spinlens.errors import InvalidParameterError
from spinlens.models.hooks import HookedModule, HookPoint, ModuleSeq, ReadOnlyHookPoint

if TYPE_CHECKING:
    from transformers import PreTrainedModel

# architecture family -> module paths (relative to the model root or to one decoder layer)
ARCHITECTURES: dict[str, dict] = {
    "gpt2": dict(
        layers="transformer.h", attn="attn", qkv_fused="attn.c_attn", o_proj="attn.c_proj", o_conv1d=True,
        ln2="ln_2", mlp="mlp", mlp_in="mlp.c_fc", mlp_down="mlp.c_proj", final_norm="transformer.ln_f",
        lm_head="lm_head",
    ),
    "llama": dict(
        layers="model.layers", attn="self_attn", q="self_attn.q_proj", k="self_attn.k_proj", v="self_attn.v_proj",
        o_proj="self_attn.o_proj", o_conv1d=False, ln2="post_attention_layernorm", mlp="mlp",
        mlp_in="mlp.gate_proj", mlp_down="mlp.down_proj", final_norm="model.norm", lm_head="lm_head",
    ),
    # Gemma 2/3: the attention and MLP outputs pass through their own RMSNorm before they join the residual
    # stream ("sandwich" norms), so hook_attn_out / hook_mlp_out sit on those norms' outputs (what is added to
    # the residual), and hook_resid_mid on the input of the pre-feed-forward norm.
    "gemma3": dict(
        layers="model.layers", attn="self_attn", q="self_attn.q_proj", k="self_attn.k_proj", v="self_attn.v_proj",
        o_proj="self_attn.o_proj", o_conv1d=False, attn_out="post_attention_layernorm",
        ln2="pre_feedforward_layernorm", mlp="mlp", mlp_out="post_feedforward_layernorm",
        mlp_in="mlp.gate_proj", mlp_down="mlp.down_proj", final_norm="model.norm", lm_head="lm_head",
    ),
}
MODEL_TYPES = {"gpt2": "gpt2", "llama": "llama", "mistral": "llama", "qwen2": "llama", "qwen3": "llama",
               "gemma3_text": "gemma3", "gemma2": "gemma3"}


@dataclass(frozen=True)
class AdapterConfig:
    """Sizes of a wrapped HF model, named as in `spinlens.models.transformer.TransformerConfig`."""

    arch: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_model: int
    d_head: int
    d_mlp: int
    d_vocab: int
    input_kind: str = "tokens"
    layernorm: bool = True


def _get(root: nn.Module, path: str) -> Any:  # a submodule (or ModuleList) of an HF model, by its dotted path
    mod = root
    for part in path.split("."):
        mod = getattr(mod, part)
    return mod


class _Projection(Protocol):
    """An output projection of an HF attention: ``nn.Linear`` or GPT-2's ``Conv1D``."""

    weight: torch.Tensor


class _AttnHooks(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hook_q = HookPoint()
        self.hook_k = HookPoint()
        self.hook_v = HookPoint()
        self.hook_z = HookPoint()
        self.hook_result = HookPoint()
        self.hook_pattern = ReadOnlyHookPoint()


class _MLPHooks(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hook_pre = HookPoint()
        self.hook_post = HookPoint()


class _BlockHooks(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = _AttnHooks()
        self.mlp = _MLPHooks()
        self.hook_resid_pre = HookPoint()
        self.hook_attn_out = HookPoint()
        self.hook_resid_mid = ReadOnlyHookPoint()
        self.hook_mlp_out = HookPoint()
        self.hook_resid_post = HookPoint()


class _ReadoutHooks(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hook_out = HookPoint()


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def _replace_first(out, new):
    if isinstance(out, tuple):
        return (new,) + tuple(out[1:])
    return new


class HookedHF(HookedModule):
    """An HF causal LM with spinlens hook names; ``forward(tokens (batch, pos)) -> logits (batch, pos, vocab)``.

    Parameters
    ----------
    hf_model : transformers PreTrainedModel
        A causal LM of a supported family (``ARCHITECTURES``, ``MODEL_TYPES``). Its attention implementation
        is switched to ``"eager"`` so that attention patterns exist.
    arch : str or None
        Force an adapter (``"gpt2"`` or ``"llama"``); None picks it from ``config.model_type``.
    """

    def __init__(self, hf_model: PreTrainedModel, *, arch: str | None = None) -> None:
        super().__init__()
        hc: Any = hf_model.config  # family-specific fields (hidden_size or n_embd, ...)
        if arch is None:
            mt = getattr(hc, "model_type", None)
            if mt not in MODEL_TYPES:
                raise InvalidParameterError(
                    f"The model type must be one of {sorted(MODEL_TYPES)} (an adapter family). Got {mt!r} instead."
                )
            arch = MODEL_TYPES[mt]
        if arch not in ARCHITECTURES:
            raise InvalidParameterError(f"The 'arch' parameter must be one of {sorted(ARCHITECTURES)}. Got {arch!r} instead.")
        try:
            hf_model.set_attn_implementation("eager")
        except Exception:  # older/other versions
            hc._attn_implementation = "eager"
        self.hf = hf_model.eval()
        self.spec = ARCHITECTURES[arch]
        n_layers = len(_get(hf_model, self.spec["layers"]))
        d_model = int(hc.hidden_size)
        n_heads = int(hc.num_attention_heads)
        d_head = int(getattr(hc, "head_dim", None) or d_model // n_heads)
        n_kv = int(getattr(hc, "num_key_value_heads", None) or n_heads)
        d_mlp = int(getattr(hc, "intermediate_size", None) or getattr(hc, "n_inner", None) or 4 * d_model)
        self.cfg = AdapterConfig(arch, n_layers, n_heads, n_kv, d_model, d_head, d_mlp, int(hc.vocab_size))
        self.blocks = ModuleSeq([_BlockHooks() for _ in range(n_layers)])
        self.hook_embed = HookPoint()
        self.hook_resid_final = HookPoint()
        self.readout = _ReadoutHooks()
        self._bypass = False
        self._handles: list = []
        self._install()
        self.setup_hooks()

    # ----------------------------------------------------------- adapter
    def _install(self) -> None:
        s, cfg = self.spec, self.cfg
        H, dh = cfg.n_heads, cfg.d_head
        add = self._handles.append
        layers = _get(self.hf, s["layers"])

        def guard(fn):
            def wrapped(*a, **k):
                if self._bypass:
                    return None
                return fn(*a, **k)

            return wrapped

        for L, layer in enumerate(layers):
            hb = self.blocks[L]

            def pre_layer(mod, args, kwargs, hb=hb, L=L):
                if args:
                    x = args[0]
                else:
                    x = kwargs["hidden_states"]
                if L == 0:
                    x = self.hook_embed(x)
                x = hb.hook_resid_pre(x)
                if args:
                    return (x,) + tuple(args[1:]), kwargs
                kwargs = dict(kwargs)
                kwargs["hidden_states"] = x
                return args, kwargs

            add(layer.register_forward_pre_hook(guard(pre_layer), with_kwargs=True))
            add(layer.register_forward_hook(guard(lambda m, i, o, hb=hb: _replace_first(o, hb.hook_resid_post(_first(o))))))

            sandwich = "attn_out" in s  # Gemma: the attention output is normed before it joins the residual

            def post_attn(mod, inp, out, hb=hb, sandwich=sandwich):
                if isinstance(out, tuple) and len(out) > 1 and out[1] is not None:
                    hb.attn.hook_pattern(out[1])
                if sandwich:
                    return None
                return _replace_first(out, hb.hook_attn_out(_first(out)))

            add(_get(layer, s["attn"]).register_forward_hook(guard(post_attn)))
            if sandwich:
                add(_get(layer, s["attn_out"]).register_forward_hook(guard(lambda m, i, o, hb=hb: hb.hook_attn_out(o))))

            if "qkv_fused" in s:
                def post_qkv(mod, inp, out, hb=hb):
                    q, k, v = out.split(cfg.d_model, dim=-1)
                    sh = (*out.shape[:-1], H, dh)
                    q = hb.attn.hook_q(q.reshape(sh))
                    k = hb.attn.hook_k(k.reshape(sh))
                    v = hb.attn.hook_v(v.reshape(sh))
                    return torch.cat([q.flatten(-2), k.flatten(-2), v.flatten(-2)], dim=-1)

                add(_get(layer, s["qkv_fused"]).register_forward_hook(guard(post_qkv)))
            else:
                for key, hname in (("q", "hook_q"), ("k", "hook_k"), ("v", "hook_v")):
                    def post_proj(mod, inp, out, hp=getattr(hb.attn, hname)):
                        x = hp(out.reshape(*out.shape[:-1], -1, dh))
                        return x.flatten(-2)

                    add(_get(layer, s[key]).register_forward_hook(guard(post_proj)))

            o_proj = _get(layer, s["o_proj"])

            def pre_o(mod, args, hb=hb):
                x = args[0]
                z = hb.attn.hook_z(x.reshape(*x.shape[:-1], H, dh))
                return (z.flatten(-2),) + tuple(args[1:])

            def post_o(mod, args, out, hb=hb):
                hp = hb.attn.hook_result
                if not hp._forward_hooks:
                    return None
                z = args[0].reshape(*args[0].shape[:-1], H, dh)
                W = self._W_O(mod)  # [H, dh, d_model]
                res = hp(torch.einsum("bphe,hem->bphm", z, W))
                bias = getattr(mod, "bias", None)
                return res.sum(-2) + (bias if bias is not None else 0.0)

            add(o_proj.register_forward_pre_hook(guard(pre_o)))
            add(o_proj.register_forward_hook(guard(post_o)))
            add(_get(layer, s["ln2"]).register_forward_pre_hook(guard(lambda m, a, hb=hb: (hb.hook_resid_mid(a[0]),) + a[1:])))
            add(_get(layer, s.get("mlp_out", s["mlp"])).register_forward_hook(
                guard(lambda m, i, o, hb=hb: _replace_first(o, hb.hook_mlp_out(_first(o))))))
            add(_get(layer, s["mlp_in"]).register_forward_hook(guard(lambda m, i, o, hb=hb: hb.mlp.hook_pre(o))))
            add(_get(layer, s["mlp_down"]).register_forward_pre_hook(guard(lambda m, a, hb=hb: (hb.mlp.hook_post(a[0]),) + a[1:])))

        add(_get(self.hf, s["final_norm"]).register_forward_hook(guard(lambda m, i, o: self.hook_resid_final(o))))
        add(_get(self.hf, s["lm_head"]).register_forward_hook(guard(lambda m, i, o: self.readout.hook_out(o))))

    def _W_O(self, mod: _Projection) -> torch.Tensor:
        """Per-head output projection ``[head, d_head, d_model]`` of ``c_proj`` / ``o_proj``."""
        H, dh = self.cfg.n_heads, self.cfg.d_head
        W = mod.weight
        W = W if self.spec["o_conv1d"] else W.T  # -> [in = H*dh, out = d_model]
        return W.reshape(H, dh, -1)

    def W_O(self, layer: int) -> torch.Tensor:
        return self._W_O(_get(_get(self.hf, self.spec["layers"])[layer], self.spec["o_proj"]))

    def plain_copy(self) -> PreTrainedModel:
        """A deep copy of the wrapped HF model without this adapter's hooks (a plain transformers model)."""
        import copy

        ids = {h.id for h in self._handles}
        new = copy.deepcopy(self.hf)
        for mod in new.modules():
            for d in (mod._forward_hooks, mod._forward_pre_hooks, mod._forward_hooks_with_kwargs,
                      mod._forward_pre_hooks_with_kwargs, getattr(mod, "_forward_hooks_always_called", {})):
                for i in ids & set(d):
                    del d[i]
        return new

    def clone(self) -> HookedHF:
        """An independent copy (weights copied, its own hooks)."""
        return HookedHF(self.plain_copy(), arch=self.cfg.arch)

    def remove_adapter(self) -> None:
        """Remove the permanent hooks from the HF model (the wrapper is unusable afterwards)."""
        for h in self._handles:
            h.remove()
        self._handles.clear()

    # ----------------------------------------------------------- forward
    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.ndim != 2 or tokens.dtype.is_floating_point:
            raise InvalidParameterError(
                "The 'tokens' parameter must be an integer tensor of shape (batch, pos). "
                f"Got dtype {tokens.dtype} and shape {tuple(tokens.shape)} instead."
            )
        return self.hf(input_ids=tokens, use_cache=False).logits

    def attn_out_from_heads(self, layer: int, summed_result: torch.Tensor) -> torch.Tensor:
        """What the attention of ``layer`` adds to the residual stream, given the sum of its heads' ``hook_result``
        (without the projection bias): the sum itself, or, on sandwich-norm families (Gemma), its
        post-attention norm."""
        if "attn_out" not in self.spec:
            return summed_result
        norm = _get(_get(self.hf, self.spec["layers"])[layer], self.spec["attn_out"])
        self._bypass = True
        try:
            return norm(summed_result)
        finally:
            self._bypass = False

    @property
    def supports_forward_from(self) -> bool:
        """Whether `forward_from` is exact (Llama and Gemma families; GPT-2 adds position embeddings to
        its input, so starting mid-way is not offered there)."""
        return self.cfg.arch != "gpt2"

    def forward_from(self, resid: torch.Tensor, start_layer: int) -> torch.Tensor:
        """Logits of the model run from ``blocks.{start_layer}.hook_resid_pre = resid`` (the layers below are
        skipped: `spinlens.interp.patching.run_variants` uses this to reuse the base run's shared prefix).

        The decoder layers below ``start_layer`` are taken out of the HF model for the call (and the per-layer
        ``layer_types`` of sliding-window models shifted with them); the hook names keep their layer numbers.
        """
        if not self.supports_forward_from:
            raise InvalidParameterError(f"forward_from is not available for the {self.cfg.arch!r} family.")
        s = self.spec["layers"]
        parent = _get(self.hf, s.rsplit(".", 1)[0])
        attr = s.rsplit(".", 1)[1]
        layers = getattr(parent, attr)
        hc = self.hf.config
        types = getattr(hc, "layer_types", None)
        try:
            setattr(parent, attr, nn.ModuleList(list(layers)[start_layer:]))
            if types is not None:
                hc.layer_types = list(types)[start_layer:]
            return self.hf(inputs_embeds=resid, use_cache=False).logits
        finally:
            setattr(parent, attr, layers)
            if types is not None:
                hc.layer_types = types

    def unembed(self, resid: torch.Tensor) -> torch.Tensor:
        """Final norm + ``lm_head`` of any residual stream ``[..., d_model] -> [..., vocab]`` (logit lens)."""
        self._bypass = True
        try:
            logits = _get(self.hf, self.spec["lm_head"])(_get(self.hf, self.spec["final_norm"])(resid))
        finally:
            self._bypass = False
        cap = getattr(self.hf.config, "final_logit_softcapping", None)  # Gemma 2 (Gemma 3: None)
        return torch.tanh(logits / cap) * cap if cap else logits


def load_hf_model(path, *, dtype: str = "float32", device: str = "cpu", allow_pickle_weights: bool = False):
    """Load a Hugging Face causal LM from a local ``save_pretrained`` directory (no network), in eval mode.

    The one loader of Hugging Face models in spinlens (`load_hf` wraps its result as `HookedHF`;
    ``spinlens quantize --model DIR`` uses it directly). Attention is the eager implementation, so that
    attention patterns are real tensors a hook can read.

    Parameters
    ----------
    path : str or Path
        Directory written by ``save_pretrained`` (config.json + weights), or the name of a pretrained model
        of `spinlens.models.pretrained.NAMED_MODELS` (``"smollm2-135m"``, ``"gemma3-270m"``).
    dtype : {"float32", "float64", "bfloat16"}
    device : str
        Torch device.
    allow_pickle_weights : bool
        False (default): load ``*.safetensors`` weights only. True also accepts PyTorch ``.bin`` weights,
        which are pickles: loading one can run code, so only for folders you trust.
    """
    import os

    from spinlens.models.pretrained import NAMED_MODELS, resolve_model

    path = resolve_model(path)  # a named pretrained model: its prepared folder (prepared on first use)
    if not os.path.isdir(path) or not os.path.isfile(os.path.join(path, "config.json")):
        raise InvalidParameterError(f"The 'model' parameter must be a local directory with an HF model "
                                    f"(save_pretrained: config.json + weights) or one of the named models "
                                    f"{sorted(NAMED_MODELS)}. Got {str(path)!r} instead.")
    from transformers import AutoModelForCausalLM

    dt = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}.get(dtype)
    if dt is None:
        raise InvalidParameterError(f"The 'dtype' parameter must be one of {{'float32', 'float64', 'bfloat16'}}. Got {dtype!r} instead.")
    from spinlens.models.pretrained import _quiet_transformers

    try:
        with _quiet_transformers():  # no per-load progress bar on stderr (a CLI error stays one line)
            m = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, attn_implementation="eager",
                                                     dtype=dt, use_safetensors=None if allow_pickle_weights else True)
    except (OSError, ValueError, KeyError) as exc:  # no weights, unknown model_type, ...
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        msg = pickle_weights_hint(path, allow_pickle_weights) or msg
        raise InvalidParameterError(f"The 'model' parameter: cannot load an HF causal LM from {str(path)!r}: {msg}") from None
    # transformers declares PreTrainedModel.to with @wraps(nn.Module.to), which its stubs type as the unbound function
    return m.to(device).eval()  # type: ignore[arg-type]


def load_hf(path, *, arch: str | None = None, dtype: str = "float32", device: str = "cpu",
            allow_pickle_weights: bool = False) -> HookedHF:
    """Load a causal LM from a local directory (no network, `load_hf_model`) and wrap it as `HookedHF`.

    Parameters
    ----------
    path : str or Path
        Directory written by ``save_pretrained`` (config.json + weights).
    allow_pickle_weights : bool
        See `load_hf_model`: ``.safetensors`` only unless True.
    """
    return HookedHF(load_hf_model(path, dtype=dtype, device=device, allow_pickle_weights=allow_pickle_weights),
                    arch=arch)


def pickle_weights_hint(path, allow_pickle_weights: bool) -> str | None:
    """The one-line reason a folder with only pickled (.bin) weights is refused, or None."""
    from pathlib import Path

    p = Path(path)
    if allow_pickle_weights or any(p.glob("*.safetensors")) or not any(p.glob("*.bin")):
        return None
    return ("it holds only pickled PyTorch weights (*.bin), which can run code when loaded; spinlens loads "
            "*.safetensors only unless you pass --allow-pickle-weights (allow_pickle_weights=True) for a folder you trust")


def tiny_hf(arch: str = "gpt2", *, n_layers: int = 2, n_heads: int = 4, d_model: int = 32, d_vocab: int = 50,
            n_kv_heads: int | None = None, max_pos: int = 64, rng=None) -> HookedHF:
    """A tiny randomly initialised HF model (offline, from a config), wrapped; for tests and demos."""
    import transformers

    from spinlens.random import seed_from

    with torch.random.fork_rng(devices=[]):  # HF init draws from the global torch RNG: fork it, seed, restore
        torch.manual_seed(seed_from(rng))
        if arch == "gpt2":
            gpt2 = transformers.GPT2Config(
                n_layer=n_layers, n_head=n_heads, n_embd=d_model, vocab_size=d_vocab, n_positions=max_pos,
                resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0,
            )
            m: PreTrainedModel = transformers.GPT2LMHeadModel(gpt2)
        elif arch == "llama":
            llama = transformers.LlamaConfig(
                num_hidden_layers=n_layers, num_attention_heads=n_heads, hidden_size=d_model,
                intermediate_size=2 * d_model, vocab_size=d_vocab, max_position_embeddings=max_pos,
                num_key_value_heads=n_kv_heads or n_heads,
            )
            m = transformers.LlamaForCausalLM(llama)
        elif arch == "gemma3":
            # every Gemma 3 feature the adapter must handle: q/k norms, sandwich norms, scaled embeddings,
            # grouped kv heads, and sliding-window layers (window 4 < max_pos) mixed with global ones
            gemma = transformers.Gemma3TextConfig(
                num_hidden_layers=n_layers, num_attention_heads=n_heads, hidden_size=d_model,
                head_dim=d_model // n_heads, intermediate_size=2 * d_model, vocab_size=d_vocab,
                max_position_embeddings=max_pos, num_key_value_heads=n_kv_heads or max(1, n_heads // 2),
                sliding_window=4, layer_types=["sliding_attention" if (i + 1) % 2 else "full_attention"
                                               for i in range(n_layers)],
                query_pre_attn_scalar=d_model // n_heads, pad_token_id=0, bos_token_id=1, eos_token_id=2,
            )
            m = transformers.Gemma3ForCausalLM(gemma)
        else:
            raise InvalidParameterError(f"The 'arch' parameter must be one of {{'gpt2', 'llama', 'gemma3'}}. "
                                        f"Got {arch!r} instead.")
    return HookedHF(m.float().eval(), arch=arch)
