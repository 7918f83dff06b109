"""Length-grouped training batches: every index once per epoch, random, and much less padding than random batches."""

import pytest
import torch

from exssnet.data.length_batches import length_grouped_batches, padded_tokens


def mixed_lengths(n: int = 400) -> list[int]:
    """Short texts with a long one in every ten, like a task's texts next to long pseudo texts."""
    gen = torch.Generator().manual_seed(1)
    return [int(torch.randint(100, 130, (1,), generator=gen)) if i % 10 == 0 else
            int(torch.randint(8, 30, (1,), generator=gen)) for i in range(n)]


def random_batches(n: int, size: int, generator: torch.Generator) -> list[list[int]]:
    order = torch.randperm(n, generator=generator).tolist()
    return [order[k : k + size] for k in range(0, n, size)]


def test_every_index_comes_once_in_batches_of_at_most_the_size():
    lengths = mixed_lengths(403)
    batches = length_grouped_batches(lengths, 8, torch.Generator().manual_seed(0))
    assert sorted(i for b in batches for i in b) == list(range(403))
    assert max(len(b) for b in batches) == 8 and min(len(b) for b in batches) >= 1


def test_grouped_batches_carry_far_less_padding_than_random_ones():
    lengths = mixed_lengths()
    grouped = padded_tokens(length_grouped_batches(lengths, 8, torch.Generator().manual_seed(0)), lengths)
    shuffled = padded_tokens(random_batches(len(lengths), 8, torch.Generator().manual_seed(0)), lengths)
    assert grouped < 0.5 * shuffled and grouped >= sum(lengths)


def test_the_order_is_random_but_seeded():
    lengths = mixed_lengths()
    first = length_grouped_batches(lengths, 8, torch.Generator().manual_seed(0))
    assert first == length_grouped_batches(lengths, 8, torch.Generator().manual_seed(0))
    assert first != length_grouped_batches(lengths, 8, torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(0)
    assert length_grouped_batches(lengths, 8, gen) != length_grouped_batches(lengths, 8, gen)  # a new epoch, a new order
    # the batch order is shuffled: a batch's longest text does not grow along the epoch
    longest = [max(lengths[i] for i in b) for b in first]
    assert longest != sorted(longest)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="batch_size and window"):
        length_grouped_batches([3, 4], 0, torch.Generator())
