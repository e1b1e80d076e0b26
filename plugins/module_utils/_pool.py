# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Storage pools: options -> XML, lifecycle, storage deletion, facts."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError
from ansible_collections.hypervisor.kvm.plugins.module_utils._files import (
    describe,
    permission_changes,
    permissions_element,
    sanitise_path,
    set_permissions,
)
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import is_local_uri, is_remote_uri, refresh_pool
from ansible_collections.hypervisor.kvm.plugins.module_utils._pool_facts import (
    definition_facts,
    inactive_xml,
    pool_info,
)
from ansible_collections.hypervisor.kvm.plugins.module_utils._resource import Action, Observed, Plan, Resource

POOL_TYPES = ('dir', 'fs', 'netfs', 'logical', 'disk', 'iscsi')


def pool_options() -> dict:
    """kvm_pool's options (but the connection's); kvm_guests' pool goes through them too."""
    return dict(
        name=dict(type='str'),
        state=dict(type='str', default='present', choices=['present', 'active', 'inactive', 'absent']),
        type=dict(type='str', choices=list(POOL_TYPES)),
        target=dict(type='dict', options=dict(
            path=dict(type='path'),
            owner=dict(type='str'),
            group=dict(type='str'),
            mode=dict(type='raw'),
        )),
        source=dict(type='dict', options=dict(
            device=dict(type='list', elements='str'),
            host=dict(type='str'),
            port=dict(type='int'),
            dir=dict(type='str'),
            name=dict(type='str'),
            format=dict(type='str'),
            initiator=dict(type='str'),
        )),
        xml=dict(type='str'),
        autostart=dict(type='bool'),
        restart=dict(type='bool', default=False),
        delete_storage=dict(type='bool', default=False),
        force=dict(type='bool', default=False),
    )


def pool_module_kwargs() -> dict:
    """What kvm_pool's AnsibleModule is made with, but the argument spec."""
    return dict(
        required_one_of=[('name', 'xml')],
        mutually_exclusive=[('xml', 'type'), ('xml', 'target'), ('xml', 'source')],
        supports_check_mode=True,
    )


# What each structured type needs in ``source`` (libvirt refuses to define or start without it).
REQUIRED_SOURCE = {
    'fs': ('device',),
    'netfs': ('host', 'dir'),
    'disk': ('device',),
    'iscsi': ('host', 'device'),
}
# Types whose target is a plain directory that libvirt's build creates (and nothing else).
DIRECTORY_TYPES = ('dir', 'fs', 'netfs')


class StoragePool(Resource):
    kind = 'storage pool'
    result_key = 'pool'
    root_tag = 'pool'
    lookup_call = 'storagePoolLookupByName'
    missing = 'pool'
    volatile = ('capacity', 'allocation', 'available')

    # ---- desired definition ---------------------------------------------------------------
    def desired_xml(self, before: Observed, plan: Plan):
        params = self.params
        if params.get('xml'):
            desired = self.xml_document()
            path = desired.find('target/path')
            if path is not None and path.text:
                path.text = sanitise_path(path.text)
            return desired
        pool_type = params.get('type')
        if pool_type is None:
            pool_type = before.xml.get('type') if before.exists else 'dir'
        desired = ET.Element('pool', {'type': pool_type})
        _xml.sub_element(desired, 'name', self.name)
        self.add_source(desired, pool_type, params.get('source') or {}, before)
        target = params.get('target') or {}
        if target.get('path') is None and not before.exists and pool_type in ('dir', 'fs', 'netfs'):
            raise KvmError(f"target.path is required to create a {pool_type} storage pool ('{self.name}')")
        if any(target.get(key) is not None for key in ('path', 'owner', 'group', 'mode')):
            target_el = _xml.sub_element(desired, 'target')
            if target.get('path') is not None:
                if not target['path'].startswith('/'):
                    raise KvmError(f"target.path: {target['path']!r} is not an absolute path")
                _xml.sub_element(target_el, 'path', sanitise_path(target['path']))
            permissions_element(target_el, target, 'target', remote=is_remote_uri(self.conn.getURI()))
        return desired

    def add_source(self, pool: ET.Element, pool_type: str, source: dict, before: Observed) -> None:
        given = {key for key, value in source.items() if value not in (None, [])}
        if not before.exists:
            missing = [key for key in REQUIRED_SOURCE.get(pool_type, ()) if key not in given]
            if missing:
                raise KvmError(
                    f"a {pool_type} storage pool needs source.{' and source.'.join(missing)} "
                    f"('{self.name}')")
        if pool_type == 'dir' and given:
            raise KvmError(f"source: a dir storage pool has no source, got {', '.join(sorted(given))}")
        if not given:
            return
        src = _xml.sub_element(pool, 'source')
        if source.get('host'):
            _xml.sub_element(src, 'host', name=source['host'], port=source.get('port'))
        for device in source.get('device') or ():
            _xml.sub_element(src, 'device', path=device)
        if source.get('dir'):
            _xml.sub_element(src, 'dir', path=source['dir'])
        if source.get('name'):
            _xml.sub_element(src, 'name', source['name'])
        if source.get('format'):
            _xml.sub_element(src, 'format', type=source['format'])
        if source.get('initiator'):
            _xml.sub_element(_xml.sub_element(src, 'initiator'), 'iqn', name=source['initiator'])

    # ---- libvirt calls --------------------------------------------------------------------
    def read(self, handle) -> Observed:
        active = bool(handle.isActive())
        live = _xml.parse_xml(handle.XMLDesc(0), 'libvirt pool XML')
        inactive = inactive_xml(handle, active, live)
        return Observed(
            exists=True, handle=handle, active=active, autostart=bool(handle.autostart()),
            persistent=bool(handle.isPersistent()), xml=self.clean(inactive),
            live_xml=self.clean(live) if active else None,
        )

    def define(self, xml_text: str):
        return self.conn.storagePoolDefineXML(xml_text, 0)

    def build(self, handle) -> None:
        """Create the target directory. Without flags libvirt formats nothing (with
        OVERWRITE/NO_OVERWRITE an fs pool's build would run mkfs on its device)."""
        handle.build(0)

    # ---- lifecycle hooks ------------------------------------------------------------------
    def local_directory(self, definition) -> str | None:
        """The target directory when this host can look at it: a dir, fs or netfs pool on a
        local URI. None otherwise (other types, or a remote hypervisor)."""
        if definition.get('type') not in DIRECTORY_TYPES or not is_local_uri(self.conn.getURI()):
            return None
        return definition.findtext('target/path') or None

    def needs_build(self, definition) -> bool:
        """Whether starting needs a build first: a directory target that does not exist yet.

        Other pool types are never built implicitly: building them writes to devices.
        On a remote URI the path cannot be checked here, so a directory pool is built
        (creating a missing directory overwrites nothing).
        """
        if definition.get('type') not in DIRECTORY_TYPES or not definition.findtext('target/path'):
            return False
        directory = self.local_directory(definition)
        return directory is None or not os.path.isdir(directory)

    def plan_start(self, before: Observed, plan: Plan) -> None:
        merged = plan.merged
        if self.needs_build(merged):
            plan.add('build', f"building {self.label()} (creating {merged.findtext('target/path')})",
                     lambda: self.build(plan.handle()))
        plan.add('start', f'starting {self.label()}', lambda: self.start(plan.handle()))

    def plan_state(self, before: Observed, plan: Plan) -> None:
        super().plan_state(before, plan)
        self.plan_permissions(plan, before)

    def plan_permissions(self, plan: Plan, before: Observed) -> None:
        """libvirt applies a target's mode, owner and group only when its build creates the
        directory, and reads them back from an existing one. So an existing local directory
        gets them here (as the file module would), and a running pool is refreshed to see them."""
        wanted = plan.desired.find('target/permissions')
        if wanted is not None and is_remote_uri(self.conn.getURI()):
            self.check_remote_permissions(wanted, plan, before)
            return
        directory = self.local_directory(plan.after.xml)
        if wanted is None or directory is None or not os.path.isdir(directory):
            return  # nothing asked, not reachable from here, or the build will create it
        changes = permission_changes(directory, wanted)
        if not changes:
            return

        def apply():
            set_permissions(directory, changes)
            if before.active:
                refresh_pool(before.handle)

        plan.insert_before(('start', 'restart'),
                           Action('set-permissions', f'setting {describe(changes)} on {directory}', apply))

    def check_remote_permissions(self, wanted, plan: Plan, before: Observed) -> None:
        """On a remote URI a directory that exists cannot be changed from here: libvirt applies a
        target's permissions only when its build creates the directory. A running pool reports
        what its directory has; other permissions are refused, naming them. A new directory (built
        by this run) gets them from libvirt."""
        if not before.exists or any(action.name == 'build' for action in plan.actions):
            return
        if before.live_xml is None:
            plan.warnings.append(f'{self.label()} is inactive on a remote host: the permissions of its directory '
                                 'cannot be read from here; they are applied only when libvirt builds a new directory')
            return
        have = before.live_xml.find('target/permissions')
        differ = [f"{element.tag} {have.findtext(element.tag) if have is not None else None} (wanted {element.text})"
                  for element in wanted if have is None or (have.findtext(element.tag) or '').strip() != element.text]
        if differ:
            raise KvmError(f"target: the directory of {self.label()} on the remote host {self.conn.getURI()} has "
                           f"{', '.join(differ)}; libvirt applies permissions only when it creates the directory, and "
                           'this module changes an existing one only on a local URI: change them on that host')

    def needs_restart(self, before: Observed, plan: Plan) -> bool:
        """Permissions never need a restart: they are applied to the directory directly."""
        if before.live_xml is None:
            return False
        without = ('target/permissions',)
        return bool(_xml.differences(_xml.remove_paths(_xml.normalise(plan.merged), without),
                                     _xml.remove_paths(_xml.normalise(before.live_xml), without)))

    def restart(self, handle, plan: Plan) -> None:
        self.stop(handle)
        if self.needs_build(plan.merged):
            self.build(handle)
        self.start(handle)

    def plan_absent(self, before: Observed, plan: Plan) -> None:
        """``absent`` keeps the pool's storage unless ``delete_storage`` asks, and never deletes
        volumes unless ``force`` asks too."""
        if not self.params.get('delete_storage') or not before.exists:
            super().plan_absent(before, plan)
            return
        force, handle = self.params.get('force'), before.handle
        if not before.persistent:
            raise KvmError(f"{self.label()} is transient: it disappears when stopped, so delete_storage cannot "
                           "delete its storage; delete its volumes with kvm_volume instead")
        directory = self.local_directory(before.xml)
        storage_exists = directory is None or os.path.isdir(directory)
        if before.active:
            volumes = sorted(volume.path() for volume in handle.listAllVolumes(0))
        elif directory is not None:
            entries = os.listdir(directory) if storage_exists else []
            volumes = sorted(os.path.join(directory, entry) for entry in entries)
        elif force:
            volumes = None  # unknown until the pool runs: start it to delete them
            plan.add('start', f'starting {self.label()} to delete its volumes', lambda: self.start(handle))
        else:
            raise KvmError(
                f"{self.label()} is inactive, so the volumes it holds cannot be listed and its storage is not "
                "deleted. Start it first (state: active), or set force: true to delete its storage and every "
                "volume in it.")
        if volumes and not force:
            shown = ', '.join(volumes[:10]) + (' ...' if len(volumes) > 10 else '')
            raise KvmError(
                f"{self.label()} still holds {len(volumes)} volume(s) ({shown}); refusing to delete its "
                "storage. Remove them first, or set force: true to delete them with it.", volumes=volumes)
        deleted = plan.extra['deleted_volumes'] = []
        if volumes is None or volumes:
            if not before.active and volumes:
                plan.add('start', f'starting {self.label()} to delete its volumes', lambda: self.start(handle))
            plan.add('delete-volumes', f'deleting the volumes of {self.label()}',
                     lambda: deleted.extend(delete_all_volumes(handle)))
            if self.check_mode and volumes:
                deleted.extend(volumes)
        if before.active or volumes is None or volumes:
            plan.add('stop', f'stopping {self.label()}', lambda: self.stop(handle))
        if storage_exists:
            plan.add('delete', f"deleting the storage of {self.label()}", lambda: handle.delete(0))
        plan.add('undefine', f'undefining {self.label()}', lambda: self.undefine(handle))

    def remember_pending(self, plan: Plan) -> None:
        self.shared.setdefault('pools', {})[self.name] = {
            'type': plan.merged.get('type'), 'path': plan.merged.findtext('target/path')}

    # ---- facts ----------------------------------------------------------------------------
    def info(self, observed: Observed, plan: Plan | None = None) -> dict:
        return pool_info(observed.handle)

    def definition_facts(self, definition) -> dict:
        return definition_facts(definition)


def delete_all_volumes(handle) -> list:
    """Delete every volume of an active pool; returns their paths."""
    refresh_pool(handle)
    paths = []
    for volume in handle.listAllVolumes(0):
        paths.append(volume.path())
        volume.delete(0)
    return paths
