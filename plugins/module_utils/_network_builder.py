# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kvm_network's options -> ``<network>``, with the checks of addresses, DHCP ranges and hosts
(docs/architecture.md, "Speed": a run given ``xml`` never compiles this file). Each function
takes the :class:`_network.Network` it builds for as ``network``."""

from __future__ import annotations

import copy
import ipaddress
import re
import xml.etree.ElementTree as ET

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.module_utils._addresses import ip_address, mac_address
from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError
from ansible_collections.hypervisor.kvm.plugins.module_utils._network_facts import forward_mode, subnet

BRIDGE_NAME_MAX = 15  # IFNAMSIZ - 1


def build(network, before) -> ET.Element:
    """The ``<network>`` the options describe; ``before`` (an Observed) is the network as it is."""
    params = network.params
    current = before.xml if before.exists else None
    mode = params.get('forward') or (forward_mode(current) if current is not None else 'isolated')
    net = ET.Element('network')
    _xml.sub_element(net, 'name', network.name)
    add_forward(network, net, mode, current)
    add_bridge(network, net, mode)
    if params.get('mtu') is not None:
        if not 68 <= params['mtu'] <= 65535:
            raise KvmError(f"mtu: {params['mtu']} is not between 68 and 65535")
        _xml.sub_element(net, 'mtu', size=params['mtu'])
    if params.get('domain'):
        _xml.sub_element(net, 'domain', name=params['domain'])
    add_dns(network, net, params.get('dns'), current)
    add_addresses(network, net, mode, current)
    return net


# ---- validation ------------------------------------------------------------------------------


def ip_interface(block: dict, option: str, version: int):
    """The gateway address and its subnet from an ipv4/ipv6 block (prefix or netmask)."""
    address = ip_address(block.get('address'), f'{option}.address', version)
    prefix, netmask = block.get('prefix'), block.get('netmask')
    if prefix is not None and netmask is not None:
        raise KvmError(f'{option}: give prefix or netmask, not both')
    if netmask is not None:
        if version == 6:
            raise KvmError(f'{option}.netmask: IPv6 takes a prefix, not a netmask')
        try:
            return ipaddress.ip_interface(f'{address}/{netmask}')
        except ValueError:
            raise KvmError(f'{option}.netmask: {netmask!r} is not a valid netmask') from None
    if prefix is None:
        raise KvmError(f'{option}: a prefix (e.g. {24 if version == 4 else 64}) or a netmask is required')
    if not 0 < int(prefix) <= (32 if version == 4 else 128):
        raise KvmError(f'{option}.prefix: {prefix} is not a valid IPv{version} prefix length')
    return ipaddress.ip_interface(f'{address}/{prefix}')


def check_dhcp(dhcp: dict, interface, option: str, version: int) -> None:
    """Ranges and hosts inside the subnet, ranges not overlapping, hosts unique."""
    subnet = interface.network
    spans = []
    for index, span in enumerate(dhcp.get('ranges') or []):
        where = f'{option}.dhcp.ranges[{index}]'
        start = ip_address(span.get('start'), f'{where}.start', version)
        end = ip_address(span.get('end'), f'{where}.end', version)
        for address in (start, end):
            if address not in subnet:
                raise KvmError(f'{where}: {address} is outside the subnet {subnet}')
        if start > end:
            raise KvmError(f'{where}: start {start} is after end {end}')
        if interface.ip in (start, end) or start < interface.ip < end:
            raise KvmError(f"{where}: the range {start}-{end} contains the network's own address {interface.ip}")
        for other_index, (other_start, other_end) in enumerate(spans):
            if start <= other_end and other_start <= end:
                raise KvmError(
                    f'{where}: {start}-{end} overlaps {option}.dhcp.ranges[{other_index}] {other_start}-{other_end}')
        spans.append((start, end))
    seen = {}
    for index, host in enumerate(dhcp.get('hosts') or []):
        where = f'{option}.dhcp.hosts[{index}]'
        if host.get('ip') is None:
            raise KvmError(f'{where}: ip is required')
        address = ip_address(host['ip'], f'{where}.ip', version)
        if address not in subnet:
            raise KvmError(f'{where}: {address} is outside the subnet {subnet}')
        if version == 4 and not host.get('mac'):
            raise KvmError(f'{where}: an IPv4 static host needs a mac')
        if version == 6 and not (host.get('name') or host.get('id')):
            raise KvmError(f'{where}: an IPv6 static host needs a name or an id (DUID)')
        keys = [('ip', str(address))]
        if host.get('mac'):
            keys.append(('mac', mac_address(host['mac'], f'{where}.mac')))
        if host.get('name'):
            keys.append(('name', host['name']))
        for key in keys:
            if key in seen:
                raise KvmError(f'{where}: {key[0]} {key[1]} is already used by {option}.dhcp.hosts[{seen[key]}]')
            seen[key] = index


# ---- the elements ---------------------------------------------------------------------------


def add_forward(network, net, mode: str, current) -> None:
    nat_ports = network.params.get('nat_ports')
    if nat_ports and mode != 'nat':
        raise KvmError(f'nat_ports: only a nat network translates ports (forward is {mode})')
    if mode == 'isolated':
        return
    forward = _xml.sub_element(net, 'forward', mode=mode)
    if nat_ports:
        start, end = nat_ports.get('start'), nat_ports.get('end')
        for key, port in (('start', start), ('end', end)):
            if port is None or not 1 <= port <= 65535:
                raise KvmError(f'nat_ports.{key}: {port!r} is not a port between 1 and 65535')
        if start > end:
            raise KvmError(f'nat_ports: start {start} is after end {end}')
        _xml.sub_element(_xml.sub_element(forward, 'nat'), 'port', start=start, end=end)


def add_bridge(network, net, mode: str) -> None:
    bridge = network.params.get('bridge')
    if bridge is None:
        if mode == 'bridge':
            raise KvmError('bridge: forward: bridge needs the name of an existing host bridge')
        return
    name = bridge.get('name')
    if name is not None and (not re.fullmatch(r'[A-Za-z0-9_.:-]+', str(name)) or len(str(name)) > BRIDGE_NAME_MAX):
        raise KvmError(f'bridge.name: {name!r} is not a valid interface name (at most 15 letters, digits, -_.:)')
    if mode == 'bridge' and not name:
        raise KvmError('bridge.name: forward: bridge needs the name of an existing host bridge')
    attrs = {'name': name}
    if bridge.get('stp') is not None:
        attrs['stp'] = 'on' if bridge['stp'] else 'off'
    if bridge.get('delay') is not None:
        if bridge['delay'] < 0:
            raise KvmError(f"bridge.delay: {bridge['delay']} is not a number of seconds")
        attrs['delay'] = bridge['delay']
    _xml.sub_element(net, 'bridge', **attrs)


def add_dns(network, net, dns: dict | None, current) -> None:
    if not dns:
        return
    element = _xml.sub_element(net, 'dns')
    add_dns_entries(network, element, dns)
    if not len(element) and not element.attrib and (current is None or current.find('dns') is None):
        # Nothing asked and nothing to remove: libvirt drops an empty <dns/>, so leave it out.
        net.remove(element)


def add_dns_entries(network, element, dns: dict) -> None:
    if dns.get('enable') is not None:
        element.set('enable', 'yes' if dns['enable'] else 'no')
    for index, forwarder in enumerate(dns.get('forwarders') or []):
        addr = forwarder.get('addr')
        if addr is not None:
            try:
                addr = str(ipaddress.ip_address(addr))
            except ValueError:
                raise KvmError(f'dns.forwarders[{index}].addr: {addr!r} is not an IP address') from None
        if addr is None and not forwarder.get('domain'):
            raise KvmError(f'dns.forwarders[{index}]: give addr, domain or both')
        _xml.sub_element(element, 'forwarder', domain=forwarder.get('domain'), addr=addr)
    for index, txt in enumerate(dns.get('txt') or []):
        if not txt.get('name') or txt.get('value') is None:
            raise KvmError(f'dns.txt[{index}]: name and value are required')
        _xml.sub_element(element, 'txt', name=txt['name'], value=txt['value'])
    for index, host in enumerate(dns.get('hosts') or []):
        names = host.get('hostnames') or []
        if not names:
            raise KvmError(f'dns.hosts[{index}]: hostnames is required')
        try:
            address = str(ipaddress.ip_address(str(host.get('ip'))))
        except ValueError:
            raise KvmError(f"dns.hosts[{index}].ip: {host.get('ip')!r} is not an IP address") from None
        entry = _xml.sub_element(element, 'host', ip=address)
        for hostname in names:
            _xml.sub_element(entry, 'hostname', hostname)
    for index, srv in enumerate(dns.get('srv') or []):
        if not srv.get('service') or srv.get('protocol') not in ('tcp', 'udp'):
            raise KvmError(f'dns.srv[{index}]: service and protocol (tcp or udp) are required')
        _xml.sub_element(element, 'srv', **{key: srv.get(key) for key in (
            'service', 'protocol', 'domain', 'target', 'port', 'priority', 'weight')})


def add_addresses(network, net, mode: str, current) -> None:
    blocks = {4: network.params.get('ipv4'), 6: network.params.get('ipv6')}
    if mode == 'bridge' and (blocks[4] or blocks[6]):
        raise KvmError('ipv4/ipv6: a forward: bridge network has no addresses of its own (the host bridge has)')
    if not (blocks[4] or blocks[6]):
        return
    existing = current.findall('ip') if current is not None else []
    # Keep the order libvirt has; a family the user does not describe is kept as it is.
    order = [6 if ip.get('family') == 'ipv6' else 4 for ip in existing]
    order += [version for version in (4, 6) if version not in order]
    for version in order:
        if blocks[version]:
            net.append(ip_element(network, blocks[version], version, current))
        else:
            for ip in existing:
                if (ip.get('family') == 'ipv6') == (version == 6):
                    net.append(copy.deepcopy(ip))


def current_form(interface, current) -> str | None:
    """'netmask' when the network has this very subnet written as a netmask: the same subnet
    given as a prefix is then not a change (and the other way round)."""
    for ip in current.findall('ip') if current is not None else []:
        if ip.get('address') == str(interface.ip) and subnet(ip) == interface.network:
            return 'netmask' if ip.get('netmask') else 'prefix'
    return None


def ip_element(network, block: dict, version: int, current):
    option = f'ipv{version}'
    interface = ip_interface(block, option, version)
    dhcp = block.get('dhcp') or {}
    check_dhcp(dhcp, interface, option, version)
    attrs = {'family': 'ipv6' if version == 6 else None, 'address': str(interface.ip)}
    form = current_form(interface, current)
    if form == 'netmask' or form is None and block.get('netmask') is not None:
        attrs['netmask'] = str(interface.netmask)
    else:
        attrs['prefix'] = interface.network.prefixlen
    ip = ET.Element('ip', {k: str(v) for k, v in attrs.items() if v is not None})
    if dhcp.get('ranges') or dhcp.get('hosts'):
        element = _xml.sub_element(ip, 'dhcp')
        for span in dhcp.get('ranges') or []:
            _xml.sub_element(element, 'range', start=ipaddress.ip_address(span['start']),
                             end=ipaddress.ip_address(span['end']))
        for host in dhcp.get('hosts') or []:
            _xml.sub_element(element, 'host', id=host.get('id'),
                             mac=host['mac'].lower() if host.get('mac') else None,
                             name=host.get('name'), ip=ipaddress.ip_address(host['ip']))
    return ip
