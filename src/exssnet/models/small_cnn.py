"""A small CNN for 28x28 grayscale images (MNIST-like streams): two conv blocks and a two-layer head."""

from __future__ import annotations

from torch import nn

from exssnet.errors import ExssnetError
from exssnet.models.registry import register_model


@register_model("cnn-small", input_kind="image")
def cnn_small(
    input_shape: tuple[int, ...], num_classes: int, channels: tuple[int, int] = (32, 64), hidden: int = 128
) -> nn.Module:
    """[3x3 conv-BN-ReLU-maxpool2] x2 -> Linear(hidden)-BN-ReLU -> Linear head; all bias-free."""
    if len(input_shape) != 3 or input_shape[1] < 4 or input_shape[2] < 4:
        raise ExssnetError(f"cnn-small needs image inputs shaped (channels, height, width) of at least 4x4, got {input_shape}")
    in_channels, height, width = input_shape
    flat = channels[1] * (height // 4) * (width // 4)
    return nn.Sequential(
        nn.Conv2d(in_channels, channels[0], 3, padding=1, bias=False),
        nn.BatchNorm2d(channels[0]),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(channels[0], channels[1], 3, padding=1, bias=False),
        nn.BatchNorm2d(channels[1]),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(flat, hidden, bias=False),
        nn.BatchNorm1d(hidden),
        nn.ReLU(),
        nn.Linear(hidden, num_classes, bias=False),
    )
