"""The radar sweep-selection rule, shared by data preparation, the node and the bag tools.

A camera image at time ``t`` is paired, per radar, with the newest sweeps stamped in
``[t - window, t]`` (at most ``max_sweeps``, newest first). Sweeps after the image are never
used: a live node would have to wait for them, so training uses exactly what serving can
have (docs/ARCHITECTURE.md, "Radar sweep selection"). Pure Python; stamps are integers in
one unit (nanoseconds in the node, microseconds in nuScenes tables).
"""

from __future__ import annotations

from collections.abc import Sequence

DEFAULT_WINDOW_S = 0.1
"""Seconds of radar before the image time (nuScenes radars run at about 13 Hz: one sweep)."""
DEFAULT_MAX_SWEEPS = 1
"""Sweeps per radar (SPEC 4.1: one sweep)."""


def select_sweeps(stamps: Sequence[int], image_stamp: int, window: int,
                  max_sweeps: int) -> list[int]:
    """Return the indices of the sweeps paired with an image, newest first.

    ``stamps`` are the sweeps' times (any order), ``window`` is in the same unit. A sweep is
    eligible when ``image_stamp - window <= stamp <= image_stamp``; the newest ``max_sweeps``
    eligible ones are returned (ties keep their input order).
    """
    if window < 0 or max_sweeps < 1:
        raise ValueError(f'need window >= 0 and max_sweeps >= 1, got {window}, {max_sweeps}')
    eligible = [i for i, s in enumerate(stamps) if image_stamp - window <= s <= image_stamp]
    eligible.sort(key=lambda i: -stamps[i])
    return eligible[:max_sweeps]
