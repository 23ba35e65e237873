"""Training: losses, distillation, metrics, trainer, evaluation, export (never imports rclpy).

Import-light: the names below are loaded on first use, so ``import rcdepth_ros.training``
does not import torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    'losses': (
        'VALID_DEPTH', 'bce_confidence_loss', 'gt_masks', 'l1_depth_loss', 'laplace_nll',
        'masked_mean', 'nll_target', 'rectification_weights', 'rectified_depth_loss',
        'relative_error_uncertainty', 'smoothness_loss',
    ),
    'distill': (
        'SCHEMES', 'DistillConfig', 'LossWeights', 'd2kd_loss', 'depth_bin_centres',
        'gradcam_maps', 'image_feature_kd', 'image_mean_depth', 'inter_depth_kd',
        'pairwise_similarity_kd', 'pairwise_similarity_kd_single', 'radar_feature_kd',
        'student_loss', 'teacher_forward', 'teacher_loss', 'teacher_saliency', 'xkd_loss',
        'xkd_term',
    ),
    'metrics': (
        'DEPTH_METRICS', 'EVAL_RANGES', 'UNCERTAINTY_METRICS', 'MetricAccumulator',
        'calibration', 'depth_metrics', 'evaluate_batch', 'evaluate_image', 'flatten_metrics',
        'range_name', 'sparsification', 'uncertainty_metrics', 'valid_gt_mask',
    ),
    'config': ('PROFILES', 'TrainConfig', 'load_train_config', 'resolve_config'),
    'trainer': ('Trainer', 'TrainResult', 'TrainingDiverged', 'poly_lr', 'train'),
    'checkpoint': ('load_any_model', 'read_checkpoint', 'save_checkpoint'),
    'evaluate': ('evaluate_checkpoint', 'evaluate_model'),
    'export': ('export_checkpoint',),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    """Load an exported name from its submodule on first access."""
    if name not in _WHERE:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(importlib.import_module(f'.{_WHERE[name]}', __name__), name)
    globals()[name] = value
    return value
