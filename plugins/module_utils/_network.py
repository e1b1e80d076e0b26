# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Virtual networks on the engine's skeleton: reading, the desired definition and the plan. The
options -> XML builder is in ``_network_builder`` (an ``xml`` run never imports it), and the
steps only a change takes (checks before a write, live updates, restarts that keep guests
connected) in ``_network_changes`` (docs/architecture.md, "Speed")."""

from __future__ import annotations

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError
from ansible_collections.hypervisor.kvm.plugins.module_utils._network_facts import (
    DNSMASQ_OPTION,
    DNSMASQ_OPTIONS,
    bridge_name,
    definition_facts,
    inactive_xml,
    name_dnsmasq_prefix,
    network_info,
)
from ansible_collections.hypervisor.kvm.plugins.module_utils._options import xml_patches_option
from ansible_collections.hypervisor.kvm.plugins.module_utils._resource import Observed, Plan, Resource

STRUCTURED = ('forward', 'bridge', 'mtu', 'domain', 'ipv4', 'ipv6', 'dns', 'nat_ports', 'routes', 'dnsmasq_options')
# Lists the user owns once they describe their parent (see _xml.differences).
OWNED_LISTS = frozenset({
    'ip/dhcp', 'ip/dhcp/host', 'ip/dhcp/range', 'ip/dhcp/bootp', 'ip/tftp',
    'dns/host', 'dns/host/hostname', 'dns/txt', 'dns/srv', 'dns/forwarder',
})
# The host devices of a forward mode on a pool of them, owned with the option forward.
FORWARD_LISTS = frozenset({'forward', 'forward/interface', 'forward/pf', 'forward/address'})
# libvirt's dnsmasq options, owned (in order) with the option dnsmasq_options.
DNSMASQ_LISTS = frozenset({DNSMASQ_OPTIONS, f'{DNSMASQ_OPTIONS}/{DNSMASQ_OPTION}'})


class Network(Resource):
    kind = 'network'
    result_key = 'network'
    root_tag = 'network'
    lookup_call = 'networkLookupByName'
    missing = 'network'

    def __init__(self, conn, params: dict, check_mode: bool = False, shared: dict | None = None, diff: bool = False):
        super().__init__(conn, params, check_mode, shared, diff)
        owned = set(OWNED_LISTS)
        if params.get('xml') or params.get('forward'):
            owned |= FORWARD_LISTS  # no <forward> wanted means isolated: remove it
        if params.get('xml') or params.get('ipv4') or params.get('ipv6'):
            owned.add('ip')
        if params.get('xml') or params.get('routes') is not None:
            owned.add('route')
        if params.get('xml') or params.get('dnsmasq_options') is not None:
            owned |= DNSMASQ_LISTS
        self.authoritative = frozenset(owned)

    # ---- desired definition ---------------------------------------------------------------
    def clean(self, element):
        """Normalised for comparison; list items sorted, since live updates append at the end."""
        element = super().clean(element)
        if element is None:
            return None
        name_dnsmasq_prefix()  # diffs and definitions say dnsmasq:, as libvirt does
        element.attrib.pop('connections', None)  # how many guests are attached right now
        for path in ('ip/dhcp', 'dns'):
            for parent in element.findall(path):
                items = sorted(list(parent), key=lambda child: (child.tag, _xml.to_text(child, pretty=False)))
                for child in list(parent):
                    parent.remove(child)
                parent.extend(items)
        return element

    def desired_xml(self, before: Observed, plan: Plan):
        if self.params.get('xml'):
            return self.xml_document()
        from ansible_collections.hypervisor.kvm.plugins.module_utils._network_builder import (  # pylint: disable=import-outside-toplevel
            build,  # structured options only: an xml run never compiles it
        )
        return build(self, before)

    # ---- checks against the other networks ------------------------------------------------
    def starts_now(self, before: Observed) -> bool:
        """Whether this task makes the network run on the definition it writes: it starts it, or
        restarts it (restart: true) while it runs."""
        state = self.params['state']
        if state == 'active' and not before.active:
            return True
        return before.active and state != 'inactive' and bool(self.params.get('restart'))

    def validate_definition(self, merged, before: Observed, plan: Plan) -> None:
        changes().validate_definition(self, merged, before, plan)

    def plan_absent(self, before: Observed, plan: Plan) -> None:
        """A running network with running guests on it is not removed (they would lose their
        network) unless ``force``."""
        if before.exists and before.active and not self.params.get('force'):
            attached = changes().attached_interfaces(self, bridge_name(before.handle))
            guests = sorted({found['domain'] for found in attached})
            if guests:
                raise KvmError(f"{self.label()} has running guests attached: {', '.join(guests)}. Removing it would "
                               'cut them off, so nothing was changed: stop them (or move them to another network) '
                               'first, or force: true', guests=guests)
        super().plan_absent(before, plan)

    # ---- live updates ---------------------------------------------------------------------

    # ---- restarts that keep guests connected ----------------------------------------------

    def plan_live_updates(self, before: Observed, plan: Plan) -> bool:
        return changes().plan_live_updates(self, before, plan)

    def runs_older_definition(self, before: Observed, definition) -> bool:
        """True when the running network differs from ``definition`` (a restart would apply it)."""
        return before.live_xml is not None and bool(_xml.differences(definition, before.live_xml,
                                                                     self.authoritative))

    def needs_restart(self, before: Observed, plan: Plan) -> bool:
        return self.runs_older_definition(before, plan.merged)

    def plan_state(self, before: Observed, plan: Plan) -> None:
        if self.starts_now(before):
            changes().check_host_routes(self, plan.merged if plan.merged is not None else before.xml)
        super().plan_state(before, plan)
        if any(action.name == 'restart' for action in plan.actions):
            # A restart detaches the running guests' interfaces from the bridge: say which
            # (check mode) or put them back and say how it went.
            plan.context['interfaces'] = changes().attached_interfaces(self, bridge_name(before.handle))
            plan.extra['reconnected'] = list(plan.context['interfaces']) if self.check_mode else []
            plan.extra['disconnected'] = []

    def restart(self, handle, plan: Plan) -> None:
        changes().restart(self, handle, plan)

    def remember_pending(self, plan: Plan) -> None:
        self.shared.setdefault('networks', set()).add(self.name)

    # ---- libvirt calls --------------------------------------------------------------------
    def read(self, handle) -> Observed:
        active = bool(handle.isActive())
        live = _xml.parse_xml(handle.XMLDesc(0), 'libvirt network XML')
        return Observed(
            exists=True, handle=handle, active=active, autostart=bool(handle.autostart()),
            persistent=bool(handle.isPersistent()), xml=self.clean(inactive_xml(handle, active, live)),
            live_xml=self.clean(live) if active else None,
        )

    def define(self, xml_text: str):
        return self.conn.networkDefineXML(xml_text)

    def info(self, observed: Observed, plan: Plan | None = None) -> dict:
        return network_info(observed.handle)

    def definition_facts(self, definition) -> dict:
        return definition_facts(definition)


def changes():
    """``_network_changes``, imported when a step that changes something is planned or runs."""
    from ansible_collections.hypervisor.kvm.plugins.module_utils import (  # pylint: disable=import-outside-toplevel
        _network_changes,
    )
    return _network_changes


def network_options() -> dict:
    """kvm_network's options (but uri), also the items of kvm_guests' ``networks``."""
    ranges = dict(type='list', elements='dict', options=dict(
        start=dict(type='str', required=True),
        end=dict(type='str', required=True),
    ))
    return dict(
        name=dict(type='str'),
        state=dict(type='str', default='present', choices=['present', 'active', 'inactive', 'absent']),
        forward=dict(type='raw'),  # a mode, or a dict with the host devices (_options.FORWARD_SPEC)
        bridge=dict(type='raw'),
        mtu=dict(type='int'),
        domain=dict(type='str'),
        ipv4=dict(type='dict', options=dict(
            address=dict(type='str', required=True),
            prefix=dict(type='int'),
            netmask=dict(type='str'),
            tftp=dict(type='dict', options=dict(root=dict(type='str', required=True))),
            dhcp=dict(type='dict', options=dict(
                ranges=ranges,
                hosts=dict(type='list', elements='dict', options=dict(
                    mac=dict(type='str'), name=dict(type='str'), ip=dict(type='str', required=True),
                    id=dict(type='str'))),
                bootp=dict(type='dict', options=dict(file=dict(type='str', required=True), server=dict(type='str'))),
            )),
        )),
        ipv6=dict(type='dict', options=dict(
            address=dict(type='str', required=True),
            prefix=dict(type='int'),
            dhcp=dict(type='dict', options=dict(
                ranges=ranges,
                hosts=dict(type='list', elements='dict', options=dict(
                    name=dict(type='str'), id=dict(type='str'), ip=dict(type='str', required=True))),
            )),
        )),
        dns=dict(type='dict', options=dict(
            enable=dict(type='bool'),
            hosts=dict(type='list', elements='dict', options=dict(
                ip=dict(type='str', required=True),
                hostnames=dict(type='list', elements='str', required=True))),
            forwarders=dict(type='list', elements='raw'),
            srv=dict(type='list', elements='dict', options=dict(
                service=dict(type='str', required=True), protocol=dict(type='str', required=True),
                domain=dict(type='str'), target=dict(type='str'), port=dict(type='int'),
                priority=dict(type='int'), weight=dict(type='int'))),
            txt=dict(type='list', elements='dict', options=dict(
                name=dict(type='str', required=True), value=dict(type='str', required=True))),
        )),
        nat_ports=dict(type='dict', options=dict(
            start=dict(type='int', required=True),
            end=dict(type='int', required=True),
        )),
        routes=dict(type='list', elements='dict', options=dict(
            address=dict(type='str', required=True),
            prefix=dict(type='int', required=True),
            gateway=dict(type='str', required=True),
            metric=dict(type='int'),
        )),
        dnsmasq_options=dict(type='list', elements='str'),
        xml=dict(type='str'),
        xml_patches=xml_patches_option(),
        autostart=dict(type='bool'),
        restart=dict(type='bool', default=False),
        force=dict(type='bool', default=False),
    )
