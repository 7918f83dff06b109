"""A trainable Hugging Face encoder with one classification head per task (the language baselines' model).

`EncoderNet` has the interface of the dense baselines' `MultiHeadNet` (features, per-task heads, mixed
cross-entropy), so the dense loop, replay buffer and hooks run unchanged on raw-text inputs
(input_ids, attention_mask). Features are the attention-masked mean of the last hidden states.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from exssnet.data.text_tokens import load_pretrained
from exssnet.methods.baselines.multihead import MultiHeadNet


def load_encoder(name: str) -> nn.Module:
    """A Hugging Face encoder (AutoModel) by name or folder ('minilm': the offline MiniLM package)."""
    return load_pretrained("AutoModel", name, "encoder")


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of hidden states (B, L', D) over real tokens; positions the encoder prepended (prompts) count as real."""
    if hidden.shape[1] != mask.shape[1]:
        mask = torch.cat([mask.new_ones(mask.shape[0], hidden.shape[1] - mask.shape[1]), mask], dim=1)
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def trim_padding(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch without its trailing columns that no example attends to (a split is padded to its longest text,
    a batch rarely is): the encoder's outputs at real tokens are the same, the work is about half on text-offline."""
    attended = mask.any(dim=0).nonzero()
    length = int(attended[-1]) + 1 if len(attended) else 1
    return (ids[:, :length], mask[:, :length]) if length < ids.shape[1] else (ids, mask)


EVAL_CHUNK = 64  # texts per encoder call when a large batch is scored in eval mode


def length_chunks(mask: torch.Tensor, size: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Row indices in chunks of `size` by decreasing text length, and the permutation that restores input order."""
    order = mask.sum(dim=1).argsort(descending=True, stable=True)
    return list(order.split(size)), order.argsort()


class PooledEncoder(nn.Module):
    """(input_ids, attention_mask) -> pooled features (B, D), the batch's trailing padding trimmed first.

    In eval mode a batch of more than `EVAL_CHUNK` texts (a test split is scored in batches of 1024) is encoded in
    chunks of texts of similar length, each trimmed to its own longest text: on text-offline's test splits about
    half the tokens of one call padded to the longest text. Each text's features are the same up to float
    rounding. Training batches are encoded as they come (dropout draws stay as they were).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.width = int(model.config.hidden_size)

    def hidden(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=ids, attention_mask=mask).last_hidden_state

    def pooled(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ids, mask = trim_padding(ids, mask)
        return masked_mean(self.hidden(ids, mask), mask)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.training or len(ids) <= EVAL_CHUNK:
            return self.pooled(ids, mask)
        chunks, restore = length_chunks(mask, EVAL_CHUNK)
        return torch.cat([self.pooled(ids[rows], mask[rows]) for rows in chunks])[restore]


class EncoderNet(MultiHeadNet):
    """A pooled encoder as the trunk (feature width = hidden size) and per-task Linear heads."""

    def __init__(self, trunk: nn.Module, feature_dim: int) -> None:
        nn.Module.__init__(self)
        self.trunk, self.feature_dim = trunk, feature_dim
        self.heads = nn.ModuleList()
        self.shared_head = None


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy in eval mode with no trainable parameter (a teacher / key network)."""
    teacher = copy.deepcopy(module).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher
