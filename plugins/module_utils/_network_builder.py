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
from ansible_collections.hypervisor.kvm.plugins.module_utils._addresses import ip_address, mac_address, pci_address
from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError
from ansible_collections.hypervisor.kvm.plugins.module_utils._network_facts import (
    DNSMASQ_OPTION,
    DNSMASQ_OPTIONS,
    POOL_MODES,
    forward_mode,
    name_dnsmasq_prefix,
    subnet,
)

BRIDGE_NAME_MAX = 15  # IFNAMSIZ - 1


def build(network, before) -> ET.Element:
    """The ``<network>`` the options describe; ``before`` (an Observed) is the network as it is."""
    params = network.params
    current = before.xml if before.exists else None
    forward = params.get('forward')
    mode = forward['mode'] if forward else (forward_mode(current) if current is not None else 'isolated')
    pool = device_pool(forward, mode, current)
    if pool:
        check_pool_options(params, mode)
    net = ET.Element('network')
    _xml.sub_element(net, 'name', network.name)
    add_forward(network, net, mode, current)
    add_bridge(network, net, mode, pool)
    if params.get('mtu') is not None:
        if not 68 <= params['mtu'] <= 65535:
            raise KvmError(f"mtu: {params['mtu']} is not between 68 and 65535")
        _xml.sub_element(net, 'mtu', size=params['mtu'])
    if params.get('domain'):
        _xml.sub_element(net, 'domain', name=params['domain'])
    add_dns(network, net, params.get('dns'), current)
    add_addresses(network, net, mode, current)
    add_routes(network, net, current)
    add_dnsmasq_options(network, net, current)
    return net


def device_pool(forward: dict | None, mode: str, current) -> bool:
    """Whether the network hands its guests host devices (macvtap, passthrough, hostdev) rather
    than a bridge: a pool mode, or mode bridge with host interfaces (``forward`` is the option,
    else the network as it is tells)."""
    if mode in POOL_MODES:
        return True
    if mode != 'bridge':
        return False
    if forward:
        return bool(forward.get('interfaces') or forward.get('pf'))
    element = current.find('forward') if current is not None else None
    return element is not None and (element.find('interface') is not None or element.find('pf') is not None)


def check_pool_options(params: dict, mode: str) -> None:
    """libvirt gives a network on host devices no bridge, addresses, DNS or dnsmasq of its own."""
    dns = params.get('dns') or {}
    given = [option for option in ('bridge', 'mtu', 'domain', 'ipv4', 'ipv6', 'routes', 'dnsmasq_options')
             if params.get(option)]
    given += ['dns'] if any(dns.get(key) for key in ('hosts', 'txt', 'srv', 'forwarders')) else []
    if given:
        raise KvmError(f'{given[0]}: a forward: {mode} network connects its guests straight to host devices, with '
                       f'no bridge, addresses, DNS or dnsmasq of its own, so it takes no {given[0]}')


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
    option = network.params.get('forward') or {}
    if mode == 'isolated':
        if any(option.get(key) not in (None, []) for key in ('interfaces', 'pf', 'addresses', 'managed')):
            raise KvmError('forward: an isolated network forwards nothing, so it takes no host devices')
        return
    forward = _xml.sub_element(net, 'forward', mode=mode)
    if option:
        add_forward_devices(forward, option, mode, current)
    if nat_ports:
        start, end = nat_ports.get('start'), nat_ports.get('end')
        for key, port in (('start', start), ('end', end)):
            if port is None or not 1 <= port <= 65535:
                raise KvmError(f'nat_ports.{key}: {port!r} is not a port between 1 and 65535')
        if start > end:
            raise KvmError(f'nat_ports: start {start} is after end {end}')
        _xml.sub_element(_xml.sub_element(forward, 'nat'), 'port', start=start, end=end)


def add_forward_devices(forward, option: dict, mode: str, current) -> None:
    """The host devices of ``forward`` (the option, validated): macvtap interfaces, an SR-IOV
    physical function, or PCI functions for hostdev."""
    interfaces, pf, addresses = option.get('interfaces') or [], option.get('pf'), option.get('addresses') or []
    devices = [key for key in ('interfaces', 'pf', 'addresses', 'managed') if option.get(key) not in (None, [])]
    if mode in ('nat', 'route', 'open') or (mode == 'bridge' and not (interfaces or pf)):
        if devices:
            raise KvmError(f'forward.{devices[0]}: a forward: {mode} network takes no host devices; the modes on a '
                           'pool of host devices are bridge, private, vepa and passthrough (interfaces or pf) '
                           'and hostdev (pf or addresses)')
        old = current.find('forward') if current is not None else None
        if mode != 'bridge' and old is not None and old.get('mode', 'nat') == mode:
            # the same mode as now: a forward dev set with xml stays as it is
            forward.extend(copy.deepcopy(child) for child in old.findall('interface'))
        return
    if option.get('managed') is not None and mode != 'hostdev':
        raise KvmError(f'forward.managed: only a hostdev network has managed devices (forward mode is {mode})')
    if addresses and mode != 'hostdev':
        raise KvmError(f'forward.addresses: PCI addresses are for forward mode hostdev; mode {mode} takes interfaces')
    if interfaces and mode == 'hostdev':
        raise KvmError('forward.interfaces: a hostdev network takes pf or addresses (PCI functions), not interfaces')
    if pf and (interfaces or addresses):
        raise KvmError(f"forward: give pf or {'addresses' if addresses else 'interfaces'}, not both")
    if not (interfaces or pf or addresses):
        wanted = 'pf or addresses' if mode == 'hostdev' else 'interfaces or pf'
        raise KvmError(f'forward: mode {mode} needs {wanted}: the host devices its guests use')
    if option.get('managed') is not None:
        forward.set('managed', 'yes' if option['managed'] else 'no')
    if pf:
        _xml.sub_element(forward, 'pf', dev=interface_name(pf, 'forward.pf'))
    seen = {}
    for index, dev in enumerate(interfaces):
        name = interface_name(dev, f'forward.interfaces[{index}]')
        if name in seen:
            raise KvmError(f'forward.interfaces[{index}]: {name} is already forward.interfaces[{seen[name]}]')
        seen[name] = index
        _xml.sub_element(forward, 'interface', dev=name)
    for index, text in enumerate(addresses):
        attrs = pci_address(text, f'forward.addresses[{index}]')
        key = tuple(sorted(attrs.items()))
        if key in seen:
            raise KvmError(f'forward.addresses[{index}]: {text} is already forward.addresses[{seen[key]}]')
        seen[key] = index
        _xml.sub_element(forward, 'address', **attrs)


def interface_name(value, option: str) -> str:
    """A host network interface's name, as the kernel takes it."""
    name = str(value)
    if not re.fullmatch(r'[A-Za-z0-9_.:-]+', name) or len(name) > BRIDGE_NAME_MAX:
        raise KvmError(f'{option}: {value!r} is not a valid interface name (at most 15 letters, digits, -_.:)')
    return name


def add_bridge(network, net, mode: str, pool: bool = False) -> None:
    bridge = network.params.get('bridge')
    if bridge is None:
        if mode == 'bridge' and not pool:
            raise KvmError('bridge: forward: bridge needs the name of an existing host bridge, or forward.interfaces '
                           '(host interfaces its guests share through macvtap)')
        return
    name = bridge.get('name')
    if name is not None:
        interface_name(name, 'bridge.name')
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
    add_tftp(ip, block.get('tftp'))
    if dhcp.get('bootp') and not (dhcp.get('ranges') or dhcp.get('hosts')):
        raise KvmError(f'{option}.dhcp.bootp: a boot file is handed out with DHCP leases: give '
                       f'{option}.dhcp.ranges or {option}.dhcp.hosts too')
    if dhcp.get('ranges') or dhcp.get('hosts'):
        element = _xml.sub_element(ip, 'dhcp')
        add_bootp(element, dhcp.get('bootp'), option)
        for span in dhcp.get('ranges') or []:
            _xml.sub_element(element, 'range', start=ipaddress.ip_address(span['start']),
                             end=ipaddress.ip_address(span['end']))
        for host in dhcp.get('hosts') or []:
            _xml.sub_element(element, 'host', id=host.get('id'),
                             mac=host['mac'].lower() if host.get('mac') else None,
                             name=host.get('name'), ip=ipaddress.ip_address(host['ip']))
    return ip


# ---- PXE, routes and dnsmasq options ---------------------------------------------------------

CONTROL = re.compile(r'[\x00-\x1f\x7f]')


def add_tftp(ip, tftp: dict | None) -> None:
    """``<tftp root=.../>``: dnsmasq serves the directory over TFTP (IPv4 only, as in libvirt)."""
    if not tftp:
        return
    root = tftp.get('root')
    if not isinstance(root, str) or not root.startswith('/') or CONTROL.search(root):
        raise KvmError(f"ipv4.tftp.root: {root!r} is not an absolute path (the directory dnsmasq serves over TFTP)")
    _xml.sub_element(ip, 'tftp', root=root)


def add_bootp(dhcp, bootp: dict | None, option: str) -> None:
    """``<bootp file=... server=.../>``: the boot file (and the TFTP server, when not this host)
    that DHCP answers carry, for PXE."""
    if not bootp:
        return
    name = bootp.get('file')
    if not isinstance(name, str) or not name.strip() or CONTROL.search(name) or ',' in name:
        raise KvmError(f'{option}.dhcp.bootp.file: {name!r} is not a boot file name (one line, no commas), '
                       "such as 'pxelinux.0'")
    server = bootp.get('server')
    if server is not None:
        server = str(ip_address(server, f'{option}.dhcp.bootp.server', 4))
    _xml.sub_element(dhcp, 'bootp', file=name, server=server)


def add_routes(network, net, current) -> None:
    """``<route>`` for each static route; libvirt wants each gateway inside one of the network's
    own subnets (it adds the route when the network starts)."""
    routes = network.params.get('routes')
    if routes is None:
        return
    ips = net.findall('ip') or (current.findall('ip') if current is not None else [])
    subnets = [block for block in (subnet(ip) for ip in ips) if block is not None]
    seen = {}
    for index, route in enumerate(routes):
        where = f'routes[{index}]'
        try:
            address = ipaddress.ip_address(str(route.get('address')).strip())
        except ValueError:
            raise KvmError(f"{where}.address: {route.get('address')!r} is not an IP address") from None
        version, prefix = address.version, route.get('prefix')
        if prefix is None or not 1 <= prefix <= (32 if version == 4 else 128):
            raise KvmError(f'{where}.prefix: {prefix!r} is not an IPv{version} prefix length from 1 to '
                           f'{32 if version == 4 else 128}')
        destination = ipaddress.ip_network(f'{address}/{prefix}', strict=False)
        if destination.network_address != address:
            raise KvmError(f'{where}: {address}/{prefix} is not a network address; libvirt wants the first address '
                           f'of the subnet ({destination})')
        gateway = ip_address(route.get('gateway'), f'{where}.gateway', version)
        ours = [block for block in subnets if block.version == version]
        if not any(gateway in block for block in ours):
            have = ', '.join(str(block) for block in ours) or f'none: give the network an ipv{version} address'
            raise KvmError(f"{where}: the gateway {gateway} of the route to {destination} is in none of the "
                           f"network's IPv{version} subnets ({have}); libvirt routes only through a gateway on "
                           'the network itself')
        metric = route.get('metric')
        if metric is not None and not 1 <= metric <= 2 ** 32 - 1:
            raise KvmError(f'{where}.metric: {metric} is not a route metric (1 or more)')
        if destination in seen:
            raise KvmError(f'{where}: the route to {destination} is already routes[{seen[destination]}]')
        seen[destination] = index
        _xml.sub_element(net, 'route', family='ipv6' if version == 6 else None, address=address, prefix=prefix,
                         gateway=gateway, metric=metric)


def add_dnsmasq_options(network, net, current) -> None:
    """libvirt's ``<dnsmasq:options>``: lines added to the network's dnsmasq configuration, in
    order; an empty list removes them (the list is the user's, see ``Network``)."""
    options = network.params.get('dnsmasq_options')
    if not options:
        return  # None leaves them alone; [] owns the list and gives it no items
    for index, value in enumerate(options):
        if not isinstance(value, str) or not value.strip() or CONTROL.search(value):
            raise KvmError(f'dnsmasq_options[{index}]: {value!r} is not one dnsmasq option line, such as '
                           "'dhcp-option=option:ntp-server,10.0.0.1'")
    name_dnsmasq_prefix()
    holder = ET.SubElement(net, DNSMASQ_OPTIONS)
    for value in options:
        ET.SubElement(holder, DNSMASQ_OPTION, value=value)
