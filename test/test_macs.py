"""MAC counter against hand-computed answers, and the networks against the papers' figures."""

import json

import pytest
import torch
from torch import nn

from rcdepth_ros.models import VARIANTS, build_model, config_macs, count_macs, model_macs


def test_conv2d():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    # 8 x 5 x 7 outputs, each 3 * 3 * 3 multiply-accumulates.
    assert count_macs(conv, (torch.zeros(1, 3, 5, 7),)) == 8 * 5 * 7 * 27


def test_strided_depthwise_conv():
    conv = nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=4, bias=False)
    # Output 4 x 3 x 4 (6x8 halved), one input channel per group, 9 taps.
    assert count_macs(conv, (torch.zeros(1, 4, 6, 8),)) == 4 * 3 * 4 * 9


def test_transposed_conv_both_conventions():
    conv = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1)
    x = torch.zeros(1, 4, 3, 5)
    # Exact: each of the 4 * 3 * 5 inputs is scattered into 6 channels x 9 taps.
    assert count_macs(conv, (x,)) == 4 * 3 * 5 * 6 * 9
    # thop convention: 6 x 6 x 10 outputs, each over 4 channels x 9 taps.
    assert count_macs(conv, (x,), transposed_as_conv=True) == 6 * 6 * 10 * 4 * 9


def test_linear_batch_and_norm():
    model = nn.Sequential(nn.Linear(10, 5), nn.BatchNorm1d(5), nn.ReLU())
    x = torch.zeros(2, 10)
    assert count_macs(model, (x,)) == 2 * 5 * 10
    assert count_macs(model, (x,), include_norm=True) == 2 * 5 * 10 + 2 * 5


class _TwoInput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.image = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU())
        self.radar = nn.Conv2d(4, 2, 3, padding=1, bias=False)

    def forward(self, image, radar):
        return self.image(image) + self.radar(radar)


def test_nested_model_hooks_removed_and_mode_kept():
    model = _TwoInput().train()
    assert model_macs(model, 4, 6) == 2 * 4 * 6 * 3 + 2 * 4 * 6 * 4 * 9
    assert model.training
    assert all(not m._forward_hooks for m in model.modules())


def test_meta_device_counts_like_real_tensors():
    real = model_macs(_TwoInput(), 32, 64)
    with torch.device('meta'):
        meta_model = _TwoInput()
    assert model_macs(meta_model, 32, 64) == real


def test_student_counts_scale_with_pixels():
    # Every layer's output area is proportional to H * W when both are multiples of 32.
    small = config_macs(VARIANTS['xdrcdepth'], 64, 96)
    large = config_macs(VARIANTS['xdrcdepth'], 128, 96)
    assert large == 2 * small
    real = model_macs(build_model(VARIANTS['xdrcdepth_add']), 64, 96)
    assert real == config_macs(VARIANTS['xdrcdepth_add'], 64, 96)


def test_reference_figures_at_training_size():
    # Papers (thop): LiRCDepth 28.1 G, CaFNet 118.5 G at 352x704. Our students add the
    # uncertainty head (about 1.2 G at this size).
    lircdepth = config_macs(VARIANTS['lircdepth'], 352, 704, transposed_as_conv=True)
    assert lircdepth == pytest.approx(28.1e9, rel=0.05)
    assert config_macs(VARIANTS['cafnet'], 352, 704) == pytest.approx(118.5e9, rel=0.02)


def test_models_command_json(capsys):
    from rcdepth_ros import cli

    assert cli.main(['models', '--json', '--no-macs', '--variants', 'lircdepth', 'xdrcdepth']) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row['variant'] for row in rows] == ['lircdepth', 'xdrcdepth']
    assert rows[0]['params'] == sum(p.numel() for p in build_model('lircdepth').parameters())
    assert rows[0]['macs_352x704'] is None and rows[1]['macs_896x1600'] is None


def test_models_command_table_and_errors(capsys):
    from rcdepth_ros import cli

    assert cli.main(['models', '--variants', 'xdrcdepth_add']) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ['variant', 'params', 'macs_352x704', 'macs_896x1600']
    expected = config_macs(VARIANTS['xdrcdepth_add'], 352, 704) / 1e9
    assert lines[1].split()[0] == 'xdrcdepth_add'
    assert lines[1].split()[3] == f'{expected:.2f}'
    assert cli.main(['models', '--variants', 'nope']) == 1
    assert 'unknown variant' in capsys.readouterr().err
