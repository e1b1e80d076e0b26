#!/usr/bin/python
# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: kvm_network
short_description: Manage libvirt virtual networks, including changes to existing ones
version_added: 0.1.0
description:
  - Define, start, stop, change and remove libvirt virtual networks (NAT, routed, open,
    isolated, attached to an existing host bridge, or on a pool of host interfaces or SR-IOV
    devices) from structured options or a full XML definition.
  - Existing networks are changed in place. DHCP static hosts, DHCP ranges, DNS entries
    (hosts, TXT, SRV) and the host interfaces of a macvtap pool of a running network are changed
    live with libvirt's network update (running and persistent definition together, no
    restart) when nothing else changed.
  - Any other change (forward mode, addresses, bridge, routes, dnsmasq options, TFTP root, boot
    file...) is written to the persistent
    definition and reported with RV(restart_required=true), or applied at once with
    O(restart=true). A restart detaches the running guests' interfaces from the network's
    bridge; the module re-attaches them and reports which guests it could not reconnect.
  - Lists you describe (DHCP ranges and hosts, DNS entries, addresses) are authoritative. An
    entry you leave out is removed. Options you do not give are left as they are.
author:
  - hypervisor.kvm maintainers (@hypervisor-kvm)
extends_documentation_fragment:
  - hypervisor.kvm.connection
  - hypervisor.kvm.requirements
  - hypervisor.kvm.attributes
  - hypervisor.kvm.xml_patches
options:
  name:
    description:
      - Name of the network. Required unless O(xml) is given, which then names the network.
    type: str
  state:
    description:
      - V(present) - defined, running or not as it already was (a new network is not started).
      - V(active) - defined and running.
      - V(inactive) - defined and stopped.
      - V(absent) - stopped and undefined.
    type: str
    choices: [present, active, inactive, absent]
    default: present
  forward:
    description:
      - How guests reach the outside, as a mode (V(nat)) or a dict with C(mode) and the host
        devices of the modes on a pool of them.
      - V(nat) (masquerade through the host), V(route) (routed, no NAT), V(open) (routed, no
        firewall rules), V(bridge) (guests join the existing host bridge named in O(bridge)),
        V(isolated) (guests reach only each other and the host).
      - "On a pool of host interfaces, through macvtap: V(bridge) with C(interfaces) (guests
        talk to each other and to the LAN), V(private) (only to the LAN), V(vepa) (through the
        external switch), V(passthrough) (each guest takes one interface, typically an SR-IOV
        virtual function, whole). Give C(interfaces), a list of host interface names, or C(pf),
        the SR-IOV physical function whose virtual functions make the pool."
      - "V(hostdev): each guest is given an SR-IOV virtual function as a PCI device. Give C(pf),
        or C(addresses), a list of PCI addresses (V(0000:04:10.1)); C(managed) (bool) has
        libvirt detach them from the host's driver (libvirt's default is false). libvirt refuses
        an address that is no SR-IOV virtual function when the definition is written; where it
        runs on this host, that is refused before anything changes."
      - Networks on host devices have no bridge, addresses, DNS, routes or dnsmasq of their own.
        The macvtap modes with C(interfaces) start without special hardware (libvirt checks
        nothing about the interfaces until a guest connects); V(passthrough) needs SR-IOV
        virtual functions for its guests, a C(pf) needs an SR-IOV capable NIC to start, and
        V(hostdev) needs SR-IOV hardware (a C(pf) network is defined without it).
      - The host interfaces of a running macvtap pool change live (libvirt refuses to remove
        one a running guest uses); any other change of O(forward) needs a restart.
      - A new network without O(forward) is isolated, as in libvirt. The C(mode) alone
        (V(nat)) keeps a C(dev) the network forwards through (set with O(xml)) as it is.
    type: raw
  bridge:
    description:
      - The bridge device, as a name (V(virbr10)) or a dict with C(name), C(stp) (bool) and
        C(delay) (seconds).
      - libvirt picks a free C(virbrN) name when not set. With O(forward=bridge), the name of an
        existing host bridge (required).
    type: raw
  mtu:
    description: MTU of the network's bridge.
    type: int
  domain:
    description: DNS domain of the network; dnsmasq answers for names in it.
    type: str
  ipv4:
    description: The IPv4 address of the host on this network, its subnet, and DHCP.
    type: dict
    suboptions:
      address:
        description: The host's address on the network (the guests' gateway).
        type: str
        required: true
      prefix:
        description: Subnet prefix length, for example V(24). Give this or O(ipv4.netmask).
        type: int
      netmask:
        description: Subnet mask, for example V(255.255.255.0).
        type: str
      tftp:
        description:
          - A TFTP server on the network (dnsmasq's), for PXE. It is changed with a restart.
          - Where libvirt runs on this host, a root that is not a directory is refused when the
            task starts the network (dnsmasq would not start), else a warning.
        type: dict
        suboptions:
          root:
            description: The directory served, an absolute path on the libvirt host.
            type: str
            required: true
      dhcp:
        description: DHCP served by dnsmasq. Leave out to serve no DHCP.
        type: dict
        suboptions:
          bootp:
            description:
              - The boot file DHCP answers carry, for PXE (needs O(ipv4.dhcp.ranges) or
                O(ipv4.dhcp.hosts)). It is changed with a restart.
            type: dict
            suboptions:
              file:
                description: The boot file name (V(pxelinux.0)), as the TFTP server knows it.
                type: str
                required: true
              server:
                description: The IPv4 address of the TFTP server, when it is not this network's own.
                type: str
          ranges:
            description: Address ranges handed out; inside the subnet, not overlapping.
            type: list
            elements: dict
            suboptions:
              start:
                description: First address.
                type: str
                required: true
              end:
                description: Last address.
                type: str
                required: true
          hosts:
            description: Static leases.
            type: list
            elements: dict
            suboptions:
              mac:
                description: The guest's MAC address (required for IPv4).
                type: str
              name:
                description: Host name given to the guest.
                type: str
              ip:
                description: The fixed address, inside the subnet.
                type: str
                required: true
              id:
                description: DHCPv6 client DUID (IPv6 only).
                type: str
  ipv6:
    description: The IPv6 address of the host on this network, its prefix, and DHCPv6.
    type: dict
    suboptions:
      address:
        description: The host's IPv6 address on the network.
        type: str
        required: true
      prefix:
        description: Prefix length, for example V(64).
        type: int
      dhcp:
        description: DHCPv6 (ranges and static hosts by name or DUID).
        type: dict
        suboptions:
          ranges:
            description: Address ranges handed out.
            type: list
            elements: dict
            suboptions:
              start:
                description: First address.
                type: str
                required: true
              end:
                description: Last address.
                type: str
                required: true
          hosts:
            description: Static leases (need O(ipv6.dhcp.hosts[].name) or O(ipv6.dhcp.hosts[].id)).
            type: list
            elements: dict
            suboptions:
              name:
                description: Host name.
                type: str
              id:
                description: DHCPv6 client DUID.
                type: str
              ip:
                description: The fixed address.
                type: str
                required: true
  dns:
    description: The network's DNS server (dnsmasq).
    type: dict
    suboptions:
      enable:
        description: V(false) turns the DNS server off.
        type: bool
      hosts:
        description: Extra host records.
        type: list
        elements: dict
        suboptions:
          ip:
            description: Address of the names.
            type: str
            required: true
          hostnames:
            description: Names for the address.
            type: list
            elements: str
            required: true
      forwarders:
        description:
          - Upstream servers, as addresses (V(192.0.2.53)) or dicts with C(addr) and/or C(domain).
        type: list
        elements: raw
      srv:
        description: SRV records.
        type: list
        elements: dict
        suboptions:
          service:
            description: Service name.
            type: str
            required: true
          protocol:
            description: V(tcp) or V(udp).
            type: str
            required: true
          domain:
            description: Domain of the record.
            type: str
          target:
            description: Target host.
            type: str
          port:
            description: Target port.
            type: int
          priority:
            description: Priority.
            type: int
          weight:
            description: Weight.
            type: int
      txt:
        description: TXT records.
        type: list
        elements: dict
        suboptions:
          name:
            description: Record name.
            type: str
            required: true
          value:
            description: Record text.
            type: str
            required: true
  routes:
    description:
      - Static routes the host adds while the network runs, to subnets behind a guest (IPv4 and
        IPv6). The list is authoritative; V([]) removes them, and leaving it out leaves them as
        they are. A change is written and needs a restart (libvirt has no live update for routes).
      - Each O(routes[].gateway) must be in one of the network's own subnets of its family, as
        libvirt requires; a route that is not is refused before anything changes, naming it.
    type: list
    elements: dict
    suboptions:
      address:
        description: The destination network's address (V(10.250.0.0), V(fd00:250::)).
        type: str
        required: true
      prefix:
        description: The destination's prefix length.
        type: int
        required: true
      gateway:
        description: The next hop, an address on this network (a guest that routes).
        type: str
        required: true
      metric:
        description: The route's metric (1 or more).
        type: int
  dnsmasq_options:
    description:
      - Lines added to the network's dnsmasq configuration, each one dnsmasq option as
        C(option=value) (V(dhcp-option=option:ntp-server,10.0.0.1)) or a bare option
        (V(log-dhcp)), written as libvirt's C(<dnsmasq:options>) extension.
      - Compared in order. V([]) removes them; leaving it out leaves them as they are. A change
        is written and needs a restart (dnsmasq reads them when the network starts).
      - libvirt and the module pass them on unchecked but for one line each; dnsmasq refuses
        an unknown option when the network starts.
    type: list
    elements: str
  nat_ports:
    description: Source port range used for NAT (O(forward=nat) only).
    type: dict
    suboptions:
      start:
        description: First port.
        type: int
        required: true
      end:
        description: Last port.
        type: int
        required: true
  xml:
    description:
      - A full libvirt network definition, for everything the structured options do not cover.
      - Compared as a subset of libvirt's definition (the uuid, MAC and bridge libvirt added are
        kept); its DHCP, DNS, address, route, forward and dnsmasq option parts are authoritative.
      - Mutually exclusive with the structured options.
    type: str
  autostart:
    description:
      - Start the network when libvirt starts. Honoured with every O(state) but V(absent).
      - When not set, autostart is left as it is.
    type: bool
  restart:
    description:
      - V(true) restarts a running network whose change cannot be applied live, so the change
        takes effect now; running guests are re-attached to its bridge.
      - V(false) saves the change and returns RV(restart_required=true).
    type: bool
    default: false
  force:
    description:
      - With O(state=absent), remove a running network even when running guests are attached to
        it (they lose their network). Without it, such a removal is refused before anything
        changes, naming the guests.
    type: bool
    default: false
    version_added: 1.0.0
notes:
  - Subnets and bridge names already used by another libvirt network, and a missing host bridge
    for O(forward=bridge), are refused before anything changes.
  - Changing a DHCP range makes libvirt restart the network's dnsmasq (guests stay connected);
    static hosts and DNS entries are reloaded without a restart.
seealso:
  - module: hypervisor.kvm.kvm_network_info
  - name: libvirt network XML format
    description: Everything O(xml) can express.
    link: https://libvirt.org/formatnetwork.html
'''

EXAMPLES = r'''
- name: A NAT network with DHCP that starts with libvirt
  hypervisor.kvm.kvm_network:
    name: lab
    forward: nat
    bridge: virbr10
    domain: lab.internal
    ipv4:
      address: 192.168.110.1
      prefix: 24
      dhcp:
        ranges:
          - {start: 192.168.110.100, end: 192.168.110.199}
        hosts:
          - {mac: "52:54:00:00:10:01", name: web1, ip: 192.168.110.11}
    dns:
      hosts:
        - {ip: 192.168.110.11, hostnames: [web1.lab.internal, www]}
    state: active
    autostart: true

- name: Add a static lease to the running network (applied live, no restart)
  hypervisor.kvm.kvm_network:
    name: lab
    ipv4:
      address: 192.168.110.1
      prefix: 24
      dhcp:
        ranges:
          - {start: 192.168.110.100, end: 192.168.110.199}
        hosts:
          - {mac: "52:54:00:00:10:01", name: web1, ip: 192.168.110.11}
          - {mac: "52:54:00:00:10:02", name: web2, ip: 192.168.110.12}
    state: active

- name: Switch it to routing and restart it now (guests are re-attached)
  hypervisor.kvm.kvm_network:
    name: lab
    forward: route
    state: active
    restart: true

- name: An isolated network for guest-to-guest traffic only
  hypervisor.kvm.kvm_network:
    name: backplane
    forward: isolated
    ipv4:
      address: 10.77.0.1
      prefix: 24
    state: active

- name: A routed network with a static route to a subnet behind a guest, and dnsmasq options
  hypervisor.kvm.kvm_network:
    name: labnet
    forward: route
    ipv4:
      address: 192.168.130.1
      prefix: 24
      dhcp:
        ranges:
          - {start: 192.168.130.100, end: 192.168.130.199}
    routes:
      - {address: 192.168.140.0, prefix: 24, gateway: 192.168.130.2}
    dnsmasq_options:
      - dhcp-option=option:ntp-server,192.168.130.1
      - log-dhcp
    state: active

- name: PXE - a TFTP root served by the network, and the boot file in the DHCP answers
  hypervisor.kvm.kvm_network:
    name: pxe
    forward: nat
    ipv4:
      address: 192.168.150.1
      prefix: 24
      tftp:
        root: /srv/tftp
      dhcp:
        ranges:
          - {start: 192.168.150.100, end: 192.168.150.199}
        bootp:
          file: pxelinux.0
    state: present

- name: Guests on the LAN through macvtap on a pool of host interfaces
  hypervisor.kvm.kvm_network:
    name: lan
    forward:
      mode: bridge
      interfaces: [eno1, eno2]
    state: active

- name: SR-IOV virtual functions given to guests as PCI devices (needs SR-IOV hardware)
  hypervisor.kvm.kvm_network:
    name: sriov
    forward:
      mode: hostdev
      managed: true
      addresses: ["0000:04:10.1", "0000:04:10.3"]
    state: present

- name: A network from a full definition
  hypervisor.kvm.kvm_network:
    xml: |
      <network>
        <name>routed</name>
        <forward mode='route'/>
        <ip address='192.168.120.1' prefix='24'/>
      </network>
    state: inactive

- name: Remove the networks
  hypervisor.kvm.kvm_network:
    name: "{{ item }}"
    state: absent
  loop: [lab, backplane, labnet, pxe, lan, sriov, routed]
'''

RETURN = r'''
network:
  description:
    - The network after the run (predicted in check mode). After O(state=absent) only
      RV(network.name) and RV(network.state=absent).
  returned: always
  type: dict
  contains:
    name:
      description: Network name.
      type: str
      sample: lab
    uuid:
      description: Network UUID (not known in check mode before the network exists).
      type: str
    state:
      description: V(active), V(inactive) or V(absent).
      type: str
      sample: active
    active:
      description: Whether the network runs.
      type: bool
    autostart:
      description: Whether the network starts with libvirt.
      type: bool
    persistent:
      description: Whether the network has a persistent definition.
      type: bool
    bridge:
      description: The bridge device (null for networks without one).
      type: str
      sample: virbr10
    forward:
      description: Forward mode (nat, route, open, bridge, isolated, private, vepa, passthrough, hostdev).
      type: str
      sample: nat
    forward_interfaces:
      description: The host interfaces of a macvtap or passthrough pool (empty for other modes).
      type: list
      elements: str
      sample: [eno1, eno2]
    forward_pf:
      description: The SR-IOV physical function whose virtual functions make the pool, when set.
      type: str
    forward_addresses:
      description: The PCI addresses of a hostdev pool (V(0000:04:10.1)).
      type: list
      elements: str
    routes:
      description: Static routes (family, address, prefix, gateway, metric).
      type: list
      elements: dict
      sample: [{family: ipv4, address: 192.168.140.0, prefix: 24, gateway: 192.168.130.2, metric: null}]
    dnsmasq_options:
      description: The dnsmasq options of the definition, in order.
      type: list
      elements: str
    tftp_root:
      description: The directory the network serves over TFTP, when set.
      type: str
    bootp:
      description: The DHCP boot file (C(file), C(server)), when set.
      type: dict
    mtu:
      description: MTU when set.
      type: int
    domain:
      description: DNS domain when set.
      type: str
    addresses:
      description: The host's addresses on the network (family, address, prefix, netmask, network).
      type: list
      elements: dict
      sample: [{family: ipv4, address: 192.168.110.1, prefix: 24, netmask: 255.255.255.0,
                network: 192.168.110.0/24}]
    dhcp_ranges:
      description: DHCP ranges (family, start, end).
      type: list
      elements: dict
    dhcp_hosts:
      description: Static DHCP hosts (family, mac, name, ip, id).
      type: list
      elements: dict
    dns_hosts:
      description: DNS host records (ip, hostnames).
      type: list
      elements: dict
    leases:
      description: Current DHCP leases (see M(hypervisor.kvm.kvm_network_info)).
      type: list
      elements: dict
    xml:
      description: The persistent (inactive) definition.
      type: str
actions:
  description:
    - What was done (or would be in check mode), in order. Among them V(define), V(start),
      V(stop), V(restart), V(undefine), V(autostart), V(disable-autostart) and the live updates
      V(update-dhcp-host), V(update-dhcp-range), V(update-dns-host), V(update-dns-txt),
      V(update-dns-srv), V(update-forward-interface).
  returned: always
  type: list
  elements: str
  sample: [update-dhcp-host]
restart_required:
  description: True when the running network uses an older definition than the saved one.
  returned: always
  type: bool
reconnected:
  description:
    - Interfaces of running guests put back on the bridge after a restart (in check mode, the
      ones that would be), each with C(domain), C(mac) and C(device).
  returned: when the network is restarted
  type: list
  elements: dict
disconnected:
  description:
    - Interfaces that could not be re-attached after a restart, with the C(error); the module
      also warns naming the guests.
  returned: when the network is restarted
  type: list
  elements: dict
diff:
  description: The state dict and inactive XML before and after.
  returned: when the run asks for a diff (C(--diff), or the task keyword C(diff) set to true)
  type: dict
libvirt_error:
  description: libvirt's error (code, code_name, domain, message) when a libvirt call failed.
  returned: failure
  type: dict
'''


# first of all: the module_utils below are compiled once each (see _compile_once)
from ansible_collections.hypervisor.kvm.plugins.module_utils import _compile_once  # noqa: F401  # isort: skip  # pylint: disable=unused-import
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import connection_argument_spec
from ansible_collections.hypervisor.kvm.plugins.module_utils._network import STRUCTURED, Network, network_options
from ansible_collections.hypervisor.kvm.plugins.module_utils._options import KvmModule, apply_unions
from ansible_collections.hypervisor.kvm.plugins.module_utils._runner import run_resource


def main():
    module = KvmModule(
        argument_spec=dict(**connection_argument_spec(), **network_options()),
        required_one_of=[('name', 'xml')],
        mutually_exclusive=[('xml', option) for option in STRUCTURED],
        supports_check_mode=True,
    )
    apply_unions(module, {'forward': 'forward', 'bridge': 'bridge', 'dns.forwarders[]': 'forwarder'})
    run_resource(module, Network)


if __name__ == '__main__':
    main()
