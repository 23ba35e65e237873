"""rcdepth_node as a real process: outputs on real topics, lifecycle driven from outside."""

from lifecycle_msgs.msg import State, Transition
import numpy as np

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
    assert client.wait(lambda: any(int(d.get('frames_processed', 0)) > 0
                                   for d in client.got['diagnostics']), 10.0)
    diag = client.got['diagnostics'][-1]
    assert diag['model'] == 'xdrcdepth' and diag['device'] == 'cpu'
    assert float(diag['rate_hz image']) >= 0.0 and 'frames_dropped' in diag
    assert int(diag['bad_input_total']) == 0, diag

    # A burst faster than inference: the worker keeps only the newest frame, drops the rest.
    last = [client.publish_frame() for _ in range(6)][-1]
    assert client.wait(lambda: any(stamp_ns(m.header) == last
                                   for m in client.messages('depth')), 30.0)
    assert client.wait(lambda: int(client.got['diagnostics'][-1]['frames_dropped']) > 0, 10.0)


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

    corrupt = tmp_path / 'corrupt'
    corrupt.with_suffix('.safetensors').write_bytes(b'\x00' * 64)
    corrupt.with_suffix('.json').write_text('{"variant": "xdrcdepth"')
    assert client.set_string('model_path', str(corrupt))
    assert not client.transition(Transition.TRANSITION_CONFIGURE)
    assert client.state() == State.PRIMARY_STATE_UNCONFIGURED
    assert client.wait(lambda: 'cannot load model weights' in client.proc.log(), 10.0)

    assert client.set_string('model_path', str(student_weights))
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
