"""The networks, read top-down: the variant registry, the three architectures, their parts, I/O.

- :mod:`.variants`: ``VARIANTS`` (cafnet, lircdepth, xdrcdepth[_add | _concat | _attention |
  _wide]), ``build_model``, the config dict round trip and its strict reader.
- :mod:`.cafnet`: the CaFNet teacher and ``CaFNetConfig`` (ResNet-34 image, sparse-conv +
  ResNet-18 radar, BTS).
- :mod:`.student`: LiRCDepth and XD-RCDepth and ``StudentConfig``, built from
  :mod:`.mobilenet` (encoders), :mod:`.fusion` (add / concat / attention / FiLM),
  :mod:`.student_decoder` (transposed inverted residuals, point-wise DASPP from
  :mod:`.blocks`) and :mod:`.uncertainty` (Laplace log-scale head).
- :mod:`.outputs`: ``TeacherOutput``, ``StudentOutput`` and ``depth_and_sigma`` (what sigma
  means).
- :mod:`.io`: safetensors + JSON weights, the model-path resolver and the input description;
  :mod:`.macs`: multiply-accumulate counter.
"""

from .cafnet import CaFNet, CaFNetConfig
from .fusion import FUSION_KINDS, MultiScaleFusion
from .io import (
    InputSpec,
    ModelSource,
    default_model_path,
    input_spec,
    load_model,
    read_description,
    resolve_model,
    resolve_weights,
    save_weights,
)
from .macs import config_macs, count_macs, model_macs
from .mobilenet import MobileNetV2Features
from .outputs import StudentOutput, TeacherOutput, depth_and_sigma
from .student import RCDepthStudent, StudentConfig
from .student_decoder import StudentDecoder
from .uncertainty import UncertaintyHead
from .variants import (
    VARIANTS,
    ModelConfig,
    build_model,
    config_arch,
    config_from_dict,
    config_to_dict,
    get_variant,
    strict_from_dict,
)

__all__ = [
    'build_model', 'CaFNet', 'CaFNetConfig', 'config_arch', 'config_from_dict', 'config_macs',
    'config_to_dict', 'count_macs', 'default_model_path', 'depth_and_sigma', 'FUSION_KINDS',
    'get_variant', 'input_spec', 'InputSpec', 'load_model', 'MobileNetV2Features',
    'model_macs', 'ModelConfig', 'ModelSource', 'MultiScaleFusion', 'RCDepthStudent',
    'read_description', 'resolve_model', 'resolve_weights', 'save_weights', 'StudentConfig',
    'StudentDecoder', 'StudentOutput', 'strict_from_dict', 'TeacherOutput', 'UncertaintyHead',
    'VARIANTS',
]
