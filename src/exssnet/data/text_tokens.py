"""Raw-text inputs for methods that train the encoder itself: word-piece ids and attention masks.

Where the supermask methods read cached frozen-encoder features, the language baselines (fine-tuning,
adapters, prompt tuning, ...) need the tokens. A task's inputs are then the tuple
(input_ids (N, L) long, attention_mask (N, L) long), L being the longest text of the split (at most
max_length); `concat_inputs` pads splits of different L with zeros (masked out).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch

from exssnet.data.text_features import DEFAULT_ENCODER, minilm_path
from exssnet.data.text_readers import TextExample
from exssnet.errors import ExssnetError


def hf_source(name: str) -> str:
    """The Hugging Face name or folder an encoder setting stands for ('minilm': the offline package)."""
    source = minilm_path() if name == DEFAULT_ENCODER else name
    if Path(source).is_dir():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder never needs the hub
    return source


def load_pretrained(auto_class: str, name: str, what: str) -> Any:
    """`transformers.<auto_class>.from_pretrained` of a Hugging Face name or folder, or a clear error naming `what`."""
    try:
        import transformers
    except ImportError:
        raise ExssnetError("language methods need `pip install transformers` (or run `make setup`)") from None
    source = hf_source(name)
    try:
        return getattr(transformers, auto_class).from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ExssnetError(f"cannot load {what} {source!r} (a Hugging Face name or a local folder): {exc}") from None


def load_tokenizer(name: str) -> Any:
    """The tokenizer of a Hugging Face encoder name or folder, or a clear error."""
    return load_pretrained("AutoTokenizer", name, "the tokenizer of")


def tokenize(tokenizer: Any, examples: Sequence[TextExample], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) of `examples` (text or text pairs), padded to the longest one."""
    texts = [text for text, _ in examples]
    pairs = [pair or "" for _, pair in examples] if any(pair is not None for _, pair in examples) else None
    if not texts:
        return torch.zeros(0, 1, dtype=torch.long), torch.zeros(0, 1, dtype=torch.long)
    tokens = tokenizer(texts, pairs, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    return tokens["input_ids"].long(), tokens["attention_mask"].long()
