# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""libvirt's own spelling of a definition (docs/architecture.md, "Equal means equal to libvirt").

Two definitions that libvirt stores identically are equal: MAC letter case, number bases,
units, trailing slashes, default values it leaves out. Rather than teaching the comparison
each of those rules, the desired definition goes through libvirt's own parser and formatter:
the built-in test driver shares them with the real drivers, runs inside this process on a
private, empty host, and answers in a fraction of a millisecond. The answer is projected back
onto what the user specified (:func:`_xml.project`), so libvirt's defaults never become
desired values.
"""

from __future__ import annotations

import copy
import os

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import libvirt

_PRIVATE = {}  # the private test-driver connection of this process, opened on first use


def _private_host():
    """A connection to an empty, private test-driver host (each custom test:/// URI gets its own),
    opened on first use and closed when the module's process ends (exit_json and fail_json exit
    it). The driver reads its node file at open: an in-memory file where the system has them."""
    if 'conn' not in _PRIVATE:
        import atexit  # pylint: disable=import-outside-toplevel  # only a run that compares needs it
        atexit.register(_close_private_host)
        if hasattr(os, 'memfd_create'):
            fd = os.memfd_create('hypervisor-kvm-canonical')
            try:
                os.write(fd, b'<node/>\n')
                _PRIVATE['conn'] = libvirt.open(f'test:///proc/self/fd/{fd}')
            finally:
                os.close(fd)
        else:  # pragma: no cover - not Linux
            import tempfile  # pylint: disable=import-outside-toplevel
            with tempfile.NamedTemporaryFile('w', suffix='.xml') as node:
                node.write('<node/>\n')
                node.flush()
                _PRIVATE['conn'] = libvirt.open(f'test://{node.name}')
    return _PRIVATE['conn']


def _close_private_host() -> None:
    conn = _PRIVATE.pop('conn', None)
    if conn is not None:
        try:
            conn.close()
        except libvirt.libvirtError:
            pass  # the process ends anyway


# What libvirt's parser requires of a whole definition, added when a partial one (only the options
# the user gave, for an existing object) lacks it. The projection never keeps these additions.
REQUIRED = {
    'domain': (('memory', '65536'), ('os', None), ('os/type', 'hvm')),
    'network': (),
    'pool': (('target', None), ('target/path', '/')),
}


def _complete(element):
    """A copy of a partial definition with what the parser requires to read it at all."""
    complete = copy.deepcopy(element)
    for path, text in REQUIRED.get(element.tag, ()):
        if complete.find(path) is None:
            parent_path, tag = path.rpartition('/')[::2]
            parent = complete.find(parent_path) if parent_path else complete
            _xml.sub_element(parent, tag, text)
    if element.tag == 'pool' and not complete.get('type'):
        complete.set('type', 'dir')
    return complete


def _round_trip(conn, element):
    """Define ``element`` on the private host, read libvirt's inactive XML back, undefine it."""
    text = _xml.to_text(_complete(element), pretty=False)
    if element.tag == 'domain':
        handle = conn.defineXML(text)
        try:
            return handle.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE)
        finally:
            handle.undefine()
    if element.tag == 'network':
        handle = conn.networkDefineXML(text)
        try:
            return handle.XMLDesc(0)
        finally:
            handle.undefine()
    if element.tag == 'pool':
        handle = conn.storagePoolDefineXML(text, 0)
        try:
            return handle.XMLDesc(0)
        finally:
            handle.undefine()
    return None


def canonical(element, authoritative=frozenset()) -> tuple:
    """``(element in libvirt's spelling, what libvirt does not keep of it)``.

    Definitions libvirt's parser refuses, and kinds it has no round trip for, come back as they
    are: the real driver then says what is wrong when the definition is written.
    """
    try:
        text = _round_trip(_private_host(), element)
    except (libvirt.libvirtError, OSError):
        return element, []
    if text is None:
        return element, []
    return _xml.project(element, _xml.parse_xml(text, 'libvirt XML'), authoritative)
