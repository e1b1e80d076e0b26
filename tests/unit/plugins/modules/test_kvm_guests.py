"""kvm_guests (the kvm_guest role's engine) against libvirt's in-process test:///default driver:
a fleet converged in one run, check mode that predicts new pools, networks and disks, every
problem found before anything changes, and one guest's failure that does not stop the others."""

import json
import struct

import libvirt
import pytest

from ansible_collections.hypervisor.kvm.plugins.modules import kvm_guests

RUN_WITH_DIFF = True  # these tests read the diff (test_diff_mode.py checks runs without it)

URI = 'test:///default'
KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl user@host'
NETWORK = {'name': 'kvmtest-fleet-net', 'forward': 'nat', 'bridge': 'kvmtfl0',
           'ipv4': {'address': '10.198.0.1', 'prefix': 24,
                    'dhcp': {'ranges': [{'start': '10.198.0.100', 'end': '10.198.0.199'}]}}}


def fleet(guests, **extra):
    args = {'uri': URI, 'pool': {'name': 'kvmtest-fleet-pool', 'path': '/var/tmp/kvmtest-fleet-pool'},
            'networks': [NETWORK], 'defaults': {'memory': '64MiB', 'networks': ['kvmtest-fleet-net']},
            'guests': guests, 'wait_for_ip': 0}
    args.update(extra)
    return args


def guests(count, **extra):
    return [{'name': f'kvmtest-fleet-{index}', 'disk_size': '16MiB', **extra} for index in range(count)]


def domain_names(conn):
    return sorted(domain.name() for domain in conn.listAllDomains() if domain.name().startswith('kvmtest-fleet'))


def test_check_mode_predicts_a_fleet_on_a_new_pool_and_network_and_creates_nothing(conn, run_module):
    result = run_module(kvm_guests.main, fleet(guests(3)), check_mode=True)
    assert not result['failed'] and result['changed']
    assert result['pool'] == ['define', 'build', 'start', 'autostart']
    assert result['networks'] == [{'name': 'kvmtest-fleet-net', 'actions': ['define', 'start', 'autostart']}]
    assert [guest['actions'] for guest in result['guests']] == [
        {'disk': ['create'], 'domain': ['define', 'start']}] * 3
    assert [guest['state'] for guest in result['guests']] == ['running'] * 3
    assert domain_names(conn) == []
    assert 'kvmtest-fleet-pool' not in [pool.name() for pool in conn.listAllStoragePools()]
    headers = [diff['after_header'] for diff in result['diff']]
    assert 'guest kvmtest-fleet-1: domain (after)' in headers and 'pool kvmtest-fleet-pool (after)' in headers


def test_converge_then_nothing_to_do(conn, run_module):
    check = run_module(kvm_guests.main, fleet(guests(3)), check_mode=True)
    first = run_module(kvm_guests.main, fleet(guests(3)))
    assert not first['failed'] and first['changed']
    assert [g['actions'] for g in first['guests']] == [g['actions'] for g in check['guests']]
    assert domain_names(conn) == ['kvmtest-fleet-0', 'kvmtest-fleet-1', 'kvmtest-fleet-2']
    assert all(g['state'] == 'running' and len(g['macs']) == 1 for g in first['guests'])
    pool = conn.storagePoolLookupByName('kvmtest-fleet-pool')
    assert sorted(pool.listVolumes()) == ['kvmtest-fleet-0.qcow2', 'kvmtest-fleet-1.qcow2', 'kvmtest-fleet-2.qcow2']

    second = run_module(kvm_guests.main, fleet(guests(3)))
    assert not second['failed'] and not second['changed'] and second['diff'] == []
    assert all(not g['changed'] and all(actions == [] for actions in g['actions'].values()) for g in second['guests'])
    # the no-op reports each guest as the converge did, from what it read once (brief results)
    facts = [{key: g[key] for key in ('name', 'state', 'macs', 'ips')} for g in first['guests']]
    assert [{key: g[key] for key in ('name', 'state', 'macs', 'ips')} for g in second['guests']] == facts
    again = run_module(kvm_guests.main, fleet(guests(3)), check_mode=True)
    assert not again['changed']
    assert [{key: g[key] for key in ('name', 'state', 'macs', 'ips')} for g in again['guests']] == facts


def test_every_problem_is_reported_before_anything_changes(conn, run_module, tmp_path):
    vdi = tmp_path / 'image.vdi'
    vdi.write_bytes(b'\0' * 0x40 + b'\x7f\x10\xda\xbe' + b'\0' * 400)
    bad = [
        {'name': 'kvmtest-fleet-a', 'networks': ['kvmtest-fleet-nosuch']},
        {'name': 'kvmtest-fleet-a'},
        {'name': 'kvmtest-fleet-b', 'base_image': {'url': 'http://127.0.0.1:9/x.qcow2', 'path': '/x'}},
        {'name': 'kvmtest-fleet-c', 'base_image': {'url': 'http://127.0.0.1:9/x.qcow2'}},
        {'name': 'kvmtest-fleet-d', 'base_image': {'path': str(vdi)}},
        {'name': 'kvmtest-fleet-e', 'cloud_init': {'user_data': 'users: []'}},
        {'name': 'kvmtest-fleet-f', 'cloud_init': {'user': 'debian', 'ssh_authorized_keys': ['/root/.ssh/id.pub']}},
        {'name': 'kvmtest-fleet-g', 'initrd': '/boot/initrd.img'},
        {'name': 'kvmtest-fleet-h', 'graphics': {'type': 'vnc', 'passwrd': 'secret'}},
        {'name': 'kvmtest-fleet-i', 'cloud_init': {'user_data': '#cloud-config\nusers: [oops\n'}},
    ]
    result = run_module(kvm_guests.main, fleet(bad))
    assert result['failed'] and not result['changed']
    for words in ('the name kvmtest-fleet-a is used more than once',
                  'guests[0] (kvmtest-fleet-a): unknown network kvmtest-fleet-nosuch',
                  'guests[2] (kvmtest-fleet-b): base_image needs exactly one of url and path',
                  'guests[3] (kvmtest-fleet-c): base_image.url needs a checksum',
                  f'guests[4] (kvmtest-fleet-d): base_image.path: {vdi} is a vdi image; only qcow2 and raw',
                  "guests[5] (kvmtest-fleet-e): cloud_init.user_data: a user-data string must start with '#cloud",
                  'guests[6] (kvmtest-fleet-f): cloud_init.ssh_authorized_keys[0]',
                  'guests[7] (kvmtest-fleet-g): initrd and cmdline need kernel',
                  'guests[8] (kvmtest-fleet-h): graphics: unknown key(s) passwrd',
                  'guests[9] (kvmtest-fleet-i): cloud_init.user_data: the #cloud-config is not valid YAML'):
        assert words in result['msg']
    assert len(result['problems']) == 10
    assert domain_names(conn) == []
    assert 'kvmtest-fleet-net' not in [net.name() for net in conn.listAllNetworks()]


def test_networks_are_checked_against_kvm_network_options(conn, run_module):
    networks = [{'name': 'kvmtest-fleet-n', 'forwrd': 'nat'}, {'name': 'kvmtest-fleet-m', 'bridge': {'nam': 'x'}}]
    result = run_module(kvm_guests.main, fleet([], networks=networks))
    assert result['failed']
    assert 'networks[0].forwrd: unknown key (the keys here are autostart, bridge, dns' in result['msg']
    assert 'networks[1].bridge: unknown key(s) nam' in result['msg']


def test_networks_take_routes_dnsmasq_options_and_a_forward_dict(conn, run_module):
    routed = dict(NETWORK, routes=[{'address': '10.197.0.0', 'prefix': 24, 'gateway': '10.198.0.2'}],
                  dnsmasq_options=['no-ping'])
    pool = {'name': 'kvmtest-fleet-mvt', 'forward': {'mode': 'private', 'interfaces': ['kvmtnv0']}}
    result = run_module(kvm_guests.main, fleet([], networks=[routed, pool]))
    assert not result['failed'], result['msg']
    xml = conn.networkLookupByName('kvmtest-fleet-net').XMLDesc(0)
    assert "<route address='10.197.0.0' prefix='24' gateway='10.198.0.2'/>" in xml
    assert "<interface dev='kvmtnv0'/>" in conn.networkLookupByName('kvmtest-fleet-mvt').XMLDesc(0)
    bad = {'name': 'kvmtest-fleet-bad', 'forward': {'mode': 'private', 'interface': ['kvmtnv0']}}
    result = run_module(kvm_guests.main, fleet([], networks=[bad]))
    assert result['failed'] and 'networks[0].forward: unknown key(s) interface' in result['msg']


def test_a_failing_guest_does_not_stop_the_others(conn, run_module):
    fleet_guests = guests(3)
    fleet_guests[1]['graphics'] = {'type': 'vnc', 'port': 99999}  # well typed; libvirt refuses it at define
    result = run_module(kvm_guests.main, fleet(fleet_guests))
    assert result['failed'] and result['changed']
    assert result['msg'].startswith("1 of 3 guests failed: guest kvmtest-fleet-1: defining domain 'kvmtest-fleet-1' "
                                    'failed')
    by_name = {guest['name']: guest for guest in result['guests']}
    assert by_name['kvmtest-fleet-1']['failed'] and 'defining domain' in by_name['kvmtest-fleet-1']['msg']
    assert by_name['kvmtest-fleet-1']['actions'] == {'disk': ['create']}  # done before the domain failed
    assert by_name['kvmtest-fleet-0']['state'] == by_name['kvmtest-fleet-2']['state'] == 'running'
    assert domain_names(conn) == ['kvmtest-fleet-0', 'kvmtest-fleet-2']


def test_domains_started_a_few_at_a_time_beside_one_that_shuts_down(conn, run_module):
    """New guests are defined and started a few at a time (kvm_guests' overlapping domain steps);
    a shutdown, which waits, runs on its own; the results keep the guests' order."""
    first = run_module(kvm_guests.main, fleet(guests(2)))
    assert not first['failed']
    more = guests(7)
    more[0]['state'] = 'shutdown'
    second = run_module(kvm_guests.main, fleet(more))
    assert not second['failed'] and second['changed']
    assert [g['name'] for g in second['guests']] == [f'kvmtest-fleet-{index}' for index in range(7)]
    assert second['guests'][0]['state'] == 'shutoff' and second['guests'][0]['actions']['domain'] == ['shutdown']
    assert second['guests'][1]['actions']['domain'] == []
    assert [(g['state'], g['actions']) for g in second['guests'][2:]] == [
        ('running', {'disk': ['create'], 'domain': ['define', 'start']})] * 5
    assert len({tuple(g['macs']) for g in second['guests']}) == 7
    # diffs in the order applied: every new disk, then the domains in the guests' order
    assert [d['before_header'] for d in second['diff']] == (
        [f'guest kvmtest-fleet-{index}: disk (before)' for index in range(2, 7)]
        + [f'guest kvmtest-fleet-{index}: domain (before)' for index in (0, 2, 3, 4, 5, 6)])
    assert domain_names(conn) == [f'kvmtest-fleet-{index}' for index in range(7)]


def test_a_disk_smaller_than_its_base_image_is_refused_first(conn, run_module, tmp_path):
    image = tmp_path / 'kvmtest-fleet-base.qcow2'
    image.write_bytes(b'QFI\xfb' + struct.pack('>I', 3) + b'\0' * 16 + struct.pack('>Q', 8 * 1024 ** 2) + b'\0' * 64)
    guest = {'name': 'kvmtest-fleet-x', 'base_image': {'path': str(image)}, 'disk_size': '4MiB'}
    result = run_module(kvm_guests.main, fleet([guest]))
    assert result['failed'] and not result['changed']
    assert 'guests[0] (kvmtest-fleet-x): disk_size 4 MiB is smaller than its base image (8 MiB)' in result['msg']
    assert 'kvmtest-fleet-pool' not in [pool.name() for pool in conn.listAllStoragePools()]


def test_absent_with_remove_storage_deletes_only_the_guests_volumes(conn, run_module):
    pool = conn.storagePoolLookupByName('default-pool')
    pool.createXML("<volume><name>kvmtest-fleet-other.qcow2</name><capacity>8388608</capacity>"
                   "<target><format type='qcow2'/></target></volume>", 0)
    common = {'pool': {'name': 'default-pool', 'manage': False}, 'networks': []}
    guest = {'name': 'kvmtest-fleet-x', 'disk_size': '16MiB', 'networks': ['default'], 'state': 'shutdown'}
    first = run_module(kvm_guests.main, fleet([guest], **common))
    assert not first['failed'], first.get('msg')
    assert first['pool'] is None and first['guests'][0]['state'] == 'shutoff'
    assert first['guests'][0]['actions'] == {'disk': ['create'], 'domain': ['define']}

    gone = {'name': 'kvmtest-fleet-x', 'state': 'absent', 'remove_storage': True}
    check = run_module(kvm_guests.main, fleet([gone], **common), check_mode=True)
    removed = run_module(kvm_guests.main, fleet([gone], **common))
    assert not removed['failed'] and removed['changed'] and removed['guests'][0]['state'] == 'absent'
    assert removed['guests'][0]['actions'] == check['guests'][0]['actions']
    assert removed['guests'][0]['actions']['domain'] == ['undefine', 'remove-storage']
    left = sorted(name for name in pool.listVolumes() if name.startswith('kvmtest-fleet'))
    assert left == ['kvmtest-fleet-other.qcow2']
    assert not run_module(kvm_guests.main, fleet([gone], **common))['changed']


def counting_opens(monkeypatch):
    """The URIs of the libvirt connections opened from now on, in order."""
    opened = []

    def counting(real):
        def open_and_count(uri=None, *args):
            opened.append(uri)
            return real(uri, *args)
        return open_and_count

    for name in ('open', 'openAuth', 'openReadOnly'):
        monkeypatch.setattr(libvirt, name, counting(getattr(libvirt, name)))
    return opened


@pytest.mark.parametrize('count', [20])
def test_a_no_op_run_over_many_guests_is_one_module_run_over_one_connection(conn, run_module, count, monkeypatch):
    """The whole fleet in one module run: one connection to the hypervisor for all the guests, not
    one each. (Besides it, the run may open the process's private test-driver host, where desired
    definitions get libvirt's spelling, once: _canonical.py keeps it for the process.)"""
    opened = counting_opens(monkeypatch)
    first = run_module(kvm_guests.main, fleet(guests(count)))
    assert not first['failed'] and first['changed'] and len(domain_names(conn)) == count
    assert [uri for uri in opened if uri == URI] == [URI]
    assert len([uri for uri in opened if uri != URI]) <= 1

    opened.clear()
    again = run_module(kvm_guests.main, fleet(guests(count)))
    assert not again['failed'] and not again['changed'] and len(again['guests']) == count
    assert all(guest['actions'] == {'disk': [], 'domain': []} for guest in again['guests'])
    assert opened == [URI]


def test_user_data_shows_in_results_but_its_passwords_do_not(conn, run_module):
    guest = {'name': 'kvmtest-fleet-ud', 'state': 'shutdown', 'networks': ['default'],
             'cloud_init': {'user_data': {'runcmd': [['sh', '-c', 'true']], 'password': 'kvmtest-s3cret'}}}
    result = run_module(kvm_guests.main, fleet([guest], pool={'name': 'default-pool', 'manage': False}, networks=[]),
                        check_mode=True)
    assert not result['failed'], result.get('msg')
    assert result['guests'][0]['name'] == 'kvmtest-fleet-ud'  # short words of user-data mask nothing
    assert 'kvmtest-s3cret' not in json.dumps(result)


def test_a_guest_cpu_is_kvm_domains_option_defined_then_kept(conn, run_module):
    pinned = guests(1, cpu={'mode': 'custom', 'model': 'qemu64'}) + guests(2)[1:]
    first = run_module(kvm_guests.main, fleet(pinned))
    assert not first['failed'] and first['changed']
    xml = conn.lookupByName('kvmtest-fleet-0').XMLDesc(0)
    assert "<cpu mode='custom'" in xml and '>qemu64</model>' in xml
    other = conn.lookupByName('kvmtest-fleet-1').XMLDesc(0)  # no cpu: the default for a new guest
    assert ("<cpu mode='host-passthrough'" if "type='kvm'" in other else "<cpu mode='maximum'") in other
    assert not run_module(kvm_guests.main, fleet(pinned))['changed']
    changed = run_module(kvm_guests.main, fleet(guests(1, cpu={'mode': 'custom', 'model': 'kvm64'})), check_mode=True)
    assert changed['changed'] and changed['guests'][0]['actions']['domain'] == ['define']


def test_a_guest_cpu_is_checked_before_anything_changes(conn, run_module):
    bad = [{'name': 'kvmtest-fleet-a', 'cpu': {'mode': 'custom'}},
           {'name': 'kvmtest-fleet-b', 'vcpus': 2, 'cpu': {'sockets': 1, 'cores': 1}},
           {'name': 'kvmtest-fleet-c', 'cpu': {'mode': 'host-model', 'model': 'qemu64'}}]
    result = run_module(kvm_guests.main, fleet(bad))
    assert result['failed'] and not result['changed']
    for words in ('guests[0] (kvmtest-fleet-a): cpu.model: required with cpu.mode custom',
                  'guests[1] (kvmtest-fleet-b): cpu: sockets * cores * threads = 1, but the domain has 2 vcpus',
                  'guests[2] (kvmtest-fleet-c): cpu.model: only with cpu.mode custom, not host-model'):
        assert words in result['msg']
    assert domain_names(conn) == []
    typo = run_module(kvm_guests.main, fleet([{'name': 'kvmtest-fleet-d', 'cpu': {'modle': 'custom'}}]))
    assert typo['failed'] and 'modle' in typo['msg'] and domain_names(conn) == []


def test_extra_disks_and_networks_with_a_mac_per_guest(conn, run_module):
    import xml.etree.ElementTree as ET  # pylint: disable=import-outside-toplevel

    pool = conn.storagePoolLookupByName('default-pool')
    pool.createXML("<volume><name>kvmtest-fleet-shared.img</name><capacity unit='MiB'>8</capacity></volume>", 0)
    guest = {'name': 'kvmtest-fleet-0', 'disk_size': '16MiB',
             'disks': [{'size': '32MiB', 'bus': 'sata'}, {'volume': 'kvmtest-fleet-shared.img', 'pool': 'default-pool',
                                                          'format': 'raw', 'cache': 'none'}],
             'networks': ['kvmtest-fleet-net', {'name': 'kvmtest-fleet-net', 'mac': '52:54:00:AB:CD:EF',
                                                'model': 'e1000e'}]}
    predicted = run_module(kvm_guests.main, fleet([guest]), check_mode=True)
    assert predicted['guests'][0]['actions'] == {'disk': ['create'], 'disks[0]': ['create'],
                                                 'domain': ['define', 'start']}, predicted
    result = run_module(kvm_guests.main, fleet([guest]))
    assert not result['failed'] and result['guests'][0]['actions'] == predicted['guests'][0]['actions'], result
    made = conn.storagePoolLookupByName('kvmtest-fleet-pool').storageVolLookupByName('kvmtest-fleet-0-disk1.qcow2')
    assert made.info()[1] == 32 * 1024 ** 2
    definition = ET.fromstring(conn.lookupByName('kvmtest-fleet-0').XMLDesc(0))
    disks = {disk.find('source').get('volume'): disk for disk in definition.findall('devices/disk')}
    assert sorted(disks) == ['kvmtest-fleet-0-disk1.qcow2', 'kvmtest-fleet-0.qcow2', 'kvmtest-fleet-shared.img']
    assert disks['kvmtest-fleet-0-disk1.qcow2'].find('target').get('bus') == 'sata'
    shared = disks['kvmtest-fleet-shared.img']
    assert shared.find('driver').get('cache') == 'none' and shared.find('driver').get('type') == 'raw'
    nics = definition.findall('devices/interface')
    assert nics[1].find('mac').get('address') == '52:54:00:ab:cd:ef' and nics[1].find('model').get('type') == 'e1000e'
    assert result['guests'][0]['macs'][1] == '52:54:00:ab:cd:ef'
    assert not run_module(kvm_guests.main, fleet([guest]))['changed']
    # removed with its storage: the disks the fleet made go, the volume it was given stays
    gone = run_module(kvm_guests.main, fleet([{'name': 'kvmtest-fleet-0', 'state': 'absent', 'remove_storage': True,
                                               'disks': guest['disks']}]))
    assert not gone['failed'], gone
    assert 'kvmtest-fleet-0-disk1.qcow2' not in conn.storagePoolLookupByName('kvmtest-fleet-pool').listVolumes()
    assert 'kvmtest-fleet-shared.img' in pool.listVolumes()  # given, not made: kept, and said so
    assert 'kvmtest-fleet-shared.img: not a volume kvm_guests made' in str(gone['warnings'])


def test_extra_disks_and_networks_are_checked_before_anything_changes(conn, run_module):
    bad = [{'name': 'kvmtest-fleet-a', 'disks': [{'size': '1GiB', 'volume': 'x.qcow2'}]},
           {'name': 'kvmtest-fleet-b', 'disks': [{'size': 'lots'}]},
           {'name': 'kvmtest-fleet-c', 'networks': [{'mac': '52:54:00:00:00:01'}]},
           {'name': 'kvmtest-fleet-d', 'networks': [{'name': 'kvmtest-fleet-net', 'mac': 'nope'},
                                                    {'name': 'kvmtest-fleet-net', 'colour': 1}, 7]},
           {'name': 'kvmtest-fleet-e', 'networks': [{'name': 'kvmtest-nowhere'}]}]
    result = run_module(kvm_guests.main, fleet(bad))
    assert result['failed'] and not result['changed']
    for words in ('guests[0] (kvmtest-fleet-a): disks[0]: give exactly one of size',
                  'guests[1] (kvmtest-fleet-b): disks[0].size',
                  'guests[2] (kvmtest-fleet-c): networks[0]: missing required arguments: name',
                  "guests[3] (kvmtest-fleet-d): networks[0].mac: 'nope' is not a MAC address",
                  'guests[3] (kvmtest-fleet-d): networks[1]: unknown key(s) colour',
                  'guests[3] (kvmtest-fleet-d): networks[2]: expected a network name, or a dict with mac, model, name',
                  'guests[4] (kvmtest-fleet-e): unknown network kvmtest-nowhere'):
        assert words in result['msg'], result['msg']
    assert domain_names(conn) == []
