"""The variant registry: every network variant is defined here, once, by its config.

Two config families sit next to their models: :class:`~.cafnet.CaFNetConfig` (the teacher)
and :class:`~.student.StudentConfig` (LiRCDepth and XD-RCDepth). :func:`config_to_dict` adds
an ``arch`` key so :func:`config_from_dict` knows the family; checkpoints and weight files
store that dict, and :func:`strict_from_dict` is the one strict reader of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, fields, replace
from typing import Any, TypeVar, Union

from torch import nn

from .cafnet import CaFNet, CaFNetConfig
from .student import STUDENT_ARCHS, RCDepthStudent, StudentConfig

ModelConfig = Union[CaFNetConfig, StudentConfig]
_C = TypeVar('_C')

_XDRCDEPTH = StudentConfig(
    variant='xdrcdepth', arch='xdrcdepth', fusion='film', decoder_widths=(512, 128, 64, 32, 16),
    decoder_blocks=(2, 4, 2, 2), decoder_expansion=2, daspp_rates=(3, 6, 12, 18, 24),
    daspp_width=48, full_res_upsample='pointwise', uncertainty_width=8)

VARIANTS: dict[str, ModelConfig] = {
    'cafnet': CaFNetConfig(),
    'lircdepth': StudentConfig(),
    'xdrcdepth': _XDRCDEPTH,
    'xdrcdepth_add': replace(_XDRCDEPTH, variant='xdrcdepth_add', fusion='add'),
    'xdrcdepth_concat': replace(_XDRCDEPTH, variant='xdrcdepth_concat', fusion='concat'),
    'xdrcdepth_attention': replace(_XDRCDEPTH, variant='xdrcdepth_attention',
                                   fusion='attention'),
    # XD-RCDepth with LiRCDepth's fine layers (teacher widths down to full resolution, dense
    # transposed up-sampling): slightly more accurate in the synthetic benchmark, 0.6x
    # LiRCDepth's CPU latency instead of 0.45x (docs/BENCHMARKS.md).
    'xdrcdepth_wide': replace(_XDRCDEPTH, variant='xdrcdepth_wide',
                              decoder_widths=(512, 128, 128, 64, 32), daspp_width=32,
                              full_res_upsample='transposed', uncertainty_width=16),
}


def strict_from_dict(cls: type[_C], values: Mapping[str, Any]) -> _C:
    """Build the config dataclass ``cls`` from a JSON-style mapping; unknown keys raise."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f'unknown {cls.__name__} keys: {", ".join(unknown)}')
    return cls(**values)


def config_arch(config: ModelConfig) -> str:
    """Return the architecture name: ``cafnet``, ``lircdepth`` or ``xdrcdepth``."""
    if isinstance(config, CaFNetConfig):
        return 'cafnet'
    if isinstance(config, StudentConfig):
        return config.arch
    raise TypeError(f'not a model config: {type(config).__name__}')


def get_variant(name: str) -> ModelConfig:
    """Return the registered config called ``name``."""
    if name not in VARIANTS:
        from ..errors import BadArgument

        raise BadArgument(f'unknown variant {name!r}; known: {", ".join(VARIANTS)}')
    return VARIANTS[name]


def build_model(config: ModelConfig | str) -> nn.Module:
    """Build the network for a config (or a variant name), randomly initialised."""
    if isinstance(config, str):
        config = get_variant(config)
    if isinstance(config, CaFNetConfig):
        return CaFNet(config)
    if isinstance(config, StudentConfig):
        return RCDepthStudent(config)
    raise TypeError(f'not a model config: {type(config).__name__}')


def config_to_dict(config: ModelConfig) -> dict[str, Any]:
    """JSON-ready dict of a config, with ``arch`` (and ``variant``) always present."""
    data = asdict(config)
    data = {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}
    if isinstance(config, CaFNetConfig):
        data = {'arch': 'cafnet', 'variant': 'cafnet', **data}
    elif not isinstance(config, StudentConfig):
        raise TypeError(f'not a model config: {type(config).__name__}')
    return data


def config_from_dict(data: Mapping[str, Any]) -> ModelConfig:
    """Inverse of :func:`config_to_dict`; unknown ``arch`` or keys raise ``ValueError``."""
    if not isinstance(data, Mapping):
        raise ValueError(f'model config must be a JSON object, got {type(data).__name__}')
    values = dict(data)
    arch = values.get('arch')
    if arch == 'cafnet':
        values.pop('arch')
        values.pop('variant', None)
        return strict_from_dict(CaFNetConfig, values)
    if arch in STUDENT_ARCHS:
        return strict_from_dict(StudentConfig, values)
    raise ValueError(f'unknown model arch {arch!r}; expected cafnet or one of {STUDENT_ARCHS}')
