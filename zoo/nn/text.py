"""Sentences to word indices and an LSTM sentence encoder, as the UvA language trackers use them.

Tokenisation follows the official code (QUVA-Lab/lang-tracker, after Hu et al.'s natural-language object
retrieval): split on runs of non-word characters keeping the separators, drop empty pieces, lower-case,
drop a final ``"."``, keep the first ``T = 20`` tokens and pad on the left with ``<pad>``. Separators
other than whitespace stay tokens as the split gives them (``"man, walking"`` -> ``man``, ``", "``,
``walking``), exactly as there.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from zoo.errors import DatasetError

log = logging.getLogger(__name__)

PAD, UNK = "<pad>", "<unk>"
SPLIT = re.compile(r"(\W+)")
MAX_TOKENS = 20


def tokenize(sentence: str) -> list[str]:
    """Tokens of ``sentence`` by the official rules (no truncation or padding)."""
    words = [w.lower() for w in SPLIT.split(sentence.strip()) if w.strip()]
    if words and words[-1] == ".":
        words = words[:-1]
    return words


class Vocabulary:
    """Word -> index with ``<pad>`` = 0 and ``<unk>`` = 1, built from training sentences."""

    def __init__(self, words: Iterable[str]) -> None:
        self.words = [PAD, UNK] + [w for w in words if w not in (PAD, UNK)]
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, sentences: Iterable[str], min_count: int = 1) -> Vocabulary:
        counts = Counter(t for s in sentences for t in tokenize(s))
        return cls(sorted(w for w, c in counts.items() if c >= min_count))

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, sentence: str, length: int = MAX_TOKENS, source: str = "sentence") -> list[int]:
        """Indices of the first ``length`` tokens, left-padded with ``<pad>``.

        An empty sentence is an error naming ``source``; a sentence of only unknown words is encoded as
        ``<unk>`` tokens (documented fallback: the network still gets its length) with a warning.
        """
        tokens = tokenize(sentence)
        if not tokens:
            raise DatasetError(f"{source}: empty sentence")
        ids = [self.index.get(t, self.index[UNK]) for t in tokens[:length]]
        if all(i == self.index[UNK] for i in ids):
            log.warning("%s: no word of %r is in the vocabulary", source, sentence[:80])
        return [self.index[PAD]] * (length - len(ids)) + ids

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(self.words[2:]))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocabulary:
        return cls(json.loads(Path(path).read_text()))


def word_vectors(
    vocab: Vocabulary, path: str | os.PathLike, binary: bool | None = None, seed: int = 0
) -> tuple[torch.Tensor, int]:
    """An embedding matrix for ``vocab`` from word2vec vectors (GoogleNews format, read with gensim) and
    the number of words found. Words not in the file get small random vectors; ``<pad>`` is zero."""
    from gensim.models import KeyedVectors

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: word vectors not found")
    binary = path.suffix == ".bin" if binary is None else binary
    kv = KeyedVectors.load_word2vec_format(str(path), binary=binary)
    rng = np.random.default_rng(seed)
    weights = rng.normal(0, 0.1, (len(vocab), kv.vector_size)).astype(np.float32)
    weights[0] = 0
    found = 0
    for i, word in enumerate(vocab.words[2:], 2):
        for candidate in (word, word.strip()):
            if candidate in kv.key_to_index:
                weights[i] = kv[candidate]
                found += 1
                break
    return torch.from_numpy(weights), found


def word_embedding(vocab_size: int, embed_dim: int, embeddings: torch.Tensor | None = None) -> nn.Embedding:
    """An embedding table (``<pad>`` = 0), initialised from ``embeddings`` (vocab_size, embed_dim) when given."""
    embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
    if embeddings is not None:
        if tuple(embeddings.shape) != (vocab_size, embed_dim):
            raise ValueError(f"embeddings {tuple(embeddings.shape)} do not fit ({vocab_size}, {embed_dim})")
        embed.weight.data.copy_(embeddings)
    return embed


def vocabulary_vectors(words: list[str], vectors_path: str | None, embed_dim: int
                       ) -> tuple[Vocabulary, torch.Tensor | None, int]:
    """The vocabulary of ``words``, its word2vec vectors from ``vectors_path`` (None without a file) and the
    embedding size (the file's, else ``embed_dim``)."""
    vocab = Vocabulary(words)
    if not vectors_path:
        return vocab, None, embed_dim
    embeddings, _ = word_vectors(vocab, vectors_path)
    return vocab, embeddings, embeddings.shape[1]


class SentenceEncoder(nn.Module):
    """Word embeddings and an LSTM; ``forward`` gives every hidden state and the last one, h_T."""

    def __init__(
        self, vocab_size: int, embed_dim: int = 300, hidden: int = 1000, embeddings: torch.Tensor | None = None
    ) -> None:
        super().__init__()
        self.embed = word_embedding(vocab_size, embed_dim, embeddings)
        self.lstm = nn.LSTM(embed_dim, hidden, batch_first=True)
        self.hidden = hidden

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) indices -> (B, T, hidden) states and (B, hidden) h_T (left padding: the last step is a word)."""
        states, _ = self.lstm(self.embed(tokens))
        return states, states[:, -1]
