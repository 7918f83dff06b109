"""Text benchmarks: the offline stream (VADER, WordNet, SpamAssassin), WebNLP CSVs and GLUE TSVs.

Every task's texts are encoded once by a frozen encoder (cached on disk); a task's inputs are the
tuple (token features (N, L, D) float16, lengths (N,)), the label is the class within the task.
Subsampling per class uses a fixed seed, independent of the run seed, so every seed shares the
same examples and the same cached features; the run seed only changes the validation carve-out.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from exssnet.data.benchmarks import BenchmarkSpec, register_benchmark
from exssnet.data.tasks import Benchmark, Split, TaskData, carve_validation
from exssnet.data.text_features import build_encoder, check_encoder_available, encode_cached
from exssnet.data.text_options import DEFAULT_TEXT_ROOT, TextOptions
from exssnet.data.text_readers import (
    GLUE_FORMATS,
    VADER_DOMAINS,
    TextDataset,
    read_glue_tsv,
    read_spam_assassin,
    read_vader,
    read_webnlp_csv,
    read_wordnet_nouns,
)
from exssnet.data.text_tokens import load_tokenizer, tokenize
from exssnet.errors import ExssnetError
from exssnet.seeds import split_seed

SAMPLE_SEED = 0
SETUP_HINT = "run `make setup-text` (scripts/fetch_text_data.sh DIR fetches them into DIR; then pass --data-dir DIR)"

# WebNLP datasets: folder of Zhang et al. (2015) CSVs and class count.
WEBNLP_DATASETS = {
    "ag": ("ag_news_csv", 4),
    "yelp": ("yelp_review_full_csv", 5),
    "amazon": ("amazon_review_full_csv", 5),
    "yahoo": ("yahoo_answers_csv", 10),
    "dbpedia": ("dbpedia_csv", 14),
}
# The paper's Table 6 (arXiv 2210.10209): S1 is GLUE by decreasing training-set size; S2-S5 are the five-task
# and S6-S8 the three-task WebNLP orders of IDBR / MbPA++ / LAMOL.
TASK_ORDERS = {
    "S1": ("glue", ["mnli", "qqp", "qnli", "sst2", "cola"]),
    "S2": ("webnlp", ["ag", "yelp", "amazon", "yahoo", "dbpedia"]),
    "S3": ("webnlp", ["yelp", "yahoo", "amazon", "dbpedia", "ag"]),
    "S4": ("webnlp", ["dbpedia", "yahoo", "ag", "amazon", "yelp"]),
    "S5": ("webnlp", ["yelp", "ag", "dbpedia", "amazon", "yahoo"]),
    "S6": ("webnlp", ["ag", "yelp", "yahoo"]),
    "S7": ("webnlp", ["yelp", "yahoo", "ag"]),
    "S8": ("webnlp", ["yahoo", "ag", "yelp"]),
}
DEFAULT_ORDERS = {"webnlp": "S2", "glue": "S1"}

# The offline stream: (task name, source, which part of it). Sizes per class: OFFLINE_PER_CLASS.
WORDNET_GROUPS = {
    "wordnet-things": ["animal", "plant", "food", "artifact", "person"],
    "wordnet-ideas": ["act", "communication", "cognition", "location", "time"],
}
OFFLINE_STREAM = [
    ("vader-movie", "vader", "movie"),
    ("wordnet-things", "wordnet", "wordnet-things"),
    ("vader-amazon", "vader", "amazon"),
    ("spam", "spam", ""),
    ("vader-nyt", "vader", "nyt"),
    ("wordnet-ideas", "wordnet", "wordnet-ideas"),
    ("vader-tweets", "vader", "tweets"),
]
OFFLINE_PER_CLASS = (200, 100)  # (train, test) examples per class, sampled once with SAMPLE_SEED


@dataclass
class TextTask:
    """One task's raw train and test texts."""

    name: str
    train: TextDataset
    test: TextDataset


# ----- sampling -----------------------------------------------------------------------------------
def _indices_by_class(dataset: TextDataset) -> list[list[int]]:
    by_class: list[list[int]] = [[] for _ in dataset.classes]
    for index, label in enumerate(dataset.labels):
        by_class[label].append(index)
    return by_class


def _subset(dataset: TextDataset, indices: list[int]) -> TextDataset:
    indices = sorted(indices)
    return TextDataset([dataset.examples[i] for i in indices], [dataset.labels[i] for i in indices], dataset.classes)


def sample_per_class(dataset: TextDataset, per_class: int | None, seed: int = SAMPLE_SEED) -> TextDataset:
    """At most `per_class` examples of each class, chosen with a fixed seed (None: all)."""
    if per_class is None:
        return dataset
    rng = random.Random(seed)
    chosen = [i for members in _indices_by_class(dataset) for i in rng.sample(members, min(per_class, len(members)))]
    return _subset(dataset, chosen)


def split_per_class(dataset: TextDataset, train: int, test: int, seed: int = SAMPLE_SEED) -> tuple[TextDataset, TextDataset]:
    """Disjoint train/test samples per class for sources without a split (test first, then train)."""
    rng = random.Random(seed)
    train_idx, test_idx = [], []
    for members in _indices_by_class(dataset):
        shuffled = rng.sample(members, len(members))
        n_test = min(test, len(shuffled) // 2)
        test_idx += shuffled[:n_test]
        train_idx += shuffled[n_test : n_test + train]
    return _subset(dataset, train_idx), _subset(dataset, test_idx)


# ----- encoding into a Benchmark ------------------------------------------------------------------
def encode_benchmark(name: str, tasks: list[TextTask], spec: BenchmarkSpec, options: TextOptions, cache_dir: Path) -> Benchmark:
    """Encode every task's texts (cached) and carve a validation split from each training set."""
    if spec.num_tasks is not None:
        if not 1 <= spec.num_tasks <= len(tasks):
            raise ExssnetError(f"{name}: num_tasks must be in 1..{len(tasks)}, got {spec.num_tasks}")
        tasks = tasks[: spec.num_tasks]
    if options.inputs == "tokens":
        return tokenized_benchmark(name, tasks, spec, options)
    encoder = build_encoder(options.encoder, batch_size=options.encode_batch_size, device=options.device)
    generator = torch.Generator().manual_seed(split_seed(spec.seed))
    out, dim = [], 0
    total = sum(len(task.train.labels) + len(task.test.labels) for task in tasks)
    bar = tqdm(total=total, desc=f"features of {name} ({encoder.identity}, cached in {cache_dir})", unit="text",
               disable=not options.progress)
    for task in tasks:
        splits = {}
        for part, data in (("train", task.train), ("test", task.test)):
            bar.set_postfix_str(f"task {task.name}, {part}", refresh=False)
            tokens = encode_cached(encoder, data.examples, options.max_length, cache_dir, label=f"{name}-{task.name}-{part}",
                                   on_batch=bar.update)
            splits[part] = Split((tokens.features, tokens.lengths), torch.tensor(data.labels, dtype=torch.long))
            dim = tokens.features.shape[-1]
        train, val = carve_validation(splits["train"], spec.val_fraction, generator)
        out.append(TaskData(name=task.name, classes=[f"{task.name}:{c}" for c in task.train.classes],
                            train=train, val=val, test=splits["test"]))
    bar.close()
    info = {"encoder": options.encoder, "max_length": options.max_length, "sample_seed": SAMPLE_SEED,
            "task_sizes": {t.name: {"train": len(t.train.labels), "test": len(t.test.labels)} for t in tasks}}
    return Benchmark(name=name, tasks=out, input_shape=(options.max_length, dim), info=info)


def tokenized_benchmark(name: str, tasks: list[TextTask], spec: BenchmarkSpec, options: TextOptions) -> Benchmark:
    """The same tasks, examples and validation carve-out as `encode_benchmark`, as (input_ids, attention_mask)."""
    tokenizer = load_tokenizer(options.encoder)
    generator = torch.Generator().manual_seed(spec.seed + 1)
    out = []
    for task in tasks:
        splits = {part: Split(tokenize(tokenizer, data.examples, options.max_length), torch.tensor(data.labels, dtype=torch.long))
                  for part, data in (("train", task.train), ("test", task.test))}
        train, val = carve_validation(splits["train"], spec.val_fraction, generator)
        out.append(TaskData(name=task.name, classes=[f"{task.name}:{c}" for c in task.train.classes],
                            train=train, val=val, test=splits["test"]))
    info = {"encoder": options.encoder, "max_length": options.max_length, "sample_seed": SAMPLE_SEED, "inputs": "tokens",
            "task_sizes": {t.name: {"train": len(t.train.labels), "test": len(t.test.labels)} for t in tasks}}
    return Benchmark(name=name, tasks=out, input_shape=(options.max_length,), info=info)


def _cache_dir(options: TextOptions, root: Path) -> Path:
    return Path(options.cache_dir).expanduser() if options.cache_dir else root / "cache"


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise ExssnetError(f"{what} not found: {path} is missing; {SETUP_HINT}")
    return path


# ----- the offline stream -------------------------------------------------------------------------
def offline_tasks(root: Path, per_class: tuple[int, int]) -> list[TextTask]:
    """The seven tasks of the offline stream from the files `make setup-text` fetched into `root`."""
    vader_dir = root / "vader" / "hutto_ICWSM_2014"
    wordnet = None
    tasks = []
    for name, source, part in OFFLINE_STREAM:
        if source == "vader":
            data = read_vader(_require(vader_dir / VADER_DOMAINS[part], "VADER sentiment sentences"))
        elif source == "wordnet":
            if wordnet is None:
                wordnet = read_wordnet_nouns(_require(root / "wordnet" / "data.noun", "WordNet nouns"))
            groups = WORDNET_GROUPS[part]
            data = TextDataset([(g, None) for c in groups for g in wordnet[c]],
                               [k for k, c in enumerate(groups) for _ in wordnet[c]], list(groups))
        else:
            data = read_spam_assassin(_require(root / "spam-assassin" / "data", "SpamAssassin e-mails"))
        train, test = split_per_class(data, *per_class)
        tasks.append(TextTask(name, train, test))
    return tasks


@register_benchmark("text-offline", input_kind="tokens")
def text_offline(spec: BenchmarkSpec) -> Benchmark:
    """VADER sentiment (movie, Amazon, NYT, tweets), WordNet supersense topics and SpamAssassin: 7 tasks
    (--text-order picks some of them and their order, e.g. spam,vader-movie)."""
    options = spec.text
    check_encoder_available(options.encoder)
    root = Path(spec.data_dir).expanduser() if spec.data_dir else DEFAULT_TEXT_ROOT
    per_class = (options.max_train_per_class or OFFLINE_PER_CLASS[0], options.max_test_per_class or OFFLINE_PER_CLASS[1])
    by_name = {task.name: task for task in offline_tasks(root, per_class)}
    tasks = [by_name[name] for name in task_order("text-offline", options.order)]  # --text-order: which, in what order
    return encode_benchmark("text-offline", tasks, spec, options, _cache_dir(options, root))


# ----- WebNLP and GLUE from local files -----------------------------------------------------------
def task_order(benchmark: str, order: str | None) -> list[str]:
    """Dataset names in learning order from a preset name (S1..S8) or a comma-separated list.

    text-offline has no preset: its order is a comma-separated list of its task names (default: the stream's order).
    """
    offline = benchmark == "text-offline"
    known = ([n for n, _, _ in OFFLINE_STREAM] if offline else
             list(WEBNLP_DATASETS) if benchmark == "webnlp" else list(GLUE_FORMATS))
    if offline and order is None:
        return known
    order = order or DEFAULT_ORDERS[benchmark]
    if order in TASK_ORDERS:
        kind, names = TASK_ORDERS[order]
        if kind != benchmark:
            presets = ", ".join(k for k, (b, _) in TASK_ORDERS.items() if b == benchmark)
            allowed = f"{benchmark} orders are {presets}" if presets else f"{benchmark} takes comma-separated task names"
            raise ExssnetError(f"task order {order} is a {kind} order; {allowed} (from {', '.join(known)})")
        return list(names)
    names = [n.strip() for n in order.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if not names or unknown or len(set(names)) != len(names):
        presets = [k for k, (b, _) in TASK_ORDERS.items() if b == benchmark]
        raise ExssnetError(f"text_order {order!r} must be {'one of ' + ', '.join(presets) + ' or ' if presets else ''}"
                           f"distinct names from {', '.join(known)}, comma-separated")
    return names


def _find_folder(root: Path, names: list[str], what: str) -> Path:
    for name in names:
        for candidate in (root / name, root / name.lower(), root / name.upper()):
            if candidate.is_dir():
                return candidate
    raise ExssnetError(f"{what}: no folder {' or '.join(names)} in {root}")


def local_file_benchmark(name: str, spec: BenchmarkSpec, layout: str,
                         read_task: Callable[[Path, str], tuple[TextDataset, TextDataset]]) -> Benchmark:
    """Tasks in `text_order` from --data-dir, each read as (train, test) by `read_task(root, dataset)`,
    sampled per class as configured, then encoded."""
    if not spec.data_dir:
        raise ExssnetError(f"{name} reads local files: pass --data-dir with {layout}")
    root, options = Path(spec.data_dir).expanduser(), spec.text
    check_encoder_available(options.encoder)
    tasks = []
    for dataset in task_order(name, options.order):
        train, test = read_task(root, dataset)
        tasks.append(TextTask(dataset, sample_per_class(train, options.max_train_per_class),
                              sample_per_class(test, options.max_test_per_class)))
    return encode_benchmark(name, tasks, spec, options, _cache_dir(options, root))


def read_webnlp_task(root: Path, name: str) -> tuple[TextDataset, TextDataset]:
    folder_name, num_classes = WEBNLP_DATASETS[name]
    folder = _find_folder(root, [folder_name, name], f"webnlp dataset {name}")
    return tuple(read_webnlp_csv(_require(folder / f"{part}.csv", f"webnlp {name}"), num_classes)  # type: ignore[return-value]
                 for part in ("train", "test"))


def read_glue_task(root: Path, name: str) -> tuple[TextDataset, TextDataset]:
    fmt = GLUE_FORMATS[name]
    folder = _find_folder(root, [fmt.folder, name], f"glue task {name}")
    return tuple(read_glue_tsv(_require(folder / file, f"glue {name}"), fmt)  # type: ignore[return-value]
                 for file in ("train.tsv", fmt.test_file))


@register_benchmark("webnlp", input_kind="tokens")
def webnlp(spec: BenchmarkSpec) -> Benchmark:
    """AG News, Yelp, Amazon, Yahoo, DBpedia from --data-dir/<dataset>/{train,test}.csv, in a task order."""
    return local_file_benchmark("webnlp", spec, "ag_news_csv/, yelp_review_full_csv/, ... (CSV files)", read_webnlp_task)


@register_benchmark("glue", input_kind="tokens")
def glue(spec: BenchmarkSpec) -> Benchmark:
    """GLUE classification tasks from --data-dir/<TASK>/{train,dev}.tsv (dev serves as test), in a task order."""
    return local_file_benchmark("glue", spec, "SST-2/, CoLA/, QQP/, QNLI/, MNLI/ (TSV files)", read_glue_task)
