# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Virtual networks: options -> XML, validation, live updates, restarts that keep guests
connected, and facts (including DHCP leases)."""

from __future__ import annotations

import copy
import ipaddress
import os
import re
import xml.etree.ElementTree as ET

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.module_utils._addresses import ip_address, mac_address
from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import (
    each_read,
    is_local_uri,
    libvirt,
)
from ansible_collections.hypervisor.kvm.plugins.module_utils._network_facts import (
    bridge_name,
    definition_facts,
    forward_mode,
    inactive_xml,
    network_info,
    subnet,
)
from ansible_collections.hypervisor.kvm.plugins.module_utils._resource import Observed, Plan, Resource

FORWARD_MODES = ('nat', 'route', 'open', 'bridge', 'isolated')
STRUCTURED = ('forward', 'bridge', 'mtu', 'domain', 'ipv4', 'ipv6', 'dns', 'nat_ports')
BRIDGE_NAME_MAX = 15  # IFNAMSIZ - 1
SIOCBRADDIF = 0x89a2  # linux/sockios.h: add an interface to a bridge

# Lists changed on a running network with virNetworkUpdate (live and config together):
# tag path -> (libvirt section constant, action name, whether the parent is an <ip>).
LIVE_SECTIONS = {
    'ip/dhcp/host': ('VIR_NETWORK_SECTION_IP_DHCP_HOST', 'update-dhcp-host', True),
    'ip/dhcp/range': ('VIR_NETWORK_SECTION_IP_DHCP_RANGE', 'update-dhcp-range', True),
    'dns/host': ('VIR_NETWORK_SECTION_DNS_HOST', 'update-dns-host', False),
    'dns/txt': ('VIR_NETWORK_SECTION_DNS_TXT', 'update-dns-txt', False),
    'dns/srv': ('VIR_NETWORK_SECTION_DNS_SRV', 'update-dns-srv', False),
}
# Lists the user owns once they describe their parent (see _xml.differences).
OWNED_LISTS = frozenset({
    'ip/dhcp', 'ip/dhcp/host', 'ip/dhcp/range',
    'dns/host', 'dns/host/hostname', 'dns/txt', 'dns/srv', 'dns/forwarder',
})


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


def local_bridge_exists(name: str) -> bool:
    return os.path.isdir(f'/sys/class/net/{name}/bridge')


def attach_to_bridge(device: str, bridge: str) -> None:
    """Put a guest's tap device back on a bridge (what ``ip link set DEV master BR`` does)."""
    import errno  # pylint: disable=import-outside-toplevel  # a network restart's re-attach only
    import fcntl  # pylint: disable=import-outside-toplevel
    import socket  # pylint: disable=import-outside-toplevel
    import struct  # pylint: disable=import-outside-toplevel

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack('16si', bridge.encode(), socket.if_nametoindex(device))
        try:
            fcntl.ioctl(sock, SIOCBRADDIF, request)
        except OSError as err:
            if err.errno != errno.EBUSY:  # EBUSY: it is on the bridge already
                raise


class Network(Resource):
    kind = 'network'
    result_key = 'network'
    root_tag = 'network'
    lookup_call = 'networkLookupByName'
    missing = 'network'

    def __init__(self, conn, params: dict, check_mode: bool = False, shared: dict | None = None, diff: bool = False):
        super().__init__(conn, params, check_mode, shared, diff)
        owned = set(OWNED_LISTS)
        if params.get('xml') or params.get('forward'):
            owned.add('forward')  # no <forward> wanted means isolated: remove it
        if params.get('xml') or params.get('ipv4') or params.get('ipv6'):
            owned.add('ip')
        self.authoritative = frozenset(owned)

    # ---- desired definition ---------------------------------------------------------------
    def clean(self, element):
        """Normalised for comparison; list items sorted, since live updates append at the end."""
        element = super().clean(element)
        if element is None:
            return None
        element.attrib.pop('connections', None)  # how many guests are attached right now
        for path in ('ip/dhcp', 'dns'):
            for parent in element.findall(path):
                items = sorted(list(parent), key=lambda child: (child.tag, _xml.to_text(child, pretty=False)))
                for child in list(parent):
                    parent.remove(child)
                parent.extend(items)
        return element

    def desired_xml(self, before: Observed, plan: Plan):
        params = self.params
        if params.get('xml'):
            return self.xml_document()
        current = before.xml if before.exists else None
        mode = params.get('forward') or (forward_mode(current) if current is not None else 'isolated')
        net = ET.Element('network')
        _xml.sub_element(net, 'name', self.name)
        self.add_forward(net, mode, current)
        self.add_bridge(net, mode)
        if params.get('mtu') is not None:
            if not 68 <= params['mtu'] <= 65535:
                raise KvmError(f"mtu: {params['mtu']} is not between 68 and 65535")
            _xml.sub_element(net, 'mtu', size=params['mtu'])
        if params.get('domain'):
            _xml.sub_element(net, 'domain', name=params['domain'])
        self.add_dns(net, params.get('dns'), current)
        self.add_addresses(net, mode, current)
        return net

    def add_forward(self, net, mode: str, current) -> None:
        nat_ports = self.params.get('nat_ports')
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

    def add_bridge(self, net, mode: str) -> None:
        bridge = self.params.get('bridge')
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

    def add_dns(self, net, dns: dict | None, current) -> None:
        if not dns:
            return
        element = _xml.sub_element(net, 'dns')
        self.add_dns_entries(element, dns)
        if not len(element) and not element.attrib and (current is None or current.find('dns') is None):
            # Nothing asked and nothing to remove: libvirt drops an empty <dns/>, so leave it out.
            net.remove(element)

    def add_dns_entries(self, element, dns: dict) -> None:
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

    def add_addresses(self, net, mode: str, current) -> None:
        blocks = {4: self.params.get('ipv4'), 6: self.params.get('ipv6')}
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
                net.append(self.ip_element(blocks[version], version, current))
            else:
                for ip in existing:
                    if (ip.get('family') == 'ipv6') == (version == 6):
                        net.append(copy.deepcopy(ip))

    @staticmethod
    def current_form(interface, current) -> str | None:
        """'netmask' when the network has this very subnet written as a netmask: the same subnet
        given as a prefix is then not a change (and the other way round)."""
        for ip in current.findall('ip') if current is not None else []:
            if ip.get('address') == str(interface.ip) and subnet(ip) == interface.network:
                return 'netmask' if ip.get('netmask') else 'prefix'
        return None

    def ip_element(self, block: dict, version: int, current):
        option = f'ipv{version}'
        interface = ip_interface(block, option, version)
        dhcp = block.get('dhcp') or {}
        check_dhcp(dhcp, interface, option, version)
        attrs = {'family': 'ipv6' if version == 6 else None, 'address': str(interface.ip)}
        form = self.current_form(interface, current)
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

    # ---- checks against the other networks ------------------------------------------------
    def starts_now(self, before: Observed) -> bool:
        """Whether this task makes the network run on the definition it writes: it starts it, or
        restarts it (restart: true) while it runs."""
        state = self.params['state']
        if state == 'active' and not before.active:
            return True
        return before.active and state != 'inactive' and bool(self.params.get('restart'))

    def validate_definition(self, merged, before: Observed, plan: Plan) -> None:
        """A bridge or subnet that another network uses only matters when both would run: an
        error when this task starts the network while the other one is active, else a warning
        (libvirt itself refuses only at start)."""
        bridge = merged.find('bridge')
        bridge_name = bridge.get('name') if bridge is not None else None
        mode = forward_mode(merged)
        if mode == 'bridge' and bridge_name and is_local_uri(self.conn.getURI()) \
                and not local_bridge_exists(bridge_name):
            raise KvmError(f"bridge: the host bridge {bridge_name!r} does not exist; create it first "
                           "(forward: bridge attaches guests to an existing bridge)")
        subnets = [subnet(ip) for ip in merged.findall('ip')]
        starts = self.starts_now(before)
        for other in self.conn.listAllNetworks(0):
            if other.name() == self.name:
                continue
            definition = _xml.parse_xml(other.XMLDesc(0), 'libvirt network XML')
            conflicts = []
            other_bridge = definition.find('bridge')
            if bridge_name and mode != 'bridge' and other_bridge is not None \
                    and other_bridge.get('name') == bridge_name and forward_mode(definition) != 'bridge':
                conflicts.append(f"bridge: {bridge_name!r} is already the bridge of network '{other.name()}'")
            for ip in definition.findall('ip'):
                theirs = subnet(ip)
                for ours in subnets:
                    if ours is not None and theirs is not None and ours.version == theirs.version \
                            and ours.overlaps(theirs):
                        conflicts.append(f"the subnet {ours} overlaps {theirs} of network '{other.name()}'")
            if not conflicts:
                continue
            if starts and other.isActive():
                raise KvmError(f"{conflicts[0]}, which is active: {self.label()} could not start")
            for conflict in conflicts:
                plan.warnings.append(f"{conflict} ({'inactive' if not other.isActive() else 'active'}); "
                                     f"{self.label()} and '{other.name()}' cannot run at the same time")

    def plan_absent(self, before: Observed, plan: Plan) -> None:
        """A running network with running guests on it is not removed (they would lose their
        network) unless ``force``."""
        if before.exists and before.active and not self.params.get('force'):
            guests = sorted({found['domain'] for found in self.attached_interfaces(bridge_name(before.handle))})
            if guests:
                raise KvmError(f"{self.label()} has running guests attached: {', '.join(guests)}. Removing it would "
                               'cut them off, so nothing was changed: stop them (or move them to another network) '
                               'first, or force: true', guests=guests)
        super().plan_absent(before, plan)

    def check_host_routes(self, definition) -> None:
        """An IPv4 subnet this host already routes on another interface (its own LAN, say) makes
        libvirt refuse to start the network ("Network is already in use by interface ..."): that
        is refused here, while planning, so nothing is defined first. Only where libvirt runs on
        this host (a local URI): a remote host's routes are not readable from here."""
        if definition is None or not is_local_uri(self.conn.getURI()):
            return
        from ansible_collections.hypervisor.kvm.plugins.module_utils._host import (  # pylint: disable=import-outside-toplevel
            ipv4_routes,  # only a network about to start needs the host's routes
            route_of_subnet,
        )
        bridge = definition.find('bridge')
        own_bridge = bridge.get('name') if bridge is not None else None
        routes = None
        for ip in definition.findall('ip'):
            ours = subnet(ip)
            if ours is None or ours.version != 4:
                continue
            routes = ipv4_routes() if routes is None else routes
            route = route_of_subnet(str(ours.network_address), ours.prefixlen, routes, own_bridge)
            if route:
                interface = route['interface']
                owner = f'interface {interface}' + (f" (address {route['address']})" if route['address'] else '')
                raise KvmError(f'ipv4: the subnet {ours} is in use on this host by {owner}, so libvirt would refuse '
                               f'to start {self.label()} (Network is already in use by interface {interface}); '
                               'give the network a subnet this host does not use. Nothing was changed.')

    # ---- live updates ---------------------------------------------------------------------
    def plan_live_updates(self, before: Observed, plan: Plan) -> bool:
        """Hosts, ranges and DNS entries of a running network change with virNetworkUpdate
        (live and persistent together) when nothing else changed."""
        desired = plan.desired
        if not before.active or self.runs_older_definition(before, before.xml):
            return False
        lists = frozenset(LIVE_SECTIONS)
        stripped_desired = _xml.remove_paths(_xml.normalise(desired), lists)
        stripped_actual = _xml.remove_paths(_xml.normalise(before.xml), lists)
        if _xml.differences(stripped_desired, stripped_actual, self.authoritative - lists):
            return False
        handle = before.handle
        flags = libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE | libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG
        for path, (section_name, action, under_ip) in LIVE_SECTIONS.items():
            section = getattr(libvirt, section_name)
            parent_path, tag = path.rpartition('/')[::2]
            if under_ip:
                pairs = list(zip(desired.findall('ip'), before.xml.findall('ip')))
                parents = [(index, want.find('dhcp'), have.find('dhcp')) for index, (want, have) in enumerate(pairs)]
            else:
                parents = [(-1, desired.find(parent_path), before.xml.find(parent_path))]
            calls = []
            for index, want, have in parents:
                wanted = [_xml.to_text(item, pretty=False) for item in (want.findall(tag) if want is not None else [])]
                present = [_xml.to_text(item, pretty=False) for item in (have.findall(tag) if have is not None else [])]
                calls += [(libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE, index, item)
                          for item in present if item not in wanted]
                calls += [(libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST, index, item)
                          for item in wanted if item not in present]
            if calls:
                plan.add(action, f"updating the {tag} entries of {self.label()} ({path.replace('/', ' ')})",
                         _updater(handle, section, calls, flags))
        return True

    # ---- restarts that keep guests connected ----------------------------------------------
    def attached_interfaces(self, bridge_name: str | None) -> list:
        """Interfaces of running guests on this network (or its bridge)."""
        found = []
        running = self.conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
        for domain, text in each_read(running, lambda domain: domain.XMLDesc(0), libvirt.VIR_ERR_NO_DOMAIN):
            definition = _xml.parse_xml(text, 'libvirt domain XML')
            for interface in definition.findall('devices/interface'):
                source = interface.find('source')
                if source is None:
                    continue
                on_network = interface.get('type') == 'network' and source.get('network') == self.name
                on_bridge = bool(bridge_name) and source.get('bridge') == bridge_name
                if on_network or on_bridge:
                    found.append({
                        'domain': domain.name(),
                        'mac': interface.find('mac').get('address') if interface.find('mac') is not None else None,
                        'device': interface.find('target').get('dev') if interface.find('target') is not None else None,
                    })
        return found

    def runs_older_definition(self, before: Observed, definition) -> bool:
        """True when the running network differs from ``definition`` (a restart would apply it)."""
        return before.live_xml is not None and bool(_xml.differences(definition, before.live_xml,
                                                                     self.authoritative))

    def needs_restart(self, before: Observed, plan: Plan) -> bool:
        return self.runs_older_definition(before, plan.merged)

    def plan_state(self, before: Observed, plan: Plan) -> None:
        if self.starts_now(before):
            self.check_host_routes(plan.merged if plan.merged is not None else before.xml)
        super().plan_state(before, plan)
        if any(action.name == 'restart' for action in plan.actions):
            # A restart detaches the running guests' interfaces from the bridge: say which
            # (check mode) or put them back and say how it went.
            plan.context['interfaces'] = self.attached_interfaces(bridge_name(before.handle))
            plan.extra['reconnected'] = list(plan.context['interfaces']) if self.check_mode else []
            plan.extra['disconnected'] = []

    def restart(self, handle, plan: Plan) -> None:
        report = plan.extra
        self.stop(handle)
        self.start(handle)
        bridge = bridge_name(handle)
        local = is_local_uri(self.conn.getURI())
        for interface in plan.context['interfaces']:
            entry = dict(interface)
            try:
                if not (local and bridge and interface['device']):
                    raise OSError('the bridge is not on this host: cannot re-attach from here')
                attach_to_bridge(interface['device'], bridge)
            except OSError as err:
                entry['error'] = str(err)
                report['disconnected'].append(entry)
            else:
                report['reconnected'].append(entry)
        if report['disconnected']:
            lost = ', '.join(sorted({entry['domain'] for entry in report['disconnected']}))
            plan.warnings.append(f'{self.label()} was restarted and these guests lost their link: {lost}')

    def remember_pending(self, plan: Plan) -> None:
        self.shared.setdefault('networks', set()).add(self.name)

    # ---- libvirt calls --------------------------------------------------------------------
    def read(self, handle) -> Observed:
        active = bool(handle.isActive())
        live = _xml.parse_xml(handle.XMLDesc(0), 'libvirt network XML')
        return Observed(
            exists=True, handle=handle, active=active, autostart=bool(handle.autostart()),
            persistent=bool(handle.isPersistent()), xml=self.clean(inactive_xml(handle, active, live)),
            live_xml=self.clean(live) if active else None,
        )

    def define(self, xml_text: str):
        return self.conn.networkDefineXML(xml_text)

    def info(self, observed: Observed, plan: Plan | None = None) -> dict:
        return network_info(observed.handle)

    def definition_facts(self, definition) -> dict:
        return definition_facts(definition)


def _updater(handle, section: int, calls: list, flags: int):
    def run():
        for command, index, item in calls:
            handle.update(command, section, index, item, flags)
    return run


def network_options() -> dict:
    """kvm_network's options (but uri), also the items of kvm_guests' ``networks``."""
    ranges = dict(type='list', elements='dict', options=dict(
        start=dict(type='str', required=True),
        end=dict(type='str', required=True),
    ))
    return dict(
        name=dict(type='str'),
        state=dict(type='str', default='present', choices=['present', 'active', 'inactive', 'absent']),
        forward=dict(type='str', choices=list(FORWARD_MODES)),
        bridge=dict(type='raw'),
        mtu=dict(type='int'),
        domain=dict(type='str'),
        ipv4=dict(type='dict', options=dict(
            address=dict(type='str', required=True),
            prefix=dict(type='int'),
            netmask=dict(type='str'),
            dhcp=dict(type='dict', options=dict(
                ranges=ranges,
                hosts=dict(type='list', elements='dict', options=dict(
                    mac=dict(type='str'), name=dict(type='str'), ip=dict(type='str', required=True),
                    id=dict(type='str'))),
            )),
        )),
        ipv6=dict(type='dict', options=dict(
            address=dict(type='str', required=True),
            prefix=dict(type='int'),
            dhcp=dict(type='dict', options=dict(
                ranges=ranges,
                hosts=dict(type='list', elements='dict', options=dict(
                    name=dict(type='str'), id=dict(type='str'), ip=dict(type='str', required=True))),
            )),
        )),
        dns=dict(type='dict', options=dict(
            enable=dict(type='bool'),
            hosts=dict(type='list', elements='dict', options=dict(
                ip=dict(type='str', required=True),
                hostnames=dict(type='list', elements='str', required=True))),
            forwarders=dict(type='list', elements='raw'),
            srv=dict(type='list', elements='dict', options=dict(
                service=dict(type='str', required=True), protocol=dict(type='str', required=True),
                domain=dict(type='str'), target=dict(type='str'), port=dict(type='int'),
                priority=dict(type='int'), weight=dict(type='int'))),
            txt=dict(type='list', elements='dict', options=dict(
                name=dict(type='str', required=True), value=dict(type='str', required=True))),
        )),
        nat_ports=dict(type='dict', options=dict(
            start=dict(type='int', required=True),
            end=dict(type='int', required=True),
        )),
        xml=dict(type='str'),
        autostart=dict(type='bool'),
        restart=dict(type='bool', default=False),
        force=dict(type='bool', default=False),
    )
