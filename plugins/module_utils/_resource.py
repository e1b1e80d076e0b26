# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine behind every resource module (docs/architecture.md, "The engine").

read actual -> build desired (libvirt's spelling) -> plan (a list of actions) -> apply unless
check mode -> result.

Check mode and real runs share every step but the side effects: ``changed``, ``actions``,
``restart_required`` and ``diff`` all come from the plan, so check mode reports exactly what a
real run would do. The diff's "after" is the *predicted* definition (libvirt's current
definition with the desired one merged over it) in both modes. The diff is a rendering of the
plan, made only when the run asked for it (``--diff``, ``module._diff``): without it the result
has no ``diff``, and ``changed``, ``actions`` and everything else are the same.

Adapters (``_pool.py``, ``_network.py``, ``_domain.py``, ``_volume.py``) declare their lookup
and XML rules as data and fill the hooks below; they keep nothing between planning and
applying. The :class:`Plan` is the only carrier of a run's state (its ``context``), so an action
can only do what the plan lists.
"""

from __future__ import annotations

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import (
    as_failure,
    guard,
    lookup,
)

STATE_KEYS = ('active', 'autostart', 'persistent')


def xml_patches():
    """``_xml_patches``, imported by a run that has some."""
    from ansible_collections.hypervisor.kvm.plugins.module_utils import (  # pylint: disable=import-outside-toplevel
        _xml_patches,
    )
    return _xml_patches


class Observed:
    """What libvirt says about one object (``exists`` False when there is none).

    ``xml`` is the inactive (persistent) definition and ``live_xml`` the running one, volatile
    parts removed; ``handle`` the libvirt object and ``parent`` the one it lives in (a volume's
    pool); ``facts`` the small state dict of the diff, when it is not ``STATE_KEYS``.
    """

    # A plain class with __slots__, not a dataclass: every resource module run imports this file,
    # and @dataclass builds each class's methods with exec() at import time; a dataclass with
    # slots also needs Python 3.10 (slots=True), the modules support 3.9 (tests/config.yml).
    __slots__ = ('exists', 'xml', 'live_xml', 'active', 'autostart', 'persistent', 'handle', 'parent', 'facts')

    def __init__(self, exists=False, xml=None, live_xml=None, active=False, autostart=False, persistent=False,
                 handle=None, parent=None, facts=None):
        self.exists, self.xml, self.live_xml = exists, xml, live_xml
        self.active, self.autostart, self.persistent = active, autostart, persistent
        self.handle, self.parent, self.facts = handle, parent, facts

    def state(self) -> dict:
        if not self.exists:
            return {}
        if self.facts is not None:
            return dict(self.facts)
        return {key: getattr(self, key) for key in STATE_KEYS}


class Action:
    """One step of a plan: ``name`` is what users see in ``actions``; ``run`` does it. A step
    that changes nothing (waiting for an address) has ``change`` False; ``reverts`` names earlier
    steps a failure of this one undoes (a half-written volume deleted); when the undoing fails
    too, the step sets ``plan.context['not_reverted']`` and they count as done. A step that fails
    after a change it could not undo (a temporary volume left) sets ``plan.context['partial']``
    and counts as done itself."""

    __slots__ = ('name', 'describe', 'run', 'change', 'reverts')

    def __init__(self, name: str, describe: str, run, change: bool = True, reverts: tuple = ()):
        self.name, self.describe, self.run, self.change, self.reverts = name, describe, run, change, reverts


class Plan:
    """What a run will do, and everything the run knows: the only carrier of per-run state.

    ``after`` is the predicted end state; ``desired`` the definition the user specified, cleaned;
    ``merged`` the definition to write (libvirt's current one with the desired merged in);
    ``extra`` resource-specific result keys; ``context`` the values the actions share (the handle
    a define returns, the addresses a wait found).
    """

    def __init__(self, before: Observed | None = None):
        self.before = before if before is not None else Observed()
        self.actions = []
        self.after = Observed()
        self.restart_required = False
        self.desired = None
        self.merged = None
        self.warnings = []
        self.extra = {}
        self.context = {}

    def add(self, name: str, describe: str, run, change: bool = True,
            reverts: tuple = ()) -> None:
        self.actions.append(Action(name, describe, run, change, reverts))

    def insert_before(self, names: tuple, action: Action) -> None:
        """Insert ``action`` before the first action named in ``names`` (else at the end)."""
        position = next((index for index, planned in enumerate(self.actions) if planned.name in names),
                        len(self.actions))
        self.actions.insert(position, action)

    def names(self) -> list:
        """The names of the steps that change something, in order (the result's ``actions``)."""
        return [action.name for action in self.actions if action.change]

    def handle(self):
        """The libvirt object: the one libvirt had, or the one the plan's define created."""
        return self.context.get('handle', self.before.handle)


def diff_text(observed: Observed, display=None) -> str:
    """One side of ``--diff``: the small state dict, then the inactive XML (through ``display``,
    which hides secrets)."""
    if not observed.exists:
        return ''
    lines = [f'{key}: {str(value).lower() if isinstance(value, bool) else value}'
             for key, value in observed.state().items()]
    element = display(observed.xml) if display else observed.xml
    return '\n'.join(lines) + ('\n' if lines else '') + _xml.to_text(element)


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
            if not plan.context.pop('not_reverted', False):  # the failed step undid what it names
                done = [step for step in done if step.name not in action.reverts]
            if plan.context.pop('partial', False):  # it failed after a change it could not undo
                done.append(action)
            failure.details.update(changed=any(step.change for step in done), actions=plan.names(),
                                   actions_done=[step.name for step in done if step.change],
                                   failed_action=action.name)
            raise failure from None
        done.append(action)


def read_back(plan: Plan, read, what: str, ran: bool = True):
    """``read()`` after the plan's actions ran (``ran``; false in check mode): the object as it
    now is. A failure here comes after the changes, so it is reported as they happened
    (``changed``, ``actions_done``), not as a run that changed nothing."""
    try:
        with guard(what):
            return read()
    except Exception as err:  # pylint: disable=broad-exception-caught  # reported, not raised raw
        failure = as_failure(err, what)
        done = [action.name for action in plan.actions if action.change] if ran else []
        failure.details.update(changed=bool(done), actions=plan.names(), actions_done=done,
                               failed_action='read-back')
        raise failure from None


def plan_result(plan: Plan, subject: str, sides: tuple | None = None) -> dict:
    """What every module returns about a plan, built in one place: ``changed`` and ``actions``
    (what was, or in check mode would be, done, in order), the plan's extra facts and warnings,
    and, when the run asked for a diff, the diff of ``subject`` from ``sides`` (the before and
    after texts; None without ``--diff``: the caller renders them only when asked). The failure
    path is :func:`apply_plan`'s and :func:`read_back`'s (``changed``, ``actions``,
    ``actions_done``, ``failed_action``)."""
    result = {'changed': bool(plan.names()), 'actions': plan.names()}
    if sides is not None:
        result['diff'] = {'before': sides[0], 'after': sides[1],
                          'before_header': f'{subject} (before)', 'after_header': f'{subject} (after)'}
    result.update(plan.extra)
    if plan.warnings:
        result['warnings'] = list(plan.warnings)
    return result


class Resource:
    """The skeleton every per-resource adapter fills (docs/architecture.md, "Adapters").

    Declared as data: ``kind`` (for messages), ``result_key``, ``root_tag``, ``lookup_call`` (the
    connection method that finds an object by name), ``missing`` (the kind of object, for which
    ``_libvirt.lookup`` knows libvirt's "no such object" code), ``volatile`` and
    ``authoritative`` (the XML rules), ``lifecycle`` (objects that are defined, started and
    stopped; volumes are not).

    Hooks, each with a default that fits pools and networks: :meth:`desired_xml`,
    :meth:`plan_definition` (content sources for volumes), :meth:`plan_live_updates` (networks,
    domains), :meth:`plan_state` (power states for domains), :meth:`plan_absent`,
    :meth:`validate_definition`, :meth:`needs_restart`, and the libvirt calls :meth:`define`,
    :meth:`start`, :meth:`stop`, :meth:`undefine`, :meth:`set_autostart`, :meth:`read`, :meth:`info`.
    """

    kind = 'object'
    result_key = 'object'
    root_tag = ''
    lookup_call = ''
    missing = ''
    lifecycle = True
    volatile = ()  # tag paths that change on their own (sizes, runtime ids): never compared
    authoritative = frozenset()  # tag paths of lists the user owns (see _xml.reconcile)

    def __init__(self, conn, params: dict, check_mode: bool = False, shared: dict | None = None, diff: bool = False):
        self.conn = conn
        self.params = params
        self.check_mode = check_mode
        self.diff = diff  # the run asked for a diff (--diff): only then is one rendered
        # what several resources converged in one module run know of each other (kvm_guests)
        self.shared = shared if shared is not None else {}
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

    def xml_document(self):
        """The ``xml`` option, parsed; its root element must be this resource's ``root_tag``."""
        document = _xml.parse_xml(self.params['xml'], 'xml')
        if document.tag != self.root_tag:
            raise KvmError(f'xml: expected a <{self.root_tag}> document, got <{document.tag}>')
        return document

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

    def lookup(self):
        """The libvirt object by name, None when there is none."""
        return lookup(getattr(self.conn, self.lookup_call), self.name, self.missing)

    def observe(self) -> Observed:
        with guard(f'reading {self.label()}'):
            handle = self.lookup()
            if handle is None:
                return Observed()
            return self.read(handle)

    # ---- planning ------------------------------------------------------------------------
    def plan(self, before: Observed) -> Plan:
        plan = Plan(before=before)
        self.check_options(plan)
        if self.params['state'] == 'absent':
            self.plan_absent(before, plan)
            return plan
        self.plan_definition(before, plan)
        if self.lifecycle:
            self.plan_state(before, plan)
            self.plan_autostart(before, plan)
        if not before.exists:
            self.remember_pending(plan)
        return plan

    def remember_pending(self, plan: Plan) -> None:
        """Hook: note in ``shared`` what this plan creates, so that the next resources of the same
        run (kvm_guests) can be planned before it is applied, and in check mode as if it existed."""

    def check_options(self, plan: Plan) -> None:
        """Hook: option combinations the argument spec cannot express. Raise KvmError to refuse."""

    def desired(self, before: Observed, plan: Plan):
        """The desired definition in libvirt's own spelling (docs/architecture.md, "Equal means
        equal to libvirt"); what libvirt would not keep is left out, with a warning."""
        written = self.desired_xml(before, plan)
        if self.params.get('xml_patches'):
            xml_patches().patch_desired(written, self.patches(written.tag))
        desired = self.clean(written)
        if before.exists and not _xml.differences(desired, before.xml, self.authoritative):
            return desired  # equal as written: libvirt's spelling cannot change that (and costs nothing)
        from ansible_collections.hypervisor.kvm.plugins.module_utils._canonical import (  # pylint: disable=import-outside-toplevel
            canonical,  # only when something differs: most runs of a converged host never need it
        )
        # as written (only layout and volatile parts removed): an adapter's own spelling in clean()
        # (a domain's vcpu current) is not something libvirt "does not keep"
        projected, dropped = canonical(Resource.clean(self, written), self.authoritative)
        if dropped:
            plan.warnings.append(
                f"libvirt does not keep these parts of the definition of {self.label()}, so they are left out of "
                f"the comparison (default values it does not write, or settings this libvirt version ignores): "
                f"{'; '.join(dropped)}")
        return self.clean(projected)

    def patches(self, root_tag: str) -> list:
        """The checked ``xml_patches`` (see ``_xml_patches``)."""
        return xml_patches().checked_patches(self.params['xml_patches'], root_tag)

    def plan_definition(self, before: Observed, plan: Plan) -> None:
        """Define a new object, or redefine one whose definition differs (unless live updates
        write the whole difference)."""
        desired = self.desired(before, plan)
        differences, merged = _xml.reconcile(desired, before.xml, self.authoritative)
        if self.params.get('xml_patches'):
            differences = differences + xml_patches().patch_merged(merged, self.patches(merged.tag))
        merged = self.clean(merged)
        plan.desired, plan.merged = desired, merged
        new = not before.exists or not before.persistent
        drift = not new and self.drifted(before, differences, plan)
        after = plan.after
        after.exists, after.persistent = True, True
        after.active, after.autostart = before.active, before.autostart
        after.xml = merged if new or drift else before.xml  # nothing to write: the diff shows no change
        covered = plan.context['live'] = drift and self.plan_live_updates(before, plan)
        if new or (drift and not covered):
            self.validate_definition(merged, before, plan)
            text = _xml.to_text(merged, pretty=False)

            def define():
                plan.context['handle'] = self.define(text)
            action = Action('define', f'defining {self.label()}', define)
            if self.define_after_live:
                plan.actions.append(action)  # after the live changes planned above
            else:
                plan.actions.insert(0, action)

    # A resource whose live changes touch the running object only (a domain) writes its new
    # definition after them: the definition is the record that the change is complete, so a run
    # that fails between the two leaves a difference the next run sees and finishes, instead of
    # a definition that already says "done" over a running object that never got the change.
    define_after_live = False

    def drifted(self, before: Observed, differences: list, plan: Plan) -> bool:
        """Hook: whether an existing object's definition differs from the desired one."""
        return bool(differences)

    def plan_live_updates(self, before: Observed, plan: Plan) -> bool:
        """Hook: plan changes to the running object. Return True when they also write the whole
        difference into the persistent definition (no define needed)."""
        return False

    def validate_definition(self, merged, before: Observed, plan: Plan) -> None:
        """Hook: checks against the rest of the host before a definition is written
        (conflicting names, bridges, subnets...). Raise KvmError to refuse, or warn in ``plan``."""

    def plan_state(self, before: Observed, plan: Plan) -> None:
        """Hook: the object's running state (present keeps it, active starts, inactive stops),
        and a restart when a running object does not use its new definition yet."""
        state = self.params['state']
        want_active = {'active': True, 'inactive': False}.get(state, before.active)
        if want_active and not before.active:
            self.plan_start(before, plan)
        elif not want_active and before.active:
            plan.add('stop', f'stopping {self.label()}', lambda: self.stop(plan.handle()))
        elif before.active and not plan.context.get('live') and self.needs_restart(before, plan):
            if self.params.get('restart'):
                plan.add('restart', f'restarting {self.label()} to apply its new definition',
                         lambda: self.restart(plan.handle(), plan))
            else:
                plan.restart_required = True
        plan.after.active = want_active

    def plan_start(self, before: Observed, plan: Plan) -> None:
        plan.add('start', f'starting {self.label()}', lambda: self.start(plan.handle()))

    def plan_autostart(self, before: Observed, plan: Plan) -> None:
        autostart = self.params.get('autostart')
        if autostart is not None and autostart != before.autostart:
            plan.add('autostart' if autostart else 'disable-autostart',
                     f"{'enabling' if autostart else 'disabling'} autostart of {self.label()}",
                     lambda: self.set_autostart(plan.handle(), autostart))
            plan.after.autostart = autostart

    def plan_absent(self, before: Observed, plan: Plan) -> None:
        if not before.exists:
            return
        if before.active:
            plan.add('stop', f'stopping {self.label()}', lambda: self.stop(before.handle))
        if before.persistent:
            plan.add('undefine', f'undefining {self.label()}', lambda: self.undefine(before.handle))

    def needs_restart(self, before: Observed, plan: Plan) -> bool:
        """True when the running object does not yet use (part of) the persistent definition."""
        return before.live_xml is not None and bool(_xml.differences(plan.merged, before.live_xml,
                                                                     self.authoritative))

    def restart(self, handle, plan: Plan) -> None:
        self.stop(handle)
        self.start(handle)

    # ---- running -------------------------------------------------------------------------
    def converge(self) -> dict:
        """Plan, apply unless in check mode, and build the module result."""
        return self.conclude(self.prepare())

    def prepare(self) -> Plan:
        """Read the object and plan: nothing changes yet."""
        return self.plan(self.observe())

    def conclude(self, plan: Plan, brief: bool = False) -> dict:
        """Apply a plan made by :meth:`prepare` (unless in check mode) and build the result.

        ``brief`` (kvm_guests, for each of its many resources): when the plan has nothing to do,
        the result holds :meth:`brief_info` and no diff, and nothing is read again."""
        before = plan.before
        if brief and not plan.actions:
            info = self.brief_info(before, plan) if before.exists else {'name': self.name, 'state': 'absent'}
            result = {'changed': False, 'actions': [], 'restart_required': plan.restart_required,
                      self.result_key: info}
            result.update(plan.extra)
            if plan.warnings:
                result['warnings'] = plan.warnings
            return result
        apply_plan(plan, self.check_mode)
        if self.check_mode:
            final = None
        elif plan.actions:  # read again only when something ran: a no-op's object is as it was read
            final = read_back(plan, self.observe, f'reading {self.label()} after the changes')
        else:
            final = before
        result = plan_result(plan, self.label(), self.diff_sides(plan) if self.diff else None)
        result['restart_required'] = plan.restart_required
        result[self.result_key] = read_back(plan, lambda: self.result_info(plan, final),
                                            f'reading {self.label()} after the changes', ran=not self.check_mode)
        return result

    def diff_sides(self, plan: Plan) -> tuple:
        """The before and after texts of ``--diff``."""
        before = plan.before
        before_text = diff_text(before, self.display)
        unchanged = plan.after.xml is before.xml and plan.after.exists == before.exists and (
            plan.after.state() == before.state())
        return before_text, before_text if unchanged else diff_text(plan.after, self.display)

    def result_info(self, plan: Plan, final: Observed | None) -> dict:
        """The resource as it is after a real run, or as predicted in check mode."""
        if final is not None:
            return self.info(final, plan) if final.exists else {'name': self.name, 'state': 'absent'}
        if not plan.after.exists:
            return {'name': self.name, 'state': 'absent'}
        before = plan.before
        predicted = self.info(before, plan) if before.exists else {'name': self.name, 'uuid': None}
        predicted.update(self.definition_facts(plan.after.xml))
        predicted.update(plan.after.state())
        if plan.after.facts is None:
            predicted['state'] = 'active' if plan.after.active else 'inactive'
        predicted['xml'] = _xml.to_text(self.display(plan.after.xml))
        return predicted

    def brief_info(self, observed: Observed, plan: Plan) -> dict:
        """What a brief result holds of an existing object that did not change (all of
        :meth:`info` unless a resource says less is enough)."""
        return self.info(observed, plan)

    # ---- to implement per resource ------------------------------------------------------
    def read(self, handle) -> Observed:  # pragma: no cover - abstract
        raise NotImplementedError

    def desired_xml(self, before: Observed, plan: Plan):  # pragma: no cover - abstract
        raise NotImplementedError

    def info(self, observed: Observed, plan: Plan | None = None) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def definition_facts(self, definition) -> dict:
        """The facts of ``info`` that follow from a definition alone (for check mode)."""
        return {}

    def define(self, xml_text: str):  # pragma: no cover - abstract
        raise NotImplementedError

    def start(self, handle) -> None:
        handle.create()

    def stop(self, handle) -> None:
        handle.destroy()

    def undefine(self, handle) -> None:
        handle.undefine()

    def set_autostart(self, handle, enabled: bool) -> None:
        handle.setAutostart(1 if enabled else 0)
