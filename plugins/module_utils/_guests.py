# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kvm_guests: a whole list of guests converged in one module run over one connection (the
kvm_guest role's engine; docs/architecture.md, "Fleets").

The run reuses the resource adapters as they are: the pool, the networks, one upload per base
image, then for each guest its disk (an overlay on the base image, or an empty disk), its
cloud-init seed and its domain, each planned and applied by the engine. Every guest is
validated before anything is touched; a guest that fails later does not stop the others, and
the failure names it. Check mode plans every step as if the earlier ones had run: what they
would create is shared between the adapters (``shared``), so a guest on a new network, in a new
pool, on a new base image is predicted, not refused. Every disk and seed comes first, then the
domains: those that are only defined and started go a few at a time, so that the QEMU start-ups
overlap, and running guests are waited for together, so their boots overlap too.
"""

from __future__ import annotations

import copy
import os
import time
from urllib.parse import urlsplit

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.errors import UnsupportedError

from ansible_collections.hypervisor.kvm.plugins.module_utils._domain import Domain
from ansible_collections.hypervisor.kvm.plugins.module_utils._domain_builder import (
    check_boot_file,
    check_cpu,
    check_domain_name,
    check_machine,
    memory_sizes,
    vcpu_counts,
)
from ansible_collections.hypervisor.kvm.plugins.module_utils._domain_changes import current_interfaces
from ansible_collections.hypervisor.kvm.plugins.module_utils._domain_metadata import check_metadata
from ansible_collections.hypervisor.kvm.plugins.module_utils._domain_options import (
    VIRT_TYPES,
    cpu_options,
    domain_options,
)
from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError
from ansible_collections.hypervisor.kvm.plugins.module_utils._guest_devices import (
    check_disks,
    domain_disks,
    domain_interfaces,
    guest_disk_options,
    made_disks,
    made_here,
    network_entries,
)
from ansible_collections.hypervisor.kvm.plugins.module_utils._images import image_facts, is_url, parse_checksum
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import as_failure, libvirt, wait_until
from ansible_collections.hypervisor.kvm.plugins.module_utils._network import Network, network_options
from ansible_collections.hypervisor.kvm.plugins.module_utils._option_checks import completed, input_problems
from ansible_collections.hypervisor.kvm.plugins.module_utils._options import typed_union
from ansible_collections.hypervisor.kvm.plugins.module_utils._pool import StoragePool, pool_options
from ansible_collections.hypervisor.kvm.plugins.module_utils._seed import check_public_key, secret_values, seed_files
from ansible_collections.hypervisor.kvm.plugins.module_utils._units import disk_size, format_size
from ansible_collections.hypervisor.kvm.plugins.module_utils._volume import Volume
from ansible_collections.hypervisor.kvm.plugins.module_utils._volume_options import volume_options
from ansible_collections.hypervisor.kvm.plugins.module_utils._xml_patches import checked_patches

GUEST_STATES = ('running', 'shutdown', 'absent')
# domain steps that may run beside each other's (no waits, nothing that reconnects), how many at once
OVERLAPPING_ACTIONS = {'define', 'start', 'autostart', 'disable-autostart'}
STARTS_AT_ONCE = 4
# kvm_domain's options a guest takes as they are (kvm_domain's spec, kvm_domain's meaning)
DOMAIN_PASSED = ('machine', 'max_memory', 'firmware', 'secure_boot', 'boot', 'rng', 'tpm', 'title', 'description',
                 'metadata', 'xml_patches', 'filesystems', 'watchdog', 'video', 'hostdevs', 'memory_backing', 'numa',
                 'cputune')
SUDO_ALL = 'ALL=(ALL) NOPASSWD:ALL'


def guest_options() -> dict:
    """The options of one item of ``guests`` (the kvm_guest role's ``kvm_guest_list`` items)."""
    return dict(
        name=dict(type='str', required=True),
        state=dict(type='str', default='running', choices=list(GUEST_STATES)),
        remove_storage=dict(type='bool', default=False),
        memory=dict(type='str'),
        vcpus=dict(type='int'),
        cpu=dict(type='dict', options=cpu_options()),
        virt_type=dict(type='str', choices=VIRT_TYPES),
        autostart=dict(type='bool'),
        base_image=dict(type='dict', options=dict(
            url=dict(type='str'), path=dict(type='path'), checksum=dict(type='str'), volume=dict(type='str'))),
        disk_size=dict(type='str'),
        networks=dict(type='list', elements='raw'),
        disks=dict(type='list', elements='dict', options=guest_disk_options()),
        cloud_init=dict(type='dict', options=dict(
            user=dict(type='str'),
            ssh_authorized_keys=dict(type='list', elements='str', default=[], no_log=False),
            packages=dict(type='list', elements='str', default=[]),
            user_data=dict(type='raw', no_log=False),
            network_config=dict(type='raw'),
        )),
        kernel=dict(type='path'),
        initrd=dict(type='path'),
        cmdline=dict(type='str'),
        graphics=dict(type='raw'),
        console=dict(type='raw'),
        guest_agent=dict(type='bool'),
        **{key: spec for key, spec in domain_options().items() if key in DOMAIN_PASSED},
    )


def fleet_network_options() -> dict:
    """The options of one item of ``networks``: kvm_network's, started and autostarted by default."""
    options = network_options()
    options['state'] = dict(type='str', default='active', choices=['present', 'active', 'inactive'])
    options['autostart'] = dict(type='bool', default=True)
    del options['force']  # a removal option: a fleet's networks are never removed
    return options


def fleet_options() -> dict:
    """kvm_guests' options (but uri). ``networks`` items are checked against kvm_network's options
    by :meth:`Fleet.validate` (documented once, in kvm_network)."""
    return dict(
        pool=dict(type='dict', options=dict(
            name=dict(type='str', required=True),
            path=dict(type='path', default='/var/lib/libvirt/images'),
            autostart=dict(type='bool', default=True),
            manage=dict(type='bool', default=True),
        )),
        networks=dict(type='list', elements='dict', default=[]),
        guests=dict(type='list', elements='dict', default=[], options=guest_options()),
        defaults=dict(type='dict', default={}, options=dict(
            memory=dict(type='str', default='1GiB'),
            vcpus=dict(type='int', default=1),
            virt_type=dict(type='str', default='auto', choices=VIRT_TYPES),
            networks=dict(type='list', elements='str', default=['default']),
        )),
        wait_for_ip=dict(type='int', default=120),
    )


def deep_merge(base: dict, over: dict) -> dict:
    """``over`` merged into a copy of ``base``: dicts merge key by key, anything else replaces."""
    merged = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def user_data(guest: dict) -> dict | str:
    """The guest's cloud-config: hostname, a sudo user with SSH keys (or keys for the image's
    default user), packages, and the free-form ``user_data`` merged over it (a string replaces it)."""
    cloud_init = guest.get('cloud_init') or {}
    data = {'hostname': guest['name']}
    keys = cloud_init.get('ssh_authorized_keys') or []
    if cloud_init.get('user'):
        data['users'] = ['default', {'name': cloud_init['user'], 'sudo': SUDO_ALL, 'shell': '/bin/bash',
                                     'lock_passwd': True, 'ssh_authorized_keys': list(keys)}]
    elif keys:
        data['ssh_authorized_keys'] = list(keys)
    if cloud_init.get('packages'):
        data['packages'] = list(cloud_init['packages'])
    extra = cloud_init.get('user_data')
    if isinstance(extra, dict):
        return deep_merge(data, extra)
    return extra if extra is not None else data


def base_volume_name(base_image: dict) -> str:
    """The base image's volume in the pool: ``volume``, else the file name of its URL or path."""
    return base_image.get('volume') or os.path.basename(urlsplit(base_image.get('url') or base_image.get('path')).path)


class Fleet:
    """One run of kvm_guests: validate everything, then converge step by step over one
    connection. Holds the run's results; the adapters it drives keep nothing."""

    def __init__(self, conn, params: dict, check_mode: bool, no_log_values: set, diff: bool = False):
        self.conn = conn
        self.params = params
        self.check_mode = check_mode
        self.diff = diff  # the run asked for a diff (--diff): each resource renders its own
        self.no_log_values = no_log_values
        self.shared = {}  # what check mode predicts earlier steps create (see Resource.remember_pending)
        self.pool = params.get('pool')
        self.guests = []  # the guests, worked out: (guest dict, derived dict)
        self.results = {}  # guest name -> its result
        self.failures = []
        self.diffs = []
        self.warnings = []
        self.changed = False
        self.steps = {'pool': None, 'networks': [], 'base_images': []}
        self.networks = []  # the networks, checked against kvm_network's options

    # ---- before anything changes ------------------------------------------------------------
    def validate(self) -> None:
        """Every guest worked out and checked; all problems at once, before any change."""
        problems = []
        defaults = self.params.get('defaults') or {}
        self.networks = []
        for index, network in enumerate(self.params.get('networks') or []):
            checked = ArgumentSpecValidator(fleet_network_options()).validate(network)
            if checked.error_messages:
                described = input_problems(fleet_network_options(), network, f'networks[{index}].')
                problems.extend(described)
                problems.extend(f'networks[{index}]: {error}' for error in checked.errors.errors
                                if not (described and isinstance(error, UnsupportedError)))
            elif not checked.validated_parameters.get('name'):
                problems.append(f'networks[{index}]: name is required')
            else:
                try:
                    params = checked.validated_parameters
                    for key, kind in (('bridge', 'bridge'), ('forward', 'forward')):
                        params[key] = typed_union(kind, params.get(key), f'networks[{index}].{key}')
                    if (params.get('dns') or {}).get('forwarders'):
                        params['dns']['forwarders'] = [
                            typed_union('forwarder', item, f'networks[{index}].dns.forwarders[{number}]')
                            for number, item in enumerate(params['dns']['forwarders'])]
                    self.networks.append(params)
                except KvmError as err:
                    problems.append(err.msg)
        known = {net['name'] for net in self.networks}
        try:
            known.update(net.name() for net in self.conn.listAllNetworks(0))
        except libvirt.libvirtError:
            pass  # the domain step names a network that is missing
        names = [guest['name'] for guest in self.params.get('guests') or []]
        for name in sorted({name for name in names if names.count(name) > 1}):
            problems.append(f'guests: the name {name} is used more than once')
        needs_pool = False
        for index, guest in enumerate(self.params.get('guests') or []):
            where = f"guests[{index}] ({guest['name']})"
            try:
                derived = self.derive(guest, defaults, known, where)
            except KvmError as err:
                problems.extend(err.msg.split('\n'))
                continue
            needs_pool = needs_pool or derived['disk'] or derived['seed'] or derived['data']
            self.guests.append((guest, derived))
        if needs_pool and not self.pool:
            problems.append('pool: required for guests with a disk or a cloud-init seed')
        if problems:
            raise KvmError('\n'.join(problems), problems=problems)

    def derive(self, guest: dict, defaults: dict, known_networks: set, where: str) -> dict:
        """The disk, seed and domain of one guest; every problem of it in one KvmError (one per line)."""
        problems = []

        def check(step):
            try:
                return step()
            except KvmError as err:
                problems.append(f'{where}: {err.msg}')
                return None

        state = guest.get('state') or 'running'
        base = guest.get('base_image')
        derived = {'state': state, 'disk': bool(base or guest.get('disk_size')),
                   'seed': bool(base or guest.get('cloud_init')), 'data': bool(made_disks(guest)), 'base_volume': None}
        if state == 'absent':
            return derived
        entries, network_problems = network_entries(guest, defaults)
        problems.extend(f'{where}: {problem}' for problem in network_problems)
        for entry in entries:
            if entry['name'] not in known_networks:
                problems.append(f"{where}: unknown network {entry['name']} "
                                '(neither in networks nor defined in libvirt)')
        problems.extend(f'{where}: {problem}' for problem in check_disks(guest))
        derived['interfaces'] = domain_interfaces(entries)
        if base is not None:
            if bool(base.get('url')) == bool(base.get('path')):
                problems.append(f'{where}: base_image needs exactly one of url and path')
            elif base.get('url'):
                if not is_url(base['url']):
                    problems.append(f"{where}: base_image.url {base['url']!r} is not an http, https, ftp or file URL")
                if not base.get('checksum'):
                    problems.append(f'{where}: base_image.url needs a checksum (algorithm:hex)')
            else:
                derived['image'] = check(lambda: self.base_image_facts(base['path']))
            check(lambda: parse_checksum(base.get('checksum')))
            if base.get('url') or base.get('path'):
                derived['base_volume'] = base_volume_name(base)
        if guest.get('disk_size') is not None:
            size = check(lambda: disk_size(guest['disk_size'], 'disk_size'))
            image = derived.get('image')
            if size is not None and image and size < image['capacity']:
                problems.append(f"{where}: disk_size {format_size(size)} is smaller than its base image "
                                f"({format_size(image['capacity'])})")
        check(lambda: check_domain_name(guest['name']))
        check(lambda: memory_sizes(self.conn, guest.get('memory') or defaults.get('memory'), guest.get('max_memory')))
        boot = guest.get('boot') or {}
        if guest.get('kernel') and any(boot.get(key) for key in ('kernel', 'initrd', 'cmdline')):
            problems.append(f'{where}: kernel, initrd and cmdline go either at the top or under boot, not both')
        if guest.get('secure_boot') and guest.get('firmware') != 'efi':
            problems.append(f'{where}: secure_boot needs firmware: efi')
        check(lambda: vcpu_counts(guest.get('vcpus') or defaults.get('vcpus') or 1, None))
        if guest.get('cpu'):
            check(lambda: check_cpu(guest['cpu'], guest.get('vcpus') or defaults.get('vcpus') or 1))
        check(lambda: check_metadata(guest))
        if guest.get('machine') is not None:
            check(lambda: check_machine(guest['machine']))
        if guest.get('xml_patches'):
            check(lambda: checked_patches(guest['xml_patches'], 'domain'))
        if not guest.get('kernel') and (guest.get('initrd') or guest.get('cmdline')):
            problems.append(f'{where}: initrd and cmdline need kernel')
        for key in ('kernel', 'initrd'):
            if guest.get(key):
                check(lambda key=key: check_boot_file(self.conn, guest[key], key))
        graphics = check(lambda: typed_union('graphics', guest.get('graphics'), 'graphics', self.no_log_values))
        console = check(lambda: typed_union('console', guest.get('console'), 'console', self.no_log_values))
        if derived['seed']:
            cloud_init = guest.get('cloud_init') or {}
            # the keys as the user wrote them, where they wrote them (the generated user-data
            # puts them under users[1], a path the user never wrote)
            known = len(problems)
            for index, key in enumerate(cloud_init.get('ssh_authorized_keys') or []):
                check(lambda key=key, index=index: check_public_key(key, f'cloud_init.ssh_authorized_keys[{index}]'))
            keys_ok = len(problems) == known
            derived['cloud_init'] = {
                'user_data': user_data(guest),
                'meta_data': {'instance-id': guest['name'], 'local-hostname': guest['name']},
                'network_config': cloud_init.get('network_config'),
            }
            self.no_log_values.update(secret_values(derived['cloud_init']['user_data']))
            if keys_ok:
                check(lambda: seed_files(derived['cloud_init'], f"{guest['name']}-seed.iso", 'cloud_init'))
        if problems:
            raise KvmError('\n'.join(problems))
        derived['domain'] = self.domain_params(guest, defaults, derived, graphics, console)
        return derived

    @staticmethod
    def base_image_facts(path: str) -> dict:
        if not os.path.isabs(path):
            raise KvmError(f'base_image.path: {path!r} is not an absolute path on the managed host')
        if not os.path.isfile(path):
            raise KvmError(f'base_image.path: {path} is not a file on the managed host')
        return image_facts(path, 'base_image.path')

    def domain_params(self, guest: dict, defaults: dict, derived: dict, graphics, console) -> dict:
        """kvm_domain's options for one guest (started without waiting: the fleet waits for all)."""
        pool = (self.pool or {}).get('name')
        disks = []
        if derived['disk']:
            disks.append({'volume': f"{guest['name']}.qcow2", 'pool': pool})
        if derived['seed']:
            disks.append({'volume': f"{guest['name']}-seed.iso", 'pool': pool, 'device': 'cdrom'})
        disks.extend(domain_disks(guest, pool))
        boot = dict(guest['boot']) if guest.get('boot') else None
        if guest.get('kernel'):
            boot = dict(boot or {}, kernel=guest['kernel'], initrd=guest.get('initrd'), cmdline=guest.get('cmdline'))
            boot['devices'] = boot.get('devices') or ['hd']
        given = {
            'name': guest['name'], 'state': derived['state'],
            'virt_type': guest.get('virt_type') or defaults.get('virt_type'),
            'memory': guest.get('memory') or defaults.get('memory'),
            'vcpus': guest.get('vcpus') or defaults.get('vcpus'),
            'cpu': guest.get('cpu'), 'boot': boot, 'disks': disks,
            'interfaces': derived['interfaces'],
            'graphics': graphics, 'console': console, 'guest_agent': guest.get('guest_agent'),
            'autostart': guest.get('autostart'),
            **{key: guest.get(key) for key in DOMAIN_PASSED if key != 'boot'},
        }
        return completed(domain_options(), given, f"guest {guest['name']}: domain")

    # ---- converging ---------------------------------------------------------------------------
    def converge(self) -> dict:
        self.validate()
        try:
            self.converge_pool()
            self.converge_networks()
            self.converge_base_images()
            domains = []  # each guest's planned domain step, applied once every disk and seed is
            for guest, derived in self.guests:
                if derived['state'] == 'absent':
                    self.guarded(guest['name'], lambda guest=guest: self.remove_guest(guest))
                else:
                    self.guarded(guest['name'],
                                 lambda guest=guest, derived=derived: self.converge_guest(guest, derived, domains))
            self.conclude_domains(domains)
            self.wait_for_addresses()
        except Exception as err:  # pylint: disable=broad-exception-caught  # the run's own steps (pool...)
            failure = err if isinstance(err, KvmError) else as_failure(err, 'converging the guests')
            # what the run changed before the failure (a pool, a network, other guests) stays changed
            self.changed = self.changed or bool(failure.details.get('changed'))
            failure.details.update(self.partial_result())
            raise failure from None
        return self.result()

    def step(self, resource_class, params: dict, label: str, **hooks) -> dict:
        """One resource converged by the engine; its diff kept when it changed something.
        ``hooks`` set the resource's hook attributes (a domain's ``keep_storage``)."""
        resource = resource_class(self.conn, params, self.check_mode, self.shared, self.diff)
        for attribute, value in hooks.items():
            setattr(resource, attribute, value)
        return self.concluded(resource, resource.prepare(), label)

    def concluded(self, resource, plan, label: str) -> dict:
        """Apply a resource's plan; its warnings and diff go to the run's."""
        return self.taken(resource.conclude(plan, brief=True), label)  # the guest's entry needs few facts

    def taken(self, result: dict, label: str) -> dict:
        """A concluded step's result: its warnings and diff go to the run's."""
        self.changed = self.changed or result['changed']
        self.warnings.extend(f'{label}: {warning}' for warning in result.pop('warnings', []))
        diff = result.pop('diff', None)
        if diff is not None and result['changed']:
            self.diffs.append(dict(diff, before_header=f'{label} (before)', after_header=f'{label} (after)'))
        return result

    def converge_pool(self) -> None:
        pool = self.pool
        needed = any(derived['disk'] or derived['seed'] or derived['data'] for _guest, derived in self.guests)
        if not pool or not pool.get('manage', True) or not needed:
            return
        params = completed(pool_options(), {'name': pool['name'], 'type': 'dir', 'target': {'path': pool['path']},
                                            'state': 'active', 'autostart': pool['autostart']}, f"pool {pool['name']}")
        self.steps['pool'] = self.step(StoragePool, params, f"pool {pool['name']}")['actions']

    def converge_networks(self) -> None:
        for network in self.networks:
            result = self.step(Network, network, f"network {network['name']}")
            self.steps['networks'].append({'name': network['name'], 'actions': result['actions']})

    def converge_base_images(self) -> None:
        done = set()
        for guest, derived in self.guests:
            volume = derived['base_volume']
            if derived['state'] == 'absent' or not volume or volume in done:
                continue
            done.add(volume)
            base = guest['base_image']
            params = completed(volume_options(), {'name': volume, 'pool': self.pool['name'], 'state': 'present',
                                                  'upload_from': base.get('url') or base.get('path'),
                                                  'checksum': base.get('checksum')}, f'base image {volume}')
            result = self.step(Volume, params, f'base image {volume}')
            self.steps['base_images'].append({'name': volume, 'actions': result['actions']})

    def guarded(self, name: str, work) -> None:
        """Run one guest's steps; any failure (a KvmError, a libvirt error of a read, an error in
        a start thread) is reported for that guest, and the others go on."""
        try:
            work()
        except Exception as caught:  # pylint: disable=broad-exception-caught  # becomes the guest's failure
            err = caught if isinstance(caught, KvmError) else as_failure(caught, f'converging guest {name}')
            entry = self.results.setdefault(name, self.empty_result(name))
            entry['failed'] = True
            entry['msg'] = err.msg
            if err.details.get('changed'):
                entry['changed'] = self.changed = True
            for key in ('actions_done', 'failed_action'):
                if key in err.details:
                    entry[key] = err.details[key]
            self.failures.append(f'guest {name}: {err.msg}')

    @staticmethod
    def empty_result(name: str) -> dict:
        return {'name': name, 'state': None, 'ips': [], 'macs': [], 'changed': False, 'actions': {}}

    def record(self, name: str, kind: str, result: dict) -> dict:
        entry = self.results.setdefault(name, self.empty_result(name))
        entry['actions'][kind] = result['actions']
        entry['changed'] = entry['changed'] or result['changed']
        return entry

    def converge_guest(self, guest: dict, derived: dict, domains: list) -> None:
        """The guest's disk, seed and domain are all planned before any of them is applied, so a
        guest whose domain cannot be planned gets no disk or seed either. The disk and seed are
        applied now; the domain step joins ``domains`` (:meth:`conclude_domains`)."""
        name, pool = guest['name'], (self.pool or {}).get('name')
        steps = []
        if derived['disk']:
            params = completed(volume_options(), {'name': f'{name}.qcow2', 'pool': pool, 'state': 'present',
                                                  'format': 'qcow2', 'capacity': guest.get('disk_size'),
                                                  'backing_volume': derived['base_volume']}, f'guest {name}: disk')
            steps.append(('disk', Volume(self.conn, params, self.check_mode, self.shared, self.diff), 'disk'))
        if derived['seed']:
            params = completed(volume_options(), {'name': f'{name}-seed.iso', 'pool': pool, 'state': 'present',
                                                  'cloud_init': derived['cloud_init']}, f'guest {name}: seed')
            steps.append(('seed', Volume(self.conn, params, self.check_mode, self.shared, self.diff),
                          'cloud-init seed'))
        for key, volume, disk_format, size in made_disks(guest):
            params = completed(volume_options(), {'name': volume, 'pool': pool, 'state': 'present',
                                                  'format': disk_format, 'capacity': size}, f'guest {name}: {key}')
            steps.append((key, Volume(self.conn, params, self.check_mode, self.shared, self.diff), key))
        steps.append(('domain', Domain(self.conn, derived['domain'], self.check_mode, self.shared, self.diff),
                      'domain'))
        plans = [(kind, resource, resource.prepare(), label) for kind, resource, label in steps]
        for kind, resource, plan, label in plans[:-1]:
            self.record(name, kind, self.concluded(resource, plan, f'guest {name}: {label}'))
        self.results.setdefault(name, self.empty_result(name))
        _kind, resource, plan, label = plans[-1]
        domains.append((name, resource, plan, f'guest {name}: {label}'))

    def conclude_domains(self, domains: list) -> None:
        """Apply the guests' domain steps. Those that only define, start and set autostart run
        first, a few at a time (QEMU start-ups overlap; libvirt takes calls from several threads on
        one connection); any other step (a shutdown and its wait, a restart) then runs alone, in
        the guests' order. Results are taken in the guests' order either way."""
        overlapping = [(name, resource, plan) for name, resource, plan, _label in domains if not self.check_mode
                       and {action.name for action in plan.actions} <= OVERLAPPING_ACTIONS
                       and any(action.name == 'start' for action in plan.actions)]
        outcomes = {}
        if len(overlapping) > 1:
            from concurrent.futures import ThreadPoolExecutor  # pylint: disable=import-outside-toplevel

            with ThreadPoolExecutor(max_workers=STARTS_AT_ONCE) as executor:
                outcomes = {name: executor.submit(resource.conclude, plan, brief=True)
                            for name, resource, plan in overlapping}
        for name, resource, plan, label in domains:
            self.guarded(name, lambda name=name, resource=resource, plan=plan, label=label: self.domain_step(
                name, resource, plan, label, outcomes.get(name)))

    def domain_step(self, name: str, resource, plan, label: str, outcome) -> None:
        """A guest's domain step, concluded here or by ``outcome`` (its thread); the guest's entry
        takes the state, MACs and addresses."""
        result = self.taken(outcome.result(), label) if outcome is not None else self.concluded(resource, plan, label)
        entry = self.record(name, 'domain', result)
        domain = result['domain']
        entry['state'] = domain.get('state')
        interfaces = domain.get('interfaces') or []
        entry['macs'] = [iface['mac'] for iface in interfaces if iface.get('mac')]
        entry['ips'] = [address for iface in interfaces for address in iface.get('addresses') or []]

    def remove_guest(self, guest: dict) -> None:
        name = guest['name']
        remove = guest.get('remove_storage')
        params = completed(domain_options(), {'name': name, 'state': 'absent', 'remove_storage': remove},
                           f'guest {name}: domain')
        pool = (self.pool or {}).get('name')

        def keep(source):
            if made_here(name, source, pool):
                return None
            return ('not a volume kvm_guests made for this guest (its disk, seed or a disks item with size); '
                    'remove it with kvm_volume')
        self.record(name, 'domain', self.step(Domain, params, f'guest {name}: domain', keep_storage=keep))
        if remove and self.pool:
            made = [(key, volume) for key, volume, _format, _size in made_disks(guest)]
            for kind, volume in [('disk', f'{name}.qcow2'), ('seed', f'{name}-seed.iso')] + made:
                params = completed(volume_options(), {'name': volume, 'pool': self.pool['name'], 'state': 'absent'},
                                   f'guest {name}: {kind}')
                self.record(name, kind, self.step(Volume, params, f'guest {name}: {kind}'))
        self.results[name]['state'] = 'absent'

    def wait_for_addresses(self) -> None:
        """Wait, for all running guests together, until each has an address (not in check mode)."""
        timeout = self.params.get('wait_for_ip') or 0
        waiting = [name for (guest, derived) in self.guests
                   for name in [guest['name']]
                   if derived['state'] == 'running' and not self.results.get(name, {}).get('failed')
                   and not self.results.get(name, {}).get('ips')]
        if self.check_mode or timeout <= 0 or not waiting:
            return
        deadline = time.monotonic() + timeout

        def still_waiting():
            for name in list(waiting):
                addresses = [address for iface in current_interfaces(self.conn, name) for address in iface['addresses']]
                if addresses:
                    self.results[name]['ips'] = addresses
                    waiting.remove(name)
            return True if not waiting else None

        wait_until(self.conn, deadline, still_waiting)
        for name in waiting:
            self.results[name]['failed'] = True
            self.results[name]['msg'] = (f'got no IP address within {timeout} s (checked the DHCP leases and the '
                                         'guest agent); is its network serving DHCP, and does the guest ask?')
            self.failures.append(f"guest {name}: {self.results[name]['msg']}")

    def partial_result(self) -> dict:
        """What the run did so far (the result of a run that stops)."""
        guests = [self.results.get(guest['name'], self.empty_result(guest['name'])) for guest, _d in self.guests]
        result = {'changed': self.changed, 'guests': guests, 'pool': self.steps['pool'],
                  'networks': self.steps['networks'], 'base_images': self.steps['base_images'],
                  'warnings': self.warnings}
        if self.diff:
            result['diff'] = self.diffs
        return result

    def result(self) -> dict:
        result = self.partial_result()
        guests = result['guests']
        if self.failures:
            raise KvmError(f'{len(self.failures)} of {len(guests)} guests failed: ' + '; '.join(self.failures),
                           **result)
        return result


def converge_fleet(conn, params: dict, check_mode: bool, no_log_values: set, diff: bool = False) -> dict:
    """kvm_guests' whole run over one connection (with a diff per changed object when asked)."""
    return Fleet(conn, params, check_mode, no_log_values, diff).converge()
