"""Tests of ``PreparedDataset`` on prepared samples with known, position-coded content."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from rcdepth_ros.data import storage
from rcdepth_ros.data.dataset import PreparedDataset, eval_window, train_crop_size

HEIGHT, WIDTH = 200, 310  # smaller than the default crop, not multiples of 32, H != W
K = np.array([[300.0, 0.0, 160.0], [0.0, 300.0, 95.0], [0.0, 0.0, 1.0]])


def _dense(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    # Encodes the original pixel in the depth, exactly at the PNG's 1/256 m step (< 256 m).
    return (1.0 + (cols * HEIGHT + rows) / 256.0).astype(np.float32)


def _decode(value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    code = np.round((value - 1.0) * 256.0).astype(np.int64)
    return code % HEIGHT, code // HEIGHT  # rows, cols


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp('prepared')
    dataroot = tmp_path_factory.mktemp('dataroot')
    rng = np.random.default_rng(0)
    rr, cc = np.mgrid[0:HEIGHT, 0:WIDTH]
    for i in range(3):
        rgb = np.stack([cc * 255 // (WIDTH - 1), rr, (cc * 7 + rr * 3 + i) % 256], -1)
        name = f'samples/CAM_FRONT/img{i}.png'  # lossless, so the ramp survives
        (dataroot / 'samples' / 'CAM_FRONT').mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(dataroot / name), rgb[:, :, ::-1].astype(np.uint8))
        dense = _dense(rr, cc)
        single = np.where(rng.random((HEIGHT, WIDTH)) < 0.05, dense, 0).astype(np.float32)
        confidence = (rng.random((HEIGHT, WIDTH)) < 0.3).astype(np.uint8)
        rc = np.stack([rng.integers(0, HEIGHT, 60), rng.integers(0, WIDTH, 60)], 1)
        rc = np.unique(rc, axis=0).astype(np.int32)
        features = np.stack([dense[rc[:, 0], rc[:, 1]], rng.normal(5, 3, len(rc)),
                             rng.uniform(0.5, 3, len(rc)), -rng.uniform(0.5, 3, len(rc))], 1)
        meta = {'token': f'tok{i}', 'scene': 'scene-0001', 'timestamp': 1000 + i,
                'image': name, 'dataroot': str(dataroot), 'height': HEIGHT, 'width': WIDTH,
                'K': K.tolist()}
        storage.write_sample(root, 'train', storage.PreparedSample(
            meta, single, dense, dense, confidence, rc, features.astype(np.float32)))
    return root


def _check_consistent(item: dict, full: dict) -> bool:
    """Check every map of an item against the full sample; returns whether it was flipped."""
    dense = item['depth_dense'][0].numpy()
    rows, cols = _decode(dense)
    h, w = dense.shape
    flipped = bool(cols[0, 0] > cols[0, -1])
    left, top = int(cols.min()), int(rows.min())
    # Every crop pixel maps to one original pixel: a contiguous (flipped) window.
    expect_cols = left + (np.arange(w)[::-1] if flipped else np.arange(w))
    np.testing.assert_array_equal(cols, np.broadcast_to(expect_cols, (h, w)))
    np.testing.assert_array_equal(rows, np.broadcast_to(top + np.arange(h)[:, None], (h, w)))
    for key in ('depth_single', 'confidence_gt'):
        np.testing.assert_allclose(item[key][0].numpy(), full[key][rows, cols], atol=1e-6)
    # Radar: same pixels, same values, velocities not negated by the flip.
    np.testing.assert_allclose(item['radar'].numpy(), full['radar'][:, rows, cols], atol=1e-6)
    assert (item['radar'][2] >= 0).all() and (item['radar'][3] <= 0).all()
    # Image red channel is a ramp in the original column; colour changes are monotone.
    red = item['image'][0].numpy()
    order = np.argsort(cols[0], kind='stable')
    assert np.all(np.diff(red[:, order], axis=1) >= -1e-6)
    # K follows the crop and the flip (pixel centres on integers).
    cx = K[0, 2] - left
    np.testing.assert_allclose(item['K'][0, 2].item(), (w - 1) - cx if flipped else cx, atol=1e-4)
    np.testing.assert_allclose(item['K'][1, 2].item(), K[1, 2] - top, atol=1e-4)
    return flipped


def test_train_items_shapes_and_flip_consistency(prepared):
    data = PreparedDataset(prepared, 'train', crop=(128, 256), seed=3)
    assert len(data) == 3
    flips = []
    for epoch in range(8):
        data.set_epoch(epoch)
        for index in range(len(data)):
            item = data[index]
            assert item['image'].shape == (3, 128, 256) and item['image'].dtype == torch.float32
            assert item['radar'].shape == (4, 128, 256)
            for key in ('depth_single', 'depth_dense', 'confidence_gt'):
                assert item[key].shape == (1, 128, 256)
            assert item['K'].shape == (3, 3)
            assert item['token'] == f'tok{index}'
            flips.append(_check_consistent(item, data.load_full(index)))
    assert 5 <= sum(flips) <= 19  # p = 0.5 over 24 draws


def test_determinism_with_seed_and_epoch(prepared):
    a = PreparedDataset(prepared, 'train', crop=(128, 256), seed=7)
    b = PreparedDataset(prepared, 'train', crop=(128, 256), seed=7)
    c = PreparedDataset(prepared, 'train', crop=(128, 256), seed=8)
    first = [a[i] for i in range(3)]
    for i in range(3):
        for key in ('image', 'radar', 'depth_dense', 'K'):
            torch.testing.assert_close(first[i][key], b[i][key])
    # Another seed or epoch changes crops/augmentation of at least one item.
    assert any(not torch.equal(first[i]['image'], c[i]['image']) for i in range(3))
    a.set_epoch(1)
    assert any(not torch.equal(first[i]['image'], a[i]['image']) for i in range(3))


def test_small_images_shrink_the_crop_and_no_augment_means_no_flip(prepared):
    assert train_crop_size(HEIGHT, WIDTH, (352, 704)) == (192, 288)
    assert train_crop_size(900, 1600, (352, 704)) == (352, 704)
    data = PreparedDataset(prepared, 'train', seed=1, augment=False)
    for epoch in range(4):
        data.set_epoch(epoch)
        item = data[0]
        assert item['image'].shape == (3, 192, 288)
        assert not _check_consistent(item, data.load_full(0))


def test_eval_mode_crops_top_rows_to_multiple_of_32(prepared):
    assert eval_window(900, 1600) == (4, 0, 896, 1600)
    assert eval_window(450, 800) == (2, 0, 448, 800)
    top, left, h, w = eval_window(HEIGHT, WIDTH)
    assert (top, left, h, w) == (8, 11, 192, 288)
    data = PreparedDataset(prepared, 'train', mode='eval')
    item = data[1]
    assert item['image'].shape == (3, 192, 288)
    assert not _check_consistent(item, data.load_full(1))
    rows, cols = _decode(item['depth_dense'][0].numpy())
    assert rows.min() == top and cols.min() == left
    torch.testing.assert_close(item['image'], data[1]['image'])  # no randomness


def test_bad_arguments(prepared, tmp_path):
    with pytest.raises(ValueError):
        PreparedDataset(prepared, 'train', mode='test')
    with pytest.raises(ValueError):
        PreparedDataset(prepared, 'train', crop=(100, 256))
    with pytest.raises(ValueError):
        PreparedDataset(tmp_path, 'train')
    data = PreparedDataset(prepared, 'train', dataroot=tmp_path)  # images are not there
    with pytest.raises(ValueError):
        data[0]


def test_half_scale_keeps_the_nearest_measurement_of_each_2x2_block(prepared):
    """Oracle: the 2x2 block rule written out per pixel (a target pixel (r, c) covers source
    rows 2r, 2r+1 and cols 2c, 2c+1 at scale 1/2)."""
    native = PreparedDataset(prepared, 'train', 'eval').load_full(0)
    half = PreparedDataset(prepared, 'train', 'eval', scale=0.5).load_full(0)
    h, w = HEIGHT // 2, WIDTH // 2
    assert half['image'].shape == (h, w, 3) and half['radar'].shape == (4, h, w)
    for key in ('depth_single', 'depth_dense'):
        src, got = native[key], half[key]
        assert got.shape == (h, w)
        for r, c in [(0, 0), (17, 40), (h - 1, w - 1), (50, 3)] + [
                tuple(x) for x in np.argwhere(got > 0)[:50]]:
            block = src[2 * r:2 * r + 2, 2 * c:2 * c + 2]
            valid = block[block > 0]
            assert got[r, c] == (valid.min() if valid.size else 0)
    radar_src, radar_got = native['radar'], half['radar']
    for r, c in np.argwhere(radar_src[0] > 0):
        block = radar_src[:, 2 * (r // 2):2 * (r // 2) + 2, 2 * (c // 2):2 * (c // 2) + 2]
        depths = np.where(block[0] > 0, block[0], np.inf)
        i, j = np.unravel_index(np.argmin(depths), depths.shape)
        np.testing.assert_array_equal(radar_got[:, r // 2, c // 2], block[:, i, j])
    assert np.count_nonzero(radar_got[0]) <= np.count_nonzero(radar_src[0])
    conf = native['confidence_gt']
    np.testing.assert_array_equal(
        half['confidence_gt'],
        conf[:2 * h, :2 * w].reshape(h, 2, w, 2).max(axis=(1, 3)))
    # A 2x2 mean of the image (area averaging), within rounding.
    mean = native['image'][:2 * h, :2 * w].reshape(h, 2, w, 2, 3).mean(axis=(1, 3))
    assert np.abs(half['image'].astype(float) - mean).max() <= 1.0
    # Pixel centres on integers: u' + 0.5 = (u + 0.5) / 2.
    np.testing.assert_allclose(half['K'][0], [150.0, 0.0, (160.0 + 0.5) / 2 - 0.5])
    np.testing.assert_allclose(half['K'][1], [0.0, 150.0, (95.0 + 0.5) / 2 - 0.5])
    item = PreparedDataset(prepared, 'train', 'train', crop=(64, 128), scale=0.5)[0]
    assert item['image'].shape == (3, 64, 128)
