"""Data: the synthetic radar-camera world, nuScenes preparation and datasets.

Import-light on purpose: submodules (``data.sim``, ``data.dataset``, ...) pull in their own
heavy dependencies when imported.
"""
