import pytest
from ansible.module_utils.common import respawn as respawn_utils

from ansible_collections.hypervisor.kvm.plugins.module_utils import _libvirt
from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError


def test_uri_falls_back_to_the_environment_then_qemu_system(monkeypatch):
    monkeypatch.delenv('LIBVIRT_DEFAULT_URI', raising=False)
    assert _libvirt.resolve_uri(None) == 'qemu:///system'
    monkeypatch.setenv('LIBVIRT_DEFAULT_URI', 'test:///default')
    assert _libvirt.resolve_uri(None) == 'test:///default'
    assert _libvirt.resolve_uri('qemu:///session') == 'qemu:///session'


@pytest.mark.parametrize('uri, local', [
    ('qemu:///system', True), ('test:///default', False), ('qemu:///session', True),
    ('qemu+ssh://root@kvm1/system', False),
    ('qemu+tcp://10.0.0.2/system', False),
])
def test_local_uris(uri, local):
    assert _libvirt.is_local_uri(uri) is local


def test_one_connection_is_opened_and_closed():
    with _libvirt.connect('test:///default') as conn:
        assert conn.getURI() == 'test:///default'
        assert conn.isAlive()
    with pytest.raises(_libvirt.libvirt.libvirtError, match='invalid connection pointer'):
        conn.isAlive()  # closed on the way out


def test_a_failed_connection_says_where():
    with pytest.raises(KvmError) as err:
        with _libvirt.connect('bogus:///nowhere'):
            pass
    assert err.value.msg.startswith('connecting to libvirt at bogus:///nowhere failed: ')
    assert err.value.details['libvirt_error']['code'] > 0


def test_libvirt_errors_become_readable_failures(conn):
    with pytest.raises(KvmError) as err:
        with _libvirt.guard("starting storage pool 'nope'"):
            conn.storagePoolLookupByName('nope')
    assert err.value.msg == (
        "starting storage pool 'nope' failed: Storage pool not found: no storage pool with matching name 'nope'")
    details = err.value.details['libvirt_error']
    assert details['code_name'] == 'VIR_ERR_NO_STORAGE_POOL'
    assert details['code'] == _libvirt.libvirt.VIR_ERR_NO_STORAGE_POOL
    assert 'matching name' in details['message']


def test_connection_argument_spec_uses_the_environment():
    spec = _libvirt.connection_argument_spec()['uri']
    assert spec['default'] == 'qemu:///system'
    assert spec['fallback'][1] == ['LIBVIRT_DEFAULT_URI']


class FakeModule:
    """Stands in for AnsibleModule only to catch fail_json (libvirt itself is not faked)."""

    def fail_json(self, **result):
        raise SystemExit(result)


def test_missing_binding_names_the_packages(monkeypatch):
    monkeypatch.setattr(_libvirt, 'HAS_LIBVIRT', False)
    monkeypatch.setattr(_libvirt, 'LIBVIRT_IMPORT_ERROR', 'ImportError: No module named libvirt')
    monkeypatch.setattr(respawn_utils, 'has_respawned', lambda: False)
    monkeypatch.setattr(respawn_utils, 'probe_interpreters_for_module', lambda *_: None)
    with pytest.raises(SystemExit) as exit_info:
        _libvirt.ensure_libvirt(FakeModule())
    result = exit_info.value.args[0]
    assert 'libvirt-python' in result['msg'] and 'python3-libvirt' in result['msg']
    assert result['exception'].startswith('ImportError')


def test_missing_binding_respawns_under_a_system_python_that_has_it(monkeypatch):
    monkeypatch.setattr(_libvirt, 'HAS_LIBVIRT', False)
    monkeypatch.setattr(respawn_utils, 'has_respawned', lambda: False)
    probed = []
    monkeypatch.setattr(respawn_utils, 'probe_interpreters_for_module',
                        lambda paths, name: probed.append((paths, name)) or '/usr/bin/python3')

    def respawn(interpreter):
        raise SystemExit(f'respawned under {interpreter}')

    monkeypatch.setattr(respawn_utils, 'respawn_module', respawn)
    with pytest.raises(SystemExit, match='respawned under /usr/bin/python3'):
        _libvirt.ensure_libvirt(FakeModule())
    assert probed[0][1] == 'libvirt' and '/usr/bin/python3' in probed[0][0]
