"""Depth, teacher and uncertainty losses: golden values, masks, per-sample reduction."""

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file
import torch

from rcdepth_ros.models.outputs import TeacherOutput
from rcdepth_ros.training.distill import LossWeights, teacher_loss
from rcdepth_ros.training.losses import (
    bce_confidence_loss,
    gt_masks,
    l1_depth_loss,
    laplace_nll,
    masked_mean,
    nll_target,
    rectification_weights,
    rectified_depth_loss,
    smoothness_loss,
)

FIXTURES = Path(__file__).resolve().parent / 'fixtures' / 'losses'


@pytest.fixture(scope='module')
def golden():
    inputs = {k: v.double() for k, v in load_file(str(FIXTURES / 'inputs.safetensors')).items()}
    expected = json.loads((FIXTURES / 'expected.json').read_text())
    return inputs, expected


def _gt(seed: int, b: int = 2, h: int = 8, w: int = 12):
    g = torch.Generator().manual_seed(seed)
    pred = 1.0 + 59.0 * torch.rand(b, 1, h, w, generator=g)
    dense = (1.0 + 59.0 * torch.rand(b, 1, h, w, generator=g)) \
        * (torch.rand(b, 1, h, w, generator=g) < 0.6)
    single = (1.0 + 59.0 * torch.rand(b, 1, h, w, generator=g)) \
        * (torch.rand(b, 1, h, w, generator=g) < 0.3)
    single[-1, :, h // 2:] = 0.0  # samples with different mask sizes expose broadcasting
    return pred, dense, single


def test_golden_values(golden):
    x, e = golden
    m_s, _ = gt_masks(x['depth_single'], x['depth_dense'])
    target, valid = nll_target(x['depth_single'], x['depth_dense'])
    got = {
        'rectified_depth_loss': rectified_depth_loss(x['pred'], x['depth_dense'],
                                                     x['depth_single']),
        'smoothness_loss': smoothness_loss(x['pred'], x['image']),
        'laplace_nll': laplace_nll(x['pred'], x['log_scale'], target, valid),
        'bce_confidence_loss': bce_confidence_loss(x['confidence'], x['confidence_gt'],
                                                   x['depth_dense'] > 0.01),
        'l1_single': l1_depth_loss(x['pred'], x['depth_single'], m_s),
    }
    for name, value in got.items():
        torch.testing.assert_close(value.item(), e[name], rtol=1e-6, atol=1e-9, msg=name)


def test_masks_are_disjoint_and_thresholded():
    single = torch.tensor([[[[0.0, 0.005, 2.0, 3.0]]]])
    dense = torch.tensor([[[[1.0, 0.02, 2.5, 0.0]]]])
    m_s, m_d = gt_masks(single, dense)
    torch.testing.assert_close(m_s, torch.tensor([[[[0.0, 0.0, 1.0, 1.0]]]]))
    torch.testing.assert_close(m_d, torch.tensor([[[[1.0, 1.0, 0.0, 0.0]]]]))


def test_rectification_weights_reference_form():
    # On an M_d-only pixel u_s = 1, so w_d = e^{u_d} / (e^{u_d} + e) (LiRCDepth reference).
    pred = torch.tensor([[[[10.0, 10.0]]]])
    dense = torch.tensor([[[[12.0, 0.0]]]])
    single = torch.tensor([[[[0.0, 9.0]]]])
    m_s, m_d = gt_masks(single, dense)
    w_d, w_s = rectification_weights(pred, dense, single, m_d, m_s)
    u_d = 1.0 - torch.exp(torch.tensor(-5.0 * 2.0 / 22.0))
    u_s = 1.0 - torch.exp(torch.tensor(-5.0 * 1.0 / 19.0))
    torch.testing.assert_close(w_d[0, 0, 0, 0], torch.exp(u_d) / (torch.exp(u_d) + torch.e))
    torch.testing.assert_close(w_s[0, 0, 0, 1], torch.exp(u_s) / (torch.exp(u_s) + torch.e))
    torch.testing.assert_close(w_d + w_s, torch.ones_like(w_d))


@pytest.mark.parametrize('detach', [False, True])
def test_rectified_loss_per_sample_not_broadcast(detach):
    pred, dense, single = _gt(0)
    batch = rectified_depth_loss(pred, dense, single, detach_weights=detach)
    singles = [rectified_depth_loss(pred[i:i + 1], dense[i:i + 1], single[i:i + 1],
                                    detach_weights=detach) for i in range(2)]
    torch.testing.assert_close(batch, (singles[0] + singles[1]) / 2)


def test_other_losses_per_sample():
    pred, dense, single = _gt(1)
    torch.manual_seed(1)
    image = torch.randn(2, 3, 8, 12)
    log_scale = torch.randn(2, 1, 8, 12)
    target, valid = nll_target(single, dense)
    conf = torch.rand(2, 1, 8, 12).clamp(0.01, 0.99)
    conf_gt = (torch.rand(2, 1, 8, 12) < 0.5).float()
    fns = {
        'smooth': lambda s: smoothness_loss(pred[s], image[s]),
        'nll': lambda s: laplace_nll(pred[s], log_scale[s], target[s], valid[s]),
        'bce': lambda s: bce_confidence_loss(conf[s], conf_gt[s], dense[s] > 0.01),
        'l1': lambda s: l1_depth_loss(pred[s], single[s], single[s] > 0.01),
    }
    for name, fn in fns.items():
        expected = (fn(slice(0, 1)) + fn(slice(1, 2))) / 2
        torch.testing.assert_close(fn(slice(0, 2)), expected, msg=name)


def test_values_outside_masks_do_not_matter():
    pred, dense, single = _gt(2)
    no_gt = (dense <= 0.01) & (single <= 0.01)
    assert no_gt.any()
    changed = torch.where(no_gt, torch.full_like(pred, 1234.0), pred)
    torch.testing.assert_close(rectified_depth_loss(changed, dense, single),
                               rectified_depth_loss(pred, dense, single))
    log_scale = torch.zeros_like(pred)
    target, valid = nll_target(single, dense)
    torch.testing.assert_close(laplace_nll(changed, log_scale, target, valid),
                               laplace_nll(pred, log_scale, target, valid))
    # Gradient of the depth loss is exactly zero where there is no ground truth.
    pred = pred.clone().requires_grad_(True)
    rectified_depth_loss(pred, dense, single).backward()
    assert torch.all(pred.grad[no_gt] == 0)
    assert torch.any(pred.grad[~no_gt] != 0)


def test_empty_mask_sample_contributes_zero():
    values = torch.ones(2, 1, 3, 4)
    mask = torch.zeros(2, 1, 3, 4)
    mask[0] = 1.0
    torch.testing.assert_close(masked_mean(values, mask), torch.tensor(0.5))
    pred = torch.full((1, 1, 3, 4), 5.0, requires_grad=True)
    zero = torch.zeros(1, 1, 3, 4)
    loss = rectified_depth_loss(pred, zero, zero)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(pred.grad).all()


def test_laplace_nll_detaches_depth_and_trains_scale():
    pred, dense, single = _gt(3)
    pred = pred.requires_grad_(True)
    log_scale = torch.zeros_like(pred, requires_grad=True)
    target, valid = nll_target(single, dense)
    laplace_nll(pred, log_scale, target, valid).backward()
    assert pred.grad is None
    assert log_scale.grad.abs().sum() > 0
    # The optimum of |e| / b + log b is b = |e|: the gradient there vanishes.
    err = (pred.detach() - target).abs().clamp_min(1e-3)
    opt = torch.log(err).requires_grad_(True)
    laplace_nll(pred.detach(), opt, target, valid).backward()
    torch.testing.assert_close(opt.grad, torch.zeros_like(opt.grad), atol=1e-6, rtol=0)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match='shape'):
        rectified_depth_loss(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 5),
                             torch.rand(1, 1, 4, 4))
    with pytest.raises(ValueError):
        smoothness_loss(torch.rand(1, 1, 4, 4), torch.rand(1, 3, 5, 4))


def _teacher_output(b=2, h=8, w=12, seed=0) -> TeacherOutput:
    g = torch.Generator().manual_seed(seed)

    def leaf(*shape):
        return torch.rand(*shape, generator=g).requires_grad_(True)

    return TeacherOutput(
        depth=(100 * leaf(b, 1, h, w)).detach().requires_grad_(True),
        confidence=leaf(b, 1, h, w),
        coarse_depth=(100 * leaf(b, 1, h, w)).detach().requires_grad_(True),
        inter_depths=(leaf(b, 1, h, w),) * 3,
        decoder_features=(), image_features=(), radar_features=(), xkd_features=(),
    )


def test_teacher_loss_terms_and_gradients():
    out = _teacher_output()
    _, dense, single = _gt(4)
    torch.manual_seed(4)
    batch = {'image': torch.randn(2, 3, 8, 12), 'radar': torch.zeros(2, 4, 8, 12),
             'depth_single': single, 'depth_dense': dense,
             'confidence_gt': (torch.rand(2, 1, 8, 12) < 0.3).float()}
    total, terms = teacher_loss(out, batch)
    assert set(terms) == {'dense', 'single', 'confidence', 'coarse', 'smoothness'}
    w = LossWeights()
    expected = (terms['dense'] + terms['single'] + w.teacher_confidence * terms['confidence']
                + 0.5 * terms['coarse'] + 0.001 * terms['smoothness'])
    torch.testing.assert_close(total.detach(), expected)
    total.backward()
    for name in ('depth', 'confidence', 'coarse_depth'):
        assert getattr(out, name).grad.abs().sum() > 0, name
    with pytest.raises(ValueError, match='confidence_gt'):
        teacher_loss(out, {k: v for k, v in batch.items() if k != 'confidence_gt'})
