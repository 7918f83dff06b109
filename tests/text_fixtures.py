"""Tiny files in the exact formats the text readers take: WebNLP CSV, GLUE TSV, offline sources, GloVe, BERT."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

WORDS = {
    0: "good great fine happy love nice best".split(),
    1: "bad awful poor sad hate worst ugly".split(),
    2: "ball goal team match score coach win".split(),
    3: "stock market price bank trade money fund".split(),
}


def sentence(label: int, rng: random.Random, length: int = 6) -> str:
    return " ".join(rng.choice(WORDS[label % 4]) for _ in range(length))


def write_glove_txt(path: Path, dim: int = 8, seed: int = 0) -> Path:
    """A GloVe-format text file over the fixture vocabulary (class-informative random vectors)."""
    rng = random.Random(seed)
    lines = []
    for label, words in WORDS.items():
        for word in words:
            vector = [rng.gauss(1.0 if d % 4 == label else 0.0, 0.3) for d in range(dim)]
            lines.append(word + " " + " ".join(f"{v:.4f}" for v in vector))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_webnlp(root: Path, datasets: dict[str, tuple[str, int]], per_class: int = 12, seed: int = 0) -> Path:
    """<root>/<folder>/{train,test}.csv rows: "label","title","text" with 1-based labels."""
    rng = random.Random(seed)
    for folder, num_classes in datasets.values():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for part in ("train", "test"):
            with open(root / folder / f"{part}.csv", "w", newline="") as handle:
                writer = csv.writer(handle, quoting=csv.QUOTE_ALL)
                for i in range(per_class * num_classes):
                    label = i % num_classes
                    writer.writerow([label + 1, sentence(label, rng, 2), sentence(label, rng)])
    return root


def write_glue(root: Path, per_class: int = 10, seed: int = 0) -> Path:
    """SST-2 (header), CoLA (no header), QNLI (pair, header) and MNLI (pair, dev_matched) TSVs."""
    rng = random.Random(seed)
    specs = {
        "SST-2": (["sentence", "label"], ["0", "1"], "dev.tsv"),
        "QNLI": (["index", "question", "sentence", "label"], ["entailment", "not_entailment"], "dev.tsv"),
        "MNLI": (["index", "genre", "sentence1", "sentence2", "gold_label"], ["entailment", "neutral", "contradiction"],
                 "dev_matched.tsv"),
    }
    for folder, (header, classes, test_file) in specs.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name in ("train.tsv", test_file):
            rows = ["\t".join(header)]
            for i in range(per_class * len(classes)):
                k = i % len(classes)
                values = {"index": str(i), "genre": "fiction", "sentence": sentence(k, rng), "label": classes[k],
                          "question": sentence(k, rng, 3), "sentence1": sentence(k, rng), "sentence2": sentence(k + 1, rng),
                          "gold_label": classes[k]}
                rows.append("\t".join(values[h] for h in header))
            (root / folder / name).write_text("\n".join(rows) + "\n")
    (root / "CoLA").mkdir(parents=True, exist_ok=True)
    for name in ("train.tsv", "dev.tsv"):
        rows = [f"src{i}\t{i % 2}\t\t{sentence(i % 2, rng)}" for i in range(per_class * 2)]
        (root / "CoLA" / name).write_text("\n".join(rows) + "\n")
    return root


def write_offline_sources(root: Path, per_class: int = 12, seed: int = 0) -> Path:
    """The layout `make setup-text` produces: VADER ground truth, WordNet data.noun, SpamAssassin JSON."""
    from exssnet.data.text_readers import VADER_DOMAINS, WORDNET_LEXNAMES

    rng = random.Random(seed)
    vader = root / "vader" / "hutto_ICWSM_2014"
    vader.mkdir(parents=True)
    for file in VADER_DOMAINS.values():
        rows = [f"{i}\t{(2.0 if i % 3 == 0 else -1.5) if i % 5 else 0.1}\t{sentence(0 if i % 3 == 0 else 1, rng)}"
                for i in range(per_class * 3)]
        (vader / file).write_text("\n".join(rows) + "\n")
    wordnet = root / "wordnet"
    wordnet.mkdir()
    lines = ["  1 license header line  "]
    for lexfile in range(3, 3 + len(WORDNET_LEXNAMES)):
        for i in range(per_class):
            lines.append(f"{lexfile:08d}{i:02d} {lexfile:02d} n 01 word{i} 0 000 | {sentence(lexfile, rng)}; \"an example\"  ")
    (wordnet / "data.noun").write_text("\n".join(lines) + "\n")
    spam = root / "spam-assassin" / "data"
    for group in ("easy-ham-1", "spam-1"):
        (spam / group).mkdir(parents=True)
        for i in range(per_class):
            text = f"Subject: {sentence(2 if group.startswith('spam') else 3, rng, 3)}\nFrom: a@b.c\n\n{sentence(2 if group.startswith('spam') else 3, rng)}\n"
            (spam / group / f"{i:05d}.json").write_text(json.dumps({"id": str(i), "group": group, "text": text}))
    return root


def write_tiny_bert(folder: Path) -> Path:
    """A randomly initialised 1-layer BERT (hidden 16) and its word-piece vocabulary, saved for from_pretrained."""
    from transformers import BertConfig, BertModel, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted({w for ws in WORDS.values() for w in ws})
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(str(folder))
    config = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    BertModel(config).save_pretrained(str(folder))
    return folder


def write_tiny_causal_lm(folder: Path) -> Path:
    """A randomly initialised 1-layer GPT-2 (hidden 16) over the fixture word-piece vocabulary."""
    from transformers import BertTokenizer, GPT2Config, GPT2LMHeadModel

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ":"] + sorted({w for ws in WORDS.values() for w in ws})
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizer(str(folder / "vocab.txt"), eos_token="[SEP]")
    tokenizer.save_pretrained(str(folder))
    config = GPT2Config(vocab_size=len(vocab), n_embd=16, n_layer=1, n_head=2, n_positions=128,
                        bos_token_id=2, eos_token_id=3, pad_token_id=0)
    GPT2LMHeadModel(config).save_pretrained(str(folder))
    return folder
