"""The fault tier (issue 21, part 2): libvirt fails at every call of a representative run of each
module, once per call, and the module must report it honestly.

A proxy around the module's libvirt connection (and every object it hands out: domains, networks,
pools, volumes, snapshots, streams) counts the libvirt calls of a run. For each N from 1 to the
number of calls a fault-free run makes, the run starts again from the same state with the Nth call
failing, in two ways:

- ``error``: that call raises a libvirtError with a realistic code (VIR_ERR_OPERATION_FAILED);
- ``drop``: that call and every later one on this connection raise what a lost connection raises
  (VIR_ERR_SYSTEM_ERROR from the RPC layer, "Cannot recv data"); a reconnect gets a working one.

For each injected fault:

- no traceback: the failure is a report (``exception`` only comes with a defect);
- ``failed`` is true;
- ``changed`` is true exactly when ``actions_done`` is not empty (kvm_guests: exactly when libvirt
  holds something other than before the run);
- ``actions_done`` matches what libvirt now holds: empty exactly when libvirt holds what it held
  before the run (an action whose call failed may still have taken effect when the connection
  dropped after the daemon did it: then the next run finds it done);
- a run without the fault then reaches the fault-free run's final state (nothing leaked: every
  pool's volumes are part of the state), and the run after it changes nothing.

The tier prints how many faults it injected per run and how many behaved; all must. A migration
is not part of it: libvirt's test driver cannot migrate.
"""

import functools
import os
import re
import shutil
import subprocess

import libvirt
import pytest

from ansible_collections.hypervisor.kvm.plugins.module_utils import _libvirt
from ansible_collections.hypervisor.kvm.plugins.modules import (
    kvm_domain,
    kvm_guests,
    kvm_network,
    kvm_pool,
    kvm_snapshot,
    kvm_volume,
)

URI = 'test:///default'
POOL = 'default-pool'
KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl user@host'
LIBVIRT_TYPES = tuple(getattr(libvirt, name) for name in (
    'virConnect', 'virDomain', 'virNetwork', 'virStoragePool', 'virStorageVol', 'virDomainSnapshot', 'virStream'))
NOT_COUNTED = {'close', 'ref'}


# ---- the fault ------------------------------------------------------------------------------------
class Faults:
    """The calls of one module run, and the fault to inject (``at``: the call number, ``kind``)."""

    def __init__(self, at=None, kind='error'):
        self.at, self.kind, self.calls, self.injected = at, kind, 0, None

    def fail(self, family, method):
        if family.get('dropped'):
            raise self.error(libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_RPC,
                             f'Cannot recv data: Connection reset by peer (injected, {method})')
        self.calls += 1
        if self.at is None or self.calls != self.at:
            return
        self.injected = method
        if self.kind == 'drop':
            family['dropped'] = True
            raise self.error(libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_RPC,
                             f'Cannot recv data: Connection reset by peer (injected, {method})')
        raise self.error(libvirt.VIR_ERR_OPERATION_FAILED, libvirt.VIR_FROM_NONE,
                         f'operation failed: injected fault in {method}')

    @staticmethod
    def error(code, domain, message):
        err = libvirt.libvirtError(message)
        err.err = (code, domain, message, libvirt.VIR_ERR_ERROR, None, None, None, 0, 0)
        return err


class Proxy:
    """A libvirt object whose method calls go through :meth:`Faults.fail` first; what they return
    is wrapped the same way (lists too), and proxies passed back in are unwrapped."""

    def __init__(self, target, faults, family):
        object.__setattr__(self, '_target', target)
        object.__setattr__(self, '_faults', faults)
        object.__setattr__(self, '_family', family)

    def __getattr__(self, name):
        value = getattr(self._target, name)
        if not callable(value) or name.startswith('_') or name in NOT_COUNTED:
            return value

        @functools.wraps(value)
        def call(*args, **kwargs):
            self._faults.fail(self._family, f'{type(self._target).__name__}.{name}')
            args = [arg._target if isinstance(arg, Proxy) else arg for arg in args]
            return self.wrap(value(*args, **kwargs))
        return call

    def wrap(self, value):
        if isinstance(value, LIBVIRT_TYPES):
            return Proxy(value, self._faults, self._family)
        if isinstance(value, list) and value and isinstance(value[0], LIBVIRT_TYPES):
            return [Proxy(item, self._faults, self._family) for item in value]
        return value


@pytest.fixture
def faulty(monkeypatch):
    """``faulty(faults)``: module runs from now on open their connection through ``faults``."""
    real_open = _libvirt.open_uri

    def install(faults):
        monkeypatch.setattr(_libvirt, 'open_uri', lambda uri: Proxy(real_open(uri), faults, {}))
        return faults
    return install


# ---- what libvirt holds ---------------------------------------------------------------------------
# what differs between two objects made alike, or moves by itself (a file's allocation and times,
# a pool's free space)
VOLATILE = re.compile(r"<uuid>[^<]*</uuid>|<mac address='[^']*'/>|<creationTime>[^<]*</creationTime>"
                      r"|<allocation[^>]*>[^<]*</allocation>|<available[^>]*>[^<]*</available>"
                      r"|<timestamps>.*?</timestamps>|<physical[^>]*>[^<]*</physical>", re.DOTALL)
POOL_SIZE = re.compile(r"<capacity[^>]*>[^<]*</capacity>")


def xml_of(handle, flags=None):
    """The definition, without what differs between two objects made alike (UUIDs, generated MACs)."""
    if flags is None:
        flags = libvirt.VIR_DOMAIN_XML_INACTIVE if isinstance(handle, libvirt.virDomain) else 0
    return VOLATILE.sub('', handle.XMLDesc(flags))


def observe(conn, prefix: str = '') -> dict:
    """Everything the runs below can change (on a shared daemon: the objects named ``prefix``...),
    but what differs between two objects made alike."""
    state = {}
    for pool in conn.listAllStoragePools():
        mine = pool.name().startswith(prefix)
        if mine:
            state[f'pool {pool.name()}'] = (pool.isActive(), pool.autostart(), POOL_SIZE.sub('', xml_of(pool)))
        if pool.isActive():
            if mine:
                pool.refresh(0)  # libvirt's own probe of the files as they are now (a seed's format: iso)
            for volume in pool.listAllVolumes():
                if mine or volume.name().startswith(prefix):
                    state[f'volume {pool.name()}/{volume.name()}'] = xml_of(volume)
    for network in conn.listAllNetworks():
        if network.name().startswith(prefix):
            state[f'network {network.name()}'] = (network.isActive(), network.autostart(), xml_of(network))
    for domain in conn.listAllDomains():
        if not domain.name().startswith(prefix):
            continue
        state[f'domain {domain.name()}'] = (domain.state()[0], domain.autostart(), xml_of(domain),
                                            domain.info()[2])
        snapshots = sorted(snap.getName() for snap in domain.listAllSnapshots())
        current = domain.snapshotCurrent().getName() if domain.hasCurrentSnapshot() else None
        state[f'snapshots {domain.name()}'] = (snapshots, current)
    return state


# ---- the representative runs --------------------------------------------------------------------
def pool_args(**extra):
    return {'uri': URI, 'name': 'kvmtest-flt-pool', 'type': 'dir',
            'target': {'path': '/var/tmp/kvmtest-flt-pool'}, 'state': 'active', 'autostart': True, **extra}


NETWORK = {'uri': URI, 'name': 'kvmtest-flt-net', 'forward': 'nat', 'bridge': 'kvmtflt0', 'state': 'active',
           'autostart': True, 'ipv4': {'address': '10.199.7.1', 'prefix': 24,
                                       'dhcp': {'ranges': [{'start': '10.199.7.100', 'end': '10.199.7.199'}]}}}
NETWORK_LIVE = dict(NETWORK, ipv4={'address': '10.199.7.1', 'prefix': 24, 'dhcp': {
    'ranges': [{'start': '10.199.7.100', 'end': '10.199.7.199'}],
    'hosts': [{'mac': '52:54:00:07:00:01', 'ip': '10.199.7.11', 'name': 'kvmtest-h1'}]}})
DOMAIN = {'uri': URI, 'name': 'kvmtest-flt-dom', 'memory': '128MiB', 'vcpus': 1, 'virt_type': 'qemu',
          'state': 'running', 'autostart': True, 'interfaces': [{'network': 'default'}]}
DOMAIN_LIVE = dict(DOMAIN, memory='96MiB', max_memory='128MiB', live=True)


def base_volume(run_module):
    run_module(kvm_volume.main, {'uri': URI, 'pool': POOL, 'name': 'kvmtest-flt-base.qcow2', 'capacity': '16MiB',
                                 'format': 'qcow2'})


def snapshot_args(state, **extra):
    return {'uri': URI, 'domain': 'kvmtest-flt-dom', 'name': 'kvmtest-flt-snap', 'state': state, **extra}


def make_domain(run_module):
    run_module(kvm_domain.main, dict(DOMAIN, autostart=None, interfaces=None,
                                     disks=[{'volume': 'kvmtest-flt-base.qcow2', 'pool': POOL}]))


def fleet_args():
    return {'uri': URI, 'pool': {'name': 'kvmtest-flt-fleet', 'path': '/var/tmp/kvmtest-flt-fleet'},
            'networks': [dict((k, v) for k, v in NETWORK.items() if k != 'uri')],
            'defaults': {'memory': '64MiB', 'networks': ['kvmtest-flt-net']}, 'wait_for_ip': 0,
            'guests': [{'name': f'kvmtest-flt-g{index}', 'disk_size': '16MiB', 'virt_type': 'qemu'}
                       for index in range(3)]}


# On libvirt's test driver: (id, module main, its arguments, the setup of the state it starts from)
RUNS = [
    ('pool defined, built, started, autostarted', kvm_pool.main, pool_args(), None),
    ('network defined, started, autostarted', kvm_network.main, NETWORK, None),
    ('network changed live', kvm_network.main, NETWORK_LIVE,
     lambda run: run(kvm_network.main, NETWORK)),
    ('volume overlay', kvm_volume.main,
     {'uri': URI, 'pool': POOL, 'name': 'kvmtest-flt-over.qcow2', 'backing_volume': 'kvmtest-flt-base.qcow2'},
     base_volume),
    ('domain defined, started, autostarted', kvm_domain.main, DOMAIN, None),
    ('domain changed live', kvm_domain.main, DOMAIN_LIVE,
     lambda run: run(kvm_domain.main, dict(DOMAIN_LIVE, live=False, state='present'))
     and run(kvm_domain.main, DOMAIN)),
    ('kvm_guests, 3 guests started', kvm_guests.main, fleet_args(), None),
    ('snapshot taken', kvm_snapshot.main, snapshot_args('present', description='before'),
     lambda run: base_volume(run) or make_domain(run)),
    ('snapshot reverted', kvm_snapshot.main, snapshot_args('current'),
     lambda run: base_volume(run) or make_domain(run) or run(kvm_snapshot.main, snapshot_args('present'))
     and run(kvm_snapshot.main, dict(snapshot_args('present'), name='kvmtest-flt-later'))),
    ('snapshot deleted', kvm_snapshot.main, snapshot_args('absent'),
     lambda run: base_volume(run) or make_domain(run) or run(kvm_snapshot.main, snapshot_args('present'))),
]

# On the real daemon (qemu:///system, objects named kvmtest-flt*): what the test driver cannot do,
# writing a cloud-init seed into a volume (it has no volume upload). The guests stay shut off.
SYSTEM = 'qemu:///system'
SYSTEM_POOL = {'name': 'kvmtest-flt-sys', 'path': '/var/tmp/kvmtest-flt-sys'}
SOURCE_IMAGE = '/var/tmp/kvmtest-flt-src/image.qcow2'


def system_pool(run):
    run(kvm_pool.main, {'uri': SYSTEM, 'name': SYSTEM_POOL['name'], 'type': 'dir',
                        'target': {'path': SYSTEM_POOL['path']}, 'state': 'active'})


SYSTEM_RUNS = [
    ('volume cloud-init seed', kvm_volume.main,
     {'uri': SYSTEM, 'pool': SYSTEM_POOL['name'], 'name': 'kvmtest-flt-seed.iso',
      'cloud_init': {'user_data': {'users': [{'name': 'tester', 'ssh_authorized_keys': [KEY]}]}}},
     system_pool),
    ('volume uploaded from a file', kvm_volume.main,
     {'uri': SYSTEM, 'pool': SYSTEM_POOL['name'], 'name': 'kvmtest-flt-up.qcow2', 'upload_from': SOURCE_IMAGE},
     lambda run: system_pool(run) or source_image()),
    ('volume uploaded and converted to raw', kvm_volume.main,
     {'uri': SYSTEM, 'pool': SYSTEM_POOL['name'], 'name': 'kvmtest-flt-up.raw', 'upload_from': SOURCE_IMAGE,
      'format': 'raw', 'capacity': '24MiB'},
     lambda run: system_pool(run) or source_image()),
    ('kvm_guests, 3 guests with disks and seeds', kvm_guests.main,
     {'uri': SYSTEM, 'pool': SYSTEM_POOL, 'networks': [], 'wait_for_ip': 0,
      'defaults': {'memory': '64MiB', 'networks': [], 'virt_type': 'qemu'},
      'guests': [{'name': f'kvmtest-flt-sys{index}', 'disk_size': '16MiB', 'state': 'shutdown',
                  'cloud_init': {'user': 'tester', 'ssh_authorized_keys': [KEY]}} for index in range(3)]},
     None),
]


def source_image():
    """A small qcow2 image (16 MiB, some data) to upload, made once."""
    if not os.path.exists(SOURCE_IMAGE):
        os.makedirs(os.path.dirname(SOURCE_IMAGE), exist_ok=True)
        raw = SOURCE_IMAGE + '.raw'
        with open(raw, 'wb') as image:
            image.write(b'\x5a' * 1024 * 1024)
            image.truncate(16 * 1024 * 1024)
        subprocess.run(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', raw, SOURCE_IMAGE], check=True)
        os.unlink(raw)


def system_reset(conn):
    """Remove every kvmtest-flt* object of the real daemon (domains, the pool with its volumes)."""
    for domain in conn.listAllDomains():
        if domain.name().startswith('kvmtest-flt'):
            if domain.isActive():
                domain.destroy()
            domain.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
    for pool in conn.listAllStoragePools():
        if pool.name().startswith('kvmtest-flt'):
            if not pool.isActive():
                pool.create()
            for volume in pool.listAllVolumes():
                volume.delete(0)
            pool.destroy()
            pool.delete(0)
            pool.undefine()


@pytest.fixture
def system_conn():
    """A connection to the real daemon, or a skip where none answers (the unit tier alone)."""
    try:
        connection = libvirt.open(SYSTEM)
    except libvirt.libvirtError as err:
        pytest.skip(f'no libvirt daemon at {SYSTEM}: {err.get_error_message()}')
    system_reset(connection)
    yield connection
    system_reset(connection)
    shutil.rmtree(os.path.dirname(SOURCE_IMAGE), ignore_errors=True)
    connection.close()


def start_from(conn, reset, run_module, setup, prefix):
    reset(conn)
    if setup is not None:
        setup(run_module)
    return observe(conn, prefix)


@pytest.mark.parametrize('kind', ['error', 'drop'])
@pytest.mark.parametrize('label, main, args, setup', RUNS, ids=[run[0] for run in RUNS])
def test_every_libvirt_call_failing_is_reported_honestly(
        conn, reset_driver, run_module, faulty, label, main, args, setup, kind):
    injected(conn, reset_driver, run_module, faulty, label, main, args, setup, kind, '')


@pytest.mark.parametrize('kind', ['error', 'drop'])
@pytest.mark.parametrize('label, main, args, setup', SYSTEM_RUNS, ids=[run[0] for run in SYSTEM_RUNS])
def test_every_libvirt_call_failing_is_reported_honestly_on_the_daemon(
        system_conn, run_module, faulty, label, main, args, setup, kind):
    injected(system_conn, system_reset, run_module, faulty, label, main, args, setup, kind, 'kvmtest-flt')


def injected(conn, reset, run_module, faulty, label, main, args, setup, kind, prefix):
    """The fault-free run, then one run per call with that call failing (see the module's text)."""
    before = start_from(conn, reset, run_module, setup, prefix)
    counter = faulty(Faults())
    clean = run_module(main, args)
    assert not clean['failed'] and clean['changed'], clean.get('msg')
    calls, final = counter.calls, observe(conn, prefix)
    assert calls > 3

    problems = []
    for at in range(1, calls + 1):
        state = start_from(conn, reset, run_module, setup, prefix)
        assert state == before
        faults = faulty(Faults(at, kind))
        result = run_module(main, args)
        where = f'{label}, {kind} at call {at} ({faults.injected})'
        faulty(Faults())
        now = observe(conn, prefix)
        done = result.get('actions_done', [])
        if 'exception' in result:
            problems.append(f"{where}: a traceback: {result['msg']}")
        if faults.injected and not result['failed']:
            # a fault a run may survive: a failed read that is retried or not needed, or the removal
            # of a temporary upload after the volume was made (a warning; the next run removes it)
            differs = [key for key in set(now) | set(final) if now.get(key) != final.get(key)]
            leftover = all(key.endswith('.upload') for key in differs) and 'could not be deleted' in str(
                result.get('warnings'))
            if differs and not leftover:
                problems.append(f'{where}: reported success, but libvirt does not hold the end state ({differs})')
        elif faults.injected:
            if not result['msg']:
                problems.append(f'{where}: no message')
            if main is not kvm_guests.main and result['changed'] != bool(done):
                problems.append(f"{where}: changed {result['changed']} with actions_done {done}")
            # what the run reports done is what libvirt holds: nothing changed, or something did
            if result['changed'] != (now != before):
                differs = sorted(key for key in set(now) | set(before) if now.get(key) != before.get(key))
                problems.append(f"{where}: changed {result['changed']} (actions_done {done}), but libvirt "
                                f"{'changed: ' + str(differs) if now != before else 'holds what it held'}")
        again = run_module(main, args)
        if again['failed']:
            problems.append(f"{where}: the run after the fault failed: {again['msg']}")
        elif observe(conn, prefix) != final:
            now = observe(conn, prefix)
            differs = {key: (now.get(key), final.get(key)) for key in set(now) | set(final)
                       if now.get(key) != final.get(key)}
            problems.append(f'{where}: the run after the fault did not reach the fault-free end state ({differs})')
        third = run_module(main, args)
        if third['changed'] or third['failed']:
            problems.append(f"{where}: the next run was not a no-op: changed {third['changed']}, "
                            f"{third.get('actions')} {third.get('msg', '')}")
    behaved = calls - len({problem.split(':')[0] for problem in problems})
    print(f'\nfaults: {label}, {kind}: {calls} injected, {behaved} behaved')
    if os.environ.get('KVM_FAULTS_REPORT'):  # make test-unit sums these lines up after pytest
        with open(os.environ['KVM_FAULTS_REPORT'], 'a', encoding='utf-8') as report:
            report.write(f'{calls} {behaved} {label}, {kind}\n')
    assert not problems, '\n'.join(problems)
