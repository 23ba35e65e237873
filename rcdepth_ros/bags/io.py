"""rosbag2 (MCAP, CDR) reading and writing with ``rosbags``: no ROS install needed.

Bags are written in rosbag2 metadata version 8: the newest that ROS 2 Humble still reads
(version 9 stores QoS profiles as YAML lists, which Humble's reader cannot parse), and that
Jazzy and Kilted read as well. Type names, message definitions and RIHS01 type hashes come
from the ``rosbags`` Kilted typestore (:data:`TYPESTORE`).

:func:`open_writer` never leaves a half-written bag under the final name: it writes into a
sibling staging folder ``<path>.partial`` and renames the finished bag into place.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
import contextlib
import os
from pathlib import Path
import shutil
from typing import Any

from rosbags.interfaces import (
    Connection,
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from ..errors import BadArgument, BadInputFile, MissingData

__all__ = [
    'BAG_VERSION', 'TYPESTORE', 'open_writer', 'read_messages', 'deserialize', 'serialize',
    'bag_topics', 'bag_qos', 'is_bag', 'qos_profile', 'header', 'time_msg', 'add_topic',
]

# rosbag2 metadata version written (see the module docstring for why 8).
BAG_VERSION = 8
TYPESTORE = get_typestore(Stores.ROS2_KILTED)

# 0 s = the RMW default (no deadline, infinite lifespan and lease), what rosbag2 expects.
_DEFAULT_TIME = QosTime(sec=0, nsec=0)


def qos_profile(transient_local: bool = False, depth: int = 10) -> Qos:
    """Offered QoS recorded for a topic: reliable, keep-last; latched when ``transient_local``.

    ``ros2 bag play`` adapts its publishers to the recorded profiles, so a transient-local
    ``/tf_static`` is replayed latched.
    """
    return Qos(
        history=QosHistory.KEEP_LAST, depth=int(depth), reliability=QosReliability.RELIABLE,
        durability=QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE,
        deadline=_DEFAULT_TIME, lifespan=_DEFAULT_TIME, liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=_DEFAULT_TIME, avoid_ros_namespace_conventions=False)


def is_bag(path: str | os.PathLike[str]) -> bool:
    """Tell whether ``path`` is a rosbag2 directory (it holds a ``metadata.yaml``)."""
    return (Path(path) / 'metadata.yaml').is_file()


def _check_bag(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if not path.exists():
        raise MissingData(f'bag not found: {path}')
    if not is_bag(path):
        raise BadInputFile(f'{path} is not a rosbag2 directory (no metadata.yaml)')
    return path


@contextlib.contextmanager
def _reader(path: str | os.PathLike[str]) -> Iterator[Reader]:
    path = _check_bag(path)
    try:
        reader = Reader(path)
        reader.open()
    except ReaderError as exc:
        raise BadInputFile(f'cannot read bag {path}: {exc}') from None
    try:
        yield reader
    finally:
        reader.close()


@contextlib.contextmanager
def open_writer(path: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Writer]:
    """Open an MCAP bag for writing at ``path``; it appears there only if the block succeeds.

    The bag is written to ``<path>.partial/<name>`` and renamed to ``path`` on success; on
    any error the staging folder is removed and an existing bag at ``path`` is left as it
    was. An existing ``path`` is refused (ValueError) unless ``overwrite``; even then only a
    rosbag2 directory is replaced, and only after the new bag is complete. Extra files (a
    calibration sidecar) may be written into ``writer.path`` inside the block.
    """
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise BadArgument(f'{path} already exists (use --overwrite to replace it)')
        if not is_bag(path):
            raise BadArgument(f'{path} exists and is not a rosbag2 directory; refusing to '
                              'replace it')
    if not path.parent.is_dir():
        raise MissingData(f'output folder does not exist: {path.parent}')
    staging = path.with_name(path.name + '.partial')
    if staging.exists():  # left behind by a killed run: ours by name
        shutil.rmtree(staging)
    staging.mkdir()
    writer = Writer(staging / path.name, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP)
    try:
        writer.open()
        yield writer
        writer.close()
        _swap_into_place(staging / path.name, path)
    except BaseException:
        if writer.storage is not None:
            writer.abort()
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _swap_into_place(new: Path, path: Path) -> None:
    """Rename the finished bag ``new`` to ``path``, replacing an existing bag there."""
    if not path.exists():
        os.replace(new, path)
        return
    old = path.with_name(path.name + '.old')
    if old.exists():
        shutil.rmtree(old)
    os.replace(path, old)
    try:
        os.replace(new, path)
    except BaseException:
        os.replace(old, path)  # put the previous bag back
        raise
    shutil.rmtree(old)


def add_topic(writer: Writer, topic: str, msgtype: str, latched: bool = False) -> Connection:
    """Register ``topic`` of ``msgtype`` with the Kilted definition, hash and offered QoS."""
    return writer.add_connection(topic, msgtype, typestore=TYPESTORE,
                                 offered_qos_profiles=[qos_profile(transient_local=latched,
                                                                   depth=1 if latched else 10)])


def read_messages(path: str | os.PathLike[str], topics: Iterable[str] | None = None,
                  ) -> Iterator[tuple[str, str, int, bytes]]:
    """Yield ``(topic, msgtype, timestamp_ns, rawdata)`` in log-time order.

    ``topics`` restricts to those topics (all when None); naming a topic that is not in the
    bag is a ValueError.
    """
    with _reader(path) as reader:
        connections = reader.connections
        if topics is not None:
            wanted = set(topics)
            missing = sorted(wanted - {c.topic for c in connections})
            if missing:
                raise BadArgument(f'topics not in bag {path}: {", ".join(missing)}')
            connections = [c for c in connections if c.topic in wanted]
            if not connections:
                return
        for connection, timestamp, raw in reader.messages(connections=connections):
            yield connection.topic, connection.msgtype, int(timestamp), raw


def deserialize(raw: bytes, msgtype: str) -> Any:
    """Deserialise CDR bytes into a rosbags message object of ``msgtype``."""
    return TYPESTORE.deserialize_cdr(raw, msgtype)


def serialize(msg: Any, msgtype: str) -> bytes:
    """Serialise a rosbags message object of ``msgtype`` to CDR bytes."""
    return bytes(TYPESTORE.serialize_cdr(msg, msgtype))


def bag_topics(path: str | os.PathLike[str]) -> dict[str, tuple[str, int]]:
    """``{topic: (msgtype, message count)}`` of a bag, from its metadata."""
    with _reader(path) as reader:
        return {name: (info.msgtype or '', int(info.msgcount))
                for name, info in reader.topics.items()}


def bag_qos(path: str | os.PathLike[str]) -> dict[str, list[Qos]]:
    """``{topic: offered QoS profiles}`` recorded in a bag's metadata."""
    out: dict[str, list[Qos]] = {}
    with _reader(path) as reader:
        for connection in reader.connections:
            out.setdefault(connection.topic, []).extend(
                getattr(connection.ext, 'offered_qos_profiles', []))
    return out


def time_msg(stamp_ns: int) -> Any:
    """``builtin_interfaces/Time`` (rosbags) of integer nanoseconds."""
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return TYPESTORE.types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec)


def header(stamp_ns: int, frame_id: str) -> Any:
    """``std_msgs/Header`` (rosbags) of a stamp and frame."""
    return TYPESTORE.types['std_msgs/msg/Header'](stamp=time_msg(stamp_ns), frame_id=frame_id)
