#!/usr/bin/python
# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: kvm_migration
short_description: Move a libvirt guest to another host, live or offline, declaratively
version_added: 0.1.0
description:
  - Declares that guest O(name) runs on the destination host O(dest_uri). A guest running on the
    source O(uri) is migrated there, live by default (it keeps running while its memory is
    copied; it stops only for the last round, typically well under a second). A guest that is
    shut off on the source moves by its definition only (an offline migration).
  - B(Already there.) When the guest is active on the destination and not on the source, or
    defined on the destination and active nowhere, nothing happens (also in check mode). A
    shut-off definition still on the source is reported as a warning, never removed.
  - B(Refused before anything changes), with one message listing every problem - a destination
    that cannot be reached (the message names O(dest_uri) and the transport's error); a guest found
    on neither host; a guest active on both (two copies may write to the same disks); another guest
    of that name (a different UUID) on the destination; a destination that lacks the guest's
    libvirt network, host bridge or direct device, storage pool, or a disk's storage path when
    O(copy_storage=none), or (with O(reserve_memory)) the memory.
  - B(A failed migration leaves the guest on the source), running as before. Volumes this run
    created on the destination for the copy are removed again, and the failure says where the
    guest is.
  - B(Storage.) With O(copy_storage=none) the disks must already be on the destination at the
    same paths (shared storage such as NFS, or a copy you made). With V(all) or V(incremental)
    libvirt copies the writable disks while the guest runs; the module first creates each
    destination volume in the destination's pool that holds the same directory (or the pool of the
    same name for C(<source pool=... volume=...>) disks), with the same name, size and format.
    Read-only and shareable disks (CD-ROMs, seeds) are never copied and must be there.
    After a successful copy the source keeps its copy of the disks unless
    O(remove_source_storage=true).
  - O(peer2peer=true) lets the source's libvirtd drive the migration and connect to O(dest_uri)
    itself, so the URI must work B(from the source host); otherwise the module talks to both hosts.
  - Not covered, because the test machines cannot exercise them - post-copy migration (it needs
    userfaultfd, which these machines do not offer unprivileged) and a CPU model the destination
    lacks (two libvirt daemons on one machine always share one CPU). libvirt itself refuses both
    with its own message.
author:
  - hypervisor.kvm maintainers (@hypervisor-kvm)
extends_documentation_fragment:
  - hypervisor.kvm.connection
  - hypervisor.kvm.requirements
  - hypervisor.kvm.attributes
options:
  uri:
    description:
      - The B(source) host's libvirt URI (where the guest runs now).
  name:
    description: Name of the guest (domain).
    type: str
    required: true
  dest_uri:
    description:
      - The destination host's libvirt URI, for example V(qemu+ssh://root@host-b/system) or
        V(qemu+tls://host-b/system).
      - It is opened by the module (on the managed host) and, with O(peer2peer=true), by the source
        host's libvirtd.
    type: str
    required: true
  live:
    description:
      - V(true) migrates a running guest live. V(false) pauses it while its memory is copied
        (faster for a guest that changes its memory quickly; it then resumes on the destination).
      - A shut-off guest always moves offline.
    type: bool
    default: true
  persistent:
    description:
      - Define the guest on the destination (its persistent definition, with changes still
        waiting for a restart). V(false) leaves it transient there.
      - An offline migration always defines it.
    type: bool
    default: true
  undefine_source:
    description:
      - Remove the guest's definition from the source once it runs on the destination. Its disks
        stay (see O(remove_source_storage)).
      - V(false) keeps a shut-off definition on the source, which must then not be started while
        the guest runs elsewhere (see the placement guard in C(docs/several-hosts.md)).
    type: bool
    default: true
  copy_storage:
    description:
      - V(none) - the disks are on shared storage, or already copied to the same paths.
      - V(all) - copy every writable disk, with its whole backing chain flattened into one image.
      - V(incremental) - copy only the top image of each disk; its backing image (a base image)
        must already be on the destination at the same path.
      - libvirt refuses to copy the storage of a shut-off guest (an offline migration), so then
        only V(none) is accepted.
    type: str
    choices: [none, all, incremental]
    default: none
  replace_storage:
    description:
      - With O(copy_storage), a volume already at a copied disk's path on the destination (a copy
        left by an earlier migration) is overwritten by the copy. Without it the module refuses and
        names the volume.
    type: bool
    default: false
  remove_source_storage:
    description:
      - After a successful migration with O(copy_storage), delete the source's copy of the copied
        disks (storage pool volumes only). Needs O(undefine_source=true).
    type: bool
    default: false
  unsafe:
    description:
      - Migrate even when libvirt cannot tell that the disks are safe to share, for example the
        same path on both hosts without a cluster filesystem and with a disk cache mode other than
        C(none). Only for storage that really is shared or copied.
    type: bool
    default: false
  bandwidth:
    description: The most bandwidth the migration may use, in MiB/s (default - no limit).
    type: int
  auto_converge:
    description: Slow the guest's vCPUs down when it dirties memory faster than it can be copied.
    type: bool
    default: false
  compressed:
    description: Compress memory pages that are sent again (XBZRLE).
    type: bool
    default: false
  timeout:
    description:
      - Seconds after which O(timeout_action) is taken if the migration has not finished.
      - Default - no limit.
    type: int
  timeout_action:
    description:
      - V(abort) - cancel the migration; the guest keeps running on the source and the module fails.
      - V(suspend) - pause the guest so that the migration finishes; it runs again on the
        destination (RV(timeout_action_taken=suspend), and RV(downtime_ms) shows the pause).
    type: str
    choices: [abort, suspend]
    default: abort
  peer2peer:
    description: Let the source host's libvirtd connect to O(dest_uri) and drive the migration.
    type: bool
    default: false
  migrate_uri:
    description:
      - Where the guest's memory is sent, for example V(tcp://10.0.0.2) for a dedicated migration
        network. Default - the destination's C(migration_host) in C(qemu.conf), else its hostname.
    type: str
  reserve_memory:
    description:
      - Refuse the migration when the destination's free memory (free, buffers and page cache, as
        libvirt reports them; RV(destination.memory)) minus this reserve is less than the guest's
        memory. A size such as V(2GiB) (KiB, MiB, GiB are powers of 1024, KB, MB, GB powers of
        1000; a bare number is bytes). Default - no check.
    type: str
notes:
  - The module opens a second libvirt connection, to the destination.
  - An offline migration (a shut-off guest) moves only the definition, because libvirt refuses to
    copy the storage of a guest that does not run.
  - Files that are not disks (a direct-boot kernel and initrd, UEFI firmware) are never copied. On
    a local O(dest_uri) their presence is checked; on a remote one only disks in storage pools can
    be checked through libvirt (others give a warning).
seealso:
  - module: hypervisor.kvm.kvm_domain
  - name: Several hosts (migrate and drain playbooks, the placement guard)
    description: docs/several-hosts.md in the collection.
    link: https://libvirt.org/migration.html
'''

EXAMPLES = r'''
- name: Guest web1 runs on host-b (live, its disks on shared storage)
  hypervisor.kvm.kvm_migration:
    name: web1
    dest_uri: qemu+ssh://root@host-b/system

- name: Move db1 with its disks, within 10 minutes or not at all
  hypervisor.kvm.kvm_migration:
    name: db1
    dest_uri: qemu+ssh://root@host-b/system
    copy_storage: all
    remove_source_storage: true
    bandwidth: 500
    timeout: 600
    timeout_action: abort
  register: moved

- name: Say how long the guest stood still
  ansible.builtin.debug:
    msg: "{{ moved.elapsed_ms }} ms in all, {{ moved.downtime_ms }} ms of downtime"

- name: Peer to peer, the guest paused after 2 minutes so that it finishes
  hypervisor.kvm.kvm_migration:
    uri: qemu+ssh://root@host-a/system
    name: batch1
    dest_uri: qemu+tls://host-b/system
    peer2peer: true
    auto_converge: true
    timeout: 120
    timeout_action: suspend

- name: A shut-off guest moves by its definition
  hypervisor.kvm.kvm_migration:
    name: template1
    dest_uri: qemu+ssh://root@host-b/system
'''

RETURN = r'''
actions:
  description:
    - What was done (or would be in check mode), in order - V(remove-partial-copy),
      V(create-destination-volumes), V(migrate) or V(migrate-offline), V(remove-source-storage).
      Empty when the guest is already on the destination.
  returned: always
  type: list
  elements: str
  sample: [create-destination-volumes, migrate]
domain:
  description: The guest on the destination after the run (predicted in check mode).
  returned: always
  type: dict
  contains:
    name:
      description: Guest name.
      type: str
    uuid:
      description: Guest UUID (the same on both hosts).
      type: str
    state:
      description: Its power state on the destination (running, paused, shutoff), or absent.
      type: str
    persistent:
      description: Whether it is defined on the destination.
      type: bool
    uri:
      description: The destination URI.
      type: str
    memory:
      description: The most memory the guest can use (its maximum memory), in bytes.
      type: int
      sample: 268435456
source:
  description: The guest on the source host, before and after.
  returned: always
  type: dict
  contains:
    uri:
      description: The source URI.
      type: str
      sample: qemu:///system
    before:
      description: Its state there before, C(running (persistent)), C(shutoff (transient)), C(absent)...
      type: str
      sample: running (persistent)
    after:
      description: Its state there after the run (predicted in check mode).
      type: str
      sample: absent
destination:
  description: The guest on the destination host, before and after, and the host's memory.
  returned: always
  type: dict
  contains:
    uri:
      description: The destination URI.
      type: str
      sample: qemu+ssh://root@host-b/system
    before:
      description: Its state there before.
      type: str
      sample: absent
    after:
      description: Its state there after the run (predicted in check mode).
      type: str
      sample: running (persistent)
    memory:
      description:
        - The destination's memory in bytes, C(total) and C(free) (free, buffers and page cache;
          null where libvirt cannot say), and the C(reserve) of O(reserve_memory) (0 without it).
      type: dict
      sample: {total: 25275494400, free: 21217865728, reserve: 1073741824}
mode:
  description: V(live), V(non-live) or V(offline); null when nothing was to be done.
  returned: always
  type: str
flags:
  description: The libvirt migration flags used (C(live), C(persist-dest), C(non-shared-disk)...).
  returned: always
  type: list
  elements: str
  sample: [live, persist-dest, undefine-source, non-shared-disk]
elapsed_ms:
  description: Wall time of the migration call, in milliseconds (null when none ran).
  returned: always
  type: int
  sample: 2638
downtime_ms:
  description:
    - How long the guest was stopped at the switch-over, in milliseconds, as libvirt reports it
      for a completed live migration; null where it does not (offline migrations).
  returned: always
  type: int
  sample: 81
transferred_bytes:
  description: Bytes of guest memory (and disk data libvirt counts) sent, as libvirt reports them.
  returned: always
  type: int
  sample: 84387895
timeout_action_taken:
  description: V(abort) or V(suspend) when O(timeout) expired, else null.
  returned: always
  type: str
created_volumes:
  description: Paths of the volumes created on the destination for the storage copy (predicted in check mode).
  returned: always
  type: list
  elements: str
removed_partial_copies:
  description:
    - Paths of destination volumes deleted before the copy because an interrupted run of this
      migration had created them (the running source guest's metadata names them) and no guest on
      the destination uses them. A volume that was not recorded that way is never deleted; it
      stops the migration unless O(replace_storage=true).
  returned: when there were any
  type: list
  elements: str
  version_added: 1.0.0
removed_source_volumes:
  description: Paths of the source volumes deleted with O(remove_source_storage).
  returned: always
  type: list
  elements: str
problems:
  description:
    - Everything the destination lacks, one item each, when the module refused (RV(destination)
      and RV(domain) then carry the memory figures only).
  returned: failure
  type: list
  elements: str
source_state:
  description: The guest's power state on the source after a failed migration.
  returned: failure
  type: str
diff:
  description: Where the guest is, on each host, before and after.
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
from ansible_collections.hypervisor.kvm.plugins.module_utils._migration import converge, migration_options
from ansible_collections.hypervisor.kvm.plugins.module_utils._options import KvmModule
from ansible_collections.hypervisor.kvm.plugins.module_utils._runner import run


def main():
    module = KvmModule(
        argument_spec=dict(**connection_argument_spec(), **migration_options()),
        supports_check_mode=True,
    )
    params = module.params
    run(module, lambda conn: converge(conn, params, module.check_mode, module._diff),
        f"migrating guest '{params['name']}' to {params['dest_uri']}")


if __name__ == '__main__':
    main()
