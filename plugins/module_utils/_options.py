# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options that take a shorthand or a dict (docs/architecture.md, "Typed options").

Ansible's argument spec has no "a word or a dict" type, so these options are declared ``raw``
and validated here against a full sub-spec with Ansible's own validator: a misspelled key, a
wrong type or an unknown word fails with a message naming the option, and ``no_log`` keys are
hidden like any other secret.
"""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.errors import UnsupportedError
from ansible.module_utils.parsing.convert_bool import BOOLEANS, boolean

from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError

GRAPHICS_SPEC = dict(
    type=dict(type='str', default='vnc', choices=['none', 'vnc', 'spice']),
    listen=dict(type='str'),
    port=dict(type='int'),
    password=dict(type='str', no_log=True),
)
CONSOLE_SPEC = dict(
    pty=dict(type='bool', default=True),
    log=dict(type='path'),
)
BRIDGE_SPEC = dict(
    name=dict(type='str'),
    stp=dict(type='bool'),
    delay=dict(type='int'),
)
# kvm_network's forward modes: the ones with a bridge of their own (nat, route, open, isolated),
# a host bridge (bridge without interfaces), and the ones on a pool of host devices (bridge with
# interfaces, private, vepa and passthrough: macvtap; hostdev: SR-IOV functions given to guests).
FORWARD_MODES = ('nat', 'route', 'open', 'bridge', 'isolated', 'private', 'vepa', 'passthrough', 'hostdev')
FORWARD_SPEC = dict(
    mode=dict(type='str', required=True, choices=list(FORWARD_MODES)),
    interfaces=dict(type='list', elements='str'),
    pf=dict(type='str'),
    addresses=dict(type='list', elements='str'),
    managed=dict(type='bool'),
)
FORWARDER_SPEC = dict(
    addr=dict(type='str'),
    domain=dict(type='str'),
)
GUEST_NETWORK_SPEC = dict(
    name=dict(type='str', required=True),
    mac=dict(type='str'),
    model=dict(type='str'),
)


def xml_patches_option() -> dict:
    """The ``xml_patches`` option of kvm_domain, kvm_network and kvm_pool (see ``_xml_patches``)."""
    return dict(type='list', elements='dict', options=dict(
        xpath=dict(type='str', required=True), value=dict(type='str'), attribute=dict(type='str'),
        xml=dict(type='str'), state=dict(type='str', default='present', choices=['present', 'absent']),
    ))


def _graphics_word(value):
    return {'type': value} if isinstance(value, str) and value in GRAPHICS_SPEC['type']['choices'] else None


def _console_word(value):
    if isinstance(value, bool) or (isinstance(value, str) and value.lower() in BOOLEANS):
        return {'pty': boolean(value)}
    return None


def _mode_word(value):
    return {'mode': value} if isinstance(value, str) and value in FORWARD_MODES else None


def _name_word(value):
    return {'name': value} if isinstance(value, str) else None


def _addr_word(value):
    return {'addr': value} if isinstance(value, str) else None


# option name -> (sub-spec, shorthand -> dict or None, what the shorthand is, for messages)
UNIONS = {
    'graphics': (GRAPHICS_SPEC, _graphics_word, 'none, vnc or spice'),
    'console': (CONSOLE_SPEC, _console_word, 'a boolean'),
    'bridge': (BRIDGE_SPEC, _name_word, 'a bridge name'),
    'forward': (FORWARD_SPEC, _mode_word, f"a forward mode ({', '.join(FORWARD_MODES)})"),
    'forwarder': (FORWARDER_SPEC, _addr_word, 'an address'),
    'guest_network': (GUEST_NETWORK_SPEC, _name_word, 'a network name'),
}


def typed_union(kind: str, value, option: str, no_log_values: set | None = None):
    """``value`` of a shorthand-or-dict option as a validated dict (None stays None).

    ``kind`` names the entry of :data:`UNIONS`, ``option`` the option path shown in messages
    (``graphics``, ``guests[2].console``). Secrets found are added to ``no_log_values``.
    """
    if value is None:
        return None
    spec, word, words = UNIONS[kind]
    if not isinstance(value, dict):
        expanded = word(value)
        if expanded is None:
            raise KvmError(f"{option}: expected {words}, or a dict with {', '.join(sorted(spec))}; "
                           f"got {value!r} ({type(value).__name__})")
        value = expanded
    result = ArgumentSpecValidator(spec).validate(value)
    if result.error_messages:
        problems = []
        for error in result.errors.errors:
            if isinstance(error, UnsupportedError):
                unknown = str(error).split('. Supported', 1)[0]
                problems.append(f"unknown key(s) {unknown} (the keys are {', '.join(sorted(spec))})")
            else:
                problems.append(str(error))
        raise KvmError(f"{option}: {'; '.join(problems)}")
    if no_log_values is not None:
        no_log_values.update(result._no_log_values)  # pylint: disable=protected-access
    return result.validated_parameters


def apply_unions(module, options: dict) -> None:
    """Validate the shorthand-or-dict options of ``module.params`` in place; a bad value fails the
    module before anything runs. ``options`` maps option paths to :data:`UNIONS` kinds: ``graphics``,
    or ``dns.forwarders[]`` for each item of a list inside a dict option."""
    try:
        for path, kind in options.items():
            parent_path, _dot, name = path.rpartition('.')
            parent = module.params
            for key in filter(None, parent_path.split('.')):
                parent = parent.get(key) or {}
            if name.endswith('[]'):
                name = name[:-2]
                if parent.get(name) is not None:
                    parent[name] = [typed_union(kind, item, f'{path[:-2]}[{index}]', module.no_log_values)
                                    for index, item in enumerate(parent[name])]
            elif name in parent:
                parent[name] = typed_union(kind, parent.get(name), path, module.no_log_values)
    except KvmError as err:
        module.fail_json(msg=err.msg)


class KvmModule(AnsibleModule):
    """AnsibleModule whose argument validation failures name the options: the problems
    ``_option_checks.input_problems`` finds come first, then Ansible's other messages (types, choices,
    required options...), all of them, one per line."""

    def __init__(self, *args, **kwargs):
        self._kvm_validating = True
        super().__init__(*args, **kwargs)
        self._kvm_validating = False

    def fail_json(self, msg=None, **kwargs):
        result = getattr(self, 'validation_result', None)
        if getattr(self, '_kvm_validating', False) and result is not None and result.errors:
            from ansible_collections.hypervisor.kvm.plugins.module_utils._option_checks import (  # pylint: disable=import-outside-toplevel
                input_problems,  # only a refused input needs it
            )
            problems = input_problems(self.argument_spec, self._kvm_raw_params())
            unknown = any(': unknown ' in problem for problem in problems)
            not_dict = any(', not the string ' in problem for problem in problems)
            for error in result.errors.errors:
                text = str(error)
                if (unknown and isinstance(error, UnsupportedError)) or (
                        not_dict and ('dictionary requested' in text or 'must be of type dict' in text)):
                    continue  # said above, in the user's words
                problems.append(text)
            msg = '\n'.join(dict.fromkeys(problems)) or msg
        super().fail_json(msg=msg, **kwargs)

    def _kvm_raw_params(self) -> dict:
        from ansible.module_utils.basic import _load_params  # pylint: disable=import-outside-toplevel

        try:
            return _load_params()
        except Exception:  # pylint: disable=broad-exception-caught  # the validated params then
            return dict(self.params)
