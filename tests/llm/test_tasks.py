"""spinlens.llm.tasks: text tasks → aligned token batches (a word-level tokenizer built offline)."""

import pytest

pytest.importorskip("transformers")

from spinlens.errors import InvalidParameterError  # noqa: E402
from spinlens.llm.tasks import TextTask, tokenize_task  # noqa: E402


@pytest.fixture(scope="module")
def tok():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["[UNK]", "When", "Mary", "John", "went", "to", "the", "store", ",", "gave", "a", "drink", "Anna", "big"]
    t = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    t.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=t, unk_token="[UNK]")


def test_groups_by_length_and_aligns_pairs(tok):
    task = TextTask("ioi", ["When Mary John went", "When Mary John went to the store", "When Anna John went"],
                    ["Mary", "Mary", "Anna"], corrupt_prompts=["When Anna big went", "When Anna big went to the store",
                                                               "When Mary big went"],
                    wrong_answers=["John", "John", "John"], meta={"template": [0, 1, 0]})
    tt = tokenize_task(task, tok)
    assert [len(b) for b in tt.batches] == [2, 1] and tt.dropped == {}
    b = tt.batches[0]
    assert b.clean.shape == b.corrupt.shape == (2, 4)
    assert b.index.tolist() == [0, 2] and b.answer.tolist() == [2, 12] and b.wrong.tolist() == [3, 3]
    assert tt.kept == [0, 1, 2]


def test_misaligned_pairs_dropped_or_refused(tok):
    task = TextTask("t", ["When Mary went", "When John went"], ["Mary", "John"],
                    corrupt_prompts=["When Mary big went", "When Anna went"])
    tt = tokenize_task(task, tok)
    assert list(tt.dropped) == [0] and "tokenize to 3 and 4" in tt.dropped[0] and tt.n_prompts == 1
    with pytest.raises(InvalidParameterError, match="prompt 0"):
        tokenize_task(task, tok, on_bad="raise")


def test_multi_token_answers_and_empty(tok):
    task = TextTask("t", ["When Mary went"], ["Mary John"])
    with pytest.raises(InvalidParameterError, match="no usable prompt.*2 tokens"):
        tokenize_task(task, tok)
    assert tokenize_task(task, tok, single_token=False).n_prompts == 1
    with pytest.raises(InvalidParameterError, match="no prompts"):
        TextTask("t", [], [])
    with pytest.raises(InvalidParameterError, match="answers has 1 entries for 2"):
        TextTask("t", ["a", "b"], ["x"])
    sub = TextTask("t", ["a", "b"], ["x", "y"], meta={"k": [1, 2]}).subset([1])
    assert sub.prompts == ["b"] and sub.meta == {"k": [2]}
