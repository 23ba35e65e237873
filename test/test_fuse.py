"""Inference rewrite (models.fuse): fused networks give the eager outputs, every variant."""

import copy

import pytest
import torch
from torch import nn

from rcdepth_ros.models import VARIANTS, build_model
from rcdepth_ros.models.fuse import (
    fold_batchnorm,
    fuse_batchnorm,
    fuse_for_inference,
    transposed_as_conv,
)
from rcdepth_ros.models.fusion import FiLMFusion, FusedFiLM


def randomise_norms(model: nn.Module, seed: int = 0) -> None:
    """Give every batch norm non-trivial statistics, as after training, so folding shows."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(0.2 * torch.randn(n, generator=gen))
                module.running_var.copy_(0.5 + torch.rand(n, generator=gen))
                module.weight.copy_(0.5 + torch.rand(n, generator=gen))
                module.bias.copy_(0.1 * torch.randn(n, generator=gen))


def flatten(output) -> list[torch.Tensor]:
    tensors = []
    for value in output:
        tensors.extend(value if isinstance(value, tuple) else [value])
    return tensors


def inputs(height: int = 64, width: int = 96, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    image = torch.randn(1, 3, height, width, generator=gen)  # (1, 3, H, W)
    radar = torch.zeros(1, 4, height, width)  # (1, 4, H, W), sparse
    radar[:, :, ::7, ::11] = 1.0 + 40.0 * torch.rand(1, 4, (height + 6) // 7,
                                                       (width + 10) // 11, generator=gen)
    return image, radar


@pytest.mark.parametrize('variant', ['lircdepth', 'xdrcdepth', 'xdrcdepth_concat', 'cafnet'])
def test_fused_network_gives_eager_outputs(variant):
    torch.manual_seed(0)
    model = build_model(VARIANTS[variant]).eval()
    randomise_norms(model)
    fused = copy.deepcopy(model)
    counts = fuse_for_inference(fused)
    assert counts['batchnorm'] > 0
    image, radar = inputs()
    with torch.inference_mode():
        expected, got = model(image, radar), fused(image, radar)
        got_cl = fused.to(memory_format=torch.channels_last)(
            image.contiguous(memory_format=torch.channels_last),
            radar.contiguous(memory_format=torch.channels_last))
    assert type(got) is type(expected) and got._fields == expected._fields
    for a, b, c in zip(flatten(expected), flatten(got), flatten(got_cl)):
        scale = a.abs().max().item() + 1e-6  # fp32 tolerance relative to each field's range
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4 * scale)
        torch.testing.assert_close(c, a, rtol=1e-4, atol=1e-4 * scale)
    if variant != 'cafnet':
        # Students: every norm folded, no stride-1 transposed conv left.
        assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
        assert not any(isinstance(m, nn.ConvTranspose2d) and m.stride == (1, 1)
                       for m in fused.modules())
    else:
        # The BTS norms after ELU cannot be folded and must be left in place.
        assert any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # original untouched


def test_xdrcdepth_film_becomes_one_conv():
    model = build_model(VARIANTS['xdrcdepth']).eval()
    fuse_for_inference(model)
    scales = model.fusion.scales
    assert all(isinstance(m, FusedFiLM) for m in scales)
    assert not any(isinstance(m, FiLMFusion) for m in model.modules())


@pytest.mark.parametrize('kwargs', [
    dict(in_channels=6, out_channels=4, kernel_size=1),
    dict(in_channels=6, out_channels=6, kernel_size=3, padding=1, groups=6),
    dict(in_channels=4, out_channels=6, kernel_size=(3, 5), padding=(1, 0), groups=2),
    dict(in_channels=4, out_channels=4, kernel_size=3, padding=2, dilation=2, bias=True),
])
def test_stride1_transposed_conv_as_conv(kwargs):
    torch.manual_seed(1)
    deconv = nn.ConvTranspose2d(**{'bias': False, **kwargs}).eval()
    conv = transposed_as_conv(deconv)
    assert isinstance(conv, nn.Conv2d)
    x = torch.randn(2, kwargs['in_channels'], 9, 14)  # H != W
    with torch.no_grad():
        torch.testing.assert_close(conv(x), deconv(x), rtol=1e-5, atol=1e-5)


def test_strided_transposed_conv_is_kept():
    deconv = nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1, output_padding=1)
    assert transposed_as_conv(deconv) is None


@pytest.mark.parametrize('conv', [
    nn.Conv2d(4, 6, 3, padding=1),
    nn.Conv2d(6, 6, 3, padding=1, groups=3, bias=False),
    nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1, groups=2, bias=False),
])
def test_fold_batchnorm_into_conv(conv):
    torch.manual_seed(2)
    bn = nn.BatchNorm2d(conv.out_channels)
    seq = nn.Sequential(conv, bn).eval()
    randomise_norms(seq, seed=3)
    x = torch.randn(2, conv.in_channels, 7, 10)
    with torch.no_grad():
        expected = seq(x)
        assert fuse_batchnorm(seq) == 1
        assert isinstance(seq[1], nn.Identity)
        torch.testing.assert_close(seq(x), expected, rtol=1e-5, atol=1e-5)


def test_fuse_needs_eval_mode_and_matching_norm():
    with pytest.raises(ValueError, match='eval'):
        fuse_batchnorm(nn.Sequential(nn.Conv2d(2, 2, 1), nn.BatchNorm2d(2)).train())
    with pytest.raises(ValueError, match='channels'):
        fold_batchnorm(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(4))
    with pytest.raises(ValueError, match='running statistics'):
        fold_batchnorm(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3, track_running_stats=False))
