"""Launch rcdepth_node, optionally with bag playback and RViz.

    ros2 launch rcdepth_ros rcdepth.launch.py bag:=/path/to/nuscenes_bag rviz:=true

Large images between processes need Fast DDS's LARGE_DATA builtin transports (else ~35 ms a
4 MB image, and none at all under best-effort QoS), so this launch file sets
``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA`` for every process it starts. Radar topics and all
other settings come from the parameters file (``config/rcdepth.yaml`` by default).
"""

from launch.actions import DeclareLaunchArgument, ExecuteProcess, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

PACKAGE = 'rcdepth_ros'

ARGUMENTS = (
    ('namespace', '', 'Namespace of rcdepth_node.'),
    ('params_file', PathJoinSubstitution([FindPackageShare(PACKAGE), 'config', 'rcdepth.yaml']),
     'Parameters file of rcdepth_node.'),
    ('image_topic', '/CAM_FRONT/image_rect_compressed',
     'Camera image topic (type set by the image_type parameter).'),
    ('camera_info_topic', '/CAM_FRONT/camera_info', 'CameraInfo topic of that camera.'),
    ('use_sim_time', 'false', 'Use /clock (set true with bag playback).'),
    ('bag', '', 'rosbag2 to play with `ros2 bag play --clock --loop`; empty = none.'),
    ('rviz', 'false', 'Start RViz with config/rcdepth.rviz.'),
)


def generate_launch_description() -> LaunchDescription:
    """Declare the arguments, set LARGE_DATA, start the node (and bag playback, RViz)."""
    arg = {name: LaunchConfiguration(name) for name, _, _ in ARGUMENTS}
    node = Node(
        package=PACKAGE,
        executable='rcdepth_node',
        name='rcdepth_node',
        namespace=arg['namespace'],
        output='screen',
        parameters=[arg['params_file'], {'use_sim_time': arg['use_sim_time']}],
        remappings=[
            ('~/input/image', arg['image_topic']),
            ('~/input/camera_info', arg['camera_info_topic']),
        ],
    )
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
        node,
        bag_play,
        rviz,
    ])
