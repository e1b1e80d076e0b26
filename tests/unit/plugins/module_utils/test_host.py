"""kvm_host_info's parsing of recorded /proc/cpuinfo samples and /sys states."""

import pytest

from ansible_collections.hypervisor.kvm.plugins.module_utils import _host

INTEL = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Core(TM) i7-8665U CPU @ 1.90GHz
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic vmx smx est tm2 ssse3

processor\t: 1
vendor_id\t: GenuineIntel
"""
AMD = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7763 64-Core Processor
flags\t\t: fpu vme de pse tsc msr pae svm extapic cr8_legacy npt
"""
NESTED = """vendor_id\t: GenuineIntel
model name\t: Intel Xeon Processor (Cascadelake)
flags\t\t: fpu vme vmx hypervisor lm
"""
NO_FLAGS = """vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu vme de pse tsc msr pae hypervisor lm
"""
S390 = """vendor_id       : IBM/S390
# processors    : 2
features\t: esan3 zarch stfle msa ldisp eimm dfp edat etf3eh highgprs te vx sie
"""
ARM = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics
CPU implementer\t: 0x41
"""


@pytest.mark.parametrize('text, vendor, flag, in_vm', [
    (INTEL, 'intel', 'vmx', False),
    (AMD, 'amd', 'svm', False),
    (NESTED, 'intel', 'vmx', True),
    (NO_FLAGS, 'intel', None, True),
    (S390, 'ibm', 'sie', False),
    (ARM, 'arm', None, False),
    ('', None, None, False),
])
def test_cpu_facts(text, vendor, flag, in_vm):
    facts = _host.cpu_facts(text)
    assert (facts['vendor'], facts['virt_flag'], facts['hypervisor_flag']) == (vendor, flag, in_vm)


def kvm(present=True, usable=True, **extra):
    return {'present': present, 'usable': usable, 'owner': 'root', 'group': 'kvm', 'mode': '0660', **extra}


@pytest.mark.parametrize('text, provider, device, mode, auto, words', [
    (INTEL, 'kvm_intel', kvm(), 'kvm', 'kvm', ['vmx', 'kvm_intel', 'usable']),
    (AMD, 'kvm_amd', kvm(), 'kvm', 'kvm', ['svm', 'kvm_amd']),
    (NESTED, 'kvm_intel', kvm(), 'kvm', 'kvm', ['kvm_intel']),
    (NO_FLAGS, 'kvm_pvm', kvm(), 'kvm', 'qemu', ['kvm_pvm', 'no vmx/svm flag', 'auto picks qemu']),
    (NO_FLAGS, None, kvm(present=False, usable=False), 'qemu', 'qemu', ['enable VT-x/AMD-V in the firmware']),
    (INTEL, None, kvm(present=False, usable=False), 'qemu', 'qemu', ['/dev/kvm is missing', 'load kvm_intel']),
    (AMD, None, kvm(present=False, usable=False), 'qemu', 'qemu', ['load kvm_amd']),
    (INTEL, 'kvm_intel', kvm(usable=False, mode='0600', group='root', error='Permission denied'), 'qemu', 'qemu',
     ['not usable (Permission denied)', 'root:root 0600', 'group kvm, 0660']),
])
def test_virt_mode_and_reason_in_plain_words(text, provider, device, mode, auto, words):
    facts = _host.host_virt_facts(text, provider, device)
    assert facts['virt_mode'] == mode and facts['auto_virt_type'] == auto
    for word in words:
        assert word in facts['virt_mode_reason']


def test_sys_states(tmp_path):
    sys_module = tmp_path / 'module'
    (sys_module / 'kvm' / 'parameters').mkdir(parents=True)
    (sys_module / 'kvm_intel' / 'parameters').mkdir(parents=True)
    (sys_module / 'kvm_intel' / 'parameters' / 'nested').write_text('Y\n')
    (sys_module / 'kvm_intel' / 'initstate').write_text('live\n')
    proc_modules = tmp_path / 'modules'
    proc_modules.write_text('kvm_intel 368640 0 - Live 0x0\nkvm 1101824 1 kvm_intel, Live 0x0\n')
    assert _host.kvm_provider(str(sys_module)) == 'kvm_intel'
    assert _host.module_state('kvm_intel', str(sys_module), str(proc_modules)) == 'loaded'
    assert _host.module_state('kvm', str(sys_module), str(tmp_path / 'no-proc-modules')) == 'builtin'
    assert _host.module_state('kvm_amd', str(sys_module), str(proc_modules)) == 'absent'
    assert _host.nested_state('kvm_intel', str(sys_module)) is True
    assert _host.nested_state('kvm', str(sys_module)) is None
    assert _host.kvm_provider(str(tmp_path / 'nothing')) is None


def test_pvm_provider_is_found_after_hardware_ones(tmp_path):
    for name in ('kvm', 'kvm_pvm'):
        (tmp_path / name).mkdir()
    assert _host.kvm_provider(str(tmp_path)) == 'kvm_pvm'


def test_missing_device(tmp_path):
    facts = _host.kvm_device_facts(str(tmp_path / 'kvm'))
    assert facts == {'present': False, 'usable': False, 'api_version': None, 'owner': None, 'group': None,
                     'mode': None}


def test_a_file_that_is_not_kvm_is_not_usable(tmp_path):
    fake = tmp_path / 'kvm'
    fake.write_text('')
    facts = _host.kvm_device_facts(str(fake))
    assert facts['present'] and not facts['usable'] and facts['mode']


def test_hardware_facts_on_this_machine_are_consistent():
    facts = _host.hardware_facts()
    assert facts['virt_mode'] in ('kvm', 'qemu') and facts['virt_mode_reason']
    assert facts['auto_virt_type'] in ('kvm', 'qemu')
    if facts['auto_virt_type'] == 'kvm':
        assert facts['kvm']['provider'] in _host.HARDWARE_PROVIDERS


def test_libvirt_facts_from_the_test_driver(conn):
    facts = _host.libvirt_facts(conn)
    assert facts['reachable'] and facts['uri'] == 'test:///default'
    assert facts['libvirt_version'].count('.') == 2


def test_kvm_host_info_module(conn, run_module):
    from ansible_collections.hypervisor.kvm.plugins.modules import kvm_host_info

    result = run_module(kvm_host_info.main, {'uri': 'test:///default'}, check_mode=True)
    assert not result['failed'] and not result['changed']
    assert result['libvirt']['reachable'] and result['virt_mode'] in ('kvm', 'qemu')
    unreachable = run_module(kvm_host_info.main, {'uri': 'bogus:///nowhere'})
    assert not unreachable['failed'] and unreachable['libvirt']['reachable'] is False
    assert 'bogus:///nowhere' in unreachable['libvirt']['reason']
    skipped = run_module(kvm_host_info.main, {'libvirt': False})
    assert skipped['libvirt'] == {'reachable': False, 'reason': 'not asked (libvirt: false)'}


ROUTES = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t017AA8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t007AA8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
virbr1\t007CA8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
wg0\t0000000A\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0
"""


def test_routes_are_read_as_libvirt_reads_them_without_the_default_route():
    routes = _host.ipv4_routes(ROUTES)
    assert routes == [
        {'interface': 'eth0', 'network': '192.168.122.0', 'prefix': 24, 'address': None},
        {'interface': 'virbr1', 'network': '192.168.124.0', 'prefix': 24, 'address': None},
        {'interface': 'wg0', 'network': '10.0.0.0', 'prefix': 8, 'address': None},
    ]
    assert _host.route_of_subnet('192.168.122.0', 24, routes)['interface'] == 'eth0'
    # libvirt's rule is the exact subnet: a /25 inside it, or a network's own bridge, is not a collision
    assert _host.route_of_subnet('192.168.122.0', 25, routes) is None
    assert _host.route_of_subnet('192.168.124.0', 24, routes, except_interface='virbr1') is None
    assert _host.ipv4_routes('') == [] and _host.ipv4_routes('header only\nbroken line\n') == []


def test_this_hosts_routes_name_the_interfaces_address():
    routes = _host.ipv4_routes()
    assert all(set(route) == {'interface', 'network', 'prefix', 'address'} for route in routes)
    assert all(route['prefix'] > 0 for route in routes)
