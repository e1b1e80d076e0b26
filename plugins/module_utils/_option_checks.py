# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shape of an input, in the words of the options the user wrote, and an options dict
completed by a module's own argument spec (docs/architecture.md, "Typed options"). Only a
refused input and kvm_guests need them, so a module run that validates cleanly never compiles
this file."""

from __future__ import annotations

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError


def _dict_example(spec: dict, value) -> str:
    """``{first key: value}``: how a string given where a dict is expected is probably meant."""
    first = next(iter(spec), 'name')
    return f'{{{first}: {value}}}'


def _shape_problems(spec: dict, params: dict, path: str) -> list:
    problems = []
    known = set(spec)
    for option in spec.values():
        known.update(option.get('aliases') or [])
    for key, value in params.items():
        if key.startswith('_ansible') or (not path and key in ('_raw_params',)):
            continue
        where = f'{path}{key}'
        if key not in known:
            kind = 'option' if not path else 'key'
            problems.append(f"{where}: unknown {kind} (the {kind}s {'here ' if path else ''}are "
                            f"{', '.join(sorted(spec))})")
            continue
        option = spec.get(key) or next(o for o in spec.values() if key in (o.get('aliases') or []))
        options = option.get('options')
        if value is None or not options:
            continue
        keys = ', '.join(sorted(options))
        if option.get('type') == 'dict':
            if isinstance(value, dict):
                problems.extend(_shape_problems(options, value, f'{where}.'))
            elif isinstance(value, str):
                problems.append(f'{where}: a dict with the keys {keys} (for example {key}: '
                                f'{_dict_example(options, value)}), not the string {value!r}')
        elif option.get('type') == 'list' and option.get('elements') == 'dict' and isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    problems.extend(_shape_problems(options, item, f'{where}[{index}].'))
                elif isinstance(item, str):
                    problems.append(f'{where}[{index}]: a dict with the keys {keys} (for example '
                                    f'{_dict_example(options, item)}), not the string {item!r}')
    return problems


def completed(spec: dict, given: dict, where: str) -> dict:
    """``given`` (None for what is left to the spec) completed with the defaults of ``spec``, a
    module's own argument spec: how kvm_guests hands its steps to the adapters without copying a
    default by hand. ``given`` was made from options already checked, so a refusal is a bug."""
    checked = ArgumentSpecValidator(spec).validate({key: value for key, value in given.items() if value is not None})
    if checked.error_messages:
        raise KvmError(f"{where}: the module's options refused what kvm_guests made of them: "
                       + '; '.join(checked.error_messages))
    return checked.validated_parameters


def input_problems(spec: dict, params: dict, prefix: str = '') -> list:
    """What is wrong with the shape of ``params`` against the argument spec ``spec``, each naming
    the option path the user wrote (``ipv4.adress``, ``interfaces[0]``): unknown options and
    keys, with the known ones, and a string given where a dict is expected, with the form it
    takes. Ansible's own messages say less: "dictionary requested, could not parse JSON or
    key=value" names no option, and a misspelled key of a dict with a required key is reported
    only as the missing one."""
    return _shape_problems(spec, params or {}, prefix)
