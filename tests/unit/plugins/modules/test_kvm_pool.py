"""kvm_pool and kvm_pool_info end to end against libvirt's in-process test:///default driver."""

import pytest

from ansible_collections.hypervisor.kvm.plugins.modules import kvm_pool, kvm_pool_info

RUN_WITH_DIFF = True  # these tests read the diff (test_diff_mode.py checks runs without it)

URI = 'test:///default'


def pool_args(**extra):
    args = {'uri': URI, 'name': 'kvmtest-unit', 'target': {'path': '/var/tmp/kvmtest-unit-missing'}}
    args.update(extra)
    return args


def names(conn):
    return sorted(pool.name() for pool in conn.listAllStoragePools())


def test_create_active_pool_check_mode_predicts_and_changes_nothing(conn, run_module):
    result = run_module(kvm_pool.main, pool_args(state='active', autostart=True), check_mode=True)
    assert not result['failed'] and result['changed']
    assert result['actions'] == ['define', 'build', 'start', 'autostart']
    assert result['diff']['before'] == ''
    assert '<path>/var/tmp/kvmtest-unit-missing</path>' in result['diff']['after']
    assert 'active: true\nautostart: true\npersistent: true\n' in result['diff']['after']
    assert result['pool']['state'] == 'active' and result['pool']['autostart'] is True
    assert names(conn) == ['default-pool']


def test_create_then_second_run_is_unchanged(conn, run_module):
    check = run_module(kvm_pool.main, pool_args(state='active', autostart=True), check_mode=True)
    first = run_module(kvm_pool.main, pool_args(state='active', autostart=True))
    assert not first['failed'] and first['changed']
    assert first['actions'] == check['actions']
    assert first['diff'] == check['diff'] | {'after': first['diff']['after']}
    assert first['diff']['after'] == check['diff']['after']
    pool = conn.storagePoolLookupByName('kvmtest-unit')
    assert pool.isActive() and pool.autostart() and pool.isPersistent()
    assert first['pool']['uuid'] == pool.UUIDString()
    assert first['pool']['capacity'] > 0 and first['pool']['volumes'] == []

    second = run_module(kvm_pool.main, pool_args(state='active', autostart=True))
    assert not second['failed'] and not second['changed'] and second['actions'] == []
    assert second['diff']['before'] == second['diff']['after']
    assert second['restart_required'] is False


def test_present_defines_without_starting_and_inactive_stops(conn, run_module):
    result = run_module(kvm_pool.main, pool_args())
    assert result['actions'] == ['define'] and result['pool']['state'] == 'inactive'
    result = run_module(kvm_pool.main, pool_args(state='active'))
    assert result['actions'] == ['build', 'start']
    result = run_module(kvm_pool.main, pool_args(state='present'))
    assert not result['changed']
    result = run_module(kvm_pool.main, pool_args(state='inactive', autostart=True))
    assert result['actions'] == ['stop', 'autostart']
    pool = conn.storagePoolLookupByName('kvmtest-unit')
    assert not pool.isActive() and pool.autostart()
    result = run_module(kvm_pool.main, pool_args(state='present', autostart=False))
    assert result['actions'] == ['disable-autostart'] and not pool.autostart()


def test_changed_definition_is_redefined_with_a_diff(conn, run_module):
    run_module(kvm_pool.main, pool_args())
    uuid = conn.storagePoolLookupByName('kvmtest-unit').UUIDString()
    changed = pool_args(target={'path': '/var/tmp/kvmtest-unit-other/', 'mode': '0750'})
    check = run_module(kvm_pool.main, changed, check_mode=True)
    assert check['actions'] == ['define']
    assert '-    <path>/var/tmp/kvmtest-unit-missing</path>' not in check['diff']['after']
    assert '<path>/var/tmp/kvmtest-unit-missing</path>' in check['diff']['before']
    assert '<path>/var/tmp/kvmtest-unit-other</path>' in check['diff']['after']
    assert '<mode>0750</mode>' in check['diff']['after']
    assert uuid in check['diff']['after']  # the uuid is kept, not regenerated
    assert '/var/tmp/kvmtest-unit-missing' in conn.storagePoolLookupByName('kvmtest-unit').XMLDesc(0)

    result = run_module(kvm_pool.main, changed)
    assert result['changed'] and result['diff'] == check['diff']
    assert result['pool']['target'] == '/var/tmp/kvmtest-unit-other'
    assert result['pool']['uuid'] == uuid
    again = run_module(kvm_pool.main, changed)
    assert not again['changed']


def test_unspecified_options_are_left_alone(conn, run_module):
    run_module(kvm_pool.main, pool_args(target={'path': '/var/tmp/kvmtest-unit-missing', 'mode': '0700'}))
    # no target given: the existing one stays, type stays
    result = run_module(kvm_pool.main, {'uri': URI, 'name': 'kvmtest-unit', 'state': 'present'})
    assert not result['changed']
    assert '<mode>0700</mode>' in result['pool']['xml']


def test_xml_definition_is_compared_as_a_subset(conn, run_module):
    xml = """<pool type='dir'>
      <name>kvmtest-xml</name>
      <capacity unit='bytes'>1</capacity><allocation unit='bytes'>1</allocation>
      <target><path>/var/tmp/kvmtest-xml//</path></target>
    </pool>"""
    first = run_module(kvm_pool.main, {'uri': URI, 'xml': xml, 'state': 'active'})
    assert first['actions'] == ['define', 'build', 'start']
    assert first['pool']['target'] == '/var/tmp/kvmtest-xml'
    second = run_module(kvm_pool.main, {'uri': URI, 'xml': xml, 'state': 'active', 'name': 'kvmtest-xml'})
    assert not second['changed']


def test_absent_stops_and_undefines_but_keeps_storage(conn, run_module):
    run_module(kvm_pool.main, pool_args(state='active'))
    pool = conn.storagePoolLookupByName('kvmtest-unit')
    pool.createXML("<volume><name>disk.qcow2</name><capacity>1048576</capacity></volume>")
    check = run_module(kvm_pool.main, pool_args(state='absent'), check_mode=True)
    assert check['actions'] == ['stop', 'undefine'] and 'kvmtest-unit' in names(conn)
    assert check['diff']['after'] == '' and check['pool'] == {'name': 'kvmtest-unit', 'state': 'absent'}
    result = run_module(kvm_pool.main, pool_args(state='absent'))
    assert result['actions'] == ['stop', 'undefine'] and 'deleted_volumes' not in result
    assert names(conn) == ['default-pool']
    again = run_module(kvm_pool.main, pool_args(state='absent'))
    assert not again['changed'] and again['actions'] == []


def test_delete_storage_refuses_while_volumes_remain_unless_forced(conn, run_module):
    run_module(kvm_pool.main, pool_args(state='active'))
    pool = conn.storagePoolLookupByName('kvmtest-unit')
    pool.createXML("<volume><name>disk.qcow2</name><capacity>1048576</capacity></volume>")
    refused = run_module(kvm_pool.main, pool_args(state='absent', delete_storage=True))
    assert refused['failed'] and 'still holds 1 volume(s)' in refused['msg'] and 'force: true' in refused['msg']
    assert pool.isActive() and pool.numOfVolumes() == 1

    check = run_module(kvm_pool.main, pool_args(state='absent', delete_storage=True, force=True), check_mode=True)
    assert check['actions'] == ['delete-volumes', 'stop', 'delete', 'undefine']
    assert check['deleted_volumes'] == ['/var/tmp/kvmtest-unit-missing/disk.qcow2']
    assert pool.numOfVolumes() == 1

    result = run_module(kvm_pool.main, pool_args(state='absent', delete_storage=True, force=True))
    assert result['actions'] == check['actions']
    assert result['deleted_volumes'] == check['deleted_volumes']
    assert names(conn) == ['default-pool']


def test_delete_storage_of_an_inactive_pool_needs_force_when_it_cannot_look(conn, run_module):
    run_module(kvm_pool.main, pool_args(type='logical', source={'name': 'kvmtest-vg'}, target={'path': '/dev/x'}))
    result = run_module(kvm_pool.main, pool_args(state='absent', delete_storage=True))
    assert result['failed'] and 'is inactive' in result['msg'] and 'kvmtest-unit' in names(conn)


@pytest.mark.parametrize('args, words', [
    ({'xml': "<pool type='dir'><name>x</name>"}, ['not well-formed', 'line 1']),
    ({'xml': "<volume><name>x</name></volume>"}, ['expected a <pool>']),
    ({'xml': "<pool type='dir'/>"}, ['no <name>']),
    ({'name': 'a', 'xml': "<pool type='dir'><name>b</name></pool>"}, ["name 'a' does not match the name 'b'"]),
    ({'xml': "<pool type='bogus'><name>kvmtest-bad</name></pool>"}, ['defining', "'bogus'"]),
    ({'name': 'kvmtest-bad', 'type': 'bogus'}, ['value of type must be one of']),
    ({'name': 'kvmtest-bad', 'target': {'path': 'relative/dir'}}, ['not an absolute path']),
    ({'name': 'kvmtest-bad', 'target': {'path': '/var/tmp/x', 'mode': '999'}}, ["target.mode: '999'"]),
    ({'name': 'kvmtest-bad', 'target': {'path': '/var/tmp/x', 'owner': 'no-such-user-kvmtest'}},
     ["target.owner: no such user"]),
    ({'name': 'kvmtest-bad'}, ['target.path is required']),
    ({'name': 'kvmtest-bad', 'type': 'netfs', 'target': {'path': '/var/tmp/x'}}, ['source.host and source.dir']),
    ({'name': 'kvmtest-bad', 'type': 'dir', 'target': {'path': '/x'}, 'source': {'host': 'h'}}, ['has no source']),
    ({'name': 'kvmtest-bad', 'xml': '<pool/>', 'type': 'dir'}, ['mutually exclusive']),
    ({'state': 'active'}, ['one of the following is required: name, xml']),
])
def test_bad_input_fails_clearly_and_changes_nothing(conn, run_module, args, words):
    before = names(conn)
    result = run_module(kvm_pool.main, {'uri': URI, **args})
    assert result['failed']
    for word in words:
        assert word in result['msg']
    assert 'exception' not in result
    assert names(conn) == before


def test_libvirt_error_is_translated(conn, run_module):
    result = run_module(kvm_pool.main, {'uri': URI, 'xml': "<pool type='bogus'><name>kvmtest-b</name></pool>"})
    assert result['failed']
    assert result['msg'].startswith("defining storage pool 'kvmtest-b' failed: ")
    assert result['libvirt_error']['code_name'] == 'VIR_ERR_XML_ERROR'


def test_mode_and_owner_are_written_as_libvirt_does(conn, run_module):
    result = run_module(kvm_pool.main, pool_args(target={
        'path': '/var/tmp/kvmtest-unit-missing', 'mode': 0o750, 'owner': 'root', 'group': 0}))
    assert '<mode>0750</mode>' in result['pool']['xml']
    assert '<owner>0</owner>' in result['pool']['xml'] and '<group>0</group>' in result['pool']['xml']
    again = run_module(kvm_pool.main, pool_args(target={
        'path': '/var/tmp/kvmtest-unit-missing', 'mode': '750', 'owner': 0, 'group': 'root'}))
    assert not again['changed']


def test_pool_info_lists_every_pool_or_one(conn, run_module):
    run_module(kvm_pool.main, pool_args(state='active'))
    conn.storagePoolLookupByName('kvmtest-unit').createXML(
        "<volume><name>disk.img</name><capacity>1048576</capacity></volume>")
    result = run_module(kvm_pool_info.main, {'uri': URI})
    assert not result['changed']
    assert [pool['name'] for pool in result['pools']] == ['default-pool', 'kvmtest-unit']
    unit = result['pools'][1]
    assert unit['state'] == 'active' and unit['type'] == 'dir' and unit['persistent']
    assert unit['volumes'] == ['disk.img'] and unit['volume_count'] == 1
    assert unit['target'] == '/var/tmp/kvmtest-unit-missing' and '<name>kvmtest-unit</name>' in unit['xml']

    one = run_module(kvm_pool_info.main, {'uri': URI, 'name': 'kvmtest-unit'}, check_mode=True)
    assert one['pools'] == [unit]
    none = run_module(kvm_pool_info.main, {'uri': URI, 'name': 'kvmtest-missing'})
    assert none['pools'] == []

    run_module(kvm_pool.main, pool_args(state='inactive'))
    stopped = run_module(kvm_pool_info.main, {'uri': URI, 'name': 'kvmtest-unit'})
    assert stopped['pools'][0]['capacity'] is None and stopped['pools'][0]['volumes'] is None


def test_module_defaults_environment_uri(conn, run_module, monkeypatch):
    monkeypatch.setenv('LIBVIRT_DEFAULT_URI', URI)
    result = run_module(kvm_pool_info.main, {})
    assert 'default-pool' in [pool['name'] for pool in result['pools']]
