# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Storage volumes: empty disks, copy-on-write overlays, clones, uploads (local files and
URLs, cached and checksummed), cloud-init seed images and safe resizes.

A volume has no definition to rewrite and no running state: the engine's content hook
(:meth:`Volume.plan_definition`) creates it from one source of content, or changes what can be
changed in place (size, permissions, a seed's files).
"""

from __future__ import annotations

import io
import os
import re
import xml.etree.ElementTree as ET

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError
from ansible_collections.hypervisor.kvm.plugins.module_utils._files import (
    describe,
    permission_changes,
    permissions_element,
    set_permissions,
)
from ansible_collections.hypervisor.kvm.plugins.module_utils._images import (
    cache_path,
    default_cache_dir,
    download,
    file_digest,
    image_facts,
    is_url,
    parse_checksum,
)
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import (
    is_local_uri,
    is_remote_uri,
    libvirt,
    lookup,
)
from ansible_collections.hypervisor.kvm.plugins.module_utils._resource import Observed, Plan, Resource
from ansible_collections.hypervisor.kvm.plugins.module_utils._seed import (
    build_seed_iso,
    read_seed_iso,
    seed_digest,
    seed_files,
)
from ansible_collections.hypervisor.kvm.plugins.module_utils._units import (
    disk_size,
    format_size,
    libvirt_size,
    parse_size,
)
from ansible_collections.hypervisor.kvm.plugins.module_utils._volume_facts import (
    find_volume,
    volume_definition,
    volume_info,
    volumes_backed_by,
)
from ansible_collections.hypervisor.kvm.plugins.module_utils._volume_options import CONTENT_OPTIONS


# ---- the resource ----------------------------------------------------------------------------------
class Volume(Resource):
    kind = 'volume'
    result_key = 'volume'
    root_tag = 'volume'
    volatile = ('allocation', 'physical', 'target/timestamps', 'backingStore/timestamps',
                'backingStore/permissions', 'backingStore/backingStore')

    lifecycle = False

    def __init__(self, conn, params: dict, check_mode: bool = False, shared: dict | None = None, diff: bool = False):
        super().__init__(conn, params, check_mode, shared, diff)
        self.pool_name = params['pool']

    def label(self) -> str:
        return f"volume '{self.name}' in storage pool '{self.pool_name}'"

    # ---- reading --------------------------------------------------------------------------
    def observe(self) -> Observed:
        """The volume, with its pool as ``parent`` (also when the volume does not exist yet)."""
        pool = lookup(self.conn.storagePoolLookupByName, self.pool_name, 'pool')
        if pool is None:
            if self.params['state'] == 'absent' or self.pending_pool() is not None:
                return Observed()  # no pool, no volume (or a pool check mode only predicts)
            raise KvmError(f"pool: storage pool '{self.pool_name}' does not exist") from None
        if not pool.isActive():
            raise KvmError(f"pool: storage pool '{self.pool_name}' is inactive, so its volumes cannot be "
                           "read or changed; start it first (kvm_pool state: active)")
        handle = find_volume(pool, self.name)
        if handle is None or (self.check_mode and handle.path() in self.shared.get('removed_paths', ())):
            return Observed(parent=pool)  # none, or one an earlier step of this check-mode run deletes
        observed = self.read(handle)
        observed.parent = pool
        return observed

    def pending_pool(self) -> dict | None:
        """The pool as check mode predicts it, when an earlier step of this run would create it."""
        return self.shared.get('pools', {}).get(self.pool_name)

    def remember_pending(self, plan: Plan) -> None:
        if not plan.names() or self.params['state'] == 'absent':
            return
        pool = plan.before.parent
        directory = (_xml.parse_xml(pool.XMLDesc(0), 'libvirt pool XML').findtext('target/path') if pool is not None
                     else (self.pending_pool() or {}).get('path'))
        facts = self.definition_facts(plan.after.xml)
        self.shared.setdefault('volumes', {})[(self.pool_name, self.name)] = {
            'name': self.name, 'pool': self.pool_name, 'format': facts['format'], 'capacity': facts['capacity'],
            'path': f'{directory}/{self.name}' if directory else None}

    def find(self, plan: Plan, name: str):
        """A volume of this pool by name (None when there is none)."""
        return find_volume(plan.before.parent, name)

    def read(self, handle) -> Observed:
        definition = _xml.parse_xml(handle.XMLDesc(0), 'libvirt volume XML')
        # volumes have no active/autostart state: the diff shows their definition only
        return Observed(exists=True, handle=handle, xml=self.clean(definition), persistent=True, facts={})

    def info(self, observed: Observed, plan: Plan | None = None) -> dict:
        return volume_info(observed.handle, self.pool_name)

    def brief_info(self, observed: Observed, plan: Plan) -> dict:
        return {'name': self.name, 'pool': self.pool_name, 'state': 'present'}

    def definition_facts(self, definition) -> dict:
        fmt = definition.find('target/format')
        return {
            'pool': self.pool_name,
            'format': fmt.get('type') if fmt is not None else None,
            'capacity': libvirt_size(definition.find('capacity')),
        }

    def result_info(self, plan: Plan, final: Observed | None) -> dict:
        absent = {'name': self.name, 'pool': self.pool_name, 'state': 'absent'}
        if final is not None:
            return self.info(final) if final.exists else absent
        if not plan.after.exists:
            return absent
        before = plan.before
        predicted = self.info(before) if before.exists else {
            'name': self.name, 'pool': self.pool_name, 'path': None, 'key': None, 'type': None,
            'allocation': None, 'backing_store': None}
        predicted.update(self.definition_facts(plan.after.xml))
        backing = plan.after.xml.find('backingStore')
        if backing is not None:
            predicted['backing_store'] = {'path': backing.findtext('path'),
                                          'format': backing.find('format').get('type')
                                          if backing.find('format') is not None else None}
        predicted['xml'] = _xml.to_text(plan.after.xml)
        return predicted

    # ---- planning ---------------------------------------------------------------------------
    def plan_definition(self, before: Observed, plan: Plan) -> None:
        """The content hook: create the volume from its source, recreate it when asked and its
        content differs, or change in place what can change (size, permissions, seed files)."""
        plan.after.exists, plan.after.persistent, plan.after.facts = True, True, {}
        if before.exists and self.params.get('recreate'):
            reason = self.recreate_reason(before, plan)
            if reason:
                plan.context['previous_capacity'] = volume_info(before.handle, self.pool_name)['capacity']
                plan.add('delete', f'deleting {self.label()} to recreate it ({reason})', before.handle.delete)
                plan.extra['recreated'] = reason
                before = Observed(parent=before.parent)
        if self.params.get('upload_from'):
            self.plan_leftover_upload(plan)
        if not before.exists:
            self.plan_create(plan)
        else:
            self.plan_update(before, plan)
        if plan.context.get('files') is not None:
            plan.after.facts = {'content': seed_digest(plan.context['files'])}

    def recreate_reason(self, before: Observed, plan: Plan) -> str | None:
        """Why ``recreate: true`` replaces the existing volume, or None when its content already
        comes from what is asked (so a second run destroys nothing)."""
        params = self.params
        current = volume_info(before.handle, self.pool_name)
        wanted_format = params.get('format')
        if not wanted_format and params.get('xml') and self.xml_document().find('target/format') is not None:
            wanted_format = self.xml_document().find('target/format').get('type')
        if wanted_format and current['format'] and wanted_format != current['format'] \
                and plan.context.get('files') is None:
            return f"format {current['format']} -> {wanted_format}"
        if params.get('backing_volume'):
            facts = self.source_volume(plan, 'backing_volume', 'backing_pool')[1]
            have = (current['backing_store'] or {}).get('path')
            return None if have == facts['path'] else f"backing store {have} -> {facts['path']}"
        if params.get('clone_from'):
            facts = self.source_volume(plan, 'clone_from', 'clone_pool')[1]
            same = facts['capacity'] <= current['capacity'] and (wanted_format or facts['format']) == current['format']
            return None if same else f"not a copy of {facts['path']}"
        if params.get('upload_from'):
            checksum = parse_checksum(params.get('checksum'))
            local = current['type'] == 'file' and is_local_uri(self.conn.getURI()) and os.path.isfile(current['path'])
            if checksum and local and file_digest(current['path'], checksum[0]) == checksum[1]:
                return None
            if not checksum:
                return None  # nothing tells the content apart: keep it (documented)
            return f"content differs from {params['checksum']}" if local else 'content cannot be compared remotely'
        return None

    def check_options(self, plan: Plan) -> None:
        given = [option for option in CONTENT_OPTIONS if self.params.get(option)]
        if len(given) > 1:
            raise KvmError(f"{' and '.join(given)}: give one source of content, not several")
        if self.params.get('backing_volume') and self.params.get('format') not in (None, 'qcow2'):
            raise KvmError(f"format: a copy-on-write overlay is a qcow2 volume, not {self.params['format']}")
        if self.params.get('cloud_init'):
            plan.context['files'] = seed_files(self.params['cloud_init'], self.name)
            if self.params.get('format') not in (None, 'raw'):
                raise KvmError(f"format: a cloud-init seed is a raw ISO image, not {self.params['format']}")

    def plan_absent(self, before: Observed, plan: Plan) -> None:
        plan.after.facts = {}
        if before.exists:
            path = before.handle.path()
            used_by = [name for name in volumes_backed_by(self.conn, [path]).get(path, [])
                       if name != f'{self.pool_name}/{self.name}']
            if used_by:
                plan.extra['used_by'] = used_by
                if self.params.get('if_in_use') == 'keep':
                    plan.after = plan.before
                    plan.warnings.append(f"kept {self.label()}: it is the backing file of {', '.join(used_by)}")
                    return
                raise KvmError(f"{self.label()} is the backing file of {', '.join(used_by)}: deleting it would break "
                               "them, so nothing was deleted. Delete those volumes first (or if_in_use: keep to "
                               "leave it without failing)", used_by=used_by)
            if self.params.get('wipe'):
                plan.add('wipe', f'wiping {self.label()}', lambda: before.handle.wipe(0))
            plan.add('delete', f'deleting {self.label()}', lambda: before.handle.delete(0))

    # -- a new volume
    def plan_create(self, plan: Plan) -> None:
        params = self.params
        if params.get('xml'):
            self.add_create(plan, self.xml_document())
        elif params.get('backing_volume'):
            self.plan_overlay(plan)
        elif params.get('clone_from'):
            self.plan_clone(plan)
        elif params.get('upload_from'):
            self.plan_upload(plan)
        elif plan.context.get('files') is not None:
            self.plan_seed(plan)
        else:
            capacity = self.capacity() or plan.context.get('previous_capacity')
            if not capacity:
                raise KvmError(f'capacity: required to create {self.label()} (or give a source of content)')
            self.add_create(plan, self.volume_xml(capacity, params.get('format') or self.default_format(plan)))

    def capacity(self):
        if self.params.get('capacity') is None:
            return None
        return disk_size(self.params['capacity'], 'capacity')

    def default_format(self, plan: Plan) -> str | None:
        """qcow2 in file-based pools (sparse, snapshots); block pools decide for themselves."""
        pool = plan.before.parent
        pool_type = (_xml.parse_xml(pool.XMLDesc(0), 'libvirt pool XML').get('type') if pool is not None
                     else (self.pending_pool() or {}).get('type'))
        return 'qcow2' if pool_type in ('dir', 'fs', 'netfs') else None

    def volume_xml(self, capacity: int, fmt: str | None, backing=None) -> ET.Element:
        allocation = self.params.get('allocation')
        volume = volume_definition(self.name, capacity, fmt, backing,
                                   allocation=None if allocation is None else parse_size(allocation, 'allocation'),
                                   compat='1.1' if fmt == 'qcow2' else None)  # qcow2 v3, not libvirt's v2 (0.10)
        permissions_element(volume.find('target'), self.params, None, remote=is_remote_uri(self.conn.getURI()))
        return volume

    def add_create(self, plan: Plan, definition, name: str = 'create', source=None, describe_text=None) -> None:
        """Create the volume from ``definition`` (cloning ``source`` when given)."""
        text = _xml.to_text(definition, pretty=False)
        plan.after.xml = self.clean(definition)
        pool = plan.before.parent

        def run():
            if source is None:
                return pool.createXML(text, 0)
            return pool.createXMLFrom(text, source, 0)

        plan.add(name, describe_text or f'creating {self.label()}', run)

    def source_volume(self, plan: Plan, option: str, pool_option: str):
        """The volume an option names (in its own pool option, else this pool) and its facts;
        in check mode the facts predicted for a volume an earlier step would create."""
        pool_name = self.params.get(pool_option) or self.pool_name
        pending = self.shared.get('volumes', {}).get((pool_name, self.params[option]))
        with_pool = plan.before.parent
        if pending is not None and (with_pool is None or find_volume(with_pool, self.params[option]) is None):
            return None, pending
        if pool_name != self.pool_name:
            with_pool = lookup(self.conn.storagePoolLookupByName, pool_name, 'pool')
            if with_pool is None:
                raise KvmError(f"{pool_option}: storage pool '{pool_name}' does not exist")
            if not with_pool.isActive():
                raise KvmError(f"{pool_option}: storage pool '{pool_name}' is inactive")
        volume = find_volume(with_pool, self.params[option])
        if volume is None:
            raise KvmError(f"{option}: no volume '{self.params[option]}' in storage pool '{pool_name}'")
        return volume, volume_info(volume, pool_name)

    def plan_overlay(self, plan: Plan) -> None:
        _base, facts = self.source_volume(plan, 'backing_volume', 'backing_pool')
        capacity = self.capacity() or facts['capacity']
        if capacity is None:  # check mode, a base image not downloaded yet: its size is unknown
            capacity = 0
        elif facts['capacity'] is not None and capacity < facts['capacity']:
            raise KvmError(f"capacity: {format_size(capacity)} is smaller than the backing volume "
                           f"'{facts['name']}' ({format_size(facts['capacity'])})")
        definition = self.volume_xml(capacity, 'qcow2', {'path': facts['path'], 'format': facts['format']})
        self.add_create(plan, definition, describe_text=f"creating {self.label()} over {facts['path']}")

    def plan_clone(self, plan: Plan) -> None:
        source, facts = self.source_volume(plan, 'clone_from', 'clone_pool')
        capacity = self.capacity() or facts['capacity']
        if capacity < facts['capacity']:
            raise KvmError(f"capacity: {format_size(capacity)} is smaller than '{facts['name']}' "
                           f"({format_size(facts['capacity'])}); a clone cannot shrink")
        definition = self.volume_xml(facts['capacity'], self.params.get('format') or facts['format'])
        self.add_create(plan, definition, 'clone', source, f"cloning {facts['path']} into {self.label()}")
        if capacity > facts['capacity']:
            self.plan_resize(plan, facts['capacity'], capacity)

    def plan_upload(self, plan: Plan) -> None:
        source = self.params['upload_from']
        checksum = parse_checksum(self.params.get('checksum'))
        if is_url(source):
            cached = cache_path(source, checksum, self.params.get('cache_dir') or default_cache_dir())
            if not os.path.exists(cached) or (checksum and file_digest(cached, checksum[0]) != checksum[1]):
                plan.add('download', f'downloading {source} to {cached}',
                         lambda: download(source, cached, checksum))
                plan.extra['downloaded'] = cached
                # The format is only known once downloaded: guess from the name for the plan.
                guess = 'qcow2' if re.search(r'\.qcow2?$', source) else 'raw'
                facts = {'format': guess, 'capacity': None, 'length': None}
            else:
                facts = image_facts(cached)
            path = cached
        else:
            if not os.path.isabs(source):
                raise KvmError(f'upload_from: {source!r} is neither an absolute path on the managed host nor a URL '
                               '(http, https, ftp or file)')
            if not os.path.isfile(source):
                raise KvmError(f'upload_from: {source} is not a file on the managed host')
            actual = file_digest(source, checksum[0]) if checksum else None
            if checksum and actual != checksum[1]:
                raise KvmError(f'upload_from: the checksum of {source} does not match: expected '
                               f'{checksum[0]}:{checksum[1]}, got {checksum[0]}:{actual}')
            facts, path = image_facts(source), source
        wanted = self.params.get('format') or facts['format']
        size = max(self.capacity() or 0, facts['capacity'] or 0)
        plan.after.xml = self.clean(self.volume_xml(size, wanted))
        if not size:  # a URL not downloaded yet: the size is not known before the download
            plan.after.xml.remove(plan.after.xml.find('capacity'))
        plan.add('upload', f'uploading {path} into {self.label()}', lambda: self.upload_image(plan, path, wanted))
        if wanted != facts['format']:
            plan.context['convert_planned'] = True
            plan.add('convert', f"converting {self.label()} from {facts['format']} to {wanted}",
                     lambda: self.finish_conversion(plan, wanted), reverts=('upload',))
        if facts['capacity'] and (self.capacity() or 0) > facts['capacity']:
            plan.context['resize_planned'] = True
            plan.add('resize', f"resizing {self.label()} from {format_size(facts['capacity'])} to "
                     f"{format_size(self.capacity())}", lambda: self.find(plan, self.name).resize(self.capacity(), 0))

    def temporary_name(self) -> str:
        return f'.{self.name}.upload'

    def plan_leftover_upload(self, plan: Plan) -> None:
        """A killed run's partial upload (its temporary volume, by name) is removed first."""
        pool = plan.before.parent
        leftover = find_volume(pool, self.temporary_name()) if pool is not None else None
        if leftover is not None:
            plan.add('remove-partial-upload',
                     f"deleting '{self.temporary_name()}', the partial upload an interrupted run left in storage pool "
                     f"'{self.pool_name}'", lambda: leftover.delete(0))
            plan.extra['removed_partial_upload'] = leftover.path()

    def upload_image(self, plan: Plan, path: str, wanted: str) -> None:
        """Create the volume from a local image, through a temporary volume: the image is
        streamed into '.<name>.upload', then :meth:`finish_conversion` clones that into the
        volume (converting formats when the wanted one differs: libvirt's clone converts) and
        deletes it. libvirt cannot rename a volume, so this is how a run killed while streaming
        never leaves a volume of the final name that a later run would take as complete: it
        leaves the temporary one, which the next run removes (:meth:`plan_leftover_upload`)."""
        facts = image_facts(path)
        pool = plan.before.parent
        temporary_xml = ET.Element('volume')
        _xml.sub_element(temporary_xml, 'name', self.temporary_name())
        _xml.sub_element(temporary_xml, 'capacity', facts['capacity'], unit='bytes')
        _xml.sub_element(_xml.sub_element(temporary_xml, 'target'), 'format', type=facts['format'])
        temporary = pool.createXML(_xml.to_text(temporary_xml, pretty=False), 0)
        try:
            self.stream_into(temporary, path, facts['length'])
        except BaseException:
            self.remove_temporary(plan, temporary, failed=True)
            raise
        plan.context['temporary'] = (temporary, facts['capacity'])
        if not plan.context.get('convert_planned'):
            self.finish_conversion(plan, wanted)  # the same format, or one guessed before the download

    def finish_conversion(self, plan: Plan, wanted: str) -> None:
        """The temporary upload cloned into the volume (in the wanted format), then deleted."""
        temporary, capacity = plan.context.pop('temporary', (None, None))
        if temporary is None:
            return  # done by the upload step already
        try:
            volume = plan.before.parent.createXMLFrom(
                _xml.to_text(self.volume_xml(capacity, wanted), pretty=False), temporary, 0)
        except BaseException:
            # in the convert step (which undoes the upload step) or in the upload step itself
            self.remove_temporary(plan, temporary, failed=True,
                                  undone='not_reverted' if plan.context.get('convert_planned') else 'partial')
            raise
        self.remove_temporary(plan, temporary, failed=False)
        self.grow_to_capacity(plan, volume, capacity)

    def remove_temporary(self, plan: Plan, temporary, failed: bool, undone: str = 'partial') -> None:
        """Delete the temporary upload. When that fails, it stays for the next run to remove: after
        a failed step, what it should have undone counts as done (``undone``: the step itself,
        ``partial``, or the upload step a failed convert step undoes, ``not_reverted``); after a
        successful one it is a warning."""
        try:
            temporary.delete(0)
        except Exception:  # pylint: disable=broad-exception-caught  # the step's own outcome matters more
            if failed:
                plan.context[undone] = True
            else:
                plan.warnings.append(f"the temporary upload '{self.temporary_name()}' could not be deleted from "
                                     f"storage pool '{self.pool_name}'; the next run of this task removes it")

    def grow_to_capacity(self, plan: Plan, volume, size: int) -> None:
        """Grow an upload to ``capacity`` when the plan could not know it needed to (a download)."""
        if plan.context.get('resize_planned'):
            return
        if (self.capacity() or 0) > size:
            volume.resize(self.capacity(), 0)

    def stream_into(self, volume, path: str, length: int) -> None:
        """Upload a local file through a libvirt stream (works over remote URIs)."""
        stream = self.conn.newStream(0)
        volume.upload(stream, 0, length, 0)
        try:
            with open(path, 'rb') as image:
                stream.sendAll(lambda _stream, nbytes, handle: handle.read(nbytes), image)
            stream.finish()
        except BaseException:
            stream.abort()
            raise

    def plan_seed(self, plan: Plan) -> None:
        image = build_seed_iso(plan.context['files'])
        definition = self.volume_xml(len(image), 'raw')
        plan.after.xml = self.as_libvirt_reports_seeds(plan, self.clean(definition))
        pool = plan.before.parent
        plan.add('create', f'creating {self.label()}', lambda: self.create_seed_volume(plan, pool, definition))
        plan.add('upload', f'writing the cloud-init seed into {self.label()}',
                 lambda: self.write_seed(plan, image), reverts=('create',))

    @staticmethod
    def create_seed_volume(plan: Plan, pool, definition) -> None:
        plan.context['seed_volume'] = pool.createXML(_xml.to_text(definition, pretty=False), 0)

    def write_seed(self, plan: Plan, image: bytes) -> None:
        """Write a seed into the volume the plan just created; a volume left half written is
        deleted (a later run would take it for a seed). When that deletion fails too (the
        connection is gone), the plan says the volume was not undone: ``create`` stays among the
        actions done, and the next run finds a seed whose content differs and makes it again."""
        try:
            volume = plan.context.get('seed_volume') or self.find(plan, self.name)
            self.write_bytes(volume, image)
        except BaseException:
            try:
                volume = plan.context.get('seed_volume') or self.find(plan, self.name)
                if volume is not None:
                    volume.delete(0)
            except Exception:  # pylint: disable=broad-exception-caught  # the write's failure is the one to report
                plan.context['not_reverted'] = True
            raise

    def as_libvirt_reports_seeds(self, plan: Plan, definition):
        """libvirt probes a file volume holding an ISO 9660 image as format 'iso'."""
        fmt = definition.find('target/format')
        if fmt is not None and self.default_format(plan) == 'qcow2':  # a file-based pool
            fmt.set('type', 'iso')
        return definition

    def write_bytes(self, volume, data: bytes) -> None:
        stream = self.conn.newStream(0)
        volume.upload(stream, 0, len(data), 0)
        buffer = io.BytesIO(data)
        stream.sendAll(lambda _stream, nbytes, handle: handle.read(nbytes), buffer)
        stream.finish()

    def read_bytes(self, volume, length: int) -> bytes:
        stream = self.conn.newStream(0)
        volume.download(stream, 0, length, 0)
        chunks = []
        stream.recvAll(lambda _stream, data, found: found.append(data), chunks)
        stream.finish()
        return b''.join(chunks)

    # -- an existing volume
    def plan_update(self, before: Observed, plan: Plan) -> None:
        params = self.params
        current = volume_info(before.handle, self.pool_name)
        plan.after.xml = before.xml
        fmt = params.get('format')
        capacity = self.capacity()
        files = plan.context.get('files')
        if params.get('xml'):
            definition = self.xml_document()
            fmt = fmt or (definition.find('target/format').get('type')
                          if definition.find('target/format') is not None else None)
            capacity = libvirt_size(definition.find('capacity'))
            ignored = ('capacity', 'allocation', 'target/format', 'target/permissions', 'name')
            rest = _xml.differences(_xml.remove_paths(self.clean(definition), ignored),
                                    _xml.remove_paths(_xml.normalise(before.xml), ignored))
            if rest:
                plan.warnings.append(f"{self.label()} exists; libvirt cannot redefine a volume, so these parts "
                                     f"of xml are not applied (recreate: true replaces it): {'; '.join(rest)}")
        # libvirt reports a seed's raw ISO as format 'iso': seeds are compared by content instead
        if fmt and current['format'] and fmt != current['format'] and files is None:
            raise KvmError(f"format: {self.label()} is {current['format']}, not {fmt}; formats are not converted "
                           "in place (recreate: true replaces the volume with a new one, destroying its content)")
        if params.get('backing_volume'):
            _base, facts = self.source_volume(plan, 'backing_volume', 'backing_pool')
            have = (current['backing_store'] or {}).get('path')
            if have != facts['path']:
                plan.warnings.append(f"{self.label()} exists with backing store {have}, not {facts['path']}; "
                                     "it is kept (set recreate: true to replace it, which destroys its content)")
        if files is not None:
            self.plan_seed_update(before, plan, current)
            return
        if capacity is not None and capacity != current['capacity']:
            if capacity < current['capacity'] and not params.get('allow_shrink'):
                raise KvmError(
                    f"capacity: {self.label()} is {format_size(current['capacity'])}; shrinking it to "
                    f"{format_size(capacity)} can destroy data, so it is refused unless allow_shrink: true")
            self.plan_resize(plan, current['capacity'], capacity, before.handle)
        self.plan_permissions(plan, current)

    def plan_resize(self, plan: Plan, old: int, new: int, handle=None) -> None:
        flags = libvirt.VIR_STORAGE_VOL_RESIZE_SHRINK if new < old else 0
        plan.add('resize', f'resizing {self.label()} from {format_size(old)} to {format_size(new)}',
                 lambda: (handle or self.find(plan, self.name)).resize(new, flags))
        after = plan.after.xml
        if after is not None:
            after = _xml.normalise(after)
            element = after.find('capacity')
            if element is not None:
                element.text, element.attrib = str(new), {'unit': 'bytes'}
            plan.after.xml = after

    def plan_permissions(self, plan: Plan, current: dict) -> None:
        """libvirt sets a volume's mode/owner/group only when it creates the file."""
        wanted = ET.Element('target')
        permissions_element(wanted, self.params, None, remote=is_remote_uri(self.conn.getURI()))
        wanted = wanted.find('permissions')
        if wanted is None or current['type'] != 'file' or not is_local_uri(self.conn.getURI()):
            return
        changes = permission_changes(current['path'], wanted)
        if changes:
            after = _xml.normalise(plan.after.xml)
            target = after.find('target')
            permissions = target.find('permissions') if target is not None else None
            if permissions is not None:
                for key, value in changes.items():
                    element = permissions.find(key)
                    if element is not None:
                        element.text = f'{value:04o}' if key == 'mode' else str(value)
                plan.after.xml = after
            plan.add('set-permissions', f"setting {describe(changes)} on {current['path']}",
                     lambda: set_permissions(current['path'], changes))

    def plan_seed_update(self, before: Observed, plan: Plan, current: dict) -> None:
        files = plan.context['files']
        existing = read_seed_iso(self.read_bytes(before.handle, current['capacity'])) or {}
        before.facts = {'content': seed_digest(existing)}
        if existing == files:
            return
        image = build_seed_iso(files)
        definition = self.volume_xml(len(image), 'raw')
        after = _xml.normalise(before.xml)  # the same file, with the new size
        after.find('capacity').text = str(len(image))
        plan.after.xml = after
        pool = before.parent
        plan.add('delete', f'deleting the old cloud-init seed {self.label()}', lambda: before.handle.delete(0))
        plan.add('create', f'creating {self.label()}', lambda: self.create_seed_volume(plan, pool, definition))
        plan.add('upload', f'writing the new cloud-init seed into {self.label()}',
                 lambda: self.write_seed(plan, image), reverts=('create',))
        plan.extra['seed_changed'] = True
