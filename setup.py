"""ament_python build of rcdepth_ros; also installs with plain ``pip install -e .``."""

from glob import glob
import os

from setuptools import find_packages, setup

PACKAGE = 'rcdepth_ros'


def _share(pattern: str) -> list[str]:
    return [p for p in glob(pattern) if os.path.isfile(p)]


setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    include_package_data=True,
    package_data={PACKAGE: ['py.typed']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        ('share/' + PACKAGE + '/launch', _share('launch/*.py')),
        ('share/' + PACKAGE + '/config', _share('config/*.yaml') + _share('config/*.rviz')
         + _share('config/*.xml')),
        ('share/' + PACKAGE + '/config/train', _share('config/train/*.yaml')),
        ('share/' + PACKAGE + '/models', _share('models/*.json') + _share('models/*.safetensors')
         + _share('models/*.md') + _share('models/*.int8.onnx')),
    ],
    python_requires='>=3.10',
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='rcdepth_ros maintainers',
    maintainer_email='maintainers@rcdepth-ros.invalid',
    description='Radar-camera metric depth with uncertainty for ROS 2 (LiRCDepth, XD-RCDepth).',
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'rcdepth = rcdepth_ros.cli:main',
            'rcdepth_node = rcdepth_ros.ros.node:main',
        ],
    },
)
