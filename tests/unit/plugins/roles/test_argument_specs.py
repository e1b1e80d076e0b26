# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kvm_guest role's argument specs list exactly what kvm_guests accepts: the same keys, types,
choices and defaults, at every level the role documents (a key the module takes and the role
does not list is refused by the role's own validation, before the module could take it)."""

from __future__ import annotations

import os

import pytest
import yaml

from ansible_collections.hypervisor.kvm.plugins.module_utils._guests import (
    fleet_network_options,
    fleet_options,
    guest_options,
)

ROLE_SPECS = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'roles', 'kvm_guest', 'meta',
                          'argument_specs.yml')


def role_options() -> dict:
    with open(ROLE_SPECS, encoding='utf-8') as handle:
        return yaml.safe_load(handle)['argument_specs']['main']['options']


def differences(role: dict, module: dict, path: str, ignore=()) -> list:
    """Every key, type, element type, choice and default where the role's spec and the module's
    differ; suboptions compared where the role documents them."""
    found = []
    for key in sorted((set(role) | set(module)) - set(ignore)):
        where = f'{path}.{key}'
        if key not in role:
            found.append(f'{where}: the module takes it, the role does not list it')
            continue
        if key not in module:
            found.append(f'{where}: the role lists it, the module does not take it')
            continue
        mine, theirs = role[key], module[key]
        for attribute in ('type', 'elements', 'choices', 'default', 'required'):
            wanted = theirs.get(attribute, False if attribute == 'required' else None)
            have = mine.get(attribute, False if attribute == 'required' else None)
            if attribute == 'type' and wanted is None:
                wanted = 'str'
            if have != wanted:
                found.append(f'{where}: {attribute} {have!r} in the role, {wanted!r} in the module')
        if 'options' in mine:
            found.extend(differences(mine['options'], theirs.get('options') or {}, where))
    return found


def test_each_guest_takes_what_kvm_guests_takes():
    assert differences(role_options()['kvm_guest_list']['options'], guest_options(), 'kvm_guest_list[]') == []


def test_each_network_takes_what_kvm_guests_takes():
    assert differences(role_options()['kvm_guest_networks']['options'], fleet_network_options(),
                       'kvm_guest_networks[]') == []


def test_the_pool_takes_what_kvm_guests_takes():
    # the role says manage in a variable of its own (kvm_guest_manage_pool)
    pool = fleet_options()['pool']['options']
    assert differences(role_options()['kvm_guest_pool']['options'], pool, 'kvm_guest_pool', ignore=('manage',)) == []


@pytest.mark.parametrize('change, expected', [
    (lambda spec: spec.pop('guest_agent'), 'kvm_guest_list[].guest_agent: the module takes it'),
    (lambda spec: spec['state'].update(default='shutdown'), "kvm_guest_list[].state: default 'shutdown'"),
    (lambda spec: spec['cpu']['options'].pop('threads'), 'kvm_guest_list[].cpu.threads: the module takes it'),
])
def test_a_difference_is_found(change, expected):
    role = role_options()['kvm_guest_list']['options']
    change(role)
    found = differences(role, guest_options(), 'kvm_guest_list[]')
    assert any(line.startswith(expected) for line in found), found
