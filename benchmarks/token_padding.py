"""How much padding do the language methods' batches carry, and what does trimming it save?

A text split's token ids are padded to its longest text; `PooledEncoder` trims each batch's trailing columns that
no example attends to before the encoder runs. For the text-offline stream (max length 128, 200 training examples
per class) this prints per task the split's width, the mean text length and the mean width of a random batch, the
share of tokens a trimmed epoch processes, and for one batch of each task the encoder's CPU time with and
without the trim (1 thread, medians of `--rounds` interleaved rounds) and the largest difference of the pooled
features. A second table scores each task's test split in eval mode both ways: in one encoder call trimmed to the
split's longest text, and in chunks of texts of similar length (what `PooledEncoder` does with a large eval batch).

    PYTHONPATH=src python benchmarks/token_padding.py [--encoder minilm] [--batch 8] [--timing-batch 64] [--no-eval]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from exssnet.methods.language.encoder_net import EVAL_CHUNK, PooledEncoder, length_chunks, load_encoder, masked_mean
from exssnet.run.config import RunConfig
from exssnet.run.runner import load_benchmark


def cpu_seconds(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--batch", type=int, default=8, help="training batch size of the language rows")
    parser.add_argument("--timing-batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-eval", action="store_true", help="skip the test-split scoring table")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = RunConfig.from_dict({"method": "ft", "benchmark": "text-offline", "encoder": args.encoder,
                                  "max_length": 128, "text_max_train": 200, "text_max_test": 100})
    benchmark = load_benchmark(config)
    encoder = PooledEncoder(load_encoder(args.encoder)).eval()
    generator = torch.Generator().manual_seed(0)
    split_tokens = batch_tokens = 0.0
    print("| task | split width | mean length | mean batch width | encoder s, padded | trimmed | speed-up | max diff |")
    print("|---|---|---|---|---|---|---|---|")
    for task in benchmark.tasks:
        ids, mask = task.train.x
        lengths = mask.sum(dim=1)
        order = torch.randperm(len(ids), generator=generator)
        widths = [int(lengths[order[i:i + args.batch]].max()) for i in range(0, len(ids), args.batch)]
        split_tokens += ids.shape[1] * len(widths)
        batch_tokens += sum(widths)
        rows = order[: args.timing_batch]
        x, m = ids[rows], mask[rows]
        padded, trimmed = [], []
        with torch.no_grad():
            full = masked_mean(encoder.hidden(x, m), m)
            diff = float((full - encoder(x, m)).abs().max())
            for _ in range(args.rounds):
                padded.append(cpu_seconds(lambda: encoder.hidden(x, m)))
                trimmed.append(cpu_seconds(lambda: encoder(x, m)))
        a, b = statistics.median(padded), statistics.median(trimmed)
        print(f"| {task.name} | {ids.shape[1]} | {float(lengths.float().mean()):.1f} | "
              f"{sum(widths) / len(widths):.1f} | {a:.3f} | {b:.3f} | {a / b:.2f} | {diff:.1e} |")
    print(f"\ntokens of a trimmed epoch (batches of {args.batch}) / of the padded splits: {batch_tokens / split_tokens:.2f}")
    if not args.no_eval:
        scoring(benchmark, encoder, args.rounds)


def scoring(benchmark, encoder: PooledEncoder, rounds: int) -> None:
    """Each task's test split scored at once (one call, trimmed to its longest text) and in length chunks."""
    print(f"\n| task | test texts | tokens, one call | in chunks of {EVAL_CHUNK} | encoder s, one call | chunks | "
          "speed-up | max diff |")
    print("|---|---|---|---|---|---|---|---|")
    totals = [0.0, 0.0]
    for task in benchmark.tasks:
        ids, mask = task.test.x
        lengths = mask.sum(dim=1)
        chunks, _ = length_chunks(mask, EVAL_CHUNK)
        one, chunked = len(ids) * int(lengths.max()), sum(len(rows) * int(lengths[rows].max()) for rows in chunks)
        once, split = [], []
        with torch.no_grad():
            diff = float((encoder.pooled(ids, mask) - encoder(ids, mask)).abs().max())
            for _ in range(rounds):
                once.append(cpu_seconds(lambda: encoder.pooled(ids, mask)))
                split.append(cpu_seconds(lambda: encoder(ids, mask)))
        a, b = statistics.median(once), statistics.median(split)
        totals[0] += a
        totals[1] += b
        print(f"| {task.name} | {len(ids)} | {one} | {chunked} | {a:.2f} | {b:.2f} | {a / b:.2f} | {diff:.1e} |")
    print(f"\nall test splits: {totals[0]:.1f} s in one call each, {totals[1]:.1f} s in chunks "
          f"({totals[0] / totals[1]:.2f}x)")


if __name__ == "__main__":
    main()
