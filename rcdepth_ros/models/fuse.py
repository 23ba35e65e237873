"""Inference-time rewrites of the networks that keep their outputs: :func:`fuse_for_inference`.

Three rewrites, each exact up to fp32 rounding, applied the same way to every variant:

1. batch norms folded into the convolutions before them (:func:`fuse_batchnorm`);
2. stride-1 transposed convolutions (the 1x1 projections and stride-1 depthwise 3x3 of the
   students' transposed inverted residuals) written as ordinary convolutions with the
   kernel transposed and flipped (:func:`transposed_as_conv`), which take PyTorch's fast
   oneDNN path on CPU instead of the generic col2im one;
3. modules that define ``fused()`` replaced by what it returns (FiLM: gamma and beta from
   one stacked conv, :class:`.fusion.FusedFiLM`).

Batch-norm folding:

In eval mode a ``BatchNorm2d`` is a per-channel affine map ``y = a * x + b`` with
``a = gamma / sqrt(var + eps)`` and ``b = beta - a * mean``. When it directly follows a
convolution, ``bn(conv(x)) = conv'(x)`` with the weights scaled per output channel and a
bias: the same numbers (up to fp32 rounding) for one pass over memory less. Only pairs whose
order is certain are folded:

- consecutive ``(Conv2d | ConvTranspose2d, BatchNorm2d)`` children of an ``nn.Sequential``
  (the student blocks, torchvision ``Conv2dNormActivation`` and inverted residuals,
  ResNet ``downsample``);
- torchvision ResNet blocks (``conv1/bn1``, ``conv2/bn2``, ``conv3/bn3``) and a module with
  a ``conv1``/``bn1`` stem called in that order (:class:`.resnet.ResNetFeatures`).

A norm after a non-linearity (the BTS up-convolutions of the teacher) stays as it is. The
folded norm becomes ``nn.Identity``, so module paths of the other layers do not change;
the model is for inference only afterwards (there is nothing left to train in the norms).
The rewritten model returns the same output fields (the distillation features included); the
norms' parameters live on in the conv weights and biases.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from .resnet import ResNetFeatures

_CONVS = (nn.Conv2d, nn.ConvTranspose2d)


@torch.no_grad()
def fold_batchnorm(conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d) -> None:
    """Fold eval-mode ``bn`` into ``conv`` in place, so that ``conv(x) == bn(conv(x))``."""
    if not bn.track_running_stats or bn.running_mean is None or bn.running_var is None:
        raise ValueError('cannot fold a batch norm without running statistics')
    out_channels = conv.out_channels
    if bn.num_features != out_channels:
        raise ValueError(f'batch norm of {bn.num_features} channels after a conv with '
                         f'{out_channels} outputs')
    scale = torch.rsqrt(bn.running_var.double() + bn.eps)  # (C_out,)
    if bn.weight is not None:
        scale = scale * bn.weight.double()
    shift = -bn.running_mean.double() * scale
    if bn.bias is not None:
        shift = shift + bn.bias.double()
    weight = conv.weight.double()
    if isinstance(conv, nn.ConvTranspose2d):
        # weight (C_in, C_out / groups, kh, kw): output channel g * C_out/groups + j.
        groups = conv.groups
        w = weight.view(groups, -1, *weight.shape[1:])  # (G, C_in/G, C_out/G, kh, kw)
        w = w * scale.view(groups, 1, -1, 1, 1)
        weight = w.view_as(weight)
    else:
        weight = weight * scale.view(-1, 1, 1, 1)  # (C_out, C_in / groups, kh, kw)
    bias = shift if conv.bias is None else conv.bias.double() * scale + shift
    conv.weight.copy_(weight.to(conv.weight.dtype))
    if conv.bias is None:
        conv.bias = nn.Parameter(bias.to(conv.weight.dtype), requires_grad=False)
    else:
        conv.bias.copy_(bias.to(conv.bias.dtype))


def _fold_attrs(module: nn.Module, pairs: tuple[tuple[str, str], ...]) -> int:
    count = 0
    for conv_name, bn_name in pairs:
        conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
        if isinstance(conv, _CONVS) and isinstance(bn, nn.BatchNorm2d):
            fold_batchnorm(conv, bn)
            setattr(module, bn_name, nn.Identity())
            count += 1
    return count


def _fold_sequential(seq: nn.Sequential) -> int:
    count = 0
    names = list(seq._modules)
    for first, second in zip(names, names[1:]):
        conv, bn = seq._modules[first], seq._modules[second]
        if isinstance(conv, _CONVS) and isinstance(bn, nn.BatchNorm2d):
            fold_batchnorm(conv, bn)
            seq._modules[second] = nn.Identity()
            count += 1
    return count


def fuse_batchnorm(model: nn.Module) -> int:
    """Fold every batch norm that directly follows a conv into it, in place; return the count.

    The model must be in eval mode (folding uses the running statistics); see the module
    docstring for which pairs qualify. Outputs stay equal up to fp32 rounding.
    """
    if model.training:
        raise ValueError('fuse_batchnorm needs a model in eval mode (call model.eval())')
    count = 0
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            count += _fold_sequential(module)
        elif isinstance(module, (BasicBlock, Bottleneck)):
            count += _fold_attrs(module, (('conv1', 'bn1'), ('conv2', 'bn2'), ('conv3', 'bn3')))
        elif isinstance(module, ResNetFeatures):
            count += _fold_attrs(module, (('conv1', 'bn1'),))
    return count


def transposed_as_conv(deconv: nn.ConvTranspose2d) -> nn.Conv2d | None:
    """Return the ``Conv2d`` equal to a stride-1 ``ConvTranspose2d`` (None if strided).

    With stride 1, ``y[o] = sum_k x[o + p - k] w[k]``; substituting ``j = K - 1 - k`` gives a
    correlation with the flipped kernel and padding ``dilation * (K - 1) - p``; the weight
    ``(C_in, C_out / G, K, K)`` becomes ``(C_out, C_in / G, K, K)`` per group.
    """
    if (any(s != 1 for s in deconv.stride) or any(p != 0 for p in deconv.output_padding)
            or deconv.padding_mode != 'zeros'):
        return None
    padding = tuple(d * (k - 1) - p for d, k, p in
                    zip(deconv.dilation, deconv.kernel_size, deconv.padding))
    if min(padding) < 0:
        return None
    groups, c_in, c_out = deconv.groups, deconv.in_channels, deconv.out_channels
    conv = nn.Conv2d(c_in, c_out, deconv.kernel_size, padding=padding,
                     dilation=deconv.dilation, groups=groups, bias=deconv.bias is not None)
    with torch.no_grad():
        w = deconv.weight.view(groups, c_in // groups, c_out // groups, *deconv.kernel_size)
        w = w.transpose(1, 2).reshape(c_out, c_in // groups, *deconv.kernel_size)
        conv.weight.copy_(w.flip(-2, -1))
        if deconv.bias is not None:
            conv.bias.copy_(deconv.bias)
    return conv.to(deconv.weight.device, deconv.weight.dtype).eval()


def _replace_children(module: nn.Module) -> int:
    count = 0
    for name, child in list(module.named_children()):
        replacement = None
        if isinstance(child, nn.ConvTranspose2d):
            replacement = transposed_as_conv(child)
        elif callable(getattr(child, 'fused', None)):
            replacement = child.fused()
        if replacement is not None:
            module._modules[name] = replacement.eval()
            count += 1
        else:
            count += _replace_children(child)
    return count


def fuse_for_inference(model: nn.Module) -> dict[str, int]:
    """Apply the three rewrites of the module docstring in place; return their counts.

    The model must be in eval mode. Returns ``{'batchnorm': n, 'replaced': m}``: folded
    norms and modules replaced by an equivalent (convolutions, FiLM).
    """
    folded = fuse_batchnorm(model)  # first: a folded norm may follow a transposed conv
    return {'batchnorm': folded, 'replaced': _replace_children(model)}
