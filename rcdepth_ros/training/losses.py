"""Supervised losses: depth, teacher confidence, smoothness and the Laplace uncertainty NLL.

Conventions shared by every loss here (SPEC section 3):

- Tensors are ``(B, 1, H, W)`` unless stated; depth in metres, ``0`` = no measurement.
- Validity masks: ``M_s = [D_s > 0.01]`` (single-scan LiDAR) and
  ``M_d = [D_d > 0.01] and not M_s`` (interpolated accumulated LiDAR).
- Every loss is reduced PER SAMPLE (masked sum over the sample divided by its mask sum) and
  then averaged over the batch; a sample whose mask is empty contributes 0. No weight or mask
  is ever broadcast across samples, so a batch gives the mean of its single-sample losses.
"""

from __future__ import annotations

import torch
from torch import Tensor
import torch.nn.functional as F

VALID_DEPTH = 0.01
"""Depth (m) above which a ground-truth pixel counts as measured (reference threshold)."""

_EPS = 1e-7


def _check_same_shape(name: str, a: Tensor, b: Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f'{name}: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}')


def _check_map(name: str, x: Tensor) -> None:
    if x.dim() != 4 or x.shape[1] != 1:
        raise ValueError(f'{name}: expected shape (B, 1, H, W), got {tuple(x.shape)}')


def gt_masks(depth_single: Tensor, depth_dense: Tensor,
             threshold: float = VALID_DEPTH) -> tuple[Tensor, Tensor]:
    """Return ``(M_s, M_d)`` as float masks, ``M_d`` excluding pixels of ``M_s`` (SPEC 3)."""
    _check_same_shape('gt_masks', depth_single, depth_dense)
    mask_single = depth_single > threshold  # (B, 1, H, W)
    mask_dense = (depth_dense > threshold) & ~mask_single  # (B, 1, H, W)
    return mask_single.to(depth_single.dtype), mask_dense.to(depth_dense.dtype)


def masked_mean(values: Tensor, weight: Tensor) -> Tensor:
    """Per-sample weighted mean ``sum(w v) / sum(w)`` over (C, H, W), averaged over the batch.

    ``values`` and ``weight`` are ``(B, ...)`` of the same shape; weights are >= 0 (a binary
    mask or mask times soft weights). A sample with ``sum(w) == 0`` contributes 0.
    """
    _check_same_shape('masked_mean', values, weight)
    weight = weight.to(values.dtype)
    num = (values * weight).flatten(1).sum(dim=1)  # (B,)
    den = weight.flatten(1).sum(dim=1)  # (B,)
    per_sample = torch.where(den > 0, num / den.clamp_min(_EPS), torch.zeros_like(num))  # (B,)
    return per_sample.mean()


def l1_depth_loss(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Masked L1 ``sum(M |D_hat - D|) / sum(M)`` per sample, mean over the batch.

    Shapes ``(B, 1, H, W)``; ``mask`` is binary (float or bool); no gradient flows to ``target``.
    """
    _check_same_shape('l1_depth_loss', pred, target)
    return masked_mean((pred - target.detach()).abs(), mask.to(pred.dtype))


def bce_confidence_loss(confidence: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Masked binary cross-entropy of CaFNet's radar confidence (CaFNet, IROS 2024).

    ``BCE(c, C_gt) = -(C_gt log c + (1 - C_gt) log(1 - c))`` on ``mask``; ``confidence`` is a
    probability ``(B, 1, H, W)`` in [0, 1] (torch clamps the logs at -100, so 0 and 1 are safe).
    """
    _check_same_shape('bce_confidence_loss', confidence, target)
    bce = F.binary_cross_entropy(confidence, target.detach().to(confidence.dtype),
                                 reduction='none')  # (B, 1, H, W)
    return masked_mean(bce, mask.to(confidence.dtype))


def smoothness_loss(depth: Tensor, image: Tensor) -> Tensor:
    """Edge-aware first-order smoothness (LiRCDepth / CaFNet reference form).

    ``mean(exp(-mean_c |dI/dx|) |dD/dx|) + mean(exp(-mean_c |dI/dy|) |dD/dy|)`` with forward
    differences; ``depth (B, 1, H, W)`` metres, ``image (B, 3, H, W)`` as fed to the network.
    Mask: every pixel pair (a dense prior); every sample has the same pixel count, so the batch
    mean equals the mean of the per-sample values.
    """
    _check_map('smoothness_loss depth', depth)
    if image.dim() != 4 or image.shape[0] != depth.shape[0] or image.shape[2:] != depth.shape[2:]:
        raise ValueError(f'smoothness_loss: image {tuple(image.shape)} does not match depth '
                         f'{tuple(depth.shape)}')
    depth_dx = depth[..., :, :-1] - depth[..., :, 1:]  # (B, 1, H, W-1)
    depth_dy = depth[..., :-1, :] - depth[..., 1:, :]  # (B, 1, H-1, W)
    image = image.detach()
    weight_x = torch.exp(-(image[..., :, :-1] - image[..., :, 1:]).abs().mean(1, keepdim=True))
    weight_y = torch.exp(-(image[..., :-1, :] - image[..., 1:, :]).abs().mean(1, keepdim=True))
    per_sample = ((weight_x * depth_dx.abs()).flatten(1).mean(1)
                  + (weight_y * depth_dy.abs()).flatten(1).mean(1))  # (B,)
    return per_sample.mean()


def relative_error_uncertainty(a: Tensor, b: Tensor, mask: Tensor,
                               sharpness: float = 5.0) -> Tensor:
    """LiRCDepth uncertainty ``U = 1 - exp(-k |a - b| / (a + b))`` on ``mask``, 1 elsewhere.

    ``a``, ``b`` are positive depths ``(B, 1, H, W)``; ``k = 5`` in the paper. Outside the mask
    ``U = 1`` (the reference sets the exponential term to 0 there).
    """
    _check_same_shape('relative_error_uncertainty', a, b)
    rel = (a - b).abs() / (a + b + _EPS)  # (B, 1, H, W)
    u = 1.0 - torch.exp(-sharpness * rel)
    return torch.where(mask.bool(), u, torch.ones_like(u))


def rectification_weights(pred: Tensor, depth_dense: Tensor, depth_single: Tensor,
                          mask_dense: Tensor, mask_single: Tensor,
                          detach: bool = False) -> tuple[Tensor, Tensor]:
    """Per-pixel source weights ``[w_d, w_s] = softmax([u_d, u_s])`` (LiRCDepth, ICASSP 2025).

    ``u_x = 1 - exp(-5 |D_x - D_hat| / (D_x + D_hat))`` on ``M_x``, 1 elsewhere; the softmax
    runs over the two sources at each pixel of each sample (never across the batch).
    Returns two ``(B, 1, H, W)`` maps; ``detach`` stops their gradient (reference: not detached).
    """
    u_dense = relative_error_uncertainty(depth_dense.detach(), pred, mask_dense)  # (B, 1, H, W)
    u_single = relative_error_uncertainty(depth_single.detach(), pred, mask_single)
    w = torch.softmax(torch.cat([u_dense, u_single], dim=1), dim=1)  # (B, 2, H, W)
    if detach:
        w = w.detach()
    return w[:, 0:1], w[:, 1:2]


def rectified_depth_loss(pred: Tensor, depth_dense: Tensor, depth_single: Tensor,
                         detach_weights: bool = False,
                         threshold: float = VALID_DEPTH) -> Tensor:
    """Uncertainty-rectified depth loss ``L_depth`` (LiRCDepth, ICASSP 2025, eq. for L_depth).

    ``L = sum(M_d w_d |D_hat - D_d|) / sum(M_d w_d) + sum(M_s w_s |D_hat - D_s|) / sum(M_s w_s)``
    per sample, mean over the batch, with ``w`` from :func:`rectification_weights`.
    Shapes ``(B, 1, H, W)`` metres.
    """
    _check_map('rectified_depth_loss pred', pred)
    _check_same_shape('rectified_depth_loss', pred, depth_dense)
    _check_same_shape('rectified_depth_loss', pred, depth_single)
    mask_single, mask_dense = gt_masks(depth_single, depth_dense, threshold)
    w_dense, w_single = rectification_weights(pred, depth_dense, depth_single,
                                              mask_dense, mask_single, detach_weights)
    loss_dense = masked_mean((pred - depth_dense.detach()).abs(), mask_dense * w_dense)
    loss_single = masked_mean((pred - depth_single.detach()).abs(), mask_single * w_single)
    return loss_dense + loss_single


def laplace_nll(depth: Tensor, log_scale: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Laplace negative log-likelihood ``|D - D*| / b + log b`` (ours, SPEC 2.4).

    ``depth``, ``log_scale = log b`` (metres), ``target`` and ``mask`` are ``(B, 1, H, W)``.
    The depth is DETACHED so the head trains on the errors without changing the depth losses
    of the papers. The constant ``log 2`` is dropped.
    """
    _check_map('laplace_nll log_scale', log_scale)
    _check_same_shape('laplace_nll', depth, log_scale)
    _check_same_shape('laplace_nll', depth, target)
    err = (depth.detach() - target.detach()).abs()  # (B, 1, H, W)
    nll = err * torch.exp(-log_scale) + log_scale
    return masked_mean(nll, mask.to(log_scale.dtype))


def nll_target(depth_single: Tensor, depth_dense: Tensor,
               threshold: float = VALID_DEPTH) -> tuple[Tensor, Tensor]:
    """Ground truth for the uncertainty head: ``D_s`` on ``M_s``, else ``D_d`` on ``M_d``.

    Returns ``(target, mask)``, both ``(B, 1, H, W)``.
    """
    mask_single, mask_dense = gt_masks(depth_single, depth_dense, threshold)
    target = torch.where(mask_single.bool(), depth_single, depth_dense)
    return target, mask_single + mask_dense
