"""kvm_network and kvm_network_info against libvirt's in-process test:///default driver."""

import pytest

from ansible_collections.hypervisor.kvm.plugins.modules import kvm_network, kvm_network_info

RUN_WITH_DIFF = True  # these tests read the diff (test_diff_mode.py checks runs without it)

URI = 'test:///default'


def net_args(hosts=None, **extra):
    args = {
        'uri': URI, 'name': 'kvmtest-net', 'forward': 'nat', 'bridge': 'kvmtbr7',
        'ipv4': {'address': '10.241.0.1', 'prefix': 24, 'dhcp': {
            'ranges': [{'start': '10.241.0.100', 'end': '10.241.0.150'}],
            'hosts': hosts if hosts is not None else [{'mac': '52:54:00:00:41:01', 'name': 'a', 'ip': '10.241.0.11'}],
        }},
        'state': 'active',
    }
    args.update(extra)
    return args


def network_names(conn):
    return sorted(net.name() for net in conn.listAllNetworks())


def test_create_check_mode_then_real_then_idempotent(conn, run_module):
    check = run_module(kvm_network.main, net_args(autostart=True), check_mode=True)
    assert not check['failed'] and check['actions'] == ['define', 'start', 'autostart']
    assert network_names(conn) == ['default']
    assert '<host ip="10.241.0.11" mac="52:54:00:00:41:01" name="a" />' in check['diff']['after']

    first = run_module(kvm_network.main, net_args(autostart=True))
    assert first['actions'] == check['actions'] and first['diff'] == check['diff']
    net = conn.networkLookupByName('kvmtest-net')
    assert net.isActive() and net.autostart()
    info = first['network']
    assert info['forward'] == 'nat' and info['bridge'] == 'kvmtbr7'
    assert info['addresses'] == [{'family': 'ipv4', 'address': '10.241.0.1', 'prefix': 24,
                                  'netmask': '255.255.255.0', 'network': '10.241.0.0/24'}]
    assert info['dhcp_hosts'] == [{'family': 'ipv4', 'mac': '52:54:00:00:41:01', 'name': 'a',
                                   'ip': '10.241.0.11', 'id': None}]
    assert info['leases'] == []

    second = run_module(kvm_network.main, net_args(autostart=True))
    assert not second['changed'] and second['restart_required'] is False


def test_static_hosts_are_updated_live_in_any_order(conn, run_module):
    run_module(kvm_network.main, net_args())
    hosts = [{'mac': '52:54:00:00:41:02', 'name': 'b', 'ip': '10.241.0.12'},
             {'mac': '52:54:00:00:41:01', 'name': 'a', 'ip': '10.241.0.11'}]
    check = run_module(kvm_network.main, net_args(hosts=hosts), check_mode=True)
    assert check['actions'] == ['update-dhcp-host'] and check['restart_required'] is False
    assert 'name="b"' not in conn.networkLookupByName('kvmtest-net').XMLDesc(0)

    result = run_module(kvm_network.main, net_args(hosts=hosts))
    assert result['actions'] == ['update-dhcp-host'] and not result['restart_required']
    assert "name='b'" in conn.networkLookupByName('kvmtest-net').XMLDesc(0)
    again = run_module(kvm_network.main, net_args(hosts=list(reversed(hosts))))
    assert not again['changed']

    removed = run_module(kvm_network.main, net_args(hosts=hosts[1:]))
    assert removed['actions'] == ['update-dhcp-host']
    assert "name='b'" not in conn.networkLookupByName('kvmtest-net').XMLDesc(0)


def test_dns_hosts_and_ranges_are_updated_live(conn, run_module):
    run_module(kvm_network.main, net_args(dns={'hosts': [{'ip': '10.241.0.11', 'hostnames': ['a.lab']}]}))
    changed = net_args(dns={'hosts': [{'ip': '10.241.0.11', 'hostnames': ['a.lab']},
                                      {'ip': '10.241.0.12', 'hostnames': ['b.lab']}]})
    changed['ipv4']['dhcp']['ranges'] = [{'start': '10.241.0.160', 'end': '10.241.0.170'}]
    result = run_module(kvm_network.main, changed)
    assert result['actions'] == ['update-dhcp-range', 'update-dns-host']
    again = run_module(kvm_network.main, changed)
    assert not again['changed']


def test_other_changes_redefine_and_need_a_restart(conn, run_module):
    run_module(kvm_network.main, net_args())
    result = run_module(kvm_network.main, {'uri': URI, 'name': 'kvmtest-net', 'forward': 'route', 'state': 'active'})
    assert result['actions'] == ['define']
    assert '<forward mode="route" />' in result['diff']['after']
    assert 'name="kvmtbr7"' in result['diff']['after']  # options not given are kept


def test_isolated_removes_forwarding(conn, run_module):
    run_module(kvm_network.main, net_args(state='present'))
    result = run_module(kvm_network.main, {'uri': URI, 'name': 'kvmtest-net', 'forward': 'isolated'})
    assert result['actions'] == ['define'] and result['network']['forward'] == 'isolated'
    again = run_module(kvm_network.main, {'uri': URI, 'name': 'kvmtest-net', 'forward': 'isolated'})
    assert not again['changed']


def test_states_and_autostart(conn, run_module):
    run_module(kvm_network.main, net_args(state='present'))
    net = conn.networkLookupByName('kvmtest-net')
    assert not net.isActive()
    result = run_module(kvm_network.main, net_args(state='inactive', autostart=True))
    assert result['actions'] == ['autostart'] and net.autostart()
    result = run_module(kvm_network.main, net_args(state='active', autostart=False))
    assert result['actions'] == ['start', 'disable-autostart']
    result = run_module(kvm_network.main, {'uri': URI, 'name': 'kvmtest-net', 'state': 'absent'})
    assert result['actions'] == ['stop', 'undefine'] and 'kvmtest-net' not in network_names(conn)


def test_xml_network_and_ipv6(conn, run_module):
    xml = """<network><name>kvmtest-xml</name><forward mode='route'/>
      <ip family='ipv6' address='fd00:241::1' prefix='64'/></network>"""
    first = run_module(kvm_network.main, {'uri': URI, 'xml': xml, 'state': 'active'})
    assert first['actions'] == ['define', 'start']
    assert first['network']['addresses'][0]['family'] == 'ipv6'
    second = run_module(kvm_network.main, {'uri': URI, 'xml': xml, 'state': 'active'})
    assert not second['changed']


def test_structured_ipv4_keeps_an_existing_ipv6_block(conn, run_module):
    xml = """<network><name>kvmtest-dual</name>
      <ip address='10.242.0.1' prefix='24'/><ip family='ipv6' address='fd00:242::1' prefix='64'/></network>"""
    run_module(kvm_network.main, {'uri': URI, 'xml': xml})
    result = run_module(kvm_network.main, {'uri': URI, 'name': 'kvmtest-dual',
                                           'ipv4': {'address': '10.242.0.1', 'prefix': 24}})
    assert not result['changed']
    result = run_module(kvm_network.main, {'uri': URI, 'name': 'kvmtest-dual',
                                           'ipv6': {'address': 'fd00:242:0::1', 'prefix': 64}})
    assert not result['changed']  # the same address, written differently


def test_conflicts_with_an_active_network_refuse_only_a_start(conn, run_module):
    run_module(kvm_network.main, net_args(state='active'))
    other = {'uri': URI, 'name': 'kvmtest-other', 'ipv4': {'address': '10.241.5.1', 'prefix': 16}}
    # started now while kvmtest-net runs: refused, nothing defined
    result = run_module(kvm_network.main, dict(other, bridge='kvmtbr7', state='active'))
    assert result['failed'] and "already the bridge of network 'kvmtest-net', which is active" in result['msg']
    result = run_module(kvm_network.main, dict(other, state='active'))
    assert result['failed'] and "overlaps 10.241.0.0/24 of network 'kvmtest-net', which is active" in result['msg']
    assert not result['changed'] and 'kvmtest-other' not in network_names(conn)
    # only defined: libvirt refuses only at start, so a warning names the conflict
    result = run_module(kvm_network.main, dict(other, bridge='kvmtbr7'))
    assert not result['failed'] and result['actions'] == ['define']
    assert "already the bridge of network 'kvmtest-net'" in str(result['warnings'])
    assert "overlaps 10.241.0.0/24 of network 'kvmtest-net' (active)" in str(result['warnings'])
    assert 'kvmtest-other' in network_names(conn)


def test_conflicts_with_an_inactive_network_are_warnings(conn, run_module):
    run_module(kvm_network.main, net_args(state='inactive'))
    result = run_module(kvm_network.main, {'uri': URI, 'name': 'kvmtest-other', 'state': 'active',
                                           'ipv4': {'address': '10.241.5.1', 'prefix': 16}})
    assert not result['failed'] and result['actions'] == ['define', 'start']
    assert "overlaps 10.241.0.0/24 of network 'kvmtest-net' (inactive)" in str(result['warnings'])


def ipv4(**dhcp):
    return {'address': '10.243.0.1', 'prefix': 24, 'dhcp': dhcp}


@pytest.mark.parametrize('args, words', [
    ({'ipv4': ipv4(ranges=[{'start': '10.243.0.10', 'end': '10.243.1.20'}])},
     ['outside the subnet 10.243.0.0/24']),
    ({'ipv4': ipv4(ranges=[{'start': '10.243.0.10', 'end': '10.243.0.50'},
                           {'start': '10.243.0.40', 'end': '10.243.0.60'}])},
     ['ranges[1]', 'overlaps', 'ranges[0]']),
    ({'ipv4': ipv4(ranges=[{'start': '10.243.0.50', 'end': '10.243.0.10'}])}, ['is after end']),
    ({'ipv4': ipv4(ranges=[{'start': '10.243.0.1', 'end': '10.243.0.10'}])}, ["network's own address"]),
    ({'ipv4': ipv4(hosts=[{'mac': '52:54:00:00:00:01', 'ip': '10.9.9.9'}])}, ['hosts[0]', 'outside the subnet']),
    ({'ipv4': ipv4(hosts=[{'mac': '52:54:00:00:00:0g', 'ip': '10.243.0.9'}])}, ['hosts[0].mac', 'not a MAC']),
    ({'ipv4': ipv4(hosts=[{'ip': '10.243.0.9'}])}, ['needs a mac']),
    ({'ipv4': ipv4(hosts=[{'mac': '52:54:00:00:00:01', 'ip': '10.243.0.9'},
                          {'mac': '52:54:00:00:00:01', 'ip': '10.243.0.8'}])},
     ['mac 52:54:00:00:00:01 is already used']),
    ({'ipv4': {'address': '10.243.0.1', 'prefix': 24, 'netmask': '255.255.255.0'}}, ['prefix or netmask, not both']),
    ({'ipv4': {'address': '10.243.0.1'}}, ['a prefix']),
    ({'ipv4': {'address': '10.243.0.1', 'prefix': 40}}, ['not a valid IPv4 prefix']),
    ({'ipv4': {'address': 'fd00::1', 'prefix': 24}}, ['not an IPv4 address']),
    ({'ipv4': {'address': 'banana', 'prefix': 24}}, ['not an IP address']),
    ({'ipv6': {'address': 'fd00::1', 'prefix': 64, 'dhcp': {'hosts': [{'ip': 'fd00::5'}]}}}, ['name or an id']),
    ({'forward': 'route', 'nat_ports': {'start': 1024, 'end': 2048}}, ['only a nat network']),
    ({'forward': 'nat', 'nat_ports': {'start': 3000, 'end': 2048}}, ['start 3000 is after end 2048']),
    ({'forward': 'bridge'}, ['needs the name of an existing host bridge']),
    ({'forward': 'bridge', 'bridge': 'br0', 'ipv4': {'address': '10.243.0.1', 'prefix': 24}},
     ['no addresses of its own']),
    ({'bridge': 'a-very-long-bridge-name'}, ['not a valid interface name']),
    ({'bridge': {'name': 'br1', 'colour': 'red'}}, ['unknown key(s) colour']),
    ({'mtu': 20}, ['mtu: 20']),
    ({'dns': {'hosts': [{'ip': 'nope', 'hostnames': ['a']}]}}, ['dns.hosts[0].ip']),
    ({'dns': {'forwarders': ['8.8.8.888']}}, ['dns.forwarders[0].addr']),
    ({'xml': '<network><name>x</name>'}, ['not well-formed']),
    ({'xml': '<pool><name>kvmtest-bad</name></pool>'}, ['expected a <network>']),
    ({'xml': '<network><name>other</name></network>'}, ["does not match the name 'other'"]),
    ({'xml': '<network><name>kvmtest-bad</name></network>', 'forward': 'nat'}, ['mutually exclusive']),
])
def test_bad_input_fails_clearly_and_changes_nothing(conn, run_module, args, words):
    before = network_names(conn)
    result = run_module(kvm_network.main, {'uri': URI, 'name': 'kvmtest-bad', **args})
    assert result['failed']
    for word in words:
        assert word in result['msg']
    assert network_names(conn) == before


def test_network_info_bulk_and_by_name(conn, run_module):
    run_module(kvm_network.main, net_args(dns={'hosts': [{'ip': '10.241.0.11', 'hostnames': ['a.lab']}]}))
    result = run_module(kvm_network_info.main, {'uri': URI})
    assert [net['name'] for net in result['networks']] == ['default', 'kvmtest-net']
    net = result['networks'][1]
    assert net['dhcp_ranges'] == [{'family': 'ipv4', 'start': '10.241.0.100', 'end': '10.241.0.150'}]
    assert net['dns_hosts'] == [{'ip': '10.241.0.11', 'hostnames': ['a.lab']}]
    assert net['state'] == 'active' and net['persistent'] and '<name>kvmtest-net</name>' in net['xml']
    one = run_module(kvm_network_info.main, {'uri': URI, 'name': 'kvmtest-net'}, check_mode=True)
    assert one['networks'] == [net]
    none = run_module(kvm_network_info.main, {'uri': URI, 'name': 'kvmtest-missing'})
    assert none['networks'] == []


def test_network_without_a_bridge_does_not_crash_info(conn, run_module):
    conn.networkDefineXML("<network><name>kvmtest-macvtap</name><forward mode='bridge'>"
                          "<interface dev='eth0'/></forward></network>")
    result = run_module(kvm_network_info.main, {'uri': URI, 'name': 'kvmtest-macvtap'})
    assert result['networks'][0]['bridge'] is None and result['networks'][0]['forward'] == 'bridge'


def test_removing_the_last_dns_entries_converges(conn, run_module):
    args = {'uri': URI, 'name': 'kvmtest-dns', 'forward': 'isolated', 'ipv4': {'address': '10.244.0.1', 'prefix': 24},
            'dns': {'txt': [{'name': 'kvmtest', 'value': 'v'}]}, 'state': 'present'}
    run_module(kvm_network.main, args)
    emptied = dict(args, dns={'txt': []})
    assert run_module(kvm_network.main, emptied)['actions'] == ['define']
    assert '<txt' not in conn.networkLookupByName('kvmtest-dns').XMLDesc(0)
    assert not run_module(kvm_network.main, emptied)['changed']


def test_prefix_and_netmask_of_the_same_subnet_are_the_same(conn, run_module):
    args = {'uri': URI, 'name': 'kvmtest-mask', 'ipv4': {'address': '10.245.0.1', 'prefix': 24}}
    run_module(kvm_network.main, args)
    same = dict(args, ipv4={'address': '10.245.0.1', 'netmask': '255.255.255.0'})
    assert not run_module(kvm_network.main, same)['changed']
    other = dict(args, ipv4={'address': '10.245.0.1', 'netmask': '255.255.0.0'})
    check = run_module(kvm_network.main, other, check_mode=True)
    result = run_module(kvm_network.main, other)
    assert not result['failed'] and result['actions'] == check['actions'] == ['define']
    assert result['diff'] == check['diff'] and 'prefix' not in result['diff']['after'].split('<ip ')[1].split('>')[0]
    assert not run_module(kvm_network.main, other)['changed']
