import math

import pytest
import torch
from torch import nn

from exssnet import to_supermask
from exssnet.layers import MaskedConv1d, MaskedConv2d, MaskedLinear, View, pack_mask, topk_mask, unpack_mask


class _StraightThroughTopK(torch.autograd.Function):
    """Test oracle: forward the 0/1 top-k mask of the input; backward pass the gradient through unchanged."""

    @staticmethod
    def forward(ctx, magnitudes, density):
        return topk_mask(magnitudes, density).to(magnitudes.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output, None


def straight_through_mask(scores, density):
    """Float 0/1 mask of top-k |scores|, differentiable w.r.t. `scores` by straight-through (SupSup's GetSubnet)."""
    return _StraightThroughTopK.apply(scores.abs(), density)


@pytest.mark.parametrize("density", [0.01, 0.05, 0.1, 0.333, 0.5, 1.0])
@pytest.mark.parametrize(
    "layer",
    [
        lambda d: MaskedLinear(37, 11, density=d),
        lambda d: MaskedConv2d(3, 5, 3, padding=1, density=d),
        lambda d: MaskedConv1d(4, 6, 5, density=d),
    ],
)
def test_topk_keeps_ceil_density_times_numel(layer, density):
    layer = layer(density)
    layer.add_task(0)
    layer.select(View.SCORES, 0)
    kept = int((layer.effective_weight() != 0).sum())
    assert kept == max(1, math.ceil(density * layer.weight.numel()))


def test_topk_mask_selects_largest_magnitudes():
    scores = torch.tensor([[0.1, -5.0, 0.3], [4.0, -0.2, 0.0]])
    mask = topk_mask(scores, 2 / 6)
    assert mask.tolist() == [[False, True, False], [True, False, False]]


def test_straight_through_gradient_reaches_every_score():
    scores = torch.randn(20, 10, requires_grad=True)
    upstream = torch.randn(20, 10)
    (straight_through_mask(scores, 0.1) * upstream).sum().backward()
    # d|s|/ds = sign(s): the mask's gradient passes through unchanged to every score, kept or not
    assert torch.allclose(scores.grad, upstream * scores.detach().sign())


def test_mask_phase_gradient_flows_to_scores_not_weights():
    net = to_supermask(nn.Sequential(nn.Linear(8, 4)), density=0.5)
    net.add_task(4)
    layer = net.model[0]
    assert net.trainable_parameters() == [layer.scores["0"]]
    net(torch.randn(3, 8)).sum().backward()
    assert layer.scores["0"].grad is not None and layer.scores["0"].grad.abs().sum() > 0
    assert layer.weight.grad is None


def test_weights_are_signed_kaiming_constants():
    layer = MaskedConv2d(3, 8, 3, density=0.5)
    expected = math.sqrt(2.0 / (3 * 3 * 3))
    assert torch.allclose(layer.weight.abs(), torch.full_like(layer.weight, expected))
    assert 0.3 < (layer.weight > 0).float().mean() < 0.7
    assert layer.bias is None


@pytest.mark.parametrize("shape", [(1,), (7,), (8,), (9, 13), (3, 4, 5, 5)])
def test_pack_unpack_round_trip_uses_one_bit_per_entry(shape):
    mask = torch.rand(shape) > 0.5
    packed = pack_mask(mask)
    assert packed.dtype == torch.uint8 and packed.numel() == math.ceil(mask.numel() / 8)
    assert torch.equal(unpack_mask(packed, mask.shape), mask)


def test_unpack_rejects_wrong_size():
    with pytest.raises(ValueError):
        unpack_mask(torch.zeros(3, dtype=torch.uint8), (100,))


def test_masked_layers_match_dense_ops_with_masked_weight():
    conv = MaskedConv2d(2, 3, 3, stride=2, padding=1, density=0.3)
    conv.add_task(0)
    conv.select(View.SCORES, 0)
    x = torch.randn(2, 2, 9, 9)
    w = conv.effective_weight().detach()
    assert torch.allclose(conv(x), nn.functional.conv2d(x, w, stride=2, padding=1))


def test_frozen_masked_weight_cache_follows_weight_updates_and_task_switches():
    layer = MaskedLinear(6, 4, density=0.5)
    for t in range(2):
        layer.add_task(t)
        layer.commit(t)
    x = torch.randn(3, 6)
    layer.select(View.MASK, 0)
    with torch.no_grad():
        before = layer(x)
        layer.weight.mul_(2.0)  # an optimizer step changes the weight in place
        assert torch.allclose(layer(x), 2 * before)
        layer.select(View.MASK, 1)
        expected = nn.functional.linear(x, layer.weight * layer.mask_of(1))
        assert torch.equal(layer(x), expected)


def test_topk_ties_are_broken_as_torch_topk_breaks_them():
    scores = torch.tensor([3.0, 1.0, -2.0, 2.0, 0.5, 2.0, -2.0])
    mask = topk_mask(scores, 3 / 7)
    picked = torch.zeros(7, dtype=torch.bool)
    picked[torch.topk(scores.abs(), 3, sorted=False).indices] = True
    assert torch.equal(mask, picked) and mask[0] and int(mask.sum()) == 3


def test_threshold_tracker_matches_topk_mask_every_step():
    from exssnet.layers.topk import ThresholdTracker, kept_count

    torch.manual_seed(0)
    for numel, density, dtype in [(5000, 0.1, torch.float32), (37, 0.05, torch.float32), (300, 0.9, torch.float32),
                                  (400, 0.1, torch.float64)]:  # float64: the exact path other devices use
        scores, tracker = torch.randn(numel, dtype=dtype) * 0.05, ThresholdTracker()
        k = kept_count(numel, density)
        for step in range(60):
            scores += torch.randn(numel) * 1e-3 * (1 + step % 5)
            if step % 10 == 9:  # some exact ties at the threshold
                scores[: numel // 3] = scores[numel // 3 : 2 * (numel // 3)].neg()
            assert torch.equal(tracker.float_mask(scores.abs(), k).bool(), topk_mask(scores, density))


def test_threshold_tracker_matches_topk_mask_under_training_drift():
    """Adam-sized moves of every score each step (the band search path), quantised scores (ties), a jump."""
    from exssnet.layers.topk import ThresholdTracker, kept_count

    generator = torch.Generator().manual_seed(3)
    for numel, density, quantum in [(20000, 0.1, 0.0), (3000, 0.3, 0.0), (4000, 0.1, 1e-3), (50, 0.1, 0.0)]:
        scores, tracker = torch.randn(numel, generator=generator) * 0.05, ThresholdTracker()
        k = kept_count(numel, density)
        for step in range(40):
            scores += torch.randn(numel, generator=generator).sign() * 0.01 * (0.2 + step % 3)
            if quantum:
                scores = (scores / quantum).round() * quantum  # many exact ties
            if step == 25:
                scores *= 3.0  # a large jump of the threshold
            mask = tracker.float_mask(scores.abs(), k).bool()
            assert torch.equal(mask, topk_mask(scores, density)), (numel, step)


def test_fused_mask_phase_weight_equals_weight_times_straight_through_mask():
    from exssnet.layers.topk import ThresholdTracker, kept_count, score_masked_weight

    torch.manual_seed(1)
    weight = torch.randn(30, 20, requires_grad=True)
    scores = torch.randn(30, 20, requires_grad=True)
    upstream = torch.randn(30, 20)
    tracker = ThresholdTracker()
    for _ in range(2):  # a cold and a warm threshold
        fused = score_masked_weight(weight, scores, tracker, kept_count(600, 0.1))
        grads = torch.autograd.grad((fused * upstream).sum(), [weight, scores])
        plain = weight * straight_through_mask(scores, 0.1)
        expected = torch.autograd.grad((plain * upstream).sum(), [weight, scores])
        assert torch.equal(fused, plain)
        assert all(torch.equal(a, b) for a, b in zip(grads, expected))


def test_fused_mask_phase_gradient_with_two_forwards_before_one_backward():
    """The reused scratch tensor (|scores| in the forward, sign in the backward) never leaks across calls."""
    from exssnet.layers.topk import ThresholdTracker, kept_count, score_masked_weight

    torch.manual_seed(2)
    weight = torch.randn(12, 10)
    scores = torch.randn(12, 10, requires_grad=True)
    scores.data[0, :3] = 0.0  # sign(0) = 0: no gradient for exact zeros
    up1, up2 = torch.randn(12, 10), torch.randn(12, 10)
    tracker, k = ThresholdTracker(), kept_count(120, 0.2)
    first = score_masked_weight(weight, scores, tracker, k)
    second = score_masked_weight(weight * 2, scores, tracker, k)  # a second forward reuses the scratch
    (grad,) = torch.autograd.grad((first * up1 + second * up2).sum(), [scores])
    plain = weight * straight_through_mask(scores, 0.2)
    plain2 = (weight * 2) * straight_through_mask(scores, 0.2)
    (expected,) = torch.autograd.grad((plain * up1 + plain2 * up2).sum(), [scores])
    assert torch.equal(grad, expected) and torch.equal(grad[0, :3], torch.zeros(3))
    # a recorded backward (create_graph) keeps its own sign tensor: a later forward cannot change it
    leaf = weight.clone().requires_grad_(True)
    fused = score_masked_weight(leaf, scores, tracker, k)
    (graded,) = torch.autograd.grad((fused * up1).sum(), [scores], create_graph=True)
    score_masked_weight(weight, -scores.detach(), tracker, k)  # overwrites the scratch
    (second_order,) = torch.autograd.grad(graded.sum(), [leaf])  # d/dweight of sum(up1 * sign(scores))
    assert torch.equal(second_order, up1 * scores.detach().sign())


@pytest.mark.parametrize("free_share", [0.0, 0.6, 1.0])
def test_fused_joint_weight_equals_scatter_then_score_mask(free_share):
    """WSN's one-op weight: values and gradients equal to `scatter_compact` followed by `score_masked_weight`
    (each with its own tracker), step after step, for a layer with no, some and only free entries."""
    from exssnet.layers.topk import ThresholdTracker, joint_masked_weight, kept_count, scatter_compact, score_masked_weight

    generator = torch.Generator().manual_seed(5)
    base = torch.randn(40, 30, generator=generator)
    index = (torch.rand(1200, generator=generator) < free_share).nonzero().reshape(-1)
    compact = base.reshape(-1)[index].clone().requires_grad_(index.numel() > 0)
    scores = (torch.randn(40, 30, generator=generator) * 0.05).requires_grad_(True)
    fused_tracker, plain_tracker, k = ThresholdTracker(), ThresholdTracker(), kept_count(1200, 0.1)
    params = [p for p in (compact, scores) if p.requires_grad]
    for step in range(6):  # a cold, then warm thresholds; the fused op reuses what its backward gave back
        upstream = torch.randn(40, 30, generator=generator)
        fused = joint_masked_weight(compact, base, index, scores, fused_tracker, k)
        grads = torch.autograd.grad((fused * upstream).sum(), params)
        weight = scatter_compact(compact, base, index) if index.numel() else base
        plain = score_masked_weight(weight, scores, plain_tracker, k)
        expected = torch.autograd.grad((plain * upstream).sum(), params)
        assert torch.equal(fused, plain), step
        assert all(torch.equal(a, b) for a, b in zip(grads, expected)), step
        with torch.no_grad():  # an optimizer step
            scores.add_(torch.randn(40, 30, generator=generator).sign() * 0.01)
            compact.add_(0.1)
    # a weight given back is reused only with its own base: another base (a new phase) gets a fresh copy
    other = torch.randn(40, 30, generator=generator)
    fused = joint_masked_weight(compact, other, index, scores, fused_tracker, k)
    weight = scatter_compact(compact, other, index) if index.numel() else other
    assert torch.equal(fused, score_masked_weight(weight, scores, plain_tracker, k))


def test_fused_joint_weight_two_forwards_one_backward_and_a_stale_retained_graph():
    """The fused op lends its mask and weight to the graph: a second forward before the backward gets its own,
    and a retained graph's second backward after a newer forward fails loudly instead of reading reused memory."""
    from exssnet.layers.topk import ThresholdTracker, joint_masked_weight, kept_count, scatter_compact, score_masked_weight

    generator = torch.Generator().manual_seed(6)
    base = torch.randn(20, 10, generator=generator)
    index = (torch.rand(200, generator=generator) < 0.5).nonzero().reshape(-1)
    compact = torch.randn(index.numel(), generator=generator, requires_grad=True)
    scores = torch.randn(20, 10, generator=generator, requires_grad=True)
    up1, up2 = torch.randn(20, 10, generator=generator), torch.randn(20, 10, generator=generator)
    tracker, k = ThresholdTracker(), kept_count(200, 0.2)
    first = joint_masked_weight(compact, base, index, scores, tracker, k)
    second = joint_masked_weight(compact * 2, base, index, -scores, tracker, k)
    grads = torch.autograd.grad((first * up1 + second * up2).sum(), [compact, scores])
    plain_tracker = ThresholdTracker()
    plain1 = score_masked_weight(scatter_compact(compact, base, index), scores, plain_tracker, k)
    plain2 = score_masked_weight(scatter_compact(compact * 2, base, index), -scores, ThresholdTracker(), k)
    expected = torch.autograd.grad((plain1 * up1 + plain2 * up2).sum(), [compact, scores])
    assert all(torch.equal(a, b) for a, b in zip(grads, expected))
    retained = (joint_masked_weight(compact, base, index, scores, tracker, k) * up1).sum()
    retained.backward(retain_graph=True)  # gives the mask and the weight back to the tracker
    joint_masked_weight(compact.detach() + 1, base, index, scores.detach() * 3, tracker, k)  # reuses them
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        retained.backward()


def test_weight_phase_layer_without_trainable_entries_uses_its_frozen_weight():
    layer = MaskedLinear(8, 6, density=0.25)
    layer.add_task(0)
    mask, _ = layer.commit(0)
    compact = layer.start_compact(0, torch.zeros_like(mask))
    assert compact.numel() == 0 and not compact.requires_grad
    assert torch.equal(layer.effective_weight(), layer.weight * mask)
    out = layer(torch.randn(3, 8))
    assert out.shape == (3, 6) and not out.requires_grad


def test_mask_phase_buffers_are_freed_when_the_mask_is_committed():
    layer = MaskedConv2d(4, 6, 3, density=0.2)
    layer.add_task(0)
    layer.select(View.SCORES, 0)
    layer.effective_weight().sum().backward()  # the tracker's mask buffer and scratch exist now
    assert len(layer.cached_tensors()) == 2
    layer.commit(0)
    assert layer.cached_tensors() == []


def test_inference_weight_is_computed_when_a_task_is_selected():
    layer = MaskedLinear(6, 4, density=0.5)
    layer.add_task(0)
    layer.commit(0)
    layer.select(View.MASK, 0)
    ready = layer.effective_weight()
    assert torch.equal(ready, layer.weight * layer.mask_of(0))
    layer.select(View.MASK, 0)  # selecting the same task again reuses it
    assert layer.effective_weight() is ready


def test_batchnorm_eval_fast_path_equals_the_task_module():
    from exssnet.layers import MultitaskBatchNorm

    norm = MultitaskBatchNorm(5, dims=2)
    for t in range(2):
        norm.add_task(t)
        norm.set_task(t)
        norm.train()
        norm(torch.randn(8, 5, 3, 3) * (t + 1) + t)  # distinct running statistics per task
    norm.eval()
    x = torch.randn(4, 5, 3, 3)
    for t in range(2):
        norm.set_task(t)
        assert torch.equal(norm(x), norm.norms[t].eval()(x))
    assert sorted(norm.state_dict()) == sorted(f"norms.{t}.{s}" for t in range(2)
                                               for s in ("running_mean", "running_var", "num_batches_tracked"))


def test_batchnorm_training_fast_path_equals_the_task_module():
    from exssnet.layers import MultitaskBatchNorm

    torch.manual_seed(0)
    for dims, shape, momentum in [(2, (8, 5, 3, 3), 0.1), (1, (16, 5), None)]:
        fast = MultitaskBatchNorm(5, dims=dims, momentum=momentum)
        fast.add_task(0)
        fast.set_task(0)
        reference = torch.nn.BatchNorm2d(5, affine=False, momentum=momentum) if dims == 2 else \
            torch.nn.BatchNorm1d(5, affine=False, momentum=momentum)
        fast.train()
        for step in range(3):
            x = (torch.randn(*shape) * (step + 1)).requires_grad_(True)
            upstream = torch.randn(*shape)
            out = fast(x)
            (grad,) = torch.autograd.grad(out, x, upstream)
            x_ref = x.detach().clone().requires_grad_(True)
            if momentum is not None:  # a plain mean until 1/momentum batches were seen (running_factor)
                reference.momentum = max(momentum, 1.0 / (step + 1))
            out_ref = reference(x_ref)
            (grad_ref,) = torch.autograd.grad(out_ref, x_ref, upstream)
            assert torch.equal(out, out_ref) and torch.equal(grad, grad_ref)
        for stat in ("running_mean", "running_var", "num_batches_tracked"):
            assert torch.equal(getattr(fast.norms[0], stat), getattr(reference, stat))


@pytest.mark.parametrize("half", [False, True])
def test_batchnorm_running_statistics_of_a_few_batches_are_those_of_the_data(half):
    """After 3 batches the statistics are the batches' own, not 73% (0.9^3) the starting mean 0 / variance 1.

    A supermask's activations on a short task (split-digits: 3 batches an epoch) have variance ~1e-3;
    torch's momentum rule alone left running_var ~300x too large and evaluation at chance.
    """
    from exssnet.layers import MultitaskBatchNorm

    torch.manual_seed(0)
    norm = MultitaskBatchNorm(4, dims=2)
    norm.add_task(0)
    norm.set_task(0)
    norm.train()
    batches = [torch.randn(64, 4, 3, 3) * 0.03 + 2.0 for _ in range(3)]
    for x in batches:
        norm(x.bfloat16() if half else x)  # bfloat16: the mixed-precision path
    data = torch.cat(batches)
    stats = norm.statistics(0)
    assert torch.allclose(stats["running_mean"], data.mean(dim=(0, 2, 3)), rtol=0.01)
    assert torch.allclose(stats["running_var"], data.var(dim=(0, 2, 3)), rtol=0.1)
    norm.eval()
    assert abs(float(norm(data).std()) - 1.0) < 0.1  # evaluation normalises like training


@pytest.mark.parametrize("make, op", [
    (lambda: MaskedLinear(30, 12, density=0.2), nn.functional.linear),
    (lambda: MaskedConv2d(3, 5, 3, stride=2, padding=1, density=0.15),
     lambda x, w: nn.functional.conv2d(x, w, stride=2, padding=1)),
])
def test_fast_mask_phase_forward_equals_supsups_reference_forward(make, op):
    """`reference_forward` (SupSup's plain masked forward) is what the fast View.SCORES path computes, value and gradient."""
    from exssnet.layers import reference_forward

    torch.manual_seed(0)
    layer = make()
    layer.add_task(0)
    layer.select(View.SCORES, 0)
    x = torch.randn(4, 30) if isinstance(layer, MaskedLinear) else torch.randn(4, 3, 9, 9)
    scores = layer.scores["0"]
    for step in range(3):  # the warm-started threshold of later steps too
        fast = layer(x)
        (fast_grad,) = torch.autograd.grad((fast * fast).sum(), scores)
        reference = reference_forward(x, layer.weight, scores, layer.density, op)
        (reference_grad,) = torch.autograd.grad((reference * reference).sum(), scores)
        assert torch.equal(fast, reference) and torch.equal(fast_grad, reference_grad)
        with torch.no_grad():
            scores.sub_(0.5 * fast_grad)
