"""Settings of a language-model training run (`LMConfig`), importable without torch (the CLI reads its defaults)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from spinlens.errors import InvalidParameterError, check_choice, check_float, check_int

VARIANTS = ("attn-only", "mlp")


@dataclass(frozen=True)
class LMConfig:
    """Model and training settings of `train_lm` (defaults: an induction head on 2 CPU cores, docs/lm.md).

    Parameters
    ----------
    variant : {"attn-only", "mlp"}
        Attention-only blocks (``d_mlp = 0``) or blocks with a GELU MLP of width ``4 * d_model``.
    n_layers, n_heads, d_model : int
    n_ctx : int
        Context length (tokens per training window).
    vocab_size : int
        BPE vocabulary trained on the corpus.
    steps, batch_size, lr, weight_decay, warmup : training (AdamW, linear warm-up, cosine decay to lr/10).
    val_fraction : float
        Held-out share of the corpus (interleaved blocks).
    eval_every : int
        Steps between held-out evaluations (the loss curve).
    n_checkpoints : int
        Model folders saved along training (log-spaced steps, plus the last).
    repeat_fraction : float
        Share of the training windows in which a random span of the window's own text is repeated right after
        itself (real text shown twice, at a random lag; `repeat_spans`). The repeats reward copying from the
        context: with 1 (the default) an induction head formed between steps 1000 and 3000 in 12 of 12
        seed/corpus runs; with 0 (plain text only) none had formed after 4000 steps of a d_model-64 model, and with 0.5 the induction score stayed
        below 0.02 after 5000 steps (docs/lm.md).
    pos_init : {"sinusoidal", "random"}
        Initial value of the learned positional embedding: sinusoids (offsets such as "the previous position"
        are then a linear map away, which speeds up the previous-token heads) or the model's random init.
    seed : int
        Initialisation and batch order.
    """

    variant: str = "attn-only"
    n_layers: int = 2
    n_heads: int = 4
    d_model: int = 128
    n_ctx: int = 64
    vocab_size: int = 512
    steps: int = 6000
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup: int = 100
    val_fraction: float = 0.1
    eval_every: int = 200
    n_checkpoints: int = 14
    pos_init: str = "sinusoidal"
    repeat_fraction: float = 1.0
    seed: int = 0

    def __post_init__(self):
        o = "LMConfig"
        check_choice("variant", self.variant, VARIANTS, owner=o)
        check_int("n_layers", self.n_layers, low=1, high=64, owner=o)
        check_int("n_heads", self.n_heads, low=1, high=256, owner=o)
        check_int("d_model", self.d_model, low=self.n_heads, high=1 << 14, owner=o)
        if self.d_model % self.n_heads:
            raise InvalidParameterError(f"The 'd_model' parameter of {o} must be divisible by n_heads={self.n_heads}. "
                                        f"Got {self.d_model} instead.")
        check_int("n_ctx", self.n_ctx, low=8, high=8192, owner=o)
        check_int("vocab_size", self.vocab_size, low=257, high=1 << 18, owner=o)
        check_int("steps", self.steps, low=1, high=10**7, owner=o)
        check_int("batch_size", self.batch_size, low=1, high=1 << 16, owner=o)
        check_float("lr", self.lr, low=0.0, low_open=True, high=10.0, owner=o)
        check_float("weight_decay", self.weight_decay, low=0.0, high=10.0, owner=o)
        check_int("warmup", self.warmup, low=0, owner=o)
        check_float("val_fraction", self.val_fraction, low=0.0, low_open=True, high=0.5, owner=o)
        check_int("eval_every", self.eval_every, low=1, owner=o)
        check_int("n_checkpoints", self.n_checkpoints, low=0, high=1000, owner=o)
        check_int("seed", self.seed, low=0, owner=o)
        check_choice("pos_init", self.pos_init, ("sinusoidal", "random"), owner=o)
        check_float("repeat_fraction", self.repeat_fraction, low=0.0, high=1.0, owner=o)

    def transformer_config(self, d_vocab: int):
        from spinlens.models.transformer import TransformerConfig

        return TransformerConfig(n_layers=self.n_layers, n_heads=self.n_heads, d_model=self.d_model,
                                 d_mlp=0 if self.variant == "attn-only" else 4 * self.d_model, act="gelu",
                                 max_pos=self.n_ctx, input_kind="tokens", d_vocab=d_vocab)

    def to_dict(self) -> dict:
        return asdict(self)

    def memory_estimate_bytes(self) -> int:
        """Rough peak memory of training (weights, Adam state, activations incl. attention patterns)."""
        V, d, L, T, B, H = self.vocab_size, self.d_model, self.n_layers, self.n_ctx, self.batch_size, self.n_heads
        mlp = 0 if self.variant == "attn-only" else 8 * d * d
        params = 2 * V * d + T * d + L * (4 * d * d + mlp)
        acts = B * T * (V * 3 + L * (16 * d + (8 * d if mlp else 0))) + B * L * H * T * T * 3
        return int(4 * (4 * params + acts))
