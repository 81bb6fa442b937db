"""Shared helpers of the pretrained-LLM study tests: a byte tokenizer and a tiny parallel corpus."""

from __future__ import annotations

import numpy as np
import pytest


class ByteTokenizer:
    """UTF-8 bytes shifted by 3 (0 pad, 1 BOS, 2 EOS), for a tiny model with a vocabulary of 259."""

    bos_token_id = 1

    def encode(self, text, add_special_tokens=False):
        return [b + 3 for b in text.encode()]

    def decode(self, ids, skip_special_tokens=True):
        return bytes(i - 3 for i in ids if i >= 3).decode("utf-8", "ignore")


def toy_corpus_of(n=60):
    rng = np.random.default_rng(0)
    words = {"en": ["the", "cat", "and", "dog", "house", "green"], "fr": ["le", "chat", "et", "chien", "maison", "vert"],
             "de": ["der", "Katze", "und", "Hund", "Haus", "grün"]}
    idx = [rng.integers(0, 6, size=5) for _ in range(n)]
    texts = {c: [" ".join(w[i] for i in ix) for ix in idx] for c, w in words.items()}
    from spinlens.llm import multilingual as ML

    return ML.ParallelCorpus(("en", "fr", "de"), [str(i) for i in range(n)], texts, {"corpus": "synthetic"})


@pytest.fixture
def byte_tok():
    return ByteTokenizer()


@pytest.fixture
def toy_corpus():
    return toy_corpus_of()


@pytest.fixture(scope="session")
def char_tok():
    """A character-level Hugging Face tokenizer built offline, with the single-token answers of the
    general-ability suite (IOI names, factual-recall capitals) and the letters as added tokens."""
    import string

    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from spinlens.llm.ioi import NAMES
    from spinlens.llm.tuning import LETTER_WORDS

    chars = ["[UNK]"] + sorted(set(string.printable))
    t = Tokenizer(models.WordLevel({c: i for i, c in enumerate(chars)}, unk_token="[UNK]"))
    t.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tk = PreTrainedTokenizerFast(tokenizer_object=t, unk_token="[UNK]", pad_token="[UNK]")
    words = list(NAMES) + list(LETTER_WORDS)
    try:
        from spinlens.llm.recall import recall_task

        words += [a.strip() for a in recall_task(500, rng=0).answers]
    except ImportError:  # no countryinfo: the suite skips recall
        pass
    tk.add_tokens(sorted({" " + w for w in words}) + [" " + c for c in string.ascii_letters])
    return tk


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, char_tok):
    """A tiny random Llama saved as a Hugging Face folder with the character tokenizer (what `--model DIR`
    takes)."""
    from spinlens.interp.hf import tiny_hf

    d = tmp_path_factory.mktemp("tiny-llama")
    m = tiny_hf("llama", n_layers=2, n_heads=4, n_kv_heads=2, d_model=16, d_vocab=len(char_tok), max_pos=256, rng=0)
    m.hf.save_pretrained(str(d))
    char_tok.save_pretrained(str(d))
    return d
