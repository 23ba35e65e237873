"""Malformed input of every kind, interleaved with good frames: the node counts, skips, serves."""

import numpy as np

from rcdepth_ros import counters as keys
from rcdepth_ros import msgs
from rcdepth_ros.ros.harness import synthetic_radar

H, W = 96, 160
MAX_POINTS = 500


def _image_case(**override):
    def send(client):
        client.stamp_ns += 100_000_000
        client.pub_info.publish(client.frames.camera_info(client.stamp_ns))
        client.pub_image.publish(client.frames.image(client.stamp_ns, **override))
    return send


def _info_case(**override):
    def send(client):
        client.stamp_ns += 100_000_000
        client.pub_info.publish(client.frames.camera_info(client.stamp_ns, **override))
        client.pub_image.publish(client.frames.image(client.stamp_ns))
    return send


def _radar_case(frame_id=None, **override):
    def send(client):
        client.stamp_ns += 100_000_000
        kwargs = {} if frame_id is None else {'frame_id': frame_id}
        client.pub_radar.publish(client.frames.radar(client.stamp_ns, **kwargs, **override))
    return send


def _cloud(points):
    return msgs.array_to_pointcloud2_fields(points)


def _nan_cloud():
    pts = synthetic_radar(10)
    pts['x'] = np.nan
    return _cloud(pts)


def _received(client, topic):
    diag = client.got['diagnostics'][-1] if client.got['diagnostics'] else {}
    return int(diag.get(keys.received_key(topic), 0))


def _unknown_frame_radar(client):
    # Topics are not ordered against each other: let the radar arrive before the image.
    before = _received(client, '~/input/radar')
    client.stamp_ns += 100_000_000
    client.pub_radar.publish(client.frames.radar(client.stamp_ns - 30_000_000, 'nowhere'))
    assert client.wait(lambda: _received(client, '~/input/radar') > before, 10.0)
    client.pub_info.publish(client.frames.camera_info(client.stamp_ns))
    client.pub_image.publish(client.frames.image(client.stamp_ns))


def _time_jump(client):
    client.stamp_ns -= 100 * 1_000_000_000  # a bag that loops
    client.publish_frame()


def _nan_odometry(client):
    odom = client.frames.odometry(client.stamp_ns)
    odom.pose.pose.orientation.w = float('nan')
    client.pub_odom.publish(odom)


def _cases(client):
    image = client.frames.image(0)
    row = W * 3
    data = np.frombuffer(bytes(image.data), np.uint8)
    K = client.frames.K
    good_cloud = _cloud(synthetic_radar(10))
    no_x = np.zeros(5, dtype=[('a', '<f4'), ('y', '<f4'), ('z', '<f4')])
    bad_type = dict(good_cloud, fields=[dict(f, datatype=42) if f['name'] == 'x' else f
                                        for f in good_cloud['fields']])
    return [
        ('image_encoding', _image_case(encoding='32FC1', step=W * 4,
                                       data=np.zeros(H * W * 4, np.uint8))),
        ('image_encoding', _image_case(encoding='yuv422')),
        ('image_decode', _image_case(data=data[:-17])),
        ('image_decode', _image_case(step=row - 1, data=data[:(row - 1) * H])),
        ('image_decode', _image_case(step=row + 4)),
        ('image_decode', _image_case(height=0)),
        ('image_size', _image_case(height=4, width=4, step=12, data=data[:48])),
        ('image_size', _image_case(height=100_000, width=100_000, step=300_000)),
        ('unknown_frame', _empty_frame_image),
        ('camera_info', _info_case(k=np.zeros(9))),
        ('camera_info', _info_case(k=np.full(9, np.nan))),
        ('camera_info', _info_case(width=0, height=0)),
        ('camera_info_mismatch', _info_case(**msgs.camera_info_fields(K, H // 2, W // 2))),
        ('radar_empty', _radar_case(**_cloud(synthetic_radar(10)[:0]))),
        ('radar_nonfinite', _radar_case(**_nan_cloud())),
        ('radar_huge', _radar_case(**_cloud(synthetic_radar(MAX_POINTS + 100)))),
        ('radar_decode', _radar_case(data=good_cloud['data'][:-5])),
        ('radar_decode', _radar_case(**_cloud(no_x))),
        ('radar_decode', _radar_case(point_step=0)),
        ('radar_decode', _radar_case(**bad_type)),
        ('radar_decode', _radar_case(row_step=good_cloud['row_step'] - 43)),
        ('unknown_frame', _unknown_frame_radar),
        ('unknown_frame', _radar_case(frame_id='')),
        ('time_jump', _time_jump),
        ('odometry', _nan_odometry),
    ]


def _empty_frame_image(client):
    client.stamp_ns += 100_000_000
    stamp = client.stamp_ns
    info = client.frames.camera_info(stamp)
    image = client.frames.image(stamp)
    info.header.frame_id = image.header.frame_id = ''
    client.pub_info.publish(info)
    client.pub_image.publish(image)


def _bad_counts(client):
    if not client.got['diagnostics']:
        return {}
    diag = client.got['diagnostics'][-1]
    return {k[len(keys.bad_input_key('')):]: int(v) for k, v in diag.items()
            if k.startswith(keys.bad_input_key(''))}


def test_node_survives_malformed_input_and_keeps_serving(node_client):
    client = node_client(H, W, radar__max_points=MAX_POINTS, diagnostics_period=0.2)
    client.serve_one(timeout=90.0)
    cases = _cases(client)
    assert len(cases) >= 20
    for kind, send in cases:
        before = _bad_counts(client).get(kind, 0)
        n_diag = len(client.got['diagnostics'])
        send(client)
        counted = client.wait(lambda: len(client.got['diagnostics']) > n_diag
                              and _bad_counts(client).get(kind, 0) > before, 10.0)
        assert counted, f'{kind}: {client.got["diagnostics"][-1:]}'
        client.serve_one(timeout=20.0)  # and good frames are still answered
    assert client.proc.alive()
    counts = _bad_counts(client)
    assert sum(counts.values()) >= len(cases)
    assert client.wait(lambda: 'skipped bad input (radar_huge)' in client.proc.log(), 5.0)
