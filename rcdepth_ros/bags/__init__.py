"""Bags: nuScenes -> rosbag2 conversion, replay with rclpy, offline inference over a bag.

- :mod:`.io`: rosbags reading/writing (MCAP, Kilted typestore, never a half-written bag).
- :mod:`.nuscenes2bag`: ``convert`` a nuScenes dataroot (or the synthetic world) to a bag.
- :mod:`.replay`: ``replay`` a bag's raw CDR with rclpy publishers (the only rclpy user here).
- :mod:`.infer_bag`: ``infer_bag`` runs the node's frame pipeline over a bag without ROS.

Import-light: submodules are imported on use (``replay`` needs rclpy, the others do not).
"""
