# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a pool run does only when something changes or is refused: deleting its storage (with
its volumes when forced), and the permissions of a remote directory (docs/architecture.md,
"Speed": a run with nothing to do never compiles this file). Each function takes the
:class:`_pool.StoragePool` it works for as ``pool``."""

from __future__ import annotations

import os

from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import refresh_pool
from ansible_collections.hypervisor.kvm.plugins.module_utils._resource import Observed, Plan


def plan_delete_storage(pool, before: Observed, plan: Plan) -> None:
    """``absent`` with ``delete_storage``: the storage goes, and the volumes in it only with
    ``force``."""
    force, handle = pool.params.get('force'), before.handle
    if not before.persistent:
        raise KvmError(f"{pool.label()} is transient: it disappears when stopped, so delete_storage cannot "
                       "delete its storage; delete its volumes with kvm_volume instead")
    directory = pool.local_directory(before.xml)
    storage_exists = directory is None or os.path.isdir(directory)
    if before.active:
        volumes = sorted(volume.path() for volume in handle.listAllVolumes(0))
    elif directory is not None:
        entries = os.listdir(directory) if storage_exists else []
        volumes = sorted(os.path.join(directory, entry) for entry in entries)
    elif force:
        volumes = None  # unknown until the pool runs: start it to delete them
        plan.add('start', f'starting {pool.label()} to delete its volumes', lambda: pool.start(handle))
    else:
        raise KvmError(
            f"{pool.label()} is inactive, so the volumes it holds cannot be listed and its storage is not "
            "deleted. Start it first (state: active), or set force: true to delete its storage and every "
            "volume in it.")
    if volumes and not force:
        shown = ', '.join(volumes[:10]) + (' ...' if len(volumes) > 10 else '')
        raise KvmError(
            f"{pool.label()} still holds {len(volumes)} volume(s) ({shown}); refusing to delete its "
            "storage. Remove them first, or set force: true to delete them with it.", volumes=volumes)
    deleted = plan.extra['deleted_volumes'] = []
    if volumes is None or volumes:
        if not before.active and volumes:
            plan.add('start', f'starting {pool.label()} to delete its volumes', lambda: pool.start(handle))
        plan.add('delete-volumes', f'deleting the volumes of {pool.label()}',
                 lambda: deleted.extend(delete_all_volumes(handle)))
        if pool.check_mode and volumes:
            deleted.extend(volumes)
    if before.active or volumes is None or volumes:
        plan.add('stop', f'stopping {pool.label()}', lambda: pool.stop(handle))
    if storage_exists:
        plan.add('delete', f"deleting the storage of {pool.label()}", lambda: handle.delete(0))
    plan.add('undefine', f'undefining {pool.label()}', lambda: pool.undefine(handle))


def check_remote_permissions(pool, wanted, plan: Plan, before: Observed) -> None:
    """On a remote URI a directory that exists cannot be changed from here: libvirt applies a
    target's permissions only when its build creates the directory. A running pool reports
    what its directory has; other permissions are refused, naming them. A new directory (built
    by this run) gets them from libvirt."""
    if not before.exists or any(action.name == 'build' for action in plan.actions):
        return
    if before.live_xml is None:
        plan.warnings.append(f'{pool.label()} is inactive on a remote host: the permissions of its directory '
                             'cannot be read from here; they are applied only when libvirt builds a new directory')
        return
    have = before.live_xml.find('target/permissions')
    differ = [f"{element.tag} {have.findtext(element.tag) if have is not None else None} (wanted {element.text})"
              for element in wanted if have is None or (have.findtext(element.tag) or '').strip() != element.text]
    if differ:
        raise KvmError(f"target: the directory of {pool.label()} on the remote host {pool.conn.getURI()} has "
                       f"{', '.join(differ)}; libvirt applies permissions only when it creates the directory, and "
                       'this module changes an existing one only on a local URI: change them on that host')


def delete_all_volumes(handle) -> list:
    """Delete every volume of an active pool; returns their paths."""
    refresh_pool(handle)
    paths = []
    for volume in handle.listAllVolumes(0):
        paths.append(volume.path())
        volume.delete(0)
    return paths
