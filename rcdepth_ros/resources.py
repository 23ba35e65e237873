"""The one lookup for files rcdepth_ros ships: weights, configs, the launch file, RViz config.

They live in the same layout (``models/``, ``config/``, ``launch/``) in three places, one per
way of installing the package, tried in this order:

1. the ament index: a colcon workspace after ``source install/setup.bash``
   (``AMENT_PREFIX_PATH`` holds ``install/rcdepth_ros``);
2. ``sys.prefix/share/rcdepth_ros``: a ``pip install`` of the wheel (its data files);
3. the source tree: a clone installed with ``pip install -e .`` (the repository's .venv),
   recognised by its ``package.xml``.

A file in none of them raises :class:`~rcdepth_ros.errors.MissingData` (a FileNotFoundError)
whose one-line message names every place looked at, and why a place was left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import sys

from .errors import MissingData

PACKAGE = 'rcdepth_ros'
# Shipped files by their path relative to a share folder (the same in the source tree).
PARAMS_FILE = 'config/rcdepth.yaml'
RVIZ_CONFIG = 'config/rcdepth.rviz'
LAUNCH_FILE = 'launch/rcdepth.launch.py'
MODELS_DIR = 'models'


@dataclass(frozen=True)
class Place:
    """One place shipped files may be in; ``folder`` is None when it does not apply."""

    kind: str  # 'ament index' | 'sys.prefix' | 'source tree'
    folder: Path | None
    why_not: str = ''  # why ``folder`` is None

    def describe(self) -> str:
        return f'{self.kind} {self.folder}' if self.folder else f'{self.kind} ({self.why_not})'


def _ament_place() -> Place:
    try:
        from ament_index_python.packages import get_package_share_directory
    except ImportError:
        return Place('ament index', None, 'ament_index_python is not installed')
    try:
        return Place('ament index', Path(get_package_share_directory(PACKAGE)))
    except OSError:  # AMENT_PREFIX_PATH unset: no workspace sourced
        return Place('ament index', None, 'AMENT_PREFIX_PATH is not set')
    except LookupError:  # PackageNotFoundError
        return Place('ament index', None, f'{PACKAGE} is not in AMENT_PREFIX_PATH')


def places() -> list[Place]:
    """Return the places looked at, in lookup order (duplicates of an earlier folder dropped)."""
    prefix_share = Path(sys.prefix) / 'share' / PACKAGE
    source = Path(__file__).resolve().parents[1]
    found = [
        _ament_place(),
        Place('sys.prefix', prefix_share) if prefix_share.is_dir()
        else Place('sys.prefix', None, f'no folder {prefix_share}'),
        Place('source tree', source) if (source / 'package.xml').is_file()
        else Place('source tree', None, f'{source} holds no package.xml'),
    ]
    seen: set[Path] = set()
    unique = []
    for place in found:
        if place.folder is not None:
            if place.folder.resolve() in seen:
                continue
            seen.add(place.folder.resolve())
        unique.append(place)
    return unique


def find(relative: str) -> Path:
    """Path of the shipped file ``relative`` (e.g. ``'config/rcdepth.yaml'``), first place first.

    Raises :class:`MissingData` naming every place looked at.
    """
    if not relative or Path(relative).is_absolute() or '..' in Path(relative).parts:
        raise ValueError(f'shipped file must be a relative path inside the package, '
                         f'got {relative!r}')
    looked = []
    for place in places():
        if place.folder is None:
            looked.append(place.describe())
            continue
        candidate = place.folder / relative
        if candidate.is_file():
            return candidate
        looked.append(f'{place.kind} {candidate} (missing)')
    raise MissingData(f'shipped file {relative} of {PACKAGE} not found; looked in: '
                      + '; '.join(looked))


def model_path(name: str) -> Path:
    """Return the base path of shipped weights ``models/<name>`` (found by its .safetensors)."""
    return find(f'{MODELS_DIR}/{name}.safetensors').with_suffix('')


def params_file() -> Path:
    """Return the node's default parameters file (``config/rcdepth.yaml``)."""
    return find(PARAMS_FILE)


def rviz_config() -> Path:
    """Return the RViz configuration showing the node's outputs."""
    return find(RVIZ_CONFIG)


def launch_file() -> Path:
    """Return the launch file (``ros2 launch rcdepth_ros rcdepth.launch.py``)."""
    return find(LAUNCH_FILE)
