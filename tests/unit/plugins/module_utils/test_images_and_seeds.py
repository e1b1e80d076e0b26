"""Pure parts of kvm_volume: images (formats, checksums, downloads) and cloud-init seeds."""

import hashlib
import os
import re
import shutil
import struct
import subprocess

import pytest

from ansible_collections.hypervisor.kvm.plugins.module_utils import _images, _seed
from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError


def qcow2_header(size: int, backing_offset: int = 0) -> bytes:
    return b'QFI\xfb' + struct.pack('>I', 3) + struct.pack('>Q', backing_offset) + b'\0' * 8 + struct.pack('>Q', size)


def test_image_facts_detects_qcow2_and_its_virtual_size(tmp_path):
    image = tmp_path / 'disk.qcow2'
    image.write_bytes(qcow2_header(10 * 1024 ** 3) + b'\0' * 100)
    assert _images.image_facts(str(image)) == {'format': 'qcow2', 'capacity': 10 * 1024 ** 3, 'length': 132}


def test_image_facts_takes_anything_else_as_raw(tmp_path):
    image = tmp_path / 'disk.img'
    image.write_bytes(b'\1' * 4096)
    assert _images.image_facts(str(image)) == {'format': 'raw', 'capacity': 4096, 'length': 4096}


def test_image_facts_refuses_overlays_and_missing_files(tmp_path):
    image = tmp_path / 'overlay.qcow2'
    image.write_bytes(qcow2_header(1024, backing_offset=512))
    with pytest.raises(KvmError, match='overlay with a backing file'):
        _images.image_facts(str(image))
    with pytest.raises(KvmError, match='cannot read'):
        _images.image_facts(str(tmp_path / 'missing'))


def test_checksums():
    assert _images.parse_checksum(None) is None
    assert _images.parse_checksum('SHA256:ABCD') == ('sha256', 'abcd')
    for bad in ('abcd', 'sha256:', 'nope:abcd', 'sha256:xyz'):
        with pytest.raises(KvmError, match="not 'algorithm:hexdigest'"):
            _images.parse_checksum(bad)


def test_cache_path_is_stable_per_checksum_or_url(tmp_path):
    url = 'https://example.com/images/debian.qcow2?x=1'
    with_sum = _images.cache_path(url, ('sha256', 'ab' * 32), str(tmp_path))
    assert with_sum == str(tmp_path / ('ab' * 8 + '-debian.qcow2'))
    without = _images.cache_path(url, None, str(tmp_path))
    assert without == _images.cache_path(url, None, str(tmp_path)) and without.endswith('-debian.qcow2')


def test_download_verifies_the_checksum_and_leaves_nothing_on_mismatch(tmp_path):
    source = tmp_path / 'image.raw'
    source.write_bytes(b'x' * 10000)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    target = tmp_path / 'cache' / 'image.raw'
    _images.download(source.as_uri(), str(target), ('sha256', digest))
    assert target.read_bytes() == source.read_bytes()

    other = tmp_path / 'cache' / 'other.raw'
    with pytest.raises(KvmError, match='does not match'):
        _images.download(source.as_uri(), str(other), ('sha256', '0' * 64))
    assert not other.exists()
    assert sorted(p.name for p in (tmp_path / 'cache').iterdir()) == ['image.raw']  # no partial file


def test_download_failure_is_reported(tmp_path):
    with pytest.raises(KvmError, match='downloading .* failed'):
        _images.download((tmp_path / 'missing').as_uri(), str(tmp_path / 'out'), None)


def test_seed_files_render_cloud_config_and_default_instance_id():
    files = _seed.seed_files({
        'user_data': {'users': [{'name': 'debian'}], 'packages': ['nginx']},
        'meta_data': {'local-hostname': 'web1'},
        'network_config': {'version': 2},
    }, 'web1-seed.iso')
    assert files['user-data'].startswith(b'#cloud-config\n')
    import yaml
    assert yaml.safe_load(files['user-data']) == {'users': [{'name': 'debian'}], 'packages': ['nginx']}
    assert yaml.safe_load(files['meta-data']) == {'instance-id': 'web1-seed', 'local-hostname': 'web1'}
    assert yaml.safe_load(files['network-config']) == {'version': 2}


def test_seed_files_keep_strings_as_written():
    files = _seed.seed_files({'user_data': '#!/bin/sh\necho hi\n', 'meta_data': 'instance-id: x\n'}, 'seed')
    assert files == {'user-data': b'#!/bin/sh\necho hi\n', 'meta-data': b'instance-id: x\n'}


def test_seed_iso_reads_back_with_label_and_files():
    pycdlib = pytest.importorskip('pycdlib')
    files = _seed.seed_files({'user_data': {'a': 1}, 'network_config': {'version': 1}}, 's.iso')
    image = _seed.build_seed_iso(files)
    assert _seed.read_seed_iso(image) == files
    iso = pycdlib.PyCdlib()
    import io
    iso.open_fp(io.BytesIO(image))
    assert iso.pvd.volume_identifier.strip() == b'cidata'
    names = sorted(child.rock_ridge.name() for child in iso.list_children(rr_path='/') if child.rock_ridge
                   and child.rock_ridge.name() not in (b'.', b'..'))
    assert names == [b'meta-data', b'network-config', b'user-data']
    iso.close()


def test_read_seed_iso_of_something_else_is_none():
    assert _seed.read_seed_iso(b'\0' * 4096) is None


def test_seed_digest_changes_with_content():
    one = _seed.seed_files({'user_data': {'a': 1}}, 's')
    two = _seed.seed_files({'user_data': {'a': 2}}, 's')
    assert _seed.seed_digest(one) == _seed.seed_digest(dict(one))
    assert _seed.seed_digest(one) != _seed.seed_digest(two)


@pytest.mark.parametrize('fmt, name', [('vdi', 'vdi'), ('vmdk', 'vmdk'), ('vhdx', 'vhdx'), ('vpc', 'vpc (vhd)'),
                                       ('qed', 'qed')])
def test_image_facts_refuses_other_image_formats(tmp_path, fmt, name):
    qemu_img = shutil.which('qemu-img')
    if qemu_img is None:
        pytest.skip('qemu-img is not installed')
    image = tmp_path / f'disk.{fmt}'
    subprocess.run([qemu_img, 'create', '-q', '-f', fmt, str(image), '1M'], check=True)
    with pytest.raises(KvmError, match=rf'base_image.path: {image} is a {re.escape(name)} image; only qcow2 and raw'):
        _images.image_facts(str(image), 'base_image.path')


def test_image_facts_refuses_qcow_version_1(tmp_path):
    image = tmp_path / 'old.qcow'
    image.write_bytes(b'QFI\xfb' + struct.pack('>I', 1) + b'\0' * 100)
    with pytest.raises(KvmError, match='is a qcow \\(version 1\\) image'):
        _images.image_facts(str(image))


def test_secret_values_are_the_passwords_of_user_data_only():
    data = {'users': ['default', {'name': 'alice', 'hashed_passwd': '$6$salt$hash', 'ssh_authorized_keys': ['k']}],
            'password': 'top', 'chpasswd': {'list': 'root:rootpw\nbob:bobpw', 'expire': False},
            'runcmd': [['sh', '-c', 'true']]}
    assert _seed.secret_values(data) == {'$6$salt$hash', 'top', 'rootpw', 'bobpw'}
    assert _seed.secret_values('#cloud-config\npassword: hunter2\n') == {'hunter2'}
    assert _seed.secret_values('#!/bin/sh\necho password: x\n') == set()
    assert _seed.secret_values(None) == set()


def test_partial_downloads_of_killed_runs_are_removed_and_running_ones_kept(tmp_path):
    dead = subprocess.Popen(['true'])
    dead.wait()
    abandoned = tmp_path / f'.download-{dead.pid}-abc123'
    running = tmp_path / f'.download-{os.getppid()}-def456'
    mine = tmp_path / f'.download-{os.getpid()}-ghi789'
    legacy = tmp_path / '.download-xyz'
    other = tmp_path / 'image.qcow2'
    for path in (abandoned, running, mine, legacy, other):
        path.write_bytes(b'x')
    removed = _images.remove_abandoned_downloads(str(tmp_path))
    assert sorted(removed) == sorted([str(abandoned), str(legacy)])
    assert running.exists() and mine.exists() and other.exists()
