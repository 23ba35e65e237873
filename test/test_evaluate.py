"""Evaluation (SPEC 5) on known synthetic cases: hand-computed values and the metrics module."""

from __future__ import annotations

import contextlib
import io
import math
from typing import NamedTuple

import numpy as np
import pytest
import torch
from torch import nn

from rcdepth_ros.cli import main
from rcdepth_ros.training.evaluate import (
    complete_metrics,
    evaluate_model,
    format_table,
    spaced_indices,
)
from rcdepth_ros.training.metrics import evaluate_image

SQRT2 = math.sqrt(2.0)


class _StudentOut(NamedTuple):
    depth: torch.Tensor
    log_scale: torch.Tensor


class _TeacherOut(NamedTuple):
    depth: torch.Tensor


class _Echo(nn.Module):
    """Returns the depth stored in image channel 0 and sigma in channel 1 (plus radar sum)."""

    def __init__(self, with_sigma: bool = True) -> None:
        super().__init__()
        self.with_sigma = with_sigma
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, image, radar):
        depth = image[:, :1] + radar.sum(dim=1, keepdim=True) + self.anchor  # (B, 1, H, W)
        if not self.with_sigma:
            return _TeacherOut(depth)
        return _StudentOut(depth, torch.log(image[:, 1:2] / SQRT2))


def _item(pred, gt, sigma) -> dict:
    pred, gt, sigma = (np.asarray(a, np.float32) for a in (pred, gt, sigma))
    image = np.stack([pred, sigma, np.zeros_like(pred)])  # (3, H, W)
    return {'image': torch.from_numpy(image), 'radar': torch.zeros(4, *pred.shape),
            'depth_single': torch.from_numpy(gt)[None]}


# 2 x 3 (H != W). Image A: 10 -> 11, 20 -> 18, 60 -> 150 (clamped per range), 90 (beyond
# every range), two pixels without GT. Image B: every pixel 30 -> 33.
GT_A = [[10.0, 20.0, 60.0], [90.0, 0.0, 0.0]]
PRED_A = [[11.0, 18.0, 150.0], [5.0, 7.0, 9.0]]
SIGMA_A = [[2.0, 1.5, 1.0], [1.0, 1.0, 1.0]]
GT_B = [[30.0, 30.0, 30.0], [30.0, 30.0, 30.0]]
PRED_B = [[33.0] * 3] * 2
SIGMA_B = [[4.0, 4.0, 4.0], [1.0, 1.0, 1.0]]


@pytest.fixture
def dataset():
    return [_item(PRED_A, GT_A, SIGMA_A), _item(PRED_B, GT_B, SIGMA_B)]


def test_hand_computed_metrics_per_image_then_mean(dataset):
    result = evaluate_model(_Echo(), dataset)
    ranges = result['ranges']
    assert result['images'] == 2 and result['has_uncertainty']
    # 0-50: A keeps 10, 20 (errors 1, 2); B error 3 everywhere.
    assert ranges['0-50']['mae'] == pytest.approx((1.5 + 3.0) / 2)
    assert ranges['0-50']['rmse'] == pytest.approx((math.sqrt(2.5) + 3.0) / 2)
    # 0-70: the 150 m prediction is clamped to 70 (error 10); 0-80: to 80 (error 20).
    assert ranges['0-70']['mae'] == pytest.approx((13 / 3 + 3.0) / 2)
    assert ranges['0-80']['mae'] == pytest.approx((23 / 3 + 3.0) / 2)
    assert ranges['0-80']['mae_mm'] == pytest.approx(1000 * (23 / 3 + 3.0) / 2)
    abs_rel_a = (1 / 10 + 2 / 20 + 20 / 60) / 3
    assert ranges['0-80']['abs_rel'] == pytest.approx((abs_rel_a + 0.1) / 2)
    # delta1: A has 80/60 = 1.33 > 1.25 at 0-80, B all 1.1.
    assert ranges['0-80']['d1'] == pytest.approx((2 / 3 + 1.0) / 2)
    assert ranges['0-50']['d1'] == pytest.approx(1.0)
    # Calibration at 0-80, errors (1, 2, 20) with sigma (2, 1.5, 1) and B's 3 with (4, 1):
    # within 1 sigma A 1/3, B 1/2; within 2 sigma A 2/3 (2 <= 3), B 1/2.
    assert ranges['0-80']['calib_1sigma'] == pytest.approx((1 / 3 + 0.5) / 2)
    assert ranges['0-80']['calib_2sigma'] == pytest.approx((2 / 3 + 0.5) / 2)
    assert ranges['0-80']['images'] == 2 and ranges['0-80']['pixels'] == 3 + 6


def test_matches_the_metrics_module_for_every_key(dataset):
    result = evaluate_model(_Echo(), dataset)
    per_image = [evaluate_image(np.asarray(p), np.asarray(g), np.asarray(s))
                 for p, g, s in ((PRED_A, GT_A, SIGMA_A), (PRED_B, GT_B, SIGMA_B))]
    for name, row in result['ranges'].items():
        for key, value in row.items():
            if key in ('images', 'pixels'):
                continue
            expected = np.mean([image[name][key] for image in per_image])
            assert value == pytest.approx(expected, rel=1e-6, abs=1e-9), (name, key)


def test_teacher_without_sigma_has_null_uncertainty_and_camera_only(dataset):
    model = _Echo(with_sigma=False).train()
    result = evaluate_model(model, dataset, ranges=(80.0,))
    assert list(result['ranges']) == ['0-80'] and not result['has_uncertainty']
    row = result['ranges']['0-80']
    assert row['ause_rmse'] is None and row['calib_1sigma'] is None
    assert row['mae'] == pytest.approx((23 / 3 + 3.0) / 2)
    assert model.training  # restored
    # Radar adds to the echo: zeroing it (camera only) gives back the stored depth.
    with_radar = [dict(d, radar=torch.ones(4, 2, 3)) for d in dataset]
    shifted = evaluate_model(model, with_radar, ranges=(50.0,))['ranges']['0-50']['mae']
    zeroed = evaluate_model(model, with_radar, ranges=(50.0,),
                            camera_only=True)['ranges']['0-50']['mae']
    assert zeroed == pytest.approx(2.25) and shifted != pytest.approx(2.25)
    table = format_table(result['ranges'])
    assert 'ause_rmse' in table and table.splitlines()[0].split() == ['metric', '0-80']
    assert complete_metrics({}, (50.0,))['0-50']['mae'] is None


def test_gap_to_a_reference_model_by_hand(dataset):
    """Mean |depth - reference depth| per image, then over images: on each range's GT pixels
    (both clamped like predictions) and on every pixel."""

    class _Plus2(nn.Module):  # a teacher whose depth is the stored depth + 2 m
        def forward(self, image, radar):
            return _TeacherOut(image[:, :1] + 2.0)

    gaps = evaluate_model(_Echo(), dataset, reference=_Plus2())['reference']
    # A: GT 10, 20 -> gap 2 each; 60 -> 150 vs 152, both clamped to the range: gap 0. B: 2.
    assert gaps['0-50'] == {'mae': pytest.approx(2.0), 'images': 2}
    assert gaps['0-70']['mae'] == pytest.approx((4 / 3 + 2.0) / 2)
    assert gaps['0-80']['mae'] == pytest.approx((4 / 3 + 2.0) / 2)
    # Every pixel, clamped to 80 m: A has five pixels at 2 and the clamped one at 0.
    assert gaps['every_pixel']['mae'] == pytest.approx((10 / 6 + 2.0) / 2)
    assert 'reference' not in evaluate_model(_Echo(), dataset)
    # The reference gets the radar even when the evaluated model is camera-only (its depth
    # echoes the radar sum, 4 here), unless the reference itself is camera-only.
    with_radar = [dict(d, radar=torch.ones(4, 2, 3)) for d in dataset]
    own_radar = evaluate_model(_Echo(), with_radar, camera_only=True,
                               reference=_Echo(with_sigma=False))['reference']
    assert own_radar['0-50']['mae'] == pytest.approx(4.0)
    zeroed = evaluate_model(_Echo(), with_radar, camera_only=True,
                            reference=_Echo(with_sigma=False), reference_camera_only=True)
    assert all(row['mae'] == 0.0 for row in zeroed['reference'].values())


def test_spaced_indices():
    assert spaced_indices(10, 0) == list(range(10))
    assert spaced_indices(10, 3) == [0, 4, 9] or spaced_indices(10, 3) == [0, 5, 9]
    assert spaced_indices(3, 5) == [0, 1, 2]
    with pytest.raises(ValueError, match='nothing to evaluate'):
        evaluate_model(_Echo(), [], indices=[])


def test_eval_cli_bad_input_is_one_line(tmp_path):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(['eval', '--checkpoint', str(tmp_path / 'none'), '--data', str(tmp_path),
                     '--split', 'val'])
    assert code == 1 and 'no checkpoint or exported model' in err.getvalue()
    assert len(err.getvalue().splitlines()) == 1
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(['eval', '--checkpoint', str(tmp_path), '--data', str(tmp_path),
                     '--max-depths', '0'])
    assert code == 1 and '--max-depths' in err.getvalue()
