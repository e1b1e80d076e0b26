"""kvm_migration against libvirt's in-process test driver.

The source is test:///default (shared with the ``conn`` fixture). The destination is a second,
private test host described by a file (``test:///path/node.xml``): each connection to it
starts from that file. The test driver cannot migrate, so these tests prove the planning, the
option checks, the refusals and what a failed migration leaves behind; tests/integration/targets/
kvm_migration migrates for real between two libvirt daemons.
"""

import threading

import pytest

from ansible_collections.hypervisor.kvm.plugins.module_utils import _migration, _migration_checks, _migration_storage
from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError
from ansible_collections.hypervisor.kvm.plugins.modules import kvm_migration

RUN_WITH_DIFF = True  # these tests read the diff (test_diff_mode.py checks runs without it)

SOURCE = 'test:///default'
UUID_A = '11111111-2222-3333-4444-555555555555'
UUID_B = '99999999-2222-3333-4444-555555555555'


# ---- helpers ------------------------------------------------------------------------------------
def domain_xml(name, uuid=UUID_A, disks='', interfaces=''):
    return (f"<domain type='test'><name>{name}</name><uuid>{uuid}</uuid><memory unit='MiB'>8</memory>"
            f"<os><type>hvm</type></os><devices>{disks}{interfaces}</devices></domain>")


def file_disk(path, target='vda', extra=''):
    return (f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{path}'/>"
            f"<target dev='{target}' bus='virtio'/>{extra}</disk>")


NETWORK_DEFAULT = "<interface type='network'><source network='default'/></interface>"
BRIDGE_X = "<interface type='bridge'><source bridge='br-x'/></interface>"


def volume(name, pool_path, capacity=1048576, backing=None):
    backing_xml = f"<backingStore><path>{backing}</path><format type='qcow2'/></backingStore>" if backing else ''
    return (f"<volume type='file'><name>{name}</name><capacity unit='bytes'>{capacity}</capacity>"
            f"<target><path>{pool_path}/{name}</path><format type='qcow2'/></target>{backing_xml}</volume>")


def destination(tmp_path, domains=(), networks=('default',), pools=(), interfaces=('br-x',)):
    """A private destination host; ``pools`` are (name, path, [volume names])."""
    parts = ['<node>']
    parts += list(domains)
    for index, name in enumerate(networks):
        parts.append(f"<network><name>{name}</name><bridge name='virbrt{index}'/>"
                     f"<ip address='192.168.{120 + index}.1' netmask='255.255.255.0'/></network>")
    for name, path, volumes in pools:
        parts.append(f"<pool type='dir'><name>{name}</name><target><path>{path}</path></target>"
                     + ''.join(volume(v, path) for v in volumes) + '</pool>')
    for name in interfaces:
        parts.append(f"<interface type='bridge' name='{name}'><start mode='onboot'/>"
                     f"<bridge><interface type='ethernet' name='{name}p0'/></bridge></interface>")
    parts.append('</node>')
    node = tmp_path / 'node.xml'
    node.write_text(''.join(parts))
    return f'test://{node}'


def source_guest(conn, name='mig-a', running=True, disks=None, interfaces=NETWORK_DEFAULT, uuid=UUID_A):
    """A guest on the source; by default its disk is a volume of default-pool."""
    if disks is None:
        pool = conn.storagePoolLookupByName('default-pool')
        pool.createXML(volume(f'{name}.qcow2', '/default-pool'), 0)
        disks = file_disk(f'/default-pool/{name}.qcow2')
    domain = conn.defineXML(domain_xml(name, uuid, disks, interfaces))
    if running:
        domain.create()
    return domain


def args(dest_uri, **extra):
    values = {'uri': SOURCE, 'name': 'mig-a', 'dest_uri': dest_uri}
    values.update(extra)
    return values


# ---- the decision table ------------------------------------------------------------------------
def presence(state, uuid=UUID_A):
    if state == 'absent':
        return _migration_checks.Presence()
    return _migration_checks.Presence(exists=True, state=state, active=state != 'shutoff', persistent=True, uuid=uuid)


@pytest.mark.parametrize('source, target, expected', [
    ('running', 'absent', 'migrate'),
    ('paused', 'absent', 'migrate'),
    ('running', 'shutoff', 'migrate'),
    ('shutoff', 'absent', 'offline'),
    ('absent', 'running', 'present'),
    ('shutoff', 'running', 'present'),
    ('absent', 'shutoff', 'present'),
    ('shutoff', 'shutoff', 'present'),
])
def test_decide(source, target, expected):
    assert _migration_checks.decide('g', presence(source), presence(target), 'a:///', 'b:///') == expected


@pytest.mark.parametrize('source, target, message', [
    ('absent', 'absent', "guest 'g' was found neither on the source a:/// nor on the destination b:///"),
    ('running', 'running', "guest 'g' is active on both the source a:/// (running) and the destination b:/// "
                           '(running)'),
    ('paused', 'running', 'is active on both'),
])
def test_decide_refuses(source, target, message):
    with pytest.raises(KvmError) as failure:
        _migration_checks.decide('g', presence(source), presence(target), 'a:///', 'b:///')
    assert message in failure.value.msg


def test_decide_refuses_another_guest_of_that_name():
    with pytest.raises(KvmError, match="has another guest named 'g' \\(uuid 9999"):
        _migration_checks.decide('g', presence('shutoff'), presence('running', UUID_B), 'a:///', 'b:///')


# ---- flags and typed parameters ------------------------------------------------------------------
BASE = {'live': True, 'peer2peer': False, 'persistent': True, 'undefine_source': True, 'copy_storage': 'none',
        'auto_converge': False, 'compressed': False, 'unsafe': False}


@pytest.mark.parametrize('changes, mode, persistent, expected', [
    ({}, 'migrate', True, ['live', 'persist-dest', 'undefine-source']),
    ({'copy_storage': 'all', 'peer2peer': True}, 'migrate', True,
     ['live', 'peer2peer', 'persist-dest', 'undefine-source', 'non-shared-disk']),
    ({'copy_storage': 'incremental', 'live': False, 'auto_converge': True, 'compressed': True, 'unsafe': True},
     'migrate', True, ['persist-dest', 'undefine-source', 'non-shared-inc', 'auto-converge', 'compressed', 'unsafe']),
    ({'persistent': False, 'undefine_source': False}, 'migrate', True, ['live']),
    ({}, 'migrate', False, ['live', 'persist-dest']),  # a transient guest has no definition to remove
    ({'auto_converge': True}, 'offline', True, ['offline', 'persist-dest', 'undefine-source']),
    ({'persistent': False, 'undefine_source': False}, 'offline', True, ['offline', 'persist-dest']),
])
def test_flags(changes, mode, persistent, expected):
    names = _migration.migration_flags(BASE | changes, mode, persistent)
    assert _migration.flag_words(names) == expected
    assert _migration.flag_value(names) > 0


def test_typed_parameters(conn):
    libvirt = _migration.libvirt
    typed = _migration.migration_params({'bandwidth': 100, 'migrate_uri': 'tcp://192.0.2.9'}, '<domain/>')
    assert typed == {libvirt.VIR_MIGRATE_PARAM_BANDWIDTH: 100, libvirt.VIR_MIGRATE_PARAM_URI: 'tcp://192.0.2.9',
                     libvirt.VIR_MIGRATE_PARAM_PERSIST_XML: '<domain/>'}
    assert _migration.migration_params({}, None) == {}


# ---- option checks (nothing is opened) -----------------------------------------------------------
@pytest.mark.parametrize('extra, message', [
    ({'remove_source_storage': True}, 'remove_source_storage: needs copy_storage all or incremental'),
    ({'copy_storage': 'all', 'remove_source_storage': True, 'undefine_source': False},
     'remove_source_storage: needs undefine_source=true'),
    ({'replace_storage': True}, 'replace_storage: only means something with copy_storage'),
    ({'persistent': False}, 'persistent=false with undefine_source=true would leave the guest defined nowhere'),
    ({'bandwidth': 0}, 'bandwidth: must be at least 1, got 0'),
    ({'timeout': -5}, 'timeout: must be at least 1, got -5'),
    ({'reserve_memory': 'lots'}, "reserve_memory: cannot read 'lots' as a size"),
    ({'dest_uri': SOURCE}, "dest_uri: 'test:///default' is the source uri too"),
])
def test_bad_options_fail_before_anything(conn, run_module, tmp_path, extra, message):
    source_guest(conn)
    result = run_module(kvm_migration.main, args(destination(tmp_path)) | extra)
    assert result['failed'] and not result['changed']
    assert message in result['msg']
    assert conn.lookupByName('mig-a').isActive()


# ---- the hosts --------------------------------------------------------------------------------------
def test_unreachable_destination_names_the_uri(conn, run_module, tmp_path):
    source_guest(conn)
    missing = f'test://{tmp_path}/no-such-host.xml'
    result = run_module(kvm_migration.main, args(missing))
    assert result['failed'] and not result['changed']
    assert result['msg'].startswith(f'connecting to the destination {missing} failed: ')
    assert result['libvirt_error']['code_name']
    assert conn.lookupByName('mig-a').isActive()


def test_guest_on_neither_host(conn, run_module, tmp_path):
    dest = destination(tmp_path)
    result = run_module(kvm_migration.main, args(dest, name='nosuch'))
    assert result['failed'] and not result['changed']
    assert result['msg'] == f"guest 'nosuch' was found neither on the source {SOURCE} nor on the destination {dest}"


def test_guest_active_on_both_hosts(conn, run_module, tmp_path):
    source_guest(conn)
    dest = destination(tmp_path, domains=[domain_xml('mig-a')])
    for check_mode in (True, False):
        result = run_module(kvm_migration.main, args(dest), check_mode=check_mode)
        assert result['failed'] and not result['changed']
        assert "guest 'mig-a' is active on both the source" in result['msg']
    assert conn.lookupByName('mig-a').isActive()


def test_another_guest_of_that_name_on_the_destination(conn, run_module, tmp_path):
    source_guest(conn, running=False)
    dest = destination(tmp_path, domains=[domain_xml('mig-a', UUID_B)])
    result = run_module(kvm_migration.main, args(dest))
    assert result['failed'] and f'uuid {UUID_B}' in result['msg']


def test_already_there_changes_nothing_in_check_mode_too(conn, run_module, tmp_path):
    dest = destination(tmp_path, domains=[domain_xml('mig-a')])
    for check_mode in (True, False):
        result = run_module(kvm_migration.main, args(dest), check_mode=check_mode)
        assert not result['failed'] and not result['changed'], result
        assert result['actions'] == [] and result['mode'] is None and result['elapsed_ms'] is None
        assert result['diff']['before'] == result['diff']['after'] == (
            f'source {SOURCE}: absent\ndestination {dest}: running (persistent)\n')
        assert result['domain'] == {'name': 'mig-a', 'uuid': UUID_A, 'state': 'running', 'persistent': True,
                                    'uri': dest, 'memory': 8 * 1024 * 1024}
        assert 'still has' not in str(result.get('warnings', ''))


def test_already_there_warns_about_a_definition_left_on_the_source(conn, run_module, tmp_path):
    source_guest(conn, running=False)
    dest = destination(tmp_path, domains=[domain_xml('mig-a')])
    result = run_module(kvm_migration.main, args(dest))
    assert not result['failed'] and not result['changed']
    assert 'still has a shutoff (persistent) definition' in str(result['warnings'])
    assert conn.lookupByName('mig-a').isPersistent()  # never removed implicitly


# ---- what the destination lacks ------------------------------------------------------------------
def test_destination_lacks_network_bridge_and_pool_all_in_one_message(conn, run_module, tmp_path):
    pool = conn.storagePoolLookupByName('default-pool')
    pool.createXML(volume('mig-a.qcow2', '/default-pool'), 0)
    disks = ("<disk type='volume' device='disk'><driver name='qemu' type='qcow2'/>"
             "<source pool='default-pool' volume='mig-a.qcow2'/><target dev='vda' bus='virtio'/></disk>")
    source_guest(conn, disks=disks, interfaces=NETWORK_DEFAULT + BRIDGE_X)
    dest = destination(tmp_path, networks=(), interfaces=())
    result = run_module(kvm_migration.main, args(dest), check_mode=True)
    assert result['failed'] and not result['changed']
    assert result['msg'].startswith(f"the destination {dest} cannot take guest 'mig-a': ")
    assert result['problems'] == [
        "it lacks network 'default'",
        "it lacks the bridge 'br-x'",
        "disk vda (default-pool/mig-a.qcow2): it lacks pool 'default-pool'",
    ]


def test_storage_path_missing_on_the_destination(conn, run_module, tmp_path):
    source_guest(conn)
    dest = destination(tmp_path, pools=[('pool-b', '/default-pool', [])])
    result = run_module(kvm_migration.main, args(dest))
    assert result['failed'] and not result['changed']
    assert result['problems'] == ["disk vda (/default-pool/mig-a.qcow2): the storage path is missing (not in pool "
                                  "'pool-b'); copy the disk there first or set copy_storage=all"]
    assert conn.lookupByName('mig-a').isActive()


def test_shared_storage_present_plans_one_migrate(conn, run_module, tmp_path):
    source_guest(conn)
    dest = destination(tmp_path, pools=[('pool-b', '/default-pool', ['mig-a.qcow2'])])
    result = run_module(kvm_migration.main, args(dest, bandwidth=50, timeout=60), check_mode=True)
    assert not result['failed'] and result['changed'], result
    assert result['actions'] == ['migrate']
    assert result['flags'] == ['live', 'persist-dest', 'undefine-source']
    assert result['mode'] == 'live'
    assert result['created_volumes'] == []
    assert result['diff']['before'] == f'source {SOURCE}: running (persistent)\ndestination {dest}: absent\n'
    assert result['diff']['after'] == f'source {SOURCE}: absent\ndestination {dest}: running (persistent)\n'
    assert result['source'] == {'uri': SOURCE, 'before': 'running (persistent)', 'after': 'absent'}
    assert result['domain']['state'] == 'running' and result['domain']['uuid'] == UUID_A
    assert set(result['destination']['memory']) == {'total', 'free', 'reserve'}
    assert result['destination']['memory']['reserve'] == 0 and result['domain']['memory'] == 8 * 1024 * 1024
    assert conn.lookupByName('mig-a').isActive()


def test_disk_outside_any_destination_pool_is_a_warning_for_a_remote_uri(conn, run_module, tmp_path):
    source_guest(conn, disks=file_disk('/guest/mig-a.img'))
    result = run_module(kvm_migration.main, args(destination(tmp_path)), check_mode=True)
    assert not result['failed'] and result['actions'] == ['migrate']
    assert 'not in a storage pool on the destination, so its presence there could not be checked' in \
        str(result['warnings'])


def test_keeping_the_source_definition_and_a_transient_destination(conn, run_module, tmp_path):
    source_guest(conn)
    dest = destination(tmp_path, pools=[('pool-b', '/default-pool', ['mig-a.qcow2'])])
    result = run_module(kvm_migration.main, args(dest, persistent=False, undefine_source=False, live=False),
                        check_mode=True)
    assert result['flags'] == [] and result['mode'] == 'non-live'
    assert result['diff']['after'] == (f'source {SOURCE}: shutoff (persistent)\n'
                                       f'destination {dest}: running (transient)\n')


# ---- copying storage -------------------------------------------------------------------------------
def test_copy_storage_plans_the_destination_volumes_first(conn, run_module, tmp_path):
    source_guest(conn)
    dest = destination(tmp_path, pools=[('pool-b', '/default-pool', [])])
    result = run_module(kvm_migration.main, args(dest, copy_storage='all', remove_source_storage=True),
                        check_mode=True)
    assert not result['failed'] and result['changed'], result
    assert result['actions'] == ['create-destination-volumes', 'migrate', 'remove-source-storage']
    assert result['created_volumes'] == ['/default-pool/mig-a.qcow2']
    assert 'non-shared-disk' in result['flags']
    assert conn.storageVolLookupByPath('/default-pool/mig-a.qcow2')  # check mode deleted nothing


def test_copy_storage_needs_a_pool_for_the_directory(conn, run_module, tmp_path):
    source_guest(conn)
    dest = destination(tmp_path, pools=[('pool-b', '/elsewhere', [])])
    result = run_module(kvm_migration.main, args(dest, copy_storage='all'), check_mode=True)
    assert result['failed']
    assert result['problems'] == ['disk vda (/default-pool/mig-a.qcow2): no storage pool holds /default-pool, so '
                                  'the copy has nowhere to go; define a pool with that target path there']


def test_copy_storage_refuses_to_overwrite_a_volume_unless_replace_storage(conn, run_module, tmp_path):
    source_guest(conn)
    dest = destination(tmp_path, pools=[('pool-b', '/default-pool', ['mig-a.qcow2'])])
    result = run_module(kvm_migration.main, args(dest, copy_storage='all'), check_mode=True)
    assert result['failed'] and 'a volume is already at /default-pool/mig-a.qcow2' in result['msg']
    assert 'replace_storage=true' in result['msg']
    result = run_module(kvm_migration.main, args(dest, copy_storage='all', replace_storage=True), check_mode=True)
    assert not result['failed'] and result['actions'] == ['migrate']


def test_read_only_disks_are_not_copied_and_must_be_there(conn, run_module, tmp_path):
    pool = conn.storagePoolLookupByName('default-pool')
    pool.createXML(volume('mig-a.qcow2', '/default-pool'), 0)
    pool.createXML(volume('seed.iso', '/default-pool'), 0)
    disks = file_disk('/default-pool/mig-a.qcow2') + (
        "<disk type='file' device='cdrom'><source file='/default-pool/seed.iso'/>"
        "<target dev='sda' bus='sata'/><readonly/></disk>")
    source_guest(conn, disks=disks)
    dest = destination(tmp_path, pools=[('pool-b', '/default-pool', [])])
    result = run_module(kvm_migration.main, args(dest, copy_storage='all'), check_mode=True)
    assert result['failed']
    assert result['problems'] == ["disk sda (/default-pool/seed.iso): the storage path is missing (not in pool "
                                  "'pool-b'); copy the disk there first or set copy_storage=all"]


def test_incremental_copy_needs_the_backing_image(conn, run_module, tmp_path):
    pool = conn.storagePoolLookupByName('default-pool')
    pool.createXML(volume('base.qcow2', '/default-pool'), 0)
    pool.createXML(volume('mig-a.qcow2', '/default-pool', backing='/default-pool/base.qcow2'), 0)
    source_guest(conn, disks=file_disk('/default-pool/mig-a.qcow2'))
    lacking = destination(tmp_path, pools=[('pool-b', '/default-pool', [])])
    result = run_module(kvm_migration.main, args(lacking, copy_storage='incremental'), check_mode=True)
    assert result['failed'] and 'its backing image /default-pool/base.qcow2 is not on the destination' in result['msg']
    having = destination(tmp_path, pools=[('pool-b', '/default-pool', ['base.qcow2'])])
    result = run_module(kvm_migration.main, args(having, copy_storage='incremental'), check_mode=True)
    assert not result['failed'], result
    assert result['actions'] == ['create-destination-volumes', 'migrate'] and 'non-shared-inc' in result['flags']


def test_volume_definitions_for_the_copy():
    text = _migration_storage.volume_xml('d.qcow2', 1048576, 'qcow2', '/p/base.qcow2', 'qcow2')
    assert text == ("<volume><name>d.qcow2</name><capacity unit=\"bytes\">1048576</capacity>"
                    "<allocation unit=\"bytes\">0</allocation><target><format type=\"qcow2\" /></target>"
                    "<backingStore><path>/p/base.qcow2</path><format type=\"qcow2\" /></backingStore></volume>")


# ---- a failed migration --------------------------------------------------------------------------
@pytest.mark.parametrize('peer2peer', [False, True])
def test_failed_migration_leaves_the_guest_running_on_the_source(conn, run_module, tmp_path, peer2peer):
    source_guest(conn)
    dest = destination(tmp_path, pools=[('pool-b', '/default-pool', [])])
    result = run_module(kvm_migration.main, args(dest, copy_storage='all', peer2peer=peer2peer))
    assert result['failed'], result
    assert result['msg'].startswith(f"migrating guest 'mig-a' to {dest} failed: ")
    assert result['msg'].endswith(f'It is still on the source {SOURCE} (running).')
    assert result['source_state'] == 'running'
    assert result['failed_action'] == 'migrate'
    assert result['actions'] == ['create-destination-volumes', 'migrate']
    assert result['actions_done'] == [] and result['changed'] is False  # the volume it created is gone again
    assert result['created_volumes'] == []
    assert result['libvirt_error']['code_name'] in ('VIR_ERR_NO_SUPPORT', 'VIR_ERR_ARGUMENT_UNSUPPORTED')
    domain = conn.lookupByName('mig-a')
    assert domain.isActive() and domain.isPersistent()


# ---- offline migration ---------------------------------------------------------------------------
def test_offline_migration_of_a_shut_off_guest(conn, run_module, tmp_path):
    source_guest(conn, running=False)
    dest = destination(tmp_path, pools=[('pool-b', '/default-pool', ['mig-a.qcow2'])])
    result = run_module(kvm_migration.main, args(dest), check_mode=True)
    assert not result['failed'] and result['changed'], result
    assert result['actions'] == ['migrate-offline'] and result['mode'] == 'offline'
    assert result['flags'] == ['offline', 'persist-dest', 'undefine-source']
    assert result['diff']['after'] == f'source {SOURCE}: absent\ndestination {dest}: shutoff (persistent)\n'
    assert result['domain']['state'] == 'shutoff'


def test_the_diff_only_under_diff_and_nothing_else_differs(conn, run_module, tmp_path):
    """As test_diff_mode.py for the other modules: the test driver cannot migrate, so a planned
    migration is compared in check mode and an arrived guest in real runs."""
    source_guest(conn, running=False)
    dest = destination(tmp_path, pools=[('pool-b', '/default-pool', ['mig-a.qcow2'])])
    plain = run_module(kvm_migration.main, args(dest), check_mode=True, diff=False)
    with_diff = run_module(kvm_migration.main, args(dest), check_mode=True)
    assert plain['changed'] and plain['actions'] == ['migrate-offline'] and 'diff' not in plain
    assert with_diff['diff'] and {key: value for key, value in with_diff.items() if key != 'diff'} == plain
    there = destination(tmp_path, domains=[domain_xml('mig-b')])
    plain = run_module(kvm_migration.main, args(there, name='mig-b'), diff=False)
    with_diff = run_module(kvm_migration.main, args(there, name='mig-b'))
    assert not plain['changed'] and 'diff' not in plain
    assert with_diff['diff'] and {key: value for key, value in with_diff.items() if key != 'diff'} == plain


def test_offline_migration_cannot_copy_storage(conn, run_module, tmp_path):
    source_guest(conn, running=False)
    result = run_module(kvm_migration.main, args(destination(tmp_path), copy_storage='all'))
    assert result['failed'] and not result['changed']
    assert "guest 'mig-a' is shut off on the source: an offline migration moves only its definition" in result['msg']


# ---- memory -------------------------------------------------------------------------------------------
def test_reserve_memory_refuses_a_destination_without_room(conn, run_module, tmp_path):
    source_guest(conn)
    dest = destination(tmp_path, pools=[('pool-b', '/default-pool', ['mig-a.qcow2'])])
    result = run_module(kvm_migration.main, args(dest, reserve_memory='1MiB'), check_mode=True)
    free = _migration_checks.node_memory(_migration.libvirt.open(dest))['free']
    assert result['failed']
    assert result['problems'] == [f'it lacks room: the guest needs 8 MiB, the destination has '
                                  f'{_migration_checks.format_size(free)} free minus the reserve of 1 MiB']
    assert result['destination']['memory']['reserve'] == 1024 * 1024


def test_node_memory_of_the_test_driver(conn):
    memory = _migration_checks.node_memory(conn)
    assert memory['total'] == 3072 * 1024 * 1024 and memory['free'] is not None


# ---- the timeout (a stand-in for a migration that does not end: the test driver cannot migrate) ------
class SlowMigration:
    """A domain handle whose migration runs until abortJob, or finishes soon after suspend."""

    def __init__(self):
        self.stop = threading.Event()
        self.calls = []

    def migrate3(self, _dest, _params, _flags):
        self.calls.append('migrate3')
        if not self.stop.wait(10):
            raise AssertionError('never stopped')
        if 'abortJob' in self.calls:
            raise _migration.libvirt.libvirtError('operation aborted: canceled by client')
        return 'new-domain'

    def abortJob(self):  # noqa: N802 - libvirt's name
        self.calls.append('abortJob')
        self.stop.set()

    def suspend(self):
        self.calls.append('suspend')
        self.stop.set()


@pytest.mark.parametrize('action, expected', [('abort', 'error'), ('suspend', 'domain')])
def test_timeout_action(action, expected):
    # The option is whole seconds; a tenth keeps the test fast and takes the same path.
    migration = _migration.Migration(None, 'dest-conn', {'name': 'g', 'dest_uri': 'd:///', 'peer2peer': False,
                                                         'timeout': 0.1, 'timeout_action': action})
    handle = SlowMigration()
    outcome = migration.run_migration(handle, 0, {})
    assert expected in outcome
    assert outcome['timeout_action_taken'] == action
    assert handle.calls == ['migrate3', 'abortJob' if action == 'abort' else 'suspend']
    assert 100 <= outcome['elapsed_ms'] < 5000
