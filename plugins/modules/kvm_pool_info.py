#!/usr/bin/python
# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: kvm_pool_info
short_description: Read libvirt storage pools
version_added: 0.1.0
description:
  - Returns one storage pool or all of them, with state, autostart, sizes, target path, volumes
    and the definition. All pools are read with one bulk libvirt call.
author:
  - hypervisor.kvm maintainers (@hypervisor-kvm)
extends_documentation_fragment:
  - hypervisor.kvm.connection
  - hypervisor.kvm.requirements
  - hypervisor.kvm.attributes.INFO_MODULE
options:
  name:
    description:
      - Only this pool. A pool that does not exist gives an empty RV(pools) list.
      - When not set, every pool (active and inactive, persistent and transient).
    type: str
  volumes:
    description:
      - V(false) lists each active pool's volumes by name in RV(pools[].volumes).
      - V(true) lists each volume with its details instead (name, path, format, capacity,
        allocation, backing store), reading every volume's definition.
    type: bool
    default: false
seealso:
  - module: hypervisor.kvm.kvm_pool
'''

EXAMPLES = r'''
- name: Read every pool
  hypervisor.kvm.kvm_pool_info:
  register: all_pools

- name: Show the free space of each active pool
  ansible.builtin.debug:
    msg: "{{ item.name }}: {{ item.available | human_readable }} free"
  loop: "{{ all_pools.pools | selectattr('active') }}"
  loop_control:
    label: "{{ item.name }}"

- name: Read one pool with the details of its volumes
  hypervisor.kvm.kvm_pool_info:
    name: images
    volumes: true
  register: images

- name: Fail when the pool is missing
  ansible.builtin.assert:
    that: images.pools | length == 1
'''

RETURN = r'''
pools:
  description: The pools, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Pool name.
      type: str
      sample: images
    uuid:
      description: Pool UUID.
      type: str
    type:
      description: Pool type (dir, fs, netfs, logical, disk, iscsi...).
      type: str
      sample: dir
    state:
      description: V(active) or V(inactive).
      type: str
    status:
      description: libvirt's finer state (active, inactive, building, degraded, inaccessible).
      type: str
    active:
      description: Whether the pool runs.
      type: bool
    autostart:
      description: Whether the pool starts with libvirt.
      type: bool
    persistent:
      description: Whether the pool has a persistent definition.
      type: bool
    capacity:
      description: Size of the pool's storage in bytes (null while inactive).
      type: int
    allocation:
      description: Bytes in use (null while inactive).
      type: int
    available:
      description: Bytes free (null while inactive).
      type: int
    target:
      description: The target path.
      type: str
    volume_count:
      description: Number of volumes (null while inactive).
      type: int
    volumes:
      description:
        - The volumes of an active pool (null while inactive), sorted by name. Their names, or
          with O(volumes=true) dicts with C(name), C(pool), C(path), C(key), C(type), C(format),
          C(capacity) and C(allocation) in bytes, C(backing_store) (C(path), C(format), or null)
          and C(xml), as M(hypervisor.kvm.kvm_volume) returns them.
      type: list
      elements: raw
      sample: [base.qcow2, web1.qcow2]
    xml:
      description: The persistent (inactive) definition.
      type: str
'''


# first of all: the module_utils below are compiled once each (see _compile_once)
from ansible_collections.hypervisor.kvm.plugins.module_utils import _compile_once  # noqa: F401  # isort: skip  # pylint: disable=unused-import
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import connection_argument_spec
from ansible_collections.hypervisor.kvm.plugins.module_utils._options import KvmModule
from ansible_collections.hypervisor.kvm.plugins.module_utils._pool_facts import list_pools
from ansible_collections.hypervisor.kvm.plugins.module_utils._runner import run_info


def main():
    module = KvmModule(
        argument_spec=dict(**connection_argument_spec(), name=dict(type='str'),
                           volumes=dict(type='bool', default=False)),
        supports_check_mode=True,
    )
    params = module.params
    run_info(module, 'storage pools', 'pools',
             lambda conn: list_pools(conn, params['name'], params['volumes']))


if __name__ == '__main__':
    main()
