"""kvm_volume planning and libvirt calls against test:///default (the test driver has no
resize, wipe or streams: those are covered by the integration target)."""

import pytest

from ansible_collections.hypervisor.kvm.plugins.modules import kvm_pool_info, kvm_volume

RUN_WITH_DIFF = True  # these tests read the diff (test_diff_mode.py checks runs without it)

URI = 'test:///default'
POOL = 'default-pool'


PUBLIC_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl user@host'


def vol(**args):
    return {'uri': URI, 'pool': POOL, **args}


def volumes(conn):
    return sorted(conn.storagePoolLookupByName(POOL).listVolumes())


def test_empty_volume_check_mode_then_real_then_idempotent(conn, run_module):
    check = run_module(kvm_volume.main, vol(name='disk.qcow2', capacity='10MiB'), check_mode=True)
    assert check['changed'] and check['actions'] == ['create'] and volumes(conn) == []
    assert check['volume']['format'] == 'qcow2' and check['volume']['capacity'] == 10 * 1024 ** 2
    assert check['diff']['before'] == '' and '<capacity unit="bytes">10485760</capacity>' in check['diff']['after']

    first = run_module(kvm_volume.main, vol(name='disk.qcow2', capacity='10MiB'))
    assert first['actions'] == ['create'] and volumes(conn) == ['disk.qcow2']
    assert first['volume']['path'] == '/default-pool/disk.qcow2' and first['volume']['format'] == 'qcow2'
    assert first['restart_required'] is False
    second = run_module(kvm_volume.main, vol(name='disk.qcow2', capacity='10MiB'))
    assert not second['changed'] and second['actions'] == []
    assert run_module(kvm_volume.main, vol(name='disk.qcow2', capacity=10 * 1024 ** 2))['changed'] is False


def test_overlay_on_a_base(conn, run_module):
    run_module(kvm_volume.main, vol(name='base.qcow2', capacity='1GiB'))
    check = run_module(kvm_volume.main, vol(name='web1.qcow2', backing_volume='base.qcow2', capacity='2GiB'),
                       check_mode=True)
    assert check['volume']['backing_store'] == {'path': '/default-pool/base.qcow2', 'format': 'qcow2'}
    result = run_module(kvm_volume.main, vol(name='web1.qcow2', backing_volume='base.qcow2', capacity='2GiB'))
    assert result['actions'] == ['create']
    assert result['volume']['backing_store'] == check['volume']['backing_store']
    assert result['volume']['capacity'] == 2 * 1024 ** 3
    again = run_module(kvm_volume.main, vol(name='web1.qcow2', backing_volume='base.qcow2', capacity='2GiB'))
    assert not again['changed']


def test_overlay_defaults_to_the_base_size_and_refuses_smaller(conn, run_module):
    run_module(kvm_volume.main, vol(name='base.qcow2', capacity='1GiB'))
    result = run_module(kvm_volume.main, vol(name='o.qcow2', backing_volume='base.qcow2'))
    assert result['volume']['capacity'] == 1024 ** 3
    failed = run_module(kvm_volume.main, vol(name='p.qcow2', backing_volume='base.qcow2', capacity='1MiB'))
    assert failed['failed'] and 'smaller than the backing volume' in failed['msg']
    assert 'p.qcow2' not in volumes(conn)


def test_overlay_with_another_backing_is_kept_with_a_warning(conn, run_module):
    run_module(kvm_volume.main, vol(name='a.qcow2', capacity='1MiB'))
    run_module(kvm_volume.main, vol(name='b.qcow2', capacity='1MiB'))
    run_module(kvm_volume.main, vol(name='o.qcow2', backing_volume='a.qcow2'))
    result = run_module(kvm_volume.main, vol(name='o.qcow2', backing_volume='b.qcow2'))
    assert not result['changed'] and 'recreate: true' in str(result['warnings'])


def test_clone(conn, run_module):
    run_module(kvm_volume.main, vol(name='base.qcow2', capacity='1MiB'))
    result = run_module(kvm_volume.main, vol(name='copy.raw', clone_from='base.qcow2', format='raw'))
    assert result['actions'] == ['clone'] and result['volume']['format'] == 'raw'
    assert not run_module(kvm_volume.main, vol(name='copy.raw', clone_from='base.qcow2'))['changed']
    check = run_module(kvm_volume.main, vol(name='big.qcow2', clone_from='base.qcow2', capacity='2MiB'),
                       check_mode=True)
    assert check['actions'] == ['clone', 'resize'] and check['volume']['capacity'] == 2 * 1024 ** 2


def test_grow_is_planned_and_shrink_refused(conn, run_module):
    run_module(kvm_volume.main, vol(name='disk.qcow2', capacity='10MiB'))
    grow = run_module(kvm_volume.main, vol(name='disk.qcow2', capacity='20MiB'), check_mode=True)
    assert grow['actions'] == ['resize'] and grow['volume']['capacity'] == 20 * 1024 ** 2
    assert '-  <capacity unit="bytes">10485760</capacity>' not in grow['diff']['after']
    shrink = run_module(kvm_volume.main, vol(name='disk.qcow2', capacity='5MiB'))
    assert shrink['failed'] and 'allow_shrink: true' in shrink['msg']
    allowed = run_module(kvm_volume.main, vol(name='disk.qcow2', capacity='5MiB', allow_shrink=True), check_mode=True)
    assert allowed['actions'] == ['resize']
    vol_handle = conn.storagePoolLookupByName(POOL).storageVolLookupByName('disk.qcow2')
    assert vol_handle.info()[1] == 10 * 1024 ** 2


def test_recreate_replaces_content_only_when_asked(conn, run_module):
    run_module(kvm_volume.main, vol(name='a.qcow2', capacity='1MiB'))
    run_module(kvm_volume.main, vol(name='b.qcow2', capacity='2MiB'))
    run_module(kvm_volume.main, vol(name='c.qcow2', clone_from='a.qcow2'))
    kept = run_module(kvm_volume.main, vol(name='c.qcow2', clone_from='b.qcow2'))
    assert not kept['changed']
    replaced = run_module(kvm_volume.main, vol(name='c.qcow2', clone_from='b.qcow2', recreate=True))
    assert replaced['actions'] == ['delete', 'clone'] and replaced['volume']['capacity'] == 2 * 1024 ** 2


def test_absent(conn, run_module):
    run_module(kvm_volume.main, vol(name='disk.qcow2', capacity='1MiB'))
    check = run_module(kvm_volume.main, vol(name='disk.qcow2', state='absent'), check_mode=True)
    assert check['actions'] == ['delete'] and volumes(conn) == ['disk.qcow2']
    assert check['volume'] == {'name': 'disk.qcow2', 'pool': POOL, 'state': 'absent'}
    assert run_module(kvm_volume.main, vol(name='disk.qcow2', state='absent', wipe=True),
                      check_mode=True)['actions'] == ['wipe', 'delete']
    result = run_module(kvm_volume.main, vol(name='disk.qcow2', state='absent'))
    assert result['actions'] == ['delete'] and volumes(conn) == []
    assert not run_module(kvm_volume.main, vol(name='disk.qcow2', state='absent'))['changed']
    assert not run_module(kvm_volume.main, vol(name='x', pool='kvmtest-no-pool', state='absent'))['changed']


def test_seed_creation_is_planned(conn, run_module):
    pytest.importorskip('pycdlib')
    result = run_module(kvm_volume.main, vol(name='seed.iso', cloud_init={'user_data': {'users': ['default']}}),
                        check_mode=True)
    assert result['actions'] == ['create', 'upload'] and result['diff']['after'].startswith('content: sha256:')


def test_xml_volume(conn, run_module):
    xml = "<volume><name>x.raw</name><capacity unit='MiB'>3</capacity><target><format type='raw'/></target></volume>"
    result = run_module(kvm_volume.main, vol(xml=xml))
    assert result['actions'] == ['create'] and result['volume']['capacity'] == 3 * 1024 ** 2
    assert not run_module(kvm_volume.main, vol(xml=xml))['changed']


@pytest.mark.parametrize('args, words', [
    ({'name': 'v'}, ['capacity: required']),
    ({'name': 'v', 'capacity': 'huge'}, ['capacity: cannot read']),
    ({'name': 'v', 'pool': 'kvmtest-no-pool', 'capacity': '1M'}, ["storage pool 'kvmtest-no-pool' does not exist"]),
    ({'name': 'v', 'backing_volume': 'missing.qcow2'}, ["backing_volume: no volume 'missing.qcow2'"]),
    ({'name': 'v', 'backing_volume': 'b', 'backing_pool': 'kvmtest-no-pool'}, ['backing_pool', 'does not exist']),
    ({'name': 'v', 'backing_volume': 'b', 'format': 'raw'}, ['overlay is a qcow2 volume']),
    ({'name': 'v', 'clone_from': 'missing'}, ["clone_from: no volume 'missing'"]),
    ({'name': 'v', 'upload_from': '/nonexistent/image.qcow2'}, ['is not a file on the managed host']),
    ({'name': 'v', 'upload_from': '/etc/hostname', 'checksum': 'md5:00'}, ['checksum of /etc/hostname does not match']),
    ({'name': 'v', 'upload_from': '/etc/hostname', 'checksum': 'bogus'}, ["not 'algorithm:hexdigest'"]),
    ({'name': 'v', 'cloud_init': {'user_data': '#cloud-config\n{}'}, 'format': 'qcow2'}, ['seed is a raw ISO']),
    ({'name': 'v', 'cloud_init': {'user_data': 'users: []'}},
     ["cloud_init.user_data: a user-data string must start with '#cloud-config'"]),
    ({'name': 'v', 'cloud_init': {'user_data': '#cloud-config\nusers: [a\n'}},
     ['cloud_init.user_data: the #cloud-config is not valid YAML']),
    ({'name': 'v', 'cloud_init': {'user_data': '#cloud-config\n- a\n'}},
     ['cloud_init.user_data: #cloud-config must be a mapping']),
    ({'name': 'v', 'cloud_init': {'user_data': {'ssh_authorized_keys': ['/root/.ssh/id_ed25519.pub']}}},
     ['cloud_init.user_data.ssh_authorized_keys[0]', 'is not an SSH public key']),
    ({'name': 'v', 'cloud_init': {'user_data': {'users': ['default', {'name': 'alice', 'ssh_authorized_keys': [
        PUBLIC_KEY, PUBLIC_KEY.replace('ssh-ed25519', 'ssh-rsa')]}]}}},
     ['cloud_init.user_data.users[1].ssh_authorized_keys[1]', 'does not hold a ssh-rsa key']),
    ({'name': 'v', 'cloud_init': {'user_data': ['packages-not-in-a-mapping']}},
     ['cloud_init.user_data: expected a dict or a string']),
    ({'name': 'v', 'capacity': '1M', 'mode': '8888'}, ["mode: '8888'"]),
    ({'name': 'v', 'backing_volume': 'b', 'clone_from': 'a'}, ['mutually exclusive']),
    ({'name': 'v', 'checksum': 'sha256:00'}, ['missing parameter(s) required by \'checksum\': upload_from']),
    ({'xml': '<volume><name>x</name>'}, ['not well-formed']),
    ({'xml': '<pool><name>x</name></pool>'}, ['expected a <volume>']),
])
def test_bad_input_fails_clearly_and_changes_nothing(conn, run_module, args, words):
    result = run_module(kvm_volume.main, vol(**args))
    assert result['failed']
    for word in words:
        assert word in result['msg']
    assert volumes(conn) == []


def test_format_mismatch_is_an_error(conn, run_module):
    run_module(kvm_volume.main, vol(name='disk.qcow2', capacity='1MiB'))
    result = run_module(kvm_volume.main, vol(name='disk.qcow2', capacity='1MiB', format='raw'))
    assert result['failed'] and 'is qcow2, not raw' in result['msg']


def test_pool_info_lists_volume_details_when_asked(conn, run_module):
    run_module(kvm_volume.main, vol(name='base.qcow2', capacity='1MiB'))
    run_module(kvm_volume.main, vol(name='o.qcow2', backing_volume='base.qcow2'))
    names_only = run_module(kvm_pool_info.main, {'uri': URI, 'name': POOL})
    assert names_only['pools'][0]['volumes'] == ['base.qcow2', 'o.qcow2']
    detailed = run_module(kvm_pool_info.main, {'uri': URI, 'name': POOL, 'volumes': True})
    details = detailed['pools'][0]['volumes']
    assert [v['name'] for v in details] == ['base.qcow2', 'o.qcow2']
    assert details[1]['backing_store'] == {'path': '/default-pool/base.qcow2', 'format': 'qcow2'}
    assert details[0]['capacity'] == 1024 ** 2 and details[0]['format'] == 'qcow2'
