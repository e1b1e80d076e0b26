"""The fuzz tier (docs/architecture.md, "Tests"): every option of every module gets bad values
(wrong types, empty, huge, unicode, path tricks, misspelled keys) on libvirt's test:///default
driver. Each call must end in a clean failure (a message, no traceback, libvirt unchanged) or
be accepted: never an exception out of main(), never a change on a failure.

A call the test driver cannot do (it has no volume uploads) may fail after earlier steps ran:
then the failure must report ``changed`` truthfully.

Exceptions raised inside ansible-core's own argument validation (a value of the wrong shape for
a ``dict`` option's sub-spec) are not the collection's: they are counted apart and reported."""

from __future__ import annotations

import json
import traceback

import pytest

from ansible_collections.hypervisor.kvm.plugins.modules import (
    kvm_domain,
    kvm_domain_info,
    kvm_guests,
    kvm_host_info,
    kvm_migration,
    kvm_network,
    kvm_network_info,
    kvm_pool,
    kvm_pool_info,
    kvm_snapshot,
    kvm_volume,
)

URI = 'test:///default'

# A valid call of each module; the fuzzed option replaces (or adds) one value in it.
MODULES = {
    'kvm_pool': (kvm_pool, {'name': 'kvmfuzz-pool', 'target': {'path': '/var/tmp/kvmfuzz-pool'}}),
    'kvm_pool_info': (kvm_pool_info, {}),
    'kvm_network': (kvm_network, {'name': 'kvmfuzz-net', 'ipv4': {'address': '10.199.0.1', 'prefix': 24}}),
    'kvm_network_info': (kvm_network_info, {}),
    'kvm_volume': (kvm_volume, {'name': 'kvmfuzz.qcow2', 'pool': 'default-pool', 'capacity': '1MiB'}),
    'kvm_domain': (kvm_domain, {'name': 'kvmfuzz-dom', 'memory': '64MiB'}),
    'kvm_domain_info': (kvm_domain_info, {}),
    'kvm_host_info': (kvm_host_info, {}),
    'kvm_snapshot': (kvm_snapshot, {'domain': 'test', 'name': 'kvmfuzz-snap', 'state': 'absent'}),
    # the destination is the same in-memory host: refused, as a guest "on both hosts"
    'kvm_migration': (kvm_migration, {'name': 'test', 'dest_uri': 'test:///default'}),
    'kvm_guests': (kvm_guests, {'pool': {'name': 'default-pool', 'manage': False},
                                'guests': [{'name': 'kvmfuzz-guest', 'disk_size': '1MiB', 'networks': ['default'],
                                            'state': 'shutdown'}],
                                'wait_for_ip': 0}),
}
# Not fuzzed: uri and dest_uri (an empty one means the default qemu:///system: a real daemon, not
# this tier; bad URIs are tested where connections are).
SKIPPED = {'uri', 'dest_uri'}

BAD_VALUES = {
    'zero': 0,
    'negative': -1,
    'huge-int': 10 ** 30,
    'bool': True,
    'float': 1.5,
    'empty-string': '',
    'blank': '   ',
    'empty-list': [],
    'empty-dict': {},
    'unicode': 'ünïcødé ✓ 名前',
    'nul-byte': 'a\x00b',
    'path-traversal': '../../../etc/passwd',
    'dev-null': '/dev/null',
    'huge-string': 'x' * 5000,
    'junk-list': [1, 'a', None, {}],
    'typo-dict': {'typo_key': 1},
    'typo-list': [{'typo_key': 1}],
}


def argument_spec(module) -> dict:
    """The argument spec a module's main() builds (captured, nothing runs)."""
    captured = {}

    class Capture(Exception):
        pass

    def fake(**kwargs):
        captured.update(kwargs)
        raise Capture()

    original = module.KvmModule
    module.KvmModule = fake
    try:
        with pytest.raises(Capture):
            module.main()
    finally:
        module.KvmModule = original
    return captured['argument_spec']


def option_paths(spec: dict, prefix: str = '') -> list:
    """Every option and sub-option, as dotted paths (``ipv4.dhcp.ranges``)."""
    paths = []
    for name, details in spec.items():
        path = f'{prefix}{name}'
        paths.append(path)
        if details.get('options'):
            paths.extend(option_paths(details['options'], f'{path}.'))
    return paths


def with_value(base: dict, path: str, value) -> dict:
    """``base`` with ``value`` at the dotted ``path`` (parents created as dicts; a list-of-dicts
    parent gets one item)."""
    args = json.loads(json.dumps(base))
    parts = path.split('.')
    node = args
    for part in parts[:-1]:
        child = node.get(part)
        if isinstance(child, list):
            child = child[0] if child and isinstance(child[0], dict) else {}
            node[part] = [child]
        elif not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value
    return args


def libvirt_state(conn) -> str:
    """Everything the test driver holds, as text: what a failed call must leave unchanged."""
    lines = []
    for domain in sorted(conn.listAllDomains(), key=lambda d: d.name()):
        lines += [domain.name(), str(domain.state()), str(domain.autostart()), domain.XMLDesc(0)]
    for network in sorted(conn.listAllNetworks(), key=lambda n: n.name()):
        lines += [network.name(), str(network.isActive()), str(network.autostart()), network.XMLDesc(0)]
    for pool in sorted(conn.listAllStoragePools(), key=lambda p: p.name()):
        lines += [pool.name(), str(pool.isActive()), pool.XMLDesc(0)]
        if pool.isActive():
            lines += sorted(volume.name() for volume in pool.listAllVolumes())
    return '\n'.join(lines)


def in_core_validation(tb) -> bool:
    """True when an exception was raised inside ansible-core's argument validation."""
    frames = traceback.extract_tb(tb)
    return any('/ansible/module_utils/common/' in frame.filename or frame.filename.endswith('module_utils/basic.py')
               for frame in frames[-3:]) and not any('hypervisor' in frame.filename for frame in frames[-3:])


CASES = [(name, path) for name, (module, _base) in MODULES.items()
         for path in option_paths(argument_spec(module)) if path.split('.')[0] not in SKIPPED]


@pytest.mark.parametrize('module_name, path', CASES, ids=[f'{m}:{p}' for m, p in CASES])
def test_bad_values_fail_cleanly_or_are_accepted(conn, capsys, reset_driver, module_name, path):
    from ansible.module_utils.testing import patch_module_args

    module, base = MODULES[module_name]
    problems, core = [], []
    for label, value in BAD_VALUES.items():
        args = with_value({'uri': URI, **base}, path, value)
        before = libvirt_state(conn)
        failed, result = False, {}
        try:
            with patch_module_args(args):
                module.main()
        except SystemExit as exit_info:
            output = capsys.readouterr().out
            result = json.loads(output)
            failed = bool(exit_info.code) or bool(result.get('failed'))
        except Exception as err:  # pylint: disable=broad-exception-caught
            capsys.readouterr()
            if in_core_validation(err.__traceback__):
                core.append(f'{label}: {type(err).__name__}')
            else:
                problems.append(f'{label}: unhandled {type(err).__name__}: {err}')
            reset_driver(conn)
            continue
        if failed:
            if not result.get('msg'):
                problems.append(f'{label}: failed without a message')
            if 'exception' in result:
                problems.append(f"{label}: unexpected error reported with a traceback: {result['msg']}")
            unsupported = 'not supported by the connection driver' in str(result.get('msg'))
            if unsupported:
                # the test driver lacks the call (volume uploads): the steps before it did run,
                # and the failure must say so
                if bool(result.get('changed')) != (libvirt_state(conn) != before):
                    problems.append(f"{label}: failed ({result.get('msg')}) with changed={result.get('changed')}, "
                                    'which is not what happened')
            elif libvirt_state(conn) != before:
                problems.append(f"{label}: failed ({result.get('msg')}) but changed libvirt")
        reset_driver(conn)
    if core:
        print(f'{module_name}:{path}: ansible-core validation exceptions (not the collection\'s): {core}')
    assert not problems, '\n'.join(problems)
