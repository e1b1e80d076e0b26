# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""libvirt access for every module: the guarded import, one connection, readable errors."""

from __future__ import annotations

import os
from contextlib import contextmanager
from urllib.parse import urlsplit

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError

LIBVIRT_IMPORT_ERROR = None
try:
    import libvirt
except ImportError as import_error:
    libvirt = None  # ensure_libvirt() stops the module before anything uses it
    HAS_LIBVIRT = False
    LIBVIRT_IMPORT_ERROR = repr(import_error)
else:
    HAS_LIBVIRT = True
    # libvirt prints every error to stderr by default; ours are reported through fail_json.
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

DEFAULT_URI = 'qemu:///system'

# Where distributions put the Python that has their libvirt binding (python3-libvirt).
SYSTEM_PYTHONS = ('/usr/bin/python3', '/usr/libexec/platform-python', '/usr/bin/python')

LIBVIRT_PACKAGES = (
    'python3-libvirt (Debian, Ubuntu, Fedora, RHEL, SUSE), libvirt-python (Arch), '
    'or `pip install libvirt-python` (needs libvirt-dev and pkg-config)'
)


def ensure_libvirt(module) -> None:
    """Make ``import libvirt`` work or fail the module with what to install.

    When the interpreter running the module lacks the binding, the module is re-run under a
    system Python that has it (the distribution package installs it only there).
    """
    if HAS_LIBVIRT:
        return
    from ansible.module_utils.common.respawn import (  # pylint: disable=import-outside-toplevel
        has_respawned,  # only without the binding: no run that has it pays for this import
        probe_interpreters_for_module,
        respawn_module,
    )

    if not has_respawned():
        interpreter = probe_interpreters_for_module(SYSTEM_PYTHONS, 'libvirt')
        if interpreter:
            respawn_module(interpreter)  # does not return
    module.fail_json(
        msg=missing_required_lib('libvirt-python', reason='to talk to libvirt')
        + f' On the managed host install {LIBVIRT_PACKAGES}.',
        exception=LIBVIRT_IMPORT_ERROR,
    )


def connection_argument_spec() -> dict:
    """The ``uri`` option every module shares (documented in the connection doc fragment)."""
    return dict(uri=dict(type='str', default=DEFAULT_URI, fallback=(env_fallback, ['LIBVIRT_DEFAULT_URI'])))


def flags(*names) -> int:
    """The OR of libvirt constants by name; names this libvirt-python lacks count as 0."""
    value = 0
    for name in names:
        value |= getattr(libvirt, name, 0)
    return value


def error_code_name(code: int) -> str | None:
    """The VIR_ERR_* name of a libvirt error code, for people and for tests."""
    for name in dir(libvirt):
        if name.startswith('VIR_ERR_') and getattr(libvirt, name) == code and name not in (
                'VIR_ERR_NONE', 'VIR_ERR_WARNING', 'VIR_ERR_ERROR'):
            return name
    return None


def libvirt_failure(what: str, err) -> KvmError:
    """Turn a libvirtError raised while doing ``what`` into a KvmError for people."""
    message = err.get_error_message() or str(err)
    code = err.get_error_code()
    return KvmError(
        f'{what} failed: {message}',
        libvirt_error={
            'code': code,
            'code_name': error_code_name(code),
            'domain': err.get_error_domain(),
            'message': message,
        },
    )


def as_failure(err: Exception, what: str) -> KvmError:
    """Any exception as a KvmError for people (a libvirt, filesystem or unexpected error)."""
    if isinstance(err, KvmError):
        return err
    if isinstance(err, libvirt.libvirtError):
        return libvirt_failure(what, err)
    if isinstance(err, OSError):
        where = f' ({err.filename})' if getattr(err, 'filename', None) else ''
        return KvmError(f'{what} failed: {err.strerror or err}{where}')
    import traceback  # pylint: disable=import-outside-toplevel  # only a defect's report needs it

    return KvmError(f'{what} failed with an unexpected {type(err).__name__}: {err}',
                    exception=traceback.format_exc())


def is_remote_uri(uri: str) -> bool:
    """True when the libvirt host is another machine: its files and users are not this host's
    (libvirt's test driver is neither: it has no files at all)."""
    parts = urlsplit(uri)
    return bool(parts.hostname) and parts.scheme.split('+')[0] != 'test'


@contextmanager
def guard(what: str):
    """Run a block of libvirt calls; a libvirtError becomes a KvmError saying what failed."""
    try:
        yield
    except libvirt.libvirtError as err:
        raise libvirt_failure(what, err) from None


def is_error(err, *codes) -> bool:
    """True when libvirtError ``err`` carries one of the VIR_ERR_* ``codes``."""
    return err.get_error_code() in codes


def each_read(handles, read, *gone):
    """``(handle, read(handle))`` for each of ``handles`` (a bulk listing) that still exists when
    it is read. Another client may remove an object between the listing and the read (a guest
    undefined, a volume deleted, a pool stopped): libvirt then answers one of the ``gone`` error
    codes, and the object is left out, as if it had not been listed."""
    for handle in handles:
        try:
            value = read(handle)
        except libvirt.libvirtError as err:
            if is_error(err, *gone):
                continue
            raise
        yield handle, value


# the error each kind of lookup answers when the object is not there
MISSING = {'domain': 'VIR_ERR_NO_DOMAIN', 'network': 'VIR_ERR_NO_NETWORK', 'pool': 'VIR_ERR_NO_STORAGE_POOL',
           'volume': 'VIR_ERR_NO_STORAGE_VOL', 'snapshot': 'VIR_ERR_NO_DOMAIN_SNAPSHOT'}


def lookup(call, key, kind: str):
    """``call(key)``: one libvirt lookup (by name, UUID or path: ``conn.lookupByName``,
    ``conn.storageVolLookupByPath``, ``pool.storageVolLookupByName``...), None when libvirt
    answers that the ``kind`` of object (domain, network, pool, volume, snapshot) is missing.
    Every adapter, kvm_snapshot and kvm_migration look objects up through it."""
    try:
        return call(key)
    except libvirt.libvirtError as err:
        if is_error(err, getattr(libvirt, MISSING[kind])):
            return None
        raise


POOL_BUSY_WAIT = 30  # seconds a refresh waits for a pool's asynchronous jobs to end


def refresh_pool(pool, timeout: float = POOL_BUSY_WAIT) -> None:
    """``pool.refresh()``, waiting while the pool "has asynchronous jobs running": libvirtd ends
    the upload of a client that was killed a moment ago only once it notices the client is gone,
    and a refresh meanwhile is refused."""
    import time  # pylint: disable=import-outside-toplevel  # only a busy pool needs it

    deadline = time.monotonic() + timeout
    while True:
        try:
            pool.refresh(0)
            return
        except libvirt.libvirtError as err:
            if 'asynchronous jobs running' not in str(err) or time.monotonic() > deadline:
                raise
        time.sleep(0.25)


def resolve_uri(uri: str | None) -> str:
    """The URI to use: the option, else ``LIBVIRT_DEFAULT_URI``, else qemu:///system."""
    return uri or os.environ.get('LIBVIRT_DEFAULT_URI') or DEFAULT_URI


def is_local_uri(uri: str) -> bool:
    """True when the objects of ``uri`` live on this host's filesystem, so paths can be checked
    here: no host part in the URI, and not libvirt's test driver (whose paths are make-believe)."""
    parts = urlsplit(uri)
    return not parts.hostname and parts.scheme.split('+')[0] != 'test'


CONNECT_TIMEOUT = 25  # seconds a remote URI may take to answer (the transport's own may be minutes)
RECONNECT_INTERVAL = 0.5


class Connection:
    """The module run's libvirt connection. It stands for the ``virConnect`` it wraps (every
    method is the connection's), and a wait can :meth:`reopen` it when libvirtd restarts
    underneath: everything that uses the connection afterwards (lookups, the final read) uses
    the new one. Handles read before a restart belong to the old connection: look them up again
    (docs/architecture.md, "Waits survive a daemon restart")."""

    def __init__(self, uri: str, conn):
        self.uri = uri
        self.virconnect = conn
        self.reopened = 0

    def __getattr__(self, name):
        return getattr(self.virconnect, name)

    def alive(self) -> bool:
        try:
            return bool(self.virconnect.isAlive())
        except libvirt.libvirtError:
            return False

    def reopen(self, deadline: float, cause=None) -> None:
        """Connect again until ``deadline`` (a daemon that restarts takes a moment to listen)."""
        import time  # pylint: disable=import-outside-toplevel  # only a restart needs it

        last = cause
        while True:
            try:
                fresh = open_uri(self.uri)
            except (libvirt.libvirtError, KvmError) as err:
                last = err
            else:
                try:
                    self.virconnect.close()
                except libvirt.libvirtError:
                    pass  # the old one is gone already
                self.virconnect = fresh
                self.reopened += 1
                return
            if time.monotonic() >= deadline:
                reason = last.get_error_message() if isinstance(last, libvirt.libvirtError) else str(last)
                raise KvmError(f'lost the connection to libvirt at {self.uri} (the daemon restarted or stopped) and '
                               f'could not connect again in time: {reason}')
            time.sleep(RECONNECT_INTERVAL)

    def close(self) -> None:
        try:
            self.virconnect.close()
        except libvirt.libvirtError:
            pass


# libvirt's libssh transport below this version stalls or crashes (measured with 9.0.0; newer untested)
LIBSSH_FIXED = 10_000_000
KEEPALIVE = (5, 3)  # a remote peer silent for 5 s is asked; 3 unanswered asks close the connection
_EVENTS = {}


def _event_loop() -> None:
    """libvirt's default event loop in a thread (once per process): what keepalive needs, so that a
    remote connection that stops answering fails instead of blocking a call for ever."""
    import threading  # pylint: disable=import-outside-toplevel  # remote URIs only

    if 'thread' in _EVENTS:
        return
    libvirt.virEventRegisterDefaultImpl()

    def run():
        while True:
            libvirt.virEventRunDefaultImpl()

    _EVENTS['thread'] = threading.Thread(target=run, name='libvirt-events', daemon=True)
    _EVENTS['thread'].start()


def version_text(number: int) -> str:
    """libvirt's version numbers (9000000) as people write them (9.0.0)."""
    return f'{number // 1000000}.{number // 1000 % 1000}.{number % 1000}'


def open_uri(uri: str):
    """``libvirt.open(uri)``. A remote URI that does not answer fails after CONNECT_TIMEOUT seconds
    with a message naming it (the transport alone may wait minutes), and a remote connection gets
    keepalive, so that a peer that stops answering later fails the call that waits for it."""
    scheme = urlsplit(uri).scheme
    if is_local_uri(uri) or scheme.startswith('test'):
        return libvirt.open(uri)
    if scheme.endswith('+libssh') and libvirt.getVersion() < LIBSSH_FIXED:
        raise KvmError(f'refusing {uri}: the qemu+libssh transport of libvirt {version_text(libvirt.getVersion())} '
                       'stalls on replies of a few KiB without an event loop and crashes the module with one; use '
                       'qemu+ssh:// (OpenSSH) or qemu+libssh2:// instead (docs/remote-hosts.md)')
    import threading  # pylint: disable=import-outside-toplevel  # remote URIs only

    _event_loop()
    outcome = {}

    def attempt():
        try:
            outcome['conn'] = libvirt.open(uri)
        except libvirt.libvirtError as err:
            outcome['error'] = err

    worker = threading.Thread(target=attempt, name='libvirt-connect', daemon=True)
    worker.start()
    worker.join(CONNECT_TIMEOUT)
    if worker.is_alive():
        raise KvmError(f'connecting to libvirt at {uri} failed: no answer within {CONNECT_TIMEOUT} s (is the host '
                       'reachable, and does libvirtd listen there?)')
    if 'error' in outcome:
        raise outcome['error']
    try:
        outcome['conn'].setKeepAlive(*KEEPALIVE)
    except libvirt.libvirtError:
        pass  # a transport without keepalive (a custom proxy): the connection works without it
    return outcome['conn']


@contextmanager
def connect(uri: str | None, what: str | None = None):
    """The one libvirt connection of a module run (a :class:`Connection`), closed on the way out;
    ``what`` names the host in a failure (default: libvirt at the URI)."""
    uri = resolve_uri(uri)
    with guard(f'connecting to {what or "libvirt at " + uri}'):
        conn = Connection(uri, open_uri(uri))
    try:
        yield conn
    finally:
        conn.close()


def wait_until(conn, deadline: float, check, interval: float = 1.0):
    """``check()`` until it returns something other than None, or None once ``deadline`` (a
    ``time.monotonic()`` value) passes. When the connection drops meanwhile (libvirtd restarted),
    it is reopened and the wait carries on; ``check`` must look objects up again each time."""
    import time  # pylint: disable=import-outside-toplevel

    while True:
        try:
            answer = check()
        except libvirt.libvirtError as err:
            if not isinstance(conn, Connection) or conn.alive():
                raise
            conn.reopen(deadline, err)
            continue
        if answer is not None:
            return answer
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def read_all(lookup, list_all, name, describe, missing_code: int) -> list:
    """The facts of one object by ``name`` (none when missing) or of every object from the bulk
    ``list_all()``, sorted by name; objects removed while they are read are left out."""
    if name is not None:
        try:
            handles = [lookup(name)]
        except libvirt.libvirtError as err:
            if not is_error(err, missing_code):
                raise
            handles = []
    else:
        handles = list_all()
    found = []
    for handle in handles:
        try:
            found.append(describe(handle))
        except libvirt.libvirtError as err:
            if not is_error(err, missing_code):
                raise  # else it was removed while we read: not there any more
    return sorted(found, key=lambda facts: facts['name'])


def xml_desc(handle, flags: int, what: str):
    """An object's XML with ``flags`` (INACTIVE, SECURE...), parsed. Drivers that do not know a
    flag (libvirt's test driver) answer without it: for an inactive object that is the same."""
    try:
        text = handle.XMLDesc(flags)
    except libvirt.libvirtError as err:
        if not is_error(err, libvirt.VIR_ERR_INVALID_ARG):
            raise
        text = handle.XMLDesc(0)
    return _xml.parse_xml(text, what)
