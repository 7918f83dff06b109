"""The one exception type users see for bad input; the CLI turns it into a clear message and exit code 2."""


class ExssnetError(Exception):
    """Bad configuration, unknown name, wrong task id, missing data or corrupted checkpoint."""


def check_density(density: float) -> float:
    """Return `density` as a float, or raise if it is not a fraction kept in (0, 1]."""
    try:
        value = float(density)
    except (TypeError, ValueError):
        raise ExssnetError(f"density must be a number in (0, 1], got {density!r}") from None
    if not 0.0 < value <= 1.0:
        raise ExssnetError(f"density must be in (0, 1] (the fraction of weights kept), got {value}")
    return value


AMP_CHOICES = ("bf16", "fp16")  # the mixed precisions a setting may name (None: float32)


def check_amp(amp: str | None, name: str = "amp") -> str | None:
    """Return `amp` if it names a mixed precision (or is None for float32); `name` is the setting, for the error."""
    if amp is not None and amp not in AMP_CHOICES:
        raise ExssnetError(f"{name} must be one of {', '.join(AMP_CHOICES)} (or unset for float32), got {amp!r}")
    return amp
