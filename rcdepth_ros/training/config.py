"""Training-run configuration: a YAML file, then a profile, then dotted overrides.

``load_train_config(path, profile=None, overrides=())`` builds a frozen :class:`TrainConfig`.
Every key is checked: an unknown key or a value of the wrong type or range is one
``ValueError`` naming the key. The resolved config (``config_to_json``) is written into every
checkpoint and next to the run as ``config.yaml``, so a run is reproducible from its output.

Overrides are ``section.key=value`` strings (``optim.lr=1e-4``, ``data.crop=192,384``,
``model.options.fusion=add``); values are parsed as YAML, then converted to the field's type.
Profiles (:data:`PROFILES`) are named sets of overrides applied between the file and the
command line: ``paper`` (SPEC 4.1), ``cpu`` (the synthetic benchmark on a 2-core machine) and
``tiny`` (CI: a few steps at 64 x 128).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
import math
from pathlib import Path
import typing
from typing import Any

from ..errors import BadArgument
from ..models.variants import ModelConfig, config_arch, get_variant
from .distill import SCHEMES, LossWeights

AMP_DTYPES = ('bfloat16', 'float16')


@dataclass(frozen=True)
class ModelSection:
    """The network trained: a registered variant plus field overrides of its config.

    ``freeze_stem`` / ``freeze_encoder_bn`` apply to the CaFNet teacher only, as its reference
    training does: the image encoder's first convolution and the batch-norm affine parameters
    of the ResNet encoders are not trained (running statistics still update).

    ``init`` (a run folder, ``OUT/best`` or an exported model; empty: random) fine-tunes: the
    network starts from those weights, which must be of the same architecture, with a fresh
    optimiser and schedule. A resumed run takes its weights from its own checkpoint.
    """

    variant: str = 'xdrcdepth'
    options: dict = field(default_factory=dict)
    freeze_stem: bool = True
    freeze_encoder_bn: bool = True
    init: str = ''

    def __post_init__(self) -> None:
        """Check that the variant exists and the options are fields of its config."""
        build_model_config(self)


@dataclass(frozen=True)
class TeacherSection:
    """The frozen teacher of a distillation run: a training checkpoint or an exported model."""

    checkpoint: str = ''


@dataclass(frozen=True)
class DataSection:
    """Prepared data (``rcdepth prepare --out ROOT``) and its loading.

    ``camera_only`` feeds the student an all-zero radar image (the camera-only baseline);
    a KD teacher still sees the radar. ``val_max_samples`` > 0 validates on that many
    evenly spaced val samples (the same ones at every validation). ``scale`` < 1 trains on
    the samples resized by that factor (``PreparedDataset(scale=...)``); the weights record
    the resulting focal length and serving resizes frames to it.
    """

    root: str = ''
    dataroot: str = ''
    train_split: str = 'train'
    val_split: str = 'val'
    crop: tuple[int, ...] = (352, 704)
    workers: int = 2
    augment: bool = True
    camera_only: bool = False
    val_max_samples: int = 0
    scale: float = 1.0

    def __post_init__(self) -> None:
        """Validate the crop, scale and counts."""
        if not 0 < self.scale <= 1:
            raise BadArgument(f'data.scale must be in (0, 1], got {self.scale}')
        if len(self.crop) != 2 or min(self.crop) < 32 or self.crop[0] % 32 or self.crop[1] % 32:
            raise BadArgument(f'data.crop must be two positive multiples of 32, got {self.crop}')
        _check_min('data.workers', self.workers, 0)
        _check_min('data.val_max_samples', self.val_max_samples, 0)


@dataclass(frozen=True)
class OptimSection:
    """AdamW with a polynomial learning-rate decay (SPEC 4.1).

    ``lr(step) = (lr - end) (1 - step / total)^lr_power + end`` with ``end = end_lr_factor lr``;
    weight decay ``weight_decay_encoder`` on encoder parameters and ``weight_decay_decoder``
    on the rest; ``grad_clip`` > 0 clips the global gradient norm; ``warmup_steps`` > 0 ramps
    the rate up linearly over the first steps (not in the references).
    """

    lr: float = 5e-5
    batch_size: int = 6
    eps: float = 1e-2
    betas: tuple[float, ...] = (0.9, 0.999)
    weight_decay_encoder: float = 1e-4
    weight_decay_decoder: float = 0.0
    lr_power: float = 0.9
    end_lr_factor: float = 0.1
    grad_clip: float = 0.0
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        """Validate ranges."""
        _check_min('optim.warmup_steps', self.warmup_steps, 0)
        for name in ('lr', 'eps', 'weight_decay_encoder', 'weight_decay_decoder', 'lr_power',
                     'end_lr_factor', 'grad_clip'):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise BadArgument(f'optim.{name} must be finite and >= 0, got {value}')
        if self.lr <= 0 or self.eps <= 0:
            raise BadArgument('optim.lr and optim.eps must be > 0')
        if self.end_lr_factor > 1:
            raise BadArgument(f'optim.end_lr_factor must be in [0, 1], got {self.end_lr_factor}')
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise BadArgument(f'optim.betas must be two numbers in [0, 1), got {self.betas}')
        _check_min('optim.batch_size', self.batch_size, 1)


@dataclass(frozen=True)
class ScheduleSection:
    """Length of the run and how often it validates, checkpoints and logs (in steps).

    ``max_steps`` > 0 fixes the number of optimiser steps; 0 means ``epochs`` full epochs.
    ``val_every`` 0 = once an epoch; ``checkpoint_every`` 0 = at every validation. The run
    always validates and checkpoints at its last step.
    """

    epochs: int = 200
    max_steps: int = 0
    val_every: int = 0
    checkpoint_every: int = 0
    log_every: int = 10

    def __post_init__(self) -> None:
        """Validate counts."""
        _check_min('schedule.epochs', self.epochs, 1)
        for name in ('max_steps', 'val_every', 'checkpoint_every'):
            _check_min(f'schedule.{name}', getattr(self, name), 0)
        _check_min('schedule.log_every', self.log_every, 1)


@dataclass(frozen=True)
class TrainConfig:
    """One training run (saved into every checkpoint).

    ``scheme``: knowledge distillation of a student, ``none``, ``lircdepth`` (LiRCDepth KD)
    or ``xdrcdepth`` (X-KD + D2-KD); the teacher (``model.variant: cafnet``) takes ``none``.
    ``amp`` enables autocast on CUDA only (``amp_dtype``; float16 adds a gradient scaler).
    ``device``: ``auto`` (the local CUDA device if any, else CPU), ``cpu`` or ``cuda``.
    """

    name: str = 'run'
    model: ModelSection = field(default_factory=ModelSection)
    teacher: TeacherSection = field(default_factory=TeacherSection)
    scheme: str = 'none'
    loss: LossWeights = field(default_factory=LossWeights)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)
    amp: bool = True
    amp_dtype: str = 'bfloat16'
    device: str = 'auto'
    seed: int = 0
    output_dir: str = ''
    profile: str = ''

    def __post_init__(self) -> None:
        """Cross-section checks."""
        if self.scheme not in SCHEMES:
            raise BadArgument(f'scheme must be one of {SCHEMES}, got {self.scheme!r}')
        arch = config_arch(build_model_config(self.model))
        if arch == 'cafnet' and self.scheme != 'none':
            raise BadArgument('the CaFNet teacher trains without distillation: set scheme: none')
        if self.scheme != 'none' and not self.teacher.checkpoint:
            raise BadArgument(f'scheme {self.scheme!r} needs teacher.checkpoint')
        if self.amp_dtype not in AMP_DTYPES:
            raise BadArgument(f'amp_dtype must be one of {AMP_DTYPES}, got {self.amp_dtype!r}')
        if self.device not in ('auto', 'cpu', 'cuda'):
            raise BadArgument(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if self.profile and self.profile not in PROFILES:
            raise BadArgument(f'profile must be one of {sorted(PROFILES)}, got {self.profile!r}')

    @property
    def arch(self) -> str:
        """``cafnet``, ``lircdepth`` or ``xdrcdepth``."""
        return config_arch(build_model_config(self.model))


def _check_min(name: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise BadArgument(f'{name} must be >= {minimum}, got {value}')


def build_model_config(model: ModelSection) -> ModelConfig:
    """Return the run's architecture config: the variant's config with ``options``."""
    base = get_variant(model.variant)
    if not isinstance(model.options, Mapping):
        raise BadArgument(f'model.options must be a mapping, got {model.options!r}')
    known = {f.name for f in fields(base)}
    unknown = sorted(set(model.options) - known)
    if unknown:
        raise BadArgument(f'unknown model.options for {model.variant}: {", ".join(unknown)} '
                         f'(known: {", ".join(sorted(known))})')
    try:
        return replace(base, **model.options)
    except (TypeError, ValueError) as exc:
        raise BadArgument(f'model.options: {exc}') from None


# ----------------------------------------------------------------------------- profiles

PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    # SPEC 4.1: 352 x 704 crops, 200 epochs; LR and batch (teacher 1e-4 / 8, students
    # 5e-5 / 6) come from the config files.
    'paper': {
        'all': {'data.crop': (352, 704), 'schedule.epochs': 200, 'schedule.max_steps': 0,
                'schedule.val_every': 0},
    },
    # The synthetic benchmark on a 2-core CPU machine (docs/TRAINING.md, "The CPU recipe"):
    # every run 1500 steps of batch 4, so KD and no-KD runs get the same budget. Departures
    # from SPEC 4.1, all because these runs start from random init (no ImageNet here) on two
    # cores:
    # - data.scale 0.5: the 0.4-scale world (360 x 640) is served at 180 x 320 and crops of
    #   128 x 256 cover 70 % x 80 % of a frame; at native scale the same pixels cover a quarter
    #   of that. The weights record the focal length, so serving resizes frames the same way.
    # - Adam's usual eps 1e-8 instead of 1e-2: with eps 1e-2 and gradients well below 1e-2
    #   the update is lr * g / eps, plain SGD at a tiny rate (XD-RCDepth: val MAE 0-80 m
    #   15.8 m after 200 steps with eps 1e-2, 9.2 m after 80 steps with eps 1e-8, LR 5e-4).
    # - LR 5e-4 for every network, with a 50-step linear warm-up (random-init batch norm).
    # - The teacher trains its stem and encoder batch-norm affines (frozen in the reference,
    #   where they are ImageNet weights).
    # Checkpoints every 50 steps (25 for the teacher) keep a kill under 10 minutes of work.
    'cpu': {
        'all': {'data.scale': 0.5, 'data.crop': (128, 256), 'optim.batch_size': 4,
                'data.workers': 1, 'data.val_max_samples': 24, 'schedule.log_every': 10,
                'optim.lr': 5e-4, 'optim.eps': 1e-8, 'optim.warmup_steps': 50,
                'schedule.max_steps': 1500, 'schedule.val_every': 100,
                'schedule.checkpoint_every': 50},
        # The reference freezes CaFNet's stem and encoder batch-norm affines because they come
        # from ImageNet; from random initialisation that would freeze a random first layer.
        'teacher': {'schedule.checkpoint_every': 25, 'model.freeze_stem': False,
                    'model.freeze_encoder_bn': False},
    },
    # CI: a few steps at 64 x 128, validation on two images.
    'tiny': {
        'all': {'data.crop': (64, 128), 'optim.batch_size': 2, 'data.workers': 0,
                'data.val_max_samples': 2, 'schedule.max_steps': 3, 'schedule.val_every': 3,
                'schedule.log_every': 1, 'device': 'cpu'},
    },
}


def profile_overrides(profile: str, arch: str) -> dict[str, Any]:
    """Dotted overrides of a profile for a model of ``arch`` (teacher or student entries)."""
    if profile not in PROFILES:
        raise BadArgument(f'unknown profile {profile!r}; known: {", ".join(sorted(PROFILES))}')
    entries = PROFILES[profile]
    role = 'teacher' if arch == 'cafnet' else 'student'
    return {**entries.get('all', {}), **entries.get(role, {})}


# ----------------------------------------------------------------------------- parsing

def _type_name(tp: Any) -> str:
    return getattr(tp, '__name__', str(tp))


def _coerce(path: str, value: Any, tp: Any) -> Any:
    """Convert a YAML/CLI value to the field type ``tp``; one-line ``ValueError`` otherwise."""
    origin = typing.get_origin(tp)
    bad = ValueError(f'{path}: expected {_type_name(origin or tp)}, got {value!r}')
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ('true', 'false', 'yes', 'no', '1', '0'):
            return value.lower() in ('true', 'yes', '1')
        raise bad
    if tp is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                raise bad from None
        raise bad
    if tp is float:
        if isinstance(value, bool):
            raise bad
        try:
            result = float(value)
        except (TypeError, ValueError):
            raise bad from None
        return result
    if tp is str:
        if value is None:
            return ''
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise bad
    if origin is tuple:
        item_type = typing.get_args(tp)[0]
        if isinstance(value, str):
            value = [v for v in value.replace('x', ',').split(',') if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise bad
        return tuple(_coerce(f'{path}[{i}]', v, item_type) for i, v in enumerate(value))
    if tp is dict or origin is dict:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise bad
        return dict(value)
    raise TypeError(f'{path}: unsupported field type {tp!r}')  # internal: a new field type


def _from_dict(cls: type, values: Mapping[str, Any], path: str) -> Any:
    """Build dataclass ``cls`` from a mapping, recursing into nested dataclasses."""
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise BadArgument(f'{path or "config"}: expected a mapping, got {values!r}')
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        where = f'{path}.' if path else ''
        raise BadArgument(f'unknown config key {where}{unknown[0]} (known in '
                         f'{path or "the top level"}: {", ".join(sorted(known))})')
    kwargs = {}
    for name, value in values.items():
        key = f'{path}.{name}' if path else name
        tp = hints[name]
        if is_dataclass(tp):
            kwargs[name] = _from_dict(tp, value, key)
        else:
            kwargs[name] = _coerce(key, value, tp)
    try:
        return cls(**kwargs)
    except ValueError as exc:
        message = str(exc)
        if isinstance(cls, type) and cls is LossWeights:
            message = message.replace('LossWeights.', 'loss.')
        raise BadArgument(message) from None


def config_from_dict(values: Mapping[str, Any]) -> TrainConfig:
    """Build and validate a :class:`TrainConfig` from a nested mapping (strict)."""
    return _from_dict(TrainConfig, values, '')


def config_to_json(config: TrainConfig) -> dict[str, Any]:
    """Return a JSON-ready nested dict (tuples as lists); inverse of :func:`config_from_dict`."""
    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(asdict(config))


def parse_override(text: str) -> tuple[list[str], Any]:
    """``'optim.lr=1e-4'`` -> ``(['optim', 'lr'], '1e-4' parsed as YAML)``."""
    import yaml

    key, sep, raw = text.partition('=')
    key = key.strip()
    if not sep or not key or any(not part for part in key.split('.')):
        raise BadArgument(f'override {text!r} is not of the form key.sub=value')
    try:
        value = yaml.safe_load(raw) if raw.strip() else ''
    except yaml.YAMLError:
        value = raw
    return key.split('.'), value


def apply_overrides(values: dict[str, Any], overrides: Mapping[str, Any] | Iterable[str]
                    ) -> dict[str, Any]:
    """Return a copy of nested ``values`` with dotted overrides set (unchecked until built)."""
    import copy

    result = copy.deepcopy(values)
    if isinstance(overrides, Mapping):
        items = [(key.split('.'), value) for key, value in overrides.items()]
    else:
        items = [parse_override(text) for text in overrides]
    for keys, value in items:
        node = result
        for i, key in enumerate(keys[:-1]):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                raise BadArgument(f'override {".".join(keys)}: {".".join(keys[:i + 1])} '
                                 'is not a section')
            node = child
        node[keys[-1]] = list(value) if isinstance(value, tuple) else value
    return result


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; missing file -> ``FileNotFoundError``, bad YAML -> ``ValueError``."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'config file not found: {path}')
    try:
        data = yaml.safe_load(path.read_text(encoding='utf-8'))
    except yaml.YAMLError as exc:
        raise BadArgument(f'{path}: not valid YAML: {str(exc).splitlines()[0]}') from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadArgument(f'{path}: the top level must be a mapping')
    return data


def resolve_config(values: Mapping[str, Any], profile: str | None = None,
                   overrides: Iterable[str] = ()) -> TrainConfig:
    """File values -> profile (argument, else the file's ``profile``) -> CLI overrides."""
    overrides = list(overrides)
    values = dict(values)
    # The profile is chosen first (an override of `profile` wins) and the model decides
    # whether its teacher or student entries apply.
    staged = apply_overrides(values, overrides)
    profile = profile or staged.get('profile') or ''
    if profile:
        model = _from_dict(ModelSection, staged.get('model') or {}, 'model')
        arch = config_arch(build_model_config(model))
        values = apply_overrides(values, profile_overrides(profile, arch))
        values['profile'] = profile
    return config_from_dict(apply_overrides(values, overrides))


def load_train_config(path: str | Path, profile: str | None = None,
                      overrides: Iterable[str] = ()) -> TrainConfig:
    """Read a YAML training config, apply a profile and dotted overrides, validate."""
    return resolve_config(read_yaml(path), profile, overrides)


def config_diff(a: TrainConfig, b: TrainConfig, prefix: str = '') -> list[str]:
    """Dotted keys whose values differ between two configs."""
    def flat(d: Mapping[str, Any], pre: str) -> dict[str, Any]:
        out = {}
        for k, v in d.items():
            if isinstance(v, dict) and k != 'options':
                out.update(flat(v, f'{pre}{k}.'))
            else:
                out[f'{pre}{k}'] = v
        return out

    fa, fb = flat(config_to_json(a), prefix), flat(config_to_json(b), prefix)
    return sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k))
