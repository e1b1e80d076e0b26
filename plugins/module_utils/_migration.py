# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kvm_migration: "guest X runs on destination D" (docs/several-hosts.md).

:class:`Migration` plans one run from where the guest is on both hosts
(``_migration_checks.decide``), refuses a destination that lacks what the guest needs before
anything changes (``_migration_checks`` for networks, boot files and memory,
``_migration_storage`` for the disks, which also creates and removes the volumes a storage copy
writes into), runs the migration in a thread so that ``timeout`` can abort it or pause the guest,
and builds the result, with the figures from libvirt's statistics of the completed job.
"""

from __future__ import annotations

import threading
import time

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.module_utils._domain_facts import disk_sources, power_state
from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import (
    Connection,
    connect,
    guard,
    libvirt,
    libvirt_failure,
    resolve_uri,
    xml_desc,
)
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import flags as libvirt_flags
from ansible_collections.hypervisor.kvm.plugins.module_utils._migration_checks import (
    Presence,
    check_boot_files,
    check_memory,
    check_networks,
    check_options,
    decide,
    find_guest,
    node_memory,
    refuse_same_host,
)
from ansible_collections.hypervisor.kvm.plugins.module_utils._migration_storage import StorageCopy, is_copied
from ansible_collections.hypervisor.kvm.plugins.module_utils._resource import Plan, apply_plan, plan_result, read_back
from ansible_collections.hypervisor.kvm.plugins.module_utils._units import parse_size

COPY_STORAGE = ('none', 'all', 'incremental')
TIMEOUT_ACTIONS = ('abort', 'suspend')
POLL_SECONDS = 0.2  # how often a migration with a timeout is looked at


# ---- options --------------------------------------------------------------------------------------
def migration_options() -> dict:
    """kvm_migration's options (but uri)."""
    return dict(
        name=dict(type='str', required=True),
        dest_uri=dict(type='str', required=True),
        live=dict(type='bool', default=True),
        persistent=dict(type='bool', default=True),
        undefine_source=dict(type='bool', default=True),
        copy_storage=dict(type='str', default='none', choices=list(COPY_STORAGE)),
        replace_storage=dict(type='bool', default=False),
        remove_source_storage=dict(type='bool', default=False),
        unsafe=dict(type='bool', default=False),
        bandwidth=dict(type='int'),
        auto_converge=dict(type='bool', default=False),
        compressed=dict(type='bool', default=False),
        timeout=dict(type='int'),
        timeout_action=dict(type='str', default='abort', choices=list(TIMEOUT_ACTIONS)),
        peer2peer=dict(type='bool', default=False),
        migrate_uri=dict(type='str'),
        reserve_memory=dict(type='str'),
    )


def migration_flags(params: dict, mode: str, source_persistent: bool) -> list:
    """The VIR_MIGRATE_* flag names for a ``migrate`` or ``offline`` run, in a fixed order."""
    names = []
    if mode == 'offline':
        names.append('VIR_MIGRATE_OFFLINE')
    elif params['live']:
        names.append('VIR_MIGRATE_LIVE')
    if params['peer2peer']:
        names.append('VIR_MIGRATE_PEER2PEER')
    if params['persistent'] or mode == 'offline':
        names.append('VIR_MIGRATE_PERSIST_DEST')
    if params['undefine_source'] and source_persistent:
        names.append('VIR_MIGRATE_UNDEFINE_SOURCE')
    if mode != 'offline':
        names += {'none': [], 'all': ['VIR_MIGRATE_NON_SHARED_DISK'],
                  'incremental': ['VIR_MIGRATE_NON_SHARED_INC']}[params['copy_storage']]
        if params['auto_converge']:
            names.append('VIR_MIGRATE_AUTO_CONVERGE')
        if params['compressed']:
            names.append('VIR_MIGRATE_COMPRESSED')
    if params['unsafe']:
        names.append('VIR_MIGRATE_UNSAFE')
    return names


def flag_value(names: list) -> int:
    """The OR of VIR_MIGRATE_* names; a name this libvirt-python lacks is an error (not 0)."""
    value = 0
    for name in names:
        if not hasattr(libvirt, name):
            raise KvmError(f'this libvirt-python has no {name}: it is too old for this migration')
        value |= getattr(libvirt, name)
    return value


def flag_words(names: list) -> list:
    """VIR_MIGRATE_NON_SHARED_DISK -> non-shared-disk (the result's ``flags``)."""
    return [name[len('VIR_MIGRATE_'):].lower().replace('_', '-') for name in names]


def migration_params(params: dict, persist_xml: str | None) -> dict:
    """The typed parameters of migrate3/migrateToURI3."""
    typed = {}
    if params.get('bandwidth'):
        typed[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] = int(params['bandwidth'])
    if params.get('migrate_uri'):
        typed[libvirt.VIR_MIGRATE_PARAM_URI] = params['migrate_uri']
    if persist_xml:
        typed[libvirt.VIR_MIGRATE_PARAM_PERSIST_XML] = persist_xml
    return typed


# ---- hosts -----------------------------------------------------------------------------------------
def destination(uri: str):
    """The second connection of the run: the destination host."""
    return connect(uri, f'the destination {uri}')


def timed_out_message(name: str, dest_uri: str, timeout: int) -> str:
    return (f"migrating guest '{name}' to {dest_uri} did not finish within {timeout} s and was aborted "
            '(timeout_action=abort)')


# ---- the migration ---------------------------------------------------------------------------------
class Migration:
    """One kvm_migration run over the source connection ``conn`` and the destination ``dest``."""

    def __init__(self, conn, dest, params: dict, check_mode: bool = False, diff: bool = False):
        self.conn = conn
        self.dest = dest
        self.params = params
        self.check_mode = check_mode
        self.diff = diff
        self.name = params['name']
        self.source_uri = resolve_uri(params.get('uri'))
        self.dest_uri = params['dest_uri']
        self.storage = StorageCopy(conn, dest, params)

    # ---- planning -----------------------------------------------------------------------------
    def converge(self) -> dict:
        """Plan, apply unless in check mode, and build the result."""
        refuse_same_host(self.conn, self.dest, self.source_uri, self.dest_uri)
        source = find_guest(self.conn, self.name, f'the source {self.source_uri}')
        target = find_guest(self.dest, self.name, f'the destination {self.dest_uri}', settle=30)
        mode = decide(self.name, source, target, self.source_uri, self.dest_uri)
        plan = Plan()
        plan.context.update(source=source, target=target, mode=mode, created=[], removed=[])
        with guard(f'reading the memory of the destination {self.dest_uri}'):
            plan.extra['destination_memory'] = node_memory(self.dest)
        reserve = self.params.get('reserve_memory')
        plan.extra['destination_memory']['reserve'] = parse_size(reserve, 'reserve_memory') if reserve else 0
        with guard(f"reading the memory of guest '{self.name}'"):
            plan.extra['guest_memory'] = (source if source.exists else target).handle.maxMemory() * 1024
        if mode == 'present':
            if source.exists:
                plan.warnings.append(
                    f"guest '{self.name}' is already on the destination, but the source {self.source_uri} still "
                    f'has a {source.describe()} definition of it; remove it with hypervisor.kvm.kvm_domain '
                    'state=absent (its disks are kept) if it is a leftover')
        else:
            self.plan_migration(source, mode, plan)
        try:
            apply_plan(plan, self.check_mode)
        except KvmError as failure:
            # leftover destination volumes count among actions_done (apply_plan, not_reverted)
            failure.details.setdefault('created_volumes', [volume['path'] for volume in plan.context['created']])
            raise
        return self.result(plan)

    def plan_migration(self, source: Presence, mode: str, plan: Plan) -> None:
        params = self.params
        if mode == 'offline' and params['copy_storage'] != 'none':
            raise KvmError(f"guest '{self.name}' is shut off on the source: an offline migration moves only its "
                           'definition, and libvirt cannot copy the storage of a guest that does not run. Set '
                           'copy_storage=none (and copy its disks yourself), or start the guest first')
        handle = source.handle
        definition, persist_xml = self.source_definitions(source, mode)
        volumes = self.check_destination(source, definition, mode, plan)
        names = migration_flags(params, mode, source.persistent)
        flags = flag_value(names)
        typed = migration_params(params, persist_xml)
        plan.extra.update(flags=flag_words(names),
                          mode='offline' if mode == 'offline' else ('live' if params['live'] else 'non-live'),
                          destination_volumes=[volume['path'] for volume in volumes])
        if volumes:
            plan.add('create-destination-volumes',
                     f"creating {len(volumes)} volume(s) on the destination {self.dest_uri} for guest "
                     f"'{self.name}': {', '.join(volume['path'] for volume in volumes)}",
                     lambda: self.storage.create_volumes(volumes, plan))
        verb = 'migrate-offline' if mode == 'offline' else 'migrate'
        plan.add(verb, f"migrating guest '{self.name}' to {self.dest_uri}",
                 lambda: self.migrate(handle, flags, typed, plan), reverts=('create-destination-volumes',))
        if params['remove_source_storage']:
            copied = [disk for disk in disk_sources(definition) if is_copied(disk) and (disk['path'] or disk['pool'])]
            if copied:
                plan.add('remove-source-storage',
                         f"deleting the source's copy of the disks of guest '{self.name}' on {self.source_uri}",
                         lambda: self.storage.remove_source_storage(copied, plan))

    def source_definitions(self, source: Presence, mode: str) -> tuple:
        """The guest's migratable definition on the source, and the persistent one as text when
        the destination is to keep it defined (None otherwise)."""
        with guard(f"reading guest '{self.name}' on the source {self.source_uri}"):
            migratable = libvirt_flags('VIR_DOMAIN_XML_MIGRATABLE', 'VIR_DOMAIN_XML_SECURE')
            definition = xml_desc(source.handle, migratable, 'libvirt domain XML')
            persist_xml = None
            if source.persistent and mode == 'migrate' and self.params['persistent']:
                # The persistent definition, not the running one: changes waiting for a restart
                # (restart_required) stay waiting on the destination.
                persist_xml = _xml.to_text(xml_desc(
                    source.handle, migratable | libvirt.VIR_DOMAIN_XML_INACTIVE, 'libvirt domain XML'), pretty=False)
        return definition, persist_xml

    def check_destination(self, source: Presence, definition, mode: str, plan: Plan) -> list:
        """Refuse, naming every problem at once, a destination that lacks what the guest needs;
        return the volumes a storage copy creates there."""
        problems = []
        with guard(f'checking what the destination {self.dest_uri} has for guest {self.name!r}'):
            check_networks(self.dest, definition, mode, problems, plan)
            volumes = self.storage.check_storage(source, definition, mode, problems, plan)
            check_boot_files(self.dest_uri, definition, problems)
            check_memory(self.params, definition, mode, problems, plan)
        if problems:
            raise KvmError(f"the destination {self.dest_uri} cannot take guest '{self.name}': " + '; '.join(problems),
                           problems=problems,
                           destination={'uri': self.dest_uri, 'memory': plan.extra['destination_memory']},
                           domain={'name': self.name, 'memory': plan.extra['guest_memory']})
        return volumes

    # ---- applying -----------------------------------------------------------------------------
    def migrate(self, handle, flags: int, typed: dict, plan: Plan) -> None:
        outcome = self.run_migration(handle, flags, typed)
        plan.context['elapsed_ms'] = outcome['elapsed_ms']
        plan.context['timeout_action_taken'] = outcome.get('timeout_action_taken')
        if 'error' in outcome and self.reconnected_after_restart() and self.landed():
            del outcome['error']  # a daemon restarted at the very end: the guest runs on the destination
            outcome.pop('domain', None)
        if 'error' in outcome:
            self.fail_migration(outcome, plan)
        new = outcome.get('domain')
        with guard(f"reading guest '{self.name}' on the destination {self.dest_uri}"):
            if new is None:
                new = self.dest.lookupByName(self.name)
            source = plan.context['source']
            if outcome.get('timeout_action_taken') == 'suspend' and source.state == 'running' \
                    and power_state(new.state()[0]) == 'paused':
                new.resume()  # paused to finish the migration, not by the user
        if plan.context['created']:
            self.storage.forget_copies(new)  # the copies are the guest's disks now
        plan.context['stats'] = completed_job_stats(new)

    def run_migration(self, handle, flags: int, typed: dict) -> dict:
        """migrate3 (the module drives both hosts) or migrateToURI3 (peer to peer: the source's
        libvirtd drives it) in a thread, so that ``timeout`` can abort or pause it."""
        outcome = {}

        def work():
            try:
                if self.params['peer2peer']:
                    handle.migrateToURI3(self.dest_uri, typed, flags)
                else:
                    outcome['domain'] = handle.migrate3(self.dest, typed, flags)
            except Exception as err:  # pylint: disable=broad-exception-caught  # reported by the caller
                outcome['error'] = err

        timeout = self.params.get('timeout')
        started = time.monotonic()
        worker = threading.Thread(target=work, name='kvm-migration', daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(POLL_SECONDS if timeout else None)
            if timeout and worker.is_alive() and 'timeout_action_taken' not in outcome \
                    and time.monotonic() - started >= timeout:
                action = self.params['timeout_action']
                outcome['timeout_action_taken'] = action
                try:
                    if action == 'abort':
                        handle.abortJob()
                    else:
                        handle.suspend()
                except libvirt.libvirtError:
                    pass  # it finished just now; the outcome says how
        outcome['elapsed_ms'] = int((time.monotonic() - started) * 1000)
        return outcome

    def reconnected_after_restart(self) -> bool:
        """When a libvirtd restarted during the migration (a connection dropped), connect again
        (within a minute) so that where the guest is can be told. True when one was reopened."""
        reopened = False
        deadline = time.monotonic() + 60
        for conn in (self.conn, self.dest):
            if isinstance(conn, Connection) and not conn.alive():
                conn.reopen(deadline)
                reopened = True
        return reopened

    def landed(self) -> bool:
        """Whether the guest is active on the destination and not on the source."""
        target = find_guest(self.dest, self.name, f'the destination {self.dest_uri}')
        source = find_guest(self.conn, self.name, f'the source {self.source_uri}')
        return target.active and not source.active

    def fail_migration(self, outcome: dict, plan: Plan) -> None:
        err = outcome['error']
        leftover = self.storage.remove_created_volumes(plan)
        now = find_guest(self.conn, self.name, f'the source {self.source_uri}')
        if not leftover and now.active:
            try:
                self.storage.forget_copies(now.handle)  # nothing left for a later run to remove
            except libvirt.libvirtError:
                pass  # the record names volumes that are gone: a later run finds nothing to remove
        message = self.failure_message(err, outcome)
        where = (f'It is still on the source {self.source_uri} ({now.state}).' if now.exists
                 else f'It is no longer on the source {self.source_uri}.')
        if plan.context.get('timeout_action_taken') == 'suspend' and now.state == 'paused' \
                and plan.context['source'].state == 'running':
            try:
                now.handle.resume()
                where = f'It is still on the source {self.source_uri} (running again after the timeout pause).'
            except libvirt.libvirtError:
                where += ' It was paused by timeout_action=suspend; resume it with kvm_domain state=running.'
        details = {'source_state': now.state, 'elapsed_ms': outcome['elapsed_ms'],
                   'timeout_action_taken': outcome.get('timeout_action_taken')}
        if isinstance(err, libvirt.libvirtError):
            details['libvirt_error'] = libvirt_failure('', err).details['libvirt_error']
        cleanup = ''
        if leftover:
            cleanup = f" The volumes it created on the destination could not be removed: {', '.join(leftover)}."
            details['leftover_volumes'] = leftover
        raise KvmError(f'{message}. {where}{cleanup}', **details)

    def failure_message(self, err: Exception, outcome: dict) -> str:
        """What went wrong, as the first sentence of a failed migration's message."""
        if outcome.get('timeout_action_taken') == 'abort':
            return timed_out_message(self.name, self.dest_uri, self.params['timeout'])
        if isinstance(err, libvirt.libvirtError):
            return libvirt_failure(f"migrating guest '{self.name}' to {self.dest_uri}", err).msg
        return f"migrating guest '{self.name}' to {self.dest_uri} failed: {type(err).__name__}: {err}"

    # ---- the result ----------------------------------------------------------------------------
    def result(self, plan: Plan) -> dict:
        source, target, mode = plan.context['source'], plan.context['target'], plan.context['mode']
        if self.check_mode or mode == 'present':
            source_after, target_after = self.predicted(plan)
        else:
            source_after, target_after = read_back(
                plan, lambda: (find_guest(self.conn, self.name, f'the source {self.source_uri}'),
                               find_guest(self.dest, self.name, f'the destination {self.dest_uri}')),
                f"reading where guest '{self.name}' is after the migration")
        stats = plan.context.get('stats') or {}
        # the facts planning gathered go into the result's own keys, not beside them
        fact_keys = ('guest_memory', 'destination_memory', 'mode', 'flags', 'destination_volumes')
        facts = {key: plan.extra.pop(key, None) for key in fact_keys}
        result = plan_result(plan, f"where guest '{self.name}' is",
                             (where_text(self.source_uri, source, self.dest_uri, target),
                              where_text(self.source_uri, source_after, self.dest_uri, target_after))
                             if self.diff else None)
        result.update({
            'domain': {'name': self.name, 'uuid': target_after.uuid or source.uuid, 'state': target_after.state,
                       'persistent': target_after.persistent, 'uri': self.dest_uri, 'memory': facts['guest_memory']},
            'source': {'uri': self.source_uri, 'before': source.describe(), 'after': source_after.describe()},
            'destination': {'uri': self.dest_uri, 'before': target.describe(), 'after': target_after.describe(),
                            'memory': facts['destination_memory']},
            'mode': facts['mode'],
            'flags': facts['flags'] or [],
            'elapsed_ms': plan.context.get('elapsed_ms'),
            'downtime_ms': stats.get('downtime'),
            'transferred_bytes': stats.get('data_processed'),
            'timeout_action_taken': plan.context.get('timeout_action_taken'),
            'created_volumes': [volume['path'] for volume in plan.context['created']] if not self.check_mode
            else facts['destination_volumes'] or [],
            'removed_source_volumes': plan.context['removed'],
        })
        return result

    def predicted(self, plan: Plan) -> tuple:
        """Where the guest will be after the plan (check mode), as Presence values."""
        source, target, mode = plan.context['source'], plan.context['target'], plan.context['mode']
        if mode == 'present':
            return source, target
        undefine = self.params['undefine_source'] or not source.persistent
        source_after = Presence() if undefine else Presence(
            exists=True, handle=source.handle, state='shutoff', persistent=True, uuid=source.uuid)
        if mode == 'offline':
            target_after = Presence(exists=True, state='shutoff', persistent=True, uuid=source.uuid)
            if not self.params['undefine_source']:
                source_after = source
        else:
            target_after = Presence(exists=True, state=source.state, active=True,
                                    persistent=self.params['persistent'], uuid=source.uuid)
        return source_after, target_after


def completed_job_stats(handle) -> dict:
    """libvirt's statistics of the migration that just completed (downtime, bytes), as the
    destination knows them; empty where the driver keeps none (offline migrations)."""
    try:
        stats = handle.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    except libvirt.libvirtError:
        return {}
    return stats or {}


def where_text(source_uri: str, source: Presence, dest_uri: str, target: Presence) -> str:
    """One side of ``--diff``: the guest on each host."""
    return f'source {source_uri}: {source.describe()}\ndestination {dest_uri}: {target.describe()}\n'


def converge(conn, params: dict, check_mode: bool, diff: bool = False) -> dict:
    """kvm_migration's work over the source connection ``conn`` (with a diff when asked)."""
    check_options(params)
    with destination(params['dest_uri']) as dest:
        return Migration(conn, dest, params, check_mode, diff).converge()
