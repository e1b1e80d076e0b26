# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a network run does only when something changes: the checks against the host and the
other networks before a definition is written, live updates of hosts, ranges and DNS entries,
the running guests attached to it, and a restart that puts their interfaces back on the bridge
(docs/architecture.md, "Speed": a run with nothing to do never compiles this file). Each
function takes the :class:`_network.Network` it works for as ``network``."""

from __future__ import annotations

import os

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import each_read, is_local_uri, libvirt
from ansible_collections.hypervisor.kvm.plugins.module_utils._network_facts import bridge_name, forward_mode, subnet
from ansible_collections.hypervisor.kvm.plugins.module_utils._resource import Observed, Plan

SIOCBRADDIF = 0x89a2  # linux/sockios.h: add an interface to a bridge

# Lists changed on a running network with virNetworkUpdate (live and config together):
# tag path -> (libvirt section constant, action name, whether the parent is an <ip>).
LIVE_SECTIONS = {
    'ip/dhcp/host': ('VIR_NETWORK_SECTION_IP_DHCP_HOST', 'update-dhcp-host', True),
    'ip/dhcp/range': ('VIR_NETWORK_SECTION_IP_DHCP_RANGE', 'update-dhcp-range', True),
    'dns/host': ('VIR_NETWORK_SECTION_DNS_HOST', 'update-dns-host', False),
    'dns/txt': ('VIR_NETWORK_SECTION_DNS_TXT', 'update-dns-txt', False),
    'dns/srv': ('VIR_NETWORK_SECTION_DNS_SRV', 'update-dns-srv', False),
    # the host interfaces of a macvtap pool (libvirt refuses to delete one a guest uses)
    'forward/interface': ('VIR_NETWORK_SECTION_FORWARD_INTERFACE', 'update-forward-interface', False),
}


def validate_definition(network, merged, before: Observed, plan: Plan) -> None:
    """A bridge or subnet that another network uses only matters when both would run: an
    error when this task starts the network while the other one is active, else a warning
    (libvirt itself refuses only at start)."""
    bridge = merged.find('bridge')
    bridge_name = bridge.get('name') if bridge is not None else None
    mode = forward_mode(merged)
    if mode == 'bridge' and bridge_name and is_local_uri(network.conn.getURI()) \
            and not local_bridge_exists(bridge_name):
        raise KvmError(f"bridge: the host bridge {bridge_name!r} does not exist; create it first "
                       "(forward: bridge attaches guests to an existing bridge)")
    subnets = [subnet(ip) for ip in merged.findall('ip')]
    starts = network.starts_now(before)
    if is_local_uri(network.conn.getURI()):
        check_host_paths(network, merged, starts, plan)
    for other in network.conn.listAllNetworks(0):
        if other.name() == network.name:
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
            raise KvmError(f"{conflicts[0]}, which is active: {network.label()} could not start")
        for conflict in conflicts:
            plan.warnings.append(f"{conflict} ({'inactive' if not other.isActive() else 'active'}); "
                                 f"{network.label()} and '{other.name()}' cannot run at the same time")


def check_host_paths(network, merged, starts: bool, plan: Plan) -> None:
    """What the definition names on this host: a TFTP root dnsmasq cannot serve makes the start
    fail (refused when this task starts the network, else a warning); a hostdev PCI address that
    is no SR-IOV virtual function libvirt refuses at once (refused here, so check mode says it
    too); a macvtap interface that does not exist leaves the guests without a link (a warning:
    it may appear later)."""
    for tftp in merged.findall('ip/tftp'):
        root = tftp.get('root') or ''
        if not os.path.isdir(root):
            problem = f"ipv4.tftp.root: {root!r} is not a directory on this host, so dnsmasq would not start"
            if starts:
                raise KvmError(f'{problem}: create it first. Nothing was changed.')
            plan.warnings.append(f'{problem} when {network.label()} starts')
    for address in merged.findall('forward/address') if forward_mode(merged) == 'hostdev' else []:
        try:
            parts = [int(address.get(key, '0'), 16) for key in ('domain', 'bus', 'slot', 'function')]
        except ValueError:
            continue  # libvirt names it
        pci = '{:04x}:{:02x}:{:02x}.{:x}'.format(*parts)
        if not os.path.exists(f'/sys/bus/pci/devices/{pci}/physfn'):
            raise KvmError(f'forward.addresses: {pci} is not an SR-IOV virtual function on this host, which libvirt '
                           f'refuses in a hostdev network ({network.label()}). Nothing was changed.')
    for interface in merged.findall('forward/interface'):
        dev = interface.get('dev') or ''
        if not os.path.exists(f'/sys/class/net/{dev}'):
            plan.warnings.append(f"forward.interfaces: the host interface {dev!r} does not exist (yet): guests "
                                 f'of {network.label()} get no link through it')


def check_host_routes(network, definition) -> None:
    """An IPv4 subnet this host already routes on another interface (its own LAN, say) makes
    libvirt refuse to start the network ("Network is already in use by interface ..."): that
    is refused here, while planning, so nothing is defined first. Only where libvirt runs on
    this host (a local URI): a remote host's routes are not readable from here."""
    if definition is None or not is_local_uri(network.conn.getURI()):
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
                           f'to start {network.label()} (Network is already in use by interface {interface}); '
                           'give the network a subnet this host does not use. Nothing was changed.')


def plan_live_updates(network, before: Observed, plan: Plan) -> bool:
    """Hosts, ranges and DNS entries of a running network change with virNetworkUpdate
    (live and persistent together) when nothing else changed."""
    # with xml_patches, what the patches changed is only in the definition to write
    desired = plan.merged if network.params.get('xml_patches') else plan.desired
    if not before.active or network.runs_older_definition(before, before.xml):
        return False
    lists = frozenset(LIVE_SECTIONS)
    stripped_desired = _xml.remove_paths(_xml.normalise(desired), lists)
    stripped_actual = _xml.remove_paths(_xml.normalise(before.xml), lists)
    if _xml.differences(stripped_desired, stripped_actual, network.authoritative - lists):
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
            plan.add(action, f"updating the {tag} entries of {network.label()} ({path.replace('/', ' ')})",
                     _updater(handle, section, calls, flags))
    return True


def attached_interfaces(network, bridge_name: str | None) -> list:
    """Interfaces of running guests on this network (or its bridge)."""
    found = []
    running = network.conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
    for domain, text in each_read(running, lambda domain: domain.XMLDesc(0), libvirt.VIR_ERR_NO_DOMAIN):
        definition = _xml.parse_xml(text, 'libvirt domain XML')
        for interface in definition.findall('devices/interface'):
            source = interface.find('source')
            if source is None:
                continue
            on_network = interface.get('type') == 'network' and source.get('network') == network.name
            on_bridge = bool(bridge_name) and source.get('bridge') == bridge_name
            if on_network or on_bridge:
                found.append({
                    'domain': domain.name(),
                    'mac': interface.find('mac').get('address') if interface.find('mac') is not None else None,
                    'device': interface.find('target').get('dev') if interface.find('target') is not None else None,
                })
    return found


def restart(network, handle, plan: Plan) -> None:
    report = plan.extra
    network.stop(handle)
    network.start(handle)
    bridge = bridge_name(handle)
    local = is_local_uri(network.conn.getURI())
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
        plan.warnings.append(f'{network.label()} was restarted and these guests lost their link: {lost}')


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


def _updater(handle, section: int, calls: list, flags: int):
    def run():
        for command, index, item in calls:
            handle.update(command, section, index, item, flags)
    return run
