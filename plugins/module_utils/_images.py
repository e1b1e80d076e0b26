# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image files on the managed host: format and size from the header, checksums, downloads
kept in a cache."""

from __future__ import annotations

import hashlib
import os
import re
import struct
import tempfile
from urllib.parse import urlsplit

from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError

QCOW2_MAGIC = b'QFI\xfb'
CHUNK = 4 * 1024 * 1024


# Image formats libvirt volumes here are not made of: (offset, magic, name). QEMU's own probes.
OTHER_FORMATS = (
    (0, b'KDMV', 'vmdk'), (0, b'# Disk DescriptorFile', 'vmdk'), (0x40, b'\x7f\x10\xda\xbe', 'vdi'),
    (0, b'vhdxfile', 'vhdx'), (0, b'conectix', 'vpc (vhd)'), (0, b'QED\x00', 'qed'),
    (0, b'WithoutFreeSpace', 'parallels'), (0, b'WithouFreSpacExt', 'parallels'), (0, b'LUKS\xba\xbe', 'luks'),
    (0, b'Bochs Virtual HD Image', 'bochs'), (0, b'#!/bin/sh\n#V2.0 Format', 'cloop'),
)


def image_facts(path: str, option: str = 'upload_from') -> dict:
    """Format and virtual size of a local image file: qcow2 (version 2 or 3) from its header, raw
    otherwise. Another known image format fails, naming ``option``: it would be taken as raw."""
    try:
        with open(path, 'rb') as image:
            header = image.read(512)
    except OSError as err:
        raise KvmError(f'{option}: cannot read {path}: {err.strerror}') from None
    for offset, magic, name in OTHER_FORMATS:
        if header[offset:offset + len(magic)] == magic:
            raise KvmError(f'{option}: {path} is a {name} image; only qcow2 and raw images are used '
                           f'(convert it first: qemu-img convert -O qcow2 {path} <new>.qcow2)')
    if header[:4] == QCOW2_MAGIC and struct.unpack('>I', header[4:8])[0] == 1:
        raise KvmError(f'{option}: {path} is a qcow (version 1) image; only qcow2 and raw images are used '
                       f'(convert it first: qemu-img convert -O qcow2 {path} <new>.qcow2)')
    if header[:4] == QCOW2_MAGIC:
        backing_offset, = struct.unpack('>Q', header[8:16])
        if backing_offset:
            raise KvmError(f'{option}: {path} is a qcow2 overlay with a backing file; upload a standalone image')
        size, = struct.unpack('>Q', header[24:32])
        return {'format': 'qcow2', 'capacity': size, 'length': os.path.getsize(path)}
    size = os.path.getsize(path)
    return {'format': 'raw', 'capacity': size, 'length': size}


def parse_checksum(checksum: str | None):
    """``sha256:<hex>`` -> (algorithm, hex); None when not given."""
    if not checksum:
        return None
    algorithm, _sep, digest = checksum.partition(':')
    algorithm = algorithm.lower()
    if not digest or algorithm not in hashlib.algorithms_guaranteed or not re.fullmatch('[0-9a-fA-F]+', digest):
        raise KvmError(f"checksum: {checksum!r} is not 'algorithm:hexdigest' (e.g. 'sha256:9f86d0...'); "
                       f"algorithms: {', '.join(sorted(a for a in hashlib.algorithms_guaranteed if 'shake' not in a))}")
    return algorithm, digest.lower()


def file_digest(path: str, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(CHUNK), b''):
            digest.update(block)
    return digest.hexdigest()


def is_url(source: str) -> bool:
    return urlsplit(source).scheme in ('http', 'https', 'ftp', 'file')


def default_cache_dir() -> str:
    if os.geteuid() == 0:
        return '/var/cache/hypervisor.kvm/images'
    return os.path.join(os.path.expanduser('~'), '.cache', 'hypervisor.kvm', 'images')


def cache_path(url: str, checksum, cache_dir: str) -> str:
    """Where a download is kept: named after its checksum (or its URL), so it is fetched once."""
    name = os.path.basename(urlsplit(url).path) or 'image'
    key = checksum[1][:16] if checksum else hashlib.sha256(url.encode()).hexdigest()[:16]
    return os.path.join(cache_dir, f'{key}-{name}')


def remove_abandoned_downloads(directory: str) -> list:
    """Delete the partial downloads (``.download-<pid>-*``) of runs that were killed: those whose
    process no longer runs. A download of a run still going on is left alone. Returns the paths."""
    removed = []
    for name in os.listdir(directory):
        if not name.startswith('.download-'):
            continue
        pid = name.split('-')[1]
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                os.kill(int(pid), 0)
                continue  # still running (or not ours to judge)
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
        elif pid.isdigit():
            continue  # this very run's
        path = os.path.join(directory, name)
        try:
            os.unlink(path)
            removed.append(path)
        except OSError:
            pass
    return removed


def download(url: str, destination: str, checksum, timeout: int = 60) -> None:
    """Fetch ``url`` into ``destination`` (atomically), verifying ``checksum`` on the way."""
    from ansible.module_utils.urls import open_url  # pylint: disable=import-outside-toplevel

    directory = os.path.dirname(destination)
    os.makedirs(directory, exist_ok=True)
    remove_abandoned_downloads(directory)
    digest = hashlib.new(checksum[0]) if checksum else None
    fd, partial = tempfile.mkstemp(dir=directory, prefix=f'.download-{os.getpid()}-')
    try:
        with os.fdopen(fd, 'wb') as out:
            try:
                response = open_url(url, timeout=timeout)
            except Exception as err:  # urllib raises many kinds; all mean "could not fetch"
                raise KvmError(f'upload_from: downloading {url} failed: {err}') from None
            for block in iter(lambda: response.read(CHUNK), b''):
                out.write(block)
                if digest:
                    digest.update(block)
        if digest and digest.hexdigest() != checksum[1]:
            raise KvmError(f'upload_from: the checksum of {url} does not match: expected '
                           f'{checksum[0]}:{checksum[1]}, got {checksum[0]}:{digest.hexdigest()}')
        os.replace(partial, destination)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
