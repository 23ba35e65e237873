"""Evaluation metrics: known answers, golden values, AUSE and calibration, accumulation."""

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file
import torch

from rcdepth_ros.training.metrics import (
    DEPTH_METRICS,
    UNCERTAINTY_METRICS,
    MetricAccumulator,
    calibration,
    depth_metrics,
    evaluate_batch,
    flatten_metrics,
    sparsification,
)

FIXTURES = Path(__file__).resolve().parent / 'fixtures' / 'losses'


def test_known_answer_tiny_image():
    # 2 x 3 image (H != W); GT 0 and GT above the range are ignored.
    gt = np.array([[10.0, 20.0, 0.0], [40.0, 90.0, 5.0]])
    pred = np.array([[12.0, 20.0, 7.0], [30.0, 1.0, 4.0]])
    m = depth_metrics(pred, gt, max_depth=80.0)
    p, g = np.array([12.0, 20.0, 30.0, 4.0]), np.array([10.0, 20.0, 40.0, 5.0])
    assert m['count'] == 4
    np.testing.assert_allclose(m['mae'], (2 + 0 + 10 + 1) / 4)
    np.testing.assert_allclose(m['rmse'], np.sqrt((4 + 0 + 100 + 1) / 4))
    np.testing.assert_allclose(m['mae_mm'], 1000 * m['mae'])
    np.testing.assert_allclose(m['rmse_mm'], 1000 * m['rmse'])
    np.testing.assert_allclose(m['abs_rel'], (0.2 + 0 + 0.25 + 0.2) / 4)
    np.testing.assert_allclose(m['sq_rel'], (4 / 10 + 0 + 100 / 40 + 1 / 5) / 4)
    np.testing.assert_allclose(m['log10'], np.mean(np.abs(np.log10(p / g))))
    np.testing.assert_allclose(m['rmse_log'], np.sqrt(np.mean(np.log(p / g) ** 2)))
    e = np.log(p / g)
    np.testing.assert_allclose(m['silog'], 100 * np.sqrt(np.mean(e ** 2) - np.mean(e) ** 2))
    # ratios 1.2, 1, 1.333, 1.25 -> < 1.25: two; < 1.5625: all four.
    assert (m['d1'], m['d2'], m['d3']) == (0.5, 1.0, 1.0)
    assert set(DEPTH_METRICS) <= set(m)


def test_clamping_and_validity_bounds():
    gt = np.array([[1e-3, 2e-3, 80.0, 80.5]])
    pred = np.array([[5.0, 0.0, np.inf, 3.0]])
    m = depth_metrics(pred, gt, max_depth=80.0)
    # Valid: 2e-3 (pred 0 -> 1e-3) and 80.0 exactly (pred inf -> 80).
    assert m['count'] == 2
    np.testing.assert_allclose(m['mae'], 1e-3 / 2)
    perfect = depth_metrics(np.array([[np.nan, 50.0]]), np.array([[0.0, 50.0]]), 80.0)
    assert perfect['mae'] == 0.0 and perfect['d1'] == 1.0
    with pytest.raises(ValueError, match='no valid'):
        depth_metrics(np.ones((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match='differ'):
        depth_metrics(np.ones((2, 3)), np.ones((3, 2)))


def test_golden_values():
    x = load_file(str(FIXTURES / 'inputs.safetensors'))
    expected = json.loads((FIXTURES / 'expected.json').read_text())
    for max_depth in (80, 50):
        got = depth_metrics(x['metric_pred'], x['metric_gt'], float(max_depth))
        for key, value in expected[f'metrics_{max_depth}'].items():
            np.testing.assert_allclose(got[key], value, rtol=1e-9, err_msg=key)


def test_torch_inputs_match_numpy():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0.5, 70, (5, 7))
    pred = gt + rng.normal(0, 2, (5, 7))
    a = depth_metrics(pred, gt)
    b = depth_metrics(torch.from_numpy(pred).float()[None, None], torch.from_numpy(gt).float())
    for key in DEPTH_METRICS:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, err_msg=key)


def _noisy(seed: int = 0, shape=(12, 17)):
    rng = np.random.default_rng(seed)
    gt = rng.uniform(1.0, 79.0, shape)
    pred = gt + rng.normal(0.0, 1.0, shape) * rng.uniform(0.1, 5.0, shape)
    return np.clip(pred, 0.5, 79.5), gt  # inside the clamp, so |pred - gt| is the error


def test_ause_zero_for_perfect_ranking_and_positive_otherwise():
    pred, gt = _noisy()
    err = np.abs(pred - gt)
    rmse = sparsification(pred, gt, err, 'rmse')
    np.testing.assert_allclose(rmse.curve, rmse.oracle)
    assert rmse.ause == pytest.approx(0.0, abs=1e-12)
    assert sparsification(pred, gt, err / gt, 'abs_rel').ause == pytest.approx(0.0, abs=1e-12)
    # The oracle curve is non-increasing and starts at the full-image metric.
    assert np.all(np.diff(rmse.oracle) <= 1e-12)
    np.testing.assert_allclose(rmse.oracle[0], depth_metrics(pred, gt)['rmse'])
    worst = sparsification(pred, gt, -err, 'rmse')  # ranks errors backwards
    rand = sparsification(pred, gt, np.random.default_rng(1).random(gt.shape), 'rmse')
    assert worst.ause > rand.ause > 0
    assert len(rmse.fractions) == 51 and rmse.fractions[0] == 0.0 and rmse.fractions[-1] == 1.0


def test_constant_sigma_is_uninformative_whatever_the_pixel_order():
    """Ties are removed in random order (in expectation): a constant sigma removes nothing in
    particular, so its curve stays at the full-image metric. Oracle: the metric of the whole
    image, reached analytically (every remaining subset has the same expected mean)."""
    pred, gt = _noisy(3, shape=(30, 40))
    # Make the far rows (the top of an image, removed first in raster order) the worst ones.
    pred[:5] += 10.0
    constant = sparsification(pred, gt, np.ones_like(gt), 'rmse')
    full = depth_metrics(pred, gt)['rmse']
    np.testing.assert_allclose(constant.curve[:-1], full, rtol=1e-9)
    rand = sparsification(pred, gt, np.random.default_rng(1).random(gt.shape), 'rmse')
    # Uninformative either way: constant and random sigma score alike (before the fix the
    # constant one scored 3x better than random by removing the bad top rows first).
    assert constant.ause == pytest.approx(rand.ause, rel=0.15)


def test_calibration_known_answer():
    gt = np.array([[10.0, 10.0, 10.0, 10.0]])
    pred = np.array([[10.5, 12.0, 13.5, 7.5]])  # errors 0.5, 2, 3.5, 2.5
    sigma = np.full((1, 4), 1.5)
    c = calibration(pred, gt, sigma)
    assert c == {'calib_1sigma': 0.25, 'calib_2sigma': 0.75}


def test_accumulator_averages_per_image_over_ranges():
    # Image A: one pixel at 30 m (error 1). Image B: 3 pixels at 60 m (error 3 each)
    # plus one at 75 m (error 0). Per-image averaging weights images equally.
    gt_a = np.array([[30.0, 0.0], [0.0, 0.0]])
    pred_a = np.array([[31.0, 5.0], [5.0, 5.0]])
    gt_b = np.array([[60.0, 60.0], [60.0, 75.0]])
    pred_b = np.array([[63.0, 63.0], [63.0, 75.0]])
    sigma = np.ones((2, 2, 2))
    acc = MetricAccumulator()
    per_image = acc.update(np.stack([pred_a, pred_b])[:, None], np.stack([gt_a, gt_b])[:, None],
                           sigma[:, None])
    assert set(per_image[0]) == {'0-50', '0-70', '0-80'}
    assert set(per_image[1]) == {'0-70', '0-80'}  # nothing of image B within 50 m
    result = acc.compute()
    assert result['0-50']['images'] == 1 and result['0-50']['mae'] == 1.0
    assert result['0-70']['images'] == 2
    np.testing.assert_allclose(result['0-70']['mae'], (1.0 + 3.0) / 2)
    np.testing.assert_allclose(result['0-80']['mae'], (1.0 + 9.0 / 4) / 2)
    assert result['0-80']['pixels'] == 5
    assert set(UNCERTAINTY_METRICS) <= set(result['0-80'])
    np.testing.assert_allclose(result['0-80']['calib_1sigma'], (1.0 + 0.25) / 2)
    # Merging two half-accumulators gives the same result.
    left, right = MetricAccumulator(), MetricAccumulator()
    left.update(pred_a, gt_a, sigma[0])
    right.update(pred_b, gt_b, sigma[1])
    left.merge(right)
    assert left.compute() == result
    flat = flatten_metrics(result)
    assert flat['mae/0-50'] == 1.0 and 'ause_rmse/0-80' in flat
    json.dumps(flat)  # names and values are JSON-ready


def test_evaluate_batch_shapes():
    pred, gt = _noisy(2, (3, 5, 6))
    out = evaluate_batch(torch.from_numpy(pred), torch.from_numpy(gt))
    assert len(out) == 3 and 'ause_rmse' not in out[0]['0-80']
    with pytest.raises(ValueError):
        evaluate_batch(np.ones((2, 3, 4, 5)), np.ones((2, 3, 4, 5)))
