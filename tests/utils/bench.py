# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""`make bench`: how fast the collection converges, as ratios measured in one run on this machine.

1. The anchor work: 1 dir pool, 2 NAT networks and 20 TCG guests defined, running and autostarted,
   all from the same XML templates, with this collection (3 tasks) and with community.libvirt
   (9 tasks: the peer, taken offline from the `ansible` package on PyPI, cached; its pool build
   runs only after a new definition, as it fails on an active pool). Converge from
   empty, a no-op re-run and a --check re-run, alternated between the two for ROUNDS rounds;
   medians. Beside them, the ping floors: ansible.builtin.ping in the same task shapes.
2. Per module: a no-op of kvm_pool, kvm_network, kvm_domain and kvm_domain_info on the anchor's
   objects (only the one guest they find left running), each a 20-item loop, beside a 20-item
   loop of ansible.builtin.ping, in one playbook run ROUNDS times without and ROUNDS times with
   --diff, alternated (ping's loop both before and after the modules'). A callback times each
   loop item inside the run, so ansible-playbook's own start-up is not in the figures; the cost
   above ping per module run is the median item time minus ping's median item time, over the
   ROUNDS x 20 items.
Every measured run waits until the machine is quiet (quiet(): guests just started spend seconds
in their firmware under TCG).
3. The kvm_guest role with 20 guests (an empty 64 MiB disk each, one NAT network, TCG, no
   waiting): converge and no-op, beside the QEMU start floor: the same 20 guests started with raw
   libvirt-python (only the starts timed; median of ROUNDS).
4. kvm_guests over 200 defined guests (a 1 MiB disk each, no seeds): a no-op.
5. kvm_domain_info's summary over 20, 200 and 500 defined domains (tests/utils/bench-domain-info.py).
6. The AnsiballZ payload of each module (bytes), as Ansible builds it.

Everything it creates is named kvmtest-bench-* (bridges kvmtbn*, subnets 10.240.1-4.0/24) and is
removed at the start and the end. The anchor guests have no kernel, no disk and no network boot
ROM (<rom enabled='no'/>): they start in about half a second and sit idle in their firmware. With
the ROM, 20 TCG guests PXE-booting took about a core of this 2-core machine during the measurements,
on both sides alike. Not part of `make test`.
Environment: BENCH_ROUNDS (default 3), BENCH_SKIP (words of: peer modules role fleet info payload).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.join(REPO, '.venv', 'bin')
PYTHON = os.path.join(VENV_BIN, 'python')
COLLECTIONS = os.path.join(REPO, '.tmp', 'collections')
CACHE = '/var/cache/hypervisor-kvm-tests/bench'
PEER_PACKAGE = 'ansible==14.5.0'  # bundles community.libvirt 2.3.0 (wheel for Python 3.12, pure Python)
PREFIX = 'kvmtest-bench-'
VIRSH = ['virsh', '-q', '-c', 'qemu:///system']
ROUNDS = int(os.environ.get('BENCH_ROUNDS', '3'))
LOOP = 20  # items per task in the per-module measurement
TARGET_MS = 45  # a no-op module run, above ping (issue 23)
SKIP = set(os.environ.get('BENCH_SKIP', '').split())
GUESTS = 20

POOL_XML = f"""<pool type='dir'><name>{PREFIX}pool</name><target><path>/var/tmp/{PREFIX}pool</path></target></pool>"""
NET_XML = """<network><name>{name}</name><forward mode='nat'/><bridge name='{bridge}'/>
<ip address='10.240.{n}.1' prefix='24'><dhcp><range start='10.240.{n}.100' end='10.240.{n}.199'/></dhcp></ip>
</network>"""
DOMAIN_XML = """<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='q35'>hvm</type></os><features><acpi/></features>
<devices><interface type='network'><source network='{net}'/><model type='virtio'/><rom enabled='no'/></interface>
<serial type='pty'/><console type='pty'/></devices></domain>"""


def log(message: str) -> None:
    print(f'bench: {message}', file=sys.stderr, flush=True)


# ---- the work, as playbooks ----------------------------------------------------------------------
def templates(workdir: str) -> dict:
    networks = [{'name': f'{PREFIX}net{n}', 'xml': NET_XML.format(name=f'{PREFIX}net{n}', bridge=f'kvmtbn{n}', n=n)}
                for n in (1, 2)]
    domains = [{'name': f'{PREFIX}{i:02d}', 'xml': DOMAIN_XML.format(name=f'{PREFIX}{i:02d}', net=f'{PREFIX}net1')}
               for i in range(GUESTS)]
    work = {'pool_xml': POOL_XML, 'pool_name': f'{PREFIX}pool', 'networks': networks, 'domains': domains}
    path = os.path.join(workdir, 'work.json')
    with open(path, 'w', encoding='utf-8') as out:
        json.dump(work, out)
    return work


OURS = """
- hosts: localhost
  gather_facts: false
  tasks:
    - hypervisor.kvm.kvm_pool: {xml: "{{ work.pool_xml }}", state: active, autostart: true}
    - hypervisor.kvm.kvm_network: {xml: "{{ item.xml }}", state: active, autostart: true}
      loop: "{{ work.networks }}"
    - hypervisor.kvm.kvm_domain: {xml: "{{ item.xml }}", state: running, autostart: true}
      loop: "{{ work.domains }}"
"""
PEER = """
- hosts: localhost
  gather_facts: false
  tasks:
    - community.libvirt.virt_pool: {command: define, name: "{{ work.pool_name }}", xml: "{{ work.pool_xml }}"}
      register: peer_pool
    - community.libvirt.virt_pool: {command: build, name: "{{ work.pool_name }}"}
      when: peer_pool is changed  # build fails on an active pool: only after a new definition
    - community.libvirt.virt_pool: {state: active, name: "{{ work.pool_name }}"}
    - community.libvirt.virt_pool: {autostart: true, name: "{{ work.pool_name }}"}
    - community.libvirt.virt_net: {command: define, name: "{{ item.name }}", xml: "{{ item.xml }}"}
      loop: "{{ work.networks }}"
    - community.libvirt.virt_net: {state: active, name: "{{ item.name }}"}
      loop: "{{ work.networks }}"
    - community.libvirt.virt_net: {autostart: true, name: "{{ item.name }}"}
      loop: "{{ work.networks }}"
    - community.libvirt.virt: {command: define, xml: "{{ item.xml }}", autostart: true}
      loop: "{{ work.domains }}"
    - community.libvirt.virt: {state: running, name: "{{ item.name }}"}
      loop: "{{ work.domains }}"
"""
# ansible.builtin.ping in the same task shapes: what Ansible itself costs for those module runs
OURS_PING = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.ping:
    - ansible.builtin.ping:
      loop: "{{ work.networks }}"
    - ansible.builtin.ping:
      loop: "{{ work.domains }}"
"""
PEER_PING = """
- hosts: localhost
  gather_facts: false
  tasks:
""" + ''.join(f"""    - ansible.builtin.ping:
      loop: "{{{{ {loop} }}}}"
""" for loop in ['[1]'] * 4 + ['work.networks'] * 3 + ['work.domains'] * 2)

ROLE = """
- hosts: localhost
  gather_facts: false
  roles:
    - role: hypervisor.kvm.kvm_guest
      vars:
        kvm_guest_pool: {name: kvmtest-bench-rpool, path: /var/tmp/kvmtest-bench-rpool}
        kvm_guest_networks:
          - name: kvmtest-bench-rnet
            forward: nat
            bridge: kvmtbn3
            ipv4: {address: 10.240.3.1, prefix: 24, dhcp: {ranges: [{start: 10.240.3.100, end: 10.240.3.199}]}}
        kvm_guest_default_networks: [kvmtest-bench-rnet]
        kvm_guest_virt_type: qemu
        kvm_guest_memory: 64MiB
        kvm_guest_wait_for_ip: 0
        kvm_guest_list: "{{ role_guests }}"
"""
FLEET = """
- hosts: localhost
  gather_facts: false
  tasks:
    - hypervisor.kvm.kvm_guests:
        pool: {name: default-bench, manage: false}
        networks: []
        guests: "{{ fleet }}"
        defaults: {memory: 64MiB, virt_type: qemu, networks: [kvmtest-bench-net1]}
        wait_for_ip: 0
"""


# Per module: one task per module, a LOOP-item loop of the same no-op; ping in the same shape
MODULE_TASKS = {
    'ansible.builtin.ping': '{}',
    'kvm_pool': '{xml: "{{ work.pool_xml }}", state: active, autostart: true}',
    'kvm_network': '{xml: "{{ work.networks[0].xml }}", state: active, autostart: true}',
    'kvm_domain': '{xml: "{{ work.domains[0].xml }}", state: running, autostart: true}',
    'kvm_domain_info': '{name: "{{ work.domains[0].name }}"}',
}
# Times each loop item: from the task's start, or the item before, to the item's result; into
# BENCH_TIMES as [task name, seconds] per item
TIMES_CALLBACK = """
import json, os, time
from ansible.plugins.callback import CallbackBase

class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'bench_times'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.times, self.current, self.last = [], None, None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.current, self.last = task.get_name(), time.monotonic()

    def v2_runner_item_on_ok(self, result):
        now = time.monotonic()
        self.times.append([self.current, now - self.last])
        self.last = now

    def v2_playbook_on_stats(self, stats):
        with open(os.environ['BENCH_TIMES'], 'w', encoding='utf-8') as out:
            json.dump(self.times, out)
"""


def quiet(limit: float = 0.15, longest: float = 60.0) -> None:
    """Wait (at most ``longest`` s) until the machine is quiet: less than ``limit`` of its CPU
    busy over one second. Guests just started spend seconds in their firmware under TCG, and a
    run measured meanwhile would pay for them."""
    def busy_idle():
        with open('/proc/stat', encoding='ascii') as stat:
            values = [int(value) for value in stat.readline().split()[1:]]
        return sum(values), values[3] + values[4]  # all, idle + iowait
    deadline = time.monotonic() + longest
    while time.monotonic() < deadline:
        total, idle = busy_idle()
        time.sleep(1)
        total2, idle2 = busy_idle()
        if total2 > total and 1 - (idle2 - idle) / (total2 - total) < limit:
            return
    log(f'the machine did not get quiet within {longest:.0f} s; measuring anyway')


def write(workdir: str, name: str, text: str) -> str:
    path = os.path.join(workdir, name)
    with open(path, 'w', encoding='utf-8') as out:
        out.write(text)
    return path


def playbook(path: str, extra: list = (), env_extra: dict | None = None) -> float:
    """Wall time of one ansible-playbook run against this machine; fails loudly."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_PYTHON_INTERPRETER=PYTHON,
               PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}", ANSIBLE_STDOUT_CALLBACK='ansible.builtin.minimal',
               ANSIBLE_DEPRECATION_WARNINGS='false', ANSIBLE_HOST_KEY_CHECKING='false')
    env.update(env_extra or {})
    start = time.monotonic()
    run = subprocess.run([os.path.join(VENV_BIN, 'ansible-playbook'), '-i', 'localhost,', '-c', 'local', path,
                          '-e', f'@{os.path.join(os.path.dirname(path), "vars.json")}', *extra],
                         env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    if run.returncode:
        raise SystemExit(f'bench: {path} failed ({run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}')
    return elapsed


# ---- the peer, offline -----------------------------------------------------------------------------
def peer_collection() -> bool:
    """community.libvirt from the `ansible` package on PyPI, into the collections path (cached)."""
    target = os.path.join(COLLECTIONS, 'ansible_collections', 'community', 'libvirt')
    if os.path.isfile(os.path.join(target, 'MANIFEST.json')):
        return True
    os.makedirs(CACHE, exist_ok=True)
    wheels = glob.glob(os.path.join(CACHE, 'ansible-*.whl'))
    if not wheels:
        log(f'downloading {PEER_PACKAGE} from PyPI (about 55 MB, once) for community.libvirt')
        download = subprocess.run([PYTHON, '-m', 'pip', 'download', '--no-deps', '--only-binary=:all:',
                                   '--python-version', '3.12', PEER_PACKAGE, '-d', CACHE],
                                  capture_output=True, text=True, check=False)
        wheels = glob.glob(os.path.join(CACHE, 'ansible-*.whl'))
        if download.returncode or not wheels:
            log(f'cannot get {PEER_PACKAGE}: {download.stderr.strip()[-300:]}; the peer is left out')
            return False
    with zipfile.ZipFile(wheels[0]) as wheel:
        members = [name for name in wheel.namelist() if name.startswith('ansible_collections/community/libvirt/')]
        wheel.extractall(COLLECTIONS, members)
    return True


# ---- libvirt, by hand (the bench measures the modules, it does not use them to clean) -------------
def virsh(*args) -> str:
    return subprocess.run([*VIRSH, *args], capture_output=True, text=True, check=False).stdout


def clean() -> None:
    for name in virsh('list', '--all', '--name').split():
        if name.startswith(PREFIX):
            virsh('destroy', name)
            virsh('undefine', name, '--managed-save', '--snapshots-metadata', '--nvram')
    for name in virsh('net-list', '--all', '--name').split():
        if name.startswith(PREFIX):
            virsh('net-destroy', name)
            virsh('net-undefine', name)
    for name in virsh('pool-list', '--all', '--name').split() + ['default-bench']:
        if name.startswith(PREFIX) or name == 'default-bench':
            virsh('pool-start', name)
            for line in virsh('vol-list', name).splitlines():
                if line.split():
                    virsh('vol-delete', '--pool', name, line.split()[0])
            virsh('pool-destroy', name)
            virsh('pool-undefine', name)
    for path in glob.glob(f'/var/tmp/{PREFIX}*'):
        shutil.rmtree(path, ignore_errors=True)


# ---- measurements ------------------------------------------------------------------------------------
def anchor(workdir: str, peer: bool) -> dict:
    sides = {'hypervisor.kvm': (write(workdir, 'ours.yml', OURS), write(workdir, 'ours_ping.yml', OURS_PING))}
    if peer:
        sides['community.libvirt'] = (write(workdir, 'peer.yml', PEER), write(workdir, 'peer_ping.yml', PEER_PING))
    times = {side: {'converge': [], 'noop': [], 'check': [], 'ping': []} for side in sides}
    for round_number in range(ROUNDS):
        order = list(sides) if round_number % 2 == 0 else list(reversed(sides))
        for side in order:
            work, ping = sides[side]
            clean()
            log(f'round {round_number + 1}/{ROUNDS}: {side}')
            times[side]['converge'].append(playbook(work))
            quiet()
            times[side]['noop'].append(playbook(work))
            quiet()
            times[side]['check'].append(playbook(work, ['--check']))
            quiet()
            times[side]['ping'].append(playbook(ping))
    clean()
    return {side: {key: statistics.median(values) for key, values in runs.items()} for side, runs in times.items()}


def modules(workdir: str, work: dict) -> dict:
    """The cost above ping of one no-op run of each module in MODULE_TASKS, in ms, without and
    with --diff: medians over ROUNDS tasks of LOOP items each, each item timed inside one playbook
    run."""
    plugins = os.path.join(workdir, 'callback_plugins')
    os.makedirs(plugins, exist_ok=True)
    write(plugins, 'bench_times.py', TIMES_CALLBACK)
    # ping before and after the modules (its items pooled), so that neither end of the run is ping's alone
    order = list(MODULE_TASKS.items()) + [('ansible.builtin.ping', MODULE_TASKS['ansible.builtin.ping'])]
    tasks = ''.join(f"""    - name: {module}
      {module if '.' in module else 'hypervisor.kvm.' + module}: {args}
      loop: "{{{{ range({LOOP}) | list }}}}"
""" for module, args in order)
    path = write(workdir, 'modules.yml', f'- hosts: localhost\n  gather_facts: false\n  tasks:\n{tasks}')
    clean()
    playbook(write(workdir, 'ours.yml', OURS))  # the objects the no-ops find
    for domain in work['domains'][1:]:  # a quiet machine: only the guest the no-ops find runs
        virsh('destroy', domain['name'])
    times_file = os.path.join(workdir, 'times.json')
    modes = {'plain': [], 'diff': ['--diff']}
    times = {mode: {module: [] for module in MODULE_TASKS} for mode in modes}
    for round_number in range(ROUNDS):
        for mode in (list(modes) if round_number % 2 == 0 else list(reversed(modes))):
            log(f'per module, round {round_number + 1}/{ROUNDS}: {LOOP}-item loops, '
                f'{"with" if modes[mode] else "without"} --diff')
            quiet()
            timing = {'ANSIBLE_CALLBACK_PLUGINS': plugins, 'ANSIBLE_CALLBACKS_ENABLED': 'bench_times',
                      'BENCH_TIMES': times_file}
            playbook(path, modes[mode], env_extra=timing)
            with open(times_file, encoding='utf-8') as source:
                for name, seconds in json.load(source):
                    times[mode][name].append(seconds)
    costs = {}
    for mode, runs in times.items():
        medians = {module: statistics.median(seconds) for module, seconds in runs.items()}
        ping = medians.pop('ansible.builtin.ping')
        costs[mode] = {module: 1000 * (seconds - ping) for module, seconds in medians.items()}
        costs[mode]['ping_ms'] = 1000 * ping
    clean()
    return costs


# The QEMU start-up floor: the role's 20 guests (64 MiB, a 64 MiB qcow2 disk, one NAT network, TCG)
# started with raw libvirt-python; only the starts are timed
FLOOR = """
import sys, time, libvirt
prefix, count = sys.argv[1], int(sys.argv[2])
conn = libvirt.open('qemu:///system')
pool = conn.storagePoolDefineXML(
    f"<pool type='dir'><name>{prefix}floor</name><target><path>/var/tmp/{prefix}floor</path></target></pool>")
pool.build(0)
pool.create(0)
conn.networkCreateXML(f"<network><name>{prefix}floornet</name><forward mode='nat'/><bridge name='kvmtbn4'/>"
                      "<ip address='10.240.4.1' prefix='24'/></network>")
domains = []
for index in range(count):
    name = f'{prefix}floor{index:02d}'
    volume = pool.createXML(f"<volume><name>{name}.qcow2</name><capacity unit='MiB'>64</capacity>"
                            "<target><format type='qcow2'/></target></volume>", 0)
    domains.append(conn.defineXML(
        f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
        "<os><type arch='x86_64' machine='q35'>hvm</type></os><features><acpi/></features><devices>"
        f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{volume.path()}'/>"
        "<target dev='vda' bus='virtio'/></disk>"
        f"<interface type='network'><source network='{prefix}floornet'/><model type='virtio'/></interface>"
        "<serial type='pty'/><console type='pty'/></devices></domain>"))
start = time.monotonic()
for domain in domains:
    domain.create()
print(time.monotonic() - start)
"""


def qemu_floor(workdir: str) -> float:
    """Seconds that raw libvirt-python takes to start the role's guests (median of the rounds)."""
    script = write(workdir, 'floor.py', FLOOR)
    floors = []
    for _round in range(ROUNDS):
        clean()
        run = subprocess.run([PYTHON, script, PREFIX, str(GUESTS)], capture_output=True, text=True, check=False)
        if run.returncode:
            raise SystemExit(f'bench: the QEMU start floor failed:\n{run.stderr[-3000:]}')
        floors.append(float(run.stdout.split()[-1]))
    clean()
    return statistics.median(floors)


def role(workdir: str) -> dict:
    path = write(workdir, 'role.yml', ROLE)
    floor = qemu_floor(workdir)
    clean()
    converge = playbook(path)
    noops = [playbook(path) for _round in range(ROUNDS)]
    clean()
    return {'converge': converge, 'noop': statistics.median(noops), 'floor': floor}


def domain_info_scale() -> str:
    """kvm_domain_info's summary over 20, 200 and 500 defined domains (tests/utils/bench-domain-info.py)."""
    run = subprocess.run([PYTHON, os.path.join(REPO, 'tests', 'utils', 'bench-domain-info.py'),
                          '--sizes', '20,200,500', '--repeats', str(max(ROUNDS, 3))],
                         capture_output=True, text=True, check=False)
    if run.returncode:
        raise SystemExit(f'bench: bench-domain-info.py failed:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}')
    return run.stdout.strip()


def fleet(workdir: str, count: int = 200) -> dict:
    clean()
    os.makedirs(f'/var/tmp/{PREFIX}fleet', exist_ok=True)
    virsh('pool-define-as', 'default-bench', 'dir', '--target', f'/var/tmp/{PREFIX}fleet')
    virsh('pool-start', 'default-bench')
    virsh('net-define', write(workdir, 'net1.xml', NET_XML.format(name=f'{PREFIX}net1', bridge='kvmtbn1', n=1)))
    guests = [{'name': f'{PREFIX}f{i:03d}', 'disk_size': '1MiB', 'state': 'shutdown'} for i in range(count)]
    with open(os.path.join(workdir, 'vars.json'), encoding='utf-8') as source:
        variables = json.load(source)
    variables['fleet'] = guests
    with open(os.path.join(workdir, 'vars.json'), 'w', encoding='utf-8') as out:
        json.dump(variables, out)
    path = write(workdir, 'fleet.yml', FLEET)
    converge = playbook(path)
    noops = [playbook(path) for _round in range(ROUNDS)]
    clean()
    return {'count': count, 'converge': converge, 'noop': statistics.median(noops)}


def payloads(workdir: str) -> dict:
    """The AnsiballZ file of each module, as Ansible wrote it for a run (kept with
    ANSIBLE_KEEP_REMOTE_FILES)."""
    modules = {'ansible.builtin.ping': '{}', 'hypervisor.kvm.kvm_pool_info': '{name: nosuch}',
               'hypervisor.kvm.kvm_pool': '{name: nosuch, state: absent}',
               'hypervisor.kvm.kvm_network': '{name: nosuch, state: absent}',
               'hypervisor.kvm.kvm_volume': '{name: nosuch, pool: nosuch, state: absent}',
               'hypervisor.kvm.kvm_domain': '{name: nosuch, state: absent}',
               'hypervisor.kvm.kvm_domain_info': '{name: nosuch}',
               'hypervisor.kvm.kvm_guests': '{guests: []}',
               'hypervisor.kvm.kvm_snapshot': '{domain: nosuch, name: x, state: absent}',
               'hypervisor.kvm.kvm_migration': None}
    tasks = ''.join(f'    - {name}: {args}\n      ignore_errors: true\n'
                    for name, args in modules.items() if args is not None)
    path = write(workdir, 'payload.yml', f'- hosts: localhost\n  gather_facts: false\n  tasks:\n{tasks}')
    remote = tempfile.mkdtemp(prefix=f'{PREFIX}payload-', dir='/var/tmp')
    playbook(path, env_extra={'ANSIBLE_KEEP_REMOTE_FILES': '1', 'ANSIBLE_REMOTE_TMP': remote})
    sizes = {}
    for file in glob.glob(os.path.join(remote, '*', 'AnsiballZ_*.py')):
        sizes[os.path.basename(file)[len('AnsiballZ_'):-3]] = os.path.getsize(file)
    shutil.rmtree(remote, ignore_errors=True)
    return sizes


def link_collection() -> None:
    """ansible_collections/hypervisor/kvm -> this repository (as tests/utils/common.sh does)."""
    link = os.path.join(COLLECTIONS, 'ansible_collections', 'hypervisor', 'kvm')
    if os.path.realpath(link) != os.path.realpath(REPO):
        if os.path.lexists(link):
            os.unlink(link)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(REPO, link)


def main() -> None:
    link_collection()
    workdir = tempfile.mkdtemp(prefix='kvmtest-benchwork-', dir='/var/tmp')  # clean() keeps it (not PREFIX*)
    try:
        work = templates(workdir)
        role_guests = [{'name': f'{PREFIX}r{i:02d}', 'disk_size': '64MiB'} for i in range(GUESTS)]
        with open(os.path.join(workdir, 'vars.json'), 'w', encoding='utf-8') as out:
            json.dump({'work': work, 'role_guests': role_guests}, out)
        peer = 'peer' not in SKIP and peer_collection()
        report = {'date': time.strftime('%Y-%m-%d'), 'rounds': ROUNDS, 'anchor': anchor(workdir, peer)}
        if 'modules' not in SKIP:
            report['modules'] = modules(workdir, work)
        if 'role' not in SKIP:
            report['role'] = role(workdir)
        if 'fleet' not in SKIP:
            report['fleet'] = fleet(workdir)
        if 'info' not in SKIP:
            report['domain_info'] = domain_info_scale()
        if 'payload' not in SKIP:
            report['payloads'] = payloads(workdir)
    finally:
        clean()
        shutil.rmtree(workdir, ignore_errors=True)
    print_report(report)


def print_report(report: dict) -> None:
    anchor_times = report['anchor']
    ours, peer = anchor_times['hypervisor.kvm'], anchor_times.get('community.libvirt')
    print(f"\n# make bench, {report['date']}, {os.uname().nodename}, medians of {report['rounds']} rounds (wall s)\n")
    print('| anchor work (1 pool, 2 networks, 20 guests) | community.libvirt | hypervisor.kvm | ratio |')
    print('|---|---|---|---|')
    print(f"| tasks / module runs | 9 / 50 (49 in a re-run) | 3 / {1 + 2 + GUESTS} | |")
    for key, label in (('converge', 'converge from empty'), ('noop', 'no-op re-run'), ('check', '`--check` re-run'),
                       ('ping', '`ansible.builtin.ping` in the same task shape')):
        if peer:
            print(f'| {label} | {peer[key]:.1f} | {ours[key]:.1f} | {ours[key] / peer[key]:.2f} |')
        else:
            print(f'| {label} | (not measured) | {ours[key]:.1f} | |')
    runs = 1 + 2 + GUESTS
    if peer:
        for key, label in (('noop', 'No-op'), ('check', '`--check`')):
            ratio = ours[key] / peer[key]
            print(f"\n{label} ratio {ratio:.2f}: target <= 0.45 ({'met' if ratio <= 0.45 else 'NOT met'}).")
    average = 1000 * (ours['noop'] - ours['ping']) / runs
    print(f"\nAbove the ping floor, averaged over the anchor work's no-op: hypervisor.kvm {average:.0f} ms per module "
          f"run (target <= {TARGET_MS}: {'met' if average <= TARGET_MS else 'NOT met'})"
          + (f", community.libvirt {1000 * (peer['noop'] - peer['ping']) / 50:.0f} ms" if peer else '') + '.')
    if 'modules' in report:
        costs = report['modules']
        print(f"\n| a no-op module run (medians of {report['rounds']} x {LOOP} loop items) | ms above ping "
              f"| with `--diff` | target <= {TARGET_MS} ms |\n|---|---|---|---|")
        for module in MODULE_TASKS:
            if module in costs['plain']:
                plain = costs['plain'][module]
                print(f"| `{module}` | {plain:.0f} | {costs['diff'][module]:.0f} |"
                      f" {'met' if plain <= TARGET_MS else 'NOT met'} |")
        print(f"| (`ansible.builtin.ping` itself, per run) | {costs['plain']['ping_ms']:.0f} "
              f"| {costs['diff']['ping_ms']:.0f} | |")
    if 'role' in report:
        role_times = report['role']
        floor = role_times['floor']
        print(f"\n| kvm_guest role, {GUESTS} guests | wall s | target |\n|---|---|---|"
              f"\n| QEMU start floor (raw libvirt-python, {GUESTS} starts) | {floor:.1f} | |"
              f"\n| converge | {role_times['converge']:.1f} | <= floor + 3 = {floor + 3:.1f}"
              f" ({'met' if role_times['converge'] <= floor + 3 else 'NOT met'}) |"
              f"\n| no-op | {role_times['noop']:.1f} | <= 2.5 ({'met' if role_times['noop'] <= 2.5 else 'NOT met'}) |")
    if 'fleet' in report:
        fleet_times = report['fleet']
        print(f"\n| kvm_guests, {fleet_times['count']} defined guests | wall s | target |\n|---|---|---|"
              f"\n| converge (define {fleet_times['count']} guests and disks) | {fleet_times['converge']:.1f} | |"
              f"\n| no-op | {fleet_times['noop']:.1f} |"
              f" <= 3 ({'met' if fleet_times['noop'] <= 3 else 'NOT met'}) |")
    if 'domain_info' in report:
        print(f"\nkvm_domain_info's summary (flat per domain means the same µs at every N):\n\n```\n"
              f"{report['domain_info']}\n```")
    if 'payloads' in report:
        print('\n| module | AnsiballZ payload (bytes) |\n|---|---|')
        for name, size in sorted(report['payloads'].items()):
            print(f'| {name} | {size:,} |')


if __name__ == '__main__':
    main()
