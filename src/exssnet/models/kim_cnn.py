"""Kim (2014) text CNN over frozen token features: Conv1d widths 3/4/5, max-pool over time, linear head.

Inputs are `(features, mask)`: features (B, L, D) from a frozen encoder and either a (B, L) mask of real
tokens or (B,) lengths. Padded positions are zeroed and excluded from the max-pool, so whatever sits
there never changes the output.
"""

from __future__ import annotations

import torch
from torch import nn

from exssnet.errors import ExssnetError
from exssnet.models.registry import register_model


def token_mask(mask_or_lengths: torch.Tensor, length: int) -> torch.Tensor:
    """A (B, L) boolean mask of real tokens from a (B, L) mask or (B,) lengths."""
    if mask_or_lengths.dim() == 1:
        positions = torch.arange(length, device=mask_or_lengths.device)
        return positions.unsqueeze(0) < mask_or_lengths.unsqueeze(1)
    return mask_or_lengths.bool()


ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu}


class KimCNN(nn.Module):
    """Parallel bias-free Conv1d of several widths + activation, masked max-pool over time, bias-free head.

    The paper (App. A.3) uses Tanh after the convolutions; `activation="relu"` is Kim's original choice.
    """

    def __init__(
        self, embed_dim: int, num_classes: int, widths: tuple[int, ...] = (3, 4, 5), filters: int = 200,
        activation: str = "tanh",
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ExssnetError(f"kim-cnn activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
        self.activation = activation
        self._act = ACTIVATIONS[activation]
        self.widths = tuple(widths)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, filters, w, bias=False) for w in self.widths)
        self.head = nn.Linear(filters * len(self.widths), num_classes, bias=False)

    def get_classifier(self) -> nn.Module:
        return self.head

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def forward_features(self, tokens: torch.Tensor, mask_or_lengths: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B, filters * widths) of token features (B, L, D)."""
        batch, length, _ = tokens.shape
        real = token_mask(mask_or_lengths, length)
        x = (tokens.float() * real.unsqueeze(-1)).transpose(1, 2)  # (B, D, L), padding zeroed
        widest = max(self.widths)
        if length < widest:
            x = nn.functional.pad(x, (0, widest - length))
        lengths = real.sum(dim=1)
        pooled = []
        for width, conv in zip(self.widths, self.convs):
            out = self._act(conv(x))  # (B, F, L_out)
            # a window starting at i is real if it starts on a real token and ends in range: i <= max(len - w, 0)
            starts = torch.arange(out.shape[-1], device=out.device)
            valid = starts.unsqueeze(0) <= (lengths - width).clamp(min=0).unsqueeze(1)
            pooled.append(out.masked_fill(~valid.unsqueeze(1), float("-inf")).amax(dim=-1))
        return torch.cat(pooled, dim=1)

    def forward(self, tokens: torch.Tensor, mask_or_lengths: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(tokens, mask_or_lengths))


def _check_text_shape(input_shape: tuple[int, ...], name: str) -> None:
    if len(input_shape) != 2:
        raise ExssnetError(f"{name} needs token features shaped (length, embed_dim), got {input_shape}; "
                           "use it with a text benchmark (text-offline, webnlp, glue)")


@register_model("kim-cnn", input_kind="tokens")
def kim_cnn(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Kim CNN with Tanh (the paper, App. A.3) for token features shaped (max_length, embed_dim)."""
    _check_text_shape(input_shape, "kim-cnn")
    return KimCNN(embed_dim=input_shape[1], num_classes=num_classes, activation="tanh")


@register_model("kim-cnn-relu", input_kind="tokens")
def kim_cnn_relu(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Kim CNN with ReLU (Kim 2014's choice, not the paper's)."""
    _check_text_shape(input_shape, "kim-cnn-relu")
    return KimCNN(embed_dim=input_shape[1], num_classes=num_classes, activation="relu")
