"""Interpretability methods: planted-truth recovery and independent checks (hand-computed patches, closed forms)."""


import numpy as np
import pytest
import torch

from spinlens.errors import InvalidParameterError
from spinlens.interp import (
    activation_patch,
    attention_rollout,
    attribution_circuit,
    circuit_faithfulness,
    describe_units,
    edge_attribution,
    find_circuit,
    fit_tuned_lens,
    logit_diff_metric,
    logit_lens,
    path_patch,
    projection_metric,
    regression_metric,
    regression_pairs,
    task_quantities,
    token_icl_pairs,
)
from spinlens.interp.planted import planted_copy_model, planted_regression_model
from spinlens.models.transformer import Transformer, TransformerConfig

D, N, P = 4, 10, 64


@pytest.fixture(scope="module")
def reg():
    m = planted_regression_model(D, N)
    pr = regression_pairs(D, N, P, dtype=torch.float64, rng=0)
    with torch.no_grad():
        met = projection_metric(m(pr.clean), m(pr.corrupt))
    return m, pr, met


@pytest.fixture(scope="module")
def copy():
    m = planted_copy_model()
    g = torch.Generator().manual_seed(1)
    toks = torch.randint(0, 10, (48, 6), generator=g)
    cor = toks.clone()
    cor[:, 0] = (toks[:, 0] + torch.randint(1, 10, (48,), generator=g)) % 10
    return m, toks, cor, logit_diff_metric(toks[:, 0], cor[:, 0])


def _random_model(**kw):
    base = dict(n_layers=2, n_heads=3, d_model=12, d_mlp=16, d_in=D + 1, max_pos=N + 1, dtype="float64")
    base.update(kw)
    return Transformer(TransformerConfig(**base), rng=5)


# ----------------------------------------------------------------------------- planted model itself
def test_planted_regression_computes_gd_step():
    m = planted_regression_model(D, N, distractors=False)
    pr = regression_pairs(D, N, 32, dtype=torch.float64, rng=1)
    gd = task_quantities(pr.clean)["gd_estimate"]
    np.testing.assert_allclose(m(pr.clean).detach().numpy(), gd * N / (N + 1), rtol=1e-10, atol=1e-12)


def test_pairs():
    pr = regression_pairs(D, N, 16, rng=0)
    assert torch.equal(pr.clean[:, :D], pr.corrupt[:, :D])  # same inputs
    assert torch.all(pr.clean[:, D, -1] == 0) and torch.all(pr.corrupt[:, D, -1] == 0)
    assert not torch.allclose(pr.clean[:, D, :N], pr.corrupt[:, D, :N])
    tp = token_icl_pairs(32, n_pairs=3, n_inputs=8, n_labels=4, rng=0)
    seq = tp.clean.numpy()
    for i in range(32):
        src = int(tp.query_source[i])
        assert seq[i, src - 1] == seq[i, -1] and seq[i, src] == int(tp.answer[i])
        assert tp.corrupt[i, src] == tp.corrupt_answer[i] != tp.answer[i]
        assert (tp.corrupt[i] != tp.clean[i]).sum() == 1


# ----------------------------------------------------------------------------- activation patching
def test_activation_patching_planted(reg, copy):
    m, pr, met = reg
    s = activation_patch(m, pr.clean, pr.corrupt, metric=met).scores
    np.testing.assert_allclose(s.values, [[1, 0], [0, 1]], atol=1e-9)
    sp = activation_patch(m, pr.clean, pr.corrupt, metric=met, per_position=True).scores
    expect = np.zeros(N + 1)
    expect[-1] = 1.0  # (1,1) reads s1 only at the query: only the query position of (0,0) matters
    np.testing.assert_allclose(sp.sel(layer=0, head=0).values, expect, atol=1e-9)
    assert sp.dims == ("layer", "head", "pos")
    cm, toks, cor, lmet = copy
    sc = activation_patch(cm, toks, cor, metric=lmet).scores.values
    np.testing.assert_allclose(sc, [[0, 0], [0, 1]], atol=1e-9)
    # noising direction: corrupting the planted head destroys the behaviour fully
    sn = activation_patch(cm, toks, cor, metric=lmet, direction="noise").scores.values
    assert sn[1, 1] == pytest.approx(1.0, abs=1e-9) and abs(sn[0, 0]) < 1e-9


def test_activation_patching_matches_hand_patch():
    """Batched patching equals one hand-written hook per head on a random LN+MLP softmax model."""
    m = _random_model()
    pr = regression_pairs(D, N, 16, dtype=torch.float64, rng=2)
    with torch.no_grad():
        y_clean = m(pr.clean)
    met = regression_metric(y_clean)
    res = activation_patch(m, pr.clean, pr.corrupt, metric=met, max_batch=40)  # forces several chunks
    _, cc = m.run_with_cache(pr.clean)
    with torch.no_grad():
        m_b = float(met(m(pr.corrupt)).mean())
    for L in range(2):
        for h in range(3):
            def hook(z, hook, h=h, L=L):
                z = z.clone()
                z[:, :, h] = cc[f"blocks.{L}.attn.hook_z"][:, :, h]
                return z

            with torch.no_grad():
                out = m.run_with_hooks(pr.corrupt, fwd_hooks=[(f"blocks.{L}.attn.hook_z", hook)])
            expect = (float(met(out).mean()) - m_b) / (0.0 - m_b)
            assert res.scores.values[L, h] == pytest.approx(expect, rel=1e-9, abs=1e-12)
    # layer components: patching the whole last residual stream restores the clean output exactly
    r2 = activation_patch(m, pr.clean, pr.corrupt, metric=met, component="resid_post")
    assert r2.scores.dims == ("layer",) and r2.scores.values[-1] == pytest.approx(1.0)


# ----------------------------------------------------------------------------- path patching
def test_path_patching_planted(reg):
    m, pr, met = reg
    out = path_patch(m, pr.clean, pr.corrupt, metric=met, receivers="output").scores.values
    np.testing.assert_allclose(out, [[0, 0], [0, 1]], atol=1e-9)
    for inp, expect in (("q", 0.0), ("k", 0.0), ("v", 1.0)):
        s = path_patch(m, pr.clean, pr.corrupt, metric=met, receivers=[(1, 1)], receiver_input=inp).scores.values
        assert s[0, 0] == pytest.approx(expect, abs=1e-9) and abs(s[0, 1]) < 1e-9
        assert np.all(np.isnan(s[1]))


def test_path_patching_direct_effect_closed_form():
    """Linear attention, no LN/MLP: the path to the output of head S is ΔresultS(query)·W_readout (by hand)."""
    m = _random_model(n_layers=3, d_mlp=0, layernorm=False, attention="linear")
    pr = regression_pairs(D, N, 32, dtype=torch.float64, rng=3)
    with torch.no_grad():
        yc, yk = m(pr.clean), m(pr.corrupt)
    met = projection_metric(yc, yk)
    s = path_patch(m, pr.clean, pr.corrupt, metric=met).scores.values
    _, cc = m.run_with_cache(pr.clean)
    _, ck = m.run_with_cache(pr.corrupt)
    w = m.readout.W[:, 0].detach()
    denom = float(((yc - yk) ** 2).mean())
    for L in range(3):
        dres = cc[f"blocks.{L}.attn.hook_result"][:, -1] - ck[f"blocks.{L}.attn.hook_result"][:, -1]  # [b, h, d]
        dy = dres @ w  # [b, h]
        expect = ((dy * (yc - yk)[:, None]).mean(0) / denom).numpy()
        np.testing.assert_allclose(s[L], expect, rtol=1e-8, atol=1e-10)
    # attribution patching is exact for the output edges of this linear model
    ea = edge_attribution(m, pr.clean, pr.corrupt, metric=met)
    np.testing.assert_allclose(ea.output.values, s, rtol=1e-8, atol=1e-10)
    # ... and for value edges into the last layer (q/k edges are second order here)
    for h in range(3):
        ex = path_patch(m, pr.clean, pr.corrupt, metric=met, receivers=[(2, h)], receiver_input="v").scores.values
        np.testing.assert_allclose(ea.edges.sel(receiver_layer=2, receiver_head=h, receiver_input="v").values[:2], ex[:2],
                                   rtol=1e-7, atol=1e-9)


def test_find_circuit_and_faithfulness(reg, copy):
    m, pr, met = reg
    c = find_circuit(m, pr.clean, pr.corrupt, metric=met, threshold=0.1)
    assert c.nodes == ((0, 0), (1, 1))
    assert {(e[0], e[1], e[2]) for e in c.edges} == {((1, 1), "output", "out"), ((0, 0), (1, 1), "v")}
    assert circuit_faithfulness(m, pr.clean, pr.corrupt, c.nodes, metric=met) == pytest.approx(1.0)
    assert circuit_faithfulness(m, pr.clean, pr.corrupt, [], metric=met) == pytest.approx(0.0, abs=1e-9)
    assert circuit_faithfulness(m, pr.clean, pr.corrupt, [(1, 1)], metric=met) == pytest.approx(0.0, abs=1e-9)
    cm, toks, cor, lmet = copy
    assert find_circuit(cm, toks, cor, metric=lmet).nodes == ((1, 1),)


def test_attribution_circuit_planted(reg):
    m, pr, met = reg
    ac = attribution_circuit(m, pr.clean, pr.corrupt, metric=met, threshold=0.1)
    assert ac.circuit.nodes == ((0, 0), (1, 1))
    e = ac.attribution.edges
    assert e.sel(receiver_layer=1, receiver_head=1, receiver_input="v", sender_layer=0, sender_head=0) == pytest.approx(1.0)
    assert abs(float(e.sel(receiver_layer=1, receiver_head=1, receiver_input="q", sender_layer=0, sender_head=0))) < 1e-9
    assert ac.faithfulness == pytest.approx(1.0) and ac.faithfulness_empty == pytest.approx(0.0, abs=1e-9)


# ----------------------------------------------------------------------------- lens
def test_logit_lens_planted(reg, copy):
    m, pr, _ = reg
    res = logit_lens(m, pr.clean, target=pr.y)
    st = list(res.summary.coords["stage"].values)
    assert st == ["embed", "0.mid", "0.post", "1.mid", "1.post"]
    np.testing.assert_allclose(res.decoded.sel(stage="1.post").values, m(pr.clean).detach().numpy(), rtol=1e-12)
    c = res.summary["corr_to_final"].values
    assert np.all(np.abs(c[:3]) < 1e-9) and c[3] == pytest.approx(1.0)  # the answer appears at layer 1's attention
    cm, toks, _, _ = copy
    rc = logit_lens(cm, toks, target=toks[:, 0])
    rank = rc.summary["rank"].values
    assert rank[-1] == 0 and rank[0] > 0.3


def test_tuned_lens_improves_fit():
    m = _random_model()
    pr = regression_pairs(D, N, 64, dtype=torch.float64, rng=4)
    plain = logit_lens(m, pr.clean).summary["mse_to_final"].values
    tl = fit_tuned_lens(m, pr.clean, steps=100, lr=0.02)
    tuned = logit_lens(m, pr.clean, tuned=tl).summary["mse_to_final"].values
    assert np.all(tuned[:-1] <= plain[:-1] + 1e-9) and tuned[0] < plain[0]
    assert all(p.requires_grad for p in m.parameters())


def test_tuned_lens_is_a_plain_module():
    # its map is forward(): nn.Module.apply (used by torch utilities on any parent module) is not shadowed
    from spinlens.interp.lens import TunedLens

    lens = TunedLens(3, 4, dtype=torch.float64)
    seen = []
    assert torch.nn.Sequential(lens).apply(seen.append) is not None and lens in seen
    res = torch.randn(3, 2, 4, dtype=torch.float64)
    assert torch.equal(lens(res), res)  # identity at initialisation
    with torch.no_grad():
        lens.b[1] = 1.0
    assert torch.equal(lens(res)[1], res[1] + 1.0) and torch.equal(lens(res)[0], res[0])


# ----------------------------------------------------------------------------- rollout
def test_rollout_closed_form_and_planted(copy):
    cm, toks, _, _ = copy
    res = attention_rollout(cm, toks, head=1)
    assert int(np.argmax(res.query_flow.sel(layer=1).values)) == 0  # the copy head reads position 0
    _, c = cm.run_with_cache(toks, names_filter="*hook_pattern")
    A0 = c["blocks.0.attn.hook_pattern"].mean(1).double()
    A1 = c["blocks.1.attn.hook_pattern"][:, 1].double()
    I = torch.eye(6, dtype=torch.float64)
    res_mean = attention_rollout(cm, toks)
    A1m = c["blocks.1.attn.hook_pattern"].mean(1).double()
    R = ((0.5 * I + 0.5 * A1m) @ (0.5 * I + 0.5 * A0)).mean(0)
    np.testing.assert_allclose(res_mean.rollout.sel(layer=1).values, R.numpy(), rtol=1e-12)
    np.testing.assert_allclose(res_mean.rollout.sum("key_pos").values, 1.0, rtol=1e-12)
    assert A1.shape == (48, 6, 6)


# ----------------------------------------------------------------------------- units
def test_describe_units_planted(reg):
    m, pr, _ = reg
    q = task_quantities(pr.clean, pr.y, pr.w)
    rep = describe_units(m, pr.clean, q)
    i = rep.units.index("L0.N3")
    assert rep.best_quantity[i] == "gd_estimate" and rep.best_r[i] > 0.75
    assert "tracks gd_estimate" in rep.describe("L0.N3")
    for u in ("L0.H0", "L1.H1"):
        j = rep.units.index(u)
        assert rep.best_quantity[j] == "gd_estimate" and rep.best_r[j] == pytest.approx(1.0, abs=1e-9)
    gd = rep.corr.sel(quantity="gd_estimate")
    others = [u for u in rep.units if u.startswith("L0.N") and u != "L0.N3"]
    assert np.all(np.abs(gd.sel(unit=others).values) < 0.5)
    # top prompts of the planted neuron are those with the largest GD estimate
    top = rep.top_prompts[i]
    assert np.all(q["gd_estimate"][top] >= np.quantile(q["gd_estimate"], 0.8))


def test_describe_units_categorical(copy):
    cm, toks, _, _ = copy
    first = toks[:, :1].expand(-1, 6).reshape(-1).numpy()
    pos = torch.arange(6).repeat(48).numpy()
    rep = describe_units(cm, toks, None, position=None, categorical={"first_token": first, "position": pos})
    assert rep.best_quantity[rep.units.index("L1.H1")] == "first_token"
    assert rep.best_r[rep.units.index("L1.H1")] > 0.99


# ----------------------------------------------------------------------------- bad input
def test_bad_input(reg):
    m, pr, met = reg
    with pytest.raises(InvalidParameterError, match="corrupt"):
        activation_patch(m, pr.clean, pr.corrupt[:3], metric=met)
    with pytest.raises(InvalidParameterError, match="component"):
        activation_patch(m, pr.clean, pr.corrupt, metric=met, component="banana")
    with pytest.raises(InvalidParameterError, match="metric"):
        activation_patch(m, pr.clean, pr.clean.clone(), metric=lambda o: o * 0)
    with pytest.raises(InvalidParameterError, match="sender"):
        path_patch(m, pr.clean, pr.corrupt, metric=met, receivers=[(1, 1)], senders=[(1, 0)])
    with pytest.raises(InvalidParameterError, match="receiver_input"):
        path_patch(m, pr.clean, pr.corrupt, metric=met, receivers=[(1, 1)], receiver_input="x")
    with pytest.raises(InvalidParameterError, match="residual_weight"):
        attention_rollout(m, pr.clean, residual_weight=2.0)


def test_run_variants_layer_skipping_is_exact():
    """Starting variants from the cached residual stream gives the same outputs as full forwards."""
    from spinlens.interp.patching import run_variants

    m = _random_model(n_layers=3)
    pr = regression_pairs(D, N, 8, dtype=torch.float64, rng=6)
    _, cc = m.run_with_cache(pr.clean, names_filter="*hook_z")
    variants = [[(f"blocks.{L}.attn.hook_z", (slice(None), h), cc[f"blocks.{L}.attn.hook_z"])] for L in (2, 0, 1) for h in range(3)]
    a, ra = run_variants(m, pr.corrupt, variants, record=["blocks.2.attn.hook_q"], max_batch=16)
    b, rb = run_variants(m, pr.corrupt, variants, record=["blocks.2.attn.hook_q"], skip_unpatched_layers=False)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ra["blocks.2.attn.hook_q"], rb["blocks.2.attn.hook_q"], rtol=1e-12, atol=1e-12)
    assert a.shape == (9, 8)


def test_path_patching_equals_residual_injection_with_ln_and_mlp():
    """With LayerNorm and MLPs: the path S → output equals adding S's clean-minus-corrupt result to the final
    residual stream (everything else frozen), and S → R's q equals adding it to R's own q input only."""
    m = _random_model(n_layers=3, split_qkv_input=True)
    pr = regression_pairs(D, N, 16, dtype=torch.float64, rng=7)
    with torch.no_grad():
        yc, yk = m(pr.clean), m(pr.corrupt)
        met = projection_metric(yc, yk)
        _, cc = m.run_with_cache(pr.clean, names_filter="*hook_result")
        _, ck = m.run_with_cache(pr.corrupt, names_filter="*hook_result")
    m_b, m_s = float(met(yk).mean()), float(met(yc).mean())
    s_out = path_patch(m, pr.clean, pr.corrupt, metric=met).scores.values
    s_q = path_patch(m, pr.clean, pr.corrupt, metric=met, receivers=[(2, 1)], receiver_input="q").scores.values
    for S in range(3):
        for h in range(3):
            delta = cc[f"blocks.{S}.attn.hook_result"][:, :, h] - ck[f"blocks.{S}.attn.hook_result"][:, :, h]
            with torch.no_grad():
                out = m.run_with_hooks(pr.corrupt, fwd_hooks=[("blocks.2.hook_resid_post", lambda r, hook, d=delta: r + d)])
            assert s_out[S, h] == pytest.approx((float(met(out).mean()) - m_b) / (m_s - m_b), rel=1e-8, abs=1e-10)
            if S < 2:
                def inject(x, hook, d=delta):
                    x = x.clone()
                    x[:, :, 1] += d
                    return x

                with torch.no_grad():
                    out = m.run_with_hooks(pr.corrupt, fwd_hooks=[("blocks.2.attn.hook_q_input", inject)])
                assert s_q[S, h] == pytest.approx((float(met(out).mean()) - m_b) / (m_s - m_b), rel=1e-8, abs=1e-10)
    assert np.abs(s_out).max() > 0.01 and np.abs(s_q[:2]).max() > 1e-4  # not trivially zero


def test_cache_positions_and_batches():
    from spinlens.interp import cache_in_batches

    m = _random_model()
    pr = regression_pairs(D, N, 10, dtype=torch.float64, rng=8)
    out, full = m.run_with_cache(pr.clean)
    _, last = m.run_with_cache(pr.clean, positions=-1, names_filter=["*hook_z", "*hook_pattern"])
    torch.testing.assert_close(last["blocks.1.attn.hook_z"], full["blocks.1.attn.hook_z"][:, [-1]])
    torch.testing.assert_close(last["blocks.0.attn.hook_pattern"], full["blocks.0.attn.hook_pattern"][:, :, [-1]])
    out2, c2 = cache_in_batches(m, pr.clean, names_filter="*resid_post", batch_size=3)
    torch.testing.assert_close(out2, out.detach())
    torch.testing.assert_close(c2["blocks.1.hook_resid_post"], full["blocks.1.hook_resid_post"])
    assert set(c2) == {"blocks.0.hook_resid_post", "blocks.1.hook_resid_post"}


def test_token_input_swap():
    tp = token_icl_pairs(64, n_pairs=3, n_inputs=8, n_labels=4, corruption="input_swap", rng=3)
    seq, cor = tp.clean.numpy(), tp.corrupt.numpy()
    for i in range(64):
        assert cor[i, -1] == seq[i, -1]  # same query token
        pos = [p for p in range(0, 6, 2) if cor[i, p] == cor[i, -1]][0]  # where the query now sits
        assert cor[i, pos + 1] == int(tp.corrupt_answer[i])
        assert sorted(cor[i, 0:6:2]) == sorted(seq[i, 0:6:2])  # inputs permuted, labels untouched
        assert np.array_equal(cor[i, 1:6:2], seq[i, 1:6:2])
    assert (tp.corrupt_answer != tp.answer).float().mean() > 0.7
    with pytest.raises(InvalidParameterError, match="corruption"):
        token_icl_pairs(4, corruption="shuffle")
