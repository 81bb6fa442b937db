"""A byte-level BPE tokenizer trained on the corpus with Hugging Face ``tokenizers``, saved with the model.

The tokenizer lives in the model folder as ``tokenizer.json`` (the library's own format), next to
``model.safetensors`` and ``config.json``.
"""

from __future__ import annotations

from pathlib import Path

from spinlens.errors import InvalidParameterError

TOKENIZER_FILE = "tokenizer.json"
SPECIAL = ("<|endoftext|>",)


def train_tokenizer(text: str, vocab_size: int = 2048, *, min_frequency: int = 2):
    """Train a byte-level BPE tokenizer with ``vocab_size`` tokens on ``text``.

    Byte-level: every string can be encoded (no unknown token); the 256 byte symbols are always in the
    vocabulary, so ``vocab_size`` must be at least 257 (bytes + ``<|endoftext|>``).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from spinlens.errors import check_int

    check_int("vocab_size", vocab_size, low=len(SPECIAL) + 256, high=1 << 20)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(SPECIAL),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    chunk = 1 << 16
    tok.train_from_iterator((text[i:i + chunk] for i in range(0, len(text), chunk)), trainer=trainer)
    return tok


def save_tokenizer(tok, folder) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / TOKENIZER_FILE
    from spinlens.io import atomic_path

    with atomic_path(path) as tmp:
        tok.save(str(tmp))
    return path


def load_tokenizer(folder):
    """The tokenizer saved in a model folder (one-line error when the folder has none)."""
    from tokenizers import Tokenizer

    path = Path(folder) / TOKENIZER_FILE
    if not path.is_file():
        raise InvalidParameterError(f"The 'checkpoint' parameter must be a language-model folder with {TOKENIZER_FILE} "
                                    f"(written by 'spinlens lm'). Got {str(folder)!r}, which has none.")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises its own Exception subclass
        raise InvalidParameterError(f"The 'checkpoint' parameter: cannot read {str(path)!r}: {str(exc).splitlines()[0]}") from None


def encode(tok, text: str):
    """Token ids of ``text`` as an int64 numpy array."""
    import numpy as np

    return np.asarray(tok.encode(text).ids, dtype=np.int64)
