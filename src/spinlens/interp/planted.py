"""Hand-built models with a known circuit ("planted truth"), used to test that each method singles it out.

`planted_regression_model` (in-context regression, linear attention, no LayerNorm):

* head ``(0, 0)`` computes the one-step gradient-descent estimate at every position,
  ``s = (1/n_keys) Σ_k (x_q·x_k) y_k``, into a residual slot ``s1``;
* head ``(1, 1)`` attends to the query position only and copies ``s1`` into the output slot ``out``
  (a V-composition edge ``(0,0) → (1,1)`` through v), which the read-out reads; so at the query
  ``ŷ = N/(N+1) · ŷ_GD`` + the label-independent output of the layer-1 distractor heads (exactly
  ``N/(N+1) · ŷ_GD`` with ``distractors=False``);
* MLP neuron ``planted_neuron`` of layer 0 reads ``s1`` (a "GD-estimate neuron"); other neurons read random
  directions of x only;
* every other head attends with random q/k and reads only x coordinates, so it does not depend on the
  labels: with corrupted prompts that change only the context labels its patching effect is exactly 0.

`planted_copy_model` (tokens): head ``(1, 1)`` attends to position 0 and copies its token into the logits
(the model predicts the first token); other heads read positions only.
"""

from __future__ import annotations

import math

import torch

from spinlens.models.transformer import Transformer, TransformerConfig
from spinlens.random import torch_generator


def planted_regression_model(d: int, n_context: int, *, n_heads: int = 2, d_mlp: int = 8,
                             planted_neuron: int = 3, distractors: bool = True, dtype: str = "float64",
                             rng=0) -> Transformer:
    """Two-layer linear-attention model whose circuit is (0,0) -v-> (1,1) -> read-out (see module doc).

    Slots of the residual stream (``d_model = d + 5``): ``0..d-1`` x, ``d`` y, ``d+1`` s1 (GD estimate),
    ``d+2`` out, ``d+3`` query flag, ``d+4`` junk.
    """
    T = n_context + 1
    dm = d + 5
    S1, OUT, FLAG, JUNK = d + 1, d + 2, d + 3, d + 4
    dh = d
    cfg = TransformerConfig(
        n_layers=2, n_heads=n_heads, d_model=dm, d_head=dh, d_mlp=d_mlp, act="relu", layernorm=False,
        causal=True, attention="linear", max_pos=T, positional="learned", input_kind="regression", d_in=d + 1,
        dtype=dtype,
    )
    m = Transformer(cfg, rng=rng)
    g = torch_generator(rng)
    dt = cfg.torch_dtype
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
        m.W_in[: d + 1, : d + 1] = torch.eye(d + 1, dtype=dt)
        m.W_pos[T - 1, FLAG] = 1.0
        m.readout.W[OUT, 0] = 1.0
        sc = math.sqrt(dh)
        # layer 0, head 0: GD estimate into s1
        a0 = m.blocks[0].attn
        a0.W_Q[0, :d, :d] = torch.eye(d, dtype=dt) * math.sqrt(sc)
        a0.W_K[0, :d, :d] = torch.eye(d, dtype=dt) * math.sqrt(sc)
        a0.W_V[0, d, 0] = 1.0
        a0.W_O[0, 0, S1] = 1.0
        # layer 1, head 1: attend to the query only, copy s1 to out
        a1 = m.blocks[1].attn
        a1.b_Q[1, 0] = T * sc
        a1.W_K[1, FLAG, 0] = 1.0
        a1.W_V[1, S1, 0] = 1.0
        a1.W_O[1, 0, OUT] = 1.0
        # distractor heads: random q/k on x, values from x only, writing into junk / out
        for L, attn in enumerate((a0, a1)):
            for h in range(n_heads):
                if (L, h) in ((0, 0), (1, 1)):
                    continue
                attn.W_Q[h, :d] = torch.randn(d, dh, generator=g, dtype=dt) / math.sqrt(d)
                attn.W_K[h, :d] = torch.randn(d, dh, generator=g, dtype=dt) / math.sqrt(d)
                attn.W_V[h, :d] = torch.randn(d, dh, generator=g, dtype=dt) / math.sqrt(d)
                attn.W_O[h, :, JUNK if L == 0 else OUT] = torch.randn(dh, generator=g, dtype=dt) * 0.3 * distractors
        # layer-0 MLP: planted neuron reads s1; others read random x directions; all write to junk
        if d_mlp:
            mlp = m.blocks[0].mlp
            mlp.W_in[:d] = torch.randn(d, d_mlp, generator=g, dtype=dt) / math.sqrt(d)
            mlp.W_in[:, planted_neuron] = 0.0
            mlp.W_in[S1, planted_neuron] = 1.0
            mlp.W_out[:, JUNK] = torch.randn(d_mlp, generator=g, dtype=dt) * 0.1
    return m


def planted_copy_model(d_vocab: int = 10, seq_len: int = 6, *, n_heads: int = 2, strength: float = 5.0,
                       dtype: str = "float64", rng=0) -> Transformer:
    """Two-layer attention-only token model: head (1, 1) copies the first token into the logits.

    Residual slots (``d_model = d_vocab + seq_len + 2``): token one-hot, position one-hot, two junk slots.
    """
    V, T = d_vocab, seq_len
    dm = V + T + 2
    dh = V
    cfg = TransformerConfig(
        n_layers=2, n_heads=n_heads, d_model=dm, d_head=dh, d_mlp=0, layernorm=False, causal=True,
        attention="softmax", max_pos=T, positional="learned", input_kind="tokens", d_vocab=V, dtype=dtype,
    )
    m = Transformer(cfg, rng=rng)
    g = torch_generator(rng)
    dt = cfg.torch_dtype
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
        m.W_E[:, :V] = torch.eye(V, dtype=dt)
        m.W_pos[:, V : V + T] = torch.eye(T, dtype=dt)
        m.readout.W[:V, :] = torch.eye(V, dtype=dt)
        a1 = m.blocks[1].attn
        a1.b_Q[1, 0] = 40.0
        a1.W_K[1, V, 0] = 1.0  # position 0 one-hot
        a1.W_V[1, :V, :V] = torch.eye(V, dtype=dt)
        a1.W_O[1, :V, :V] = torch.eye(V, dtype=dt) * strength
        for L, attn in enumerate((m.blocks[0].attn, a1)):
            for h in range(n_heads):
                if (L, h) == (1, 1):
                    continue
                attn.W_Q[h, V : V + T] = torch.randn(T, dh, generator=g, dtype=dt)
                attn.W_K[h, V : V + T] = torch.randn(T, dh, generator=g, dtype=dt)
                attn.W_V[h, V : V + T] = torch.randn(T, dh, generator=g, dtype=dt)
                if L == 0:
                    attn.W_O[h, :, V + T] = torch.randn(dh, generator=g, dtype=dt)
                else:
                    attn.W_O[h, :, :V] = torch.randn(dh, V, generator=g, dtype=dt) * 0.3
    return m


def planted_task_model(n_inputs: int = 4, n_tasks: int = 2, labels_per_task: int = 3, n_pairs: int = 3, *,
                       strength: float = 5.0, dtype: str = "float64", rng=0):
    """Two-layer token model where head (0, 1) alone carries the task identity (a planted function vector).

    Tasks (disjoint label sets): ``tasks[t, x] = n_inputs + t·labels_per_task + (x + t) mod labels_per_task``.
    Residual slots (``d_model = d_vocab + n_tasks + 1``): token one-hot, one "task" slot per task, a junk slot.

    * head (0, 1): uniform attention (q = k = 0); its OV maps every label token of task t to task slot t,
      scaled so that on a clean prompt of ``n_pairs`` demonstrations (``2·n_pairs+1`` positions) the last
      position receives exactly 1 in slot t — its mean output there *is* the task's function vector ``e_t``;
    * head (0, 0): a distractor (random q/k/v on input slots) writing only the junk slot, which nothing reads;
    * layer-1 MLP: one ReLU neuron per (input x, task t), ``relu(x-slot + t-slot − 1.5)``, firing only when
      both are present and writing ``strength`` to the logit of ``tasks[t, x]``; layer-1 heads and the layer-0
      MLP are zero.

    So at the last position ``p(answer) = e^s / (e^s + V − 1)`` on clean prompts (``s = strength``,
    ``V = d_vocab``) and ``1/V`` on the query alone (all logits 0).

    Returns
    -------
    (Transformer, tasks) with ``tasks`` an int64 array ``(n_tasks, n_inputs)``.
    """
    import numpy as np

    from spinlens.errors import check_int

    I_ = check_int("n_inputs", n_inputs, low=2)
    T = check_int("n_tasks", n_tasks, low=1)
    M = check_int("labels_per_task", labels_per_task, low=1)
    K = check_int("n_pairs", n_pairs, low=1, high=I_ - 1)
    V = I_ + T * M
    dm = V + T + 1
    tasks = np.array([[I_ + t * M + (x + t) % M for x in range(I_)] for t in range(T)], dtype=np.int64)
    cfg = TransformerConfig(
        n_layers=2, n_heads=2, d_model=dm, d_head=max(T, I_), d_mlp=I_ * T, act="relu", layernorm=False, causal=True,
        attention="softmax", max_pos=2 * K + 1, positional="none", input_kind="tokens", d_vocab=V, dtype=dtype,
    )
    m = Transformer(cfg, rng=rng)
    g = torch_generator(rng)
    dt = cfg.torch_dtype
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
        m.W_E[:, :V] = torch.eye(V, dtype=dt)
        a0 = m.blocks[0].attn
        for t in range(T):  # task head: label tokens of task t -> task slot t
            a0.W_V[1, I_ + t * M : I_ + (t + 1) * M, t] = 1.0
            a0.W_O[1, t, V + t] = (2 * K + 1) / K
        dh = a0.d_head
        a0.W_Q[0, :I_] = torch.randn(I_, dh, generator=g, dtype=dt)
        a0.W_K[0, :I_] = torch.randn(I_, dh, generator=g, dtype=dt)
        a0.W_V[0, :I_] = torch.randn(I_, dh, generator=g, dtype=dt)
        a0.W_O[0, :, V + T] = torch.randn(dh, generator=g, dtype=dt)
        mlp = m.blocks[1].mlp
        for x in range(I_):
            for t in range(T):
                n = x * T + t
                mlp.W_in[x, n] = 1.0
                mlp.W_in[V + t, n] = 1.0
                mlp.b_in[n] = -1.5
                mlp.W_out[n, tasks[t, x]] = 2.0 * strength
        m.readout.W[I_:V, I_:V] = torch.eye(V - I_, dtype=dt)
    return m, tasks


def planted_induction_model(d_vocab: int = 32, max_pos: int = 32, *, n_heads: int = 2, strength: float = 60.0,
                            dtype: str = "float64", rng=0) -> Transformer:
    """Two-layer attention-only token model with a planted induction circuit (K-composition).

    * head ``(0, 0)`` is a previous-token head: it attends from position ``i`` to ``i - 1`` (positional q/k)
      and writes the token there into a "previous token" slot;
    * head ``(1, 0)`` is an induction head: its query is the current token, its key the previous-token slot
      (so it attends to the position right after an earlier occurrence of the current token), and it copies
      the token found there into the output slot that the read-out reads;
    * the other heads attend with random positional q/k and write into a junk slot the read-out ignores.

    Residual slots (``d_model = 3 V + max_pos + 2``): token one-hot, previous-token one-hot, output one-hot,
    position one-hot, constant 1, junk. No LayerNorm, so the scores are exactly those above (up to
    ``exp(-strength)``-small softmax leakage).
    """
    V, T = d_vocab, max_pos
    TOK, PREV, OUT, POS = 0, V, 2 * V, 3 * V
    ONE, JUNK = 3 * V + T, 3 * V + T + 1
    dm = 3 * V + T + 2
    dh = max(V, T) + 1
    cfg = TransformerConfig(
        n_layers=2, n_heads=n_heads, d_model=dm, d_head=dh, d_mlp=0, layernorm=False, causal=True,
        attention="softmax", max_pos=T, positional="learned", input_kind="tokens", d_vocab=V, dtype=dtype,
    )
    m = Transformer(cfg, rng=rng)
    g = torch_generator(rng)
    dt = cfg.torch_dtype
    eye_v, eye_t = torch.eye(V, dtype=dt), torch.eye(T, dtype=dt)
    c = strength * math.sqrt(dh)  # scores are divided by sqrt(d_head)
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
        m.W_E[:, TOK:TOK + V] = eye_v
        m.W_pos[:, POS:POS + T] = eye_t
        m.W_pos[:, ONE] = 1.0
        m.readout.W[OUT:OUT + V, :] = eye_v * 10.0
        a0, a1 = m.blocks[0].attn, m.blocks[1].attn
        # (0, 0): query at position i matches the key of position i - 1
        a0.W_Q[0, POS:POS + T, :T] = eye_t * c
        a0.W_K[0, POS:POS + T - 1, 1:T] = eye_t[:T - 1, :T - 1]
        a0.W_V[0, TOK:TOK + V, :V] = eye_v
        a0.W_O[0, :V, PREV:PREV + V] = eye_v
        # (1, 0): query = current token, key = previous-token slot; position 0 (no previous token) is pushed away
        a1.W_Q[0, TOK:TOK + V, :V] = eye_v * c
        a1.W_Q[0, ONE, V] = c
        a1.W_K[0, PREV:PREV + V, :V] = eye_v
        a1.W_K[0, POS, V] = -2.0
        a1.W_V[0, TOK:TOK + V, :V] = eye_v
        a1.W_O[0, :V, OUT:OUT + V] = eye_v
        for L, attn in enumerate((a0, a1)):
            for h in range(1, n_heads):
                attn.W_Q[h, POS:POS + T] = torch.randn(T, dh, generator=g, dtype=dt)
                attn.W_K[h, POS:POS + T] = torch.randn(T, dh, generator=g, dtype=dt)
                attn.W_V[h, POS:POS + T] = torch.randn(T, dh, generator=g, dtype=dt)
                attn.W_O[h, :, JUNK] = torch.randn(dh, generator=g, dtype=dt)
    return m
