# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files and directories on the managed host: paths and permissions as libvirt writes them,
and applying permissions libvirt itself only sets when it creates a file or directory."""

from __future__ import annotations

import grp
import os
import pwd
import re
import stat
import xml.etree.ElementTree as ET

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError


def sanitise_path(path: str) -> str:
    """The path as libvirt stores it: repeated slashes collapsed, no trailing slash."""
    path = re.sub('/+', '/', path.strip())
    return path if path == '/' else path.rstrip('/')


def octal_mode(value, option: str) -> str:
    """A file mode as libvirt writes it ('0755'); ints are taken as already-converted octal."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        text = str(value).strip()
        if not re.fullmatch('[0-7]{1,4}', text):
            raise KvmError(f"{option}: {value!r} is not an octal file mode such as '0755'")
        number = int(text, 8)
    if not 0 <= number <= 0o7777:
        raise KvmError(f"{option}: {value!r} is not a file mode between 0000 and 7777")
    return f'{number:04o}'


def numeric_id(value, option: str, lookup, remote: bool = False) -> str:
    """A user or group id as libvirt wants it; names are resolved on the managed host, so on a
    remote URI (another host's users) only numeric ids are taken."""
    text = str(value).strip()
    if re.fullmatch(r'-?\d+', text):
        return text
    if remote:
        raise KvmError(f'{option}: {text!r} is a name, and the URI is remote: names would be resolved on this host, '
                       "not on the libvirt host; give the numeric id (for example 'getent passwd NAME' there)")
    try:
        return str(lookup(text))
    except KeyError:
        raise KvmError(f'{option}: no such user or group {text!r} on the managed host') from None


def permissions_element(parent: ET.Element, spec: dict, option: str | None, remote: bool = False) -> None:
    """Add ``<permissions>`` for the owner/group/mode in ``spec`` (if any is set); ``option``
    prefixes the option names in errors (``target`` -> ``target.mode``); ``remote`` takes numeric
    owners and groups only (see :func:`numeric_id`)."""
    option = f'{option}.' if option else ''
    if not spec or all(spec.get(key) is None for key in ('owner', 'group', 'mode')):
        return
    perms = _xml.sub_element(parent, 'permissions')
    if spec.get('mode') is not None:
        _xml.sub_element(perms, 'mode', octal_mode(spec['mode'], f'{option}mode'))
    if spec.get('owner') is not None:
        owner = numeric_id(spec['owner'], f'{option}owner', lambda n: pwd.getpwnam(n).pw_uid, remote)
        _xml.sub_element(perms, 'owner', owner)
    if spec.get('group') is not None:
        group = numeric_id(spec['group'], f'{option}group', lambda n: grp.getgrnam(n).gr_gid, remote)
        _xml.sub_element(perms, 'group', group)


def permission_changes(path: str, wanted) -> dict:
    """What differs between a ``<permissions>`` element and the file at ``path``:
    a dict with the ``mode``, ``owner`` and ``group`` to set (ints)."""
    status = os.stat(path)
    changes = {}
    mode = wanted.findtext('mode')
    if mode and int(mode, 8) != stat.S_IMODE(status.st_mode):
        changes['mode'] = int(mode, 8)
    for key, current in (('owner', status.st_uid), ('group', status.st_gid)):
        value = wanted.findtext(key)
        if value and int(value) not in (-1, current):
            changes[key] = int(value)
    return changes


def set_permissions(path: str, changes: dict) -> None:
    """Apply what :func:`permission_changes` found (chown first: it clears set-id bits)."""
    os.chown(path, changes.get('owner', -1), changes.get('group', -1))
    if 'mode' in changes:
        os.chmod(path, changes['mode'])


def describe(changes: dict) -> str:
    """``mode 0o750, owner 107`` for action descriptions."""
    return ', '.join(f"{key} {oct(value) if key == 'mode' else value}" for key, value in changes.items())
