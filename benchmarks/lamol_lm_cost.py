"""What LAMOL's language model costs per training text, in float32 and bf16, with random and length-grouped batches.

LAMOL's LM (`--lamol-lm`, default smollm2-135m) learns every task's texts ("<class> : <text>" plus EOS) for the
task's epochs, next to its own pseudo texts of the earlier tasks. This takes the text-offline stream's training
texts (max length 128, 200 per class; each text cut to what the encoder sees, as LAMOL does) and prints:
1. padding: the tokens one epoch over all seven tasks' texts carries with random batches of `--batch` and with
   `length_grouped_batches` (what `Lamol.train_lm` uses), next to the tokens the texts hold;
2. timing: CPU seconds per training text of full LM steps (forward, backward, Adam) on the same `--texts` texts,
   variants interleaved over `--rounds` rounds (medians): float32 random batches, float32 grouped, bf16 grouped
   (`--lamol-lm-amp bf16`). bf16 is fast only on CPUs with bf16 matrix units (AMX, AVX-512 BF16); `lscpu` tells.

    PYTHONPATH=src python benchmarks/lamol_lm_cost.py [--threads 1] [--texts 48] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from exssnet import amp
from exssnet.data.length_batches import length_grouped_batches, padded_tokens
from exssnet.data.text_tokens import load_tokenizer
from exssnet.methods.language.lamol import Lamol, load_causal_lm
from exssnet.run.config import RunConfig
from exssnet.run.runner import load_benchmark


def lm_texts(encoder: str) -> list[str]:
    """Every training text of the stream as the LM learns it (`Lamol.task_texts`), without the EOS."""
    config = RunConfig.from_dict({"benchmark": "text-offline", "method": "ft", "encoder": encoder, "max_length": 128,
                                  "text_max_train": 200, "text_max_test": 1})
    tokenizer = load_tokenizer(encoder)
    return [text for task in load_benchmark(config).tasks for text in Lamol.task_texts(tokenizer, task)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lm", default="smollm2-135m")
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--texts", type=int, default=48, help="texts per timed pass (a multiple of --batch)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lm, tokenizer = load_causal_lm(args.lm)
    texts = [t + tokenizer.eos_token for t in lm_texts(args.encoder)]
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=256)["input_ids"]]
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(len(texts), generator=gen).tolist()
    shuffled = [order[k : k + args.batch] for k in range(0, len(order), args.batch)]
    grouped = length_grouped_batches(lengths, args.batch, gen)
    print(f"{len(texts)} LM training texts, {sum(lengths)} tokens; one epoch padded: random batches "
          f"{padded_tokens(shuffled, lengths)}, grouped {padded_tokens(grouped, lengths)} "
          f"({padded_tokens(shuffled, lengths) / padded_tokens(grouped, lengths):.2f}x fewer)")

    sample = order[: args.texts]
    sample_lengths = [lengths[i] for i in sample]
    variants = {
        "float32, random batches": (None, [sample[k : k + args.batch] for k in range(0, len(sample), args.batch)]),
        "float32, grouped": (None, [[sample[i] for i in b] for b in length_grouped_batches(sample_lengths, args.batch, gen)]),
        "bf16, grouped": ("bf16", [[sample[i] for i in b] for b in length_grouped_batches(sample_lengths, args.batch, gen)]),
    }
    optimizer = torch.optim.Adam(lm.parameters(), lr=1e-6)
    lm.train()

    def timed_pass(precision: str | None, batches: list[list[int]]) -> float:
        start = time.process_time()
        for batch_ids in batches:  # as `Lamol.train_lm`: autocast around the forward only
            batch = tokenizer([texts[i] for i in batch_ids], return_tensors="pt", padding=True, truncation=True,
                              max_length=256)
            labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
            with amp.autocast(precision, "cpu"):
                loss = lm(**batch, labels=labels).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return (time.process_time() - start) / sum(map(len, batches))

    timed_pass(None, variants["float32, random batches"][1][:1])  # warm-up
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (precision, batches) in variants.items():
            seconds[name].append(timed_pass(precision, batches))
    base = statistics.median(seconds["float32, random batches"])
    print(f"\nCPU seconds per training text ({args.texts} texts, batch {args.batch}, {args.threads} thread(s), "
          f"medians of {args.rounds} interleaved rounds):\n")
    print("| variant | s per text | speed-up |\n|---|---|---|")
    for name, values in seconds.items():
        print(f"| {name} | {statistics.median(values):.3f} | {base / statistics.median(values):.2f}x |")


if __name__ == "__main__":
    main()
