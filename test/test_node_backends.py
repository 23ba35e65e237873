"""rcdepth_node with the exported-graph backends: `-p backend:=openvino` answers frames."""

import numpy as np

from rcdepth_ros import msgs
from rcdepth_ros.ros.harness import stamp_ns

H, W = 96, 160
STARTUP_S = 120.0  # torch import, export and OpenVINO compile on a busy 2-core machine


def test_node_with_openvino_backend_answers_frames(node_client, ros_env, tmp_path):
    ros_env['RCDEPTH_CACHE_DIR'] = str(tmp_path / 'graphs')
    client = node_client(H, W, backend='openvino')
    assert client.wait(lambda: client.pub_image.get_subscription_count() > 0, STARTUP_S)
    stamp = client.serve_one()

    def depth():
        return [m for m in client.messages('depth') if stamp_ns(m.header) == stamp]

    assert client.wait(depth, 30.0)
    image = msgs.image_to_array(depth()[0])
    assert image.shape == (H, W) and np.isfinite(image).mean() > 0.5
    assert '(openvino, fp32)' in client.proc.log()
    # The graph was exported once into the cache folder given to the node.
    assert len([p for p in (tmp_path / 'graphs').iterdir() if not p.name.startswith('.')]) == 1
