"""Per-module fake quantization of tiny random Hugging Face models (offline), CLI, library cross-checks."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("transformers", reason="transformers is needed for the Hugging Face quantization tests")

from spinlens.cli.main import main  # noqa: E402
from spinlens.edit import hf_quantization as H  # noqa: E402
from spinlens.edit.quantization import fake_quantize  # noqa: E402
from spinlens.errors import InvalidParameterError  # noqa: E402
from spinlens.interp.hf import tiny_hf  # noqa: E402


@pytest.fixture(scope="module")
def gpt2():
    return tiny_hf("gpt2", n_layers=2, n_heads=4, d_model=32, d_vocab=50, rng=0).hf


@pytest.fixture(scope="module")
def llama():
    return tiny_hf("llama", n_layers=2, n_heads=4, d_model=32, d_vocab=50, rng=0).hf


def _rtn_reference(w_in_out, bits, g):
    """Brute-force asymmetric RTN with loops; ``w_in_out`` is (in, out), groups of g inputs per output."""
    w = np.asarray(w_in_out, dtype=np.float64)
    out = np.empty_like(w)
    L = 2**bits - 1
    for j in range(w.shape[1]):
        for s in range(0, w.shape[0], g):
            v = w[s:s + g, j]
            lo, hi = v.min(), v.max()
            step = (hi - lo) / L if hi > lo else 1.0
            out[s:s + g, j] = np.clip(np.round((v - lo) / step), 0, L) * step + lo
    return out


def test_module_discovery_and_components(gpt2, llama):
    mods = H.hf_weight_modules(gpt2)
    assert list(mods) == [f"L{i}.{p}" for i in range(2) for p in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")]
    assert mods["L1.mlp.c_fc"][0] == "transformer.h.1.mlp.c_fc" and mods["L1.mlp.c_fc"][1] == "mlp"
    lm = H.hf_weight_modules(llama)
    assert len(lm) == 14 and lm["L0.self_attn.q_proj"][1] == "attn" and lm["L1.mlp.down_proj"][1] == "mlp"
    assert H.hf_components(gpt2, "module")["L0.attn"] == ["L0.attn.c_attn", "L0.attn.c_proj"]
    sizes = H.hf_component_sizes(gpt2, "layer")
    # c_attn 32×96, c_proj 32×32, c_fc 32×128, mlp.c_proj 128×32
    assert sizes == {"L0": 3072 + 1024 + 4096 + 4096, "L1": 3072 + 1024 + 4096 + 4096}
    with pytest.raises(InvalidParameterError, match="granularity"):
        H.hf_components(gpt2, "head")


def test_quantize_hf_groups_along_inputs_and_touches_only_selected(gpt2, llama):
    q = H.quantize_hf(gpt2, {"L1.mlp.c_fc": 3}, group_size=8)
    before, after = dict(gpt2.named_parameters()), dict(q.named_parameters())
    for n, p in before.items():
        if n == "transformer.h.1.mlp.c_fc.weight":
            w = p.detach().numpy()  # Conv1D: (in, out)
            np.testing.assert_allclose(after[n].detach().numpy(), _rtn_reference(w, 3, 8), rtol=0, atol=1e-6)
        else:
            assert torch.equal(after[n], p), n
    # nn.Linear stores (out, in): the same reference on the transpose
    ql = H.quantize_hf(llama, {"L0.attn": 2}, granularity="module", group_size=16)
    w = llama.model.layers[0].self_attn.k_proj.weight.detach().numpy()
    np.testing.assert_allclose(ql.model.layers[0].self_attn.k_proj.weight.detach().numpy(),
                               _rtn_reference(w.T, 2, 16).T, rtol=0, atol=1e-6)
    assert torch.equal(ql.model.layers[0].mlp.up_proj.weight, llama.model.layers[0].mlp.up_proj.weight)
    with pytest.raises(InvalidParameterError, match="Unknown component"):
        H.quantize_hf(gpt2, {"L7.attn": 4}, granularity="module")


def test_sixteen_bits_lossless_and_error_grows_as_bits_fall(gpt2):
    ids = H.calibration_tokens(gpt2, 4, 16, rng=0)
    ref = H._logprobs(gpt2, ids)
    kls = []
    for b in (16, 8, 4, 3, 2):
        m = H.lm_metrics(H.quantize_hf(gpt2, {c: b for c in H.hf_components(gpt2)}), ids, ref)
        kls.append(m["kl"])
    assert kls[0] < 1e-9
    assert all(a < b for a, b in zip(kls, kls[1:])), kls


def test_int_zero_point_rtn():
    w = torch.randn(4, 64, generator=torch.Generator().manual_seed(0)).abs() + 0.1  # all-positive groups
    for b in (2, 4):
        q = fake_quantize(w, b, group_size=16, dim=-1, zero_point="int")
        for grp in range(4):
            v = w[0, 16 * grp:16 * grp + 16].double()
            s = float(torch.tensor(float(v.max()) / (2**b - 1), dtype=torch.float32))  # range widened to [0, max]
            expect = torch.clamp(torch.round(v / s), 0, 2**b - 1) * s
            torch.testing.assert_close(q[0, 16 * grp:16 * grp + 16].double(), expect, rtol=0, atol=1e-6)
    with pytest.raises(InvalidParameterError, match="zero_point"):
        fake_quantize(w, 4, zero_point="half")


def test_fisher_cost_predicts_measured_kl(gpt2):
    # two independent estimates of each module's sensitivity: ½ δᵀ F δ (one backward per sequence) and the
    # measured KL to the full-precision model (one forward per component and bit width)
    ids = H.calibration_tokens(gpt2, 8, 32, rng=0)
    meas = H.hf_cost_table(gpt2, ids, (2, 4, 8), method="measured", metric="kl")
    fish = H.hf_cost_table(gpt2, ids, (2, 4, 8), method="fisher")
    ratio = (fish / meas).values
    assert np.all((ratio > 0.6) & (ratio < 1.6)), ratio
    assert np.all(np.diff(meas.values, axis=1) < 0)  # each module: cost falls with bits


def test_hf_experiment_allocations(gpt2):
    ids = H.calibration_tokens(gpt2, 8, 16, rng=0)
    ds = H.hf_quantization_experiment(gpt2, ids[:4], ids[4:], budgets=(3.4,), uniform_bits=(3, 4), bits=(2, 3, 4, 8),
                                      granularity="module", n_random=1)
    sch = list(ds["scheme"].values)
    assert sch == ["fp32", "uniform", "uniform", "guided_measured", "random"]
    guided = json.loads(str(ds["bits_json"].values[3]))
    assert set(guided) == {"L0.attn", "L0.mlp", "L1.attn", "L1.mlp"}
    assert float(ds["average_bits"].values[3]) <= 3.4 + 1e-12
    assert float(ds["kl"].values[1]) > float(ds["kl"].values[2]) > 0  # uniform 3 bits worse than 4 bits


def test_cli_quantize_hf_model(tmp_path, capsys, gpt2):
    d = tmp_path / "tiny-gpt2"
    gpt2.save_pretrained(d)
    out = tmp_path / "q"
    args = ["quantize", "--model", str(d), "--budgets", "3.4", "--uniform-bits", "3", "4", "--bits", "2", "3", "4", "8",
            "--n-random", "1", "--n-seq", "2", "--seq-len", "16", "--no-progress"]
    assert main([*args, "--out", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["scheme"][:3] == ["fp32", "uniform", "uniform"] and len(res["kl"]) == 5
    assert "mse" not in res and res["loss"] != res["kl"]  # one number per quantity: no 'mse' copy of the KL
    for f in ("quantization.png", "quantization.pdf", "quantization.csv", "quantization.nc", "run.json"):
        assert (out / f).exists(), f
    saved = tmp_path / "q3.4"
    assert main(["quantize", "--model", str(d), "--budget", "3.4", "--bits", "2", "3", "4", "--uniform-bits", "4",
                 "--n-random", "1", "--n-seq", "2", "--seq-len", "16", "--no-progress", "--json",
                 "--save", str(saved)]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["average_bits"] <= 3.4 and set(res["bits"]) == set(H.hf_components(gpt2))
    # the saved model is the fake-quantized one: reload and compare one weight with quantize_hf
    q = H.load_hf_causal_lm(saved)
    ref = H.quantize_hf(gpt2, res["bits"], group_size=32)
    assert torch.equal(q.transformer.h[0].attn.c_attn.weight, ref.transformer.h[0].attn.c_attn.weight)
    assert not torch.equal(q.transformer.h[0].attn.c_attn.weight, gpt2.transformer.h[0].attn.c_attn.weight)
    ids = tmp_path / "ids.txt"
    ids.write_text(" ".join(str(i % 50) for i in range(200)))
    assert main([*args, "--granularity", "layer", "--importance", "fisher", "--calib-tokens", str(ids)]) == 0
    capsys.readouterr()
    ids.write_text("1 2 99 " * 20)
    assert main([*args, "--calib-tokens", str(ids)]) == 2  # id 99 outside the vocabulary of 50
    assert main([*args, "--granularity", "head"]) == 2
    assert "[0, 50)" in capsys.readouterr().err


def test_crosscheck_torchao(llama):
    pytest.importorskip("torchao", reason="torchao is an optional cross-check (pip install torchao)")
    ids = H.calibration_tokens(llama, 2, 16, rng=0)
    for b in (2, 4):
        r = H.torchao_crosscheck(llama, b, group_size=32, ids=ids)
        # torchao's asymmetric int quantization equals our RTN with an integer zero point, level for level
        assert r["frac_same_level"] == 1.0 and r["max_step_diff"] < 1e-3, r
        assert r["max_logit_diff"] < 1e-5


def test_crosscheck_hqq(gpt2):
    pytest.importorskip("hqq", reason="HQQ is an optional cross-check (pip install hqq)")
    ids = H.calibration_tokens(gpt2, 2, 16, rng=0)
    r = H.hqq_crosscheck(gpt2, 3, group_size=32, ids=ids)
    assert r["frac_same_level"] == 1.0 and r["max_logit_diff"] < 1e-5, r  # HQQ without optimisation = our RTN
    r = H.hqq_crosscheck(gpt2, 3, group_size=32, optimize=True)
    assert r["rel_error_library"] < r["rel_error_ours"]  # its half-quadratic solver lowers the weight error


def test_calibration_from_text_with_saved_tokenizer(tmp_path, gpt2):
    tokenizers = pytest.importorskip("tokenizers")
    from transformers import PreTrainedTokenizerFast

    gpt2.save_pretrained(tmp_path)
    vocab = {f"w{i}": i for i in range(49)} | {"[UNK]": 49}
    tk = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]").save_pretrained(tmp_path)
    m = H.load_hf_causal_lm(tmp_path)
    ids = H.calibration_tokens(m, 2, 8, text=" ".join(f"w{i % 49}" for i in range(20)) + " unknown")
    assert ids.tolist() == [list(range(8)), list(range(8, 16))]  # rows cut from the token stream in order
    (tmp_path / "text.txt").write_text(" ".join(f"w{(7 * i) % 49}" for i in range(100)))
    assert main(["quantize", "--model", str(tmp_path), "--calib-text", str(tmp_path / "text.txt"), "--budgets", "3",
                 "--bits", "2", "4", "--uniform-bits", "4", "--n-random", "1", "--n-seq", "2", "--seq-len", "16",
                 "--no-progress"]) == 0
    with pytest.raises(InvalidParameterError, match="tokenizer"):
        H.calibration_tokens(gpt2, 2, 8, text="w1 w2")  # the in-memory model has no saved tokenizer


# ----------------------------------------------------------------------------- honest bit counting


def test_bit_accounting_counts_every_parameter_and_the_group_overhead(llama):
    comps = H.hf_component_sizes(llama)
    alloc = {c: (3 if i % 2 else 4) for i, c in enumerate(comps)}
    acc = H.bit_accounting(llama, alloc, group_size=32)
    total = sum(p.numel() for p in llama.parameters())  # parameters() lists a tied tensor once
    assert acc["total_params"] == total
    assert acc["quantized_params"] == sum(comps.values())
    assert acc["quantized_params"] + sum(acc["left_out"].values()) == total
    # brute force: bits of each weight + 32 bits per group of 32 inputs (d_model 32 → one group per row)
    mods = H.hf_weight_modules(llama)
    bits = sum(m.weight.numel() * alloc[n] + 32 * m.weight.shape[0] * -(-m.weight.shape[1] // 32)
               for n, (_, _, m) in mods.items())
    assert acc["effective_bits"] == pytest.approx(bits / acc["quantized_params"])
    assert acc["average_bits"] == pytest.approx(sum(comps[c] * b for c, b in alloc.items()) / sum(comps.values()))
    # a group of 48 over an input of 32 is the whole row (per channel); over an input of 64, two groups
    per_ch = H.bit_accounting(llama, {c: 4 for c in comps}, group_size=48)
    groups = sum(m.weight.shape[0] * (1 if m.weight.shape[1] <= 48 else -(-m.weight.shape[1] // 48))
                 for _, _, m in mods.values())
    assert {m.weight.shape[1] for _, _, m in mods.values()} == {32, 64}
    assert per_ch["effective_bits"] == pytest.approx(4 + 32 * groups / per_ch["quantized_params"])


def test_embedding_component_quantizes_the_tied_lm_head(llama):
    m = tiny_hf("llama", n_layers=1, n_heads=4, d_model=32, d_vocab=64, rng=1).hf
    m.config.tie_word_embeddings = True
    m.tie_weights()
    assert m.get_output_embeddings().weight is m.get_input_embeddings().weight
    comps = H.hf_components(m, "module", include_embedding=True)
    assert comps["E.embed_tokens"] == ["E.embed_tokens"] and "E.lm_head" not in comps
    q = H.quantize_hf(m, {"E.embed_tokens": 2})
    w = q.get_input_embeddings().weight
    assert q.get_output_embeddings().weight is w  # still tied
    assert not torch.equal(w, m.get_input_embeddings().weight)
    # 2 bits, groups along d_model: at most 4 levels per (row, group)
    assert all(len(torch.unique(r)) <= 4 for r in w.detach())
    acc = H.bit_accounting(m, {"E.embed_tokens": 2})
    assert "model.embed_tokens.weight" not in acc["left_out"] and "lm_head.weight" not in acc["left_out"]


def test_experiment_restores_the_model_and_reports_extra_metrics(llama):
    before = {n: p.detach().clone() for n, p in llama.named_parameters()}
    ids = H.calibration_tokens(llama, 4, 8, rng=0)
    seen = []
    ds = H.hf_quantization_experiment(llama, ids[:2], ids[2:], budgets=(3.4,), uniform_bits=(3, 4), bits=(2, 3, 4, 8),
                                      importance="fisher", group_size=48, n_random=2, rng=0,
                                      evaluate=lambda m: {"probe": float(m.lm_head.weight.detach().sum())},
                                      on_model=lambda s, i, m, b: seen.append((s, i)))
    for n, p in llama.named_parameters():
        assert torch.equal(p, before[n]), n
    assert seen == [("uniform", 0), ("uniform", 1), ("guided_fisher", 0), ("random", 0), ("random", 1)]
    assert "probe" in ds and "rel_weight_error" in ds
    err = ds["rel_weight_error"].values
    assert err[0] == 0 and err[1] > err[2] > 0  # uniform 3 loses more than uniform 4
    eff = ds["effective_bits"].values[1:]
    assert np.all(eff > ds["average_bits"].values[1:])


def test_library_quantized_anchor_is_a_plain_float_model(llama):
    pytest.importorskip("hqq")
    m = H.library_quantized(llama, "hqq-rtn", 4, group_size=16)
    ref = H.quantize_hf(llama, {c: 4 for c in H.hf_components(llama)}, group_size=16)
    for n, (_, _, mod) in H.hf_weight_modules(m).items():
        assert type(mod.weight.data) is torch.Tensor
        w = H.hf_weight_modules(ref)[n][2].weight
        assert torch.allclose(mod.weight.detach(), w.detach(), atol=1e-2 * float(w.detach().abs().max()))
