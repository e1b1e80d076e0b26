"""kvm_domain and kvm_domain_info against libvirt's test:///default driver: the XML built from
structured options, idempotence over libvirt's own additions, and every state transition."""

import pytest

from ansible_collections.hypervisor.kvm.plugins.module_utils import _domain, _xml
from ansible_collections.hypervisor.kvm.plugins.modules import kvm_domain, kvm_domain_info

RUN_WITH_DIFF = True  # these tests read the diff (test_diff_mode.py checks runs without it)

URI = 'test:///default'


def dom(**args):
    base = {'uri': URI, 'name': 'kvmtest-dom', 'virt_type': 'qemu', 'memory': '128MiB'}
    base.update(args)
    return {key: value for key, value in base.items() if value is not None}


def built(result):
    return _xml.parse_xml(result['diff']['after'].split('\n<', 1)[1].join(['<', '']), 'after')


def domain_state(conn, name='kvmtest-dom'):
    return _domain.power_state(conn.lookupByName(name).state()[0])


@pytest.mark.parametrize('args, path, expected', [
    ({}, '.', {'type': 'qemu'}),
    ({}, 'memory', ('131072', {'unit': 'KiB'})),
    ({'memory': '1GiB', 'max_memory': '2GiB'}, 'currentMemory', ('1048576', {'unit': 'KiB'})),
    ({'memory': '1GiB', 'max_memory': '2GiB'}, 'memory', ('2097152', {'unit': 'KiB'})),
    ({'memory': 512}, 'memory', ('524288', {'unit': 'KiB'})),
    ({'vcpus': 2, 'max_vcpus': 4}, 'vcpu', ('4', {'placement': 'static', 'current': '2'})),
    ({}, 'vcpu', ('1', {'placement': 'static'})),
    ({}, 'os/type', ('hvm', {'arch': 'x86_64', 'machine': 'q35'})),
    ({'machine': 'pc'}, 'os/type', ('hvm', {'arch': 'x86_64', 'machine': 'pc'})),
    ({}, 'os/boot', {'dev': 'hd'}),
    ({'firmware': 'efi'}, 'os', {'firmware': 'efi'}),
    ({'firmware': 'efi', 'secure_boot': True}, 'features/smm', {'state': 'on'}),
    # A new UEFI definition without secure_boot asks for a firmware without Secure Boot.
    ({'firmware': 'efi'}, "os/firmware/feature[@name='secure-boot']", {'enabled': 'no'}),
    ({'firmware': 'efi'}, "os/firmware/feature[@name='enrolled-keys']", {'enabled': 'no'}),
    ({'firmware': 'efi', 'secure_boot': True}, "os/firmware/feature[@name='secure-boot']", {'enabled': 'yes'}),
    ({'cpu': {'mode': 'host-passthrough'}}, 'cpu', {'mode': 'host-passthrough'}),
    ({'cpu': {'model': 'Skylake-Client'}}, 'cpu/model', ('Skylake-Client', {'fallback': 'allow'})),
    ({'vcpus': 4, 'cpu': {'mode': 'host-model', 'sockets': 1, 'cores': 2, 'threads': 2}}, 'cpu/topology',
     {'sockets': '1', 'dies': '1', 'cores': '2', 'threads': '2'}),
    ({'boot': {'devices': ['cdrom', 'hd']}}, 'os/boot', {'dev': 'cdrom'}),
    ({'boot': {'kernel': '/k', 'initrd': '/i', 'cmdline': 'console=ttyS0'}}, 'os/cmdline', ('console=ttyS0', {})),
    ({}, 'features/acpi', {}),
    ({}, 'devices/serial', {'type': 'pty'}),
    ({'console': {'log': '/var/log/c.log'}}, 'devices/serial/log', {'file': '/var/log/c.log', 'append': 'on'}),
    ({}, 'devices/rng', {'model': 'virtio'}),
    ({'guest_agent': True}, 'devices/channel/target', {'type': 'virtio', 'name': 'org.qemu.guest_agent.0'}),
    ({'tpm': True}, 'devices/tpm/backend', {'type': 'emulator', 'version': '2.0'}),
    ({'graphics': 'vnc'}, 'devices/graphics', {'type': 'vnc', 'listen': '127.0.0.1', 'autoport': 'yes'}),
    ({'graphics': {'type': 'spice', 'listen': '0.0.0.0', 'port': 5930}}, 'devices/graphics',
     {'type': 'spice', 'listen': '0.0.0.0', 'port': '5930'}),
    ({'interfaces': [{'network': 'default'}]}, 'devices/interface/model', {'type': 'virtio'}),
    ({'interfaces': [{'network': 'default', 'mac': '52:54:00:AA:BB:CC'}]}, 'devices/interface/mac',
     {'address': '52:54:00:aa:bb:cc'}),
    ({'interfaces': [{'bridge': 'br0', 'model': 'e1000e'}]}, 'devices/interface/source', {'bridge': 'br0'}),
    ({'interfaces': [{'direct': 'eth0'}]}, 'devices/interface/source', {'dev': 'eth0', 'mode': 'bridge'}),
    ({'disks': [{'path': '/etc/hostname', 'device': 'cdrom'}]}, 'devices/disk/target', {'dev': 'sda', 'bus': 'sata'}),
    ({'disks': [{'path': '/etc/hostname', 'format': 'raw'}]}, 'devices/disk/target', {'dev': 'vda', 'bus': 'virtio'}),
    ({'disks': [{'path': '/etc/hostname', 'format': 'raw'}]}, 'devices/disk/source', {'file': '/etc/hostname'}),
    ({'disks': [{'path': '/etc/hostname', 'cache': 'none', 'format': 'raw'}]}, 'devices/disk/driver',
     {'name': 'qemu', 'type': 'raw', 'cache': 'none'}),
])
def test_structured_options_build_the_expected_elements(conn, run_module, args, path, expected):
    result = run_module(kvm_domain.main, dom(**args), check_mode=True)
    assert not result['failed'], result.get('msg')
    element = built(result) if path == '.' else built(result).find(path)
    assert element is not None, f'no {path} in {result["diff"]["after"]}'
    if isinstance(expected, tuple):
        text, attributes = expected
        assert (element.text or '').strip() == text
    else:
        attributes = expected
    for key, value in attributes.items():
        assert element.get(key) == value, (path, key, element.attrib)


def test_disk_targets_are_numbered_per_bus(conn, run_module):
    conn.storagePoolLookupByName('default-pool').createXML(
        "<volume><name>a.qcow2</name><capacity>1048576</capacity><target><format type='qcow2'/></target></volume>")
    result = run_module(kvm_domain.main, dom(disks=[
        {'volume': 'a.qcow2', 'pool': 'default-pool'}, {'path': '/etc/hostname', 'format': 'raw'},
        {'device': 'cdrom'}, {'path': '/etc/hostname', 'bus': 'scsi', 'format': 'raw'}]), check_mode=True)
    disks = {d.find('target').get('dev'): d for d in built(result).findall('devices/disk')}
    assert sorted(disks) == ['sda', 'sdb', 'vda', 'vdb']
    assert disks['vda'].get('type') == 'volume' and disks['vda'].find('driver').get('type') == 'qcow2'
    assert disks['vda'].find('source').attrib == {'pool': 'default-pool', 'volume': 'a.qcow2'}
    assert disks['vdb'].find('source').get('file') == '/etc/hostname'
    assert disks['sda'].find('source') is None and disks['sda'].find('readonly') is not None
    assert disks['sdb'].find('target').get('bus') == 'scsi'


def test_defining_twice_is_a_no_op_over_libvirts_additions(conn, run_module):
    args = dom(interfaces=[{'network': 'default'}], vcpus=2, graphics={'type': 'vnc', 'password': 'pw'})
    first = run_module(kvm_domain.main, args)
    assert first['actions'] == ['define'] and first['domain']['uuid']
    xml = conn.lookupByName('kvmtest-dom').XMLDesc(0)
    assert '<uuid>' in xml and '<mac address=' in xml  # libvirt's additions
    second = run_module(kvm_domain.main, args)
    assert not second['changed'] and second['actions'] == [] and second['restart_required'] is False
    assert 'pw' not in second['domain']['xml'] and 'pw' not in second['diff']['after']
    mac = first['domain']['interfaces'][0]['mac']
    changed = run_module(kvm_domain.main, dict(args, vcpus=3))
    assert changed['actions'] == ['define'] and changed['domain']['interfaces'][0]['mac'] == mac
    assert changed['domain']['uuid'] == first['domain']['uuid']
    # the module's own spelling (vcpu current dropped when it equals the count) is not "not kept"
    for result in (first, second, changed):
        assert not [w for w in result.get('warnings', []) if 'does not keep' in str(w)]


def test_xml_definition_is_a_subset_and_keeps_uuid_and_macs(conn, run_module):
    xml = """<domain type='qemu'><name>kvmtest-xml</name><memory unit='MiB'>64</memory>
      <os><type arch='x86_64'>hvm</type></os>
      <devices><interface type='network'><source network='default'/></interface></devices></domain>"""
    first = run_module(kvm_domain.main, {'uri': URI, 'xml': xml})
    assert first['actions'] == ['define']
    again = run_module(kvm_domain.main, {'uri': URI, 'xml': xml})
    assert not again['changed']
    dumped = conn.lookupByName('kvmtest-xml').XMLDesc(0)
    assert not run_module(kvm_domain.main, {'uri': URI, 'xml': dumped})['changed']


def test_every_state_transition(conn, run_module):
    steps = [
        ('present', ['define'], 'shutoff'),
        ('running', ['start'], 'running'),
        ('paused', ['pause'], 'paused'),
        ('running', ['resume'], 'running'),
        ('shutdown', ['shutdown'], 'shutoff'),
        ('paused', ['start', 'pause'], 'paused'),
        ('destroyed', ['destroy'], 'shutoff'),
    ]
    for state, actions, power in steps:
        check = run_module(kvm_domain.main, dom(state=state), check_mode=True)
        assert check['actions'] == actions, state
        assert check['domain']['state'] == power
        if actions != ['define']:
            assert domain_state(conn) != power or state == 'present'
        result = run_module(kvm_domain.main, dom(state=state))
        assert result['actions'] == actions and result['domain']['state'] == power, state
        assert result['diff']['after'].startswith(f'state: {power}\n')
        assert domain_state(conn) == power
        assert not run_module(kvm_domain.main, dom(state=state))['changed'], state
    absent = run_module(kvm_domain.main, dom(state='absent'), check_mode=True)
    assert absent['actions'] == ['undefine'] and absent['diff']['after'] == ''
    assert run_module(kvm_domain.main, dom(state='absent'))['actions'] == ['undefine']
    assert 'kvmtest-dom' not in [d.name() for d in conn.listAllDomains()]
    assert not run_module(kvm_domain.main, {'uri': URI, 'name': 'kvmtest-dom', 'state': 'absent'})['changed']


def test_running_domain_removed_is_destroyed_first(conn, run_module):
    run_module(kvm_domain.main, dom(state='running', autostart=True))
    result = run_module(kvm_domain.main, {'uri': URI, 'name': 'kvmtest-dom', 'state': 'absent'})
    assert result['actions'] == ['destroy', 'undefine']


def test_autostart_with_every_state(conn, run_module):
    result = run_module(kvm_domain.main, dom(state='present', autostart=True))
    assert result['actions'] == ['define', 'autostart'] and result['domain']['autostart']
    result = run_module(kvm_domain.main, dom(state='running', autostart=False))
    assert result['actions'] == ['start', 'disable-autostart']


def test_virt_type_auto_on_a_host_without_kvm_warns(conn, run_module):
    result = run_module(kvm_domain.main, dom(virt_type='auto'), check_mode=True)
    assert built(result).get('type') == 'qemu'
    assert 'virt_type auto chose qemu' in str(result['warnings'])
    assert result['virt_type_reason']


def test_remove_storage_deletes_only_the_domains_own_disks(conn, run_module):
    pool = conn.storagePoolLookupByName('default-pool')
    for name in ('disk.qcow2', 'seed.iso', 'shared.qcow2'):
        pool.createXML(f"<volume><name>{name}</name><capacity>1048576</capacity></volume>")
    run_module(kvm_domain.main, {'uri': URI, 'name': 'kvmtest-other', 'virt_type': 'qemu', 'memory': '64MiB',
                                 'disks': [{'volume': 'shared.qcow2', 'pool': 'default-pool'}]})
    run_module(kvm_domain.main, dom(disks=[{'volume': 'disk.qcow2', 'pool': 'default-pool'},
                                           {'volume': 'shared.qcow2', 'pool': 'default-pool'},
                                           {'volume': 'seed.iso', 'pool': 'default-pool', 'device': 'cdrom'}]))
    check = run_module(kvm_domain.main, dom(state='absent', remove_storage=True), check_mode=True)
    assert check['actions'] == ['undefine', 'remove-storage']
    assert check['removed_storage'] == ['/default-pool/disk.qcow2']
    result = run_module(kvm_domain.main, dom(state='absent', remove_storage=True))
    assert result['removed_storage'] == ['/default-pool/disk.qcow2']
    assert 'another domain uses it' in str(result['warnings'])
    assert sorted(pool.listVolumes()) == ['seed.iso', 'shared.qcow2']


@pytest.mark.parametrize('args, words', [
    ({'memory': None, 'xml': '<domain type="qemu"><name>x</name>'}, ['not well-formed']),
    ({'memory': None, 'name': 'a', 'xml': "<domain type='qemu'><name>b</name></domain>"}, ["name 'a' does not match"]),
    ({'memory': None, 'name': None, 'xml': "<domain><name>kvmtest-dom</name></domain>"}, ['needs a type']),
    ({'interfaces': [{'network': 'kvmtest-nonet'}]}, ["network 'kvmtest-nonet' does not exist"]),
    ({'interfaces': [{'network': 'default', 'bridge': 'br0'}]}, ['exactly one of network, bridge or direct']),
    ({'interfaces': [{'network': 'default', 'mac': 'nope'}]}, ['not a MAC address']),
    ({'disks': [{'volume': 'x', 'pool': 'kvmtest-nopool'}]}, ["storage pool 'kvmtest-nopool' does not exist"]),
    ({'disks': [{'volume': 'missing.qcow2', 'pool': 'default-pool'}]}, ["no volume 'missing.qcow2'"]),
    ({'disks': [{'path': 'relative.img'}]}, ['not an absolute path']),
    ({'disks': [{}]}, ['needs a volume (with pool) or a path']),
    ({'memory': '-1'}, ['memory: cannot read']),
    ({'memory': '100TiB'}, ['more than the host has']),
    ({'memory': '1MiB'}, ['too small']),
    ({'memory': '2GiB', 'max_memory': '1GiB'}, ['less than memory']),
    ({'vcpus': 4, 'max_vcpus': 2}, ['vcpus: 4 is more than max_vcpus 2']),
    ({'vcpus': 0}, ['at least 1']),
    ({'vcpus': 2, 'cpu': {'sockets': 2, 'cores': 2}}, ['sockets * cores * threads = 4']),
    ({'cpu': {'mode': 'custom'}}, ['cpu.model: required']),
    ({'secure_boot': True}, ['needs firmware: efi']),
    ({'boot': {'initrd': '/i'}}, ['need a kernel']),
    ({'graphics': 'rdp'}, ["graphics: expected none, vnc or spice", "got 'rdp'"]),
    ({'graphics': {'type': 'rdp'}}, ['graphics: value of type must be one of: none, vnc, spice, got: rdp']),
    ({'graphics': {'type': 'vnc', 'passwrd': 'secret'}}, ['graphics: unknown key(s) passwrd']),
    ({'graphics': 0}, ['graphics: expected none, vnc or spice', 'got 0 (int)']),
    ({'graphics': []}, ['graphics: expected', 'got [] (list)']),
    ({'console': 'maybe'}, ['console: expected a boolean', "got 'maybe'"]),
    ({'console': {'log': '/var/tmp/x', 'colour': 1}}, ['console: unknown key(s) colour']),
    ({'graphics': {'type': 'vnc', 'password': 'longer-than-8'}}, ['at most 8 characters']),
    ({'wait_for_ip': 10}, ['only with state: running']),
    ({'remove_storage': True}, ['only with state: absent']),
    ({'xml': '<domain/>', 'memory': '1G'}, ['mutually exclusive']),
])
def test_bad_input_fails_clearly_and_changes_nothing(conn, run_module, args, words):
    before = sorted(d.name() for d in conn.listAllDomains())
    result = run_module(kvm_domain.main, dom(**args))
    assert result['failed']
    for word in words:
        assert word in result['msg']
    assert sorted(d.name() for d in conn.listAllDomains()) == before


def test_domain_info_summary_and_details(conn, run_module):
    run_module(kvm_domain.main, dom(interfaces=[{'network': 'default'}], state='running', autostart=True))
    summary = run_module(kvm_domain_info.main, {'uri': URI})
    names = [d['name'] for d in summary['domains']]
    assert names == ['kvmtest-dom', 'test']
    mine = summary['domains'][0]
    assert mine['state'] == 'running' and mine['autostart'] and mine['persistent']
    assert {'vcpus', 'memory', 'disks', 'has_managed_save', 'has_snapshots'} <= set(mine)  # test driver: state only
    assert 'xml' not in mine
    details = run_module(kvm_domain_info.main, {'uri': URI, 'name': 'kvmtest-dom'}, check_mode=True)
    one = details['domains'][0]
    assert one['interfaces'][0]['network'] == 'default' and one['interfaces'][0]['mac'].startswith('52:54:00')
    assert one['virt_type'] == 'qemu' and '<name>kvmtest-dom</name>' in one['xml']
    assert one['snapshot_count'] == 0 and one['state_reason'] == 'booted'
    assert run_module(kvm_domain_info.main, {'uri': URI, 'name': 'kvmtest-missing'})['domains'] == []
    every = run_module(kvm_domain_info.main, {'uri': URI, 'details': True})
    assert [d['name'] for d in every['domains']] == names and 'xml' in every['domains'][0]


def test_project_ignores_runtime_details():
    inactive = _xml.parse_xml("""<domain><memory>1</memory><devices>
      <interface type='network'><mac address='52:54:00:00:00:01'/><source network='n'/><model type='virtio'/>
      <address type='pci' slot='1'/></interface></devices></domain>""", 'x')
    live = _xml.parse_xml("""<domain id='3'><memory>1</memory><devices>
      <interface type='network'><mac address='52:54:00:00:00:01'/><source network='n' portid='x' bridge='virbr9'/>
      <target dev='vnet3'/><model type='virtio'/><alias name='net0'/></interface></devices></domain>""", 'x')
    assert not _xml.differences(_domain.project(inactive), _domain.project(live),
                                frozenset({'devices/interface'}))


def test_machine_aliases_match_the_versioned_type():
    current = _xml.parse_xml("<type machine='pc-q35-7.2'>hvm</type>", 'x')
    assert _domain.resolve_machine('q35', current) == 'pc-q35-7.2'
    assert _domain.resolve_machine('pc', current) == 'pc'
    assert _domain.resolve_machine('pc-q35-8.0', current) == 'pc-q35-8.0'


@pytest.mark.parametrize('virt_type, mode', [('qemu', 'maximum'), ('kvm', 'host-passthrough')])
def test_a_new_guest_without_cpu_gets_one_modern_distributions_boot_on(conn, run_module, virt_type, mode):
    result = run_module(kvm_domain.main, dom(virt_type=virt_type))
    assert not result['failed'] and built(result).find('cpu').get('mode') == mode
    # a topology alone keeps the default mode
    topology = run_module(kvm_domain.main, dom(name='kvmtest-dom-top', virt_type=virt_type, vcpus=2,
                                               cpu={'sockets': 1, 'cores': 2}))
    assert built(topology).find('cpu').get('mode') == mode
    assert built(topology).find('cpu/topology').get('cores') == '2'


def test_an_existing_guest_without_cpu_keeps_its_cpu(conn, run_module):
    # defined without <cpu> (as by an earlier release, or by hand): the default is not drift
    conn.defineXML("<domain type='qemu'><name>kvmtest-dom</name><memory unit='MiB'>128</memory>"
                   "<os><type arch='x86_64'>hvm</type></os></domain>")
    result = run_module(kvm_domain.main, dom(vcpus=1))
    assert not result['changed'] and not result['restart_required'], result
    assert '<cpu' not in conn.lookupByName('kvmtest-dom').XMLDesc(0)
    custom = run_module(kvm_domain.main, dom(cpu={'mode': 'custom', 'model': 'qemu64'}))
    assert custom['changed'] and built(custom).find('cpu/model').text == 'qemu64'


def test_an_existing_uefi_guest_without_secure_boot_keeps_its_firmware(conn, run_module):
    # defined with firmware='efi' and no feature list (as by an earlier release): not drift
    conn.defineXML("<domain type='qemu'><name>kvmtest-dom</name><memory unit='MiB'>128</memory>"
                   "<os firmware='efi'><type arch='x86_64' machine='q35'>hvm</type></os>"
                   "<features><acpi/><apic/></features></domain>")
    before = conn.lookupByName('kvmtest-dom').XMLDesc(0)
    result = run_module(kvm_domain.main, dom(firmware='efi'))
    assert not result['changed'] and not result['restart_required'], result
    assert conn.lookupByName('kvmtest-dom').XMLDesc(0) == before
