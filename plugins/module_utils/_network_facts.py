# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Network facts for kvm_network and kvm_network_info: definitions, addresses, DHCP leases."""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import (
    is_error,
    libvirt,
    read_all,
    xml_desc,
)

# libvirt's dnsmasq extension of a network definition: <dnsmasq:options><dnsmasq:option value=.../>
DNSMASQ_NS = 'http://libvirt.org/schemas/network/dnsmasq/1.0'
DNSMASQ_PREFIX = 'dnsmasq'
DNSMASQ_OPTIONS = f'{{{DNSMASQ_NS}}}options'
DNSMASQ_OPTION = f'{{{DNSMASQ_NS}}}option'
# The forward modes whose guests connect to a pool of host devices: no bridge, no addresses.
POOL_MODES = ('private', 'vepa', 'passthrough', 'hostdev')


def name_dnsmasq_prefix() -> None:
    """Print libvirt's dnsmasq namespace with its usual prefix (``dnsmasq:``, not ``ns0:``)."""
    ET.register_namespace(DNSMASQ_PREFIX, DNSMASQ_NS)


def forward_mode(definition) -> str:
    forward = definition.find('forward')
    return 'isolated' if forward is None else forward.get('mode', 'nat')


def subnet(ip):
    try:
        if ip.get('prefix'):
            return ipaddress.ip_interface(f"{ip.get('address')}/{ip.get('prefix')}").network
        if ip.get('netmask'):
            return ipaddress.ip_interface(f"{ip.get('address')}/{ip.get('netmask')}").network
        address = ipaddress.ip_address(ip.get('address'))
        return ipaddress.ip_interface(f'{address}/{24 if address.version == 4 else 64}').network
    except (TypeError, ValueError):
        return None


def bridge_name(handle) -> str | None:
    try:
        return handle.bridgeName()
    except libvirt.libvirtError:  # hostdev and macvtap networks have no bridge
        return None


def inactive_xml(handle, active: bool, live):
    """The persistent definition (the live one is it while the network is stopped)."""
    return xml_desc(handle, libvirt.VIR_NETWORK_XML_INACTIVE, 'libvirt network XML') if active else live


def network_info(handle) -> dict:
    """Everything kvm_network and kvm_network_info return about one network."""
    active = bool(handle.isActive())
    name_dnsmasq_prefix()
    definition = inactive_xml(handle, active, _xml.parse_xml(handle.XMLDesc(0), 'libvirt network XML'))
    facts = {
        'name': handle.name(),
        'uuid': handle.UUIDString(),
        'state': 'active' if active else 'inactive',
        'active': active,
        'autostart': bool(handle.autostart()),
        'persistent': bool(handle.isPersistent()),
        **definition_facts(definition),
        'leases': leases(handle) if active else [],
        'xml': _xml.to_text(definition),
    }
    facts['bridge'] = bridge_name(handle) or facts['bridge']
    return facts


def definition_facts(definition) -> dict:
    """The facts that follow from a network definition alone."""
    addresses, ranges, hosts = [], [], []
    for ip in definition.findall('ip'):
        family = ip.get('family') or 'ipv4'
        block = subnet(ip)
        addresses.append({
            'family': family, 'address': ip.get('address'),
            'prefix': block.prefixlen if block is not None else None,
            'netmask': str(block.netmask) if block is not None and family == 'ipv4' else None,
            'network': str(block) if block is not None else None,
        })
        for span in ip.findall('dhcp/range'):
            ranges.append({'family': family, 'start': span.get('start'), 'end': span.get('end')})
        for host in ip.findall('dhcp/host'):
            hosts.append({'family': family, 'mac': host.get('mac'), 'name': host.get('name'),
                          'ip': host.get('ip'), 'id': host.get('id')})
    dns = definition.find('dns')
    bridge = definition.find('bridge')
    mtu = definition.find('mtu')
    return {
        **_pxe_facts(definition),
        'bridge': bridge.get('name') if bridge is not None else None,
        'forward': forward_mode(definition),
        'mtu': int(mtu.get('size')) if mtu is not None and mtu.get('size') else None,
        'domain': definition.find('domain').get('name') if definition.find('domain') is not None else None,
        'addresses': addresses,
        'dhcp_ranges': ranges,
        'dhcp_hosts': hosts,
        'dns_hosts': [
            {'ip': host.get('ip'), 'hostnames': [name.text for name in host.findall('hostname')]}
            for host in (dns.findall('host') if dns is not None else [])
        ],
        'routes': [
            {'family': route.get('family') or 'ipv4', 'address': route.get('address'),
             'prefix': _route_prefix(route), 'gateway': route.get('gateway'),
             'metric': int(route.get('metric')) if (route.get('metric') or '').isdigit() else None}
            for route in definition.findall('route')
        ],
        'dnsmasq_options': [option.get('value')
                            for option in definition.findall(f'{DNSMASQ_OPTIONS}/{DNSMASQ_OPTION}')],
        **_forward_facts(definition),
    }


def _route_prefix(route):
    if (route.get('prefix') or '').isdigit():
        return int(route.get('prefix'))
    try:
        return ipaddress.ip_network(f"0.0.0.0/{route.get('netmask')}").prefixlen if route.get('netmask') else None
    except ValueError:
        return None


def _pxe_facts(definition) -> dict:
    """The TFTP root and the DHCP boot file of the network's IPv4 addresses (libvirt has them for
    IPv4 only)."""
    tftp, bootp = None, None
    for ip in definition.findall('ip'):
        if ip.find('tftp') is not None and tftp is None:
            tftp = ip.find('tftp').get('root')
        if ip.find('dhcp/bootp') is not None and bootp is None:
            bootp = {'file': ip.find('dhcp/bootp').get('file'), 'server': ip.find('dhcp/bootp').get('server')}
    return {'tftp_root': tftp, 'bootp': bootp}


def _forward_facts(definition) -> dict:
    """The pool of host devices a macvtap, passthrough or hostdev network hands to its guests."""
    forward = definition.find('forward')
    if forward is None:
        return {'forward_interfaces': [], 'forward_pf': None, 'forward_addresses': []}
    pf = forward.find('pf')
    addresses = []
    for address in forward.findall('address'):
        try:
            domain, bus, slot, function = (int(address.get(key, '0'), 16)  # libvirt writes them in hex
                                           for key in ('domain', 'bus', 'slot', 'function'))
        except ValueError:
            continue
        addresses.append(f'{domain:04x}:{bus:02x}:{slot:02x}.{function:x}')
    return {
        'forward_interfaces': [interface.get('dev') for interface in forward.findall('interface')],
        'forward_pf': pf.get('dev') if pf is not None else None,
        'forward_addresses': addresses,
    }


def leases(handle) -> list:
    """The network's current DHCP leases, as dnsmasq handed them out."""
    try:
        found = handle.DHCPLeases()
    except libvirt.libvirtError as err:
        if is_error(err, libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_OPERATION_INVALID):
            return []
        raise
    return [
        {
            'mac': lease.get('mac'),
            'ip': lease.get('ipaddr'),
            'prefix': lease.get('prefix'),
            'family': 'ipv6' if lease.get('type') == libvirt.VIR_IP_ADDR_TYPE_IPV6 else 'ipv4',
            'hostname': lease.get('hostname'),
            'client_id': lease.get('clientid'),
            'expiry': lease.get('expirytime'),
            'interface': lease.get('iface'),
        }
        for lease in sorted(found, key=lambda lease: (lease.get('ipaddr') or ''))
    ]


def list_networks(conn, name: str | None = None) -> list:
    """kvm_network_info: one network (none when missing) or every network, one bulk call."""
    return read_all(conn.networkLookupByName, lambda: conn.listAllNetworks(0), name, network_info,
                    libvirt.VIR_ERR_NO_NETWORK)
