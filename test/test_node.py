"""rcdepth_node as a real process: outputs on real topics, lifecycle driven from outside."""

import os

from lifecycle_msgs.msg import State, Transition
import numpy as np
import pytest

from rcdepth_ros import counters as keys
from rcdepth_ros import msgs
from rcdepth_ros.ros.harness import CAMERA_FRAME, stamp_ns

H, W = 96, 160
STARTUP_S = 90.0  # torch import + model load on a busy 2-core machine


def test_node_publishes_depth_uncertainty_and_diagnostics(node_client):
    client = node_client(H, W, output__points=True)
    assert client.wait(lambda: client.pub_image.get_subscription_count() > 0, STARTUP_S)
    assert client.state() == State.PRIMARY_STATE_ACTIVE
    stamp = client.serve_one()

    def of(key):
        return [m for m in client.messages(key) if stamp_ns(m.header) == stamp]

    assert client.wait(lambda: of('uncertainty') and of('camera_info') and of('points'), 10.0)
    depth_msg, sigma_msg = of('depth')[0], of('uncertainty')[0]
    for msg in (depth_msg, sigma_msg):
        assert (msg.encoding, msg.height, msg.width) == ('32FC1', H, W)
        assert msg.header.frame_id == CAMERA_FRAME
    depth = msgs.image_to_array(depth_msg)
    sigma = msgs.image_to_array(sigma_msg)
    assert depth.shape == (H, W)
    finite = np.isfinite(depth)
    assert finite.mean() > 0.5  # random init still predicts max_depth * sigmoid(x)
    assert (depth[finite] >= 1.0).all() and (depth[finite] <= 100.0).all()
    np.testing.assert_array_equal(np.isfinite(sigma), finite)
    assert (sigma[finite] > 0).all()
    info = of('camera_info')[0]
    np.testing.assert_allclose(np.asarray(info.k).reshape(3, 3), client.frames.K)
    cloud = msgs.pointcloud2_to_array(of('points')[0])
    assert cloud.size == int(finite[::4, ::4].sum())
    # The coloured image is computed only while subscribed: we are subscribed, so it comes.
    assert client.wait(lambda: client.got['colored'], 10.0)
    assert client.messages('colored')[0].encoding == 'bgr8'
    assert client.wait(lambda: client.got['processing_time'] and client.got['model_time'], 10.0)
    assert client.messages('processing_time')[0].data >= client.messages('model_time')[0].data
    assert client.wait(lambda: any(int(d.get(keys.FRAMES_PROCESSED, 0)) > 0
                                   for d in client.got['diagnostics']), 10.0)
    diag = client.got['diagnostics'][-1]
    assert diag['model'] == 'xdrcdepth' and diag['device'] == 'cpu'
    assert float(diag[keys.rate_key('image')]) >= 0.0 and keys.FRAMES_DROPPED in diag
    assert int(diag[keys.BAD_INPUT_TOTAL]) == 0, diag

    # A burst faster than inference: the worker keeps only the newest frame, drops the rest.
    last = [client.publish_frame() for _ in range(6)][-1]
    assert client.wait(lambda: any(stamp_ns(m.header) == last
                                   for m in client.messages('depth')), 30.0)
    assert client.wait(lambda: int(client.got['diagnostics'][-1][keys.FRAMES_DROPPED]) > 0, 10.0)


def test_lifecycle_cycles_release_and_reload_the_model(node_client):
    client = node_client(H, W)
    client.serve_one(timeout=STARTUP_S)
    rss = []
    for _ in range(3):
        assert client.transition(Transition.TRANSITION_DEACTIVATE)
        assert client.state() == State.PRIMARY_STATE_INACTIVE
        # Inactive: frames are not answered (the node unsubscribed).
        assert client.wait(lambda: client.pub_image.get_subscription_count() == 0, 10.0)
        n = len(client.got['depth'])
        client.publish_frame()
        assert not client.wait(lambda: len(client.got['depth']) > n, 1.0)
        assert client.transition(Transition.TRANSITION_CLEANUP)
        assert client.state() == State.PRIMARY_STATE_UNCONFIGURED
        assert client.transition(Transition.TRANSITION_CONFIGURE)
        assert client.transition(Transition.TRANSITION_ACTIVATE)
        assert client.state() == State.PRIMARY_STATE_ACTIVE
        assert client.wait(lambda: client.pub_image.get_subscription_count() > 0, 10.0)
        client.serve_one()
        rss.append(client.proc.rss_mb())
    # Each reload builds a new model (~36 MB of fp32 weights); a leak grows RSS by that a cycle.
    assert rss[-1] - rss[0] < 60.0, rss


def test_missing_and_corrupt_weights_fail_configure_cleanly(node_client, tmp_path,
                                                            student_weights):
    client = node_client(H, W, model_path=str(tmp_path / 'missing'))
    assert client.state() == State.PRIMARY_STATE_UNCONFIGURED
    assert client.wait(lambda: 'model weights not found' in client.proc.log(), 10.0)
    # A name with a dot in it is part of the name (xd.v2 = xd.v2.safetensors + xd.v2.json).
    dotted = tmp_path / 'xd.v2'
    for suffix in ('.safetensors', '.json'):
        dotted.parent.joinpath('xd.v2' + suffix).write_bytes(
            student_weights.parent.joinpath(student_weights.name + suffix).read_bytes())

    corrupt = tmp_path / 'corrupt'
    corrupt.with_suffix('.safetensors').write_bytes(b'\x00' * 64)
    corrupt.with_suffix('.json').write_text('{"variant": "xdrcdepth"')
    assert client.set_string('model_path', str(corrupt))
    assert not client.transition(Transition.TRANSITION_CONFIGURE)
    assert client.state() == State.PRIMARY_STATE_UNCONFIGURED
    assert client.wait(lambda: 'cannot load model weights' in client.proc.log(), 10.0)

    assert client.set_string('model_path', str(dotted))
    assert client.transition(Transition.TRANSITION_CONFIGURE)
    assert client.transition(Transition.TRANSITION_ACTIVATE)
    assert client.wait(lambda: client.pub_image.get_subscription_count() > 0, 10.0)
    client.serve_one()


def test_bench_node_reports_latency_and_overhead(ros_env, student_weights, tmp_path):
    import json

    from rcdepth_ros import cli

    out = tmp_path / 'bench.json'
    code = cli.main(['bench-node', '--size', '64x96', '--frames', '3', '--warmup', '1',
                     '--device', 'cpu', '--model', str(student_weights),
                     '--domain-id', ros_env['ROS_DOMAIN_ID'], '--json', str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert result['size'] == [64, 96] and result['frames'] == 3 and result['weights'] == 'given'
    for key in ('end_to_end_ms', 'model_ms', 'overhead_ms', 'node_processing_ms'):
        assert result[key]['median'] <= result[key]['p90'] <= result[key]['max']
    assert 0.0 < result['model_ms']['median'] <= result['end_to_end_ms']['max']
    memory = result['node_rss_mb']
    assert 100.0 < memory['start'] and 100.0 < memory['end']  # a node with torch loaded
    assert [n for n, _ in memory['samples']] == [0, 3]
    assert memory['growth_pct'] == pytest.approx(100 * (memory['end'] / memory['start'] - 1))
    # The client's ROS session gave this process its environment back.
    assert os.environ['ROS_LOG_DIR'] == ros_env['ROS_LOG_DIR']


def test_bench_node_with_several_cameras(ros_env, student_weights, tmp_path):
    import json

    from rcdepth_ros import cli

    out = tmp_path / 'bench.json'
    code = cli.main(['bench-node', '--size', '48x80', '--frames', '2', '--warmup', '1',
                     '--cameras', '3', '--device', 'cpu', '--model', str(student_weights),
                     '--domain-id', ros_env['ROS_DOMAIN_ID'], '--json', str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert result['cameras'] == 3 and result['frames'] == 2
    # Two instants of three cameras came back within the timed loop.
    assert result['camera_frames_per_s'] > 0
    assert result['end_to_end_ms']['max'] >= result['model_ms']['min'] > 0


def _set(client, name, value):
    """Set one parameter through the node's real set_parameters service: (ok, reason)."""
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
    result = client.call(client.set_params, request).results[0]
    return result.successful, result.reason


def _radar_received(client):
    diag = client.got['diagnostics']
    return int(diag[-1].get(keys.received_key('~/input/radar'), 0)) if diag else 0


def _radar_taken_in(client, timeout=10.0):
    """Wait until the node's /diagnostics count every radar sweep sent since the start.

    Sweeps sent before discovery never arrive: ``client.radar_lost`` (set once quiet) are
    left out; the node's inputs are reliable in these tests, so no later one is lost.
    """
    assert client.wait(lambda: _radar_received(client) >= client.radar_sent
                       - client.radar_lost, timeout)


def _radar_pixels_after(client, frames=2):
    """Radar pixels the node used for the last of ``frames`` new frames (from /diagnostics).

    Each image goes out once the node has its radar sweep: radar and image topics are not
    ordered against each other, and the node picks radar when its worker takes the frame.
    """
    for _ in range(frames):
        stamp = client.publish_frame(before_image=lambda: _radar_taken_in(client))
        assert client.wait(lambda: any(stamp_ns(m.header) == stamp
                                       for m in client.messages('depth')), 30.0)
    # The second diagnostics message after the depth came is at least one period later, so
    # it counts that frame.
    seen = len(client.got['diagnostics'])
    assert client.wait(lambda: len(client.got['diagnostics']) >= seen + 2, 10.0)
    return int(client.got['diagnostics'][-1][keys.RADAR_PIXELS_LAST])


def test_parameters_set_on_the_running_node(node_client):
    client = node_client(H, W, diagnostics_period=0.2, qos__reliability='reliable')
    client.serve_one(timeout=STARTUP_S)
    seen = len(client.got['diagnostics'])  # two periods later the count is complete
    assert client.wait(lambda: len(client.got['diagnostics']) >= seen + 2, 10.0)
    client.radar_lost = client.radar_sent - _radar_received(client)
    # The test radar sweep is 30 ms older than its image: inside the default 0.1 s window.
    assert _radar_pixels_after(client) > 0

    # A live parameter applies to the very next frame: a 10 ms window holds no sweep.
    assert _set(client, 'radar.window', 0.01) == (True, '')
    assert _radar_pixels_after(client) == 0
    assert _set(client, 'radar.window', 0.1) == (True, '')
    assert _radar_pixels_after(client) > 0

    # Depth range, live too: everything beyond 2 m is now NaN.
    assert _set(client, 'max_depth', 2.0)[0]
    stamp = client.publish_frame()
    assert client.wait(lambda: any(stamp_ns(m.header) == stamp
                                   for m in client.messages('depth')), 30.0)
    depth = msgs.image_to_array(next(m for m in client.messages('depth')
                                     if stamp_ns(m.header) == stamp))
    assert np.isnan(depth).all() or np.nanmax(depth) <= 2.0

    # What cannot change while active is refused with the transition it needs.
    ok, reason = _set(client, 'image_type', 'compressed')
    assert not ok and 'image_type' in reason and 'deactivate' in reason
    ok, reason = _set(client, 'precision', 'fp16')
    assert not ok and 'cleanup' in reason
    ok, reason = _set(client, 'min_depth', 5.0)  # would cross max_depth = 2
    assert not ok and 'min_depth < max_depth' in reason
    assert not _set(client, 'radar.window', 9.0)[0]  # outside the descriptor's range
    assert client.state() == State.PRIMARY_STATE_ACTIVE

    # Inactive, a subscription parameter may change and is used on activate.
    assert client.transition(Transition.TRANSITION_DEACTIVATE)
    assert _set(client, 'qos.depth', 3) == (True, '')
    ok, reason = _set(client, 'image_type', 'jpeg')
    assert not ok and 'one of' in reason
    assert client.transition(Transition.TRANSITION_ACTIVATE)
    assert client.wait(lambda: client.pub_image.get_subscription_count() > 0, 10.0)


def test_configure_names_the_real_cause(node_client):
    client = node_client(H, W, precision='fp16', autostart=False)
    assert client.wait(lambda: client.state() == State.PRIMARY_STATE_UNCONFIGURED, STARTUP_S)
    assert not client.transition(Transition.TRANSITION_CONFIGURE)

    def failure():
        return [line for line in client.proc.log().splitlines() if 'configure failed' in line]

    assert client.wait(failure, 10.0)
    # The reason is the precision the machine cannot run, not the weights.
    assert "precision 'fp16'" in failure()[0] and 'cpu' in failure()[0]
    assert 'cannot load model weights' not in failure()[0]

    assert client.set_string('precision', 'fp32')
    assert client.set_string('extrinsics.source', 'tf')
    # tf2_ros is not installed in the test environment: configure fails and says why.
    import importlib.util

    if importlib.util.find_spec('tf2_ros') is None:
        assert not client.transition(Transition.TRANSITION_CONFIGURE)
        assert client.wait(lambda: 'tf2_ros cannot be imported' in client.proc.log(), 10.0)


def test_sigint_shuts_down_through_the_lifecycle(ros_env, node_params, tmp_path):
    import time

    from rcdepth_ros.ros.harness import NodeProcess

    proc = NodeProcess(node_params(H, W), ros_env, '/sigint_test', tmp_path / 'node.log')
    try:
        deadline = time.monotonic() + STARTUP_S
        while 'activated' not in proc.log() and proc.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert 'activated' in proc.log(), proc.log()[-2000:]
    finally:
        code = proc.stop()
    log = proc.log()
    assert code == 0 and 'shut down' in log and 'Traceback' not in log, log[-2000:]


def test_one_node_serves_several_cameras_in_one_batched_pass(node_client):
    """Surround view: ``cameras`` gives each camera its own inputs and outputs; images of one
    instant run as one forward pass; the fused cloud is every camera's points in base_link."""
    import time

    from rcdepth_ros.ros.harness import output_key

    cameras = ['CAM_A', 'CAM_B', 'CAM_C']
    client = node_client(H, W, cameras=cameras, output__points=True, output__points_stride=8,
                         batch__window=1.0, qos__reliability='reliable')
    assert client.wait(lambda: all(p.get_subscription_count() > 0
                                   for p in client.pub_images.values()), 30.0)

    def index_of(camera, stamp):
        depth = client.messages(output_key(camera, 'depth'))
        return next((i for i, m in enumerate(depth) if stamp_ns(m.header) == stamp), None)

    def complete(stamp):
        return all(index_of(c, stamp) is not None for c in cameras) and any(
            stamp_ns(m.header) == stamp for m in client.messages('fused_points'))

    # The node publishes points only to matched subscribers: send instants until one
    # comes back whole (every camera, and the fused cloud).
    deadline, stamp = time.monotonic() + 90.0, None
    while time.monotonic() < deadline:
        sent = client.publish_frame()
        if client.wait(lambda: complete(sent), 10.0):
            stamp = sent
            break
    assert stamp is not None, client.proc.log()[-2000:]
    # One forward pass: the three cameras report the same network and processing times
    # (one of each per depth image, in the same order).
    model = {client.messages(output_key(c, 'model_time'))[index_of(c, stamp)].data
             for c in cameras}
    total = {client.messages(output_key(c, 'processing_time'))[index_of(c, stamp)].data
             for c in cameras}
    assert len(model) == 1 and len(total) == 1
    # The single-camera topics are not used when cameras are named.
    assert client.node.count_publishers(f'{client.base}/output/depth') == 0
    assert client.node.count_subscribers(f'{client.base}/input/image') == 0
    fused = next(m for m in client.messages('fused_points') if stamp_ns(m.header) == stamp)
    assert fused.header.frame_id == 'base_link'
    cloud = msgs.pointcloud2_to_array(fused)
    per_camera = [msgs.pointcloud2_to_array(m) for c in cameras
                  for m in client.messages(output_key(c, 'points'))
                  if stamp_ns(m.header) == stamp]
    assert len(per_camera) == 3 and cloud.size == sum(p.size for p in per_camera) > 0
    # The rig's camera sits 1.5 m ahead of base_link and 1.5 m up, optical z forward, y down.
    optical = np.concatenate(per_camera)
    np.testing.assert_allclose(np.sort(cloud['x']), np.sort(optical['z'] + 1.5), atol=1e-3)
    np.testing.assert_allclose(np.sort(cloud['z']), np.sort(1.5 - optical['y']), atol=1e-3)
