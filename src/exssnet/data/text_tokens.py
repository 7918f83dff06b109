"""Raw-text inputs for methods that train the encoder itself: word-piece ids and attention masks.

Where the supermask methods read cached frozen-encoder features, the language baselines (fine-tuning,
adapters, prompt tuning, ...) need the tokens. A task's inputs are then the tuple
(input_ids (N, L) long, attention_mask (N, L) long), L being the longest text of the split (at most
max_length); `concat_inputs` pads splits of different L with zeros (masked out).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from exssnet.data.text_models import load_pretrained
from exssnet.data.text_readers import TextExample

__all__ = ["load_pretrained", "load_tokenizer", "tokenize"]


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
