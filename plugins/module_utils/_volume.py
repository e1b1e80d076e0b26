# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Storage volumes: empty disks, copy-on-write overlays, clones, uploads (local files and
URLs, cached and checksummed), cloud-init seed images, safe resizes, and facts."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import struct
import tempfile
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError
from ansible_collections.hypervisor.kvm.plugins.module_utils._files import (
    describe,
    permission_changes,
    permissions_element,
    set_permissions,
)
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import is_local_uri, libvirt
from ansible_collections.hypervisor.kvm.plugins.module_utils._resource import Plan, Resource, Snapshot
from ansible_collections.hypervisor.kvm.plugins.module_utils._units import format_size, libvirt_size, parse_size

try:
    import yaml
except ImportError:  # cloud-init reads JSON too (it is YAML)
    yaml = None

QCOW2_MAGIC = b'QFI\xfb'
CHUNK = 4 * 1024 * 1024
CONTENT_OPTIONS = ('backing_volume', 'clone_from', 'upload_from', 'cloud_init', 'xml')
SEED_FILES = (('user-data', 'USERDATA.'), ('meta-data', 'METADATA.'), ('network-config', 'NETWORKC.'))


# ---- images on the managed host ---------------------------------------------------------------
def image_facts(path: str) -> dict:
    """Format and virtual size of a local image file (qcow2 detected by its header, else raw)."""
    try:
        with open(path, 'rb') as image:
            header = image.read(32)
    except OSError as err:
        raise KvmError(f'upload_from: cannot read {path}: {err.strerror}') from None
    if header[:4] == QCOW2_MAGIC:
        backing_offset, = struct.unpack('>Q', header[8:16])
        if backing_offset:
            raise KvmError(f'upload_from: {path} is a qcow2 overlay with a backing file; upload a standalone image')
        size, = struct.unpack('>Q', header[24:32])
        return {'format': 'qcow2', 'capacity': size, 'length': os.path.getsize(path)}
    size = os.path.getsize(path)
    return {'format': 'raw', 'capacity': size, 'length': size}


def parse_checksum(checksum: str | None):
    """``sha256:<hex>`` -> (algorithm, hex); None when not given."""
    if not checksum:
        return None
    algorithm, _sep, digest = checksum.partition(':')
    algorithm = algorithm.lower()
    if not digest or algorithm not in hashlib.algorithms_guaranteed or not re.fullmatch('[0-9a-fA-F]+', digest):
        raise KvmError(f"checksum: {checksum!r} is not 'algorithm:hexdigest' (e.g. 'sha256:9f86d0...'); "
                       f"algorithms: {', '.join(sorted(a for a in hashlib.algorithms_guaranteed if 'shake' not in a))}")
    return algorithm, digest.lower()


def file_digest(path: str, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(CHUNK), b''):
            digest.update(block)
    return digest.hexdigest()


def is_url(source: str) -> bool:
    return urlsplit(source).scheme in ('http', 'https', 'ftp', 'file')


def default_cache_dir() -> str:
    if os.geteuid() == 0:
        return '/var/cache/hypervisor.kvm/images'
    return os.path.join(os.path.expanduser('~'), '.cache', 'hypervisor.kvm', 'images')


def cache_path(url: str, checksum, cache_dir: str) -> str:
    """Where a download is kept: named after its checksum (or its URL), so it is fetched once."""
    name = os.path.basename(urlsplit(url).path) or 'image'
    key = checksum[1][:16] if checksum else hashlib.sha256(url.encode()).hexdigest()[:16]
    return os.path.join(cache_dir, f'{key}-{name}')


def download(url: str, destination: str, checksum, timeout: int = 60) -> None:
    """Fetch ``url`` into ``destination`` (atomically), verifying ``checksum`` on the way."""
    from ansible.module_utils.urls import open_url  # pylint: disable=import-outside-toplevel

    os.makedirs(os.path.dirname(destination), exist_ok=True)
    digest = hashlib.new(checksum[0]) if checksum else None
    fd, partial = tempfile.mkstemp(dir=os.path.dirname(destination), prefix='.download-')
    try:
        with os.fdopen(fd, 'wb') as out:
            try:
                response = open_url(url, timeout=timeout)
            except Exception as err:  # urllib raises many kinds; all mean "could not fetch"
                raise KvmError(f'upload_from: downloading {url} failed: {err}') from None
            for block in iter(lambda: response.read(CHUNK), b''):
                out.write(block)
                if digest:
                    digest.update(block)
        if digest and digest.hexdigest() != checksum[1]:
            raise KvmError(f'upload_from: the checksum of {url} does not match: expected '
                           f'{checksum[0]}:{checksum[1]}, got {checksum[0]}:{digest.hexdigest()}')
        os.replace(partial, destination)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


# ---- cloud-init seed images --------------------------------------------------------------------
def _render(value, header: str = '') -> bytes:
    if isinstance(value, str):
        return value.encode()
    if yaml is not None:
        text = yaml.safe_dump(value, default_flow_style=False, sort_keys=False, width=4096)
    else:
        text = json.dumps(value, indent=2) + '\n'
    return (header + text).encode()


def seed_files(cloud_init: dict, volume_name: str) -> dict:
    """The NoCloud files: user-data (a dict becomes #cloud-config), meta-data, network-config."""
    meta = cloud_init.get('meta_data') or {}
    if isinstance(meta, dict):
        meta = {'instance-id': re.sub(r'\.(iso|img|raw)$', '', volume_name), **meta}
    files = {
        'user-data': _render(cloud_init.get('user_data') or {}, '#cloud-config\n'),
        'meta-data': _render(meta),
    }
    if cloud_init.get('network_config') is not None:
        files['network-config'] = _render(cloud_init['network_config'])
    return files


def seed_digest(files: dict) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b'\0' + files[name] + b'\0')
    return 'sha256:' + digest.hexdigest()


def _pycdlib():
    try:
        import pycdlib  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise KvmError('cloud_init needs the Python library pycdlib on the managed host '
                       '(pip install pycdlib, or the python3-pycdlib package)') from None
    return pycdlib


def build_seed_iso(files: dict) -> bytes:
    """A NoCloud seed ISO (volume label ``cidata``, Joliet and Rock Ridge names), in memory."""
    pycdlib = _pycdlib()
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge='1.09', vol_ident='cidata')
    for name, iso_name in SEED_FILES:
        if name in files:
            iso.add_fp(io.BytesIO(files[name]), len(files[name]), f'/{iso_name};1', rr_name=name,
                       joliet_path=f'/{name}')
    out = io.BytesIO()
    iso.write_fp(out)
    iso.close()
    return out.getvalue()


def read_seed_iso(data: bytes) -> dict | None:
    """The files of a seed ISO, or None when ``data`` is not one."""
    pycdlib = _pycdlib()
    iso = pycdlib.PyCdlib()
    try:
        iso.open_fp(io.BytesIO(data))
    except Exception:  # pycdlib raises its own exception types for anything unreadable
        return None
    files = {}
    try:
        for name, _iso_name in SEED_FILES:
            out = io.BytesIO()
            try:
                iso.get_file_from_iso_fp(out, rr_path=f'/{name}')
            except Exception:  # not in this seed
                continue
            files[name] = out.getvalue()
    finally:
        iso.close()
    return files


# ---- volume facts --------------------------------------------------------------------------------
def volume_info(handle, pool_name: str) -> dict:
    """Everything kvm_volume (and kvm_pool_info with volumes) returns about one volume."""
    definition = _xml.parse_xml(handle.XMLDesc(0), 'libvirt volume XML')
    backing = definition.find('backingStore')
    return {
        'name': handle.name(),
        'pool': pool_name,
        'path': handle.path(),
        'key': handle.key(),
        'type': definition.get('type'),
        'format': definition.find('target/format').get('type') if definition.find('target/format') is not None
        else None,
        'capacity': libvirt_size(definition.find('capacity')),
        'allocation': libvirt_size(definition.find('allocation')),
        'backing_store': None if backing is None or not backing.findtext('path') else {
            'path': backing.findtext('path'),
            'format': backing.find('format').get('type') if backing.find('format') is not None else None,
        },
        'xml': _xml.to_text(definition),
    }


# ---- the resource ----------------------------------------------------------------------------------
class Volume(Resource):
    kind = 'volume'
    result_key = 'volume'
    volatile = ('allocation', 'physical', 'target/timestamps', 'backingStore/timestamps',
                'backingStore/permissions', 'backingStore/backingStore')

    def __init__(self, conn, params: dict, check_mode: bool = False):
        super().__init__(conn, params, check_mode)
        self.pool_name = params['pool']
        self.pool = None
        self.files = None  # cloud-init seed files, when asked

    def label(self) -> str:
        return f"volume '{self.name}' in storage pool '{self.pool_name}'"

    # ---- reading --------------------------------------------------------------------------
    def lookup(self):
        try:
            self.pool = self.conn.storagePoolLookupByName(self.pool_name)
        except libvirt.libvirtError as err:
            if err.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_POOL:
                raise
            if self.params['state'] == 'absent':
                return None  # no pool, no volume
            raise KvmError(f"pool: storage pool '{self.pool_name}' does not exist") from None
        if not self.pool.isActive():
            raise KvmError(f"pool: storage pool '{self.pool_name}' is inactive, so its volumes cannot be "
                           "read or changed; start it first (kvm_pool state: active)")
        return self.find(self.name)

    def find(self, name: str, pool=None):
        """A volume of an active pool by name; a refresh picks up files made outside libvirt."""
        pool = pool or self.pool
        for attempt in range(2):
            try:
                return pool.storageVolLookupByName(name)
            except libvirt.libvirtError as err:
                if err.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
                    raise
                if attempt == 0:
                    pool.refresh(0)
        return None

    def read(self, handle) -> Snapshot:
        definition = _xml.parse_xml(handle.XMLDesc(0), 'libvirt volume XML')
        # volumes have no active/autostart state: the diff shows their definition only
        return Snapshot(exists=True, handle=handle, xml=self.clean(definition), persistent=True, facts={})

    def info(self, snapshot: Snapshot) -> dict:
        return volume_info(snapshot.handle, self.pool_name)

    def definition_facts(self, definition) -> dict:
        fmt = definition.find('target/format')
        return {
            'pool': self.pool_name,
            'format': fmt.get('type') if fmt is not None else None,
            'capacity': libvirt_size(definition.find('capacity')),
        }

    def result_info(self, before: Snapshot, plan: Plan, final: Snapshot | None) -> dict:
        absent = {'name': self.name, 'pool': self.pool_name, 'state': 'absent'}
        if final is not None:
            return self.info(final) if final.exists else absent
        if not plan.after.exists:
            return absent
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
    def plan(self, before: Snapshot) -> Plan:
        self.check_options()
        if self.params['state'] == 'absent':
            return self.plan_absent(before)
        plan = Plan()
        plan.after.exists, plan.after.persistent, plan.after.facts = True, True, {}
        if before.exists and self.params.get('recreate'):
            reason = self.recreate_reason(before)
            if reason:
                self.previous_capacity = volume_info(before.handle, self.pool_name)['capacity']
                self.plan_delete(before, plan, 'delete', f'deleting {self.label()} to recreate it ({reason})')
                plan.extra['recreated'] = reason
                before = Snapshot()
        if not before.exists:
            self.plan_create(plan)
        else:
            self.plan_update(before, plan)
        if self.files is not None:
            plan.after.facts = {'content': seed_digest(self.files)}
        self.plan_actions = plan.actions
        return plan

    def recreate_reason(self, before: Snapshot) -> str | None:
        """Why ``recreate: true`` replaces the existing volume, or None when its content already
        comes from what is asked (so a second run destroys nothing)."""
        params = self.params
        current = volume_info(before.handle, self.pool_name)
        wanted_format = params.get('format')
        if not wanted_format and params.get('xml') and self.xml_definition().find('target/format') is not None:
            wanted_format = self.xml_definition().find('target/format').get('type')
        if wanted_format and current['format'] and wanted_format != current['format'] and self.files is None:
            return f"format {current['format']} -> {wanted_format}"
        if params.get('backing_volume'):
            facts = self.source_volume('backing_volume', 'backing_pool')[1]
            have = (current['backing_store'] or {}).get('path')
            return None if have == facts['path'] else f"backing store {have} -> {facts['path']}"
        if params.get('clone_from'):
            facts = self.source_volume('clone_from', 'clone_pool')[1]
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

    def xml_definition(self):
        return _xml.parse_xml(self.params['xml'], 'xml')

    def check_options(self) -> None:
        given = [option for option in CONTENT_OPTIONS if self.params.get(option)]
        if len(given) > 1:
            raise KvmError(f"{' and '.join(given)}: give one source of content, not several")
        if self.params.get('backing_volume') and self.params.get('format') not in (None, 'qcow2'):
            raise KvmError(f"format: a copy-on-write overlay is a qcow2 volume, not {self.params['format']}")
        if self.params.get('cloud_init'):
            self.files = seed_files(self.params['cloud_init'], self.name)
        if self.files is not None and self.params.get('format') not in (None, 'raw'):
            raise KvmError(f"format: a cloud-init seed is a raw ISO image, not {self.params['format']}")

    def plan_absent(self, before: Snapshot) -> Plan:
        plan = Plan()
        plan.after.facts = {}
        if before.exists:
            if self.params.get('wipe'):
                plan.add('wipe', f'wiping {self.label()}', lambda: before.handle.wipe(0))
            self.plan_delete(before, plan, 'delete', f'deleting {self.label()}')
        return plan

    def plan_delete(self, before: Snapshot, plan: Plan, name: str, describe_text: str) -> None:
        plan.add(name, describe_text, lambda: before.handle.delete(0))

    # -- a new volume
    def plan_create(self, plan: Plan) -> None:
        params = self.params
        if params.get('xml'):
            definition = _xml.parse_xml(params['xml'], 'xml')
            if definition.tag != 'volume':
                raise KvmError(f'xml: expected a <volume> document, got <{definition.tag}>')
            self.add_create(plan, definition)
        elif params.get('backing_volume'):
            self.plan_overlay(plan)
        elif params.get('clone_from'):
            self.plan_clone(plan)
        elif params.get('upload_from'):
            self.plan_upload(plan)
        elif self.files is not None:
            self.plan_seed(plan)
        else:
            capacity = self.capacity() or getattr(self, 'previous_capacity', None)
            if not capacity:
                raise KvmError(f'capacity: required to create {self.label()} (or give a source of content)')
            self.add_create(plan, self.volume_xml(capacity, params.get('format') or self.default_format()))

    def capacity(self):
        if self.params.get('capacity') is None:
            return None
        return parse_size(self.params['capacity'], 'capacity')

    def default_format(self) -> str | None:
        """qcow2 in file-based pools (sparse, snapshots); block pools decide for themselves."""
        pool_type = _xml.parse_xml(self.pool.XMLDesc(0), 'libvirt pool XML').get('type')
        return 'qcow2' if pool_type in ('dir', 'fs', 'netfs') else None

    def volume_xml(self, capacity: int, fmt: str | None, backing=None) -> ET.Element:
        volume = ET.Element('volume')
        _xml.sub_element(volume, 'name', self.name)
        _xml.sub_element(volume, 'capacity', capacity, unit='bytes')
        if self.params.get('allocation') is not None:
            _xml.sub_element(volume, 'allocation', parse_size(self.params['allocation'], 'allocation'), unit='bytes')
        target = _xml.sub_element(volume, 'target')
        if fmt:
            _xml.sub_element(target, 'format', type=fmt)
        if fmt == 'qcow2':
            _xml.sub_element(target, 'compat', '1.1')  # qcow2 v3, not libvirt's default v2 (0.10)
        permissions_element(target, self.params, None)
        if backing is not None:
            store = _xml.sub_element(volume, 'backingStore')
            _xml.sub_element(store, 'path', backing['path'])
            if backing.get('format'):
                _xml.sub_element(store, 'format', type=backing['format'])
        return volume

    def add_create(self, plan: Plan, definition, name: str = 'create', source=None, describe_text=None) -> None:
        """Create the volume from ``definition`` (cloning ``source()`` when given)."""
        text = _xml.to_text(definition, pretty=False)
        plan.after.xml = self.clean(definition)

        def run():
            if source is None:
                return self.pool.createXML(text, 0)
            return self.pool.createXMLFrom(text, source(), 0)

        plan.add(name, describe_text or f'creating {self.label()}', run)

    def source_volume(self, option: str, pool_option: str):
        pool_name = self.params.get(pool_option) or self.pool_name
        with_pool = self.pool
        if pool_name != self.pool_name:
            try:
                with_pool = self.conn.storagePoolLookupByName(pool_name)
            except libvirt.libvirtError as err:
                if err.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_POOL:
                    raise
                raise KvmError(f"{pool_option}: storage pool '{pool_name}' does not exist") from None
            if not with_pool.isActive():
                raise KvmError(f"{pool_option}: storage pool '{pool_name}' is inactive")
        volume = self.find(self.params[option], with_pool)
        if volume is None:
            raise KvmError(f"{option}: no volume '{self.params[option]}' in storage pool '{pool_name}'")
        return volume, volume_info(volume, pool_name)

    def plan_overlay(self, plan: Plan) -> None:
        base, facts = self.source_volume('backing_volume', 'backing_pool')
        capacity = self.capacity() or facts['capacity']
        if capacity < facts['capacity']:
            raise KvmError(f"capacity: {format_size(capacity)} is smaller than the backing volume "
                           f"'{facts['name']}' ({format_size(facts['capacity'])})")
        definition = self.volume_xml(capacity, 'qcow2', {'path': facts['path'], 'format': facts['format']})
        self.add_create(plan, definition, describe_text=f"creating {self.label()} over {facts['path']}")

    def plan_clone(self, plan: Plan) -> None:
        source, facts = self.source_volume('clone_from', 'clone_pool')
        capacity = self.capacity() or facts['capacity']
        if capacity < facts['capacity']:
            raise KvmError(f"capacity: {format_size(capacity)} is smaller than '{facts['name']}' "
                           f"({format_size(facts['capacity'])}); a clone cannot shrink")
        definition = self.volume_xml(facts['capacity'], self.params.get('format') or facts['format'])
        self.add_create(plan, definition, 'clone', lambda: source,
                        f"cloning {facts['path']} into {self.label()}")
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
            if not os.path.isfile(source):
                raise KvmError(f'upload_from: {source} is not a file on the managed host')
            actual = file_digest(source, checksum[0]) if checksum else None
            if checksum and actual != checksum[1]:
                raise KvmError(f'upload_from: the checksum of {source} does not match: expected '
                               f'{checksum[0]}:{checksum[1]}, got {checksum[0]}:{actual}')
            facts, path = image_facts(source), source
        wanted = self.params.get('format') or facts['format']
        converting = wanted != facts['format']
        size = max(self.capacity() or 0, facts['capacity'] or 0)
        plan.after.xml = self.clean(self.volume_xml(size, wanted))
        if not size:  # a URL not downloaded yet: the size is not known before the download
            plan.after.xml.remove(plan.after.xml.find('capacity'))
        plan.add('upload', f'uploading {path} into {self.label()}', lambda: self.upload_image(path, wanted))
        if converting:
            plan.add('convert', f"converting {self.label()} from {facts['format']} to {wanted}",
                     lambda: self.finish_conversion(wanted))
        if facts['capacity'] and (self.capacity() or 0) > facts['capacity']:
            plan.add('resize', f"resizing {self.label()} from {format_size(facts['capacity'])} to "
                     f"{format_size(self.capacity())}", lambda: self.find(self.name).resize(self.capacity(), 0))

    def upload_image(self, path: str, wanted: str) -> None:
        """Create the volume from a local image. When the image's format is not the wanted one,
        it goes into a temporary volume first, which :meth:`finish_conversion` converts (libvirt's
        clone converts formats) right after, in the same run."""
        facts = image_facts(path)
        if facts['format'] == wanted:
            volume = self.pool.createXML(_xml.to_text(self.volume_xml(facts['capacity'], wanted), pretty=False), 0)
            self.stream_into(volume, path, facts['length'])
            self.grow_to_capacity(volume, facts['capacity'])
            return
        temporary_xml = ET.Element('volume')
        _xml.sub_element(temporary_xml, 'name', f'.{self.name}.upload')
        _xml.sub_element(temporary_xml, 'capacity', facts['capacity'], unit='bytes')
        _xml.sub_element(_xml.sub_element(temporary_xml, 'target'), 'format', type=facts['format'])
        self.temporary = self.pool.createXML(_xml.to_text(temporary_xml, pretty=False), 0)
        try:
            self.stream_into(self.temporary, path, facts['length'])
        except BaseException:
            self.temporary.delete(0)
            raise
        self.temporary_capacity = facts['capacity']
        if not any(action.name == 'convert' for action in self.plan_actions):
            self.finish_conversion(wanted)  # the format was a guess before the download

    def finish_conversion(self, wanted: str) -> None:
        temporary = getattr(self, 'temporary', None)
        if temporary is None:
            return  # the downloaded image had the wanted format after all
        try:
            volume = self.pool.createXMLFrom(
                _xml.to_text(self.volume_xml(self.temporary_capacity, wanted), pretty=False), temporary, 0)
        finally:
            temporary.delete(0)
            self.temporary = None
        self.grow_to_capacity(volume, self.temporary_capacity)

    def grow_to_capacity(self, volume, size: int) -> None:
        """Grow an upload to ``capacity`` when the plan could not know it needed to (a download)."""
        if any(action.name == 'resize' for action in self.plan_actions):
            return
        if (self.capacity() or 0) > size:
            volume.resize(self.capacity(), 0)

    def stream_into(self, volume, path: str, length: int) -> None:
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
        image = build_seed_iso(self.files)
        definition = self.volume_xml(len(image), 'raw')
        plan.after.xml = self.as_libvirt_reports_seeds(self.clean(definition))
        plan.add('create', f'creating {self.label()}',
                 lambda: self.pool.createXML(_xml.to_text(definition, pretty=False), 0))
        plan.add('upload', f'writing the cloud-init seed into {self.label()}',
                 lambda: self.write_bytes(self.find(self.name), image))

    def as_libvirt_reports_seeds(self, definition):
        """libvirt probes a file volume holding an ISO 9660 image as format 'iso'."""
        fmt = definition.find('target/format')
        if fmt is not None and self.default_format() == 'qcow2':  # a file-based pool
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
    def plan_update(self, before: Snapshot, plan: Plan) -> None:
        params = self.params
        current = volume_info(before.handle, self.pool_name)
        plan.after.xml = before.xml
        fmt = params.get('format')
        capacity = self.capacity()
        if params.get('xml'):
            definition = self.xml_definition()
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
        if fmt and current['format'] and fmt != current['format'] and self.files is None:
            raise KvmError(f"format: {self.label()} is {current['format']}, not {fmt}; formats are not converted "
                           "in place (recreate: true replaces the volume with a new one, destroying its content)")
        if params.get('backing_volume'):
            _base, facts = self.source_volume('backing_volume', 'backing_pool')
            have = (current['backing_store'] or {}).get('path')
            if have != facts['path']:
                plan.warnings.append(f"{self.label()} exists with backing store {have}, not {facts['path']}; "
                                     "it is kept (set recreate: true to replace it, which destroys its content)")
        if self.files is not None:
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
                 lambda: (handle or self.find(self.name)).resize(new, flags))
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
        permissions_element(wanted, self.params, None)
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

    def plan_seed_update(self, before: Snapshot, plan: Plan, current: dict) -> None:
        existing = read_seed_iso(self.read_bytes(before.handle, current['capacity'])) or {}
        before.facts = {'content': seed_digest(existing)}
        if existing == self.files:
            return
        image = build_seed_iso(self.files)
        definition = self.volume_xml(len(image), 'raw')
        after = _xml.normalise(before.xml)  # the same file, with the new size
        after.find('capacity').text = str(len(image))
        plan.after.xml = after
        plan.add('delete', f'deleting the old cloud-init seed {self.label()}', lambda: before.handle.delete(0))
        plan.add('create', f'creating {self.label()}',
                 lambda: self.pool.createXML(_xml.to_text(definition, pretty=False), 0))
        plan.add('upload', f'writing the new cloud-init seed into {self.label()}',
                 lambda: self.write_bytes(self.find(self.name), image))
        plan.extra['seed_changed'] = True
