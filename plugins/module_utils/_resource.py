# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine behind every resource module (DESIGN.md, the module contract).

read actual -> build desired -> plan (a list of actions) -> apply unless check mode -> result.

Check mode and real runs share every step but the side effects: ``changed``, ``actions``,
``restart_required`` and ``diff`` all come from the plan, so check mode reports exactly what a
real run would do. The diff's "after" is the *predicted* definition (libvirt's current
definition with the desired one merged over it) in both modes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import as_failure, guard

STATE_KEYS = ('active', 'autostart', 'persistent')


@dataclass
class Snapshot:
    """What libvirt says about one object (``exists`` False when there is none)."""

    exists: bool = False
    xml: object = None  # the inactive (persistent) definition, volatile parts removed
    live_xml: object = None  # the running definition when active, volatile parts removed
    active: bool = False
    autostart: bool = False
    persistent: bool = False
    handle: object = None  # the libvirt object
    facts: dict | None = None  # the small state dict of the diff, when not STATE_KEYS

    def state(self) -> dict:
        if not self.exists:
            return {}
        if self.facts is not None:
            return dict(self.facts)
        return {key: getattr(self, key) for key in STATE_KEYS}


@dataclass
class Action:
    """One step of a plan: ``name`` is what users see in ``actions``; ``run`` does it."""

    name: str
    describe: str
    run: Callable[[], object]


@dataclass
class Plan:
    actions: list = field(default_factory=list)
    after: Snapshot = field(default_factory=Snapshot)  # predicted end state
    restart_required: bool = False
    desired: object = None  # the desired definition (what the user specified), cleaned
    warnings: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)  # resource-specific result keys

    def add(self, name: str, describe: str, run: Callable[[], object]) -> None:
        self.actions.append(Action(name, describe, run))


def diff_text(snapshot: Snapshot, display=None) -> str:
    """One side of ``--diff``: the small state dict, then the inactive XML (through ``display``,
    which hides secrets)."""
    if not snapshot.exists:
        return ''
    lines = [f'{key}: {str(value).lower() if isinstance(value, bool) else value}'
             for key, value in snapshot.state().items()]
    element = display(snapshot.xml) if display else snapshot.xml
    return '\n'.join(lines) + ('\n' if lines else '') + _xml.to_text(element)


class Resource:
    """Base of the per-resource adapters (``_pool.py``, ``_network.py``...).

    Subclasses set ``kind`` (for messages), ``result_key`` and the XML rules, and implement
    ``lookup``, ``read``, ``desired_xml``, ``define``, ``start``, ``stop``, ``undefine``,
    ``set_autostart`` and ``info``. The lifecycle planning below fits every libvirt object
    with the states present / active / inactive / absent (pools, networks).
    """

    kind = 'object'
    result_key = 'object'
    volatile = ()  # tag paths that change on their own (sizes, runtime ids): never compared
    authoritative = frozenset()  # tag paths of lists the user owns (see _xml.differences)

    def __init__(self, conn, params: dict, check_mode: bool = False):
        self.conn = conn
        self.params = params
        self.check_mode = check_mode
        self.name = self.resolve_name(params)

    @staticmethod
    def resolve_name(params: dict) -> str:
        """The object's name: the option, else the ``<name>`` of ``xml``; both must agree."""
        name = params.get('name')
        if not params.get('xml'):
            return name
        xml_name = (_xml.parse_xml(params['xml'], 'xml').findtext('name') or '').strip()
        if not xml_name:
            raise KvmError('xml: the definition has no <name> element')
        if name and name != xml_name:
            raise KvmError(f"name {name!r} does not match the name {xml_name!r} in xml")
        return xml_name

    # ---- reading -------------------------------------------------------------------------
    def label(self) -> str:
        return f"{self.kind} '{self.name}'"

    def display(self, element):
        """A definition as shown to people (diff, returned xml): secrets hidden where any."""
        return element

    def clean(self, element):
        """Normalise a definition for comparison: volatile parts removed, layout ignored."""
        if element is None:
            return None
        return _xml.remove_paths(_xml.normalise(element), self.volatile)

    def snapshot(self) -> Snapshot:
        with guard(f'reading {self.label()}'):
            handle = self.lookup()
            if handle is None:
                return Snapshot()
            return self.read(handle)

    # ---- planning ------------------------------------------------------------------------
    def plan(self, before: Snapshot) -> Plan:
        if self.params['state'] == 'absent':
            return self.plan_absent(before)
        return self.plan_present(before)

    def plan_absent(self, before: Snapshot) -> Plan:
        plan = Plan()
        if not before.exists:
            return plan
        if before.active:
            plan.add('stop', f'stopping {self.label()}', lambda: self.stop(before.handle))
        if before.persistent:
            plan.add('undefine', f'undefining {self.label()}', lambda: self.undefine(before.handle))
        return plan

    def plan_present(self, before: Snapshot) -> Plan:
        state = self.params['state']
        desired = self.clean(self.desired_xml(before))
        merged = self.clean(_xml.merge(desired, before.xml, self.authoritative))
        plan = Plan(desired=desired)
        after = plan.after
        after.exists, after.xml, after.persistent = True, merged, True
        after.autostart = before.autostart
        after.active = before.active

        handle = {'object': before.handle}  # filled by define when the object is new

        def current():
            return handle['object']

        new = not before.exists or not before.persistent
        drift = not new and bool(_xml.differences(desired, before.xml, self.authoritative))
        live = drift and self.plan_live_updates(before, desired, plan)
        if not new and not drift:
            after.xml = before.xml  # nothing to write: the diff shows no change
        if new or (drift and not live):
            self.validate_definition(merged, before)

            def define():
                handle['object'] = self.define(_xml.to_text(merged, pretty=False))
            plan.actions.insert(0, Action('define', f'defining {self.label()}', define))

        want_active = {'active': True, 'inactive': False}.get(state, before.active)
        if want_active and not before.active:
            self.plan_start(before, merged, plan, current)
        elif not want_active and before.active:
            plan.add('stop', f'stopping {self.label()}', lambda: self.stop(current()))
        elif before.active and not live and self.needs_restart(before, merged):
            if self.params.get('restart'):
                plan.add('restart', f'restarting {self.label()} to apply its new definition',
                         lambda: self.restart(current(), merged))
            else:
                plan.restart_required = True
        after.active = want_active

        autostart = self.params.get('autostart')
        if autostart is not None and autostart != before.autostart:
            plan.add('autostart' if autostart else 'disable-autostart',
                     f"{'enabling' if autostart else 'disabling'} autostart of {self.label()}",
                     lambda: self.set_autostart(current(), autostart))
            after.autostart = autostart
        return plan

    def plan_live_updates(self, before: Snapshot, desired, plan: Plan) -> bool:
        """Hook: apply the whole difference to the running object and its persistent definition
        without a restart (networks). Return True when the planned updates cover it all."""
        return False

    def validate_definition(self, merged, before: Snapshot) -> None:
        """Hook: checks against the rest of the host before a definition is written
        (conflicting names, bridges, subnets...). Raise KvmError to refuse."""

    def plan_start(self, before: Snapshot, merged, plan: Plan, current) -> None:
        plan.add('start', f'starting {self.label()}', lambda: self.start(current()))

    def needs_restart(self, before: Snapshot, merged) -> bool:
        """True when the running object does not yet use (part of) the persistent definition."""
        return before.live_xml is not None and bool(_xml.differences(merged, before.live_xml, self.authoritative))

    def restart(self, handle, merged) -> None:
        self.stop(handle)
        self.start(handle)

    # ---- running -------------------------------------------------------------------------
    def converge(self) -> dict:
        """Plan, apply unless in check mode, and build the module result."""
        before = self.snapshot()
        plan = self.plan(before)
        apply_plan(plan, self.check_mode)
        final = self.snapshot() if not self.check_mode else None
        result = {
            'changed': bool(plan.actions),
            'actions': [action.name for action in plan.actions],
            'restart_required': plan.restart_required,
            self.result_key: self.result_info(before, plan, final),
            'diff': {
                'before': diff_text(before, self.display),
                'after': diff_text(plan.after, self.display),
                'before_header': f'{self.label()} (before)',
                'after_header': f'{self.label()} (after)',
            },
        }
        result.update(plan.extra)
        if plan.warnings:
            result['warnings'] = plan.warnings
        return result

    def result_info(self, before: Snapshot, plan: Plan, final: Snapshot | None) -> dict:
        """The resource as it is after a real run, or as predicted in check mode."""
        if final is not None:
            return self.info(final) if final.exists else {'name': self.name, 'state': 'absent'}
        if not plan.after.exists:
            return {'name': self.name, 'state': 'absent'}
        predicted = self.info(before) if before.exists else {'name': self.name, 'uuid': None}
        predicted.update(self.definition_facts(plan.after.xml))
        predicted.update(plan.after.state())
        if plan.after.facts is None:
            predicted['state'] = 'active' if plan.after.active else 'inactive'
        predicted['xml'] = _xml.to_text(self.display(plan.after.xml))
        return predicted

    # ---- to implement per resource ------------------------------------------------------
    def lookup(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def read(self, handle) -> Snapshot:  # pragma: no cover - abstract
        raise NotImplementedError

    def desired_xml(self, before: Snapshot):  # pragma: no cover - abstract
        raise NotImplementedError

    def info(self, snapshot: Snapshot) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def definition_facts(self, definition) -> dict:
        """The facts of ``info`` that follow from a definition alone (for check mode)."""
        return {}


def apply_plan(plan: Plan, check_mode: bool) -> None:
    """Run the plan's actions in order; check mode runs none. A failure raises a KvmError that
    reports how far the run got: ``changed``, ``actions`` (the plan), ``actions_done`` (applied
    before the failure) and ``failed_action``."""
    if check_mode:
        return
    done = []
    for action in plan.actions:
        try:
            with guard(action.describe):
                action.run()
        except Exception as err:  # pylint: disable=broad-exception-caught  # reported, not raised raw
            failure = as_failure(err, action.describe)
            failure.details.update(changed=bool(done), actions=[a.name for a in plan.actions],
                                   actions_done=done, failed_action=action.name)
            raise failure from None
        done.append(action.name)
