# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""cloud-init NoCloud seed images: the files from options, and an ISO built and read in memory."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import re

from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError

try:
    import yaml
except ImportError:  # cloud-init reads JSON too (it is YAML)
    yaml = None

SEED_FILES = (('user-data', 'USERDATA.'), ('meta-data', 'METADATA.'), ('network-config', 'NETWORKC.'))


def _render(value, header: str = '') -> bytes:
    if isinstance(value, str):
        return value.encode()
    if yaml is not None:
        text = yaml.safe_dump(value, default_flow_style=False, sort_keys=False, width=4096)
    else:
        text = json.dumps(value, indent=2) + '\n'
    return (header + text).encode()


# The first line of a user-data string tells cloud-init its kind (cloud-init's "user data formats").
USER_DATA_HEADERS = ('#cloud-config', '#!', '#include', '#cloud-boothook', '#part-handler', 'Content-Type:')
KEY_TYPES = ('ssh-ed25519', 'ssh-rsa', 'ssh-dss', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521',
             'sk-ssh-ed25519@openssh.com', 'sk-ecdsa-sha2-nistp256@openssh.com')
PUBLIC_KEY_RE = re.compile(r'(?:^|\s)(?P<type>[a-z0-9@.-]+)\s+(?P<blob>AAAA[A-Za-z0-9+/]+={0,3})(?:\s|$)')


def check_public_key(key, option: str) -> None:
    """An OpenSSH public key line (options and a comment allowed), or a KvmError naming ``option``."""
    if not isinstance(key, str):
        raise KvmError(f'{option}: expected an SSH public key line, got {type(key).__name__}')
    found = PUBLIC_KEY_RE.search(key.strip())
    if found is None or found.group('type') not in KEY_TYPES:
        shown = key if len(key) <= 40 else key[:37] + '...'
        raise KvmError(f"{option}: {shown!r} is not an SSH public key (expected a line such as "
                       "'ssh-ed25519 AAAAC3Nza... user@host'; a private key or a file path is not one)")
    try:
        blob = base64.b64decode(found.group('blob'), validate=True)
    except (ValueError, binascii.Error):
        raise KvmError(f'{option}: the key data of {found.group("type")} is not valid base64') from None
    length = int.from_bytes(blob[:4], 'big') if len(blob) > 4 else 0
    if blob[4:4 + length].decode('ascii', 'replace') != found.group('type'):
        raise KvmError(f'{option}: the key data does not hold a {found.group("type")} key')


def check_user_data(user_data, option: str) -> None:
    """user-data cloud-init can read: a dict (#cloud-config), or a string whose first line says
    its kind; #cloud-config text must be a YAML mapping. SSH keys in it must be public keys."""
    if user_data is None:
        return
    if isinstance(user_data, str):
        if not user_data.lstrip().startswith(USER_DATA_HEADERS):
            raise KvmError(f"{option}: a user-data string must start with '#cloud-config' (YAML) or '#!' (a "
                           f"script), or another cloud-init header ({', '.join(USER_DATA_HEADERS[2:])}); "
                           f"got {user_data.lstrip()[:30]!r}")
        if not user_data.lstrip().startswith('#cloud-config') or yaml is None:
            return
        try:
            user_data = yaml.safe_load(user_data)
        except yaml.YAMLError as err:
            raise KvmError(f'{option}: the #cloud-config is not valid YAML: {err}'.replace('\n', ' ')) from None
        if user_data is None:
            return
    if not isinstance(user_data, dict):
        raise KvmError(f'{option}: #cloud-config must be a mapping (keys such as users, packages), '
                       f'not {type(user_data).__name__}')
    for index, key in enumerate(user_data.get('ssh_authorized_keys') or []):
        check_public_key(key, f'{option}.ssh_authorized_keys[{index}]')
    for number, user in enumerate(user_data.get('users') or []):
        if isinstance(user, dict):
            for index, key in enumerate(user.get('ssh_authorized_keys') or []):
                check_public_key(key, f'{option}.users[{number}].ssh_authorized_keys[{index}]')


SECRET_KEYS = ('passwd', 'password', 'hashed_passwd', 'plain_text_passwd')


def secret_values(user_data) -> set:
    """The passwords in user-data (``passwd``, ``password``... anywhere, and the ``user:password``
    lines of ``chpasswd``), to hide in module results. The rest of user-data (names, packages,
    commands, public keys) stays readable: hiding every value of it would mask each occurrence of
    short words like a guest's name all over the result."""
    if isinstance(user_data, str):
        if yaml is None or not user_data.lstrip().startswith('#cloud-config'):
            return set()
        try:
            user_data = yaml.safe_load(user_data)
        except yaml.YAMLError:
            return set()
    found = set()

    def walk(value, key=''):
        if isinstance(value, dict):
            for child_key, child in value.items():
                walk(child, str(child_key).lower())
        elif isinstance(value, list):
            for child in value:
                walk(child, key)
        elif value is not None and key in SECRET_KEYS:
            found.add(str(value))
        elif isinstance(value, str) and key == 'list':  # chpasswd's list: "user:password" per line
            found.update(line.split(':', 1)[1] for line in value.splitlines() if ':' in line)

    walk(user_data)
    return {value for value in found if value}


def seed_files(cloud_init: dict, volume_name: str, option: str = 'cloud_init') -> dict:
    """The NoCloud files: user-data (a dict becomes #cloud-config), meta-data, network-config.
    Values cloud-init could not read fail here, naming ``option``."""
    for key, kinds in (('user_data', (dict, str)), ('meta_data', (dict, str)), ('network_config', (dict, str))):
        value = cloud_init.get(key)
        if value is not None and not isinstance(value, kinds):
            raise KvmError(f'{option}.{key}: expected a dict or a string, got {type(value).__name__}')
    check_user_data(cloud_init.get('user_data'), f'{option}.user_data')
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
