"""The two convolutional networks of WSN's Table 2 (Kang et al., ICML 2022), rebuilt layer by layer.

- `alexnet-5`: the 5-layer AlexNet of Serra et al. 2018 (HAT) as Saha et al. 2021 (GPM) and WSN run it on
  CIFAR-100 Split (32x32x3): conv 64 (4x4), conv 128 (3x3), conv 256 (2x2), each followed by BatchNorm,
  ReLU, dropout (0.2, 0.2, 0.5) and a 2x2 max-pool, then fc 2048 and fc 2048 (each BatchNorm, ReLU, dropout
  0.5), then the classifier. No padding: 32 -> 29 -> 14 -> 12 -> 6 -> 5 -> 2, so fc1 reads 256 * 2 * 2.
- `tinynet-4c3f`: the TinyImageNet network of Gupta et al. 2020 (La-MAML) / Deng et al. 2021 (FS-DGPM) as WSN
  runs it (64x64x3): four 3x3 convs of 160 channels with stride 2 and padding 1 (64 -> 32 -> 16 -> 8 -> 4),
  each followed by ReLU, then fc 640, fc 640 (ReLU) and the classifier. No BatchNorm and no dropout (WSN's
  TinyImageNet network has both switched off).

All layers are bias-free (as in both originals); the last Linear is the classifier (nn.Sequential order).
"""

from __future__ import annotations

from torch import nn

from exssnet.errors import ExssnetError
from exssnet.models.registry import register_model


def _conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _image_shape(name: str, input_shape: tuple[int, ...], smallest: int) -> tuple[int, int, int]:
    if len(input_shape) != 3 or min(input_shape[1:]) < smallest:
        raise ExssnetError(f"{name} needs image inputs shaped (channels, height, width) of at least "
                           f"{smallest}x{smallest}, got {input_shape}")
    return input_shape[0], input_shape[1], input_shape[2]


@register_model("alexnet-5", input_kind="image")
def alexnet_5(
    input_shape: tuple[int, ...],
    num_classes: int,
    channels: tuple[int, int, int] = (64, 128, 256),
    kernels: tuple[int, int, int] = (4, 3, 2),
    hidden: int = 2048,
    dropout: tuple[float, float] = (0.2, 0.5),
) -> nn.Module:
    """[conv-BN-ReLU-dropout-maxpool2] x3 -> [Linear-BN-ReLU-dropout] x2 -> Linear head; all bias-free.

    `dropout` is (after conv1 and conv2, after conv3 and each hidden Linear), as in GPM's and WSN's code.
    """
    in_channels, height, width = _image_shape("alexnet-5", input_shape, 16)
    layers: list[nn.Module] = []
    for i, (out_channels, kernel) in enumerate(zip(channels, kernels)):
        layers += [nn.Conv2d(in_channels, out_channels, kernel, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(),
                   nn.Dropout(dropout[0] if i < 2 else dropout[1]), nn.MaxPool2d(2)]
        height, width = _conv_out(height, kernel) // 2, _conv_out(width, kernel) // 2
        in_channels = out_channels
    if height < 1 or width < 1:
        raise ExssnetError(f"alexnet-5: inputs of {input_shape} shrink to nothing before the fully connected layers")
    layers.append(nn.Flatten())
    width_in = in_channels * height * width
    for _ in range(2):
        layers += [nn.Linear(width_in, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(dropout[1])]
        width_in = hidden
    layers.append(nn.Linear(hidden, num_classes, bias=False))
    return nn.Sequential(*layers)


@register_model("tinynet-4c3f", input_kind="image")
def tinynet_4c3f(
    input_shape: tuple[int, ...], num_classes: int, channels: int = 160, hidden: int = 640
) -> nn.Module:
    """[3x3 conv stride 2 pad 1 - ReLU] x4 -> [Linear-ReLU] x2 -> Linear head; all bias-free."""
    in_channels, height, width = _image_shape("tinynet-4c3f", input_shape, 2)
    layers: list[nn.Module] = []
    for _ in range(4):
        layers += [nn.Conv2d(in_channels, channels, 3, stride=2, padding=1, bias=False), nn.ReLU()]
        height, width = _conv_out(height, 3, 2, 1), _conv_out(width, 3, 2, 1)
        in_channels = channels
    layers += [nn.Flatten(), nn.Linear(channels * height * width, hidden, bias=False), nn.ReLU(),
               nn.Linear(hidden, hidden, bias=False), nn.ReLU(), nn.Linear(hidden, num_classes, bias=False)]
    return nn.Sequential(*layers)
