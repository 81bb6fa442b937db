"""spinlens.llm.tuning / general and the HF component slices: on tiny random Llama models and a character-level
tokenizer built offline (the real SmolLM2 runs live in benchmarks/llm_precise_tuning.py)."""

import numpy as np
import pytest

pytest.importorskip("transformers")

import torch  # noqa: E402

from spinlens.edit.components import component_masks, component_slices  # noqa: E402
from spinlens.errors import InvalidParameterError  # noqa: E402
from spinlens.interp.hf import tiny_hf  # noqa: E402
from spinlens.llm import tuning as T  # noqa: E402
from spinlens.llm.general import TASKS, build_suite, general_ability, heldout_ids  # noqa: E402


@pytest.fixture(scope="module")
def tok(char_tok):
    return char_tok


@pytest.fixture(scope="module")
def model(tok):
    return tiny_hf("llama", n_layers=2, n_heads=4, n_kv_heads=2, d_model=16, d_vocab=len(tok), max_pos=256, rng=0)


@pytest.fixture(scope="module")
def suite(tok):
    return build_suite(tok, n_seq=2, seq_len=16, n_prompts=4)


def _logits(m, ids, hooks=()):
    with torch.no_grad():
        return m.run_with_hooks(ids, fwd_hooks=list(hooks)) if hooks else m(ids)


@pytest.mark.parametrize("head", [0, 1, 3])
def test_head_slices_address_that_head(model, head):
    """Zeroing a head's q rows / kv-group k rows / o columns equals zeroing its hook_q / hook_k / hook_z."""
    ids = torch.randint(0, model.cfg.d_vocab, (2, 7), generator=torch.Generator().manual_seed(1))
    group = head // (model.cfg.n_heads // model.cfg.n_kv_heads)
    sl = {s.param.split(".")[-2]: s for s in component_slices(model, f"L1H{head}", weights_only=True)}
    assert set(sl) == {"q_proj", "k_proj", "v_proj", "o_proj"}
    for proj, hook, idx in (("q_proj", "hook_q", head), ("k_proj", "hook_k", group), ("o_proj", "hook_z", head)):
        m = model.clone()
        with torch.no_grad():
            sl[proj].select(dict(m.named_parameters())[sl[proj].param]).zero_()
        got = _logits(m, ids)

        def zero(act, hook=None, idx=idx):
            act = act.clone()
            act[:, :, idx] = 0
            return act

        want = _logits(model, ids, [(f"blocks.1.attn.{hook}", zero)])
        assert torch.allclose(got, want, atol=1e-5), proj
        assert not torch.allclose(got, _logits(model, ids), atol=1e-5)


def test_neuron_and_mlp_slices(model):
    ids = torch.randint(0, model.cfg.d_vocab, (2, 5), generator=torch.Generator().manual_seed(2))
    m = model.clone()
    with torch.no_grad():
        for s in component_slices(m, "L0N3", weights_only=True):
            if s.param.endswith("down_proj.weight"):
                s.select(dict(m.named_parameters())[s.param]).zero_()

    def zero(act, hook=None):
        act = act.clone()
        act[..., 3] = 0
        return act

    assert torch.allclose(_logits(m, ids), _logits(model, ids, [("blocks.0.mlp.hook_post", zero)]), atol=1e-5)
    masks = component_masks(model, ["L1.mlp"])
    assert set(masks) == {n for n, _ in model.named_parameters() if n.startswith("hf.model.layers.1.mlp.")}


def test_masked_training_changes_only_the_mask(model):
    from spinlens.edit.pinpoint import masked_finetune

    m = model.clone()
    masks = component_masks(m, ["L0H2", "L1.mlp"])
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    ids = torch.randint(0, model.cfg.d_vocab, (4, 6), generator=torch.Generator().manual_seed(3))
    seen = []

    def loss(mm, step):
        lg = mm(ids[:, :-1])
        return torch.nn.functional.cross_entropy(lg.reshape(-1, lg.shape[-1]), ids[:, 1:].reshape(-1))

    masked_finetune(m, masks, loss, steps=3, lr=1e-2, on_step=lambda mm, s: seen.append(s))
    assert seen == [1, 2, 3]
    for n, p in m.named_parameters():
        diff = p.detach() != before[n]
        if n in masks:
            assert not diff[~masks[n]].any() and diff[masks[n]].any(), n
        else:
            assert not diff.any(), n
    for n, p in model.named_parameters():  # the base is untouched by clone + training
        assert torch.equal(p, dict(model.named_parameters())[n])


def test_encode_and_accuracy_match_greedy_decoding(model, tok):
    pairs = [("12 + 3 =", " 15"), ("4 + 4 =", " 8"), ("7 + 10 =", " 17")]
    enc = T.encode_pairs(pairs, tok)
    p0, a0 = tok(pairs[1][0])["input_ids"], tok(pairs[1][1], add_special_tokens=False)["input_ids"]
    assert enc.ids[1, :len(p0) + len(a0)].tolist() == p0 + a0 and int(enc.end[1]) == len(p0) + len(a0) - 1
    assert enc.target[1].tolist() == [-100] * (len(p0) - 1) + a0 + [-100] * (enc.ids.shape[1] - len(p0) - len(a0) + 1)
    # rows whose answers are the model's own greedy continuations: accuracy 1; one answer token changed: 2/3
    greedy = enc.ids.clone()
    for i in range(len(pairs)):
        for t in range(enc.ids.shape[1]):
            if enc.target[i, t] >= 0:
                greedy[i, t + 1] = model(greedy[i:i + 1, :t + 1])[0, -1].argmax()
    g = T.EncodedPairs(greedy, torch.where(enc.target >= 0, greedy.roll(-1, 1), enc.target), enc.end)
    assert T.answer_accuracy(model, g) == 1.0
    bad = g.target.clone()
    j = int((bad[2] >= 0).nonzero()[-1])
    bad[2, j] = (bad[2, j] + 1) % model.cfg.d_vocab
    assert T.answer_accuracy(model, T.EncodedPairs(greedy, bad, enc.end)) == pytest.approx(2 / 3)
    # answer loss = plain cross-entropy of the answer tokens, averaged over answer tokens
    lg = model(enc.ids).detach()
    want = np.mean([float(torch.nn.functional.cross_entropy(lg[i, t:t + 1], enc.ids[i, t + 1:t + 2]))
                    for i in range(len(pairs)) for t in range(enc.ids.shape[1]) if enc.target[i, t] >= 0])
    assert float(T.answer_loss(model, enc).detach()) == pytest.approx(want, rel=1e-5)


def test_general_ability_against_plain_transformers(model, suite):
    got = general_ability(model, suite=suite)
    assert set(got) == set(suite.keys)
    # every task is built or skipped with a reason
    assert set(suite.tasks) | set(suite.skipped) == set(TASKS)
    assert {"ioi_logit_diff", "arithmetic_logit_diff", "ioi_accuracy"} <= set(got)
    w = suite.text
    with torch.no_grad():
        lg = model.hf(input_ids=w[:, :-1]).logits
    ce = torch.nn.functional.cross_entropy(lg.reshape(-1, lg.shape[-1]), w[:, 1:].reshape(-1))
    assert got["heldout_loss"] == pytest.approx(float(ce), rel=1e-5)
    assert got["perplexity"] == pytest.approx(np.exp(float(ce)), rel=1e-5)
    for name in ("ioi", "arithmetic"):  # accuracy and logit difference by hand, prompt by prompt
        hits, diffs = [], []
        for b in suite.tasks[name].batches:
            with torch.no_grad():
                last = model.hf(input_ids=b.clean).logits[:, -1]
            hits += (last.argmax(-1) == b.answer).tolist()
            diffs += (last.gather(1, b.answer[:, None]) - last.gather(1, b.wrong[:, None]))[:, 0].tolist()
        assert got[f"{name}_accuracy"] == pytest.approx(np.mean(hits))
        assert got[f"{name}_logit_diff"] == pytest.approx(np.mean(diffs), rel=1e-4, abs=1e-6)
    assert general_ability(model, suite=suite, text=False).keys() == set(got) - {"perplexity", "heldout_loss"}


def test_heldout_rows_are_disjoint_halves(tok):
    calib, ev = heldout_ids(tok, n_seq=4, seq_len=32, part="calib"), heldout_ids(tok, n_seq=4, seq_len=32)
    assert calib.shape == ev.shape == (4, 32)
    assert not any(torch.equal(a, b) for a in calib for b in ev)
    with pytest.raises(InvalidParameterError, match="n_seq"):
        heldout_ids(tok, n_seq=10**7, seq_len=32)
    with pytest.raises(InvalidParameterError, match="tasks"):
        build_suite(tok, tasks=("ioi", "poetry"))


def test_matched_costs_interpolate_at_first_crossing():
    rows = []
    for seed, (gains, costs) in enumerate([([0, 0.2, 0.6], [0, 0.1, 0.5]), ([0, 0.4, 0.8], [0, 0.4, 0.6])]):
        rows += [{"method": "a", "seed": seed, "step": i, "g": g, "c": c} for i, (g, c) in enumerate(zip(gains, costs))]
    rows += [{"method": "b", "seed": 0, "step": i, "g": g, "c": c}
             for i, (g, c) in enumerate(zip([0, 0.5, 0.4], [0, 1.0, 2.0]))]
    out = T.matched_costs(rows, gain_key="g", cost_keys=["c"], fractions=(0.5, 1.0))
    # best gains: a (0.6+0.8)/2 = 0.7, b 0.5 -> top 0.5, levels 0.25, 0.5
    assert out["levels"] == pytest.approx([0.25, 0.5])
    a = out["costs"]["a"]["c"]
    # seed 0 at 0.25: between (0.2,0.1),(0.6,0.5) -> 0.15; seed 1: (0,0),(0.4,0.4) -> 0.25
    assert a[0][0] == pytest.approx(0.2) and a[0][2] == 2
    # at 0.5: seed 0 -> 0.4; seed 1 -> 0.4 + 0.25*0.2 = 0.45
    assert a[1][0] == pytest.approx(0.425)
    assert out["costs"]["b"]["c"][1] == (pytest.approx(1.0), 0.0, 1)  # first crossing, not the later point


def test_random_heads_match_the_parameter_count(model):
    target = sum(int(m.sum()) for m in component_masks(model, ["L0H0", "L0H1", "L1H2"]).values())
    heads, n = T.random_heads_like(model, target, rng=0)
    assert abs(n - target) <= sum(int(m.sum()) for m in component_masks(model, ["L0H0"]).values())
    assert heads == T.random_heads_like(model, target, rng=0)[0]


def test_precise_tuning_end_to_end_and_saved_models(model, tok, suite, tmp_path):
    from transformers import AutoModelForCausalLM

    data = T.arithmetic_data(n_train=16, n_eval=4, digits=1, seed=0)
    methods = ("located", "random", "full") + (("lora",) if _has_peft() else ())
    res = T.precise_tuning(model, tok, data, methods=methods, seeds=(0, 1), steps=2, lr=1e-2, batch_size=4,
                           eval_every=1, k_heads=2, k_mlps=1, suite=suite, save_dir=tmp_path)
    assert set(res.final) == set(methods)
    assert {r["step"] for r in res.curves} == {0, 1, 2}
    assert len(res.curves) == len(methods) * 2 * 3
    assert all(r["d_perplexity"] == 0 and r["gain_heldout_numbers"] == 0 for r in res.curves if r["step"] == 0)
    assert res.n_trainable["full"] == sum(p.numel() for p in model.parameters())
    assert len(res.settings["located"]) == 3
    for m in methods:
        f = tmp_path / m / "seed1"
        assert (f / "run.json").is_file() and (f / "config.json").is_file()
    # a saved folder loads with transformers alone and reproduces the recorded metrics
    hf = AutoModelForCausalLM.from_pretrained(str(tmp_path / "full" / "seed1"))
    last = [r for r in res.curves if r["method"] == "full" and r["seed"] == 1 and r["step"] == 2][0]
    assert general_ability(hf, suite=suite)["perplexity"] == pytest.approx(last["perplexity"], rel=1e-4)


def _has_peft():
    try:
        import peft  # noqa: F401
    except ImportError:
        return False
    return True


def test_nothing_to_gain_is_refused_before_writing(model, tok, suite, tmp_path):
    prompts = ["1 + 2 =", "3 + 4 ="]
    pairs = []
    for p in prompts:
        ids = torch.tensor([tok(p)["input_ids"]])
        pairs.append((p, tok.decode([int(model(ids)[0, -1].argmax())])))
    data = T.SkillData("arithmetic", pairs, {"heldout_numbers": pairs}, primary="heldout_numbers")
    with pytest.raises(InvalidParameterError, match="nothing to gain"):
        T.precise_tuning(model, tok, data, methods=("full",), seeds=(0,), steps=1, suite=suite,
                         save_dir=tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_module_merge_takes_each_component_from_its_expert(model):
    from spinlens.edit.merging import module_merge

    base = {k: v.detach().clone() for k, v in model.hf.state_dict().items()}
    a, b = model.clone(), model.clone()
    for m, comp in ((a, "L0H1"), (b, "L1.mlp")):
        with torch.no_grad():
            for n, mk in component_masks(m, [comp]).items():
                dict(m.named_parameters())[n][mk] += 0.5
    merged, assign = module_merge(base, [a.hf, b.hf], layout=model)
    assert assign["L0H1"] == 0 and assign["L1.mlp"] == 1 and assign["L0H2"] == -1
    assert assign["L0H0"] == 0  # it shares L0H1's kv head (grouped-query attention)
    want = {k: v.clone() for k, v in base.items()}
    for m, comp in ((a, "L0H1"), (b, "L1.mlp")):
        for n, mk in component_masks(m, [comp]).items():
            k = n[len("hf."):]
            want[k][mk] = m.hf.state_dict()[k][mk]
    for k in base:
        assert torch.allclose(merged[k], want[k]), k


def test_merge_experts_refuses_another_architecture(model, tok):
    other = tiny_hf("llama", n_layers=3, n_heads=4, n_kv_heads=2, d_model=16, d_vocab=len(tok), max_pos=256, rng=0)
    with pytest.raises(InvalidParameterError, match="another architecture"):
        T.merge_experts(model, [model.clone().hf, other.hf], tok)


def test_merge_experts_measures_kept_gain(model, tok, suite):
    data = T.arithmetic_data(n_train=8, n_eval=4, digits=1, seed=0)
    a = model.clone()
    res = T.merge_experts(model, [a.hf, model.clone().hf], tok, methods=("task_arithmetic", "module"),
                          skills=[data, None], suite=suite)
    # identical experts: every merge is the base; kept is NaN (no gain to keep)
    base = res["base"]
    for m in ("task_arithmetic", "module"):
        assert res["methods"][m]["perplexity"] == pytest.approx(base["perplexity"], rel=1e-6)
        assert np.isnan(res["methods"][m]["kept_0"])
