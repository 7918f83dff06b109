"""Settings that text benchmarks read from the run config (encoder, lengths, sampling, cache, order)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_TEXT_ROOT = Path("data/text")  # where `make setup-text` puts the offline stream's files


@dataclass
class TextOptions:
    """What a text benchmark builder needs besides the generic BenchmarkSpec fields."""

    encoder: str = "minilm"
    max_length: int = 64
    cache_dir: str | None = None  # default: <text data root>/cache
    max_train_per_class: int | None = None  # None: the benchmark's default
    max_test_per_class: int | None = None
    order: str | None = None  # task order preset (S1..S8) or comma-separated dataset names
    encode_batch_size: int = 64
    device: str = "cpu"
    inputs: str = "features"  # "features" (frozen encoder, cached) or "tokens" (ids + masks, for language methods)
    progress: bool = True  # one progress bar over feature encoding (the run's --quiet turns it off)
