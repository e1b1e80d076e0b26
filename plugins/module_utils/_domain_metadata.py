# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A domain's title, description and the collection's own metadata: the options, their XML, the
facts read back, and what a running guest is told live. No libvirt here: the live step hands its
calls to the adapter."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError

# The collection's own element under <metadata>: <kvm:meta><kvm:entry key="...">value</kvm:entry>
META_NS = 'https://hypervisor.kvm/meta'
META_PREFIX = 'kvm'
META = f'{{{META_NS}}}meta'
ENTRY = f'{{{META_NS}}}entry'
META_PATH = f'metadata/{META}'
ENTRY_PATH = f'{META_PATH}/{ENTRY}'
# libvirt keeps a title on one line
TITLE_LIMIT = 1000


def check_metadata(params: dict, where: str = '') -> None:
    """Refuse what libvirt would refuse or mangle, naming the option."""
    title = params.get('title')
    if title is not None and ('\n' in title or '\r' in title):
        raise KvmError(f'{where}title: one line only (libvirt refuses a title with a line break); '
                       'put longer text in description')
    if title is not None and len(title) > TITLE_LIMIT:
        raise KvmError(f'{where}title: {len(title)} characters; at most {TITLE_LIMIT}')
    for key, value in (params.get('metadata') or {}).items():
        if not isinstance(key, str) or not key:
            raise KvmError(f'{where}metadata: every key must be a non-empty string, got {key!r}')
        if not isinstance(value, (str, int, float, bool)):
            raise KvmError(f'{where}metadata.{key}: a string is expected (a dict of string keys and values), '
                           f'got {type(value).__name__}')


def entry_key(element) -> str:
    """Entries pair by their key."""
    return element.get('key')


def authoritative_paths(params: dict) -> dict:
    """The paths the options own when given: a title or description given empty is removed, and
    the collection's metadata holds exactly the keys given."""
    owned = {}
    for option in ('title', 'description'):
        if params.get(option) is not None:
            owned[option] = None
    if params.get('metadata') is not None:
        owned[META_PATH] = None
        owned[ENTRY_PATH] = entry_key
    return owned


def add_metadata(domain, params: dict, current) -> None:
    """<title>, <description> and the collection's <metadata> element, as the options ask.
    ``current`` is the definition today (None for a new domain)."""
    ET.register_namespace(META_PREFIX, META_NS)
    for option in ('title', 'description'):
        if params.get(option):
            ET.SubElement(domain, option).text = params[option]
    entries = params.get('metadata')
    if entries is None:
        return
    has_holder = current is not None and current.find('metadata') is not None
    if not entries and not has_holder:
        return  # nothing to remove, and an empty <metadata> is not something libvirt keeps
    holder = ET.SubElement(domain, 'metadata')
    if entries:
        meta = ET.SubElement(holder, META)
        for key in sorted(entries):
            ET.SubElement(meta, ENTRY, key=key).text = scalar_text(entries[key])


def scalar_text(value) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value)


def metadata_facts(definition) -> dict:
    """{title, description, metadata} of a definition: None when unset, {} without entries."""
    meta = definition.find(META_PATH) if definition is not None else None
    return {
        'title': definition.findtext('title') if definition is not None else None,
        'description': definition.findtext('description') if definition is not None else None,
        'metadata': {entry.get('key'): entry.text or '' for entry in meta.findall(ENTRY)} if meta is not None else {},
    }


def plain_meta(entries: dict) -> str:
    """The <meta> element without its namespace, as libvirt's setMetadata takes it (it puts the
    element in the namespace it is given)."""
    meta = ET.Element('meta')
    for key in sorted(entries):
        ET.SubElement(meta, 'entry', key=key).text = entries[key]
    return ET.tostring(meta, encoding='unicode')


def live_metadata_calls(params: dict, desired, live) -> list:
    """What a running guest must be told so that its live title, description and collection
    metadata match ``desired``: (kind, value) pairs, kind one of title, description, meta (value
    the <kvm:meta> element as text), each value None to remove."""
    calls = []
    wanted, running = metadata_facts(desired), metadata_facts(live)
    for kind in ('title', 'description'):
        if params.get(kind) is not None and wanted[kind] != running[kind]:
            calls.append((kind, wanted[kind]))
    if params.get('metadata') is not None and wanted['metadata'] != running['metadata']:
        calls.append(('meta', plain_meta(wanted['metadata']) if wanted['metadata'] else None))
    return calls
