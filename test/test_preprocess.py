"""The shared pre-processing: known values, layout (H != W), batching and bad input."""

import numpy as np
import pytest
import torch

from rcdepth_ros.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    image_to_tensor,
    radar_to_tensor,
)


def test_image_known_values_and_layout():
    image = np.zeros((5, 7, 3), np.uint8)  # H != W
    image[1, 4] = (255, 0, 128)  # row 1, column 4, RGB
    x = image_to_tensor(image)
    assert x.shape == (1, 3, 5, 7) and x.dtype == torch.float32
    expected = [(1.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0],
                (0.0 - IMAGENET_MEAN[1]) / IMAGENET_STD[1],
                (128 / 255 - IMAGENET_MEAN[2]) / IMAGENET_STD[2]]
    torch.testing.assert_close(x[0, :, 1, 4], torch.tensor(expected))
    zero = [-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]
    torch.testing.assert_close(x[0, :, 4, 1], torch.tensor(zero))


def test_image_batch_numpy_and_torch_agree():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 4, 6, 3), dtype=np.uint8)
    x = image_to_tensor(images)
    assert x.shape == (2, 3, 4, 6) and x.is_contiguous()
    torch.testing.assert_close(image_to_tensor(torch.from_numpy(images)), x)
    torch.testing.assert_close(image_to_tensor(images[1])[0], x[1])


@pytest.mark.parametrize('bad', [
    np.zeros((4, 6, 3), np.float32),
    np.zeros((4, 6), np.uint8),
    np.zeros((4, 6, 4), np.uint8),
    np.zeros((1, 1, 4, 6, 3), np.uint8),
])
def test_image_bad_input(bad):
    with pytest.raises(ValueError):
        image_to_tensor(bad)


def test_image_not_an_array():
    with pytest.raises(TypeError):
        image_to_tensor([[0, 0, 0]])


def test_radar_values_unchanged():
    radar = np.zeros((4, 5, 7), np.float64)
    radar[:, 2, 6] = (31.5, -4.0, 1.25, -0.5)
    x = radar_to_tensor(radar)
    assert x.shape == (1, 4, 5, 7) and x.dtype == torch.float32
    torch.testing.assert_close(x[0, :, 2, 6], torch.tensor([31.5, -4.0, 1.25, -0.5]))
    assert float(x.abs().sum()) == pytest.approx(31.5 + 4.0 + 1.25 + 0.5)
    assert radar_to_tensor(np.zeros((3, 4, 5, 7), np.float32)).shape == (3, 4, 5, 7)


@pytest.mark.parametrize('bad', [
    np.zeros((3, 5, 7), np.float32),
    np.zeros((5, 7), np.float32),
    np.full((4, 5, 7), np.nan, np.float32),
    *(np.where(np.arange(140).reshape(4, 5, 7) == 61, v, 0.0).astype(np.float32)
      for v in (np.nan, np.inf, -np.inf)),  # a single bad value among zeros
])
def test_radar_bad_input(bad):
    with pytest.raises(ValueError):
        radar_to_tensor(bad)
