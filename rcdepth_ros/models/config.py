"""Import path kept for the training code: the configs and the registry, re-exported.

The rules live in :mod:`.variants` (registry, ``build_model``, dict round trip) and next to
each model (:class:`~.cafnet.CaFNetConfig`, :class:`~.student.StudentConfig`).
"""

from .cafnet import CaFNetConfig
from .student import STUDENT_ARCHS, StudentConfig
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

__all__ = ['build_model', 'CaFNetConfig', 'config_arch', 'config_from_dict', 'config_to_dict',
           'get_variant', 'ModelConfig', 'strict_from_dict', 'STUDENT_ARCHS', 'StudentConfig',
           'VARIANTS']
