"""Contract tests of the CaFNet teacher and its blocks (random init, small H != W inputs)."""

import dataclasses
import math

import pytest
import torch
import torchvision

from rcdepth_ros.models import resnet as resnet_module
from rcdepth_ros.models.bts import DenseASPP, LocalPlanarGuidance, PlaneReduction
from rcdepth_ros.models.cafnet import CaFNet, CaFNetConfig
from rcdepth_ros.models.outputs import TeacherOutput
from rcdepth_ros.models.resnet import ResNetFeatures
from rcdepth_ros.models.sparse_conv import SparseConv2d, SparseConvStem
from rcdepth_ros.models.variants import strict_from_dict

H, W = 64, 96


def make_inputs(batch: int, seed: int = 0, h: int = H, w: int = W
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """ImageNet-like image and a sparse radar image with 40 points per sample."""
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(batch, 3, h, w, generator=g)
    radar = torch.zeros(batch, 4, h, w)
    for b in range(batch):
        idx = torch.randperm(h * w, generator=g)[:40]
        radar[b, 0].view(-1)[idx] = 1.0 + 79.0 * torch.rand(40, generator=g)  # z-depth, m
        radar[b, 1:].view(3, -1)[:, idx] = torch.randn(3, 40, generator=g)  # rcs, vx, vy
    return image, radar


@pytest.fixture(scope='module')
def model() -> CaFNet:
    torch.manual_seed(0)
    return CaFNet(CaFNetConfig())


def test_parameter_count_matches_reference(model):
    # 62.25 M reported minus the three unused 1000-way ResNet heads (3 x 513,000).
    count = sum(p.numel() for p in model.parameters())
    assert abs(count - 60.71e6) / 60.71e6 < 0.02, count


@pytest.fixture(scope='module')
def eval_run(model) -> tuple[torch.Tensor, torch.Tensor, TeacherOutput]:
    """One eval-mode forward of a batch of 2, shared by the read-only tests."""
    model.eval()
    image, radar = make_inputs(2)
    # Record the stage-2 input to check the confidence gating without another forward.
    handle = model.refine_stem.register_forward_hook(
        lambda module, args, out: setattr(module, 'seen_input', args[0]))
    with torch.no_grad():
        out = model(image, radar)
    handle.remove()
    return image, radar, out


def test_stage2_input_is_confident_coarse_depth_and_radar(model, eval_run):
    _, radar, out = eval_run
    seen = model.refine_stem.__dict__.pop('seen_input')
    keep = (out.confidence > 0.4).float()
    torch.testing.assert_close(seen, torch.cat([keep * out.coarse_depth, radar], dim=1))


def test_output_shapes_ranges_and_finite(eval_run):
    _, _, out = eval_run
    assert isinstance(out, TeacherOutput)
    for name in ('depth', 'confidence', 'coarse_depth'):
        assert getattr(out, name).shape == (2, 1, H, W), name
    assert [t.shape for t in out.inter_depths] == [(2, 1, H, W)] * 3
    widths = CaFNetConfig().decoder_widths
    assert [tuple(t.shape) for t in out.decoder_features] == [
        (2, c, H // s, W // s) for c, s in zip(widths, (16, 8, 4, 2, 1))]
    assert [tuple(t.shape) for t in out.image_features] == [
        (2, c, H // s, W // s) for c, s in zip((64, 64, 128, 256, 512), (2, 4, 8, 16, 32))]
    assert [tuple(t.shape) for t in out.radar_features] == [
        (2, c, H // s, W // s) for c, s in zip((64, 128, 128, 512, 512), (2, 4, 8, 16, 32))]
    assert [tuple(t.shape) for t in out.xkd_features] == [
        (2, 256, H // 16, W // 16), (2, 256, H // 16, W // 16), (2, 512, H // 16, W // 16)]
    tensors = [out.depth, out.confidence, out.coarse_depth, *out.inter_depths,
               *out.decoder_features, *out.image_features, *out.radar_features]
    for t in tensors:
        assert torch.isfinite(t).all()
    assert (out.depth > 0).all() and (out.depth < 100.0).all()
    assert (out.coarse_depth > 0).all() and (out.coarse_depth < 100.0).all()
    assert (out.confidence >= 0).all() and (out.confidence <= 1).all()
    # Gated radar residuals are products of a sigmoid, a ReLU and a pooled confidence.
    assert all((r >= 0).all() for r in out.radar_features)


def test_every_parameter_receives_a_gradient(model):
    # Train mode updates the batch-norm statistics of the shared model: restore them after.
    saved = {name: b.clone() for name, b in model.named_buffers()}
    model.train()
    model.zero_grad(set_to_none=True)
    image, radar = make_inputs(1, seed=1, h=32, w=64)  # smallest valid H != W: cheap backward
    out = model(image, radar)
    loss = (out.depth.mean() + out.confidence.mean() + out.coarse_depth.mean()
            + sum(t.mean() for t in out.inter_depths)
            + sum(t.mean() for t in out.decoder_features)
            + sum(t.mean() for t in out.image_features)
            + sum(t.mean() for t in out.radar_features))
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing
    for name, p in model.named_parameters():
        assert torch.isfinite(p.grad).all(), name
    zero = [n for n, p in model.named_parameters() if not p.grad.abs().sum() > 0]
    assert not zero, zero
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        for name, b in model.named_buffers():
            b.copy_(saved[name])


def test_eval_is_deterministic_and_per_sample(model, eval_run):
    image, radar, batched = eval_run
    model.eval()
    with torch.no_grad():
        first = model(image[1:], radar[1:])
        second = model(image[1:], radar[1:])
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # Nothing mixes samples of a batch in eval mode.
    torch.testing.assert_close(batched.depth[1:], first.depth, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(batched.confidence[1:], first.confidence, rtol=1e-4, atol=1e-4)


def test_radar_changes_the_prediction(model, eval_run):
    image, radar, with_radar = eval_run
    model.eval()
    with torch.no_grad():
        without = model(image[:1], torch.zeros_like(radar[:1]))
    assert not torch.allclose(with_radar.coarse_depth[:1], without.coarse_depth)
    assert not torch.allclose(with_radar.depth[:1], without.depth)


@pytest.mark.parametrize('image_shape, radar_shape', [
    ((1, 3, 64, 90), (1, 4, 64, 90)),   # width not a multiple of 32
    ((1, 3, 64, 96), (1, 5, 64, 96)),   # wrong radar channels
    ((1, 1, 64, 96), (1, 4, 64, 96)),   # grey image
    ((2, 3, 64, 96), (1, 4, 64, 96)),   # batch mismatch
    ((1, 3, 64, 96), (1, 4, 32, 96)),   # size mismatch
])
def test_bad_input_raises_value_error(model, image_shape, radar_shape):
    with pytest.raises(ValueError):
        model(torch.zeros(image_shape), torch.zeros(radar_shape))


def test_config_is_frozen_and_round_trips_through_json_types():
    config = CaFNetConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_depth = 80.0
    as_json = {k: list(v) if isinstance(v, tuple) else v
               for k, v in dataclasses.asdict(config).items()}
    assert strict_from_dict(CaFNetConfig, as_json) == config
    with pytest.raises(ValueError, match='unknown'):
        strict_from_dict(CaFNetConfig, {**as_json, 'width': 3})
    with pytest.raises(ValueError):
        CaFNetConfig(sparse_channels=(16, 16, 16, 4))
    assert config.decoder_widths == (512, 128, 128, 64, 32)


def test_pretrained_flag_requests_imagenet_weights(monkeypatch):
    requested = []

    def builder(weights=None):
        requested.append(weights)
        return torchvision.models.resnet18()

    imagenet = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    monkeypatch.setitem(resnet_module._BUILDERS, 18, (builder, imagenet))
    ResNetFeatures(18, pretrained=True)
    ResNetFeatures(18, pretrained=False)
    assert requested == [imagenet, None]


def test_resnet_features_taps():
    torch.manual_seed(0)
    enc = ResNetFeatures(18).eval()
    with torch.no_grad():
        feats = enc(torch.randn(1, 3, H, W))
    assert [tuple(f.shape) for f in feats] == [
        (1, c, H // s, W // s) for c, s in zip(enc.channels, (2, 4, 8, 16, 32))]
    assert not hasattr(enc, 'fc')
    with pytest.raises(ValueError):
        ResNetFeatures(50)


def test_sparse_conv_normalises_by_valid_support():
    conv = SparseConv2d(1, 1, 3, activation=torch.nn.Identity)
    with torch.no_grad():
        conv.conv.weight.fill_(1.0)
        conv.bias.fill_(0.5)
    x = torch.zeros(1, 1, 5, 7)
    mask = torch.zeros(1, 1, 5, 7)
    x[0, 0, 2, 3], mask[0, 0, 2, 3] = 4.0, 1.0
    x[0, 0, 2, 4], mask[0, 0, 2, 4] = 8.0, 1.0
    x[0, 0, 0, 0] = 1000.0  # invalid pixel: must not leak into the output
    y, new_mask = conv(x, mask)
    # Both points under the window -> their mean; one point -> its value; none -> bias only.
    assert y[0, 0, 2, 3].item() == pytest.approx(6.5)
    assert y[0, 0, 2, 2].item() == pytest.approx(4.5)
    assert y[0, 0, 2, 5].item() == pytest.approx(8.5)
    assert y[0, 0, 0, 0].item() == pytest.approx(0.5)
    expected = torch.zeros(1, 1, 5, 7)
    expected[0, 0, 1:4, 2:6] = 1.0
    torch.testing.assert_close(new_mask, expected)


def test_sparse_stem_ignores_values_without_depth():
    torch.manual_seed(0)
    stem = SparseConvStem((4, 16, 16, 16, 3), (7, 5, 3, 3))
    _, radar = make_inputs(1)
    noisy = radar.clone()
    noisy[:, 1:][radar[:, :1].expand(-1, 3, -1, -1) == 0] = 5.0  # junk where z == 0
    torch.testing.assert_close(stem(radar), stem(noisy))


def test_local_planar_guidance_known_answer():
    lpg = LocalPlanarGuidance(4)
    h, w = 2, 3
    # Fronto-parallel plane: depth = d everywhere.
    plane = torch.zeros(1, 4, h, w)
    plane[:, 2], plane[:, 3] = 1.0, 7.0
    torch.testing.assert_close(lpg(plane), torch.full((1, 1, 4 * h, 4 * w), 7.0))
    # Tilted plane: d / (n1 u + n2 v + n3) with u along columns, v along rows.
    n = torch.tensor([0.3, -0.2, math.sqrt(1 - 0.13)])
    plane = torch.cat([n.view(1, 3, 1, 1).expand(1, 3, h, w), torch.full((1, 1, h, w), 10.0)], 1)
    depth = lpg(plane)
    u_of = [(-1.5) / 4, (-0.5) / 4, 0.5 / 4, 1.5 / 4]
    for row, col in [(0, 0), (5, 2), (7, 11)]:
        u, v = u_of[col % 4], u_of[row % 4]
        expected = 10.0 / (n[0] * u + n[1] * v + n[2])
        assert depth[0, 0, row, col].item() == pytest.approx(expected.item(), rel=1e-5)


def test_plane_reduction_gives_unit_normals_and_bounded_distance():
    torch.manual_seed(0)
    red = PlaneReduction(32, 16, max_depth=50.0)
    plane = red(torch.randn(2, 32, 3, 5))
    assert plane.shape == (2, 4, 3, 5)
    torch.testing.assert_close(plane[:, :3].norm(dim=1), torch.ones(2, 3, 5))
    assert (plane[:, 2] >= 0.5 - 1e-6).all()  # polar angle <= pi / 3
    assert ((plane[:, 3] > 0) & (plane[:, 3] < 50.0)).all()


def test_dense_aspp_widths():
    torch.manual_seed(0)
    daspp = DenseASPP(32, 48, 8, 16, (1, 2, 3)).eval()
    with torch.no_grad():
        out = daspp(torch.randn(1, 32, 6, 10), torch.randn(1, 48, 6, 10))
    assert out.shape == (1, 16, 6, 10)
