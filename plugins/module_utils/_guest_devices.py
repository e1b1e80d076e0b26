# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A kvm_guests guest's extra disks and its networks: the options, their checks, and what they
become in kvm_domain's options. No libvirt here."""

from __future__ import annotations

import re

from ansible_collections.hypervisor.kvm.plugins.module_utils._addresses import mac_address
from ansible_collections.hypervisor.kvm.plugins.module_utils._domain_options import domain_options
from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError
from ansible_collections.hypervisor.kvm.plugins.module_utils._options import typed_union
from ansible_collections.hypervisor.kvm.plugins.module_utils._units import disk_size


def guest_disk_options() -> dict:
    """One item of a guest's ``disks``: a new volume of ``size``, or an existing ``volume``; with
    kvm_domain's ``bus``, ``format`` and ``cache`` (kvm_domain's own spec)."""
    disk = domain_options()['disks']['options']
    return dict(size=dict(type='str'), volume=dict(type='str'), pool=dict(type='str'),
                **{key: disk[key] for key in ('bus', 'format', 'cache')})


def data_volume(guest: str, index: int, disk: dict) -> str:
    """The name of the volume a ``{size}`` item of ``disks`` makes: after the guest, by position."""
    return f"{guest}-disk{index + 1}.{'img' if disk.get('format') == 'raw' else 'qcow2'}"


def check_disks(guest: dict) -> list:
    """Problems with a guest's ``disks`` (messages without the guest's prefix)."""
    problems = []
    for index, disk in enumerate(guest.get('disks') or []):
        where = f'disks[{index}]'
        if bool(disk.get('size')) == bool(disk.get('volume')):
            problems.append(f'{where}: give exactly one of size (a new volume) and volume (an existing one)')
        if disk.get('size'):
            try:
                disk_size(disk['size'], f'{where}.size')
            except KvmError as err:
                problems.append(err.msg)
            if disk.get('pool'):
                problems.append(f"{where}: a new disk (size) is made in the fleet's pool; pool goes with volume")
            if disk.get('format') not in (None, 'qcow2', 'raw'):
                problems.append(f"{where}.format: a new disk is qcow2 or raw, not {disk['format']!r}")
    return problems


def domain_disks(guest: dict, pool: str | None) -> list:
    """kvm_domain's ``disks`` items for a guest's extra disks, in order."""
    disks = []
    for index, disk in enumerate(guest.get('disks') or []):
        made = bool(disk.get('size'))
        item = {'volume': data_volume(guest['name'], index, disk) if made else disk['volume'],
                'pool': pool if made else disk.get('pool') or pool,
                'format': disk.get('format') or ('qcow2' if made else None)}
        item.update({key: disk[key] for key in ('bus', 'cache') if disk.get(key)})
        disks.append({key: value for key, value in item.items() if value is not None})
    return disks


def made_disks(guest: dict) -> list:
    """(its key in the guest's result, volume name, format, size) of each disk the fleet makes
    for a guest."""
    return [(f'disks[{index}]', data_volume(guest['name'], index, disk), disk.get('format') or 'qcow2', disk['size'])
            for index, disk in enumerate(guest.get('disks') or []) if disk.get('size')]


def made_here(guest: str, source: dict, pool: str | None) -> bool:
    """Whether a disk of a guest (``_domain_facts.disk_sources``) is a volume kvm_guests makes for
    it: in the fleet's pool, named as it names them."""
    if not pool or source.get('pool') != pool or not source.get('volume'):
        return False
    return bool(re.fullmatch(rf'{re.escape(guest)}(\.qcow2|-seed\.iso|-disk[0-9]+\.(qcow2|img))', source['volume']))


def network_entries(guest: dict, defaults: dict) -> tuple:
    """(entries, problems): each of a guest's networks as {name, mac, model}; an entry is a
    network name or a dict of those keys (the ``guest_network`` shorthand-or-dict option)."""
    entries, problems = [], []
    for index, entry in enumerate(guest.get('networks') or defaults.get('networks') or []):
        where = f'networks[{index}]'
        try:
            entry = typed_union('guest_network', entry, where)
            if entry['mac'] is not None:
                entry['mac'] = mac_address(entry['mac'], f'{where}.mac')
        except KvmError as err:
            problems.append(err.msg)
            continue
        entries.append(entry)
    return entries, problems


def domain_interfaces(entries: list) -> list:
    """kvm_domain's ``interfaces`` for a guest's network entries."""
    return [{key: value for key, value in (('network', entry['name']), ('mac', entry['mac']),
                                           ('model', entry['model'])) if value is not None} for entry in entries]
