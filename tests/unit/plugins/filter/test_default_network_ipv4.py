"""hypervisor.kvm.default_network_ipv4: the kvm_host role's choice of the default network's subnet."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.hypervisor.kvm.plugins.filter.default_network_ipv4 import FilterModule, default_network_ipv4

LAN_122 = {'interface': 'eth0', 'network': '192.168.122.0', 'prefix': 24, 'address': '192.168.122.57'}


def network(name, address, prefix=24, bridge=None):
    return {'name': name, 'bridge': bridge, 'addresses': [{'family': 'ipv4', 'address': address, 'prefix': prefix}]}


def test_libvirts_usual_subnet_on_a_host_that_does_not_use_it():
    choice = default_network_ipv4([{'interface': 'eth0', 'network': '10.0.2.0', 'prefix': 24, 'address': None}])
    assert choice == {'subnet': '192.168.122.0/24', 'kept': False, 'reason': "192.168.122.0/24, libvirt's usual subnet",
                      'ipv4': {'address': '192.168.122.1', 'prefix': 24,
                               'dhcp': {'ranges': [{'start': '192.168.122.2', 'end': '192.168.122.254'}]}}}


def test_a_host_on_192_168_122_gets_the_first_free_one_from_124_as_libvirts_packaging():
    choice = default_network_ipv4([LAN_122], networks=[network('lab', '192.168.124.1')])
    assert choice['subnet'] == '192.168.125.0/24' and choice['ipv4']['address'] == '192.168.125.1'
    assert 'interface eth0 (192.168.122.57)' in choice['reason']
    assert 'the libvirt network lab on 192.168.124.0/24' in choice['reason']


def test_a_route_that_covers_the_subnet_counts_but_the_default_route_does_not():
    wide = {'interface': 'eth1', 'network': '192.168.0.0', 'prefix': 16, 'address': '192.168.1.5'}
    default_route = {'interface': 'eth0', 'network': '0.0.0.0', 'prefix': 0, 'address': None}
    with pytest.raises(AnsibleFilterError, match='every subnet from 192.168.122.0/24'):
        default_network_ipv4([wide, default_route])
    assert default_network_ipv4([default_route])['subnet'] == '192.168.122.0/24'


def test_an_existing_default_network_keeps_its_subnet_while_it_is_free():
    active_on_own_bridge = {'interface': 'virbr0', 'network': '192.168.130.0', 'prefix': 24, 'address': '192.168.130.1'}
    kept = default_network_ipv4([LAN_122, active_on_own_bridge], networks=[network('default', '192.168.130.1')])
    assert kept == {'subnet': '192.168.130.0/24', 'ipv4': None, 'kept': True,
                    'reason': 'the existing network default keeps its subnet 192.168.130.0/24'}


def test_an_existing_default_network_on_the_hosts_own_subnet_moves():
    moved = default_network_ipv4([LAN_122], networks=[network('default', '192.168.122.1')])
    assert moved['subnet'] == '192.168.124.0/24' and not moved['kept']
    assert moved['reason'].startswith('the existing network default moves to 192.168.124.0/24: '
                                      '192.168.122.0/24 is used')


def test_bad_input_is_a_clear_filter_error():
    with pytest.raises(AnsibleFilterError, match='list of routes'):
        default_network_ipv4('eth0')
    with pytest.raises(AnsibleFilterError, match='networks must be a list'):
        default_network_ipv4([], networks='default')
    assert FilterModule().filters()['default_network_ipv4'] is default_network_ipv4
