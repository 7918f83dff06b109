"""ResNets for supermask continual learning: the reduced ResNet18 (SplitCIFAR100) and ResNet50 (TinyImageNet).

Dense models with bias-free convolutions, BatchNorm and a Linear classifier; `to_supermask` turns
every conv/linear into a masked layer and every BatchNorm into a per-task non-affine BatchNorm.

- `resnet18-reduced`: SupSup's reduced ResNet18 (from GEM): 3x3 stride-1 stem with 20 channels, BasicBlock
  stages of 20/40/80/160 channels, global average pool, linear head; the paper's SplitCIFAR100 model.
- `resnet50`: the standard ResNet50 (He et al. 2016) with the 7x7 stride-2 stem and 3x3 stride-2 max-pool,
  as the paper (and SupSup's ImageNet code) uses for TinyImageNet and ImageNet.
- `resnet50-cifar` / `resnet18`: the same stages behind a 3x3 stride-1 stem without max-pool (the
  CIFAR-style stem; about 16x the compute of `resnet50` on 64x64 inputs). Not the paper's models.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from exssnet.errors import ExssnetError
from exssnet.models.registry import register_model


def conv_bn(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """A bias-free conv with 'same' padding followed by BatchNorm."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels),
    )


def shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """Identity when shapes match, else a 1x1 projection with BatchNorm."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return conv_bn(in_channels, out_channels, 1, stride)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (ResNet18/34)."""

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(in_channels, planes, 3, stride), nn.ReLU(), conv_bn(planes, planes, 3))
        self.shortcut = shortcut(in_channels, planes, stride)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride), 1x1 expand by 4, with a residual connection (ResNet50)."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.body = nn.Sequential(
            conv_bn(in_channels, planes, 1), nn.ReLU(),
            conv_bn(planes, planes, 3, stride), nn.ReLU(),
            conv_bn(planes, out_channels, 1),
        )
        self.shortcut = shortcut(in_channels, out_channels, stride)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


def cifar_stem(in_channels: int, width: int) -> nn.Sequential:
    """3x3 stride-1 conv-BN-ReLU, no pooling: keeps the full resolution of small images."""
    return nn.Sequential(conv_bn(in_channels, width, 3), nn.ReLU())


def imagenet_stem(in_channels: int, width: int) -> nn.Sequential:
    """The standard 7x7 stride-2 conv-BN-ReLU and 3x3 stride-2 max-pool (4x smaller per side)."""
    return nn.Sequential(conv_bn(in_channels, width, 7, stride=2), nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1))


STEMS = {"cifar": cifar_stem, "imagenet": imagenet_stem}


class ResNet(nn.Module):
    """Stem, four stages of residual blocks (strides 1, 2, 2, 2), global average pool, Linear head."""

    def __init__(
        self, block: type[BasicBlock] | type[Bottleneck], depths: Sequence[int], widths: Sequence[int],
        in_channels: int, num_classes: int, stem: str = "cifar",
    ) -> None:
        super().__init__()
        self.stem = STEMS[stem](in_channels, widths[0])
        stages, channels = [], widths[0]
        for index, (depth, planes) in enumerate(zip(depths, widths)):
            blocks = []
            for b in range(depth):
                blocks.append(block(channels, planes, stride=2 if index > 0 and b == 0 else 1))
                channels = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(channels, num_classes, bias=False)

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (after global average pooling)."""
        return self.pool(self.stages(self.stem(x)))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _image_channels(input_shape: tuple[int, ...], model: str) -> int:
    if len(input_shape) != 3:
        raise ExssnetError(f"{model} needs image inputs shaped (channels, height, width), got {input_shape}")
    return input_shape[0]


@register_model("resnet18-reduced", input_kind="image")
def resnet18_reduced(input_shape: tuple[int, ...], num_classes: int, width: int = 20) -> nn.Module:
    """Reduced ResNet18 (widths 20/40/80/160, two BasicBlocks per stage) for 32x32 images."""
    widths = [width, 2 * width, 4 * width, 8 * width]
    return ResNet(BasicBlock, [2, 2, 2, 2], widths, _image_channels(input_shape, "resnet18-reduced"), num_classes)


@register_model("resnet18", input_kind="image")
def resnet18(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Full-width ResNet18 (widths 64/128/256/512) with the same 3x3 stem."""
    return resnet18_reduced(input_shape, num_classes, width=64)


@register_model("resnet50", input_kind="image")
def resnet50(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Standard ResNet50 (7x7/2 stem + max-pool, Bottleneck blocks 3/4/6/3, 2048 features): TinyImageNet, ImageNet."""
    channels = _image_channels(input_shape, "resnet50")
    return ResNet(Bottleneck, [3, 4, 6, 3], [64, 128, 256, 512], channels, num_classes, stem="imagenet")


@register_model("resnet50-cifar", input_kind="image")
def resnet50_cifar(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """ResNet50 stages behind the CIFAR-style 3x3 stride-1 stem, no max-pool (not the paper's model)."""
    channels = _image_channels(input_shape, "resnet50-cifar")
    return ResNet(Bottleneck, [3, 4, 6, 3], [64, 128, 256, 512], channels, num_classes, stem="cifar")
