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
    """Word -> index with ``<pad>`` = 0, built from training sentences (``<unk>`` = 1) or given in full: a list that
    starts with ``<pad>`` and holds ``<unk>`` keeps its order (a released vocabulary such as the official
    ``vocabulary_referit.txt``: ``<pad>``, ``<go>``, ``<eos>``, ``<unk>``, then 8,799 words; ``from_file``)."""

    def __init__(self, words: Iterable[str]) -> None:
        words = list(words)
        if words[:1] == [PAD] and UNK in words:
            self.words = list(dict.fromkeys(words))
        else:
            self.words = [PAD, UNK] + [w for w in dict.fromkeys(words) if w not in (PAD, UNK)]
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> Vocabulary:
        """A vocabulary file as the official code reads it (``util/text_processing.load_vocab_dict_from_file``): one
        word a line, stripped, line ``n`` is index ``n - 1``; it must start with ``<pad>`` and hold ``<unk>``. A
        missing or empty file, a repeated word or a missing special is a DatasetError naming the file."""
        from datamodules.text import read_lines

        words = [w.strip() for w in read_lines(path)]
        while words and not words[-1]:
            words.pop()
        if not words:
            raise DatasetError(f"{path}: empty vocabulary file")
        seen: dict[str, int] = {}
        for n, w in enumerate(words, 1):
            if w in seen:
                raise DatasetError(f"{path}:{n}: {w!r} repeats line {seen[w]}")
            seen[w] = n
        if words[0] != PAD or UNK not in seen:
            raise DatasetError(f"{path}: a vocabulary file starts with {PAD} and holds {UNK} (the official "
                               f"vocabulary_referit.txt: {PAD} <go> <eos> {UNK} ...)")
        return cls(words)

    @classmethod
    def build(cls, sentences: Iterable[str], min_count: int = 1) -> Vocabulary:
        counts = Counter(t for s in sentences for t in tokenize(s))
        return cls(sorted(w for w, c in counts.items() if c >= min_count))

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, sentence: str, length: int = MAX_TOKENS, source: str = "sentence", warn: bool = True
               ) -> list[int]:
        """Indices of the first ``length`` tokens, left-padded with ``<pad>`` (``preprocess_sentence``).

        An empty sentence is an error naming ``source``; a sentence of only unknown words is encoded as
        ``<unk>`` tokens (as the official code does: the network still gets its length), with a warning if ``warn``.
        """
        tokens = tokenize(sentence)
        if not tokens:
            raise DatasetError(f"{source}: empty sentence")
        ids = [self.index.get(t, self.index[UNK]) for t in tokens[:length]]
        if warn and all(i == self.index[UNK] for i in ids):
            log.warning("%s: no word of %r is in the vocabulary", source, sentence[:80])
        return [self.index[PAD]] * (length - len(ids)) + ids

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(self.words))

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
    """Word embeddings and an LSTM; ``forward`` gives every hidden state and the last one, h_T.

    ``skip_padding``: the LSTM starts from a zero state at the first word, as Caffe's LSTM with the official ``cont``
    input (``util/text_processing.create_cont``: 0 up to and including the first word, which resets the state);
    else it runs over the left padding too."""

    def __init__(
        self, vocab_size: int, embed_dim: int = 300, hidden: int = 1000, embeddings: torch.Tensor | None = None,
        skip_padding: bool = False,
    ) -> None:
        super().__init__()
        self.embed = word_embedding(vocab_size, embed_dim, embeddings)
        self.lstm = nn.LSTM(embed_dim, hidden, batch_first=True)
        self.hidden, self.skip_padding = hidden, skip_padding

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) indices -> (B, T, hidden) states and (B, hidden) h_T (left padding: the last step is a word;
        with ``skip_padding`` the states of padding positions are 0)."""
        x = self.embed(tokens)
        if not self.skip_padding:
            states, _ = self.lstm(x)
            return states, states[:, -1]
        t = tokens.shape[1]
        lengths = (tokens != 0).sum(1).clamp(min=1)
        steps = torch.arange(t, device=tokens.device)[None]
        # left padding -> words first, through the LSTM only as far as each sentence goes, and back
        first = ((steps + (t - lengths)[:, None]) % t)[..., None]
        packed = nn.utils.rnn.pack_padded_sequence(x.gather(1, first.expand(-1, -1, x.shape[-1])), lengths.cpu(),
                                                   batch_first=True, enforce_sorted=False)
        out, (h_n, _) = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=t)
        back = ((steps - (t - lengths)[:, None]) % t)[..., None]
        return out.gather(1, back.expand(-1, -1, out.shape[-1])), h_n[-1]
