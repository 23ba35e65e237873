"""Contract tests of the student networks (LiRCDepth, XD-RCDepth and its fusion ablations)."""

import json

import pytest
import torch
import torch.nn.functional as F

from rcdepth_ros.models import (
    VARIANTS,
    MobileNetV2Features,
    RCDepthStudent,
    StudentConfig,
    StudentOutput,
    build_model,
    config_from_dict,
    config_to_dict,
)
from rcdepth_ros.models.blocks import PointwiseUpsample

STUDENTS = [name for name, config in VARIANTS.items() if isinstance(config, StudentConfig)]
HEIGHT, WIDTH = 64, 96  # H != W catches transposed axes; both multiples of 32


def _inputs(batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    image = torch.randn(batch, 3, HEIGHT, WIDTH, generator=gen)
    radar = torch.zeros(batch, 4, HEIGHT, WIDTH)
    rows = torch.randint(0, HEIGHT, (20,), generator=gen)
    cols = torch.randint(0, WIDTH, (20,), generator=gen)
    radar[:, 0, rows, cols] = 2.0 + 60.0 * torch.rand(20, generator=gen)
    radar[:, 1, rows, cols] = 5.0 * torch.randn(20, generator=gen)
    radar[:, 2:, rows, cols] = torch.randn(2, 20, generator=gen)
    return image, radar


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_registry_names():
    assert set(VARIANTS) == {'cafnet', 'lircdepth', 'xdrcdepth', 'xdrcdepth_add',
                             'xdrcdepth_concat', 'xdrcdepth_attention', 'xdrcdepth_wide'}
    assert VARIANTS['xdrcdepth'].fusion == 'film'
    for name in STUDENTS:
        assert VARIANTS[name].variant == name


@pytest.mark.parametrize('name', STUDENTS)
def test_student_contract(name):
    torch.manual_seed(0)
    model = build_model(VARIANTS[name])
    assert isinstance(model, RCDepthStudent)
    image, radar = _inputs()
    out = model(image, radar)
    assert isinstance(out, StudentOutput)
    b = image.shape[0]
    assert out.depth.shape == (b, 1, HEIGHT, WIDTH)
    assert out.log_scale.shape == (b, 1, HEIGHT, WIDTH)
    assert len(out.inter_depths) == 3
    for inter in out.inter_depths:
        assert inter.shape == (b, 1, HEIGHT, WIDTH)
    dec_scales = (16, 8, 4, 2, 1)
    wide = name in ('lircdepth', 'xdrcdepth_wide')
    widths = (512, 128, 128, 64, 32) if wide else (512, 128, 64, 32, 16)
    for feat, width, scale in zip(out.decoder_features, widths, dec_scales):
        assert feat.shape == (b, width, HEIGHT // scale, WIDTH // scale)
    for feats, widths in ((out.image_features, (64, 64, 128, 256, 512)),
                          (out.radar_features, (64, 128, 128, 512, 512))):
        for s, (feat, width) in enumerate(zip(feats, widths), start=1):
            assert feat.shape == (b, width, HEIGHT // 2 ** s, WIDTH // 2 ** s)
    assert [f.shape[-2:] for f in out.xkd_features] == [(HEIGHT // 16, WIDTH // 16)] * 3
    assert out.xkd_features[0] is out.image_features[3]
    assert out.xkd_features[2] is out.decoder_features[0]

    tensors = [out.depth, out.log_scale, *out.inter_depths, *out.decoder_features,
               *out.image_features, *out.radar_features]
    for t in tensors:
        assert torch.isfinite(t).all()
    assert (out.depth > 0).all() and (out.depth < VARIANTS[name].max_depth).all()

    # Every parameter must be reachable from the outputs the losses use.
    loss = sum(t.float().mean() for t in tensors)
    loss.backward()
    no_grad = [k for k, p in model.named_parameters()
               if p.grad is None or not torch.any(p.grad != 0)]
    assert no_grad == []

    model.eval()
    with torch.no_grad():
        first = model(image, radar)
        second = model(image, radar)
    torch.testing.assert_close(first.depth, second.depth, rtol=0, atol=0)
    torch.testing.assert_close(first.log_scale, second.log_scale, rtol=0, atol=0)
    sigma = 2 ** 0.5 * torch.exp(first.log_scale)
    assert (sigma > 0).all() and torch.isfinite(sigma).all()


def test_lircdepth_sizes_match_paper():
    model = build_model('lircdepth')
    assert _params(model) == pytest.approx(12.65e6, rel=0.02)
    assert _params(model.image_encoder) == pytest.approx(2.90e6, rel=0.02)
    assert _params(model.radar_encoder) == pytest.approx(2.92e6, rel=0.02)
    # The reference decoder holds the radar -> image fusion projections.
    decoder = _params(model.decoder) + _params(model.fusion)
    assert decoder == pytest.approx(6.82e6, rel=0.02)
    # MobileNetV2 features alone: the adapters sit inside the encoder budget.
    assert _params(model.image_encoder.features) == pytest.approx(2.22e6, rel=0.01)


@pytest.mark.parametrize('name, reported, tolerance', [
    ('xdrcdepth', 8.89e6, 0.02),
    ('xdrcdepth_wide', 8.89e6, 0.02),
    ('xdrcdepth_add', 8.74e6, 0.05),
    ('xdrcdepth_concat', 10.94e6, 0.05),
    ('xdrcdepth_attention', 9.48e6, 0.05),
])
def test_xdrcdepth_sizes_match_paper(name, reported, tolerance):
    with torch.device('meta'):  # counting parameters needs no memory
        model = build_model(name)
    assert _params(model) == pytest.approx(reported, rel=tolerance)


def test_fusion_ablation_ordering():
    with torch.device('meta'):
        sizes = {name: _params(build_model(name)) for name in STUDENTS if 'xdrcdepth' in name}
    # Paper ordering: add < FiLM < attention < concat.
    assert (sizes['xdrcdepth_add'] < sizes['xdrcdepth'] < sizes['xdrcdepth_attention']
            < sizes['xdrcdepth_concat'])


@pytest.mark.parametrize('name', list(VARIANTS))
def test_config_round_trip_through_json(name):
    config = VARIANTS[name]
    data = json.loads(json.dumps(config_to_dict(config)))
    assert data['arch'] in ('cafnet', 'lircdepth', 'xdrcdepth')
    assert config_from_dict(data) == config


def test_pointwise_upsample_is_1x1_nearest_depthwise():
    torch.manual_seed(0)
    up = PointwiseUpsample(6, 4)
    x = torch.randn(2, 6, 5, 7)
    mixed = F.conv2d(x, up.pointwise.weight)  # (2, 4, 5, 7)
    doubled = mixed.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # (2, 4, 10, 14)
    expected = F.conv2d(doubled, up.depthwise.weight, padding=1, groups=4)
    torch.testing.assert_close(up(x), expected)


def test_variants_pick_their_full_resolution_upsampling():
    lirc, xd, wide = (build_model(n) for n in ('lircdepth', 'xdrcdepth', 'xdrcdepth_wide'))
    assert isinstance(lirc.decoder.stage1, torch.nn.ConvTranspose2d)
    assert isinstance(wide.decoder.stage1, torch.nn.ConvTranspose2d)
    assert isinstance(xd.decoder.stage1, PointwiseUpsample)
    # XD-RCDepth halves the widths its losses never compare with the teacher (1/4 .. 1/1);
    # xdrcdepth_wide keeps LiRCDepth's, and otherwise is XD-RCDepth.
    assert lirc.config.decoder_widths == wide.config.decoder_widths == (512, 128, 128, 64, 32)
    assert xd.config.decoder_widths == (512, 128, 64, 32, 16)
    assert (wide.config.fusion, wide.config.daspp_rates) == (xd.config.fusion,
                                                              xd.config.daspp_rates)


def test_config_validation():
    with pytest.raises(ValueError, match='fusion'):
        StudentConfig(fusion='sum')
    with pytest.raises(ValueError, match='arch'):
        StudentConfig(arch='resnet')
    with pytest.raises(ValueError, match='decoder_widths'):
        StudentConfig(decoder_widths=(512, 128))
    with pytest.raises(ValueError, match='full_res_upsample'):
        StudentConfig(full_res_upsample='bilinear')
    with pytest.raises(ValueError, match='unknown StudentConfig keys'):
        config_from_dict({**config_to_dict(VARIANTS['lircdepth']), 'dropout': 0.1})
    with pytest.raises(ValueError, match='arch'):
        config_from_dict({'arch': 'vit'})


@pytest.mark.parametrize('name', ['lircdepth', 'xdrcdepth'])
def test_uncertainty_loss_trains_only_the_uncertainty_head(name):
    torch.manual_seed(0)
    model = build_model(name)
    image, radar = _inputs()
    model(image, radar).log_scale.mean().backward()
    for pname, param in model.named_parameters():
        reached = param.grad is not None and bool(param.grad.abs().sum() > 0)
        assert reached == pname.startswith('uncertainty.'), pname
    model.zero_grad(set_to_none=True)
    model(image, radar).depth.mean().backward()
    assert all(p.grad is None for p in model.uncertainty.parameters())
    assert model.decoder.refine[0].weight.grad.abs().sum() > 0


def test_bad_inputs_raise():
    model = RCDepthStudent(VARIANTS['xdrcdepth_add'])
    image, radar = _inputs(1)
    with pytest.raises(ValueError, match='multiples of 32'):
        model(image[..., :80], radar[..., :80])
    with pytest.raises(ValueError, match='radar'):
        model(image, radar[:, :3])
    with pytest.raises(ValueError, match='differ'):
        model(image, torch.cat([radar, radar]))


def test_mobilenet_taps():
    torch.manual_seed(0)
    encoder = MobileNetV2Features((8, 8, 8, 8, 8), in_channels=4)
    assert isinstance(encoder.stem, torch.nn.Sequential)
    feats = encoder(torch.randn(1, 4, HEIGHT, WIDTH))
    assert [tuple(f.shape) for f in feats] == [
        (1, 8, HEIGHT // 2 ** s, WIDTH // 2 ** s) for s in range(1, 6)]
    # The 4 -> 3 stem of the radar branch has no bias, as in LiRCDepth.
    assert encoder.stem[0].bias is None and encoder.stem[0].weight.shape == (3, 4, 3, 3)
