"""Readers of raw text datasets into (texts, labels): WebNLP CSVs, GLUE TSVs and the offline sources.

A text example is a `(text, pair)` tuple; `pair` is None except for sentence-pair tasks (GLUE), where
the encoder sees both sentences as a tokenizer pair. Labels are ints 0..C-1 per dataset.
"""

from __future__ import annotations

import csv
import email
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from exssnet.errors import ExssnetError

TextExample = tuple[str, "str | None"]


@dataclass
class TextDataset:
    """Examples, integer labels and class names of one split of one dataset."""

    examples: list[TextExample]
    labels: list[int]
    classes: list[str]

    def __post_init__(self) -> None:
        if len(self.examples) != len(self.labels):
            raise ExssnetError(f"{len(self.examples)} texts but {len(self.labels)} labels")


csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # e-mails and Yahoo answers have long fields


# ----- WebNLP (Zhang et al. 2015 CSVs) ---------------------------------------------------------
def read_webnlp_csv(path: Path, num_classes: int) -> TextDataset:
    """A WebNLP CSV: 1-based label first, then title/text fields (joined with spaces)."""
    examples, labels = [], []
    with open(path, newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            if not row:
                continue
            try:
                label = int(row[0]) - 1
            except ValueError:
                raise ExssnetError(f"{path}:{line}: the first field must be a 1-based class number, got {row[0]!r}") from None
            if not 0 <= label < num_classes or len(row) < 2:
                raise ExssnetError(f"{path}:{line}: expected label 1..{num_classes} then text fields, got {row[:2]!r}")
            text = " ".join(field.replace("\\n", " ").strip() for field in row[1:] if field.strip())
            examples.append((text, None))
            labels.append(label)
    return TextDataset(examples, labels, [str(c + 1) for c in range(num_classes)])


# ----- GLUE TSVs --------------------------------------------------------------------------------
@dataclass(frozen=True)
class GlueFormat:
    """Where the text and label live in one GLUE task's TSV."""

    folder: str
    text: str
    pair: str | None
    label: str
    classes: tuple[str, ...]
    test_file: str = "dev.tsv"  # GLUE's test labels are hidden: the dev split serves as test
    has_header: bool = True


GLUE_FORMATS = {
    "sst2": GlueFormat("SST-2", "sentence", None, "label", ("0", "1")),
    "cola": GlueFormat("CoLA", "3", None, "1", ("0", "1"), has_header=False),
    "qqp": GlueFormat("QQP", "question1", "question2", "is_duplicate", ("0", "1")),
    "qnli": GlueFormat("QNLI", "question", "sentence", "label", ("entailment", "not_entailment")),
    "mnli": GlueFormat("MNLI", "sentence1", "sentence2", "gold_label", ("entailment", "neutral", "contradiction"),
                       test_file="dev_matched.tsv"),
}


def read_glue_tsv(path: Path, fmt: GlueFormat) -> TextDataset:
    """One GLUE TSV (header row, or CoLA's headerless columns); rows with an unknown label are refused."""
    examples, labels = [], []
    with open(path, newline="", encoding="utf-8") as handle:
        rows = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(rows, None) if fmt.has_header else None
        if fmt.has_header and header is None:
            raise ExssnetError(f"{path} is empty")

        def column(name: str) -> int:
            if not fmt.has_header:
                return int(name)
            if name not in header:  # type: ignore[operator]
                raise ExssnetError(f"{path}: header has no column {name!r} (columns: {', '.join(header)})")  # type: ignore[arg-type]
            return header.index(name)  # type: ignore[union-attr]

        text_col, label_col = column(fmt.text), column(fmt.label)
        pair_col = column(fmt.pair) if fmt.pair else None
        for line, row in enumerate(rows, start=2 if fmt.has_header else 1):
            if not row:
                continue
            if max(text_col, label_col, pair_col or 0) >= len(row) or row[label_col] not in fmt.classes:
                raise ExssnetError(f"{path}:{line}: malformed row (expected a label in {list(fmt.classes)})")
            examples.append((row[text_col], row[pair_col] if pair_col is not None else None))
            labels.append(fmt.classes.index(row[label_col]))
    return TextDataset(examples, labels, list(fmt.classes))


# ----- offline sources: VADER, WordNet, SpamAssassin -------------------------------------------
VADER_DOMAINS = {
    "movie": "movieReviewSnippets_GroundTruth.txt",
    "amazon": "amazonReviewSnippets_GroundTruth.txt",
    "nyt": "nytEditorialSnippets_GroundTruth.txt",
    "tweets": "tweets_GroundTruth.txt",
}


def read_vader(path: Path, neutral_margin: float = 0.5) -> TextDataset:
    """VADER ground truth (id, mean rating -4..4, text): negative/positive by sign, |mean| < margin dropped."""
    examples, labels = [], []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            parts = line.rstrip("\n").split("\t", 2)
            if len(parts) != 3:
                continue
            try:
                rating = float(parts[1])
            except ValueError:
                continue
            if abs(rating) < neutral_margin:
                continue
            examples.append((parts[2].strip(), None))
            labels.append(int(rating > 0))
    return TextDataset(examples, labels, ["negative", "positive"])


WORDNET_LEXNAMES = [
    "Tops", "act", "animal", "artifact", "attribute", "body", "cognition", "communication", "event", "feeling",
    "food", "group", "location", "motive", "object", "person", "phenomenon", "plant", "possession", "process",
    "quantity", "relation", "shape", "state", "substance", "time",
]  # noun lexicographer files 03..28, in order


def read_wordnet_nouns(path: Path) -> dict[str, list[str]]:
    """data.noun: the glosses (definitions) of every noun synset grouped by supersense (lexicographer file)."""
    by_class: dict[str, list[str]] = {name: [] for name in WORDNET_LEXNAMES}
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith(" ") or "|" not in line:
                continue  # license header
            fields, gloss = line.split("|", 1)
            lexfile = int(fields.split()[1])
            gloss = gloss.split('; "')[0].strip()  # drop usage examples
            by_class[WORDNET_LEXNAMES[lexfile - 3]].append(gloss)
    return by_class


def _decode(payload: bytes, charset: str | None) -> str:
    try:
        return payload.decode(charset or "latin-1", errors="replace")
    except LookupError:  # an unknown charset name in the header
        return payload.decode("latin-1")


def _email_text(raw: str) -> str:
    """Subject and plain body of a raw e-mail, HTML tags and runs of whitespace removed."""
    message = email.message_from_string(raw)
    parts = [message.get("Subject", "") or ""]
    for part in message.walk():
        if part.get_content_maintype() == "text":
            payload = part.get_payload(decode=True)
            if payload:
                parts.append(_decode(payload, part.get_content_charset()))
                break
    text = re.sub(r"<[^>]*>", " ", " . ".join(parts))
    return re.sub(r"\s+", " ", text).strip()


def read_spam_assassin(folder: Path) -> TextDataset:
    """The @stdlib SpamAssassin JSON files (one e-mail each, group easy-ham-*, hard-ham-*, spam-*)."""
    examples, labels = [], []
    for path in sorted(folder.glob("*/*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        examples.append((_email_text(record["text"]), None))
        labels.append(int(str(record["group"]).startswith("spam")))
    if not examples:
        raise ExssnetError(f"no SpamAssassin JSON files under {folder}")
    return TextDataset(examples, labels, ["ham", "spam"])
