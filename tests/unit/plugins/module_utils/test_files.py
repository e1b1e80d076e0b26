"""Paths and permissions: owners and groups by name or id, and what a remote URI refuses."""

import pytest

from ansible_collections.hypervisor.kvm.plugins.module_utils import _files
from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError


def test_numeric_ids_pass_and_names_are_resolved_on_a_local_uri():
    assert _files.numeric_id(107, 'owner', lambda name: 1) == '107'
    assert _files.numeric_id('-1', 'owner', lambda name: 1) == '-1'
    assert _files.numeric_id('root', 'owner', {'root': 0}.__getitem__) == '0'


def test_a_name_on_a_remote_uri_is_refused():
    with pytest.raises(KvmError, match="target.owner: 'qemu' is a name, and the URI is remote"):
        _files.numeric_id('qemu', 'target.owner', {'qemu': 64055}.__getitem__, remote=True)
    assert _files.numeric_id('64055', 'target.owner', {}.__getitem__, remote=True) == '64055'
