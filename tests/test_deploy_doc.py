"""docs/deploy.md's Python blocks run as written (the ONNX block on the export its first block makes)."""

import re
from pathlib import Path

import pytest
import torch

from exssnet.export_files import example_inputs, write_export

DOC = Path(__file__).resolve().parents[1] / "docs" / "deploy.md"


def test_deploy_page_examples_run(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.chdir(tmp_path)
    python, onnx_block = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    namespace: dict = {}
    exec(compile(python, str(DOC), "exec"), namespace)
    model = namespace["model"]
    inputs, names = example_inputs("image", (1, 28, 28))
    write_export(model, tmp_path / "t2.onnx", "onnx", sidecar={}, example_inputs=inputs, input_names=names)
    exec(compile(onnx_block, str(DOC), "exec"), namespace)
    images = namespace["images"]
    logits = torch.from_numpy(namespace["session"].run(None, {"input": images})[0])
    with torch.no_grad():
        assert float((logits - model(torch.from_numpy(images))).abs().max()) <= 1e-5
    assert torch.equal(torch.from_numpy(namespace["predictions"]), logits.argmax(dim=1))
