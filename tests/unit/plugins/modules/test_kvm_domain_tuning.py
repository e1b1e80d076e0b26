"""kvm_domain's shared folders (virtiofs), devices and tuning against libvirt's test:///default
driver: the XML each option builds, a second run that changes nothing, check mode, removal by
an empty value, and the refusals (a clear message, nothing changed)."""

import os

import pytest

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.modules import kvm_domain

RUN_WITH_DIFF = True

URI = 'test:///default'
SHARE = os.path.dirname(__file__)  # a directory that exists


def dom(**args):
    base = {'uri': URI, 'name': 'kvmtest-tune', 'virt_type': 'qemu', 'memory': '128MiB', 'vcpus': 2}
    base.update(args)
    return base


def stored(conn, name='kvmtest-tune'):
    return _xml.parse_xml(conn.lookupByName(name).XMLDesc(2), 'stored')  # VIR_DOMAIN_XML_INACTIVE


OPTIONS = {
    'filesystems': ([{'source': SHARE, 'target': 'share'}], [
        ("devices/filesystem[@type='mount']/driver", {'type': 'virtiofs'}),
        ('devices/filesystem/source', {'dir': SHARE}),
        ('devices/filesystem/target', {'dir': 'share'}),
        # shared memory, as virtiofs needs, without being asked
        ('memoryBacking/source', {'type': 'memfd'}),
        ('memoryBacking/access', {'mode': 'shared'}),
    ]),
    'watchdog': ({'model': 'i6300esb', 'action': 'poweroff'}, [
        ('devices/watchdog', {'model': 'i6300esb', 'action': 'poweroff'})]),
    'video': ({'model': 'virtio', 'heads': 2}, [('devices/video/model', {'type': 'virtio', 'heads': '2'})]),
    'memory_backing': ({'hugepages': True, 'hugepage_size': '2MiB', 'locked': True}, [
        ('memoryBacking/hugepages/page', {'size': '2048', 'unit': 'KiB'}), ('memoryBacking/locked', {})]),
    'numa': ([{'cpus': '0', 'memory': '64MiB'}, {'cpus': '1', 'memory': '64MiB'}], [
        ("cpu/numa/cell[@id='0']", {'cpus': '0', 'memory': '65536', 'unit': 'KiB'}),
        ("cpu/numa/cell[@id='1']", {'cpus': '1', 'memory': '65536', 'unit': 'KiB'})]),
    'cputune': ({'vcpupin': [{'vcpu': 0, 'cpuset': '0'}, {'vcpu': 1, 'cpuset': '1-3'}], 'emulatorpin': '0-1'}, [
        ("cputune/vcpupin[@vcpu='1']", {'cpuset': '1-3'}), ('cputune/emulatorpin', {'cpuset': '0-1'})]),
    'hostdevs': ([{'pci': '0000:03:00.0'}, {'usb': {'vendor': '046d', 'product': '0xC52B'}}], [
        ("devices/hostdev[@type='pci']/source/address",
         {'domain': '0x0000', 'bus': '0x03', 'slot': '0x00', 'function': '0x0'}),
        ("devices/hostdev[@type='usb']/source/vendor", {'id': '0x046d'}),
        ("devices/hostdev[@type='usb']/source/product", {'id': '0xc52b'})]),
}


@pytest.mark.parametrize('option', sorted(OPTIONS))
def test_each_option_is_defined_read_back_without_drift_and_predicted(conn, run_module, option):
    value, expected = OPTIONS[option]
    check = run_module(kvm_domain.main, dom(**{option: value}), check_mode=True)
    assert check['changed'] and not check['failed'], check.get('msg')
    assert 'kvmtest-tune' not in [d.name() for d in conn.listAllDomains()]
    first = run_module(kvm_domain.main, dom(**{option: value}))
    assert first['changed'] and not first['failed'], first.get('msg')
    definition = stored(conn)
    for path, attributes in expected:
        element = definition.find(path)
        assert element is not None, f'no {path} in {_xml.to_text(definition)}'
        for key, wanted in attributes.items():
            assert element.get(key) == wanted, (path, key, element.attrib)
    again = run_module(kvm_domain.main, dom(**{option: value}))
    assert not again['changed'], again['diff']
    assert not run_module(kvm_domain.main, dom(**{option: value}), check_mode=True)['changed']


@pytest.mark.parametrize('option, empty, path', [
    ('filesystems', [], 'devices/filesystem'),
    ('watchdog', {}, 'devices/watchdog'),
    ('hostdevs', [], 'devices/hostdev'),
    ('memory_backing', {}, 'memoryBacking'),
    ('numa', [], 'cpu/numa'),
    ('cputune', {}, 'cputune'),
])
def test_an_empty_value_removes_what_the_option_made(conn, run_module, option, empty, path):
    value, _expected = OPTIONS[option]
    run_module(kvm_domain.main, dom(**{option: value}))
    assert stored(conn).find(path) is not None
    removed = run_module(kvm_domain.main, dom(**{option: empty}))
    assert removed['changed'] and not removed['failed'], removed.get('msg')
    assert stored(conn).find(path) is None, _xml.to_text(stored(conn))
    assert not run_module(kvm_domain.main, dom(**{option: empty}))['changed']
    # left out, the option leaves the definition alone
    run_module(kvm_domain.main, dom(**{option: value}))
    assert not run_module(kvm_domain.main, dom())['changed']


def test_numa_cells_are_checked_against_the_vcpus_defined_today(conn, run_module):
    run_module(kvm_domain.main, dom())
    args = dom(numa=[{'cpus': '0-3', 'memory': '128MiB'}])
    del args['vcpus']
    result = run_module(kvm_domain.main, args)
    assert result['failed'] and 'vCPU 2 does not exist (the guest has 2)' in result['msg'], result.get('msg')


def test_a_change_on_a_running_guest_needs_a_restart(conn, run_module):
    run_module(kvm_domain.main, dom(state='running', watchdog={'action': 'reset'}))
    changed = run_module(kvm_domain.main, dom(state='running', watchdog={'action': 'poweroff'}))
    assert changed['changed'] and changed['restart_required'], changed


@pytest.mark.parametrize('args, message', [
    ({'filesystems': [{'source': 'relative/dir', 'target': 'a'}]}, 'filesystems[0].source'),
    ({'filesystems': [{'source': SHARE, 'target': 'has blank'}]}, 'filesystems[0].target'),
    ({'filesystems': [{'source': SHARE, 'target': 'a'}, {'source': SHARE, 'target': 'a'}]}, 'another share'),
    ({'filesystems': [{'source': SHARE, 'target': 'a', 'readonly': True}]}, 'cannot make a virtiofs share read-only'),
    ({'filesystems': [{'source': SHARE, 'target': 'a'}], 'memory_backing': {'shared': False}},
     'need the memory shared'),
    ({'numa': [{'cpus': '0-1', 'memory': '64MiB'}, {'cpus': '1', 'memory': '64MiB'}]}, 'vCPU 1 is in another cell'),
    ({'numa': [{'cpus': '0-5', 'memory': '64MiB'}]}, 'vCPU 2 does not exist'),
    ({'numa': [{'cpus': 'zero', 'memory': '64MiB'}]}, 'is not a CPU list'),
    ({'cputune': {'vcpupin': [{'vcpu': 0, 'cpuset': '3-1'}]}}, 'cputune.vcpupin[0].cpuset'),
    ({'cputune': {'vcpupin': [{'vcpu': 0, 'cpuset': '1'}, {'vcpu': 0, 'cpuset': '2'}]}}, 'pinned twice'),
    ({'hostdevs': [{'pci': 'slot three'}]}, 'is not a PCI address'),
    ({'hostdevs': [{'usb': {'vendor': 'logitech', 'product': '1'}}]}, 'hostdevs[0].usb.vendor'),
    ({'hostdevs': [{'managed': True}]}, 'give one of pci'),
    ({'video': {'model': 'virtio', 'heads': 0}}, 'video.heads'),
    ({'memory_backing': {'hugepage_size': 'big'}}, 'memory_backing.hugepage_size'),
])
def test_bad_input_fails_clearly_and_changes_nothing(conn, run_module, args, message):
    result = run_module(kvm_domain.main, dom(**args))
    assert result['failed'] and message in result['msg'], result.get('msg')
    assert 'kvmtest-tune' not in [d.name() for d in conn.listAllDomains()]
