#!/usr/bin/python
# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: kvm_pool
short_description: Manage libvirt storage pools declaratively
version_added: 0.1.0
description:
  - Define, build, start, stop, change and remove libvirt storage pools (dir, fs, netfs, logical,
    disk, iscsi) from structured options or a full XML definition.
  - Idempotent by comparison. The desired definition is compared with libvirt's inactive
    definition, and only what you specify counts (libvirt's own additions such as the uuid and
    default permissions are not drift). A pool whose definition differs is redefined.
  - Removing a pool never deletes its storage or volumes unless O(delete_storage) (and, for
    volumes, O(force)) asks for it.
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
      - Name of the pool. Required unless O(xml) is given, which then names the pool.
      - When both are given they must agree.
    type: str
  state:
    description:
      - V(present) - defined, running or not as it already was (a new pool is not started).
      - V(active) - defined and running. For V(dir), V(fs) and V(netfs) pools a target directory
        that does not exist is created first (libvirt's build without flags, which formats
        nothing). Other types are never built implicitly, since building them writes to devices.
      - V(inactive) - defined and stopped.
      - V(absent) - stopped and undefined. Its volumes and its directory or device stay, unless
        O(delete_storage=true).
    type: str
    choices: [present, active, inactive, absent]
    default: present
  type:
    description:
      - The pool type. A new pool without a type is a V(dir) pool; an existing pool keeps its type
        unless you give one.
      - Other types libvirt supports (rbd, zfs, scsi...) can be managed with O(xml).
    type: str
    choices: [dir, fs, netfs, logical, disk, iscsi]
  target:
    description:
      - Where the pool's volumes appear on the host.
    type: dict
    suboptions:
      path:
        description:
          - The target directory (dir, fs, netfs) or device directory (logical, disk, iscsi).
            Required to create dir, fs and netfs pools.
        type: path
      owner:
        description: Owner of the target directory, a user name or numeric id.
        type: str
      group:
        description: Group of the target directory, a group name or numeric id.
        type: str
      mode:
        description:
          - Permissions of the target directory as an octal string such as V('0755').
          - Quote it; an unquoted YAML 0755 is read as the octal number it stands for.
        type: raw
  source:
    description:
      - Where the storage comes from, for the types that have a source.
      - V(fs) needs O(source.device); V(netfs) needs O(source.host) and O(source.dir); V(disk)
        needs O(source.device); V(iscsi) needs O(source.host) and O(source.device) (the target
        IQN); V(logical) uses O(source.name) (the volume group) and optionally devices.
    type: dict
    suboptions:
      device:
        description: Block device path(s), or the iSCSI target IQN.
        type: list
        elements: str
      host:
        description: The NFS, CIFS or iSCSI server.
        type: str
      port:
        description: The server's port.
        type: int
      dir:
        description: The exported directory of a V(netfs) pool.
        type: str
      name:
        description: The volume group of a V(logical) pool.
        type: str
      format:
        description:
          - The source format, for example V(ext4) or V(auto) (fs), V(nfs) or V(cifs) (netfs),
            V(lvm2) (logical), V(gpt) or V(dos) (disk).
        type: str
      initiator:
        description: The iSCSI initiator IQN to log in as.
        type: str
  xml:
    description:
      - A full libvirt pool definition, for everything the structured options do not cover.
      - Compared as a subset of libvirt's definition, like the structured options. Sizes libvirt
        reports (capacity, allocation, available) are ignored.
      - Mutually exclusive with O(type), O(target) and O(source).
    type: str
  autostart:
    description:
      - Start the pool when libvirt starts. Honoured with every O(state) but V(absent).
      - When not set, autostart is left as it is.
    type: bool
  restart:
    description:
      - When a running pool's definition changes, the new definition is saved and
        RV(restart_required=true) is returned; the pool keeps running on the old one.
      - V(true) restarts the pool instead so the new definition takes effect (guests using its
        volumes keep their open files, but new volumes appear in the new place).
    type: bool
    default: false
  delete_storage:
    description:
      - With O(state=absent), also delete the pool's storage (libvirt's pool delete, for example
        remove the target directory). Refused while the pool holds volumes unless O(force=true).
    type: bool
    default: false
  force:
    description:
      - With O(delete_storage=true), delete every volume in the pool before its storage.
        This destroys data.
    type: bool
    default: false
seealso:
  - module: hypervisor.kvm.kvm_pool_info
  - name: libvirt storage pool XML format
    description: Everything O(xml) can express.
    link: https://libvirt.org/formatstorage.html
'''

EXAMPLES = r'''
- name: A running directory pool that starts with libvirt
  hypervisor.kvm.kvm_pool:
    name: images
    type: dir
    target:
      path: /var/lib/libvirt/images
      mode: '0711'
    state: active
    autostart: true

- name: An NFS pool, defined but left stopped
  hypervisor.kvm.kvm_pool:
    name: nfs-images
    type: netfs
    source:
      host: nfs.example.com
      dir: /exports/images
      format: nfs
    target:
      path: /srv/nfs-images
    state: inactive

- name: A pool from a full definition
  hypervisor.kvm.kvm_pool:
    xml: |
      <pool type='dir'>
        <name>scratch</name>
        <target><path>/var/tmp/scratch-pool</path></target>
      </pool>
    state: active

- name: Move a running pool and restart it now instead of reporting restart_required
  hypervisor.kvm.kvm_pool:
    name: images
    target:
      path: /srv/images
    state: active
    restart: true

- name: Remove a pool definition, keeping its directory and volumes
  hypervisor.kvm.kvm_pool:
    name: scratch
    state: absent

- name: Remove a pool and delete its directory and every volume in it
  hypervisor.kvm.kvm_pool:
    name: scratch
    state: absent
    delete_storage: true
    force: true
'''

RETURN = r'''
pool:
  description:
    - The pool after the run (predicted in check mode). After O(state=absent) only RV(pool.name)
      and RV(pool.state=absent).
  returned: always
  type: dict
  contains:
    name:
      description: Pool name.
      type: str
      sample: images
    uuid:
      description: Pool UUID (not known in check mode before the pool exists).
      type: str
      sample: 3e3fce45-4f53-4fa7-bb32-11f34168b82b
    type:
      description: Pool type.
      type: str
      sample: dir
    state:
      description: V(active), V(inactive) or V(absent).
      type: str
      sample: active
    status:
      description: libvirt's finer state (active, inactive, building, degraded, inaccessible).
      type: str
      sample: active
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
      sample: 270553174016
    allocation:
      description: Bytes in use (null while inactive).
      type: int
    available:
      description: Bytes free (null while inactive).
      type: int
    target:
      description: The target path.
      type: str
      sample: /var/lib/libvirt/images
    volume_count:
      description: Number of volumes (null while inactive).
      type: int
    volumes:
      description: Volume names (null while inactive).
      type: list
      elements: str
    xml:
      description: The pool's persistent (inactive) definition.
      type: str
actions:
  description: What was done (or would be in check mode), in order.
  returned: always
  type: list
  elements: str
  sample: [define, build, start, autostart]
restart_required:
  description:
    - True when the pool runs on an older definition than the saved one, so a restart
      (O(restart=true)) is needed for the change to take effect.
  returned: always
  type: bool
  sample: false
deleted_volumes:
  description: Paths of the volumes deleted with O(delete_storage=true) and O(force=true).
  returned: when O(delete_storage=true) and the pool existed
  type: list
  elements: str
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
from ansible_collections.hypervisor.kvm.plugins.module_utils._options import KvmModule
from ansible_collections.hypervisor.kvm.plugins.module_utils._pool import StoragePool, pool_module_kwargs, pool_options
from ansible_collections.hypervisor.kvm.plugins.module_utils._runner import run_resource


def main():
    module = KvmModule(argument_spec=dict(**connection_argument_spec(), **pool_options()), **pool_module_kwargs())
    run_resource(module, StoragePool)


if __name__ == '__main__':
    main()
