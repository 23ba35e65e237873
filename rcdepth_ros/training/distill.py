"""Distillation terms (LiRCDepth KD, XD-RCDepth X-KD and D2-KD) and the loss combinators.

Teacher tensors are always detached inside the terms, so no gradient reaches the teacher.
Feature tuples follow ``rcdepth_ros.models.outputs``: image and radar features finest first
(1/2 .. 1/32), decoder features coarsest first (1/32 .. 1/2), inter-depths at 1/8, 1/4, 1/2.
All terms are computed per sample and averaged over the batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
import math

import torch
from torch import Tensor, nn
import torch.nn.functional as F

from ..errors import BadArgument
from ..models.outputs import StudentOutput, TeacherOutput
from .losses import (
    VALID_DEPTH,
    bce_confidence_loss,
    gt_masks,
    l1_depth_loss,
    laplace_nll,
    masked_mean,
    nll_target,
    rectified_depth_loss,
    relative_error_uncertainty,
    smoothness_loss,
)

SCHEMES = ('none', 'lircdepth', 'xdrcdepth')
"""Knowledge-distillation schemes accepted by :func:`student_loss`."""
D2KD_PIXELS = ('all', 'gt')
"""Where D2-KD is computed: every pixel (the paper) or the pixels with ground truth."""
KD_WEIGHTS = ('kd_image', 'kd_radar', 'kd_similarity', 'kd_inter_depth', 'xkd', 'd2kd')
"""The distillation weights that ``kd_warmup_steps`` ramps up."""


def kd_ramp(weights: LossWeights, step: int) -> LossWeights:
    """``weights`` with every KD weight scaled by ``min(1, (step + 1) / kd_warmup_steps)``."""
    if weights.kd_warmup_steps <= 0 or step >= weights.kd_warmup_steps:
        return weights
    factor = (max(step, 0) + 1) / weights.kd_warmup_steps
    return replace(weights, **{name: getattr(weights, name) * factor for name in KD_WEIGHTS})


@dataclass(frozen=True)
class LossWeights:
    """Every weight and hyper-parameter of the teacher and student objectives (SPEC 3).

    Defaults reproduce the papers; ``d2kd_bins`` and ``d2kd_temperature`` are not published,
    our choice is 80 uniform bins over ``[0, max_depth]`` and tau = 1.0.
    """

    # Teacher (CaFNet with single-scan supervision).
    teacher_dense: float = 1.0
    teacher_single: float = 1.0
    teacher_confidence: float = 1.0
    teacher_coarse: float = 0.5
    # Every student.
    depth: float = 1.0  # lambda_1 of XD-RCDepth; 1 in LiRCDepth
    smoothness: float = 0.001
    uncertainty_nll: float = 1.0
    detach_rectification: bool = False  # reference: weights of L_depth not detached
    valid_depth: float = VALID_DEPTH
    # LiRCDepth KD.
    kd_image: float = 1.0
    kd_radar: float = 1.0
    kd_similarity: float = 1.0
    kd_inter_depth: float = 1.0
    similarity_pool_scale: float = 0.2
    # XD-RCDepth KD.
    xkd: float = 0.5  # lambda_2
    d2kd: float = 0.5  # lambda_3
    d2kd_bins: int = 80
    d2kd_temperature: float = 1.0
    # Not in the papers (defaults keep them off): D2-KD on the pixels with ground truth only
    # ('gt': M_s or M_d) instead of every pixel ('all'), and a linear ramp of every KD weight
    # from 0 over the first kd_warmup_steps steps.
    d2kd_pixels: str = 'all'
    kd_warmup_steps: int = 0
    max_depth: float = 100.0

    def __post_init__(self) -> None:
        """Validate ranges."""
        for name, value in vars(self).items():
            if isinstance(value, float) and (not math.isfinite(value) or value < 0):
                raise BadArgument(f'LossWeights.{name} must be finite and >= 0, got {value}')
        if self.d2kd_pixels not in D2KD_PIXELS:
            raise BadArgument(f'LossWeights.d2kd_pixels must be one of {D2KD_PIXELS}, got '
                              f'{self.d2kd_pixels!r}')
        if self.kd_warmup_steps < 0:
            raise BadArgument(f'LossWeights.kd_warmup_steps must be >= 0, got '
                              f'{self.kd_warmup_steps}')
        if self.d2kd_bins < 2:
            raise BadArgument(f'LossWeights.d2kd_bins must be >= 2, got {self.d2kd_bins}')
        if self.d2kd_temperature <= 0 or self.max_depth <= 0:
            raise BadArgument('LossWeights.d2kd_temperature and max_depth must be > 0')
        if not 0 < self.similarity_pool_scale <= 1:
            raise BadArgument('LossWeights.similarity_pool_scale must be in (0, 1], got '
                             f'{self.similarity_pool_scale}')


DistillConfig = LossWeights
"""Alias: the same frozen dataclass holds the distillation settings."""


# --------------------------------------------------------------------------- LiRCDepth KD

def _check_pairs(name: str, student: Sequence[Tensor], teacher: Sequence[Tensor]) -> None:
    if len(student) != len(teacher):
        raise ValueError(f'{name}: {len(student)} student tensors vs {len(teacher)} teacher')
    for i, (s, t) in enumerate(zip(student, teacher)):
        if s.shape[:2] != t.shape[:2]:
            raise ValueError(f'{name}[{i}]: student {tuple(s.shape)} vs teacher {tuple(t.shape)}')


def _resize_mask(mask: Tensor, ref: Tensor) -> Tensor:
    if mask.shape[-2:] == ref.shape[-2:]:
        return mask
    return F.interpolate(mask.to(ref.dtype), size=ref.shape[-2:], mode='nearest')


def _resize_like(x: Tensor, ref: Tensor) -> Tensor:
    if x.shape[-2:] == ref.shape[-2:]:
        return x
    return F.interpolate(x, size=ref.shape[-2:], mode='bilinear', align_corners=False)


def _per_sample_l1(student: Tensor, teacher: Tensor) -> Tensor:
    """Mean absolute difference per sample, averaged over the batch (all elements valid)."""
    return (_resize_like(student, teacher) - teacher.detach()).abs().flatten(1).mean(1).mean()


def image_feature_kd(student: Sequence[Tensor], teacher: Sequence[Tensor]) -> Tensor:
    """Pixel-wise image-feature L1 (LiRCDepth): ``sum_i 2^-i mean|F_S - F_T|``, deepest first.

    Inputs finest first (1/2 .. 1/32), ``(B, C_k, H_k, W_k)`` with teacher widths; the 1/32
    feature gets weight 1, the 1/2 feature 1/16.
    """
    _check_pairs('image_feature_kd', student, teacher)
    n = len(student)
    return sum(2.0 ** -(n - 1 - k) * _per_sample_l1(s, t)
               for k, (s, t) in enumerate(zip(student, teacher)))


def radar_feature_kd(student: Sequence[Tensor], teacher: Sequence[Tensor]) -> Tensor:
    """Pixel-wise radar-feature L1 against CaFNet's gated radar features (LiRCDepth).

    ``sum_i 2^-i mean|R_S - r_T|``, finest first (the 1/2 feature gets weight 1); inputs
    finest first, widths (64, 128, 128, 512, 512).
    """
    _check_pairs('radar_feature_kd', student, teacher)
    return sum(2.0 ** -k * _per_sample_l1(s, t)
               for k, (s, t) in enumerate(zip(student, teacher)))


def _cell_similarity(feat: Tensor) -> Tensor:
    """Cosine-similarity matrix between the cells of ``feat (B, C, h, w)`` -> ``(B, N, N)``."""
    flat = F.normalize(feat.flatten(2), dim=1, eps=1e-8)  # (B, C, N)
    return torch.einsum('bcm,bcn->bmn', flat, flat)


def pairwise_similarity_kd_single(student: Tensor, teacher: Tensor,
                                  pool_scale: float = 0.2) -> Tensor:
    """Pair-wise similarity distillation of one decoder feature (LiRCDepth).

    Both maps are max-pooled with kernel = stride = ``pool_scale * (H, W)`` (ceil mode, about
    5 x 5 cells), then ``mean_{m,n} (S_T(m, n) - S_S(m, n))^2`` with ``S`` the cosine similarity
    between cells, per sample, mean over the batch. Shapes ``(B, C, H, W)``. Unlike the
    reference code, which detaches the per-cell norms, the cosine keeps its exact gradient.
    """
    student = _resize_like(student, teacher)
    h, w = teacher.shape[-2:]
    kernel = (max(1, int(h * pool_scale)), max(1, int(w * pool_scale)))
    pool_s = F.max_pool2d(student, kernel, kernel, ceil_mode=True)  # (B, C, h', w')
    pool_t = F.max_pool2d(teacher.detach(), kernel, kernel, ceil_mode=True)
    diff = (_cell_similarity(pool_t) - _cell_similarity(pool_s)) ** 2  # (B, N, N)
    return diff.flatten(1).mean(1).mean()


def pairwise_similarity_kd(student: Sequence[Tensor], teacher: Sequence[Tensor],
                           pool_scale: float = 0.2) -> Tensor:
    """Pair-wise decoder similarity over the 5 decoder scales, ``sum_i 2^-i``, finest first.

    Inputs coarsest first (1/32 .. 1/2) as in ``decoder_features``; the finest gets weight 1.
    """
    _check_pairs('pairwise_similarity_kd', student, teacher)
    n = len(student)
    return sum(2.0 ** -(n - 1 - k) * pairwise_similarity_kd_single(s, t, pool_scale)
               for k, (s, t) in enumerate(zip(student, teacher)))


def inter_depth_kd(student: Sequence[Tensor], teacher: Sequence[Tensor], mask_dense: Tensor,
                   detach_weights: bool = False, threshold: float = VALID_DEPTH) -> Tensor:
    """Uncertainty-aware inter-depth L1 (LiRCDepth) at 1/8, 1/4, 1/2.

    ``U = 1 - exp(-5 |d_T - d_S| / (d_T + d_S))`` where ``d_T > 0.01`` (1 elsewhere);
    ``L = sum_i 2^-i sum(M_d U |d_S - d_T|) / sum(M_d U)`` with the 1/2 map at weight 1.
    Inputs ordered 1/8, 1/4, 1/2 as in ``inter_depths``, each ``(B, 1, H, W)`` in units of
    depth / max_depth; ``mask_dense`` is ``M_d (B, 1, H, W)``.
    """
    _check_pairs('inter_depth_kd', student, teacher)
    n = len(student)
    total = 0.0
    for k, (d_s, d_t) in enumerate(zip(student, teacher)):
        d_t = d_t.detach()
        d_s = _resize_like(d_s, d_t)
        mask = mask_dense.to(d_t.dtype)
        if mask.shape[-2:] != d_t.shape[-2:]:
            mask = F.interpolate(mask, size=d_t.shape[-2:], mode='nearest')
        u = relative_error_uncertainty(d_t, d_s, d_t > threshold)  # (B, 1, H, W)
        if detach_weights:
            u = u.detach()
        total = total + 2.0 ** -(n - 1 - k) * masked_mean((d_s - d_t).abs(), mask * u)
    return total


# --------------------------------------------------------------------------- XD-RCDepth KD

def gradcam_maps(phi: Tensor, features: Sequence[Tensor], create_graph: bool) -> list[Tensor]:
    """Grad-CAM saliency ``ReLU(sum_c alpha_c F_c)``, ``alpha_c = mean_ij dphi/dF_c(i, j)``.

    ``phi (B,)`` is a per-sample scalar target; ``features`` are ``(B, C_l, h_l, w_l)`` on
    its graph. Samples are independent in ``phi.sum()`` only when the forward keeps them
    independent: eval mode, or :func:`batch_statistics_held` in training mode (plain
    training-mode batch norm couples them). A feature ``phi`` does not depend on gives a zero
    map. Returns ``(B, 1, h_l, w_l)``.
    """
    features = list(features)
    if not phi.requires_grad:
        raise ValueError('gradcam_maps: the target carries no graph; run the network with '
                         'gradients enabled (see teacher_forward)')
    for i, f in enumerate(features):
        if not f.requires_grad:
            raise ValueError(f'gradcam_maps: feature {i} carries no graph')
    grads = torch.autograd.grad(phi.sum(), features, create_graph=create_graph,
                                retain_graph=True, allow_unused=True)
    maps = []
    for f, g in zip(features, grads):
        if g is None:
            g = torch.zeros_like(f)
        alpha = g.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
        maps.append(F.relu((alpha * f).sum(dim=1, keepdim=True)))  # (B, 1, h, w)
    return maps


@contextmanager
def batch_statistics_held(model: nn.Module) -> Iterator[None]:
    """Within: train-mode batch norms use the batch's statistics as constants.

    The forward values are those of training mode (each layer normalises with the current
    batch's mean and variance), but no gradient flows through the statistics and the running
    statistics are not updated. Gradients of a per-sample target then stay per sample: in plain
    training mode the gradient reaching a batch-norm input sums to zero over batch x H x W per
    channel, so Grad-CAM channel weights of a batch satisfy sum_b alpha_b = 0 (opposite at
    batch 2, floating-point noise at batch 1). Eval-mode layers are left alone.
    """
    patched = []
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.training:
            module.forward = _held_batch_norm(module)  # instance attribute shadows the class
            patched.append(module)
    try:
        yield
    finally:
        for module in patched:
            del module.forward


def _held_batch_norm(module: nn.modules.batchnorm._BatchNorm):
    def forward(x: Tensor) -> Tensor:
        dims = [0, *range(2, x.dim())]
        with torch.no_grad():
            mean = x.mean(dims)
            var = x.var(dims, unbiased=False)
        return F.batch_norm(x, mean, var, module.weight, module.bias, training=False,
                            momentum=0.0, eps=module.eps)
    return forward


# Grad-CAM maps are L2-normalised, so scaling the target does not change them; this keeps
# the channel weights of half-precision graphs from underflowing.
_SALIENCY_TARGET_SCALE = 1024.0


def xkd_loss(student_maps: Sequence[Tensor], teacher_maps: Sequence[Tensor]) -> Tensor:
    """X-KD (XD-RCDepth): ``(1/|L|) sum_l (1 - <a_S, a_T>)`` of L2-normalised flat saliency.

    Maps ``(B, 1, h, w)``; a student map is bilinearly resized to its teacher map's size.
    Per sample, mean over the batch. Teacher maps are detached. Where a teacher map is all
    zero (nothing salient after the ReLU) the term is 0: ``1 - <a_S, 0>`` is a constant
    without gradient, and keeping it would make identical networks score > 0.
    """
    if len(student_maps) != len(teacher_maps) or not student_maps:
        raise ValueError('xkd_loss: need the same non-zero number of student and teacher maps')
    total = 0.0
    for m_s, m_t in zip(student_maps, teacher_maps):
        m_t = m_t.detach()
        a_s = F.normalize(_resize_like(m_s, m_t).flatten(1), dim=1, eps=1e-12)  # (B, h*w)
        flat_t = m_t.flatten(1)  # (B, h*w)
        a_t = F.normalize(flat_t, dim=1, eps=1e-12)
        salient = (flat_t.abs().sum(dim=1) > 0).to(a_s.dtype)  # (B,)
        total = total + (salient * (1.0 - (a_s * a_t).sum(dim=1))).mean()
    return total / len(student_maps)


def image_mean_depth(depth: Tensor) -> Tensor:
    """X-KD target ``phi``: the image-mean predicted depth, ``(B, 1, H, W) -> (B,)``."""
    return depth.flatten(1).mean(dim=1)


def xkd_term(student: StudentOutput, teacher_maps: Sequence[Tensor]) -> Tensor:
    """X-KD of a student output against precomputed teacher saliency maps.

    The student's saliency is built with ``create_graph=True`` so the loss trains the student
    through the gradients of ``phi`` as well as through its features. ``student`` must come
    from a forward whose samples are independent (eval mode, or training mode under
    :func:`batch_statistics_held`; see :func:`student_saliency_forward`).
    """
    maps_s = gradcam_maps(_SALIENCY_TARGET_SCALE * image_mean_depth(student.depth),
                          student.xkd_features, create_graph=True)
    return xkd_loss(maps_s, teacher_maps)


def student_saliency_forward(student: nn.Module, image: Tensor, radar: Tensor) -> StudentOutput:
    """Forward the student for X-KD with per-sample gradients (batch statistics held)."""
    with batch_statistics_held(student):
        return student(image, radar)


def teacher_saliency(teacher: TeacherOutput) -> list[Tensor]:
    """Teacher X-KD maps (no graph kept): needs a teacher output run with gradients enabled."""
    maps = gradcam_maps(_SALIENCY_TARGET_SCALE * image_mean_depth(teacher.depth),
                        teacher.xkd_features, create_graph=False)
    return [m.detach() for m in maps]


def depth_bin_centres(num_bins: int, max_depth: float, device: torch.device | None = None,
                      dtype: torch.dtype = torch.float32) -> Tensor:
    """Centres of ``num_bins`` uniform bins over ``[0, max_depth]``, shape ``(num_bins,)``."""
    width = max_depth / num_bins
    return (torch.arange(num_bins, device=device, dtype=dtype) + 0.5) * width


def d2kd_loss(student_depth: Tensor, teacher_depth: Tensor, num_bins: int = 80,
              temperature: float = 1.0, max_depth: float = 100.0,
              mask: Tensor | None = None) -> Tensor:
    """D2-KD (XD-RCDepth): KL between soft depth-bin distributions of teacher and student.

    ``z_i(p) = -|d(p) - c_i|``, ``p_S = softmax(z_S / tau)``, ``q_T = softmax(z_T / tau)``,
    ``L = tau^2 / |Omega| sum_p sum_i q_T log(q_T / p_S)`` over all pixels ``Omega`` of a
    sample, mean over the batch. Depths ``(B, 1, H, W)`` metres (student resized to teacher).
    ``mask`` ``(B, 1, H, W)`` (at the teacher's size) restricts ``Omega`` to its pixels.
    """
    _check_pairs('d2kd_loss', [student_depth], [teacher_depth])
    teacher_depth = teacher_depth.detach()
    student_depth = _resize_like(student_depth, teacher_depth)
    centres = depth_bin_centres(num_bins, max_depth, student_depth.device,
                                student_depth.dtype).view(1, -1, 1, 1)  # (1, K, 1, 1)
    log_p = F.log_softmax(-(student_depth - centres).abs() / temperature, dim=1)  # (B, K, H, W)
    log_q = F.log_softmax(-(teacher_depth - centres).abs() / temperature, dim=1)
    kl = (log_q.exp() * (log_q - log_p)).sum(dim=1, keepdim=True)  # (B, 1, H, W)
    if mask is None:
        return temperature ** 2 * kl.flatten(1).mean(1).mean()
    return temperature ** 2 * masked_mean(kl, mask.to(kl.dtype))


# --------------------------------------------------------------------------- combinators

def _batch_tensor(batch: Mapping[str, Tensor], key: str, like: Tensor) -> Tensor:
    if key not in batch:
        raise ValueError(f'batch has no {key!r} (keys: {sorted(batch)})')
    value = batch[key]
    if value.shape != like.shape:
        raise ValueError(f'batch[{key!r}] has shape {tuple(value.shape)}, prediction has '
                         f'{tuple(like.shape)}')
    return value.to(like.dtype)


def teacher_loss(out: TeacherOutput, batch: Mapping[str, Tensor],
                 weights: LossWeights | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """CaFNet teacher objective with single-scan supervision (the LiRCDepth teacher).

    ``L = L1(D_hat, D_d; [D_d > 0.01]) + 1.0 BCE(conf, C_gt; [D_d > 0.01])
    + 0.5 L1(D_coarse, D_d; [D_d > 0.01]) + 0.001 smooth(D_hat, I) + L1(D_hat, D_s; M_s)``.
    The dense mask is SPEC's ``M_d or M_s`` restricted to pixels where ``D_d`` exists.
    Returns ``(total, terms)``; terms are the unweighted, detached values.
    """
    w = weights or LossWeights()
    depth_single = _batch_tensor(batch, 'depth_single', out.depth)
    depth_dense = _batch_tensor(batch, 'depth_dense', out.depth)
    confidence_gt = _batch_tensor(batch, 'confidence_gt', out.confidence)
    mask_single, _ = gt_masks(depth_single, depth_dense, w.valid_depth)
    mask_dense_any = (depth_dense > w.valid_depth).to(out.depth.dtype)
    terms = {
        'dense': l1_depth_loss(out.depth, depth_dense, mask_dense_any),
        'single': l1_depth_loss(out.depth, depth_single, mask_single),
        'confidence': bce_confidence_loss(out.confidence, confidence_gt, mask_dense_any),
        'coarse': l1_depth_loss(out.coarse_depth, depth_dense, mask_dense_any),
        'smoothness': smoothness_loss(out.depth, batch['image']),
    }
    total = (w.teacher_dense * terms['dense'] + w.teacher_single * terms['single']
             + w.teacher_confidence * terms['confidence'] + w.teacher_coarse * terms['coarse']
             + w.smoothness * terms['smoothness'])
    return total, {k: v.detach() for k, v in terms.items()}


def student_loss(out: StudentOutput, batch: Mapping[str, Tensor],
                 teacher_out: TeacherOutput | None = None, scheme: str = 'none',
                 weights: LossWeights | None = None,
                 teacher_maps: Sequence[Tensor] | None = None,
                 saliency_out: StudentOutput | None = None,
                 ) -> tuple[Tensor, dict[str, Tensor]]:
    """Student objective: ``w_depth L_depth + 0.001 smooth + KD(scheme) + NLL``.

    - ``none``: no KD.
    - ``lircdepth``: image-feature, radar-feature, pair-wise similarity and inter-depth KD.
    - ``xdrcdepth``: ``0.5 X-KD + 0.5 D2-KD``; the teacher output must carry the graph from
      its ``xkd_features`` to its depth (:func:`teacher_forward` with ``saliency=True``), or
      ``teacher_maps`` (from :func:`teacher_saliency`) must be given. The student's saliency
      is taken from ``saliency_out`` (:func:`student_saliency_forward`) when given, else from
      ``out`` (right only when ``out`` came from an eval-mode forward).

    ``L_depth`` is :func:`rectified_depth_loss`; NLL is :func:`laplace_nll` of ``log_scale``
    on ``M_s`` (target ``D_s``) and ``M_d`` (target ``D_d``), depth detached. Any student
    works with any scheme (same output fields). Returns ``(total, terms)``, terms unweighted
    and detached.
    """
    if scheme not in SCHEMES:
        raise ValueError(f'unknown KD scheme {scheme!r}; expected one of {SCHEMES}')
    if scheme != 'none' and teacher_out is None:
        raise ValueError(f'KD scheme {scheme!r} needs the teacher output')
    w = weights or LossWeights()
    depth_single = _batch_tensor(batch, 'depth_single', out.depth)
    depth_dense = _batch_tensor(batch, 'depth_dense', out.depth)
    target, valid = nll_target(depth_single, depth_dense, w.valid_depth)
    terms = {
        'depth': rectified_depth_loss(out.depth, depth_dense, depth_single,
                                      w.detach_rectification, w.valid_depth),
        'smoothness': smoothness_loss(out.depth, batch['image']),
        'nll': laplace_nll(out.depth, out.log_scale, target, valid),
    }
    total = (w.depth * terms['depth'] + w.smoothness * terms['smoothness']
             + w.uncertainty_nll * terms['nll'])
    if scheme == 'lircdepth':
        _, mask_dense = gt_masks(depth_single, depth_dense, w.valid_depth)
        terms['kd_image'] = image_feature_kd(out.image_features, teacher_out.image_features)
        terms['kd_radar'] = radar_feature_kd(out.radar_features, teacher_out.radar_features)
        terms['kd_similarity'] = pairwise_similarity_kd(
            out.decoder_features, teacher_out.decoder_features, w.similarity_pool_scale)
        terms['kd_inter_depth'] = inter_depth_kd(out.inter_depths, teacher_out.inter_depths,
                                                 mask_dense, w.detach_rectification,
                                                 w.valid_depth)
        total = (total + w.kd_image * terms['kd_image'] + w.kd_radar * terms['kd_radar']
                 + w.kd_similarity * terms['kd_similarity']
                 + w.kd_inter_depth * terms['kd_inter_depth'])
    elif scheme == 'xdrcdepth':
        maps_t = teacher_maps if teacher_maps is not None else teacher_saliency(teacher_out)
        terms['xkd'] = xkd_term(saliency_out if saliency_out is not None else out, maps_t)
        gt_pixels = None
        if w.d2kd_pixels == 'gt':
            gt_pixels = _resize_mask(valid, teacher_out.depth)
        terms['d2kd'] = d2kd_loss(out.depth, teacher_out.depth, w.d2kd_bins,
                                  w.d2kd_temperature, w.max_depth, gt_pixels)
        total = total + w.xkd * terms['xkd'] + w.d2kd * terms['d2kd']
    return total, {k: v.detach() for k, v in terms.items()}


def teacher_forward(teacher: nn.Module, image: Tensor, radar: Tensor,
                    saliency: bool = False) -> tuple[TeacherOutput, list[Tensor] | None]:
    """Run the frozen teacher for distillation; return ``(detached output, saliency maps)``.

    With ``saliency=False`` the forward runs under ``no_grad`` and the maps are ``None``.
    With ``saliency=True`` (X-KD) the forward keeps a graph (the inputs are made to require
    gradients, so frozen parameters still give one) only long enough to compute the teacher's
    Grad-CAM maps without ``create_graph``; parameter gradients are never accumulated.
    """
    if not saliency:
        with torch.no_grad():
            return teacher(image, radar), None
    with torch.enable_grad():
        image_in = image.detach().requires_grad_(True)
        radar_in = radar.detach().requires_grad_(True)
        out = teacher(image_in, radar_in)
        maps = gradcam_maps(_SALIENCY_TARGET_SCALE * image_mean_depth(out.depth),
                            out.xkd_features, create_graph=False)
    detached = type(out)(*[_detach_nested(v) for v in out])
    return detached, [m.detach() for m in maps]


def _detach_nested(value: Tensor | Sequence[Tensor]) -> Tensor | tuple[Tensor, ...]:
    if isinstance(value, Tensor):
        return value.detach()
    return tuple(v.detach() for v in value)
