"""kvm_network's static routes, dnsmasq options, PXE (TFTP root, DHCP boot file) and forward modes
on a pool of host devices (macvtap, hostdev), against libvirt's in-process test:///default driver.

The test driver does not keep libvirt's dnsmasq namespace (only the network driver of a real
libvirtd does), so a second run of dnsmasq_options is tested by the kvm_network integration target
(tests/integration/targets/kvm_network/tasks/features.yml); here: the definition written, check
mode, the diff, the adapter's comparison and the refusals. Nor can the test driver read an active
network's persistent definition, so changes that need a restart are checked in check mode, or on a
stopped network."""

import pytest

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.module_utils._network import Network
from ansible_collections.hypervisor.kvm.plugins.module_utils._network_builder import build
from ansible_collections.hypervisor.kvm.plugins.module_utils._network_facts import DNSMASQ_OPTION, DNSMASQ_OPTIONS
from ansible_collections.hypervisor.kvm.plugins.module_utils._resource import Observed
from ansible_collections.hypervisor.kvm.plugins.modules import kvm_network, kvm_network_info

RUN_WITH_DIFF = True

URI = 'test:///default'
NAME = 'kvmtest-feat'
DNSMASQ = "xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'"


def routed(**extra):
    args = {
        'uri': URI, 'name': NAME, 'forward': 'nat', 'bridge': 'kvmtbr8',
        'ipv4': {'address': '10.246.0.1', 'prefix': 24},
        'ipv6': {'address': 'fd00:246::1', 'prefix': 64},
        'routes': [{'address': '10.247.0.0', 'prefix': 24, 'gateway': '10.246.0.2'},
                   {'address': 'fd00:247::', 'prefix': 64, 'gateway': 'fd00:246::2', 'metric': 5}],
        'state': 'active',
    }
    args.update(extra)
    return args


def pxe(**dhcp):
    return {'address': '10.246.0.1', 'prefix': 24, 'tftp': {'root': '/srv/tftp'},
            'dhcp': {'ranges': [{'start': '10.246.0.100', 'end': '10.246.0.150'}],
                     'bootp': {'file': 'pxelinux.0', 'server': '10.246.0.1'}, **dhcp}}


def xml_of(conn, name=NAME):
    return conn.networkLookupByName(name).XMLDesc(0)


def test_routes_check_mode_then_real_then_idempotent(conn, run_module):
    check = run_module(kvm_network.main, routed(), check_mode=True)
    assert not check['failed'] and check['actions'] == ['define', 'start']
    assert '<route address="10.247.0.0" gateway="10.246.0.2" prefix="24" />' in check['diff']['after']
    assert ('<route address="fd00:247::" family="ipv6" gateway="fd00:246::2" metric="5" prefix="64" />'
            in check['diff']['after'])
    assert NAME not in [net.name() for net in conn.listAllNetworks()]

    first = run_module(kvm_network.main, routed())
    assert first['actions'] == check['actions'] and first['diff'] == check['diff']
    assert "<route address='10.247.0.0' prefix='24' gateway='10.246.0.2'/>" in xml_of(conn)
    assert first['network']['routes'] == [
        {'family': 'ipv4', 'address': '10.247.0.0', 'prefix': 24, 'gateway': '10.246.0.2', 'metric': None},
        {'family': 'ipv6', 'address': 'fd00:247::', 'prefix': 64, 'gateway': 'fd00:246::2', 'metric': 5}]
    assert not run_module(kvm_network.main, routed())['changed']
    # left out: left alone
    assert not run_module(kvm_network.main, {'uri': URI, 'name': NAME, 'state': 'active'})['changed']


def test_a_route_change_needs_a_restart_and_an_empty_list_removes_them(conn, run_module):
    run_module(kvm_network.main, routed())
    one = routed(routes=[{'address': '10.248.0.0', 'prefix': 16, 'gateway': '10.246.0.3'}])
    check = run_module(kvm_network.main, one, check_mode=True)
    assert check['actions'] == ['define'] and check['restart_required']  # no live update for routes
    assert 'fd00:247::' not in check['diff']['after'] and '10.248.0.0' in check['diff']['after']
    assert run_module(kvm_network.main, dict(one, restart=True), check_mode=True)['actions'] == ['define', 'restart']
    # the test driver cannot read an active network's persistent definition: the rest on a stopped one
    run_module(kvm_network.main, routed(state='inactive'))
    result = run_module(kvm_network.main, dict(one, state='inactive'))
    assert result['actions'] == ['define'] and not result['restart_required']
    assert "<route address='10.248.0.0' prefix='16' gateway='10.246.0.3'/>" in xml_of(conn)
    assert 'fd00:247::' not in xml_of(conn)
    assert not run_module(kvm_network.main, dict(one, state='inactive'))['changed']
    emptied = run_module(kvm_network.main, routed(routes=[], state='inactive'))
    assert emptied['actions'] == ['define'] and '<route' not in xml_of(conn)
    assert not run_module(kvm_network.main, routed(routes=[], state='inactive'))['changed']


def test_dnsmasq_options_are_written_in_order_in_libvirts_namespace(conn, run_module):
    options = ['dhcp-option=option:ntp-server,10.246.0.1', 'log-dhcp']
    args = {'uri': URI, 'name': NAME, 'ipv4': {'address': '10.246.0.1', 'prefix': 24}, 'dnsmasq_options': options}
    check = run_module(kvm_network.main, args, check_mode=True)
    assert check['actions'] == ['define']
    after = check['diff']['after']
    assert '<dnsmasq:options>' in after and 'xmlns:dnsmasq="http://libvirt.org/schemas/network/dnsmasq/1.0"' in after
    assert after.index('option:ntp-server') < after.index('log-dhcp')
    assert NAME not in [net.name() for net in conn.listAllNetworks()]
    result = run_module(kvm_network.main, args)
    assert result['actions'] == ['define'] and result['diff'] == check['diff']


def test_dnsmasq_options_compare_in_order_and_an_empty_list_removes_them(conn):
    """The comparison and the merge, on a definition that has them as a real libvirtd keeps them
    (the test driver drops the namespace on define, so this uses the adapter's own walk)."""
    actual = _xml.parse_xml(f"""<network {DNSMASQ}><name>{NAME}</name><ip address='10.246.0.1' prefix='24'/>
      <dnsmasq:options><dnsmasq:option value='log-dhcp'/><dnsmasq:option value='no-ping'/></dnsmasq:options>
      </network>""")

    def plan(options):
        network = Network(conn, {'name': NAME, 'state': 'present', 'dnsmasq_options': options})
        desired = network.clean(build(network, Observed(exists=True, xml=network.clean(actual))))
        return _xml.reconcile(desired, network.clean(actual), network.authoritative)

    assert plan(['log-dhcp', 'no-ping'])[0] == []
    assert plan(None)[0] == []  # left out: left alone
    found, merged = plan(['no-ping', 'log-dhcp'])  # the same options in another order are a change
    assert found and [option.get('value') for option in merged.iter(DNSMASQ_OPTION)] == ['no-ping', 'log-dhcp']
    found, merged = plan(['log-dhcp'])
    assert [option.get('value') for option in merged.iter(DNSMASQ_OPTION)] == ['log-dhcp']
    found, merged = plan([])
    assert found and merged.find(DNSMASQ_OPTIONS) is None
    assert 'dnsmasq:option value="log-dhcp"' in _xml.to_text(plan(['log-dhcp', 'x'])[1])


def test_pxe_tftp_root_and_boot_file(conn, run_module):
    args = {'uri': URI, 'name': NAME, 'forward': 'nat', 'ipv4': pxe(), 'state': 'active'}
    check = run_module(kvm_network.main, args, check_mode=True)
    assert check['actions'] == ['define', 'start']
    assert '<tftp root="/srv/tftp" />' in check['diff']['after']
    assert '<bootp file="pxelinux.0" server="10.246.0.1" />' in check['diff']['after']
    first = run_module(kvm_network.main, args)
    assert first['actions'] == check['actions'] and first['diff'] == check['diff']
    assert "<bootp file='pxelinux.0' server='10.246.0.1'/>" in xml_of(conn)
    assert first['network']['tftp_root'] == '/srv/tftp'
    assert first['network']['bootp'] == {'file': 'pxelinux.0', 'server': '10.246.0.1'}
    assert not run_module(kvm_network.main, args)['changed']
    # a boot file change is no live update: written and reported (checked on a stopped network:
    # the test driver cannot read an active network's persistent definition)
    other = dict(args, ipv4=pxe(bootp={'file': 'ipxe.efi'}))
    changed = run_module(kvm_network.main, other, check_mode=True)
    assert changed['actions'] == ['define'] and changed['restart_required']
    run_module(kvm_network.main, dict(args, state='inactive'))
    changed = run_module(kvm_network.main, dict(other, state='inactive'))
    assert changed['actions'] == ['define'] and "<bootp file='ipxe.efi'/>" in xml_of(conn)
    # ipv4 describes the block whole: without tftp and bootp they go
    plain = dict(args, ipv4={'address': '10.246.0.1', 'prefix': 24,
                             'dhcp': {'ranges': [{'start': '10.246.0.100', 'end': '10.246.0.150'}]}},
                 state='inactive')
    removed = run_module(kvm_network.main, plain)
    assert removed['actions'] == ['define'] and '<tftp' not in removed['diff']['after']
    assert '<bootp' not in removed['diff']['after']
    assert not run_module(kvm_network.main, plain)['changed']


def macvtap(interfaces, mode='bridge', **extra):
    return {'uri': URI, 'name': NAME, 'forward': {'mode': mode, 'interfaces': interfaces}, 'state': 'active', **extra}


def test_macvtap_on_a_pool_of_host_interfaces(conn, run_module):
    args = macvtap(['kvmtnv0', 'kvmtnv1'])
    check = run_module(kvm_network.main, args, check_mode=True)
    assert check['actions'] == ['define', 'start']
    assert '<interface dev="kvmtnv0" />' in check['diff']['after']
    first = run_module(kvm_network.main, args)
    assert first['actions'] == check['actions'] and first['diff'] == check['diff']
    assert "<interface dev='kvmtnv1'/>" in xml_of(conn)
    info = first['network']
    assert info['forward'] == 'bridge' and info['forward_interfaces'] == ['kvmtnv0', 'kvmtnv1']
    assert info['bridge'] is None
    assert not run_module(kvm_network.main, args)['changed']
    # left out: the pool stays (no host bridge is asked for)
    assert not run_module(kvm_network.main, {'uri': URI, 'name': NAME, 'state': 'active'})['changed']
    # the pool's interfaces change live
    grown = macvtap(['kvmtnv0', 'kvmtnv1', 'kvmtnv2'])
    check = run_module(kvm_network.main, grown, check_mode=True)
    assert check['actions'] == ['update-forward-interface'] and "kvmtnv2" not in xml_of(conn)
    result = run_module(kvm_network.main, grown)
    assert result['actions'] == ['update-forward-interface'] and not result['restart_required']
    assert "<interface dev='kvmtnv2'/>" in xml_of(conn)
    shrunk = run_module(kvm_network.main, macvtap(['kvmtnv2']))
    assert shrunk['actions'] == ['update-forward-interface'] and "kvmtnv0" not in xml_of(conn)
    assert not run_module(kvm_network.main, macvtap(['kvmtnv2']))['changed']
    # another mode: a redefinition, applied at the restart
    vepa = run_module(kvm_network.main, macvtap(['kvmtnv2'], mode='vepa'), check_mode=True)
    assert vepa['actions'] == ['define'] and vepa['restart_required']


def test_hostdev_by_pf_or_pci_addresses(conn, run_module):
    forward = {'mode': 'hostdev', 'managed': True, 'addresses': ['0000:04:10.1', '04:10.3']}
    args = {'uri': URI, 'name': NAME, 'forward': forward}
    check = run_module(kvm_network.main, args, check_mode=True)
    assert check['actions'] == ['define']
    result = run_module(kvm_network.main, args)
    assert result['diff'] == check['diff']
    assert "<forward mode='hostdev' managed='yes'>" in xml_of(conn)
    assert "<address type='pci' domain='0x0000' bus='0x04' slot='0x10' function='0x3'/>" in xml_of(conn)
    assert result['network']['forward_addresses'] == ['0000:04:10.1', '0000:04:10.3']
    assert not run_module(kvm_network.main, args)['changed']
    by_pf = {'uri': URI, 'name': NAME, 'forward': {'mode': 'hostdev', 'pf': 'kvmtnv0'}}
    changed = run_module(kvm_network.main, by_pf)
    assert changed['actions'] == ['define'] and '<address' not in xml_of(conn) and "<pf dev='kvmtnv0'/>" in xml_of(conn)
    assert changed['network']['forward_pf'] == 'kvmtnv0'
    assert not run_module(kvm_network.main, by_pf)['changed']


def test_the_forward_word_still_works_and_leaves_a_forward_dev_alone(conn, run_module):
    conn.networkDefineXML(f"""<network><name>{NAME}</name><forward mode='nat' dev='eth0'/>
      <ip address='10.246.0.1' prefix='24'/></network>""")
    assert not run_module(kvm_network.main, {'uri': URI, 'name': NAME, 'forward': 'nat'})['changed']
    assert not run_module(kvm_network.main, {'uri': URI, 'name': NAME, 'forward': {'mode': 'nat'}})['changed']
    result = run_module(kvm_network.main, {'uri': URI, 'name': NAME, 'forward': 'route'})
    assert result['actions'] == ['define'] and 'eth0' not in xml_of(conn)


def test_network_info_reports_the_new_fields(conn, run_module):
    run_module(kvm_network.main, routed(ipv4=pxe(), dnsmasq_options=['log-dhcp']))
    net = run_module(kvm_network_info.main, {'uri': URI, 'name': NAME})['networks'][0]
    assert net['routes'][0]['gateway'] == '10.246.0.2' and net['tftp_root'] == '/srv/tftp'
    assert net['forward_interfaces'] == [] and net['forward_pf'] is None and net['forward_addresses'] == []
    assert isinstance(net['dnsmasq_options'], list)


@pytest.mark.parametrize('args, words', [
    ({'ipv4': {'address': '10.246.0.1', 'prefix': 24},
      'routes': [{'address': '10.247.0.0', 'prefix': 24, 'gateway': '10.9.0.1'}]},
     ['routes[0]: the gateway 10.9.0.1 of the route to 10.247.0.0/24', 'subnets (10.246.0.0/24)']),
    ({'routes': [{'address': '10.247.0.0', 'prefix': 24, 'gateway': '10.9.0.1'}]},
     ['routes[0]', 'none: give the network an ipv4 address']),
    ({'ipv4': {'address': '10.246.0.1', 'prefix': 24},
      'routes': [{'address': 'fd00:247::', 'prefix': 64, 'gateway': 'fd00:246::2'}]},
     ['routes[0]', 'IPv6 subnets (none']),
    ({'ipv4': {'address': '10.246.0.1', 'prefix': 24},
      'routes': [{'address': '10.247.0.1', 'prefix': 24, 'gateway': '10.246.0.2'}]},
     ['routes[0]: 10.247.0.1/24 is not a network address', '10.247.0.0/24']),
    ({'ipv4': {'address': '10.246.0.1', 'prefix': 24},
      'routes': [{'address': '10.247.0.0', 'prefix': 0, 'gateway': '10.246.0.2'}]}, ['routes[0].prefix']),
    ({'ipv4': {'address': '10.246.0.1', 'prefix': 24},
      'routes': [{'address': '10.247.0.0', 'prefix': 24, 'gateway': 'fd00::2'}]},
     ['routes[0].gateway', 'not an IPv4 address']),
    ({'ipv4': {'address': '10.246.0.1', 'prefix': 24},
      'routes': [{'address': 'nope', 'prefix': 24, 'gateway': '10.246.0.2'}]}, ['routes[0].address']),
    ({'ipv4': {'address': '10.246.0.1', 'prefix': 24},
      'routes': [{'address': '10.247.0.0', 'prefix': 24, 'gateway': '10.246.0.2'},
                 {'address': '10.247.0.0', 'prefix': 24, 'gateway': '10.246.0.3'}]}, ['already routes[0]']),
    ({'ipv4': {'address': '10.246.0.1', 'prefix': 24},
      'routes': [{'address': '10.247.0.0', 'prefix': 24, 'gateway': '10.246.0.2', 'metric': 0}]},
     ['routes[0].metric']),
    ({'routes': [{'address': '10.247.0.0', 'prefix': 24}]}, ['gateway']),
    ({'dnsmasq_options': ['log-dhcp', 'dhcp-option=3\nconf-file=/etc/shadow']}, ['dnsmasq_options[1]']),
    ({'dnsmasq_options': ['  ']}, ['dnsmasq_options[0]', 'not one dnsmasq option line']),
    ({'ipv4': {'address': '10.246.0.1', 'prefix': 24, 'tftp': {'root': 'srv/tftp'}}},
     ['ipv4.tftp.root', 'not an absolute path']),
    ({'ipv4': {'address': '10.246.0.1', 'prefix': 24, 'dhcp': {'bootp': {'file': 'pxelinux.0'}}}},
     ['ipv4.dhcp.bootp', 'ipv4.dhcp.ranges']),
    ({'ipv4': pxe(bootp={'file': 'pxelinux.0', 'server': 'fd00::1'})}, ['ipv4.dhcp.bootp.server']),
    ({'ipv4': pxe(bootp={'file': ''})}, ['ipv4.dhcp.bootp.file']),
    ({'ipv6': {'address': 'fd00::1', 'prefix': 64, 'tftp': {'root': '/srv'}}}, ['ipv6.tftp', 'unknown']),
    ({'forward': 'macvtap'}, ['forward: expected a forward mode']),
    ({'forward': {'mode': 'vepa'}}, ['forward: mode vepa needs interfaces or pf']),
    ({'forward': {'mode': 'hostdev'}}, ['forward: mode hostdev needs pf or addresses']),
    ({'forward': {'mode': 'hostdev', 'interfaces': ['eth0']}}, ['forward.interfaces', 'pf or addresses']),
    ({'forward': {'mode': 'vepa', 'addresses': ['04:10.1']}}, ['forward.addresses', 'hostdev']),
    ({'forward': {'mode': 'hostdev', 'addresses': ['04:10.9']}}, ['forward.addresses[0]', 'not a PCI address']),
    ({'forward': {'mode': 'hostdev', 'addresses': ['04:10.1', '0000:04:10.1']}}, ['forward.addresses[1]', 'already']),
    ({'forward': {'mode': 'private', 'interfaces': ['eth0', 'eth0']}}, ['forward.interfaces[1]', 'already']),
    ({'forward': {'mode': 'private', 'interfaces': ['a-name-much-too-long']}},
     ['forward.interfaces[0]', 'not a valid interface name']),
    ({'forward': {'mode': 'passthrough', 'interfaces': ['eth0'], 'pf': 'eth1'}}, ['give pf or interfaces']),
    ({'forward': {'mode': 'vepa', 'interfaces': ['eth0'], 'managed': True}}, ['forward.managed']),
    ({'forward': {'mode': 'nat', 'interfaces': ['eth0']}}, ['forward.interfaces', 'forward: nat network takes no']),
    ({'forward': {'mode': 'isolated', 'pf': 'eth0'}}, ['isolated network forwards nothing']),
    ({'forward': {'mode': 'bridge', 'interfaces': ['eth0']}, 'bridge': 'br0'}, ['bridge: a forward: bridge network']),
    ({'forward': {'mode': 'vepa', 'interfaces': ['eth0']}, 'ipv4': {'address': '10.246.0.1', 'prefix': 24}},
     ['ipv4: a forward: vepa network', 'no ipv4']),
    ({'forward': {'mode': 'private', 'interfaces': ['eth0']}, 'dnsmasq_options': ['log-dhcp']},
     ['dnsmasq_options: a forward: private network']),
    ({'forward': {'mode': 'private', 'interfaces': ['eth0'], 'colour': 'red'}}, ['unknown key(s) colour']),
    ({'forward': {'interfaces': ['eth0']}}, ['forward', 'mode']),
])
def test_bad_input_fails_clearly_and_changes_nothing(conn, run_module, args, words):
    before = sorted(net.name() for net in conn.listAllNetworks())
    result = run_module(kvm_network.main, {'uri': URI, 'name': NAME, **args})
    assert result['failed'] and not result.get('changed')
    for word in words:
        assert word in result['msg'], result['msg']
    assert sorted(net.name() for net in conn.listAllNetworks()) == before


def test_a_bad_route_changes_nothing_on_an_existing_network(conn, run_module):
    run_module(kvm_network.main, routed())
    before = xml_of(conn)
    result = run_module(kvm_network.main, routed(routes=[{'address': '10.249.0.0', 'prefix': 24,
                                                          'gateway': '10.250.0.1'}]))
    assert result['failed'] and 'routes[0]' in result['msg'] and xml_of(conn) == before
