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


def test_a_remote_uri_that_never_answers_fails_in_time_and_names_it(monkeypatch):
    """A loopback port that accepts the connection and never speaks: libvirt alone would wait."""
    import socket
    import time

    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(1)
    uri = f'qemu+tcp://127.0.0.1:{listener.getsockname()[1]}/system'
    monkeypatch.setattr(_libvirt, 'CONNECT_TIMEOUT', 1)
    started = time.monotonic()
    try:
        with pytest.raises(KvmError) as err, _libvirt.connect(uri):
            pass
    finally:
        listener.close()
    assert time.monotonic() - started < 5
    assert err.value.msg == (f'connecting to libvirt at {uri} failed: no answer within 1 s (is the host reachable, '
                             'and does libvirtd listen there?)')


def test_a_refused_remote_uri_names_it_and_the_transport_error():
    import socket

    probe = socket.socket()
    probe.bind(('127.0.0.1', 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    uri = f'qemu+tcp://127.0.0.1:{port}/system'
    with pytest.raises(KvmError) as err, _libvirt.connect(uri):
        pass
    assert err.value.msg.startswith(f'connecting to libvirt at {uri} failed: ')
    assert 'Connection refused' in err.value.msg


def test_the_connection_stands_for_libvirts_and_a_wait_carries_on():
    with _libvirt.connect('test:///default') as conn:
        assert isinstance(conn, _libvirt.Connection) and conn.alive()
        assert conn.getURI() == 'test:///default' and conn.lookupByName('test').name() == 'test'
        answers = iter([None, None, 'done'])
        assert _libvirt.wait_until(conn, float('inf'), lambda: next(answers), interval=0) == 'done'
        assert _libvirt.wait_until(conn, 0, lambda: None, interval=0) is None


def test_a_wait_reconnects_when_the_connection_dropped():
    """libvirtd restarted: the connection is dead; the wait opens a new one and goes on."""
    with _libvirt.connect('test:///default') as conn, _libvirt.connect('test:///default') as keeper:
        assert keeper.alive()  # keeps test:///default's state while conn is reopened
        calls = []

        def check():
            calls.append(conn.reopened)
            if len(calls) == 1:
                conn.virconnect.close()  # what a daemon restart does to the client's side
                return conn.lookupByName('test')  # raises: the connection is closed
            return conn.lookupByName('test').name()

        assert _libvirt.wait_until(conn, float('inf'), check, interval=0) == 'test'
        assert calls == [0, 1] and conn.reopened == 1 and conn.alive()


@pytest.mark.parametrize('uri, remote', [('qemu:///system', False), ('qemu+ssh://root@kvm2/system', True),
                                         ('qemu+tcp://127.0.0.1:16509/system', True), ('test:///default', False),
                                         ('qemu+unix:///system?socket=/run/b/libvirt-sock', False)])
def test_which_uris_are_remote(uri, remote):
    assert _libvirt.is_remote_uri(uri) is remote


class RecordingModule:
    """Stands in for AnsibleModule only to record what a run ends with (libvirt is real)."""

    def __init__(self, uri):
        self.params = {'uri': uri}
        self.warnings = []

    def warn(self, warning):
        self.warnings.append(warning)

    def exit_json(self, **result):
        raise SystemExit(result)

    fail_json = exit_json


def test_a_run_that_connected_again_says_so():
    from ansible_collections.hypervisor.kvm.plugins.module_utils._runner import run

    def work(conn):
        conn.virconnect.close()  # what a daemon restart does to the client's side
        conn.reopen(float('inf'))
        return {'changed': False, 'name': conn.lookupByName('test').name()}

    module = RecordingModule('test:///default')
    with pytest.raises(SystemExit) as exit_info:
        run(module, work)
    assert exit_info.value.args[0] == {'changed': False, 'name': 'test', 'reconnected': 1}
    assert module.warnings == ['the connection to libvirt at test:///default was lost during the run (libvirtd '
                               'restarted?) and opened again 1 time(s); the run carried on']


def test_a_run_without_reconnection_has_no_such_key():
    from ansible_collections.hypervisor.kvm.plugins.module_utils._runner import run

    module = RecordingModule('test:///default')
    with pytest.raises(SystemExit) as exit_info:
        run(module, lambda conn: {'changed': False})
    assert exit_info.value.args[0] == {'changed': False} and module.warnings == []


def test_the_libssh_transport_is_refused_before_libvirt_10(monkeypatch):
    """libvirt 9.0's qemu+libssh stalls without an event loop and crashed with one: refused before
    any connection is tried (nothing listens on this port), naming the transports to use."""
    monkeypatch.setattr(_libvirt.libvirt, 'getVersion', lambda: 9_000_000)
    uri = 'qemu+libssh://root@127.0.0.1:9/system?keyfile=/nonexistent'
    with pytest.raises(KvmError) as err, _libvirt.connect(uri):
        pass
    assert err.value.msg == (f'refusing {uri}: the qemu+libssh transport of '
                             'libvirt 9.0.0 stalls on replies of a few KiB without an event loop and crashes the '
                             'module with one; use qemu+ssh:// (OpenSSH) or qemu+libssh2:// instead '
                             '(docs/remote-hosts.md)')


def test_libvirt_versions_read_as_people_write_them():
    assert _libvirt.version_text(9_000_000) == '9.0.0' and _libvirt.version_text(10_010_002) == '10.10.2'


def test_objects_removed_between_listing_and_reading_are_left_out(conn, reset_driver):
    """Another client deletes a volume and undefines a guest after our bulk listing."""
    from ansible_collections.hypervisor.kvm.plugins.module_utils._volume_facts import volumes_backed_by

    reset_driver(conn)
    pool = conn.storagePoolLookupByName('default-pool')
    for name in ('kvmtest-base.img', 'kvmtest-gone.img'):
        pool.createXML(f"<volume><name>{name}</name><capacity>1048576</capacity></volume>", 0)
    base = pool.storageVolLookupByName('kvmtest-base.img').path()
    pool.createXML(f"<volume><name>kvmtest-overlay.img</name><capacity>1048576</capacity>"
                   f"<backingStore><path>{base}</path></backingStore></volume>", 0)
    listed = pool.listAllVolumes(0)
    pool.storageVolLookupByName('kvmtest-gone.img').delete(0)
    read = dict((volume.name(), text) for volume, text in _libvirt.each_read(
        listed, lambda volume: volume.XMLDesc(0), _libvirt.libvirt.VIR_ERR_NO_STORAGE_VOL))
    assert 'kvmtest-gone.img' not in read and 'kvmtest-base.img' in read
    assert volumes_backed_by(conn, [base]) == {base: ['default-pool/kvmtest-overlay.img']}

    domains = conn.listAllDomains(0)
    conn.lookupByName('test').destroy()
    conn.lookupByName('test').undefine()
    assert list(_libvirt.each_read(domains, lambda domain: domain.XMLDesc(0), _libvirt.libvirt.VIR_ERR_NO_DOMAIN)) == []
    with pytest.raises(_libvirt.libvirt.libvirtError):  # any other error still counts
        list(_libvirt.each_read(domains, lambda domain: domain.XMLDesc(0), _libvirt.libvirt.VIR_ERR_NO_STORAGE_VOL))
