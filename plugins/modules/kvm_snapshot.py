#!/usr/bin/python
# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: kvm_snapshot
short_description: Take, revert to and delete snapshots of libvirt guests declaratively
version_added: 0.1.0
description:
  - Manages one snapshot of one guest (domain) by name. O(state=present) takes it when the guest
    has no snapshot of that name, O(state=current) reverts the guest to it, O(state=absent)
    deletes it.
  - Idempotent by name. An existing snapshot is never taken again. Only the options you give
    are compared with it; a changed O(description) is updated in place (the snapshot stays
    the current one if it was), and any other difference is an error that names the options.
  - B(Internal) snapshots (the default) live inside the guest's qcow2 disks. A running or paused
    guest's snapshot includes its memory, so reverting to it resumes the guest where it was,
    without a boot. A shut off guest's snapshot holds its disks.
  - B(External) snapshots (O(external=true)) are disk-only. Each included disk gets a new
    qcow2 overlay file that the guest writes to from then on, the disk's file underneath stays as
    it was. The only kind a raw disk can have, and the only disk-only kind for a running guest.
  - "Refused before anything changes, because libvirt 9.0 cannot do them: reverting to an
    external snapshot; internal snapshots of raw disks, of guests booting UEFI firmware from
    pflash, or of a running guest without its memory; leaving a writable disk out of an internal
    snapshot; internal and external snapshots on one guest (a chain mixing both can be neither
    reverted nor deleted)."
  - Deleting a snapshot never deletes the guest's current data. Deleting an internal snapshot
    drops the state it saved; deleting an external one merges its overlay into the disk under it
    (libvirt's block commit) and removes the overlay file.
author:
  - hypervisor.kvm maintainers (@hypervisor-kvm)
extends_documentation_fragment:
  - hypervisor.kvm.connection
  - hypervisor.kvm.requirements
  - hypervisor.kvm.attributes
options:
  domain:
    description:
      - The guest. A guest that does not exist is an error with every O(state).
    type: str
    required: true
  name:
    description:
      - The snapshot's name. External snapshots name their overlay files after it, so it cannot
        contain C(/).
    type: str
    required: true
  state:
    description:
      - V(present) - the snapshot exists; a new one is taken of the guest as it is now, and
        becomes libvirt's current snapshot.
      - V(absent) - the snapshot does not exist. A snapshot with children is deleted only with
        O(children=true), which deletes them too.
      - V(current) - the guest is reverted to the snapshot, its definition with it. Nothing
        happens when it is libvirt's current snapshot already (changes made since then are not
        detected) unless O(force=true). The guest's power state after the revert is the one it
        had in the snapshot (running, paused or shut off) unless O(running) or O(paused) says
        otherwise. Reverting a running guest works (QEMU is restarted on the snapshot's state).
    type: str
    choices: [present, absent, current]
    default: present
  description:
    description:
      - A text for people, stored with the snapshot. With O(state=present) only.
      - Changed in place on an existing snapshot; V('') removes it.
    type: str
  memory:
    description:
      - Save the guest's memory (and device state) with an internal snapshot, so that a revert
        resumes the running guest instead of booting it. With O(state=present) only.
      - Default V(true) when the guest is running or paused (libvirt cannot take an internal
        disk-only snapshot of a running guest, so V(false) is then an error), V(false) when it
        is shut off (V(true) is then an error, there is no memory to save).
      - External snapshots are disk-only here; V(true) with O(external=true) is an error.
    type: bool
  external:
    description:
      - Take a disk-only external snapshot - a qcow2 overlay file per included disk - instead of
        an internal one. With O(state=present) only.
      - Overlays are put next to each disk's file, named after it with its suffix replaced by the
        snapshot name (C(web1.qcow2) becomes C(web1.before-upgrade)), unless O(disks[].path)
        names them.
      - A guest has either internal or external snapshots, never both.
    type: bool
  disks:
    description:
      - Which disks the snapshot includes, by target. With O(state=present) only.
      - Writable disks not listed are included; read-only disks and cdroms never are.
      - An internal snapshot includes every writable disk (libvirt cannot leave one out), so
        O(disks[].include=false) needs O(external=true).
    type: list
    elements: dict
    suboptions:
      target:
        description: The disk's target device as the guest's definition names it (V(vda), V(sdb)...).
        type: str
        required: true
      include:
        description: Whether the snapshot includes this disk.
        type: bool
        default: true
      path:
        description:
          - The overlay file of this disk for an external snapshot (an absolute path on the
            libvirt host that does not exist yet). Needed for block devices.
        type: path
  quiesce:
    description:
      - Freeze the guest's file systems while an external snapshot is taken, through the QEMU
        guest agent (the guest needs the agent channel and a running C(qemu-guest-agent)).
        Needs O(external=true) and a running guest. With O(state=present) only.
      - libvirt does not record it in the snapshot, so it is not compared with an existing one.
    type: bool
  children:
    description:
      - With O(state=absent), also delete the snapshot's children and their descendants (each
        one by itself, leaf first). Without it, deleting a snapshot that has children fails and
        names them.
    type: bool
  force:
    description:
      - With O(state=current), revert even when the snapshot is libvirt's current one already,
        and allow the reverts libvirt calls risky (C(VIR_DOMAIN_SNAPSHOT_REVERT_FORCE), for
        example when the guest's definition changed in a way its running state cannot follow).
      - A revert with O(force=true) always reports a change.
    type: bool
  running:
    description:
      - With O(state=current), the guest runs after the revert, whatever its state in the snapshot.
      - V(false) (like leaving it out) lets the snapshot decide. Excludes O(paused).
    type: bool
  paused:
    description:
      - With O(state=current), the guest is paused after the revert, whatever its state in the
        snapshot. V(false) (like leaving it out) lets the snapshot decide. Excludes O(running).
    type: bool
notes:
  - A guest with snapshots can be removed with M(hypervisor.kvm.kvm_domain)
    (O(hypervisor.kvm.kvm_domain#module:state=absent)), which drops their metadata.
seealso:
  - module: hypervisor.kvm.kvm_domain
  - name: libvirt snapshot XML format
    description: What libvirt stores for a snapshot.
    link: https://libvirt.org/formatsnapshot.html
'''

EXAMPLES = r'''
- name: Snapshot web1 before its upgrade (running, so its memory is saved too)
  hypervisor.kvm.kvm_snapshot:
    domain: web1
    name: before-upgrade
    description: nginx 1.22, before the upgrade to 1.24

- name: Change its description (in place, nothing is taken again)
  hypervisor.kvm.kvm_snapshot:
    domain: web1
    name: before-upgrade
    description: nginx 1.22 and PHP 8.2, before the upgrade

- name: Another one after the upgrade (its parent is before-upgrade)
  hypervisor.kvm.kvm_snapshot:
    domain: web1
    name: after-upgrade

- name: Roll web1 back to before the upgrade, and leave it paused to look at it
  hypervisor.kvm.kvm_snapshot:
    domain: web1
    name: before-upgrade
    state: current
    paused: true

- name: Roll back again, although before-upgrade is the current snapshot already
  hypervisor.kvm.kvm_snapshot:
    domain: web1
    name: before-upgrade
    state: current
    force: true
    running: true

- name: Delete before-upgrade and the snapshots taken after it
  hypervisor.kvm.kvm_snapshot:
    domain: web1
    name: before-upgrade
    state: absent
    children: true

- name: A disk-only external snapshot of db1's data disk, its file systems frozen by the guest agent
  hypervisor.kvm.kvm_snapshot:
    domain: db1
    name: nightly
    external: true
    quiesce: true
    disks:
      - target: vda
        include: false
      - target: vdb
        path: /var/lib/libvirt/images/db1-data.nightly.qcow2

- name: Delete it (its overlay is merged into the data disk, the guest keeps its data)
  hypervisor.kvm.kvm_snapshot:
    domain: db1
    name: nightly
    state: absent
'''

RETURN = r'''
snapshot:
  description:
    - The snapshot after the run (predicted in check mode). After O(state=absent) only
      RV(snapshot.name) and RV(snapshot.state=absent).
  returned: always
  type: dict
  contains:
    name:
      description: The snapshot's name.
      type: str
      sample: before-upgrade
    parent:
      description: The name of the snapshot it was taken after (null for a first snapshot).
      type: str
      sample: base
    created:
      description: When it was taken, in seconds since the epoch (null in check mode before it exists).
      type: int
      sample: 1795995106
    state:
      description:
        - The guest's state it holds - V(running), V(paused) or V(shutoff) - as libvirt
          records it; V(disk-snapshot) for an external snapshot of a running guest (its disks
          only). V(absent) after O(state=absent).
      type: str
      sample: running
    current:
      description: Whether it is libvirt's current snapshot of the guest (the parent of the next one).
      type: bool
    kind:
      description: V(internal) (inside the qcow2 disks) or V(external) (overlay files).
      type: str
      sample: internal
    description:
      description: Its description, or null.
      type: str
    memory:
      description: Whether it holds the guest's memory state (a revert resumes the guest).
      type: bool
    disks:
      description: Each disk of the guest and how the snapshot holds it.
      type: list
      elements: dict
      contains:
        target:
          description: The disk's target (V(vda)).
          type: str
        snapshot:
          description: V(internal), V(external) or V(no) (not in the snapshot).
          type: str
        path:
          description: The overlay file of an external snapshot, else null.
          type: str
domain_state:
  description: The guest's power state after the run (predicted in check mode).
  returned: always
  type: str
  sample: running
actions:
  description:
    - What was done (or would be in check mode), in order - V(create), V(update-description),
      V(revert), V(delete-child) (one per child, leaf first), V(delete).
  returned: always
  type: list
  elements: str
  sample: [create]
deleted:
  description: The snapshots deleted (or to be deleted in check mode), in order.
  returned: when O(state=absent)
  type: list
  elements: str
  sample: [after-upgrade, before-upgrade]
diff:
  description:
    - The snapshot's facts before and after; with O(state=current)
      also the guest's power state and current snapshot.
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
from ansible_collections.hypervisor.kvm.plugins.module_utils._runner import run
from ansible_collections.hypervisor.kvm.plugins.module_utils._snapshot import converge, snapshot_options


def main():
    module = KvmModule(
        argument_spec=dict(**connection_argument_spec(), **snapshot_options()),
        mutually_exclusive=[('running', 'paused')],
        supports_check_mode=True,
    )
    params = module.params
    run(module, lambda conn: converge(conn, params, module.check_mode, module._diff),
        f"managing snapshot '{params['name']}' of domain '{params['domain']}'")


if __name__ == '__main__':
    main()
