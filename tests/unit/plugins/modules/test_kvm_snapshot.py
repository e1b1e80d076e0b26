"""kvm_snapshot and the snapshot helpers of _snapshot_facts.py against libvirt's in-process
test:///default driver.

The test driver takes internal snapshots (with memory for a running guest), reverts and
deletes them, but cannot create external ones (it refuses the disk-only flag): external
snapshots are given to it as metadata (a snapshot redefinition, which is all libvirt keeps of
them besides the overlay files), so everything kvm_snapshot decides about them is tested here
and the overlays themselves in the integration target.
"""

import copy
import xml.etree.ElementTree as ET

import libvirt
import pytest
import yaml

from ansible_collections.hypervisor.kvm.plugins.module_utils import _domain_facts, _snapshot, _snapshot_facts
from ansible_collections.hypervisor.kvm.plugins.modules import kvm_snapshot

RUN_WITH_DIFF = True  # these tests read the diff (test_diff_mode.py checks runs without it)

URI = 'test:///default'

DISK = ("<disk type='file' device='disk'><driver name='qemu' type='{fmt}'/><source file='{path}'/>"
        "<target dev='{target}' bus='virtio'/></disk>")
CDROM = ("<disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='/guest/seed.iso'/>"
         "<target dev='sda' bus='sata'/><readonly/></disk>")
AGENT = ("<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>")


def domain_xml(name, disks=None, extra_devices='', os_extra=''):
    disks = disks if disks is not None else [('vda', f'/guest/{name}.qcow2', 'qcow2')]
    devices = ''.join(DISK.format(target=t, path=p, fmt=f) for t, p, f in disks) + CDROM + extra_devices
    return (f"<domain type='test'><name>{name}</name><memory unit='MiB'>256</memory><vcpu>1</vcpu>"
            f"<os><type>hvm</type>{os_extra}</os><devices>{devices}</devices></domain>")


@pytest.fixture
def guests(conn):
    """Guests of the test driver: kvmtest-run (running), kvmtest-off (shut off), both one qcow2
    disk and a cdrom. Their snapshots are removed afterwards (the driver keeps its state while
    a handle of it lives on)."""
    made = {}

    def define(name, start=True, **kwargs):
        domain = conn.defineXML(domain_xml(name, **kwargs))
        if start:
            domain.create()
        made[name] = domain
        return domain

    define('kvmtest-run')
    define('kvmtest-off', start=False)
    yield define
    for domain in list(made.values()) + [conn.lookupByName('test')]:
        for snap in domain.listAllSnapshots(0):
            try:
                snap.delete(0)
            except libvirt.libvirtError:
                pass  # deleted with its parent's children already


def args(domain='kvmtest-run', name='s1', **extra):
    return {'uri': URI, 'domain': domain, 'name': name, **extra}


def snapshot_names(conn, domain='kvmtest-run'):
    return sorted(snap.getName() for snap in conn.lookupByName(domain).listAllSnapshots(0))


def redefine_external(conn, domain, name, overlays, parent=None, current=True):
    """External snapshot metadata as libvirt keeps it: the overlays per disk target, and the
    guest's definition when it was taken (its disks pointing at the storage under them)."""
    handle = conn.lookupByName(domain)
    definition = ET.fromstring(handle.XMLDesc(0))
    xml = ET.Element('domainsnapshot')
    ET.SubElement(xml, 'name').text = name
    if parent:
        ET.SubElement(ET.SubElement(xml, 'parent'), 'name').text = parent
    ET.SubElement(xml, 'state').text = 'disk-snapshot'
    ET.SubElement(xml, 'creationTime').text = str(1000 + len(handle.listAllSnapshots(0)))
    ET.SubElement(xml, 'memory', snapshot='no')
    disks = ET.SubElement(xml, 'disks')
    for target, (under, overlay) in overlays.items():
        disk = ET.SubElement(disks, 'disk', name=target, snapshot='external', type='file')
        ET.SubElement(disk, 'driver', type='qcow2')
        ET.SubElement(disk, 'source', file=overlay)
        for element in definition.findall('devices/disk'):
            if element.find('target').get('dev') == target:
                element.find('source').set('file', under)
    for element in definition.findall('devices/disk'):
        if element.find('target').get('dev') not in overlays:
            ET.SubElement(disks, 'disk', name=element.find('target').get('dev'), snapshot='no')
    xml.append(definition)
    flags = libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE
    if current:
        flags |= libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT
    return handle.snapshotCreateXML(ET.tostring(xml, encoding='unicode'), flags)


# ---- state: present, internal ---------------------------------------------------------------------
def test_internal_snapshot_of_running_guest_check_mode_then_run_then_unchanged(conn, guests, run_module):
    check = run_module(kvm_snapshot.main, args(description='before the upgrade'), check_mode=True)
    assert not check['failed'] and check['changed'] and check['actions'] == ['create']
    assert check['snapshot'] == {
        'name': 's1', 'parent': None, 'created': None, 'state': 'running', 'current': True, 'kind': 'internal',
        'description': 'before the upgrade', 'memory': True,
        'disks': [{'target': 'vda', 'snapshot': 'internal', 'path': None},
                  {'target': 'sda', 'snapshot': 'no', 'path': None}]}
    assert check['diff']['before'] == ''
    assert 'name: s1\n' in check['diff']['after'] and 'kind: internal\n' in check['diff']['after']
    assert 'created' not in check['diff']['after']
    assert check['diff']['after_header'] == "snapshot 's1' of domain 'kvmtest-run' (after)"
    assert check['domain_state'] == 'running'
    assert snapshot_names(conn) == []

    first = run_module(kvm_snapshot.main, args(description='before the upgrade'))
    assert not first["failed"], first.get("msg")
    assert first["changed"] and first["actions"] == ["create"]
    assert snapshot_names(conn) == ['s1']
    taken = first['snapshot']
    assert isinstance(taken['created'], int) and taken['created'] > 0
    assert taken == dict(check['snapshot'], created=taken['created'])
    assert first['diff']['after'] == check['diff']['after']  # created is not in the diff
    assert conn.lookupByName('kvmtest-run').snapshotLookupByName('s1').isCurrent()

    second = run_module(kvm_snapshot.main, args(description='before the upgrade'))
    assert not second['failed'] and not second['changed'] and second['actions'] == []
    assert second['snapshot'] == taken
    assert second['diff']['before'] == second['diff']['after'] != ''


def test_a_second_snapshot_has_the_first_as_parent_and_becomes_current(conn, guests, run_module):
    run_module(kvm_snapshot.main, args())
    check = run_module(kvm_snapshot.main, args(name='s2'), check_mode=True)
    assert check['snapshot']['parent'] == 's1'
    result = run_module(kvm_snapshot.main, args(name='s2'))
    assert result['snapshot']['parent'] == 's1' and result['snapshot']['current'] is True
    again = run_module(kvm_snapshot.main, args(name='s1'))
    assert not again['changed'] and again['snapshot']['current'] is False


def test_shut_off_guest_gets_a_disk_snapshot_without_memory(conn, guests, run_module):
    result = run_module(kvm_snapshot.main, args(domain='kvmtest-off'))
    assert not result['failed'] and result['changed']
    assert result['snapshot']['state'] == 'shutoff' and result['snapshot']['memory'] is False
    assert result['domain_state'] == 'shutoff'
    assert not run_module(kvm_snapshot.main, args(domain='kvmtest-off', memory=False))['changed']


def test_description_is_updated_in_place_and_current_stays(conn, guests, run_module):
    first = run_module(kvm_snapshot.main, args(description='old'))
    check = run_module(kvm_snapshot.main, args(description='new'), check_mode=True)
    assert check['changed'] and check['actions'] == ['update-description']
    assert 'description: old\n' in check['diff']['before'] and 'description: new\n' in check['diff']['after']
    assert check['snapshot']['description'] == 'new'
    handle = conn.lookupByName('kvmtest-run')
    assert '<description>old</description>' in handle.snapshotLookupByName('s1').getXMLDesc(0)

    result = run_module(kvm_snapshot.main, args(description='new'))
    assert result['changed'] and result['actions'] == ['update-description'] and result['diff'] == check['diff']
    assert result['snapshot'] == dict(first['snapshot'], description='new')  # same snapshot, not re-taken
    assert handle.snapshotLookupByName('s1').isCurrent()
    assert not run_module(kvm_snapshot.main, args(description='new'))['changed']
    # not given: not compared
    assert not run_module(kvm_snapshot.main, args())['changed']

    # surrounding white space is not kept, so it is no difference
    assert not run_module(kvm_snapshot.main, args(description='  new\n'))['changed']
    removed = run_module(kvm_snapshot.main, args(description=''))
    assert removed['changed'] and removed['snapshot']['description'] is None
    assert '<description>' not in handle.snapshotLookupByName('s1').getXMLDesc(0)


def test_description_of_a_snapshot_that_is_not_current_keeps_it_not_current(conn, guests, run_module):
    run_module(kvm_snapshot.main, args())
    run_module(kvm_snapshot.main, args(name='s2'))
    result = run_module(kvm_snapshot.main, args(description='first one'))
    assert result['changed'] and result['snapshot']['current'] is False
    handle = conn.lookupByName('kvmtest-run')
    assert handle.snapshotCurrent().getName() == 's2'
    assert handle.snapshotLookupByName('s1').getParent  # still there, same tree
    assert handle.snapshotLookupByName('s2').getParent().getName() == 's1'


@pytest.mark.parametrize('extra, named', [
    ({'memory': False}, 'memory: false'),
    ({'external': True}, 'external: true (the snapshot is internal)'),
])
def test_existing_snapshot_with_other_settings_is_an_error_naming_them(conn, guests, run_module, extra, named):
    run_module(kvm_snapshot.main, args(description='d'))
    before = conn.lookupByName('kvmtest-run').snapshotLookupByName('s1').getXMLDesc(0)
    for check_mode in (True, False):
        result = run_module(kvm_snapshot.main, args(description='changed too', **extra), check_mode=check_mode)
        assert result['failed'] and not result['changed']
        assert "snapshot 's1' of domain 'kvmtest-run' exists with other settings" in result['msg']
        assert named in result['msg'] and 'never taken again' in result['msg']
    assert conn.lookupByName('kvmtest-run').snapshotLookupByName('s1').getXMLDesc(0) == before


def test_existing_snapshot_disks_are_compared(conn, guests, run_module):
    run_module(kvm_snapshot.main, args())
    assert not run_module(kvm_snapshot.main, args(disks=[{'target': 'vda'}]))['changed']
    result = run_module(kvm_snapshot.main, args(disks=[{'target': 'sda', 'include': True}]))
    assert result['failed'] and 'disks[0].include: true (disk sda is not in the snapshot)' in result['msg']


# ---- what libvirt 9.0 cannot do, refused before anything changes --------------------------------
@pytest.mark.parametrize('domain, extra, message', [
    ('kvmtest-run', {'memory': False}, 'libvirt cannot take an internal disk-only snapshot of a running guest'),
    ('kvmtest-off', {'memory': True}, 'it has no memory state to save'),
    ('kvmtest-run', {'disks': [{'target': 'vda', 'include': False}]},
     'libvirt cannot leave writable disk vda out of an internal snapshot'),
    ('kvmtest-run', {'disks': [{'target': 'vdz'}]},
     "disks[0].target: domain 'kvmtest-run' has no disk vdz (its disks: sda, vda)"),
    ('kvmtest-run', {'disks': [{'target': 'sda'}]}, 'disk sda is read-only or empty'),
    ('kvmtest-run', {'external': True, 'disks': [{'target': 'vda', 'include': False}]},
     'has no writable disk to snapshot'),
])
def test_new_snapshot_errors(conn, guests, run_module, domain, extra, message):
    for check_mode in (True, False):
        result = run_module(kvm_snapshot.main, args(domain=domain, **extra), check_mode=check_mode)
        assert result['failed'] and not result['changed'], result
        assert message in result['msg']
    assert snapshot_names(conn, domain) == []


def test_raw_disk_cannot_have_an_internal_snapshot(conn, guests, run_module):
    guests('kvmtest-raw', disks=[('vda', '/guest/a.qcow2', 'qcow2'), ('vdb', '/guest/b.img', 'raw')])
    result = run_module(kvm_snapshot.main, args(domain='kvmtest-raw'))
    assert result['failed'] and not result['changed']
    assert result['msg'] == ('disk vdb (/guest/b.img) is raw: internal snapshots need qcow2 disks; use external: '
                             'true (a qcow2 overlay over it)')
    assert snapshot_names(conn, 'kvmtest-raw') == []
    # an external snapshot is the way: predicted in check mode (the test driver cannot create it)
    check = run_module(kvm_snapshot.main, args(domain='kvmtest-raw', external=True), check_mode=True)
    assert not check['failed'] and check['snapshot']['state'] == 'disk-snapshot'
    assert check['snapshot']['disks'][:2] == [
        {'target': 'vda', 'snapshot': 'external', 'path': '/guest/a.s1'},
        {'target': 'vdb', 'snapshot': 'external', 'path': '/guest/b.s1'}]


@pytest.mark.parametrize('os_extra', [
    "<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader>",
])
def test_uefi_pflash_guest_cannot_have_an_internal_snapshot(conn, guests, run_module, os_extra):
    guests('kvmtest-uefi', start=False, os_extra=os_extra)
    result = run_module(kvm_snapshot.main, args(domain='kvmtest-uefi'))
    assert result['failed'] and not result['changed']
    assert "domain 'kvmtest-uefi' boots UEFI firmware from pflash" in result['msg']
    assert 'use external: true' in result['msg']
    assert snapshot_names(conn, 'kvmtest-uefi') == []


def test_uefi_firmware_autoselection_counts_as_pflash():
    definition = ET.fromstring("<domain><os firmware='efi'><type>hvm</type></os></domain>")
    assert _snapshot._uses_pflash(definition)
    assert not _snapshot._uses_pflash(ET.fromstring('<domain><os><type>hvm</type></os></domain>'))


@pytest.mark.parametrize('state', ['present', 'absent', 'current'])
def test_guest_that_does_not_exist_is_an_error_in_every_state(conn, guests, run_module, state):
    result = run_module(kvm_snapshot.main, args(domain='kvmtest-missing', state=state))
    assert result['failed'] and not result['changed']
    assert result['msg'] == "domain: no domain named 'kvmtest-missing' on test:///default"


@pytest.mark.parametrize('extra, message', [
    ({'state': 'absent', 'description': 'x'}, 'description: only with state: present (state is absent)'),
    ({'state': 'current', 'memory': True}, 'memory: only with state: present (state is current)'),
    ({'children': True}, 'children: only with state: absent (state is present)'),
    ({'force': True}, 'force: only with state: current (state is present)'),
    ({'state': 'absent', 'running': True}, 'running: only with state: current (state is absent)'),
    ({'quiesce': True}, 'quiesce: needs external: true'),
    ({'external': True, 'memory': True}, 'memory: external snapshots are disk-only here'),
    ({'name': 'a/b'}, 'name: \'a/b\' contains "/"'),
    ({'name': ' '}, 'name: a snapshot needs a name'),
    ({'disks': [{'target': 'vda'}, {'target': 'vda'}]}, 'disks[1].target: vda is listed twice'),
    ({'disks': [{'target': 'vda', 'path': '/x'}]}, 'disks[0].path: an overlay file is only for external snapshots'),
    ({'external': True, 'disks': [{'target': 'vda', 'path': 'x.qcow2'}]},
     "disks[0].path: 'x.qcow2' is not an absolute path"),
    ({'external': True, 'disks': [{'target': 'vda', 'include': False, 'path': '/x'}]},
     'disks[0].path: the disk is not included'),
    ({'state': 'current', 'running': True, 'paused': True}, 'parameters are mutually exclusive: running|paused'),
])
def test_option_errors(conn, guests, run_module, extra, message):
    result = run_module(kvm_snapshot.main, args(**extra))
    assert result['failed'] and not result.get('changed')
    assert message in result['msg']
    assert snapshot_names(conn) == []


# ---- state: current -------------------------------------------------------------------------------
def test_revert_check_mode_then_run_then_no_op_then_force(conn, guests, run_module):
    run_module(kvm_snapshot.main, args())
    run_module(kvm_snapshot.main, args(name='s2'))
    handle = conn.lookupByName('kvmtest-run')
    handle.destroy()  # s1 holds a running guest: the revert starts it again

    check = run_module(kvm_snapshot.main, args(state='current'), check_mode=True)
    assert not check['failed'] and check['changed'] and check['actions'] == ['revert']
    assert check['domain_state'] == 'running' and check['snapshot']['current'] is True
    assert 'domain_state: shutoff\ncurrent_snapshot: s2\n' in check['diff']['before']
    assert 'domain_state: running\ncurrent_snapshot: s1\nreverted: true\n' in check['diff']['after']
    assert not handle.isActive() and handle.snapshotCurrent().getName() == 's2'

    result = run_module(kvm_snapshot.main, args(state='current'))
    assert not result['failed'] and result['changed'] and result['actions'] == ['revert']
    assert result['diff'] == check['diff'] and result['domain_state'] == 'running'
    assert handle.isActive() and handle.snapshotCurrent().getName() == 's1'
    assert result['snapshot']['current'] is True

    again = run_module(kvm_snapshot.main, args(state='current'))
    assert not again['changed'] and again['actions'] == []
    assert again['diff']['before'] == again['diff']['after']

    forced = run_module(kvm_snapshot.main, args(state='current', force=True))
    assert forced['changed'] and forced['actions'] == ['revert'] and forced['domain_state'] == 'running'
    assert 'reverted: true' not in forced['diff']['before'] and 'reverted: true' in forced['diff']['after']


# The test driver starts no guest on a revert to a shut off snapshot, whatever the flags (QEMU
# does: the integration target reverts to one with running: true).
@pytest.mark.parametrize('snapshot, extra, power', [
    ('off', {}, 'shutoff'), ('off', {'running': False}, 'shutoff'),
    ('on', {}, 'running'), ('on', {'paused': True}, 'paused'), ('on', {'running': True}, 'running')])
def test_revert_power_state_follows_the_snapshot_unless_told(conn, guests, run_module, snapshot, extra, power):
    run_module(kvm_snapshot.main, args(domain='kvmtest-off', name='off'))
    conn.lookupByName('kvmtest-off').create()
    run_module(kvm_snapshot.main, args(domain='kvmtest-off', name='on'))
    run_module(kvm_snapshot.main, args(domain='kvmtest-off', name='later'))
    conn.lookupByName('kvmtest-off').destroy()
    check = run_module(kvm_snapshot.main, args(domain='kvmtest-off', name=snapshot, state='current', **extra),
                       check_mode=True)
    result = run_module(kvm_snapshot.main, args(domain='kvmtest-off', name=snapshot, state='current', **extra))
    assert not result['failed'] and check['domain_state'] == result['domain_state'] == power
    state = conn.lookupByName('kvmtest-off').state()[0]
    assert _domain_facts.power_state(state) == power


def test_revert_to_a_snapshot_that_does_not_exist(conn, guests, run_module):
    run_module(kvm_snapshot.main, args())
    result = run_module(kvm_snapshot.main, args(name='nope', state='current'))
    assert result['failed'] and not result['changed']
    assert result['msg'] == ("snapshot 'nope' of domain 'kvmtest-run' does not exist, nothing to revert to "
                             "(its snapshots: s1)")


def test_a_running_guest_reverted_to_a_shut_off_snapshot_can_be_started_from_it(conn, guests, run_module):
    run_module(kvm_snapshot.main, args(domain='kvmtest-off'))
    run_module(kvm_snapshot.main, args(domain='kvmtest-off', name='s2'))
    handle = conn.lookupByName('kvmtest-off')
    handle.create()
    check = run_module(kvm_snapshot.main, args(domain='kvmtest-off', state='current', running=True), check_mode=True)
    assert check['changed'] and check['domain_state'] == 'running' and handle.snapshotCurrent().getName() == 's2'
    result = run_module(kvm_snapshot.main, args(domain='kvmtest-off', state='current', running=True))
    assert not result['failed'] and result['changed'] and result['actions'] == ['revert']
    assert handle.snapshotCurrent().getName() == 's1'
    # without running/paused the guest is shut off, as in the snapshot
    run_module(kvm_snapshot.main, args(domain='kvmtest-off', name='s2', state='current'))
    handle.create()
    plain = run_module(kvm_snapshot.main, args(domain='kvmtest-off', state='current'))
    assert not plain['failed'] and plain['domain_state'] == 'shutoff' and not handle.isActive()


# ---- state: absent --------------------------------------------------------------------------------
def make_tree(run_module):
    """s1 -> s2 -> s3, and s1 -> s4 (a branch after a revert to s1)."""
    for name in ('s1', 's2', 's3'):
        assert run_module(kvm_snapshot.main, args(name=name))['changed']
    assert run_module(kvm_snapshot.main, args(name='s1', state='current'))['changed']
    assert run_module(kvm_snapshot.main, args(name='s4'))['snapshot']['parent'] == 's1'


def test_absent_of_a_missing_snapshot_is_unchanged(conn, guests, run_module):
    result = run_module(kvm_snapshot.main, args(state='absent'))
    assert not result['failed'] and not result['changed'] and result['deleted'] == []
    assert result['snapshot'] == {'name': 's1', 'state': 'absent'}
    assert result['diff']['before'] == result['diff']['after'] == ''


def test_delete_a_leaf_check_mode_then_run_then_unchanged(conn, guests, run_module):
    make_tree(run_module)
    check = run_module(kvm_snapshot.main, args(name='s3', state='absent'), check_mode=True)
    assert check['changed'] and check['actions'] == ['delete'] and check['deleted'] == ['s3']
    assert 'name: s3\n' in check['diff']['before'] and check['diff']['after'] == ''
    assert snapshot_names(conn) == ['s1', 's2', 's3', 's4']
    result = run_module(kvm_snapshot.main, args(name='s3', state='absent'))
    assert result['changed'] and result['diff'] == check['diff'] and result['snapshot']['state'] == 'absent'
    assert snapshot_names(conn) == ['s1', 's2', 's4']
    assert not run_module(kvm_snapshot.main, args(name='s3', state='absent'))['changed']


def test_delete_a_middle_snapshot_needs_children(conn, guests, run_module):
    make_tree(run_module)
    refused = run_module(kvm_snapshot.main, args(name='s1', state='absent'))
    assert refused['failed'] and not refused['changed']
    assert refused['msg'] == ("snapshot 's1' of domain 'kvmtest-run' has children: s3, s2, s4. children: true "
                              "deletes them with it")
    assert refused['children'] == ['s3', 's2', 's4']
    assert snapshot_names(conn) == ['s1', 's2', 's3', 's4']

    middle = run_module(kvm_snapshot.main, args(name='s2', state='absent'))
    assert middle['failed'] and 'has children: s3' in middle['msg']
    check = run_module(kvm_snapshot.main, args(name='s2', state='absent', children=True), check_mode=True)
    assert check['actions'] == ['delete-child', 'delete'] and check['deleted'] == ['s3', 's2']
    assert 'children: s3\n' in check['diff']['before']
    result = run_module(kvm_snapshot.main, args(name='s2', state='absent', children=True))
    assert result['changed'] and result['deleted'] == ['s3', 's2'] and result['diff'] == check['diff']
    assert snapshot_names(conn) == ['s1', 's4']
    assert conn.lookupByName('kvmtest-run').snapshotCurrent().getName() == 's4'  # untouched branch
    assert not run_module(kvm_snapshot.main, args(name='s2', state='absent', children=True))['changed']


def test_deleting_the_current_snapshot_keeps_the_guest_running(conn, guests, run_module):
    run_module(kvm_snapshot.main, args())
    run_module(kvm_snapshot.main, args(name='s2'))
    result = run_module(kvm_snapshot.main, args(name='s2', state='absent'))
    assert result['changed'] and result['domain_state'] == 'running'
    handle = conn.lookupByName('kvmtest-run')
    assert handle.isActive() and handle.snapshotCurrent().getName() == 's1'


# ---- external snapshots (as metadata on the test driver) ----------------------------------------------
def external_chain(conn, guests):
    """kvmtest-ext: disk vda on /guest/base.qcow2, then e1 (overlay /guest/base.e1), then e2 over it."""
    guests('kvmtest-ext', disks=[('vda', '/guest/base.qcow2', 'qcow2')])
    redefine_external(conn, 'kvmtest-ext', 'e1', {'vda': ('/guest/base.qcow2', '/guest/base.e1')})
    redefine_external(conn, 'kvmtest-ext', 'e2', {'vda': ('/guest/base.e1', '/guest/base.e2')}, parent='e1')


def test_revert_to_external_is_refused(conn, guests, run_module):
    external_chain(conn, guests)
    result = run_module(kvm_snapshot.main, args(domain='kvmtest-ext', name='e1', state='current'))
    assert result['failed'] and not result['changed']
    assert "snapshot 'e1' of domain 'kvmtest-ext' is external" in result['msg']
    assert 'libvirt 9.0 cannot revert to external snapshots' in result['msg']
    assert conn.lookupByName('kvmtest-ext').snapshotCurrent().getName() == 'e2'


def test_mixing_internal_and_external_is_refused(conn, guests, run_module):
    external_chain(conn, guests)
    result = run_module(kvm_snapshot.main, args(domain='kvmtest-ext', name='i1'))
    assert result['failed'] and not result['changed']
    assert "domain 'kvmtest-ext' has external snapshots (e1, e2)" in result['msg']
    assert 'neither reverted nor deleted' in result['msg']
    run_module(kvm_snapshot.main, args())
    result = run_module(kvm_snapshot.main, args(name='x1', external=True))
    assert result['failed'] and "domain 'kvmtest-run' has internal snapshots (s1)" in result['msg']
    assert snapshot_names(conn, 'kvmtest-ext') == ['e1', 'e2'] and snapshot_names(conn) == ['s1']


def test_external_snapshot_is_compared_and_children_deleted_leaf_first(conn, guests, run_module):
    external_chain(conn, guests)
    same = run_module(kvm_snapshot.main, args(domain='kvmtest-ext', name='e1', external=True,
                                              disks=[{'target': 'vda', 'path': '/guest/base.e1'}]))
    assert not same['failed'] and not same['changed'] and same['snapshot']['kind'] == 'external'
    assert same['snapshot']['state'] == 'disk-snapshot'
    other = run_module(kvm_snapshot.main, args(domain='kvmtest-ext', name='e1', external=True,
                                               disks=[{'target': 'vda', 'path': '/guest/other'}]))
    assert other['failed'] and 'disks[0].path: /guest/other (the overlay of vda is /guest/base.e1)' in other['msg']
    refused = run_module(kvm_snapshot.main, args(domain='kvmtest-ext', name='e1', state='absent'))
    assert refused['failed'] and refused['msg'].endswith('children: true deletes them with it '
                                                         '(one at a time, leaf first)')
    result = run_module(kvm_snapshot.main, args(domain='kvmtest-ext', name='e1', state='absent', children=True))
    assert result['changed'] and result['actions'] == ['delete-child', 'delete'] and result['deleted'] == ['e2', 'e1']
    assert snapshot_names(conn, 'kvmtest-ext') == []


def test_external_snapshot_plan_names_the_overlays(conn, guests, run_module):
    guests('kvmtest-ext', disks=[('vda', '/guest/sys.qcow2', 'qcow2'), ('vdb', '/guest/data', 'raw')])
    check = run_module(kvm_snapshot.main, args(domain='kvmtest-ext', external=True, description='d'), check_mode=True)
    assert not check['failed'] and check['actions'] == ['create']
    assert check['snapshot'] == {
        'name': 's1', 'parent': None, 'created': None, 'state': 'disk-snapshot', 'current': True,
        'kind': 'external', 'description': 'd', 'memory': False,
        'disks': [{'target': 'vda', 'snapshot': 'external', 'path': '/guest/sys.s1'},
                  {'target': 'vdb', 'snapshot': 'external', 'path': '/guest/data.s1'},
                  {'target': 'sda', 'snapshot': 'no', 'path': None}]}
    only = run_module(kvm_snapshot.main, args(domain='kvmtest-ext', external=True, disks=[
        {'target': 'vda', 'include': False}, {'target': 'vdb', 'path': '/srv/data.overlay'}]), check_mode=True)
    assert only['snapshot']['disks'][:2] == [{'target': 'vda', 'snapshot': 'no', 'path': None},
                                             {'target': 'vdb', 'snapshot': 'external', 'path': '/srv/data.overlay'}]
    # the create itself is what the test driver cannot do: a libvirt failure, reported
    real = run_module(kvm_snapshot.main, args(domain='kvmtest-ext', external=True))
    assert real['failed'] and not real['changed'] and real['failed_action'] == 'create'
    assert real['actions'] == ['create'] and real['actions_done'] == []
    assert real['msg'].startswith("creating snapshot 's1' of domain 'kvmtest-ext' failed: ")
    assert real['libvirt_error']['code_name'] == 'VIR_ERR_INVALID_ARG'


def test_external_overlays_that_would_collide_or_cannot_be_named(conn, guests, run_module):
    guests('kvmtest-ext', disks=[('vda', '/guest/disk.qcow2', 'qcow2'), ('vdb', '/guest/disk.img', 'raw')])
    result = run_module(kvm_snapshot.main, args(domain='kvmtest-ext', external=True), check_mode=True)
    assert result['failed'] and 'disks vda and vdb would both get the overlay /guest/disk.s1' in result['msg']
    block = ("<disk type='block' device='disk'><driver name='qemu' type='raw'/><source dev='/dev/sdz'/>"
             "<target dev='vdc' bus='virtio'/></disk>")
    guests('kvmtest-blk', disks=[], extra_devices=block)
    result = run_module(kvm_snapshot.main, args(domain='kvmtest-blk', external=True), check_mode=True)
    assert result['failed'] and 'disk vdc is a block disk: give the overlay file' in result['msg']
    fine = run_module(kvm_snapshot.main, args(domain='kvmtest-blk', external=True,
                                              disks=[{'target': 'vdc', 'path': '/srv/sdz.s1'}]), check_mode=True)
    assert not fine['failed']
    assert fine['snapshot']['disks'][1] == {'target': 'vdc', 'snapshot': 'external', 'path': '/srv/sdz.s1'}


def test_volume_disk_overlay_goes_next_to_the_volume(conn, guests, run_module):
    pool = conn.storagePoolLookupByName('default-pool')
    pool.createXML("<volume><name>vm.qcow2</name><capacity>1048576</capacity>"
                   "<target><format type='qcow2'/></target></volume>", 0)
    volume = ("<disk type='volume' device='disk'><driver name='qemu' type='qcow2'/>"
              "<source pool='default-pool' volume='vm.qcow2'/><target dev='vda' bus='virtio'/></disk>")
    guests('kvmtest-vol', disks=[], extra_devices=volume)
    result = run_module(kvm_snapshot.main, args(domain='kvmtest-vol', external=True), check_mode=True)
    assert not result['failed']
    assert result['snapshot']['disks'][1] == {'target': 'vda', 'snapshot': 'external',
                                              'path': '/default-pool/vm.s1'}


def test_external_snapshot_of_a_shut_off_guest_is_recorded_shutoff(conn, guests, run_module):
    result = run_module(kvm_snapshot.main, args(domain='kvmtest-off', external=True), check_mode=True)
    assert not result['failed'] and result['snapshot']['state'] == 'shutoff'
    assert result['snapshot']['disks'][0] == {'target': 'vda', 'snapshot': 'external', 'path': '/guest/kvmtest-off.s1'}


def test_quiesce_needs_a_running_guest_with_its_agent(conn, guests, run_module):
    result = run_module(kvm_snapshot.main, args(external=True, quiesce=True), check_mode=True)
    assert result['failed'] and "quiesce: domain 'kvmtest-run' has no guest agent channel" in result['msg']
    result = run_module(kvm_snapshot.main, args(domain='kvmtest-off', external=True, quiesce=True), check_mode=True)
    assert result['failed'] and "quiesce: domain 'kvmtest-off' is shutoff" in result['msg']
    guests('kvmtest-agent', extra_devices=AGENT)
    result = run_module(kvm_snapshot.main, args(domain='kvmtest-agent', external=True, quiesce=True), check_mode=True)
    assert not result['failed'] and result['changed']


# ---- helpers for the rest of the collection ---------------------------------------------------------
def test_snapshot_facts_have_the_module_keys(conn, guests, run_module):
    handle = conn.lookupByName('kvmtest-run')
    assert _snapshot_facts.snapshot_facts(handle) == []
    first = run_module(kvm_snapshot.main, args(description='one'))['snapshot']
    second = run_module(kvm_snapshot.main, args(name='s2'))['snapshot']
    facts = _snapshot_facts.snapshot_facts(handle)
    assert [fact['name'] for fact in facts] == ['s1', 's2']
    assert facts[0] == dict(first, current=False) and facts[1] == second
    assert set(facts[0]) == set(_snapshot.FACT_KEYS)


def test_overlay_bases_follow_the_chain_to_the_disk_as_defined(conn, guests):
    external_chain(conn, guests)
    handle = conn.lookupByName('kvmtest-ext')
    bases = _snapshot_facts.overlay_bases(handle)
    assert sorted(bases) == ['/guest/base.e1', '/guest/base.e2']
    for base in bases.values():
        assert base.find('source').get('file') == '/guest/base.qcow2' and base.find('target').get('dev') == 'vda'
    assert _snapshot_facts.external_overlay_paths(handle) == ['/guest/base.e1', '/guest/base.e2']
    assert _snapshot_facts.overlay_bases(conn.lookupByName('kvmtest-run')) == {}


def actual_with_overlay(overlay='/guest/base.e2', base_type='file', base_source="file='/guest/base.qcow2'",
                        base_format='qcow2'):
    return ET.fromstring(
        "<domain><devices>"
        f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{overlay}'/>"
        f"<backingStore type='{base_type}'><format type='{base_format}'/><source {base_source}/></backingStore>"
        "<target dev='vda' bus='virtio'/><address type='pci' slot='0x04'/></disk>"
        "<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/guest/other.img'/>"
        "<target dev='vdb' bus='virtio'/></disk>"
        "</devices></domain>")


def base_disk(xml):
    return ET.fromstring(xml)


def test_follow_overlays_makes_the_overlay_no_drift_and_keeps_it():
    bases = {'/guest/base.e2': base_disk(
        "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/guest/base.qcow2'/>"
        "<target dev='vda' bus='virtio'/></disk>")}
    desired = ET.fromstring(
        "<domain><devices>"
        "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/guest/base.qcow2'/>"
        "<target dev='vda' bus='virtio'/></disk>"
        "<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/guest/other.img'/>"
        "<target dev='vdb' bus='virtio'/></disk>"
        "</devices></domain>")
    actual = actual_with_overlay()
    assert _snapshot_facts.follow_overlays(desired, actual, bases) == ['vda']
    assert desired.find('devices/disk/source').get('file') == '/guest/base.e2'
    assert desired.find('devices/disk/driver').get('type') == 'qcow2'
    assert desired.findall('devices/disk')[1].find('source').get('file') == '/guest/other.img'
    # nothing else to follow, and no bases: nothing changes
    assert _snapshot_facts.follow_overlays(desired, actual, {}) == []


def test_follow_overlays_leaves_a_real_change_alone():
    bases = {'/guest/base.e2': base_disk(
        "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/guest/base.qcow2'/>"
        "<target dev='vda'/></disk>")}
    for desired_disk in ("<source file='/guest/new.qcow2'/><driver name='qemu' type='qcow2'/>",
                         "<source file='/guest/base.qcow2'/><driver name='qemu' type='raw'/>"):
        desired = ET.fromstring(f"<domain><devices><disk type='file' device='disk'>{desired_disk}"
                                "<target dev='vda'/></disk></devices></domain>")
        before = ET.tostring(desired)
        assert _snapshot_facts.follow_overlays(desired, actual_with_overlay(), bases) == []
        assert ET.tostring(desired) == before


def test_follow_overlays_of_a_raw_base_and_of_a_volume():
    raw = {'/guest/data.s1': base_disk(
        "<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/guest/data.img'/>"
        "<target dev='vda'/></disk>")}
    desired = ET.fromstring("<domain><devices><disk type='file' device='disk'><driver name='qemu' type='raw'/>"
                            "<source file='/guest/data.img'/><target dev='vda'/></disk></devices></domain>")
    assert _snapshot_facts.follow_overlays(desired, actual_with_overlay('/guest/data.s1'), raw) == ['vda']
    assert desired.find('devices/disk/driver').get('type') == 'qcow2'  # the overlay's format
    volume = {'/pool/vm.s1': base_disk(
        "<disk type='volume' device='disk'><driver name='qemu' type='qcow2'/>"
        "<source pool='images' volume='vm.qcow2' index='1'/><target dev='vda'/></disk>")}
    desired = ET.fromstring("<domain><devices><disk type='volume' device='disk'><driver name='qemu' type='qcow2'/>"
                            "<source pool='images' volume='vm.qcow2'/><target dev='vda'/></disk></devices></domain>")
    assert _snapshot_facts.follow_overlays(desired, actual_with_overlay('/pool/vm.s1'), volume) == ['vda']
    disk = desired.find('devices/disk')
    assert disk.get('type') == 'file' and disk.find('source').attrib == {'file': '/pool/vm.s1'}


def test_rebase_disks_names_the_storage_as_defined():
    bases = {'/pool/vm.s1': base_disk(
        "<disk type='volume' device='disk'><driver name='qemu' type='qcow2'/>"
        "<source pool='images' volume='vm.qcow2'/><target dev='vda'/></disk>")}
    actual = actual_with_overlay('/pool/vm.s1')
    rebased = _snapshot_facts.rebase_disks(actual, bases)
    disk = rebased.find('devices/disk')
    assert disk.get('type') == 'volume' and disk.find('source').attrib == {'pool': 'images', 'volume': 'vm.qcow2'}
    assert disk.find('backingStore') is None and disk.find('address') is not None
    assert actual.find('devices/disk/source').get('file') == '/pool/vm.s1'  # a copy
    assert rebased.findall('devices/disk')[1].find('source').get('file') == '/guest/other.img'


def test_describe_snapshot_of_old_style_xml_without_memory_element():
    facts = _snapshot.describe_snapshot(ET.fromstring(
        '<domainsnapshot><name>old</name><state>running</state><creationTime>12</creationTime></domainsnapshot>'),
        current=False)
    assert facts == {'name': 'old', 'parent': None, 'created': 12, 'state': 'running', 'current': False,
                     'kind': 'internal', 'description': None, 'memory': True, 'disks': []}


# ---- the documentation's examples ---------------------------------------------------------------------
def test_examples_run_as_written(conn, guests, run_module):
    """Every EXAMPLES task, in order, on guests named like theirs. The one creating an external
    snapshot runs in check mode (every check, no libvirt call) since the test driver cannot
    create external snapshots; its snapshot is then given to the driver as metadata, so the
    next example deletes it for real. The integration target creates and deletes them on QEMU."""
    guests('web1')
    guests('db1', disks=[('vda', '/guest/db1.qcow2', 'qcow2'), ('vdb', '/guest/db1-data.qcow2', 'qcow2')],
           extra_devices=AGENT)
    tasks = yaml.safe_load(kvm_snapshot.EXAMPLES)
    assert len(tasks) >= 8
    for task in tasks:
        options = copy.deepcopy(task['hypervisor.kvm.kvm_snapshot'])
        external = bool(options.get('external'))
        result = run_module(kvm_snapshot.main, {**options, 'uri': URI}, check_mode=external)
        assert not result['failed'], f"example {task['name']!r} failed: {result.get('msg')}"
        assert result['changed'], task['name']
        if external:
            overlays = {disk['target']: (f"/guest/{options['domain']}-data.qcow2", disk['path'])
                        for disk in result['snapshot']['disks'] if disk['snapshot'] == 'external'}
            assert overlays == {'vdb': ('/guest/db1-data.qcow2', '/var/lib/libvirt/images/db1-data.nightly.qcow2')}
            redefine_external(conn, options['domain'], options['name'], overlays)
    assert snapshot_names(conn, 'web1') == snapshot_names(conn, 'db1') == []
