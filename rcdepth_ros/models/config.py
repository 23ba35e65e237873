"""Architecture configs and the variant registry: every variant is defined here, once.

Two config families: :class:`CaFNetConfig` (the teacher, in :mod:`.cafnet`) and
:class:`StudentConfig` (LiRCDepth and XD-RCDepth). ``config_to_dict`` adds an ``arch`` key so
``config_from_dict`` knows the family; checkpoints store that dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Union

from torch import nn

from .cafnet import CaFNet, CaFNetConfig
from .fusion import FUSION_KINDS
from .student_decoder import UPSAMPLE_KINDS

STUDENT_ARCHS = ('lircdepth', 'xdrcdepth')
_TUPLE_FIELDS = ('image_widths', 'radar_widths', 'decoder_widths', 'decoder_bottlenecks',
                 'decoder_blocks', 'daspp_rates')


@dataclass(frozen=True)
class StudentConfig:
    """Architecture of a student; saved with every checkpoint. Defaults are LiRCDepth.

    - variant: registry name; arch: ``lircdepth`` or ``xdrcdepth`` (the paper it follows).
    - fusion: ``add`` | ``concat`` | ``attention`` | ``film`` (radar into image, every scale).
    - image_widths / radar_widths: adapter widths of the 5 encoder taps (the teacher's).
    - decoder_widths: 5 decoder features 1/16 .. 1/1 (LiRCDepth: the teacher's, for its
      feature distillation; XD-RCDepth: the teacher's at 1/16 and 1/8, half of them finer).
    - decoder_bottlenecks / decoder_blocks / decoder_expansion: the 4 transposed
      inverted-residual stages (1/32 -> 1/2).
    - daspp_rates / daspp_width: point-wise dense ASPP at 1/8 (empty rates: none).
    - full_res_upsample: ``transposed`` (dense stride-2 3x3 transposed conv, LiRCDepth) or
      ``pointwise`` (1x1 conv, nearest x2, depthwise 3x3) from 1/2 to full resolution.
    - uncertainty_width: hidden width of the log-scale head.
    - max_depth: depth = max_depth * sigmoid(.), metres.
    - pretrained: load torchvision ImageNet weights into both MobileNetV2s (needs network).
    """

    variant: str = 'lircdepth'
    arch: str = 'lircdepth'
    fusion: str = 'add'
    radar_channels: int = 4
    image_widths: tuple[int, ...] = (64, 64, 128, 256, 512)
    radar_widths: tuple[int, ...] = (64, 128, 128, 512, 512)
    decoder_widths: tuple[int, ...] = (512, 128, 128, 64, 32)
    decoder_bottlenecks: tuple[int, ...] = (32, 16, 32, 32)
    decoder_blocks: tuple[int, ...] = (3, 8, 3, 2)
    decoder_expansion: int = 6
    daspp_rates: tuple[int, ...] = ()
    daspp_width: int = 32
    full_res_upsample: str = 'transposed'
    uncertainty_width: int = 16
    max_depth: float = 100.0
    pretrained: bool = False

    def __post_init__(self) -> None:
        # JSON round trips turn tuples into lists; keep the dataclass hashable and comparable.
        for name in _TUPLE_FIELDS:
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if self.arch not in STUDENT_ARCHS:
            raise ValueError(f'arch must be one of {STUDENT_ARCHS}, got {self.arch!r}')
        if self.fusion not in FUSION_KINDS:
            raise ValueError(f'fusion must be one of {FUSION_KINDS}, got {self.fusion!r}')
        for name, count in (('image_widths', 5), ('radar_widths', 5), ('decoder_widths', 5),
                            ('decoder_bottlenecks', 4), ('decoder_blocks', 4)):
            values = getattr(self, name)
            if len(values) != count or min(values) < 1:
                raise ValueError(f'{name} must be {count} positive ints, got {values}')
        if min(self.decoder_blocks) < 2:
            raise ValueError(f'decoder_blocks must be >= 2 each, got {self.decoder_blocks}')
        if self.full_res_upsample not in UPSAMPLE_KINDS:
            raise ValueError(f'full_res_upsample must be one of {UPSAMPLE_KINDS}, '
                             f'got {self.full_res_upsample!r}')
        if self.decoder_expansion < 1 or self.radar_channels < 1:
            raise ValueError('decoder_expansion and radar_channels must be positive')
        if self.max_depth <= 0:
            raise ValueError(f'max_depth must be positive, got {self.max_depth}')

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> StudentConfig:
        """Build from a JSON-style mapping; unknown keys are an error (strict loading)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f'unknown StudentConfig keys: {", ".join(unknown)}')
        return cls(**values)


ModelConfig = Union[CaFNetConfig, StudentConfig]

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
        raise ValueError(f'unknown variant {name!r}; known: {", ".join(VARIANTS)}')
    return VARIANTS[name]


def build_model(config: ModelConfig | str) -> nn.Module:
    """Build the network for a config (or a variant name), randomly initialised."""
    if isinstance(config, str):
        config = get_variant(config)
    if isinstance(config, CaFNetConfig):
        return CaFNet(config)
    if isinstance(config, StudentConfig):
        from .student import RCDepthStudent  # student.py imports this module
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
        return CaFNetConfig.from_dict(values)
    if arch in STUDENT_ARCHS:
        return StudentConfig.from_dict(values)
    raise ValueError(f'unknown model arch {arch!r}; expected cafnet or one of {STUDENT_ARCHS}')
