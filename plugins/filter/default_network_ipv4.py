# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""hypervisor.kvm.default_network_ipv4: where libvirt's ``default`` NAT network can live on a
host (the kvm_host role's choice; documented in default_network_ipv4.yml)."""

from __future__ import annotations

import ipaddress

from ansible.errors import AnsibleFilterError

FIRST_CHOICE = 122
# libvirt's own packaging (its RPM spec) moves the default network to the first free one of these
# when 192.168.122.0/24 is taken.
FALLBACKS = tuple(range(124, 255))


def _subnet(address, prefix):
    try:
        return ipaddress.ip_interface(f'{address}/{prefix}').network
    except (TypeError, ValueError):
        return None


def _ipv4_subnets(network: dict) -> list:
    """The IPv4 subnets of one kvm_network_info entry."""
    found = []
    for entry in network.get('addresses') or []:
        if (entry.get('family') or 'ipv4') == 'ipv4':
            subnet = _subnet(entry.get('address'), entry.get('prefix') or entry.get('netmask') or 24)
            if subnet is not None:
                found.append(subnet)
    return found


def _user(subnet, routes: list, networks: list, name: str, bridge: str) -> str | None:
    """What already uses ``subnet`` (a route of the host, or another libvirt network), in words;
    None when it is free. Routes on the network's own bridge are its own."""
    for route in routes:
        theirs = _subnet(route.get('network'), route.get('prefix'))
        if theirs is None or theirs.prefixlen == 0 or route.get('interface') == bridge:
            continue
        if theirs.overlaps(subnet):
            address = f" ({route['address']})" if route.get('address') else ''
            return f"interface {route.get('interface')}{address} on {theirs}"
    for network in networks:
        if network.get('name') == name:
            continue
        for theirs in _ipv4_subnets(network):
            if theirs.overlaps(subnet):
                return f"the libvirt network {network.get('name')} on {theirs}"
    return None


def default_network_ipv4(routes, networks=None, name='default', bridge='virbr0'):
    """The IPv4 subnet for libvirt's default network, as a dict: ``subnet`` (text), ``ipv4``
    (kvm_network's ipv4 option: the host address .1 and DHCP from .2 to the last host, or None
    to keep the existing network's own), ``kept`` and ``reason`` (in words)."""
    if not isinstance(routes, list):
        raise AnsibleFilterError('default_network_ipv4: the input must be a list of routes (kvm_host_info ipv4_routes)')
    networks = networks or []
    if not isinstance(networks, list):
        raise AnsibleFilterError('default_network_ipv4: networks must be a list (kvm_network_info networks)')
    existing = next((network for network in networks if network.get('name') == name), None)
    if existing is not None:
        for subnet in _ipv4_subnets(existing):
            if _user(subnet, routes, networks, name, bridge) is None:
                return {'subnet': str(subnet), 'ipv4': None, 'kept': True,
                        'reason': f'the existing network {name} keeps its subnet {subnet}'}
    taken = []
    for third in (FIRST_CHOICE,) + FALLBACKS:
        subnet = ipaddress.ip_network(f'192.168.{third}.0/24')
        user = _user(subnet, routes, networks, name, bridge)
        if user is not None:
            taken.append(f'{subnet} is used by {user}')
            continue
        hosts = list(subnet.hosts())
        ipv4 = {'address': str(hosts[0]), 'prefix': subnet.prefixlen,
                'dhcp': {'ranges': [{'start': str(hosts[1]), 'end': str(hosts[-1])}]}}
        if existing is not None:
            reason = f'the existing network {name} moves to {subnet}: ' + '; '.join(taken)
        elif taken:
            reason = f'{subnet}, since ' + '; '.join(taken)
        else:
            reason = f"{subnet}, libvirt's usual subnet"
        return {'subnet': str(subnet), 'ipv4': ipv4, 'kept': False, 'reason': reason}
    raise AnsibleFilterError('default_network_ipv4: every subnet from 192.168.122.0/24 to 192.168.254.0/24 is in '
                             'use on this host; set kvm_host_networks to a network of your own')


class FilterModule:
    """hypervisor.kvm's filters."""

    def filters(self):
        return {'default_network_ipv4': default_network_ipv4}
