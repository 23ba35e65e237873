"""Evaluation metrics (SPEC 5): depth errors per image, sparsification / AUSE, calibration.

Protocol: per image, then averaged over images; ground truth is single-scan LiDAR; valid GT
in ``(1e-3, max_depth]``; predictions clamped to ``[1e-3, max_depth]`` (NaN -> 1e-3,
+inf -> max_depth, as the reference evaluation). Inputs are NumPy arrays or torch tensors
of shape ``(H, W)`` (or anything that squeezes to it); everything is computed in float64.
Metric names are stable: they are written to JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

MIN_DEPTH = 1e-3
EVAL_RANGES = (50.0, 70.0, 80.0)
AUSE_STEPS = 50  # sparsification steps (Poggi et al. 2020), plus the end point
"""Maximum depths (m) of the evaluation ranges 0-50, 0-70 and 0-80 m."""

DEPTH_METRICS = ('mae', 'rmse', 'mae_mm', 'rmse_mm', 'abs_rel', 'sq_rel', 'rmse_log',
                 'log10', 'silog', 'd1', 'd2', 'd3')
UNCERTAINTY_METRICS = ('ause_rmse', 'ause_abs_rel', 'calib_1sigma', 'calib_2sigma')


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, 'detach'):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _image_pair(pred, gt, max_depth: float) -> tuple[np.ndarray, np.ndarray]:
    """Return the clamped prediction and GT at valid GT pixels, both flat float64."""
    pred = _as_numpy(pred)
    gt = _as_numpy(gt)
    if pred.shape != gt.shape:
        pred, gt = np.squeeze(pred), np.squeeze(gt)
    if pred.shape != gt.shape:
        raise ValueError(f'prediction {pred.shape} and ground truth {gt.shape} differ')
    if max_depth <= MIN_DEPTH:
        raise ValueError(f'max_depth must be > {MIN_DEPTH}, got {max_depth}')
    valid = np.isfinite(gt) & (gt > MIN_DEPTH) & (gt <= max_depth)
    return _clamp_prediction(pred[valid], max_depth), gt[valid]


def _clamp_prediction(pred: np.ndarray, max_depth: float) -> np.ndarray:
    """Predictions as scored: NaN -> 1e-3, +-inf -> the ends, clipped to ``[1e-3, max]``."""
    p = np.nan_to_num(pred, nan=MIN_DEPTH, posinf=max_depth, neginf=MIN_DEPTH)
    return np.clip(p, MIN_DEPTH, max_depth)


def valid_gt_mask(gt, max_depth: float) -> np.ndarray:
    """Boolean mask of evaluated pixels: finite GT in ``(1e-3, max_depth]``."""
    gt = _as_numpy(gt)
    return np.isfinite(gt) & (gt > MIN_DEPTH) & (gt <= max_depth)


def _errors(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    diff = pred - gt
    abs_diff = np.abs(diff)
    log_diff = np.log(pred) - np.log(gt)
    ratio = np.maximum(gt / pred, pred / gt)
    mae = float(abs_diff.mean())
    rmse = float(np.sqrt((diff ** 2).mean()))
    silog_var = max(float((log_diff ** 2).mean() - log_diff.mean() ** 2), 0.0)
    return {
        'mae': mae,
        'rmse': rmse,
        'mae_mm': 1000.0 * mae,
        'rmse_mm': 1000.0 * rmse,
        'abs_rel': float((abs_diff / gt).mean()),
        'sq_rel': float((diff ** 2 / gt).mean()),
        'rmse_log': float(np.sqrt((log_diff ** 2).mean())),
        'log10': float(np.abs(np.log10(pred) - np.log10(gt)).mean()),
        'silog': 100.0 * float(np.sqrt(silog_var)),
        'd1': float((ratio < 1.25).mean()),
        'd2': float((ratio < 1.25 ** 2).mean()),
        'd3': float((ratio < 1.25 ** 3).mean()),
    }


def depth_metrics(pred, gt, max_depth: float = 80.0) -> dict[str, float]:
    """Depth metrics of one image (SPEC 5), keys :data:`DEPTH_METRICS` plus ``count``.

    MAE/RMSE in metres and millimetres, AbsRel, SqRel, RMSElog, log10, SILog (KITTI form,
    ``100 sqrt(mean(e^2) - mean(e)^2)``, e = log pred - log gt) and delta_k = fraction with
    ``max(p/g, g/p) < 1.25^k``. Raises ``ValueError`` if the image has no valid GT.
    """
    p, g = _image_pair(pred, gt, max_depth)
    if g.size == 0:
        raise ValueError(f'no valid ground truth in (1e-3, {max_depth}]')
    result = _errors(p, g)
    result['count'] = float(g.size)
    return result


class Sparsification(NamedTuple):
    """Sparsification result of one image.

    ``fractions`` removed; metric of the rest for the uncertainty ranking (``curve``) and
    the error ranking (``oracle``); ``ause`` the area between them.
    """

    fractions: np.ndarray
    curve: np.ndarray
    oracle: np.ndarray
    ause: float


def _pixel_errors(pred: np.ndarray, gt: np.ndarray, metric: str) -> np.ndarray:
    """Per-pixel quantity whose mean (then sqrt for RMSE) gives the metric."""
    if metric == 'rmse':
        return (pred - gt) ** 2
    if metric == 'abs_rel':
        return np.abs(pred - gt) / gt
    if metric == 'mae':
        return np.abs(pred - gt)
    raise ValueError(f"unknown sparsification metric {metric!r}; use 'rmse', 'abs_rel', 'mae'")


def _remaining_metric(values: np.ndarray, order: np.ndarray, fractions: np.ndarray,
                      metric: str, keys: np.ndarray | None = None) -> np.ndarray:
    """Metric over the pixels left after removing the first ``fraction`` of ``order``.

    ``keys`` (the sort keys of ``order``, e.g. sigma) make pixels with equal keys removed in a
    random order, in expectation: inside a run of ties every value is replaced by the run's
    mean, which is exactly the expected remaining sum whichever part of the run is removed.
    Without this, ties fall back to raster order (a constant sigma would remove the image's
    top rows first and score as informative).
    """
    n = values.size
    ranked = values[order]
    if keys is not None and n:
        ranked_keys = keys[order]
        starts = np.flatnonzero(np.r_[True, ranked_keys[1:] != ranked_keys[:-1]])  # (G,)
        sums = np.add.reduceat(ranked, starts)
        sizes = np.diff(np.r_[starts, n])
        ranked = np.repeat(sums / sizes, sizes)
    # suffix[k] = sum of ranked[k:], so the mean of what remains after removing k pixels.
    suffix = np.concatenate([np.cumsum(ranked[::-1])[::-1], [0.0]])
    removed = np.minimum(np.floor(fractions * n).astype(np.int64), n - 1)
    out = suffix[removed] / (n - removed)
    return np.sqrt(out) if metric == 'rmse' else out


def _with_sigma(pred, gt, sigma, max_depth: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clamped prediction, GT and sigma at valid GT pixels, flat float64."""
    pred_a, gt_a, sigma_a = _as_numpy(pred), _as_numpy(gt), _as_numpy(sigma)
    if not pred_a.shape == gt_a.shape == sigma_a.shape:
        pred_a, gt_a, sigma_a = np.squeeze(pred_a), np.squeeze(gt_a), np.squeeze(sigma_a)
    if not pred_a.shape == gt_a.shape == sigma_a.shape:
        raise ValueError(f'prediction {pred_a.shape}, ground truth {gt_a.shape} and '
                         f'uncertainty {sigma_a.shape} differ')
    p, g = _image_pair(pred_a, gt_a, max_depth)
    if g.size == 0:
        raise ValueError(f'no valid ground truth in (1e-3, {max_depth}]')
    s = sigma_a[valid_gt_mask(gt_a, max_depth)]
    return p, g, np.nan_to_num(s, nan=np.inf)  # unknown uncertainty = most uncertain


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    # np.trapz is gone in NumPy 2 and np.trapezoid missing in 1.26.
    return float(((y[1:] + y[:-1]) * 0.5 * np.diff(x)).sum())


def sparsification(pred, gt, sigma, metric: str = 'rmse', max_depth: float = 80.0,
                   num_steps: int = AUSE_STEPS) -> Sparsification:
    """Sparsification curve and AUSE of an uncertainty map for one image.

    Pixels (valid GT, clamped prediction) are removed most uncertain first (descending
    ``sigma``; equal sigmas in random order, in expectation) in fractions ``0, 1/num_steps,
    ..., 1`` (Poggi et al. 2020: 50 steps plus the end point, where the last pixel remains);
    the oracle removes them by descending true error. ``AUSE = trapz(curve - oracle,
    fractions)``, unnormalised (metres for RMSE), >= 0. ``metric`` in {'rmse', 'abs_rel',
    'mae'}.
    """
    if num_steps < 2:
        raise ValueError(f'num_steps must be >= 2, got {num_steps}')
    p, g, s = _with_sigma(pred, gt, sigma, max_depth)
    values = _pixel_errors(p, g, metric)
    fractions = np.arange(num_steps + 1, dtype=np.float64) / num_steps
    curve = _remaining_metric(values, np.argsort(-s, kind='stable'), fractions, metric, keys=s)
    oracle = _remaining_metric(values, np.argsort(-values, kind='stable'), fractions, metric)
    return Sparsification(fractions, curve, oracle, _trapezoid(curve - oracle, fractions))


def calibration(pred, gt, sigma, max_depth: float = 80.0) -> dict[str, float]:
    """Fractions of valid pixels with ``|err| <= sigma`` and ``<= 2 sigma``.

    Targets: our sigma is ``sqrt(2) b`` of a Laplace with scale ``b``, and a perfectly
    calibrated Laplace error gives ``1 - exp(-sqrt(2)) = 0.757`` within 1 sigma and
    ``1 - exp(-2 sqrt(2)) = 0.941`` within 2 sigma (a Gaussian: 0.683 and 0.954).
    """
    p, g, s = _with_sigma(pred, gt, sigma, max_depth)
    err = np.abs(p - g)
    return {'calib_1sigma': float((err <= s).mean()), 'calib_2sigma': float((err <= 2 * s).mean())}


def uncertainty_metrics(pred, gt, sigma, max_depth: float = 80.0,
                        num_steps: int = AUSE_STEPS) -> dict[str, float]:
    """AUSE-RMSE, AUSE-AbsRel and calibration of one image, keys :data:`UNCERTAINTY_METRICS`."""
    result = {
        'ause_rmse': sparsification(pred, gt, sigma, 'rmse', max_depth, num_steps).ause,
        'ause_abs_rel': sparsification(pred, gt, sigma, 'abs_rel', max_depth, num_steps).ause,
    }
    result.update(calibration(pred, gt, sigma, max_depth))
    return result


def range_name(max_depth: float) -> str:
    """Stable name of an evaluation range, e.g. ``'0-80'``."""
    return f'0-{max_depth:g}'


def _batch_images(x) -> list[np.ndarray]:
    """Split ``(H, W)``, ``(B, H, W)`` or ``(B, 1, H, W)`` into a list of ``(H, W)`` images."""
    a = _as_numpy(x)
    if a.ndim == 2:
        return [a]
    if a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 3:
        raise ValueError(f'expected (H, W), (B, H, W) or (B, 1, H, W), got {a.shape}')
    return list(a)


def evaluate_image(pred, gt, sigma=None, ranges: Sequence[float] = EVAL_RANGES,
                   num_steps: int = AUSE_STEPS) -> dict[str, dict[str, float]]:
    """All metrics of one image per range: ``{'0-80': {'mae': ..., ...}, ...}``.

    A range without valid GT is left out of the result.
    """
    result = {}
    for max_depth in ranges:
        if not valid_gt_mask(gt, max_depth).any():
            continue
        metrics = depth_metrics(pred, gt, max_depth)
        if sigma is not None:
            metrics.update(uncertainty_metrics(pred, gt, sigma, max_depth, num_steps))
        result[range_name(max_depth)] = metrics
    return result


EVERY_PIXEL = 'every_pixel'
"""Key of :func:`reference_gap`'s result over every pixel of the image, GT or not."""


def reference_gap(pred, reference, gt, ranges: Sequence[float] = EVAL_RANGES
                  ) -> dict[str, dict[str, float]]:
    """Mean ``|pred - reference|`` of one image, both clamped as the metrics clamp predictions.

    Per range on the pixels with valid GT (``{'0-80': {'mae': ...}}``, ranges without valid GT
    left out), and on every pixel with both clamped to the largest range
    (``{EVERY_PIXEL: {'mae': ...}}``): how close a student's depth is to a reference model's
    (its teacher) where it is scored and where it is not.
    """
    result = {}
    for max_depth in ranges:
        if not valid_gt_mask(gt, max_depth).any():
            continue
        p, _ = _image_pair(pred, gt, max_depth)
        q, _ = _image_pair(reference, gt, max_depth)
        result[range_name(max_depth)] = {'mae': float(np.abs(p - q).mean())}
    top = max(ranges)
    p, q = (_clamp_prediction(_as_numpy(a), top) for a in (pred, reference))
    result[EVERY_PIXEL] = {'mae': float(np.abs(p - q).mean())}
    return result


def evaluate_batch(pred, gt, sigma=None, ranges: Sequence[float] = EVAL_RANGES,
                   num_steps: int = AUSE_STEPS) -> list[dict[str, dict[str, float]]]:
    """:func:`evaluate_image` for each image of a batch ``(B, H, W)`` or ``(B, 1, H, W)``."""
    preds, gts = _batch_images(pred), _batch_images(gt)
    sigmas = _batch_images(sigma) if sigma is not None else [None] * len(preds)
    if not len(preds) == len(gts) == len(sigmas):
        raise ValueError(f'batch sizes differ: {len(preds)}, {len(gts)}, {len(sigmas)}')
    return [evaluate_image(p, g, s, ranges, num_steps) for p, g, s in zip(preds, gts, sigmas)]


class MetricAccumulator:
    """Average per-image metrics over images, per range (SPEC 5).

    ``update`` takes a batch (or one image); ``compute`` returns
    ``{'0-50': {'mae': ..., 'images': n}, ...}``. ``sums`` and ``counts`` are plain dicts, so
    distributed workers can all-reduce them and :meth:`merge` combines accumulators.
    """

    def __init__(self, ranges: Sequence[float] = EVAL_RANGES, num_steps: int = AUSE_STEPS) -> None:
        self.ranges = tuple(float(r) for r in ranges)
        self.num_steps = num_steps
        self.sums: dict[str, dict[str, float]] = {range_name(r): {} for r in self.ranges}
        self.counts: dict[str, int] = {range_name(r): 0 for r in self.ranges}

    def update(self, pred, gt, sigma=None) -> list[dict[str, dict[str, float]]]:
        """Add the images of a batch; returns their per-image metrics."""
        per_image = evaluate_batch(pred, gt, sigma, self.ranges, self.num_steps)
        self.add(per_image)
        return per_image

    def add(self, per_image: Iterable[dict[str, dict[str, float]]]) -> None:
        """Add already computed per-image results (from :func:`evaluate_image`)."""
        for image in per_image:
            for name, metrics in image.items():
                sums = self.sums.setdefault(name, {})
                for key, value in metrics.items():
                    sums[key] = sums.get(key, 0.0) + value
                self.counts[name] = self.counts.get(name, 0) + 1

    def merge(self, other: MetricAccumulator) -> None:
        """Add another accumulator's sums and counts into this one."""
        for name, sums in other.sums.items():
            mine = self.sums.setdefault(name, {})
            for key, value in sums.items():
                mine[key] = mine.get(key, 0.0) + value
            self.counts[name] = self.counts.get(name, 0) + other.counts.get(name, 0)

    def compute(self) -> dict[str, dict[str, float]]:
        """Mean of each metric over the images that had valid GT in the range."""
        result = {}
        for name, sums in self.sums.items():
            n = self.counts.get(name, 0)
            if n == 0:
                continue
            metrics = {key: value / n for key, value in sums.items() if key != 'count'}
            metrics['pixels'] = sums.get('count', 0.0)
            metrics['images'] = n
            result[name] = metrics
        return result


def flatten_metrics(nested: dict[str, dict[str, float]]) -> dict[str, float]:
    """``{'0-80': {'mae': x}}`` -> ``{'mae/0-80': x}`` for loggers."""
    return {f'{key}/{name}': value for name, metrics in nested.items()
            for key, value in metrics.items()}
