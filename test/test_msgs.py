"""Codec tests of rcdepth_ros.msgs through real rclpy messages and rosbags CDR bytes."""

import array
from types import SimpleNamespace

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import Header

from rcdepth_ros import msgs

TS = get_typestore(Stores.ROS2_KILTED)
RB = TS.types


def rb_header():
    return RB['std_msgs/msg/Header'](stamp=RB['builtin_interfaces/msg/Time'](sec=3, nanosec=4),
                                     frame_id='cam')


def via_rclpy(msg_cls, fields, **extra):
    """Build an rclpy message and pass it through serialize/deserialize."""
    msg = msgs.build_message(msg_cls, fields, header=Header(frame_id='cam'), **extra)
    return deserialize_message(serialize_message(msg), msg_cls)


def via_rosbags_cdr(msg_cls, typename, fields, **extra):
    """Build a rosbags message, serialise it to CDR and deserialise that with rclpy."""
    rb_msg = msgs.build_message(RB[typename], fields, header=rb_header(), **extra)
    return deserialize_message(bytes(TS.serialize_cdr(rb_msg, typename)), msg_cls)


def sample_image(encoding, h=5, w=7, seed=0):
    rng = np.random.default_rng(seed)
    base, channels = msgs.IMAGE_ENCODINGS[encoding]
    shape = (h, w) if channels == 1 else (h, w, channels)
    if encoding == '32FC1':
        arr = rng.uniform(0, 80, size=shape).astype(np.float32)
        arr[1, 2] = np.nan
        return arr
    return rng.integers(0, np.iinfo(np.dtype(base)).max, size=shape).astype(base)


# ------------------------------------------------------------------------------- Image

@pytest.mark.parametrize('encoding', list(msgs.IMAGE_ENCODINGS))
def test_image_round_trip_rclpy_and_rosbags(encoding):
    arr = sample_image(encoding)
    fields = msgs.array_to_image_fields(arr, encoding)
    for msg in (via_rclpy(Image, fields), via_rosbags_cdr(Image, 'sensor_msgs/msg/Image',
                                                          fields)):
        assert (msg.height, msg.width, msg.encoding) == (5, 7, encoding)
        assert msg.header.frame_id == 'cam'
        np.testing.assert_array_equal(msgs.image_to_array(msg), arr)
    # rclpy serialised bytes read back by rosbags decode the same.
    raw = serialize_message(msgs.build_message(Image, fields, header=Header()))
    rb_msg = TS.deserialize_cdr(raw, 'sensor_msgs/msg/Image')
    np.testing.assert_array_equal(msgs.image_to_array(rb_msg), arr)


def test_image_decode_is_zero_copy_for_both_flavours():
    arr = sample_image('rgb8', 6, 9)
    fields = msgs.array_to_image_fields(arr, 'rgb8')
    rb_msg = msgs.build_message(RB['sensor_msgs/msg/Image'], fields, header=rb_header())
    assert isinstance(rb_msg.data, np.ndarray)
    view = msgs.image_to_array(rb_msg)
    assert np.shares_memory(view, rb_msg.data) and not view.flags.writeable
    rc_msg = msgs.build_message(Image, fields, header=Header())
    assert isinstance(rc_msg.data, array.array) and rc_msg.data.typecode == 'B'
    view = msgs.image_to_array(rc_msg)
    assert np.shares_memory(view, np.frombuffer(rc_msg.data, np.uint8))
    np.testing.assert_array_equal(msgs.image_to_rgb(rc_msg), arr)


def test_image_step_padding_and_big_endian():
    values = np.arange(15, dtype=np.uint16).reshape(3, 5) * 1000  # (3, 5)
    padded = np.zeros((3, 12), dtype=np.uint8)  # 10 bytes a row + 2 padding
    padded[:, :10] = values.astype('>u2').view(np.uint8).reshape(3, 10)
    msg = SimpleNamespace(height=3, width=5, encoding='mono16', is_bigendian=1, step=12,
                          data=padded.tobytes())
    np.testing.assert_array_equal(msgs.image_to_array(msg), values)
    np.testing.assert_array_equal(msgs.image_to_rgb(msg)[..., 0], (values >> 8).astype(np.uint8))
    # The same through a real rclpy message.
    rc = Image(height=3, width=5, encoding='mono16', is_bigendian=1, step=12,
               data=array.array('B', padded.tobytes()))
    rc = deserialize_message(serialize_message(rc), Image)
    np.testing.assert_array_equal(msgs.image_to_array(rc), values)
    # Padded rgb8 rows.
    rgb = sample_image('rgb8', 2, 3)
    rows = np.zeros((2, 16), np.uint8)
    rows[:, :9] = rgb.reshape(2, 9)
    msg = SimpleNamespace(height=2, width=3, encoding='rgb8', is_bigendian=0, step=16,
                          data=rows.reshape(-1))
    np.testing.assert_array_equal(msgs.image_to_rgb(msg), rgb)


def test_image_to_rgb_per_encoding():
    rgb = sample_image('rgb8', 4, 6)
    alpha = np.full((4, 6, 1), 7, np.uint8)
    cases = {
        'rgb8': rgb, 'bgr8': rgb[..., ::-1], 'rgba8': np.concatenate([rgb, alpha], 2),
        'bgra8': np.concatenate([rgb[..., ::-1], alpha], 2),
    }
    for encoding, arr in cases.items():
        msg = msgs.build_message(Image, msgs.array_to_image_fields(arr, encoding))
        out = msgs.image_to_rgb(msg)
        assert out.shape == (4, 6, 3) and out.dtype == np.uint8
        np.testing.assert_array_equal(out, rgb, err_msg=encoding)
    grey = rgb[..., 0]
    out = msgs.image_to_rgb(msgs.build_message(Image, msgs.array_to_image_fields(grey,
                                                                                 'mono8')))
    np.testing.assert_array_equal(out, np.stack([grey] * 3, axis=2))
    for encoding in ('16UC1', '32FC1'):
        msg = msgs.build_message(Image, msgs.array_to_image_fields(sample_image(encoding),
                                                                   encoding))
        with pytest.raises(ValueError, match='depth image'):
            msgs.image_to_rgb(msg)


def _image(**over):
    fields = dict(height=2, width=3, encoding='rgb8', is_bigendian=0, step=9,
                  data=bytes(18))
    fields.update(over)
    return SimpleNamespace(**fields)


@pytest.mark.parametrize('over, reason', [
    (dict(encoding='yuv422'), 'unsupported image encoding'),
    (dict(data=bytes(17)), 'expected step'),
    (dict(data=bytes(19)), 'expected step'),
    (dict(step=8, data=bytes(16)), 'smaller than'),
    (dict(height=0, data=b''), 'empty'),
    (dict(height=-1), '>= 0'),
    (dict(width='x'), 'integer'),
    (dict(data=np.zeros(18, np.float32)), 'uint8'),
    (dict(data=object()), 'byte buffer'),
])
def test_malformed_images(over, reason):
    with pytest.raises(ValueError, match=reason):
        msgs.image_to_array(_image(**over))


def test_missing_image_field():
    msg = SimpleNamespace(height=2, width=3, encoding='rgb8', is_bigendian=0, data=bytes(18))
    with pytest.raises(ValueError, match='no field "step"'):
        msgs.image_to_array(msg)


def test_array_to_image_fields_rejects_bad_arrays():
    with pytest.raises(ValueError, match='needs dtype uint8'):
        msgs.array_to_image_fields(np.zeros((2, 3, 3), np.int64), 'rgb8')
    with pytest.raises(ValueError, match=r'\(H, W, 3\)'):
        msgs.array_to_image_fields(np.zeros((2, 3, 4), np.uint8), 'rgb8')
    with pytest.raises(ValueError, match='unsupported'):
        msgs.array_to_image_fields(np.zeros((2, 3), np.uint8), 'jpeg')
    fields = msgs.array_to_image_fields(np.zeros((2, 3), np.float64), '32FC1')
    assert fields['step'] == 12 and fields['data'].size == 24


# ---------------------------------------------------------------------- CompressedImage

def test_compressed_round_trips():
    yy, xx = np.mgrid[0:48, 0:64]
    rgb = np.stack([xx * 3, yy * 5, (xx + yy) * 2], axis=2).astype(np.uint8)  # smooth
    png = msgs.rgb_to_compressed_fields(rgb, 'png')
    assert png['format'] == 'png'
    for msg in (via_rclpy(CompressedImage, png),
                via_rosbags_cdr(CompressedImage, 'sensor_msgs/msg/CompressedImage', png)):
        np.testing.assert_array_equal(msgs.compressed_to_rgb(msg), rgb)
    jpeg = msgs.rgb_to_compressed_fields(rgb, 'jpeg', quality=95)
    out = msgs.compressed_to_rgb(via_rclpy(CompressedImage, jpeg))
    assert out.shape == rgb.shape
    # Channel order survives: a swap would cost far more than JPEG's error.
    assert np.abs(out.astype(int) - rgb).mean() < 3.0
    # ROS image_transport style format strings are accepted.
    msg = SimpleNamespace(format='rgb8; jpeg compressed bgr8', data=jpeg['data'])
    assert msgs.compressed_to_rgb(msg).shape == rgb.shape


def test_malformed_compressed():
    with pytest.raises(ValueError, match='could not decode'):
        msgs.compressed_to_rgb(SimpleNamespace(format='jpeg', data=b'not a jpeg'))
    with pytest.raises(ValueError, match='no data'):
        msgs.compressed_to_rgb(SimpleNamespace(format='png', data=b''))
    with pytest.raises(ValueError, match='unsupported compressed format'):
        msgs.compressed_to_rgb(SimpleNamespace(format='tiff', data=b'xx'))
    with pytest.raises(ValueError, match='uint8'):
        msgs.rgb_to_compressed_fields(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match='unsupported'):
        msgs.rgb_to_compressed_fields(np.zeros((4, 4, 3), np.uint8), 'webp')


# ---------------------------------------------------------------------------- PointCloud2

ALL_TYPES = np.dtype({
    'names': ['a_i8', 'b_u8', 'c_i16', 'd_u16', 'e_i32', 'f_u32', 'x', 'g_f64', 'vec'],
    'formats': ['i1', 'u1', '<i2', '<u2', '<i4', '<u4', '<f4', '<f8', ('<f4', (3,))],
    'offsets': [0, 1, 2, 4, 8, 12, 16, 24, 32],
    'itemsize': 48,  # 4 bytes of trailing padding
})


def sample_cloud(n=6, seed=0):
    rng = np.random.default_rng(seed)
    arr = np.zeros(n, dtype=ALL_TYPES)
    for name in ALL_TYPES.names:
        base = ALL_TYPES.fields[name][0].base
        shape = arr[name].shape
        if base.kind == 'f':
            arr[name] = rng.normal(size=shape)
        else:
            info = np.iinfo(base)
            arr[name] = rng.integers(info.min, info.max, size=shape, endpoint=True)
    return arr


def assert_cloud_equal(got, want):
    assert got.dtype.names == want.dtype.names
    for name in want.dtype.names:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_pointcloud2_all_datatypes_round_trip():
    arr = sample_cloud()
    fields = msgs.array_to_pointcloud2_fields(arr)
    assert [f['datatype'] for f in fields['fields']] == [1, 2, 3, 4, 5, 6, 7, 8, 7]
    assert fields['fields'][-1]['count'] == 3 and fields['point_step'] == 48
    assert fields['is_dense']
    rc = via_rclpy(PointCloud2, fields)
    rb = via_rosbags_cdr(PointCloud2, 'sensor_msgs/msg/PointCloud2', fields,
                         point_field_cls=RB['sensor_msgs/msg/PointField'])
    for msg in (rc, rb):
        assert isinstance(msg.fields[0], PointField)
        out = msgs.pointcloud2_to_array(msg)
        assert out.shape == (6,) and out.dtype.itemsize == 48
        assert_cloud_equal(out, arr)


def test_pointcloud2_organised_row_padding_and_big_endian():
    dtype = np.dtype({'names': ['x', 'y', 'z', 'intensity'],
                      'formats': ['>f4', '>f4', '>f4', '>u2'],
                      'offsets': [0, 4, 8, 12], 'itemsize': 16})
    pts = np.zeros((2, 3), dtype=dtype)
    pts['x'] = np.arange(6).reshape(2, 3)
    pts['y'] = -1.5
    pts['z'] = np.nan  # non-dense
    pts['intensity'] = 513
    row_step = 3 * 16 + 8
    raw = np.zeros((2, row_step), np.uint8)
    raw[:, :48] = pts.view(np.uint8).reshape(2, 48)
    fields = [PointField(name=n, offset=o, datatype=d, count=1)
              for n, o, d in [('x', 0, 7), ('y', 4, 7), ('z', 8, 7), ('intensity', 12, 4)]]
    msg = PointCloud2(height=2, width=3, fields=fields, is_bigendian=True, point_step=16,
                      row_step=row_step, data=array.array('B', raw.tobytes()),
                      is_dense=False)
    msg = deserialize_message(serialize_message(msg), PointCloud2)
    out = msgs.pointcloud2_to_array(msg)
    assert out.shape == (6,)
    np.testing.assert_array_equal(out['x'], np.arange(6.0))
    np.testing.assert_array_equal(out['intensity'], 513)
    assert np.isnan(out['z']).all()
    assert out.dtype.fields['x'][0].isnative
    # Encoding an organised cloud keeps its shape and flags NaNs as not dense.
    enc = msgs.array_to_pointcloud2_fields(pts)
    assert (enc['height'], enc['width'], enc['is_dense'], enc['is_bigendian']) == (2, 3, False,
                                                                                 False)
    back = msgs.pointcloud2_to_array(via_rclpy(PointCloud2, enc))
    np.testing.assert_array_equal(back['x'], np.arange(6.0))


def test_pointcloud2_decode_is_zero_copy_when_unpadded():
    fields = msgs.array_to_pointcloud2_fields(sample_cloud())
    rb = msgs.build_message(RB['sensor_msgs/msg/PointCloud2'], fields, header=rb_header(),
                            point_field_cls=RB['sensor_msgs/msg/PointField'])
    assert np.shares_memory(msgs.pointcloud2_to_array(rb), rb.data)


def _cloud(**over):
    fields = [SimpleNamespace(name='x', offset=0, datatype=7, count=1),
              SimpleNamespace(name='y', offset=4, datatype=7, count=1)]
    base = dict(height=1, width=2, fields=fields, is_bigendian=False, point_step=8,
                row_step=16, data=bytes(16), is_dense=True)
    base.update(over)
    return SimpleNamespace(**base)


@pytest.mark.parametrize('over, reason', [
    (dict(data=bytes(15)), 'expected row_step'),
    (dict(row_step=8), 'smaller than'),
    (dict(point_step=0), 'point_step is 0'),
    (dict(point_step=6, row_step=12, data=bytes(12)), 'does not fit'),
    (dict(fields=[]), 'no fields'),
    (dict(fields=[SimpleNamespace(name='x', offset=0, datatype=9, count=1)]),
     'unknown datatype 9'),
    (dict(fields=[SimpleNamespace(name='x', offset=0, datatype=7, count=1)] * 2), 'twice'),
    (dict(fields=[SimpleNamespace(name='', offset=0, datatype=7, count=1)]), 'needs name'),
    (dict(width=-2), '>= 0'),
])
def test_malformed_pointclouds(over, reason):
    with pytest.raises(ValueError, match=reason):
        msgs.pointcloud2_to_array(_cloud(**over))


def test_missing_pointcloud_field():
    msg = _cloud()
    del msg.row_step
    with pytest.raises(ValueError, match='no field "row_step"'):
        msgs.pointcloud2_to_array(msg)


def test_array_to_pointcloud2_rejects_unsupported():
    with pytest.raises(ValueError, match='structured'):
        msgs.array_to_pointcloud2_fields(np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match='no PointField datatype'):
        msgs.array_to_pointcloud2_fields(np.zeros(3, dtype=[('x', 'c8')]))
    with pytest.raises(ValueError, match='1-D or 2-D'):
        msgs.array_to_pointcloud2_fields(np.zeros((1, 1, 1), dtype=[('x', 'f4')]))


# ------------------------------------------------------------------------ Radar layouts

def test_nuscenes_radar_dtype_is_packed_43_bytes():
    dt = msgs.NUSCENES_RADAR_DTYPE
    assert dt.itemsize == 43
    assert dt.names[:6] == ('x', 'y', 'z', 'dyn_prop', 'id', 'rcs')
    assert dt.fields['id'][0] == np.dtype('<i2') and dt.fields['id'][1] == 13
    assert dt.fields['vy_rms'][1] == 42


def test_radar_points_from_nuscenes_and_plain_layouts():
    nus = np.zeros(3, dtype=msgs.NUSCENES_RADAR_DTYPE)
    nus['x'], nus['y'], nus['rcs'] = [10, 20, 30], [1, 2, 3], [5, 6, 7]
    nus['vx'], nus['vy'] = [0.5, 0.6, 0.7], [-1, -2, -3]
    nus['vx_comp'], nus['vy_comp'] = 99, 99  # compensated velocities must not be used
    nus['x'][1] = np.nan
    fields = msgs.array_to_pointcloud2_fields(nus)
    assert fields['point_step'] == 43 and not fields['is_dense']
    pts = msgs.radar_points_from_array(msgs.pointcloud2_to_array(via_rclpy(PointCloud2,
                                                                           fields)))
    assert pts.dtype == np.float32 and pts.shape == (2, 6)
    np.testing.assert_allclose(pts, [[10, 1, 0, 5, 0.5, -1], [30, 3, 0, 7, 0.7, -3]],
                               rtol=1e-6)
    plain = np.zeros(2, dtype=[('x', '<f8'), ('y', '<f8'), ('z', '<f8'), ('rcs', '<f4')])
    plain['x'], plain['z'], plain['rcs'] = [1, 2], [0.5, -0.5], [3, 4]
    pts = msgs.radar_points_from_array(plain)
    np.testing.assert_array_equal(pts, [[1, 0, 0.5, 3, 0, 0], [2, 0, -0.5, 4, 0, 0]])
    with pytest.raises(ValueError, match=r"lacks required fields \['z'\]"):
        msgs.radar_points_from_array(np.zeros(2, dtype=[('x', 'f4'), ('y', 'f4')]))
    with pytest.raises(ValueError, match='structured'):
        msgs.radar_points_from_array(np.zeros((2, 6)))


# ---------------------------------------------------------------------------- CameraInfo

def test_camera_info_round_trip():
    K = np.array([[1266.4, 0, 816.3], [0, 1266.4, 491.5], [0, 0, 1]])
    fields = msgs.camera_info_fields(K, 900, 1600)
    rc = via_rclpy(CameraInfo, fields)
    roi = RB['sensor_msgs/msg/RegionOfInterest'](x_offset=0, y_offset=0, height=0, width=0,
                                                  do_rectify=False)
    rb = via_rosbags_cdr(CameraInfo, 'sensor_msgs/msg/CameraInfo', fields, roi=roi)
    for msg in (rc, rb):
        K_out, h, w = msgs.camera_info_to_intrinsics(msg)
        np.testing.assert_array_equal(K_out, K)
        assert (h, w) == (900, 1600)
        np.testing.assert_array_equal(np.asarray(msg.p).reshape(3, 4)[:, :3], K)
        assert list(msg.d) == [0.0] * 5


def test_camera_info_roi_and_binning():
    K = np.array([[800.0, 0, 400.0], [0, 600.0, 300.0], [0, 0, 1]])
    msg = msgs.build_message(CameraInfo, msgs.camera_info_fields(K, 600, 800))
    msg.binning_x, msg.binning_y = 2, 2
    msg.roi.x_offset, msg.roi.y_offset, msg.roi.width, msg.roi.height = 100, 50, 400, 300
    K_out, h, w = msgs.camera_info_to_intrinsics(msg)
    np.testing.assert_allclose(K_out, [[400, 0, 150], [0, 300, 125], [0, 0, 1]])
    assert (h, w) == (150, 200)


@pytest.mark.parametrize('k, size, reason', [
    (np.zeros(9), (900, 1600), 'positive focal'),
    ([np.nan, 0, 1, 0, 1, 1, 0, 0, 1], (900, 1600), 'non-finite'),
    (np.ones(8), (900, 1600), '9 values'),
    ([1, 0, 1, 0, 1, 1, 0, 0, 1], (0, 1600), 'zero image size'),
])
def test_malformed_camera_info(k, size, reason):
    msg = SimpleNamespace(k=k, height=size[0], width=size[1])
    with pytest.raises(ValueError, match=reason):
        msgs.camera_info_to_intrinsics(msg)
    with pytest.raises(ValueError, match='no field "k"'):
        msgs.camera_info_to_intrinsics(SimpleNamespace(height=1, width=1))


def test_build_message_flavours():
    fields = msgs.array_to_image_fields(sample_image('mono8'), 'mono8')
    with pytest.raises(ValueError, match='neither'):
        msgs.build_message(dict, fields)
    with pytest.raises(ValueError, match='point_field_cls'):
        msgs.build_message(RB['sensor_msgs/msg/PointCloud2'],
                           msgs.array_to_pointcloud2_fields(sample_cloud()),
                           header=rb_header())
    # rosbags accepts bytes-like data too (converted to a uint8 array).
    rb = msgs.build_message(RB['sensor_msgs/msg/Image'], {**fields, 'data': bytes(35)},
                            header=rb_header())
    assert isinstance(rb.data, np.ndarray) and rb.data.dtype == np.uint8
