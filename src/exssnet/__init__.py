"""exssnet: continual learning with supermask subnetworks (SupSup, SSNeT, ExSSNeT, KKT)."""

from exssnet.errors import ExssnetError
from exssnet.supermask import SupermaskNet, to_supermask

__all__ = ["ExssnetError", "SupermaskNet", "to_supermask"]
__version__ = "0.1.0"
