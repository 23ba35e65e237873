"""Training and evaluation dataset over samples written by ``rcdepth prepare``.

Items are dicts (docs/ARCHITECTURE.md): ``image (3, h, w)`` ImageNet-normalised
(:func:`rcdepth_ros.preprocess.image_to_tensor`), ``radar (4, h, w)`` (``radar_to_tensor``),
``depth_single (1, h, w)``, ``depth_dense (1, h, w)`` (interpolated accumulated GT),
``confidence_gt (1, h, w)``, ``K (3, 3)`` (intrinsics of the returned crop) and ``token``.

Train mode (SPEC 4.1, as the CaFNet / LiRCDepth loader):

- a random crop of ``crop`` at native scale. When the image is smaller than ``crop`` the
  crop shrinks to the largest multiple of 32 that fits (no resampling, no padding: sparse
  GT and radar pixels stay exact, and a dataset's images share one size so batches stack);
- with ``augment``: horizontal flip with p = 0.5 applied to image, radar and every GT alike.
  Radar velocities are not negated: they are raw radar-frame values and the reference loader
  flips the radar image without touching them; ``K`` becomes ``cx' = w - 1 - cx`` (pixel
  centres on integer coordinates, as :mod:`rcdepth_ros.geometry`);
- with ``augment``: with p = 0.5 gamma, brightness and per-channel colour factors, each in
  U[0.9, 1.1], on the image in [0, 1], clipped;
- randomness comes from a generator seeded with ``(seed, epoch, index)``, so an item depends
  only on those (call :meth:`PreparedDataset.set_epoch` each epoch), also under DataLoader
  workers and DDP. DataLoader workers copy the dataset when an epoch's iterator starts, so
  call ``set_epoch`` before iterating (and not with ``persistent_workers=True``).

Eval mode: the full image minus its top rows: ``round(4 * H / 900)`` rows (the protocol's
4 rows of 900), then more top rows until the height is a multiple of 32 (900 -> 896); the
width is centre-cropped to a multiple of 32 (1600 stays). No augmentation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .. import geometry
from ..preprocess import image_to_tensor, radar_to_tensor
from ..rescale import downscale_image, downscale_mask, downscale_sparse
from .storage import (
    list_samples,
    radar_points_to_image,
    read_confidence_png,
    read_depth_png,
    read_meta,
    read_radar_npz,
)


def eval_window(height: int, width: int) -> tuple[int, int, int, int]:
    """Return the eval crop ``(top, left, h, w)`` of an image (see module docstring)."""
    top = int(round(4 * height / 900))
    h = (height - top) // 32 * 32
    w = width // 32 * 32
    if h <= 0 or w <= 0:
        raise ValueError(f'image {height}x{width} is too small for a multiple-of-32 crop')
    return height - h, (width - w) // 2, h, w


def train_crop_size(height: int, width: int, crop: tuple[int, int]) -> tuple[int, int]:
    """Return the training crop size: ``crop``, shrunk to fit the image in multiples of 32."""
    h = min(crop[0], height // 32 * 32)
    w = min(crop[1], width // 32 * 32)
    if h <= 0 or w <= 0:
        raise ValueError(f'image {height}x{width} is too small for a multiple-of-32 crop')
    return h, w


def augment_colour(image: np.ndarray, gamma: float, brightness: float,
                   colours: np.ndarray) -> np.ndarray:
    """Apply gamma, brightness and per-channel factors to an RGB uint8 image; returns uint8."""
    x = image.astype(np.float32) / 255.0  # (h, w, 3) in [0, 1]
    x = x ** gamma * brightness * colours.astype(np.float32)[None, None, :]
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


class PreparedDataset(Dataset):
    """Samples of one split of a prepared folder (``rcdepth prepare --out root``).

    ``dataroot`` overrides the nuScenes dataroot recorded at preparation (to find the camera
    images after moving the data). ``scale`` < 1 serves every sample resized by that factor
    before cropping (:meth:`load_full`): the network then works at a smaller focal length,
    which the exported weights record so that serving resizes the same way.
    """

    def __init__(self, root: str | Path, split: str, mode: str = 'train',
                 crop: tuple[int, int] = (352, 704), seed: int = 0, augment: bool = True,
                 dataroot: str | Path | None = None, scale: float = 1.0):
        if not 0 < scale <= 1:
            raise ValueError(f'scale must be in (0, 1], got {scale}')
        self.scale = float(scale)
        if mode not in ('train', 'eval'):
            raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}")
        if len(crop) != 2 or min(crop) < 32 or crop[0] % 32 or crop[1] % 32:
            raise ValueError(f'crop must be two positive multiples of 32, got {crop}')
        self.root = Path(root)
        self.split = split
        self.mode = mode
        self.crop = (int(crop[0]), int(crop[1]))
        self.seed = int(seed)
        self.augment = bool(augment)
        self.dataroot = Path(dataroot) if dataroot is not None else None
        self.epoch = 0
        self.paths = list_samples(self.root, split)
        if not self.paths:
            raise ValueError(f'no prepared samples under {self.root / split}')
        self.metas = [read_meta(p) for p in self.paths]
        # Time order within scenes: neighbours in the list are neighbours in the drive.
        order = sorted(range(len(self.paths)),
                       key=lambda i: (self.metas[i]['scene'], self.metas[i]['timestamp']))
        self.paths = [self.paths[i] for i in order]
        self.metas = [self.metas[i] for i in order]

    @property
    def focal_length_px(self) -> float:
        """Focal length (pixels) of the images as served: median ``fx`` of the split x scale."""
        return self.scale * float(np.median([meta['K'][0][0] for meta in self.metas]))

    def __len__(self) -> int:
        return len(self.paths)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random crops and augmentations ``__getitem__`` returns."""
        self.epoch = int(epoch)

    def load_full(self, index: int) -> dict:
        """Return the NumPy arrays of one sample at the dataset's scale (no crop, no augment).

        At ``scale`` < 1 the image is area-averaged, the radar image and the LiDAR depths move
        each measured pixel to the pixel containing its centre (nearest wins, as when they were
        rasterised), the confidence target is OR-ed and ``K`` is scaled to match
        (:mod:`rcdepth_ros.rescale`, the functions serving uses too).
        """
        full = self._load_native(index)
        if self.scale == 1:
            return full
        s = self.scale
        return {
            'image': downscale_image(full['image'], s),
            'radar': downscale_sparse(full['radar'], s),
            'depth_single': downscale_sparse(full['depth_single'][None], s)[0],
            'depth_dense': downscale_sparse(full['depth_dense'][None], s)[0],
            'confidence_gt': downscale_mask(full['confidence_gt'], s),
            'K': geometry.scale_intrinsics(full['K'], s, s),
            'token': full['token'],
        }

    def _load_native(self, index: int) -> dict:
        import cv2

        path, meta = self.paths[index], self.metas[index]
        height, width = meta['height'], meta['width']
        dataroot = self.dataroot if self.dataroot is not None else Path(meta['dataroot'])
        bgr = cv2.imread(str(dataroot / meta['image']), cv2.IMREAD_COLOR)
        if bgr is None or bgr.shape[:2] != (height, width):
            raise ValueError(f'camera image of {meta["token"]} missing or not {height}x{width}: '
                             f'{dataroot / meta["image"]}')
        rc, features = read_radar_npz(path / 'radar.npz')
        return {
            'image': bgr[:, :, ::-1],  # (H, W, 3) RGB
            'radar': radar_points_to_image(rc, features, height, width),  # (4, H, W)
            'depth_single': read_depth_png(path / 'depth_single.png'),  # (H, W)
            'depth_dense': read_depth_png(path / 'depth_dense.png'),  # (H, W)
            'confidence_gt': read_confidence_png(path / 'confidence.png'),  # (H, W)
            'K': np.asarray(meta['K'], np.float64),  # (3, 3)
            'token': meta['token'],
        }

    def __getitem__(self, index: int) -> dict:
        full = self.load_full(index)
        height, width = full['depth_single'].shape
        K = full['K'].copy()
        flip, colour = False, None
        if self.mode == 'train':
            rng = np.random.default_rng([self.seed, self.epoch, index])
            h, w = train_crop_size(height, width, self.crop)
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            # Draw every number every time so the stream does not depend on earlier coins.
            do_flip, do_colour = rng.random(2) < 0.5
            factors = rng.uniform(0.9, 1.1, size=5)  # gamma, brightness, 3 colour factors
            if self.augment:
                flip = bool(do_flip)
                colour = factors if do_colour else None
        else:
            top, left, h, w = eval_window(height, width)
        rows, cols = slice(top, top + h), slice(left, left + w)
        image = full['image'][rows, cols]  # (h, w, 3)
        radar = full['radar'][:, rows, cols]  # (4, h, w)
        maps = [full[k][rows, cols] for k in ('depth_single', 'depth_dense', 'confidence_gt')]
        K[0, 2] -= left
        K[1, 2] -= top
        if flip:
            image = image[:, ::-1]
            radar = radar[:, :, ::-1]
            maps = [m[:, ::-1] for m in maps]
            K[0, 2] = (w - 1) - K[0, 2]
        if colour is not None:
            image = augment_colour(image, colour[0], colour[1], colour[2:])
        image_t = image_to_tensor(np.ascontiguousarray(image))[0]  # (3, h, w)
        depth_single, depth_dense, confidence = (
            torch.from_numpy(np.ascontiguousarray(m, dtype=np.float32))[None] for m in maps)
        return {
            'image': image_t,
            'radar': radar_to_tensor(np.ascontiguousarray(radar, dtype=np.float32))[0],
            'depth_single': depth_single,  # (1, h, w)
            'depth_dense': depth_dense,  # (1, h, w)
            'confidence_gt': confidence,  # (1, h, w)
            'K': torch.from_numpy(K.astype(np.float32)),  # (3, 3)
            'token': full['token'],
        }
