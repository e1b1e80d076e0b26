# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Storage pools on the engine's skeleton: reading, the desired definition, the lifecycle and the
directory's permissions. The options -> XML builder is in ``_pool_builder`` (an ``xml`` run never
imports it), and deleting a pool's storage in ``_pool_changes`` (docs/architecture.md, "Speed")."""

from __future__ import annotations

import os

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.module_utils._files import (
    describe,
    permission_changes,
    sanitise_path,
    set_permissions,
)
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import is_local_uri, is_remote_uri, refresh_pool
from ansible_collections.hypervisor.kvm.plugins.module_utils._options import xml_patches_option
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
        xml_patches=xml_patches_option(),
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
        from ansible_collections.hypervisor.kvm.plugins.module_utils._pool_builder import (  # pylint: disable=import-outside-toplevel
            build,  # structured options only: an xml run never compiles it
        )
        return build(self, before)

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
            pool_changes().check_remote_permissions(self, wanted, plan, before)
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
        pool_changes().plan_delete_storage(self, before, plan)

    def remember_pending(self, plan: Plan) -> None:
        self.shared.setdefault('pools', {})[self.name] = {
            'type': plan.merged.get('type'), 'path': plan.merged.findtext('target/path')}

    # ---- facts ----------------------------------------------------------------------------
    def info(self, observed: Observed, plan: Plan | None = None) -> dict:
        return pool_info(observed.handle)

    def definition_facts(self, definition) -> dict:
        return definition_facts(definition)


def pool_changes():
    """``_pool_changes``, imported when a step that changes something is planned."""
    from ansible_collections.hypervisor.kvm.plugins.module_utils import (  # pylint: disable=import-outside-toplevel
        _pool_changes,
    )
    return _pool_changes
