#!/usr/bin/python
# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: kvm_network_info
short_description: Read libvirt virtual networks and their DHCP leases
version_added: 0.1.0
description:
  - Returns one virtual network or all of them (read with one bulk libvirt call), with state,
    bridge, forward mode and the host devices of a pool, addresses, DHCP ranges and static
    hosts, DNS hosts, static routes, dnsmasq options, the TFTP root and DHCP boot file, the
    current DHCP leases and the definition.
  - Networks without a bridge of their own (macvtap or hostdev forward modes) are reported too.
author:
  - hypervisor.kvm maintainers (@hypervisor-kvm)
extends_documentation_fragment:
  - hypervisor.kvm.connection
  - hypervisor.kvm.requirements
  - hypervisor.kvm.attributes.INFO_MODULE
options:
  name:
    description:
      - Only this network. A network that does not exist gives an empty RV(networks) list.
      - When not set, every network.
    type: str
seealso:
  - module: hypervisor.kvm.kvm_network
'''

EXAMPLES = r'''
- name: Read every network
  hypervisor.kvm.kvm_network_info:
  register: all_networks

- name: Read the default network
  hypervisor.kvm.kvm_network_info:
    name: default
  register: default_net

- name: Show who holds a DHCP lease on it
  ansible.builtin.debug:
    msg: "{{ item.hostname | default('?', true) }} {{ item.mac }} -> {{ item.ip }}"
  loop: "{{ default_net.networks[0].leases if default_net.networks else [] }}"
  loop_control:
    label: "{{ item.mac }}"
'''

RETURN = r'''
networks:
  description: The networks, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Network name.
      type: str
      sample: default
    uuid:
      description: Network UUID.
      type: str
    state:
      description: V(active) or V(inactive).
      type: str
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
      sample: virbr0
    forward:
      description: Forward mode (nat, route, open, bridge, isolated, passthrough, hostdev...).
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
      sample: [{family: ipv4, address: 192.168.122.1, prefix: 24, netmask: 255.255.255.0,
                network: 192.168.122.0/24}]
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
      description:
        - Current DHCP leases of an active network, each with C(mac), C(ip), C(prefix),
          C(family), C(hostname), C(client_id), C(expiry) (seconds since the epoch) and C(interface).
      type: list
      elements: dict
      sample: [{mac: "52:54:00:6b:3c:58", ip: 192.168.122.45, prefix: 24, family: ipv4,
                hostname: web1, client_id: null, expiry: 1790000000, interface: virbr0}]
    xml:
      description: The persistent (inactive) definition.
      type: str
'''


# first of all: the module_utils below are compiled once each (see _compile_once)
from ansible_collections.hypervisor.kvm.plugins.module_utils import _compile_once  # noqa: F401  # isort: skip  # pylint: disable=unused-import
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import connection_argument_spec
from ansible_collections.hypervisor.kvm.plugins.module_utils._network_facts import list_networks
from ansible_collections.hypervisor.kvm.plugins.module_utils._options import KvmModule
from ansible_collections.hypervisor.kvm.plugins.module_utils._runner import run_info


def main():
    module = KvmModule(
        argument_spec=dict(**connection_argument_spec(), name=dict(type='str')),
        supports_check_mode=True,
    )
    run_info(module, 'networks', 'networks', lambda conn: list_networks(conn, module.params['name']))


if __name__ == '__main__':
    main()
