"""Message codecs: sensor_msgs Image, CompressedImage, PointCloud2, CameraInfo <-> NumPy.

Nothing here imports rclpy. Decoders are duck-typed: they read attributes (``height``,
``data``, ...) and so work on rclpy messages (``data`` is ``array.array('B')``) and on rosbags
message dataclasses (``data`` is a uint8 ``np.ndarray``) alike.

Encoders return plain field dicts without ``header``. ``data`` is a 1-D uint8 ``np.ndarray``,
which is what rosbags wants; rclpy wants ``array.array`` for ``sequence<...>`` fields, so build
messages with :func:`build_message`, which converts per flavour::

    msg = build_message(sensor_msgs.msg.Image, array_to_image_fields(rgb, 'rgb8'), header=hdr)
    msg = build_message(typestore.types['sensor_msgs/msg/Image'], fields, header=hdr)

Every malformed message raises ``ValueError`` with a one-line reason.

Also here: a PCD v0.7 binary reader/writer for nuScenes radar files
(:func:`read_radar_pcd`, :func:`write_radar_pcd`).
"""

from __future__ import annotations

import array
from collections.abc import Mapping
import dataclasses
import os

import numpy as np

from .geometry import validate_intrinsics

__all__ = [
    'IMAGE_ENCODINGS', 'image_to_array', 'image_to_rgb', 'array_to_image_fields',
    'compressed_to_rgb', 'rgb_to_compressed_fields', 'POINTFIELD_DTYPES',
    'pointcloud2_dtype', 'pointcloud2_to_array', 'array_to_pointcloud2_fields',
    'NUSCENES_RADAR_DTYPE', 'radar_points_from_array', 'camera_info_to_intrinsics',
    'camera_info_fields', 'build_message', 'read_radar_pcd', 'write_radar_pcd', 'stamp_to_ns',
]

# encoding -> (little-endian base dtype, channels)
IMAGE_ENCODINGS: dict[str, tuple[str, int]] = {
    'rgb8': ('u1', 3), 'bgr8': ('u1', 3), 'rgba8': ('u1', 4), 'bgra8': ('u1', 4),
    'mono8': ('u1', 1), 'mono16': ('<u2', 1), '16UC1': ('<u2', 1), '32FC1': ('<f4', 1),
}

# sensor_msgs/PointField datatype codes 1..8 -> little-endian dtype
POINTFIELD_DTYPES: dict[int, np.dtype] = {
    1: np.dtype('i1'), 2: np.dtype('u1'), 3: np.dtype('<i2'), 4: np.dtype('<u2'),
    5: np.dtype('<i4'), 6: np.dtype('<u4'), 7: np.dtype('<f4'), 8: np.dtype('<f8'),
}

# nuScenes radar point: 18 fields packed in 43 bytes, in the order of the devkit's
# RadarPointCloud and of the PCD header of the original files.
NUSCENES_RADAR_DTYPE = np.dtype([
    ('x', '<f4'), ('y', '<f4'), ('z', '<f4'), ('dyn_prop', 'i1'), ('id', '<i2'),
    ('rcs', '<f4'), ('vx', '<f4'), ('vy', '<f4'), ('vx_comp', '<f4'), ('vy_comp', '<f4'),
    ('is_quality_valid', 'i1'), ('ambig_state', 'i1'), ('x_rms', 'i1'), ('y_rms', 'i1'),
    ('invalid_state', 'i1'), ('pdh0', 'i1'), ('vx_rms', 'i1'), ('vy_rms', 'i1'),
])
assert NUSCENES_RADAR_DTYPE.itemsize == 43

_RADAR_COLUMNS = ('x', 'y', 'z', 'rcs', 'vx', 'vy')


def _field(msg, name: str):
    """Read a required message attribute or raise ValueError naming it."""
    try:
        return getattr(msg, name)
    except AttributeError:
        raise ValueError(f'{type(msg).__name__} has no field "{name}"') from None


def _uint(msg, name: str) -> int:
    """Read a required non-negative integer field."""
    value = _field(msg, name)
    try:
        out = int(value)
    except (TypeError, ValueError):
        raise ValueError(f'field "{name}" must be an integer, got {value!r}') from None
    if out < 0:
        raise ValueError(f'field "{name}" must be >= 0, got {out}')
    return out


def _bytes_view(data, name: str = 'data') -> np.ndarray:
    """1-D uint8 view of ``data`` (bytes, array.array, memoryview, ndarray, list of ints)."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise ValueError(f'{name} must be uint8, got {data.dtype}')
        return data.reshape(-1)
    if isinstance(data, (list, tuple)):
        return np.asarray(data, dtype=np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError) as exc:
        raise ValueError(f'{name} is not a byte buffer: {type(data).__name__}') from exc


def _native(arr: np.ndarray) -> np.ndarray:
    """Return ``arr`` in native byte order (copy only when needed)."""
    if arr.dtype.fields is None:
        return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder('='))
    if all(arr.dtype.fields[n][0].isnative for n in arr.dtype.names):
        return arr
    return arr.astype(arr.dtype.newbyteorder('='))


# --------------------------------------------------------------------------------------------
# Image
# --------------------------------------------------------------------------------------------

def image_to_array(msg) -> np.ndarray:
    """Decode a sensor_msgs/Image into ``(H, W)`` (one channel) or ``(H, W, C)``.

    Honours ``step`` row padding and ``is_bigendian``. The result is a read-only zero-copy view
    of the message buffer when the byte order is native; otherwise a converted copy.
    """
    encoding = _field(msg, 'encoding')
    if encoding not in IMAGE_ENCODINGS:
        raise ValueError(f'unsupported image encoding {encoding!r} '
                         f'(supported: {", ".join(IMAGE_ENCODINGS)})')
    height, width, step = _uint(msg, 'height'), _uint(msg, 'width'), _uint(msg, 'step')
    if height == 0 or width == 0:
        raise ValueError(f'image is empty ({height}x{width})')
    base, channels = IMAGE_ENCODINGS[encoding]
    dtype = np.dtype(base)
    if dtype.itemsize > 1 and bool(_field(msg, 'is_bigendian')):
        dtype = dtype.newbyteorder('>')
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ValueError(f'step {step} is smaller than width*channels*itemsize = {row_bytes} '
                         f'for {encoding}')
    buf = _bytes_view(_field(msg, 'data'))
    if buf.size != step * height:
        raise ValueError(f'data has {buf.size} bytes, expected step*height = {step * height}')
    arr = np.ndarray(shape=(height, width, channels), dtype=dtype, buffer=buf,
                     strides=(step, channels * dtype.itemsize, dtype.itemsize))
    arr.flags.writeable = False
    arr = _native(arr)
    return arr[:, :, 0] if channels == 1 else arr


def image_to_rgb(msg) -> np.ndarray:
    """Decode a colour or grey sensor_msgs/Image into uint8 RGB ``(H, W, 3)`` for the network.

    mono16 is reduced to its high byte. Depth encodings (16UC1, 32FC1) are rejected. For rgb8
    and rgba8 the result is a read-only view of the message buffer; other encodings give a
    new C-contiguous array.
    """
    encoding = _field(msg, 'encoding')
    if encoding in ('16UC1', '32FC1'):
        raise ValueError(f'image encoding {encoding} is a depth image, not a colour image')
    arr = image_to_array(msg)
    if encoding == 'rgb8':
        return arr
    if encoding == 'rgba8':
        return arr[:, :, :3]
    if encoding in ('bgr8', 'bgra8'):
        return _bgr_to_rgb(arr)
    if encoding == 'mono16':
        arr = (arr >> 8).astype(np.uint8)
    return np.repeat(arr[:, :, None], 3, axis=2)  # (H, W, 3)


def array_to_image_fields(arr: np.ndarray, encoding: str) -> dict:
    """Field dict (no header) of a sensor_msgs/Image holding ``arr`` in ``encoding``.

    ``arr`` is ``(H, W)`` or ``(H, W, 1)`` for one-channel encodings, ``(H, W, C)`` otherwise,
    with a dtype castable without loss to the encoding's. Output is little-endian, unpadded.
    """
    if encoding not in IMAGE_ENCODINGS:
        raise ValueError(f'unsupported image encoding {encoding!r}')
    base, channels = IMAGE_ENCODINGS[encoding]
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] != channels or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f'{encoding} needs a non-empty (H, W, {channels}) array, got '
                         f'{arr.shape}')
    dtype = np.dtype(base)
    # Integers must match exactly (no silent wrap-around); any float may become 32FC1.
    same = arr.dtype.kind == 'f' if dtype.kind == 'f' else (
        arr.dtype.newbyteorder('=') == dtype.newbyteorder('='))
    if not same:
        raise ValueError(f'{encoding} needs dtype {dtype.name}, got {arr.dtype}')
    out = np.ascontiguousarray(arr, dtype=dtype)
    height, width = out.shape[:2]
    return {
        'height': height, 'width': width, 'encoding': encoding, 'is_bigendian': 0,
        'step': width * channels * dtype.itemsize, 'data': out.reshape(-1).view(np.uint8),
    }


# --------------------------------------------------------------------------------------------
# CompressedImage
# --------------------------------------------------------------------------------------------

def compressed_to_rgb(msg) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage (jpeg or png) into uint8 RGB ``(H, W, 3)``."""
    import cv2

    fmt = str(_field(msg, 'format')).lower()
    if 'jpeg' not in fmt and 'jpg' not in fmt and 'png' not in fmt:
        raise ValueError(f'unsupported compressed format {fmt!r} (jpeg or png)')
    buf = _bytes_view(_field(msg, 'data'))
    if buf.size == 0:
        raise ValueError('compressed image has no data')
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f'could not decode {buf.size} bytes as {fmt}')
    return _bgr_to_rgb(bgr)


def _bgr_to_rgb(bgr: np.ndarray) -> np.ndarray:
    """C-contiguous RGB uint8 (H, W, 3) of BGR or BGRA uint8 (H, W, 3|4) (any row stride).

    cv2 swaps channels 40x faster than a NumPy copy of ``bgr[:, :, 2::-1]`` (0.4 vs 15 ms
    at 896x1600).
    """
    import cv2

    code = cv2.COLOR_BGRA2RGB if bgr.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(bgr, code)


def rgb_to_compressed_fields(rgb: np.ndarray, fmt: str = 'jpeg', quality: int = 90) -> dict:
    """Field dict (no header) of a CompressedImage encoding uint8 RGB ``(H, W, 3)``.

    ``format`` follows image_transport: ``'rgb8; jpeg compressed bgr8'`` style strings are
    what ROS tools write; we write the plain ``'jpeg'``/``'png'`` the nuScenes bags use.
    """
    import cv2

    fmt = fmt.lower()
    if fmt not in ('jpeg', 'png'):
        raise ValueError(f'unsupported compressed format {fmt!r} (jpeg or png)')
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or rgb.size == 0:
        raise ValueError(f'need non-empty uint8 (H, W, 3) RGB, got {rgb.dtype} {rgb.shape}')
    if fmt == 'jpeg':
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
        ok, enc = cv2.imencode('.jpg', np.ascontiguousarray(rgb[:, :, ::-1]), params)
    else:
        ok, enc = cv2.imencode('.png', np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:
        raise ValueError(f'cv2 failed to encode {fmt}')
    return {'format': fmt, 'data': enc.reshape(-1)}


# --------------------------------------------------------------------------------------------
# PointCloud2
# --------------------------------------------------------------------------------------------

def pointcloud2_dtype(fields, point_step: int, is_bigendian: bool = False) -> np.dtype:
    """Structured dtype (itemsize ``point_step``) described by a list of PointFields.

    ``fields`` items may be PointField messages or dicts with name/offset/datatype/count.
    """
    names, formats, offsets = [], [], []
    for f in fields:
        get = f.get if isinstance(f, Mapping) else (lambda k, f=f: getattr(f, k, None))
        name, offset, datatype, count = (get('name'), get('offset'), get('datatype'),
                                         get('count'))
        if not name or offset is None or datatype is None:
            raise ValueError(f'PointField needs name, offset and datatype, got {f!r}')
        datatype = int(datatype)
        if datatype not in POINTFIELD_DTYPES:
            raise ValueError(f'PointField "{name}" has unknown datatype {datatype} (1..8)')
        if name in names:
            raise ValueError(f'PointField "{name}" appears twice')
        count = 1 if count is None else int(count)
        if count < 1:
            # count 0 is legal in old drivers and means 1 element.
            count = 1
        base = POINTFIELD_DTYPES[datatype]
        if is_bigendian and base.itemsize > 1:
            base = base.newbyteorder('>')
        fmt = base if count == 1 else np.dtype((base, (count,)))
        if int(offset) < 0 or int(offset) + fmt.itemsize > point_step:
            raise ValueError(f'PointField "{name}" (offset {offset}, {fmt.itemsize} bytes) '
                             f'does not fit in point_step {point_step}')
        names.append(str(name))
        formats.append(fmt)
        offsets.append(int(offset))
    if not names:
        raise ValueError('PointCloud2 has no fields')
    return np.dtype({'names': names, 'formats': formats, 'offsets': offsets,
                     'itemsize': point_step})


def pointcloud2_to_array(msg) -> np.ndarray:
    """Decode a PointCloud2 into a 1-D structured array of ``height * width`` points.

    Field names, types and offsets come from the message's PointFields (padding kept, the
    dtype's itemsize is ``point_step``). Honours ``row_step`` padding and ``is_bigendian``.
    Zero-copy (read-only) when rows are unpadded and the byte order is native. Non-dense
    clouds keep their NaN points; :func:`radar_points_from_array` drops them.
    """
    height, width = _uint(msg, 'height'), _uint(msg, 'width')
    point_step, row_step = _uint(msg, 'point_step'), _uint(msg, 'row_step')
    if point_step == 0:
        raise ValueError('PointCloud2 point_step is 0')
    dtype = pointcloud2_dtype(_field(msg, 'fields'), point_step,
                              bool(_field(msg, 'is_bigendian')))
    if row_step < width * point_step:
        raise ValueError(f'row_step {row_step} is smaller than width*point_step = '
                         f'{width * point_step}')
    buf = _bytes_view(_field(msg, 'data'))
    if buf.size != row_step * height:
        raise ValueError(f'PointCloud2 data has {buf.size} bytes, expected row_step*height = '
                         f'{row_step * height}')
    if height * width == 0:
        return np.zeros(0, dtype=dtype)
    if row_step == width * point_step:
        arr = np.frombuffer(buf, dtype=dtype, count=height * width)
    else:
        rows = buf.reshape(height, row_step)[:, :width * point_step]
        arr = np.ascontiguousarray(rows).reshape(-1).view(dtype)
    return _native(arr)


def array_to_pointcloud2_fields(arr: np.ndarray, is_dense: bool | None = None) -> dict:
    """Field dict (no header) of a little-endian PointCloud2 holding a structured array.

    ``arr`` is ``(N,)`` (unorganised: height 1) or ``(H, W)`` (organised). Every field must be
    one of the eight PointField types, optionally a 1-D sub-array (``count > 1``). ``fields``
    is a list of dicts (name, offset, datatype, count); :func:`build_message` turns them into
    PointField messages. ``is_dense`` defaults to "no non-finite float value".
    """
    arr = np.asarray(arr)
    if arr.dtype.names is None:
        raise ValueError('PointCloud2 needs a structured array with named fields')
    if arr.ndim == 1:
        height, width = 1, arr.shape[0]
    elif arr.ndim == 2:
        height, width = arr.shape
    else:
        raise ValueError(f'PointCloud2 array must be 1-D or 2-D, got shape {arr.shape}')
    codes = {dt.newbyteorder('<'): code for code, dt in POINTFIELD_DTYPES.items()}
    fields = []
    for name in arr.dtype.names:
        fdtype, offset = arr.dtype.fields[name][:2]
        base, count = fdtype, 1
        if fdtype.subdtype is not None:
            base, shape = fdtype.subdtype
            if len(shape) != 1:
                raise ValueError(f'field "{name}" has a multi-dimensional shape {shape}')
            count = shape[0]
        code = codes.get(base.newbyteorder('<'))
        if code is None:
            raise ValueError(f'field "{name}" has dtype {base} with no PointField datatype')
        fields.append({'name': name, 'offset': int(offset), 'datatype': code, 'count': count})
    little = arr.astype(arr.dtype.newbyteorder('<'))
    if is_dense is None:
        is_dense = True
        for name in arr.dtype.names:
            if arr.dtype.fields[name][0].base.kind == 'f' and not np.all(
                    np.isfinite(arr[name])):
                is_dense = False
                break
    point_step = arr.dtype.itemsize
    data = np.ascontiguousarray(little).reshape(-1).view(np.uint8)
    return {
        'height': height, 'width': width, 'fields': fields, 'is_bigendian': False,
        'point_step': point_step, 'row_step': point_step * width, 'data': data,
        'is_dense': bool(is_dense),
    }


def radar_points_from_array(points: np.ndarray) -> np.ndarray:
    """Radar points float32 ``(N, 6)`` ``[x, y, z, rcs, vx, vy]`` from a structured array.

    Accepts the nuScenes 43-byte layout (``vx``/``vy`` are the raw radar-frame velocities, not
    ``vx_comp``) and plain x/y/z[+rcs, vx, vy] clouds; missing optional fields become 0.
    Points with any non-finite value are dropped.
    """
    points = np.asarray(points)
    names = points.dtype.names
    if names is None:
        raise ValueError('radar cloud must be a structured array with named fields')
    missing = [n for n in ('x', 'y', 'z') if n not in names]
    if missing:
        raise ValueError(f'radar cloud lacks required fields {missing}')
    points = points.reshape(-1)
    out = np.zeros((points.shape[0], 6), dtype=np.float32)  # (N, 6)
    for col, name in enumerate(_RADAR_COLUMNS):
        if name in names:
            if points.dtype.fields[name][0].shape != ():
                raise ValueError(f'radar field "{name}" must be a scalar, not a sub-array')
            out[:, col] = points[name]
    return out[np.isfinite(out).all(axis=1)]


# --------------------------------------------------------------------------------------------
# CameraInfo
# --------------------------------------------------------------------------------------------

def camera_info_to_intrinsics(msg) -> tuple[np.ndarray, int, int]:
    """``(K (3, 3) float64, height, width)`` of a sensor_msgs/CameraInfo.

    Binning and a region of interest, when set, are applied as image_geometry does (offset by
    the ROI, then divide by the binning), so K matches the images actually published.
    """
    height, width = _uint(msg, 'height'), _uint(msg, 'width')
    if height == 0 or width == 0:
        raise ValueError(f'camera_info has zero image size ({height}x{width})')
    k = np.asarray(_field(msg, 'k'), dtype=np.float64)
    if k.size != 9:
        raise ValueError(f'camera_info k must have 9 values, got {k.size}')
    K = validate_intrinsics(k.reshape(3, 3)).copy()
    bin_x = getattr(msg, 'binning_x', 0) or 1
    bin_y = getattr(msg, 'binning_y', 0) or 1
    roi = getattr(msg, 'roi', None)
    if roi is not None and int(getattr(roi, 'width', 0)) > 0 and int(
            getattr(roi, 'height', 0)) > 0:
        K[0, 2] -= int(roi.x_offset)
        K[1, 2] -= int(roi.y_offset)
        width, height = int(roi.width), int(roi.height)
    if bin_x > 1 or bin_y > 1:
        K[0, :] /= bin_x
        K[1, :] /= bin_y
        width, height = width // bin_x, height // bin_y
    return K, height, width


def camera_info_fields(K, height: int, width: int, distortion_model: str = 'plumb_bob',
                       D=None) -> dict:
    """Field dict (no header, no roi) of a CameraInfo for a rectified pinhole ``K``.

    ``d`` defaults to five zeros, ``r`` is identity and ``p`` is ``[K | 0]``.
    """
    K = validate_intrinsics(K)
    if int(height) <= 0 or int(width) <= 0:
        raise ValueError(f'camera_info needs a positive image size, got {height}x{width}')
    d = np.zeros(5) if D is None else np.asarray(D, dtype=np.float64).reshape(-1)
    P = np.zeros((3, 4))
    P[:, :3] = K
    return {
        'height': int(height), 'width': int(width), 'distortion_model': distortion_model,
        'd': d.astype(np.float64), 'k': K.reshape(-1).copy(), 'r': np.eye(3).reshape(-1),
        'p': P.reshape(-1), 'binning_x': 0, 'binning_y': 0,
    }


# --------------------------------------------------------------------------------------------
# Building messages of either flavour
# --------------------------------------------------------------------------------------------

_ARRAY_TYPECODES = {
    'uint8': 'B', 'octet': 'B', 'int8': 'b', 'uint16': 'H', 'int16': 'h', 'uint32': 'I',
    'int32': 'i', 'uint64': 'Q', 'int64': 'q', 'float': 'f', 'double': 'd',
}


def build_message(msg_cls, fields: Mapping, point_field_cls=None, **extra):
    """Construct ``msg_cls(**fields, **extra)`` for rclpy or rosbags message classes.

    - rosbags classes (dataclasses) take NumPy arrays as they are; every field must be given,
      so pass ``header=...`` (and ``roi=...`` for CameraInfo) in ``extra``.
    - rclpy classes want ``array.array`` for ``sequence<...>`` fields: NumPy values of such
      fields are converted (one memory copy); fixed-size arrays take NumPy arrays directly.
    - PointCloud2 ``fields`` given as dicts become ``point_field_cls(**dict)``; for rclpy,
      ``point_field_cls`` defaults to ``sensor_msgs.msg.PointField``.
    """
    kwargs = dict(fields)
    kwargs.update(extra)
    is_rclpy = hasattr(msg_cls, 'get_fields_and_field_types')
    if not is_rclpy and not dataclasses.is_dataclass(msg_cls):
        raise ValueError(f'{msg_cls!r} is neither an rclpy nor a rosbags message class')
    if kwargs.get('fields') and isinstance(kwargs['fields'][0], Mapping):
        if point_field_cls is None:
            if not is_rclpy:
                raise ValueError('rosbags PointCloud2 needs point_field_cls')
            import importlib
            point_field_cls = importlib.import_module('sensor_msgs.msg').PointField
        kwargs['fields'] = [point_field_cls(**f) for f in kwargs['fields']]
    if is_rclpy:
        types = msg_cls.get_fields_and_field_types()
        for key, value in kwargs.items():
            spec = types.get(key, '')
            if isinstance(value, np.ndarray) and spec.startswith('sequence<'):
                code = _ARRAY_TYPECODES.get(spec[len('sequence<'):].split(',')[0].rstrip('>'))
                if code is None:
                    raise ValueError(f'cannot convert field "{key}" of type {spec}')
                converted = array.array(code)
                # frombytes reads the array's bytes in place: one copy, not two via tobytes.
                converted.frombytes(np.ascontiguousarray(
                    value, dtype=np.dtype(code).newbyteorder('=')).reshape(-1).view(np.uint8))
                kwargs[key] = converted
            elif spec == 'boolean':
                kwargs[key] = bool(value)
    else:
        for key, value in kwargs.items():
            if isinstance(value, (bytes, bytearray, memoryview, array.array)):
                kwargs[key] = np.frombuffer(value, dtype=np.uint8).copy()
    return msg_cls(**kwargs)


# --------------------------------------------------------------------------------------------
# PCD v0.7 (nuScenes radar files)
# --------------------------------------------------------------------------------------------

_PCD_TYPES = {('F', 4): '<f4', ('F', 8): '<f8', ('I', 1): 'i1', ('I', 2): '<i2',
              ('I', 4): '<i4', ('I', 8): '<i8', ('U', 1): 'u1', ('U', 2): '<u2',
              ('U', 4): '<u4', ('U', 8): '<u8'}


def read_radar_pcd(path: str | os.PathLike) -> np.ndarray:
    """Read a PCD v0.7 ``DATA binary`` file into a packed 1-D structured array.

    nuScenes radar files give :data:`NUSCENES_RADAR_DTYPE`. As in the devkit, a first point
    with a NaN marks an empty cloud; trailing bytes after the points (nuScenes pads its files)
    are ignored.
    """
    with open(path, 'rb') as f:
        raw = f.read()
    header: dict[str, list[str]] = {}
    pos = 0
    while True:
        end = raw.find(b'\n', pos)
        if end < 0:
            raise ValueError(f'{os.fspath(path)}: PCD header has no DATA line')
        line = raw[pos:end].decode('ascii', errors='replace').strip()
        pos = end + 1
        if not line or line.startswith('#'):
            continue
        key, *values = line.split()
        header[key.upper()] = values
        if key.upper() == 'DATA':
            break
    for key in ('FIELDS', 'SIZE', 'TYPE', 'WIDTH', 'HEIGHT'):
        if key not in header:
            raise ValueError(f'{os.fspath(path)}: PCD header lacks {key}')
    if header['DATA'] != ['binary']:
        raise ValueError(f'{os.fspath(path)}: only DATA binary is supported, got '
                         f'{" ".join(header["DATA"])}')
    names, sizes, types = header['FIELDS'], header['SIZE'], header['TYPE']
    counts = header.get('COUNT', ['1'] * len(names))
    if not len(names) == len(sizes) == len(types) == len(counts):
        raise ValueError(f'{os.fspath(path)}: FIELDS/SIZE/TYPE/COUNT lengths differ')
    formats = []
    for name, size, typ, count in zip(names, sizes, types, counts):
        fmt = _PCD_TYPES.get((typ, int(size)))
        if fmt is None or int(count) < 1:
            raise ValueError(f'{os.fspath(path)}: unsupported field {name} {typ}{size}x{count}')
        formats.append((name, fmt) if int(count) == 1 else (name, fmt, (int(count),)))
    dtype = np.dtype(formats)
    n = int(header['WIDTH'][0]) * int(header['HEIGHT'][0])
    if 'POINTS' in header and int(header['POINTS'][0]) != n:
        raise ValueError(f'{os.fspath(path)}: POINTS {header["POINTS"][0]} != WIDTH*HEIGHT {n}')
    if len(raw) - pos < n * dtype.itemsize:
        raise ValueError(f'{os.fspath(path)}: {len(raw) - pos} data bytes, need '
                         f'{n * dtype.itemsize} for {n} points')
    arr = np.frombuffer(raw, dtype=dtype, count=n, offset=pos).copy()
    if n and any(dtype.fields[k][0].kind == 'f' and np.any(np.isnan(arr[k][0]))
                 for k in dtype.names):
        return arr[:0]
    return arr


def write_radar_pcd(path: str | os.PathLike, points: np.ndarray) -> None:
    """Write a packed structured array as a nuScenes-style PCD v0.7 ``DATA binary`` file.

    The header has the line order the devkit's ``RadarPointCloud.from_file`` expects. An empty
    array is written as one all-NaN point (the devkit's empty-cloud marker), and one zero byte
    follows the points because the devkit's reader requires data past the last field.
    """
    points = np.asarray(points).reshape(-1)
    dtype = points.dtype
    if dtype.names is None:
        raise ValueError('write_radar_pcd needs a structured array')
    kinds = {'f': 'F', 'i': 'I', 'u': 'U'}
    sizes, types, counts = [], [], []
    for name in dtype.names:
        fdtype = dtype.fields[name][0]
        base, shape = (fdtype.subdtype if fdtype.subdtype else (fdtype, ()))
        if base.kind not in kinds or (base.kind == 'f' and base.itemsize not in (4, 8)):
            raise ValueError(f'field "{name}" has dtype {base} not writable to PCD')
        sizes.append(str(base.itemsize))
        types.append(kinds[base.kind])
        counts.append(str(int(np.prod(shape)) if shape else 1))
    packed = np.dtype([(n, dtype.fields[n][0].newbyteorder('<')) for n in dtype.names])
    data = np.zeros(len(points), dtype=packed)
    for name in dtype.names:
        data[name] = points[name]
    if len(data) == 0:
        data = np.zeros(1, dtype=packed)
        for name in dtype.names:
            if packed.fields[name][0].kind == 'f':
                data[name] = np.nan
    header = '\n'.join([
        '# .PCD v0.7 - Point Cloud Data file format', 'VERSION 0.7',
        'FIELDS ' + ' '.join(dtype.names), 'SIZE ' + ' '.join(sizes),
        'TYPE ' + ' '.join(types), 'COUNT ' + ' '.join(counts), f'WIDTH {len(data)}',
        'HEIGHT 1', 'VIEWPOINT 0 0 0 1 0 0 0', f'POINTS {len(data)}', 'DATA binary', '',
    ])
    with open(path, 'wb') as f:
        f.write(header.encode('ascii'))
        f.write(data.tobytes())
        f.write(b'\x00')


def stamp_to_ns(stamp) -> int:
    """Integer nanoseconds of a builtin_interfaces/Time-like object (``sec``, ``nanosec``)."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
