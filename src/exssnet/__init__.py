"""exssnet: continual learning with supermask subnetworks (SupSup, SSNeT, ExSSNeT, KKT)."""

__version__ = "0.1.0"

from exssnet.checkpoint import from_pretrained, save_pretrained  # noqa: E402
from exssnet.errors import ExssnetError  # noqa: E402
from exssnet.supermask import SupermaskNet, to_supermask  # noqa: E402

__all__ = ["ExssnetError", "SupermaskNet", "from_pretrained", "save_pretrained", "to_supermask"]
