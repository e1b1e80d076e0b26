"""Usage: interrupt.py CASE CONFIG.json

A module run killed at any moment is finished by the next run (docs/architecture.md, "A killed
run is finished by the next"). For CASE, this driver runs the module itself (as Ansible does:
``python <module file> <args file>``, a process of its own whose pid it holds), once without
interruption to learn how long it takes and the end state, then for each of several moments in
that time: start again from the same state, SIGKILL the run at that moment (or, case ``restart``,
restart host B's libvirtd at that moment and let the run go on), run the module normally, and
check that it reached the end state with nothing left behind; then once more, which must change
nothing. The moments are drawn with a fixed seed, so a failure can be replayed.

Cases (CONFIG holds their paths and URIs):
  guests     kvm_guests converging 6 guests (overlays on a base image, cloud-init seeds), host A
  upload     kvm_volume uploading an image from a URL served on 127.0.0.1 (download, upload, clone)
  migration  kvm_migration of a running guest to host B with copy_storage: all
  restart    kvm_guests converging 6 guests on host B while B's libvirtd restarts

Prints one JSON report on stdout; exits 1 when a moment misbehaved (the report says how).
"""

import functools
import hashlib
import http.server
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

import libvirt

MOMENTS = 10
SEED = 21


def module_file(name: str) -> str:
    import importlib  # pylint: disable=import-outside-toplevel

    return importlib.import_module(f'ansible_collections.hypervisor.kvm.plugins.modules.{name}').__file__


def run(name: str, args: dict, kill_after=None, during=None, timeout: int = 600) -> dict:
    """One module run. ``kill_after`` seconds: SIGKILL it then. ``during``: (seconds, function) to
    call while it runs. Returns its result, or {'killed': True}."""
    with tempfile.NamedTemporaryFile('w', suffix='.json', delete=False) as handle:
        json.dump({'ANSIBLE_MODULE_ARGS': args}, handle)
    try:
        environment = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path[:1] + [os.environ.get('PYTHONPATH', '')]))
        process = subprocess.Popen([sys.executable, module_file(name), handle.name], env=environment,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if kill_after is not None:
            try:
                process.wait(kill_after)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait()
                return {'killed': True}
        hit = None
        if during is not None:
            delay, action = during
            try:
                process.wait(delay)
            except subprocess.TimeoutExpired:
                hit = True
                action()
        out, err = process.communicate(timeout=timeout)
        try:
            result = json.loads(out)
        except ValueError:
            result = {'failed': True, 'msg': f'not JSON (rc {process.returncode}): {out[-2000:]!r} {err[-2000:]!r}'}
        if during is not None:
            result['interrupted_while_running'] = bool(hit)
        return result
    finally:
        os.unlink(handle.name)


def open_uri(uri: str):
    return libvirt.open(uri)


# ---- case guests (and restart: the same on host B) -----------------------------------------------
def fleet_args(config: dict, uri: str) -> dict:
    return {
        'uri': uri,
        'pool': {'name': config['pool'], 'path': config['pool_path']},
        'networks': [], 'wait_for_ip': 0,
        'defaults': {'memory': '64MiB', 'networks': [], 'virt_type': 'qemu'},
        'guests': [{'name': f"{config['prefix']}g{index}", 'disk_size': '32MiB', 'graphics': 'none',
                    'base_image': {'path': config['base_image'], 'volume': f"{config['prefix']}base.qcow2"},
                    'cloud_init': {'user': 'tester', 'ssh_authorized_keys': [config['key']]}}
                   for index in range(6)],
    }


def fleet_reset(uri: str, config: dict) -> None:
    """Remove the guests and every volume of the case's pool (a fresh converge each time)."""
    conn = open_uri(uri)
    try:
        for domain in conn.listAllDomains():
            if domain.name().startswith(config['prefix']):
                if domain.isActive():
                    domain.destroy()
                domain.undefine()
        for pool in conn.listAllStoragePools():
            if pool.name() == config['pool']:
                if not pool.isActive():
                    pool.create()
                refresh(pool)
                for volume in pool.listAllVolumes():
                    volume.delete(0)
    finally:
        conn.close()


def refresh(pool) -> None:
    """A refresh, waiting while libvirtd still ends a killed client's upload ("asynchronous jobs
    running"), as the modules do (_libvirt.refresh_pool)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            pool.refresh(0)
            return
        except libvirt.libvirtError as err:
            if 'asynchronous jobs running' not in str(err) or time.monotonic() > deadline:
                raise
        time.sleep(0.25)


def fleet_state(uri: str, config: dict, pool_dir=None) -> dict:
    """The guests (state, disks), the pool's volumes and, on this machine, its files."""
    conn = open_uri(uri)
    try:
        state = {}
        for domain in conn.listAllDomains():
            if domain.name().startswith(config['prefix']):
                state[f'domain {domain.name()}'] = domain.state()[0]
        for pool in conn.listAllStoragePools():
            if pool.name() == config['pool'] and pool.isActive():
                refresh(pool)
                for volume in pool.listAllVolumes():
                    info = volume.info()
                    state[f'volume {volume.name()}'] = info[1]  # capacity
        if pool_dir is not None and os.path.isdir(pool_dir):
            state['files'] = sorted(os.listdir(pool_dir))
        return state
    finally:
        conn.close()


# ---- case upload -----------------------------------------------------------------------------------
class Server:
    """The image over HTTP on 127.0.0.1 (a port of its own), while the case runs."""

    def __init__(self, directory: str):
        quiet = type('Quiet', (http.server.SimpleHTTPRequestHandler,), {'log_message': lambda *args: None})
        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(quiet, directory=directory))
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


# ---- the cases -------------------------------------------------------------------------------------
def case_fleet(config: dict, uri: str, restart=None) -> dict:
    args = fleet_args(config, uri)
    pool_dir = config['pool_path'] if uri == 'qemu:///system' else None
    fleet_reset(uri, config)
    start = time.monotonic()
    clean = run('kvm_guests', args)
    seconds = time.monotonic() - start
    assert not clean.get('failed') and clean.get('changed'), clean.get('msg')
    final = fleet_state(uri, config, pool_dir)

    def restarted(at):
        # a run can end sooner than the clean one did (the machine was busier then): when it ended
        # before the moment came, nothing was interrupted; start again with the moment earlier
        for _attempt in range(4):
            outcome = run('kvm_guests', args, during=(at, restart))
            if outcome.get('interrupted_while_running'):
                break
            fleet_reset(uri, config)
            at /= 2
        return outcome

    return moments(config, seconds, final,
                   reset=lambda: fleet_reset(uri, config),
                   interrupted=lambda at: run('kvm_guests', args, kill_after=at) if restart is None
                   else restarted(at),
                   again=lambda: run('kvm_guests', args),
                   state=lambda: fleet_state(uri, config, pool_dir),
                   count=config.get('restart_moments', MOMENTS) if restart else MOMENTS)


def case_upload(config: dict) -> dict:
    server = Server(os.path.dirname(config['image']))
    url = f"http://127.0.0.1:{server.port}/{os.path.basename(config['image'])}"
    wanted = sha256(config['image'])
    args = {'uri': 'qemu:///system', 'pool': config['pool'], 'name': f"{config['prefix']}upload.qcow2",
            'upload_from': url, 'checksum': f'sha256:{wanted}', 'cache_dir': config['cache_dir']}

    def reset():
        fleet_reset('qemu:///system', config)
        for name in os.listdir(config['cache_dir']) if os.path.isdir(config['cache_dir']) else []:
            os.unlink(os.path.join(config['cache_dir'], name))

    def state():
        found = fleet_state('qemu:///system', config, config['pool_path'])
        path = os.path.join(config['pool_path'], args['name'])
        found['content'] = sha256(path) if os.path.exists(path) else None
        found['cache'] = sorted(os.listdir(config['cache_dir'])) if os.path.isdir(config['cache_dir']) else []
        return found

    try:
        reset()
        start = time.monotonic()
        clean = run('kvm_volume', args)
        seconds = time.monotonic() - start
        assert not clean.get('failed') and clean.get('changed'), clean.get('msg')
        final = state()
        assert final['content'] is not None
        return moments(config, seconds, final, reset=reset,
                       interrupted=lambda at: run('kvm_volume', args, kill_after=at),
                       again=lambda: run('kvm_volume', args), state=state)
    finally:
        server.close()
        reset()  # nothing of this case is left for the next (the restart case's pool shares the directory)


def case_migration(config: dict) -> dict:
    a_uri, b_uri = 'qemu:///system', config['b_uri']
    guest = f"{config['prefix']}mig"
    args = {'uri': a_uri, 'name': guest, 'dest_uri': b_uri, 'copy_storage': 'all', 'bandwidth': 4}

    def reset():
        for uri in (b_uri, a_uri):
            conn = open_uri(uri)
            try:
                for domain in conn.listAllDomains():
                    if domain.name() == guest:
                        if domain.isActive():
                            domain.destroy()
                        if domain.isPersistent():
                            domain.undefine()
                pool = conn.storagePoolLookupByName(config['mig_pool'])
                refresh(pool)
                for volume in pool.listAllVolumes():
                    if uri == b_uri or volume.name() != f'{guest}.qcow2':
                        volume.delete(0)
            finally:
                conn.close()
        conn = open_uri(a_uri)
        try:
            domain = conn.defineXML(config['mig_xml'])  # defined and started here, not by a module
            domain.create()
        finally:
            conn.close()

    def state():
        found = {}
        for label, uri in (('A', a_uri), ('B', b_uri)):
            conn = open_uri(uri)
            try:
                for domain in conn.listAllDomains():
                    if domain.name() == guest:
                        found[f'{label} domain'] = (domain.state()[0], bool(domain.isPersistent()))
                pool = conn.storagePoolLookupByName(config['mig_pool'])
                refresh(pool)
                found[f'{label} volumes'] = sorted(volume.name() for volume in pool.listAllVolumes())
            finally:
                conn.close()
        return found

    reset()
    start = time.monotonic()
    clean = run('kvm_migration', args)
    seconds = time.monotonic() - start
    assert not clean.get('failed') and clean.get('changed'), clean.get('msg')
    final = state()
    return moments(config, seconds, final, reset=reset,
                   interrupted=lambda at: run('kvm_migration', args, kill_after=at),
                   again=lambda: run('kvm_migration', args), state=state)


def moments(config, seconds, final, reset, interrupted, again, state, count=MOMENTS) -> dict:
    """Each moment: reset, the interrupted run, then a normal run (the end state, nothing left
    behind) and one more (a no-op)."""
    draw = random.Random(SEED)
    report = {'clean_seconds': round(seconds, 2), 'moments': [], 'problems': []}
    for index in range(count):
        # spread over the run: one moment in each slice of it, at a random place in the slice
        at = seconds * (index + draw.random()) / count
        reset()
        outcome = interrupted(at)
        left = state()
        second = again()
        reached = state()
        third = again()
        entry = {'at': round(at, 2), 'killed': bool(outcome.get('killed')),
                 'restarted_while_running': outcome.get('interrupted_while_running'),
                 'interrupted_result': None if outcome.get('killed') else
                 {'failed': bool(outcome.get('failed')), 'changed': outcome.get('changed'),
                  'msg': (outcome.get('msg') or '')[:300]},
                 'left': sorted(key for key in set(left) | set(final) if left.get(key) != final.get(key)),
                 'next_run': {'failed': bool(second.get('failed')), 'changed': second.get('changed'),
                              'actions': second.get('actions'), 'msg': (second.get('msg') or '')[:300]},
                 'then': {'failed': bool(third.get('failed')), 'changed': third.get('changed')}}
        report['moments'].append(entry)
        where = f'moment {index} ({entry["at"]} s)'
        if 'exception' in outcome:
            report['problems'].append(f"{where}: the interrupted run ended in a traceback: {outcome['msg']}")
        if second.get('failed'):
            report['problems'].append(f"{where}: the next run failed: {second.get('msg')}")
        elif reached != final:
            differs = {key: (reached.get(key), final.get(key)) for key in set(reached) | set(final)
                       if reached.get(key) != final.get(key)}
            report['problems'].append(f'{where}: the next run did not reach the end state: {differs}')
        if third.get('failed') or third.get('changed'):
            report['problems'].append(f"{where}: the run after it was not a no-op: {third.get('actions')} "
                                      f"{third.get('msg', '')}")
    return report


def main() -> int:
    case, config_path = sys.argv[1], sys.argv[2]
    with open(config_path, encoding='utf-8') as handle:
        config = json.load(handle)
    sys.path.insert(0, config['collections_root'])
    if case == 'guests':
        report = case_fleet(config, 'qemu:///system')
    elif case == 'upload':
        report = case_upload(config)
    elif case == 'migration':
        report = case_migration(config)
    elif case == 'restart':
        report = case_fleet(config, config['b_uri'], restart=lambda: subprocess.run(
            [config['restart_script'], config['second_host'], config['b_uri']], check=True,
            stdout=subprocess.DEVNULL))
    else:
        raise SystemExit(f'unknown case {case}')
    report['case'] = case
    print(json.dumps(report))
    return 1 if report['problems'] else 0


if __name__ == '__main__':
    sys.exit(main())
