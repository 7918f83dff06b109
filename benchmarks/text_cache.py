"""Epoch time of Kim CNN mask training with cached encoder features vs re-running the encoder every epoch.

Both variants train the same supermask Kim CNN (mask phase, Adam) on the same texts in the same order;
"recompute" encodes each batch with the frozen encoder before the step, "cached" reads the features
that `encode_cached` stored once (the one-off encoding cost is printed separately). One run, one ratio.

    python benchmarks/text_cache.py [--encoder minilm] [--examples 256] [--epochs 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from exssnet import to_supermask
from exssnet.data.text_benchmarks import split_per_class
from exssnet.data.text_features import build_encoder, encode_cached
from exssnet.data.text_options import DEFAULT_TEXT_ROOT
from exssnet.data.text_readers import VADER_DOMAINS, read_vader
from exssnet.models import build_model


def train_epoch(net, optimizer, batches) -> float:
    """One epoch over `batches` (a callable yielding (features, lengths, labels)); returns seconds."""
    start = time.perf_counter()
    for features, lengths, labels in batches():
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(net(features, lengths), labels).backward()
        optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_TEXT_ROOT)
    parser.add_argument("--examples", type=int, default=256, help="training texts (VADER movie reviews)")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    data = read_vader(args.data_dir / "vader" / "hutto_ICWSM_2014" / VADER_DOMAINS["movie"])
    train, _ = split_per_class(data, train=args.examples // 2, test=0)
    examples, labels = train.examples, torch.tensor(train.labels)
    encoder = build_encoder(args.encoder, batch_size=args.batch_size)
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        cached = encode_cached(encoder, examples, args.max_length, Path(cache))  # first call: encodes and writes
        first_encode = time.perf_counter() - start
        start = time.perf_counter()
        cached = encode_cached(encoder, examples, args.max_length, Path(cache))  # later runs: a file read
        cache_read = time.perf_counter() - start

    net = to_supermask(build_model("kim-cnn", (args.max_length, cached.features.shape[-1]), 2), density=0.1, init="signed-constant")
    net.add_task(2)
    optimizer = torch.optim.Adam(net.trainable_parameters(), lr=0.001)
    order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(0))
    chunks = [order[i : i + args.batch_size] for i in range(0, len(order), args.batch_size)]

    def cached_batches():
        for index in chunks:
            yield cached.features[index], cached.lengths[index], labels[index]

    def recomputed_batches():
        for index in chunks:
            tokens = encoder.encode([examples[i] for i in index.tolist()], args.max_length)
            yield tokens.features, tokens.lengths, labels[index]

    recompute = [train_epoch(net, optimizer, recomputed_batches) for _ in range(args.epochs)]
    from_cache = [train_epoch(net, optimizer, cached_batches) for _ in range(args.epochs)]
    per_recompute, per_cached = sum(recompute) / len(recompute), sum(from_cache) / len(from_cache)
    print(f"encoder {args.encoder}, {len(examples)} texts, max length {args.max_length}, batch {args.batch_size}, "
          f"{args.threads} thread(s), {args.epochs} epochs each")
    print(f"one-off encoding + cache write: {first_encode:.2f} s; cache read: {cache_read:.3f} s")
    print(f"epoch, encoder recomputed: {per_recompute:.2f} s")
    print(f"epoch, cached features:    {per_cached:.2f} s")
    print(f"ratio recomputed / cached: {per_recompute / per_cached:.1f}x")


if __name__ == "__main__":
    main()
