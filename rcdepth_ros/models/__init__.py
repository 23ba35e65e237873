"""The networks, read top-down: configs, the three architectures, their parts, weights I/O.

- :mod:`.config`: ``StudentConfig``, ``VARIANTS`` (cafnet, lircdepth, xdrcdepth[_add |
  _concat | _attention]), ``build_model``, config dict round trip.
- :mod:`.cafnet`: the CaFNet teacher (ResNet-34 image, sparse-conv + ResNet-18 radar, BTS).
- :mod:`.student`: LiRCDepth and XD-RCDepth, built from
  :mod:`.mobilenet` (encoders), :mod:`.fusion` (add / concat / attention / FiLM),
  :mod:`.student_decoder` (transposed inverted residuals, point-wise DASPP from
  :mod:`.blocks`) and :mod:`.uncertainty` (Laplace log-scale head).
- :mod:`.outputs`: ``TeacherOutput``, ``StudentOutput``.
- :mod:`.io`: safetensors + JSON weights; :mod:`.macs`: multiply-accumulate counter.
"""

from .cafnet import CaFNet, CaFNetConfig
from .config import (
    VARIANTS,
    ModelConfig,
    StudentConfig,
    build_model,
    config_arch,
    config_from_dict,
    config_to_dict,
    get_variant,
)
from .fusion import FUSION_KINDS, MultiScaleFusion
from .io import load_model, read_description, save_weights
from .macs import config_macs, count_macs, model_macs
from .mobilenet import MobileNetV2Features
from .outputs import StudentOutput, TeacherOutput
from .student import RCDepthStudent
from .student_decoder import StudentDecoder
from .uncertainty import UncertaintyHead

__all__ = [
    'build_model', 'CaFNet', 'CaFNetConfig', 'config_arch', 'config_from_dict', 'config_macs',
    'config_to_dict', 'count_macs', 'FUSION_KINDS', 'get_variant', 'load_model',
    'MobileNetV2Features', 'model_macs', 'ModelConfig', 'MultiScaleFusion', 'RCDepthStudent',
    'read_description', 'save_weights', 'StudentConfig', 'StudentDecoder', 'StudentOutput',
    'TeacherOutput', 'UncertaintyHead', 'VARIANTS',
]
