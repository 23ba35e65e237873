"""Launch rcdepth_node, optionally with bag playback and RViz.

Play a bag written by ``rcdepth nuscenes2bag`` (the node reads the extrinsics from the
bag's ``calibration.yaml``) and watch the depth in RViz::

    ros2 launch rcdepth_ros rcdepth.launch.py bag:=scene-0061 rviz:=true use_sim_time:=true

Live sensors, own calibration file::

    ros2 launch rcdepth_ros rcdepth.launch.py calibration:=/path/to/calibration.yaml

Large images between processes need Fast DDS's LARGE_DATA builtin transports (else ~35 ms a
4 MB image, and none at all under best-effort QoS), so this launch file sets
``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA`` for every process it starts. Radar topics and all
other settings come from the parameters file (``config/rcdepth.yaml`` by default).
``calibration:=`` (or, with ``bag:=``, the bag's ``calibration.yaml`` when it exists)
overrides the file's ``extrinsics.calibration_path``; left empty, the file's value stays.
"""

import os

from launch.actions import (
    DeclareLaunchArgument,
    ExecuteProcess,
    OpaqueFunction,
    SetEnvironmentVariable,
)
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

PACKAGE = 'rcdepth_ros'
# The sidecar `rcdepth nuscenes2bag` writes inside the bag folder.
BAG_CALIBRATION = 'calibration.yaml'

ARGUMENTS = (
    ('namespace', '', 'Namespace of rcdepth_node.'),
    ('params_file', PathJoinSubstitution([FindPackageShare(PACKAGE), 'config', 'rcdepth.yaml']),
     'Parameters file of rcdepth_node.'),
    ('image_topic', '/CAM_FRONT/image_rect_compressed',
     'Camera image topic (type set by the image_type parameter).'),
    ('camera_info_topic', '/CAM_FRONT/camera_info', 'CameraInfo topic of that camera.'),
    ('use_sim_time', 'false', 'Use /clock (set true with bag playback).'),
    ('bag', '', 'rosbag2 to play with `ros2 bag play --clock --loop`; empty = none.'),
    ('calibration', '',
     'Calibration YAML for extrinsics.calibration_path; empty = the bag\'s '
     f'{BAG_CALIBRATION} when bag:= has one, else the parameters file\'s value.'),
    ('rviz', 'false', 'Start RViz with config/rcdepth.rviz.'),
)


def calibration_path(calibration: str, bag: str) -> str:
    """Calibration file the node gets: the argument, else the bag's sidecar, else ''."""
    if calibration or not bag:
        return calibration
    folder = bag if os.path.isdir(bag) else os.path.dirname(bag)  # bag folder or its file
    sidecar = os.path.join(folder, BAG_CALIBRATION)
    return os.path.abspath(sidecar) if os.path.isfile(sidecar) else ''


def _rcdepth_node(context, arg: dict) -> list:
    """Build the node action; set ``extrinsics.calibration_path`` only for a real file.

    An empty override would replace the parameters file's own path, so it is left out.
    """
    overrides = {'use_sim_time': arg['use_sim_time']}
    calibration = calibration_path(arg['calibration'].perform(context),
                                   arg['bag'].perform(context))
    if calibration:
        overrides['extrinsics.calibration_path'] = calibration
    return [Node(
        package=PACKAGE,
        executable='rcdepth_node',
        name='rcdepth_node',
        namespace=arg['namespace'],
        output='screen',
        parameters=[arg['params_file'], overrides],
        remappings=[
            ('~/input/image', arg['image_topic']),
            ('~/input/camera_info', arg['camera_info_topic']),
        ],
    )]


def generate_launch_description() -> LaunchDescription:
    """Declare the arguments, set LARGE_DATA, start the node (and bag playback, RViz)."""
    arg = {name: LaunchConfiguration(name) for name, _, _ in ARGUMENTS}
    bag_play = ExecuteProcess(
        cmd=['ros2', 'bag', 'play', arg['bag'], '--clock', '--loop'],
        output='screen',
        condition=IfCondition(PythonExpression(["'", arg['bag'], "' != ''"])),
    )
    rviz = Node(
        package='rviz2',
        executable='rviz2',
        name='rviz2',
        arguments=['-d', PathJoinSubstitution([FindPackageShare(PACKAGE), 'config',
                                               'rcdepth.rviz'])],
        parameters=[{'use_sim_time': arg['use_sim_time']}],
        condition=IfCondition(arg['rviz']),
    )
    return LaunchDescription([
        *(DeclareLaunchArgument(name, default_value=default, description=description)
          for name, default, description in ARGUMENTS),
        SetEnvironmentVariable('FASTDDS_BUILTIN_TRANSPORTS', 'LARGE_DATA'),
        OpaqueFunction(function=_rcdepth_node, args=[arg]),
        bag_play,
        rviz,
    ])
