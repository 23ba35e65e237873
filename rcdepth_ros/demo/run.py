"""``rcdepth demo``: world -> bag -> live node -> depth bag, picture and metrics, in one call.

Steps (each reuses the project's own tool for it):

1. a small synthetic world (:func:`rcdepth_ros.data.sim.build_world`), or a real nuScenes
   dataroot and scene;
2. the scene as an MCAP bag with its calibration sidecar
   (:func:`rcdepth_ros.bags.nuscenes2bag.convert`);
3. ``rcdepth_node`` as a process (:class:`rcdepth_ros.ros.harness.NodeProcess`) with a params
   file written here: compressed images, ``/RADAR_FRONT``, ``/odom``, extrinsics from the
   sidecar, reliable input QoS, on a private ``ROS_DOMAIN_ID`` with Fast DDS LARGE_DATA;
4. the bag replayed into it (:func:`rcdepth_ros.bags.replay.replay`) at the recorded rate,
   ``/CAM_FRONT/*`` remapped onto the node's inputs. Replay pauses after every camera
   keyframe until the node's depth of that keyframe is back, so every keyframe gets an
   output whatever the machine's speed (other images are served as the node keeps up);
5. the node's outputs recorded into ``OUT/depth_bag`` (:mod:`.recorder`);
6. ``OUT/demo.png`` (:mod:`.figure`) and 7. ``OUT/metrics.json`` (:mod:`.metrics`: SPEC 5
   against single-scan LiDAR of every keyframe).

The node process is always stopped (SIGINT, then SIGKILL), whatever fails.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import os
from pathlib import Path
import shutil
import tempfile
import time
from typing import Any

from .. import counters as keys
from ..errors import BadArgument, BadInputFile, MissingData, UserError
from ..models.io import resolve_weights, weight_paths

CAMERA = 'CAM_FRONT'
RADAR = 'RADAR_FRONT'
NODE = '/rcdepth_node'
SIM_VERSION = 'v1.0-sim'

# Names of everything the demo writes under OUT.
WORLD_DIR = 'world'
BAG_DIR = 'bag'
DEPTH_BAG = 'depth_bag'
FIGURE = 'demo.png'
SURROUND_FIGURE = 'surround.png'
METRICS = 'metrics.json'
NODE_LOG = 'node.log'
PARAMS = 'node_params.yaml'
PRODUCTS = (WORLD_DIR, BAG_DIR, DEPTH_BAG, FIGURE, SURROUND_FIGURE, METRICS, NODE_LOG, PARAMS)

WEIGHTS_HINT = ('the demo weights ship with the repository as models/xdrcdepth_demo.safetensors '
                '+ .json (restore them from a fresh clone), or pass --model PATH to weights '
                'written by `rcdepth export` / rcdepth_ros.models.save_weights')


class DemoError(UserError, RuntimeError):
    """A demo step failed in a way the user can act on (one line)."""


@dataclass(frozen=True)
class WorldSize:
    """Synthetic world of the demo: scene length, image scale, camera sweeps or not."""

    duration: float
    image_scale: float
    camera_sweeps: bool


FULL = WorldSize(duration=8.0, image_scale=0.4, camera_sweeps=True)
QUICK = WorldSize(duration=3.0, image_scale=0.2, camera_sweeps=False)


@dataclass(frozen=True)
class DemoOptions:
    """Inputs of :func:`run_demo` (the ``rcdepth demo`` arguments)."""

    out: Path
    quick: bool = False
    nuscenes: Path | None = None
    scene: str | None = None
    version: str | None = None
    model: str | None = None
    overwrite: bool = False
    seed: int = 0
    device: str | None = None
    backend: str | None = None
    precision: str | None = None
    params_file: Path | None = None
    surround: bool = False
    rate: float = 1.0
    domain_id: int | None = None
    frame_timeout: float = 120.0
    figure_rows: int = 3
    progress: bool = True


def _say(message: str) -> None:
    print(f'rcdepth demo: {message}', flush=True)


# ----------------------------------------------------------------------------- checks

def check_output(out: Path, overwrite: bool) -> None:
    """Refuse a non-empty OUT unless ``overwrite``; then remove the demo's earlier products."""
    if out.exists() and not out.is_dir():
        raise BadArgument(f'--out {out} exists and is not a folder')
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise BadArgument(f'--out {out} exists and is not empty (use --overwrite to replace '
                              'the demo outputs in it)')
        world = out / WORLD_DIR
        if world.exists() and not (world / 'sim.json').is_file() and any(world.iterdir()):
            raise BadArgument(f'{world} is not a synthetic world written by the demo; '
                              'refusing to replace it')
        shutil.rmtree(world, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


def check_model(model: str | None) -> tuple[Path, dict[str, Any]]:
    """Weights path and its JSON description; one-line errors for missing or unreadable ones."""
    try:
        path = resolve_weights(model)
    except MissingData as exc:
        if model:
            raise
        raise MissingData(f'{exc}; {WEIGHTS_HINT}') from None
    weights, json_path = weight_paths(path)
    try:
        description = json.loads(json_path.read_text(encoding='utf-8'))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputFile(f'cannot read model description {json_path}: {exc}') from None
    if not isinstance(description, dict) or 'variant' not in description:
        raise BadInputFile(f'{json_path} is not an rcdepth_ros model description (no variant)')
    # The header alone: a truncated file fails now, not after the world build.
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(weights), framework='np') as f:
            if not list(f.keys()):
                raise BadInputFile(f'{weights} holds no tensors')
    except (SafetensorError, OSError) as exc:
        raise BadInputFile(f'corrupt weights file {weights}: {exc}') from None
    return path, description


def check_inputs(options: DemoOptions) -> tuple[str, str] | None:
    """Validate the nuScenes inputs early; ``(version, scene)`` for --nuscenes, else None."""
    from .scene import check_scene, resolve_version

    if options.nuscenes is None:
        if options.scene or options.version:
            raise BadArgument('--scene and --version need --nuscenes DIR')
        return None
    version = resolve_version(options.nuscenes, options.version)
    return version, check_scene(options.nuscenes, version, options.scene)


# ----------------------------------------------------------------------------- steps

def _rig(surround: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Cameras and radars of the demo: CAM_FRONT + RADAR_FRONT, or all six and five."""
    from .scene import SURROUND_CAMERAS, SURROUND_RADARS

    return (SURROUND_CAMERAS, SURROUND_RADARS) if surround else ((CAMERA,), (RADAR,))


def build_demo_world(out: Path, size: WorldSize, seed: int, progress: bool,
                     surround: bool = False) -> Path:
    """One day scene with the demo's cameras, radars and LIDAR_TOP; returns the dataroot."""
    from ..data.sim.writer import SimConfig, build_world

    cameras, radars = _rig(surround)
    config = SimConfig(scenes=1, seed=seed, night_fraction=0.0, image_scale=size.image_scale,
                       duration=size.duration, version=SIM_VERSION, cameras=cameras,
                       camera_sweeps=cameras if size.camera_sweeps else (),
                       radars=radars)
    return build_world(config, out, workers=min(2, os.cpu_count() or 1), progress=progress)


def user_parameters(options: DemoOptions) -> dict[str, Any]:
    """Return the user's node parameters: ``--params-file``, then the options given.

    What the demo wires itself (topics, calibration, QoS; :func:`node_parameters`) overrides
    these; everything else (radar filters, window, sweeps, depth range, ...) reaches the node
    as written, and :func:`rcdepth_ros.bags.infer_bag.tool_config` validates it.
    """
    from ..bags.infer_bag import tool_config
    from ..ros import params

    given = {'device': options.device, 'backend': options.backend,
             'precision': options.precision,
             'model_path': None if options.model is None else str(options.model)}
    config = tool_config(options.params_file, **given)  # one-line errors for a bad file
    values = params.read_params_file(options.params_file) if options.params_file else {}
    values.update({k: v for k, v in given.items() if v is not None})
    values.setdefault('device', config.device)
    values.setdefault('backend', config.backend)
    values.setdefault('precision', config.precision)
    return values


def node_parameters(model: Path, calibration: Path, user: dict[str, Any] | None = None,
                    surround: bool = False) -> dict[str, Any]:
    """Parameters of the demo's ``rcdepth_node`` (ROS names; see ``config/rcdepth.yaml``).

    ``user``: :func:`user_parameters`; the demo's own wiring below wins over it.
    ``surround``: one node serves the six cameras with the five radars.
    """
    cameras, radars = _rig(surround)
    return {
        **(user or {}),
        **({'cameras': list(cameras)} if surround else {}),
        'model_path': str(model), 'image_type': 'compressed',
        'radar_topics': [f'/{r}' for r in radars], 'odom_topic': '/odom',
        'extrinsics.source': 'calibration', 'extrinsics.calibration_path': str(calibration),
        # Replay catches up in bursts after each keyframe pause: keep everything queued.
        'qos.reliability': 'reliable', 'qos.depth': 200,
        'output.colored': True, 'output.colored_max_rate': 1000.0,
        'diagnostics_period': 0.1,  # the replay pacing reads the node's input counters
    }


def _node_config(values: dict[str, Any]) -> Any:
    from ..ros.params import config_from_dict

    return config_from_dict(values)


def _configure_failure(log: str) -> str | None:
    for line in log.splitlines():
        if 'configure failed' in line:
            return line.split(']: ', 1)[-1].strip()
    return None


def _prefix(camera: str, surround: bool) -> str:
    """Topic prefix of a camera's inputs and outputs on the demo's node."""
    return f'{NODE}/{camera}' if surround else NODE


def _wait_for_node(session: Any, proc: Any, recorders: list[Any], topics: list[str],
                   timeout: float, log_path: Path) -> None:
    """Until the node is active (subscribed to its inputs) and its outputs are matched."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise DemoError(f'rcdepth_node exited with code {proc.proc.returncode} while '
                            f'starting; see {log_path}')
        failure = _configure_failure(proc.log())
        if failure:
            raise DemoError(f'rcdepth_node could not start: {failure}')
        if all(session.node.count_subscribers(t) > 0 for t in topics) and \
                all(r.connected() for r in recorders):
            return
        time.sleep(0.1)
    raise DemoError(f'rcdepth_node did not become active within {timeout:.0f} s; '
                    f'see {log_path}')


class _Pacer:
    """``on_message`` of the replay: makes every keyframe's input and output deterministic.

    Before a keyframe's image goes out (i.e. after its camera_info) it waits until the node
    reports, in ``/diagnostics``, that it has taken in every radar sweep and odometry message
    published so far: the node picks radar and ego motion when its worker takes the frame,
    so a sweep still queued in the node's executor would otherwise be missed by chance.
    After the image it waits for the keyframe's depth, so nothing overwrites it in the
    node's one-frame mailbox. ``counters`` maps bag topics to the node's diagnostics names.
    ``cameras`` maps each camera's image topic to ``(its recorder, its keyframe stamps)`` and
    ``infos`` each camera_info topic to those stamps; ``recorder`` gives the diagnostics.
    """

    SYNC_TIMEOUT_S = 10.0

    def __init__(self, recorder: Any, cameras: dict[str, tuple[Any, set[int]]],
                 infos: dict[str, set[int]], counters: dict[str, str], proc: Any,
                 timeout: float, log_path: Path) -> None:
        self.recorder, self.cameras, self.infos = recorder, cameras, infos
        self.counters = counters
        self.proc, self.timeout, self.log_path = proc, timeout, log_path
        self.published: dict[str, int] = {}
        self.images = 0
        self.unsynced = 0

    def _sync(self) -> None:
        deadline = time.monotonic() + self.SYNC_TIMEOUT_S
        while time.monotonic() < deadline and self.proc.alive():
            diag = self.recorder.diagnostics
            if all(int(diag.get(keys.received_key(name), 0)) >= self.published.get(topic, 0)
                   for topic, name in self.counters.items()):
                return
            time.sleep(0.01)
        self.unsynced += 1  # the keyframe still gets served, maybe without its newest sweep

    def __call__(self, topic: str, msgtype: str, stamp_ns: int, *_: Any) -> None:
        self.published[topic] = self.published.get(topic, 0) + 1
        if stamp_ns in self.infos.get(topic, ()):
            self._sync()
        if topic not in self.cameras:
            return
        self.images += 1
        recorder, keyframes = self.cameras[topic]
        if stamp_ns not in keyframes:
            return
        if not recorder.wait_for(stamp_ns, self.timeout, alive=self.proc.alive):
            state = 'exited' if not self.proc.alive() else 'sent nothing back'
            raise DemoError(f'no depth for the keyframe at {stamp_ns * 1e-9:.3f} s within '
                            f'{self.timeout:.0f} s (rcdepth_node {state}); see '
                            f'{self.log_path}')


def _drain(recorders: list[Any], images: int, timeout: float) -> None:
    """Wait until the node accounted for every image (processed or dropped), then settle."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        diag = recorders[0].diagnostics
        processed = int(diag.get(keys.FRAMES_PROCESSED, 0))
        done = processed + int(diag.get(keys.FRAMES_DROPPED, 0))
        if done >= images and sum(r.counts['depth'] for r in recorders) >= processed:
            break
        time.sleep(0.1)
    for recorder in recorders:
        recorder.settle(quiet_s=0.5, timeout=5.0)


def _median(values: list[float]) -> float:
    import numpy as np

    return float(np.median(values)) if values else float('nan')


def _figure_row(keyframes: list[Any], index: int, results: dict[int, Any]) -> Any:
    from .figure import FigureRow

    kf = keyframes[index]
    seconds = (kf.stamp_ns - keyframes[0].stamp_ns) * 1e-9
    return FigureRow(label=f'keyframe {index + 1}/{len(keyframes)}, t = {seconds:.1f} s',
                     rgb=kf.rgb(), K=kf.K, radar_points=kf.radar_points,
                     depth=results[kf.stamp_ns]['depth'],
                     sigma=results[kf.stamp_ns]['uncertainty'], lidar_depth=kf.lidar_depth)


@dataclass
class _Served:
    """What steps 3-5 leave behind: the recorders' data, replay counts, timings.

    ``recorder`` is CAM_FRONT's (metrics, picture); ``recorders`` every camera's.
    """

    recorder: Any
    recorders: dict[str, Any]
    pacer: _Pacer
    played: dict[str, Any]
    domain: int
    params: Path
    log_path: Path
    timing: dict[str, float]


def serve_bag(out: Path, bag: Path, calibration: Path, model: Path,
              stamps: dict[str, set[int]], options: DemoOptions) -> _Served:
    """Run steps 3-5: node process, paced replay, outputs recorded into ``OUT/depth_bag``.

    ``stamps``: the keyframe stamps of each camera (CAM_FRONT, or the six with --surround).
    """
    from ..bags import io as bag_io
    from ..bags.nuscenes2bag import camera_info_topic, image_topic
    from ..bags.replay import replay
    from ..ros.harness import NodeProcess, ros_environment, write_params_file
    from ..ros.session import RosSession
    from .recorder import OutputRecorder

    surround = options.surround
    cameras, radars = _rig(surround)
    params = write_params_file(out / PARAMS, node_parameters(
        model, calibration, user_parameters(options), surround))
    domain = options.domain_id if options.domain_id is not None else 101 + os.getpid() % 100
    log_path = out / NODE_LOG
    timing: dict[str, float] = {}
    remap = {}
    counters = {f'/{r}': f'/{r}' for r in radars}
    counters['/odom'] = 'odometry'
    for camera in cameras:
        prefix = _prefix(camera, surround)
        remap[image_topic(camera)] = f'{prefix}/input/image'
        remap[camera_info_topic(camera)] = f'{prefix}/input/camera_info'
        counters[camera_info_topic(camera)] = f'{camera}/camera_info' if surround \
            else 'camera_info'
    inputs = [*remap.values(), *(f'/{r}' for r in radars)]
    n_keyframes = sum(len(v) for v in stamps.values())
    with tempfile.TemporaryDirectory(prefix='rcdepth_demo_ros_') as ros_log:
        env = ros_environment(domain, ros_log)
        # The node is the one busy process: let torch use every core.
        env['OMP_NUM_THREADS'] = os.environ.get('OMP_NUM_THREADS', str(os.cpu_count() or 1))
        with bag_io.open_writer(out / DEPTH_BAG, overwrite=True) as writer:
            t0 = time.monotonic()
            _say(f'starting rcdepth_node (model {model.name}, ROS_DOMAIN_ID {domain}, '
                 f'log {log_path})')
            proc = NodeProcess(params, env, log_path=log_path)
            session = None
            try:
                session = RosSession(f'rcdepth_demo_{os.getpid()}', domain, env)
                recorders = {c: OutputRecorder(session.node, _prefix(c, surround), writer,
                                               stamps[c], diagnostics_of=NODE)
                             for c in cameras}
                _wait_for_node(session, proc, list(recorders.values()), inputs,
                               options.frame_timeout + 60.0, log_path)
                timing['node_start_s'] = time.monotonic() - t0
                t0 = time.monotonic()
                _say(f'replaying the bag into the node at rate {options.rate:g} '
                     f'(waiting for each of the {n_keyframes} keyframes)')
                pacer = _Pacer(recorders[CAMERA],
                               {image_topic(c): (recorders[c], stamps[c]) for c in cameras},
                               {camera_info_topic(c): stamps[c] for c in cameras},
                               counters, proc, options.frame_timeout, log_path)
                # Publishers on the demo's node: its participant is already discovered.
                played = replay(bag, rate=options.rate,
                                topics=[*remap, *(f'/{r}' for r in radars), '/odom'],
                                node=session.node, remap=remap, on_message=pacer,
                                wait_for_subscribers=30.0)
                _drain(list(recorders.values()), pacer.images, options.frame_timeout)
                timing['replay_s'] = time.monotonic() - t0
            finally:
                if session is not None:
                    session.close()
                code = proc.stop()
            if code:
                _say(f'note: rcdepth_node exited with code {code}; see {log_path}')
    return _Served(recorders[CAMERA], recorders, pacer, played, domain, params, log_path,
                   timing)


def _count(served: _Served, key: str) -> int:
    return sum(r.counts[key] for r in served.recorders.values())


def _render_surround(out: Path, dataroot: Path, version: str, scene: str,
                     keyframes_of: dict[str, list[Any]], served: _Served,
                     title: str) -> dict[str, Any] | None:
    """``OUT/surround.png``: the middle sample's six depth maps from above with the LiDAR."""
    from . import figure
    from .scene import load_surround_sample

    cameras = list(keyframes_of)
    n = min(len(k) for k in keyframes_of.values())
    # The middle sample every camera has an output for.
    for index in sorted(range(n), key=lambda i: abs(i - n // 2)):
        kfs = [keyframes_of[c][index] for c in cameras]
        kept = [served.recorders[c].kept.get(kf.stamp_ns, {}) for c, kf in zip(cameras, kfs)]
        if all('depth' in k for k in kept):
            break
    else:
        _say('note: no sample has the depth of every camera; no surround picture')
        return None
    sample = load_surround_sample(dataroot, version, scene, index, tuple(cameras))
    size = figure.render_surround(
        cameras, [k['depth'] for k in kept], [kf.K for kf in kfs],
        [sample.T_ref_from_camera[c] for c in cameras], sample.lidar,
        out / SURROUND_FIGURE, title=f'{title.split(" | ")[0]} | sample {index + 1}/{n}')
    return {'path': str(out / SURROUND_FIGURE), 'sample': index, 'size': list(size),
            'cameras': cameras}


def run_demo(options: DemoOptions) -> dict[str, Any]:
    """Run the whole demo; return the report written to ``OUT/metrics.json``."""
    from ..bags.nuscenes2bag import convert
    from . import figure, metrics
    from .scene import load_keyframes

    t_start = time.monotonic()
    timing: dict[str, float] = {}
    if options.rate <= 0:
        raise BadArgument(f'--rate must be > 0, got {options.rate}')
    out = Path(options.out).expanduser().resolve()
    user = user_parameters(options)  # a bad --params-file fails before any work
    model_path, description = check_model(user.get('model_path') or None)
    real = check_inputs(options)
    check_output(out, options.overwrite)

    # 1. World.
    t0 = time.monotonic()
    size = QUICK if options.quick else FULL
    if real is None:
        _say(f'building a synthetic world ({size.duration:g} s, image scale '
             f'{size.image_scale:g}, seed {options.seed}) in {out / WORLD_DIR}')
        dataroot = build_demo_world(out / WORLD_DIR, size, options.seed, options.progress,
                                    options.surround)
        version, scene = SIM_VERSION, 'scene-0000'
    else:
        dataroot = Path(options.nuscenes).expanduser().resolve()
        version, scene = real
        _say(f'using nuScenes {version} {scene} from {dataroot}')
    timing['world_s'] = time.monotonic() - t0

    # 2. Bag.
    t0 = time.monotonic()
    _say(f'converting {scene} to a bag in {out / BAG_DIR}')
    summary = convert(dataroot, version, out / BAG_DIR, scenes=[scene],
                      overwrite=options.overwrite, progress=options.progress)
    bag, calibration = Path(summary['bag']), Path(summary['calibration'])
    timing['bag_s'] = time.monotonic() - t0

    # Ground truth and radar of every keyframe, straight from the dataroot.
    config = _node_config(node_parameters(model_path, calibration, user, options.surround))
    keyframes_of = {c: load_keyframes(dataroot, version, scene, c, RADAR, config.radar_window,
                                      config.radar_max_sweeps)
                    for c in _rig(options.surround)[0]}
    keyframes = keyframes_of[CAMERA]
    if not keyframes:
        raise DemoError(f'{scene} has no {CAMERA} keyframes')

    # 3-5. Node, replay, recording.
    served = serve_bag(out, bag, calibration, model_path,
                       {c: {kf.stamp_ns for kf in kfs} for c, kfs in keyframes_of.items()},
                       options)
    timing.update(served.timing)
    recorder, pacer = served.recorder, served.pacer

    # 6-7. Metrics and picture.
    t0 = time.monotonic()
    results = {kf.stamp_ns: recorder.kept[kf.stamp_ns] for kf in keyframes
               if len(recorder.kept.get(kf.stamp_ns, {})) == 2}
    averages, records = metrics.evaluate_keyframes(keyframes, results)
    chosen = metrics.representative(records, options.figure_rows)
    rows = [_figure_row(keyframes, i, results) for i in chosen]
    variant = str(description.get('variant', '?'))
    title = (f'rcdepth demo: {variant} ({model_path.name}) on {scene} | '
             f'{metrics.summary_line(averages)}')
    boxes = figure.render_figure(rows, out / FIGURE, title=title) if rows else []
    surround = _render_surround(out, dataroot, version, scene, keyframes_of, served,
                                title) if options.surround else None
    timing['evaluate_s'] = time.monotonic() - t0
    timing['total_s'] = time.monotonic() - t_start

    diag = recorder.diagnostics
    report = {
        'model': {'name': model_path.name, 'path': str(model_path), 'variant': variant,
                  'arch': description.get('arch'),
                  'source': 'given' if user.get('model_path') else 'shipped default',
                  'training_data': description.get('training_data'),
                  'device': diag.get('device')},
        'world': {'source': 'synthetic' if real is None else 'nuscenes',
                  'dataroot': str(dataroot), 'version': version, 'scene': scene,
                  'seed': options.seed if real is None else None,
                  'quick': bool(options.quick),
                  'image_size': [keyframes[0].height, keyframes[0].width]},
        'frames': {'images_in': pacer.images, 'depth_out': _count(served, 'depth'),
                   'uncertainty_out': _count(served, 'uncertainty'),
                   'colored_out': _count(served, 'depth_colored'),
                   'dropped': int(diag.get(keys.FRAMES_DROPPED, 0)),
                   'uncompensated': int(diag.get(keys.FRAMES_UNCOMPENSATED, 0)),
                   'bad_input': int(diag.get(keys.BAD_INPUT_TOTAL, 0)),
                   'keyframes': len(keyframes), 'keyframes_with_output': len(results),
                   'keyframes_unsynced': pacer.unsynced,
                   'published': served.played['published'],
                   'node_received': {k.removeprefix(keys.received_key('')): int(v)
                                     for k, v in diag.items()
                                     if k.startswith(keys.received_key(''))}},
        'node': {'processing_ms_median': _median(recorder.processing_ms),
                 'model_ms_median': _median(recorder.model_ms),
                 'replay_rate': options.rate, 'domain_id': served.domain},
        'protocol': ('SPEC 5: per keyframe then averaged; GT = single-scan LIDAR_TOP keyframe '
                     'projected into CAM_FRONT (nearest wins, depth > 1 m); valid GT in '
                     '(1e-3, max]; predictions clamped to [1e-3, max], NaN -> 1e-3'),
        'metrics': averages,
        'per_keyframe': records,
        'figure': {'keyframes': chosen, 'panels': list(figure.PANELS), 'boxes': boxes},
        'surround': surround,
        'timing_s': timing,
        'outputs': {'world': str(dataroot), 'bag': str(bag), 'calibration': str(calibration),
                    'depth_bag': str(out / DEPTH_BAG),
                    'figure': str(out / FIGURE) if rows else None,
                    **({'surround_figure': surround['path']} if surround else {}),
                    'metrics': str(out / METRICS), 'node_log': str(served.log_path),
                    'node_params': str(served.params)},
    }
    metrics.write_json(out / METRICS, report)
    return report


def print_report(report: dict[str, Any]) -> None:
    """Where everything is, and the main numbers."""
    from .metrics import summary_line

    outputs, frames, node = report['outputs'], report['frames'], report['node']
    lines = [
        f'world        {outputs["world"]}',
        f'bag          {outputs["bag"]}  (calibration {outputs["calibration"]})',
        f'depth bag    {outputs["depth_bag"]}',
        f'picture      {outputs["figure"] or "(none: no keyframe had ground truth)"}',
        *([f'surround     {outputs["surround_figure"]}'] if outputs.get('surround_figure')
          else []),
        f'metrics      {outputs["metrics"]}',
        f'node log     {outputs["node_log"]}',
        f'frames       {frames["images_in"]} images in, {frames["depth_out"]} depth out, '
        f'{frames["dropped"]} dropped; {frames["keyframes_with_output"]}/{frames["keyframes"]} '
        f'keyframes answered; median node processing {node["processing_ms_median"]:.0f} ms',
        f'model        {report["model"]["variant"]} ({report["model"]["name"]}, '
        f'{report["model"]["source"]})',
        f'depth        {summary_line(report["metrics"])}',
        f'time         {report["timing_s"]["total_s"]:.0f} s',
    ]
    print('\n'.join(lines), flush=True)
