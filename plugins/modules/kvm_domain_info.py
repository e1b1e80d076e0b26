#!/usr/bin/python
# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: kvm_domain_info
short_description: Read libvirt domains (guests), fast even with hundreds of them
version_added: 0.1.0
description:
  - Returns one domain or all of them.
  - All domains are read with a constant number of libvirt calls (the bulk domain statistics
    and flag-filtered listings), whatever their number, giving name, uuid, power state and reason,
    autostart, persistent, vcpus, memory, disks (target, path, capacity of running guests),
    managed save and snapshots.
  - With O(details=true) (the default when O(name) is given), each domain's definition is read
    too (one call per domain) for interfaces with MACs and addresses (DHCP leases or guest
    agent), disk buses and formats, the snapshot count and the XML.
author:
  - hypervisor.kvm maintainers (@hypervisor-kvm)
extends_documentation_fragment:
  - hypervisor.kvm.connection
  - hypervisor.kvm.requirements
  - hypervisor.kvm.attributes.INFO_MODULE
options:
  name:
    description: Only this domain. A domain that does not exist gives an empty RV(domains) list.
    type: str
  details:
    description:
      - Read each domain's definition for interfaces, addresses, disk details, snapshot count and XML.
      - Default V(true) with O(name), V(false) without (the bulk summary).
    type: bool
seealso:
  - module: hypervisor.kvm.kvm_domain
'''

EXAMPLES = r'''
- name: Summary of every guest (a constant number of libvirt calls)
  hypervisor.kvm.kvm_domain_info:
  register: guests

- name: Running guests
  ansible.builtin.debug:
    msg: "{{ guests.domains | selectattr('state', 'eq', 'running') | map(attribute='name') | list }}"

- name: One guest in detail, with its addresses
  hypervisor.kvm.kvm_domain_info:
    name: web1
  register: web1

- name: Every guest in detail
  hypervisor.kvm.kvm_domain_info:
    details: true
  register: all_details
'''

RETURN = r'''
domains:
  description: The domains, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Domain name.
      type: str
    uuid:
      description: Domain UUID.
      type: str
    state:
      description: V(running), V(paused), V(shutoff), V(crashed) or V(pmsuspended).
      type: str
    state_reason:
      description: Why (booted, shutdown, destroyed, user, crashed...).
      type: str
    autostart:
      description: Whether it starts with libvirt.
      type: bool
    persistent:
      description: Whether it has a persistent definition.
      type: bool
    vcpus:
      description: Current vcpus.
      type: int
    max_vcpus:
      description: Maximum vcpus.
      type: int
    memory:
      description: Current memory in bytes.
      type: int
    max_memory:
      description: Maximum memory in bytes.
      type: int
    disks:
      description:
        - Disks. Summary - C(target), C(path), C(capacity) (bytes, running guests). Details - C(device),
          C(path), C(pool), C(volume), C(target), C(bus), C(format).
      type: list
      elements: dict
    title:
      description: The guest's title, V(null) when it has none (details).
      type: str
    description:
      description: The guest's description, V(null) when it has none (details).
      type: str
    metadata:
      description:
        - The collection's metadata of the guest (M(hypervisor.kvm.kvm_domain)'s
          O(hypervisor.kvm.kvm_domain#module:metadata)), V({}) when it has none (details).
      type: dict
    has_managed_save:
      description: Whether a managed save image exists.
      type: bool
    has_snapshots:
      description: Whether it has snapshots (summary).
      type: bool
    virt_type:
      description: V(kvm) or V(qemu) (details).
      type: str
    interfaces:
      description: Interfaces with C(type), C(mac), C(network), C(bridge), C(device), C(model), C(addresses) (details).
      type: list
      elements: dict
    snapshot_count:
      description: Number of snapshots (details).
      type: int
    snapshots:
      description:
        - The guest's snapshots, oldest first (details), with the keys of
          M(hypervisor.kvm.kvm_snapshot)'s RV(hypervisor.kvm.kvm_snapshot#module:snapshot) return.
      type: list
      elements: dict
      contains:
        name:
          description: The snapshot's name.
          type: str
        parent:
          description: Its parent snapshot, null for a root.
          type: str
        created:
          description: When it was taken, in epoch seconds.
          type: int
        state:
          description: The guest's power state when it was taken (running, shutoff...).
          type: str
        current:
          description: Whether it is libvirt's current snapshot of the guest.
          type: bool
        kind:
          description: V(internal) (in the qcow2 disks) or V(external) (overlay files).
          type: str
        description:
          description: Its description, null when unset.
          type: str
    xml:
      description: The persistent definition, passwords masked (details).
      type: str
'''


# first of all: the module_utils below are compiled once each (see _compile_once)
from ansible_collections.hypervisor.kvm.plugins.module_utils import _compile_once  # noqa: F401  # isort: skip  # pylint: disable=unused-import
from ansible_collections.hypervisor.kvm.plugins.module_utils._domain_facts import list_domains
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import connection_argument_spec
from ansible_collections.hypervisor.kvm.plugins.module_utils._options import KvmModule
from ansible_collections.hypervisor.kvm.plugins.module_utils._runner import run_info


def main():
    module = KvmModule(
        argument_spec=dict(**connection_argument_spec(), name=dict(type='str'), details=dict(type='bool')),
        supports_check_mode=True,
    )
    params = module.params
    run_info(module, 'domains', 'domains',
             lambda conn: list_domains(conn, params['name'], params['details']))


if __name__ == '__main__':
    main()
