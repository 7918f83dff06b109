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


class KimCNN(nn.Module):
    """Parallel bias-free Conv1d of several widths + ReLU, masked max-pool over time, bias-free head."""

    def __init__(self, embed_dim: int, num_classes: int, widths: tuple[int, ...] = (3, 4, 5), filters: int = 200) -> None:
        super().__init__()
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
            out = torch.relu(conv(x))  # (B, F, L_out)
            # a window starting at i is real if it starts on a real token and ends in range: i <= max(len - w, 0)
            starts = torch.arange(out.shape[-1], device=out.device)
            valid = starts.unsqueeze(0) <= (lengths - width).clamp(min=0).unsqueeze(1)
            pooled.append(out.masked_fill(~valid.unsqueeze(1), float("-inf")).amax(dim=-1))
        return torch.cat(pooled, dim=1)

    def forward(self, tokens: torch.Tensor, mask_or_lengths: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(tokens, mask_or_lengths))


@register_model("kim-cnn")
def kim_cnn(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Kim CNN for token features shaped (max_length, embed_dim)."""
    if len(input_shape) != 2:
        raise ExssnetError(f"kim-cnn needs token features shaped (length, embed_dim), got {input_shape}; "
                           "use it with a text benchmark (text-offline, webnlp, glue)")
    return KimCNN(embed_dim=input_shape[1], num_classes=num_classes)
