"""Make the collection importable as ansible_collections.hypervisor.kvm for plain pytest runs,
and give tests libvirt's in-process test driver (no daemon, state private to this process)."""

import json
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _collection_root() -> str:
    """The folder above ansible_collections: the repo's own parents, or a symlink under .tmp."""
    parts = REPO.split(os.sep)
    if len(parts) >= 3 and parts[-3] == 'ansible_collections':
        return os.sep.join(parts[:-3])
    root = os.path.join(REPO, '.tmp', 'collections')
    link = os.path.join(root, 'ansible_collections', 'hypervisor', 'kvm')
    if not os.path.islink(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(REPO, link)
    return root


sys.path.insert(0, _collection_root())

try:
    import libvirt
except ImportError as err:
    # A collection error, not a skip: without libvirt-python nearly every unit test would be
    # skipped and the tier would pass having tested nothing.
    raise ImportError(f'libvirt-python is missing from {sys.executable} ({err}): the unit tests need it for '
                      "libvirt's test:///default driver. Run 'make venv' (it installs requirements-dev.txt into "
                      ".venv) and then 'make test-unit', or run pytest with .venv/bin/python.") from err
TEST_URI = 'test:///default'


@pytest.fixture
def conn():
    """A test:///default connection held open for the whole test.

    The test driver keeps its state while at least one connection is open, so module runs
    inside the test (each opening and closing its own connection) all see the same hypervisor,
    and the next test starts from the driver's defaults again.
    """
    connection = libvirt.open(TEST_URI)
    _reset(connection)
    yield connection
    _reset(connection)
    connection.close()


@pytest.fixture
def reset_driver():
    """The function that puts the test driver back to its defaults (tests that run many module
    calls in one test reset between them)."""
    return _reset


def _reset(connection):
    """Remove what tests created: module runs that ended in SystemExit keep libvirt handles
    alive in tracebacks, which keeps the test driver's state alive between tests."""
    for pool in connection.listAllStoragePools():
        if pool.name() == 'default-pool':
            for volume in pool.listAllVolumes():
                volume.delete(0)
        else:
            if pool.isActive():
                pool.destroy()
            if pool.isPersistent():
                pool.undefine()
    for network in connection.listAllNetworks():
        if network.name() != 'default':
            if network.isActive():
                network.destroy()
            if network.isPersistent():
                network.undefine()
    for domain in connection.listAllDomains():
        if domain.name() != 'test':
            if domain.isActive():
                domain.destroy()
            if domain.isPersistent():
                domain.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)


@pytest.fixture
def run_module(capsys, request):
    """Run a module's main() with arguments; return its result (``failed`` is always set). A
    run is as with ``--diff`` when ``diff=True``, or by default in a test file that sets
    ``RUN_WITH_DIFF = True`` (its tests read the diff)."""
    default_diff = getattr(request.module, 'RUN_WITH_DIFF', False)
    from ansible.module_utils import _internal
    from ansible.module_utils.common import warnings as module_warnings
    from ansible.module_utils.testing import patch_module_args

    def run(main, args, check_mode=False, diff=None):
        # ansible-core keeps warnings in module-level registries (one module run per process in
        # real life): empty them so that each run's result holds its own warnings only
        for registry in ('_global_warnings', '_global_deprecations'):
            getattr(module_warnings, registry, {}).clear()
        args = dict(args)
        if check_mode:
            args['_ansible_check_mode'] = True
        if default_diff if diff is None else diff:  # as with --diff: only then do results carry a diff
            args['_ansible_diff'] = True
        # A module runs on the target side: once any test has imported Ansible's controller (a
        # filter, the inventory plugin), module_utils would send warnings to the Display instead
        # of the result.
        controller, _internal.is_controller = _internal.is_controller, False
        try:
            with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
                main()
        finally:
            _internal.is_controller = controller
        result = json.loads(capsys.readouterr().out)
        result['failed'] = bool(exit_info.value.code) or bool(result.get('failed'))
        return result

    return run
