# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
name: libvirt
short_description: The guests of one or more libvirt hosts as inventory hosts
version_added: 0.1.0
description:
  - Turns the domains (guests) of one or more libvirt URIs into Ansible hosts. The inventory
    hostname is the domain name; a name found on two URIs gives a warning and the host of the
    first URI in O(uri) is kept.
  - Reads each URI in bulk - the domain list, the bulk domain statistics, the DHCP leases of every
    active network (one call per network), one definition (XML) per guest, and the guest agent
    or the ARP table only for running guests that still lack an address (see O(address_sources)).
  - "Groups: C(state_<state>) (V(running), V(shutoff), V(paused), V(crashed), V(pmsuspended)),
    C(network_<name>) for each libvirt network a guest has an interface on, and
    C(hypervisor_<hostname>) for the libvirt host the guest runs on (its hostname as libvirt
    reports it). Characters that are not allowed in group names become C(_)."
  - "Host variables, all prefixed C(kvm_) so that they never override a role's defaults:
    C(kvm_uri) (the URI the guest was read from), C(kvm_hypervisor) (the libvirt host's hostname),
    C(kvm_uuid), C(kvm_state), C(kvm_state_reason), C(kvm_persistent), C(kvm_autostart),
    C(kvm_vcpus), C(kvm_memory) (current memory in bytes), C(kvm_macs) (in interface order),
    C(kvm_networks) (libvirt network names, sorted), C(kvm_interfaces) (C(type), C(mac),
    C(network), C(bridge), C(device), C(model), C(addresses) per interface), C(kvm_ips) (every
    address found, in interface order), C(kvm_title) and C(kvm_description) (the domain's
    C(<title>) and C(<description>), V(null) when unset) and C(kvm_metadata) (a dict with one
    entry per element under the domain's C(<metadata>): its XML namespace URI mapped to the
    element as compact XML text), C(kvm_meta) (the collection's own metadata, set by
    M(hypervisor.kvm.kvm_domain)'s O(hypervisor.kvm.kvm_domain#module:metadata), as a dict; V({})
    when unset) and C(kvm_snapshots) (the guest's snapshots, oldest first, with
    the keys of M(hypervisor.kvm.kvm_snapshot)'s C(snapshot) return; read only for guests that
    have snapshots)."
  - C(ansible_host) is the first IPv4 address found, following O(address_sources) in order and
    the interfaces in definition order, else the first IPv6 address; loopback and link-local
    addresses are never used. A guest with no address found has no C(ansible_host).
  - Only guests that are running, paused or suspended are asked for addresses; a guest that is
    shut off has empty C(kvm_ips) (a DHCP lease it left behind is not its address any more).
  - Values read from libvirt are not templates - a title containing C({{) stays literal text.
author:
  - hypervisor.kvm maintainers (@hypervisor-kvm)
requirements:
  - libvirt-python on the controller, in the Python that runs Ansible (the C(python3-libvirt)
    package of Debian, Ubuntu, Fedora, RHEL and SUSE for the system Python, or
    C(pip install libvirt-python) in a virtualenv, which needs C(libvirt-dev) and C(pkg-config)).
extends_documentation_fragment:
  - ansible.builtin.constructed
  - ansible.builtin.inventory_cache
notes:
  - The inventory file must be named C(*.kvm.yml) or C(*.kvm.yaml).
  - An option this plugin does not know is an error (a misspelled option is never silently ignored).
  - A URI that cannot be reached fails the inventory source with a message naming the URI and
    libvirt's error (with O(skip_unreachable=true) it is a warning and the other URIs are still
    read). How long a connection attempt takes is libvirt's transport's own timeout - a refused
    connection fails at once, a host that drops packets takes as long as TCP or SSH gives up.
  - With O(cache=true) the guests read are stored by the cache plugin; the cache entry is only
    used while O(uri), O(address_sources), O(name_patterns) and O(states) are the ones it was
    read with, and a read in which a URI was skipped is never cached.
seealso:
  - module: hypervisor.kvm.kvm_domain_info
options:
  plugin:
    description: The name of this plugin; the file is for this plugin only when it says so.
    required: true
    type: str
    choices: [hypervisor.kvm.libvirt]
  uri:
    description:
      - One libvirt URI or a list of them, for example V(qemu:///system),
        V(qemu+ssh://root@kvm1.example.com/system) or V(qemu+tcp://kvm2:16509/system).
      - The URIs are read in this order; a guest name found on two of them is kept from the first.
      - A single string is split at commas (Ansible's rule for list options); write a URI that
        contains a comma as a one-item list.
      - When not set, the E(LIBVIRT_DEFAULT_URI) environment variable, else V(qemu:///system).
    type: list
    elements: str
    default: [qemu:///system]
    env:
      - name: LIBVIRT_DEFAULT_URI
  address_sources:
    description:
      - Where the addresses of C(kvm_ips) and C(ansible_host) come from, asked in this order;
        a later source is only asked for a guest while one of its interfaces has no address yet.
      - V(lease) - the DHCP leases of libvirt's own networks (read once per network for all guests).
      - V(agent) - the QEMU guest agent inside the guest (one call per running guest that has a
        connected agent channel); finds static addresses and addresses on bridged interfaces.
      - V(arp) - the libvirt host's ARP table (one call per running guest); only knows guests that
        sent traffic recently.
      - An empty list reads no addresses (no C(ansible_host) is set).
    type: list
    elements: str
    choices: [lease, agent, arp]
    default: [lease, agent]
  name_patterns:
    description:
      - Only guests whose name matches one of these patterns; empty means every guest.
      - A pattern is a shell-style glob (V(web*), V(db-[0-9])), matched against the whole name,
        case-sensitively; a pattern starting with C(~) is a Python regular expression searched
        anywhere in the name (anchor it with C(^) and C($)).
      - A pattern starting with C(!) excludes the guests it matches (V(!*-template),
        V(!~^tmp-)), whatever the other patterns include.
      - Write the patterns as a YAML list; a single string is split at commas.
    type: list
    elements: str
    default: []
  states:
    description:
      - Only guests in one of these power states; empty means every state.
    type: list
    elements: str
    choices: [running, paused, shutoff, crashed, pmsuspended]
    default: []
  skip_unreachable:
    description:
      - When a URI cannot be read, warn and go on with the other URIs instead of failing the
        inventory source.
    type: bool
    default: false
'''

EXAMPLES = r'''
# demo.kvm.yml: every guest of the local system daemon
plugin: hypervisor.kvm.libvirt

# cluster.kvm.yml: running web guests of two hosts, addresses from DHCP leases then the agent
plugin: hypervisor.kvm.libvirt
uri:
  - qemu+ssh://root@kvm1.example.com/system?keyfile=/home/ops/.ssh/kvm
  - qemu+ssh://root@kvm2.example.com/system?keyfile=/home/ops/.ssh/kvm
name_patterns: ['web*', '!*-template']
states: [running]
compose:
  ansible_user: "'debian'"
groups:
  kvm_guests: true
  tagged_db: "'db' in (kvm_title or '')"
keyed_groups:
  - key: kvm_uri
    prefix: uri
  # role_web, role_db... from kvm_domain's metadata: {role: web}
  - key: kvm_meta.role
    prefix: role

# cached.kvm.yml: the guests cached for ten minutes in JSON files
plugin: hypervisor.kvm.libvirt
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/ansible-kvm-inventory
cache_timeout: 600
'''

import fnmatch
import io
import ipaddress
import re
import sys
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

try:  # ansible-core before 2.19 renders inventory strings as templates unless they are marked unsafe
    from ansible.utils.unsafe_proxy import wrap_var
except ImportError:  # gone from later ansible-core, whose inventory values are never templates
    def wrap_var(value):
        return value

from ansible_collections.hypervisor.kvm.plugins.module_utils import _libvirt, _xml
from ansible_collections.hypervisor.kvm.plugins.module_utils._domain_facts import (
    agent_connected,
    bulk_summary,
    domain_interfaces,
    source_addresses,
    usable_address,
)
from ansible_collections.hypervisor.kvm.plugins.module_utils._domain_metadata import metadata_facts
from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError
from ansible_collections.hypervisor.kvm.plugins.module_utils._snapshot_facts import snapshot_facts

# The virtio-serial channel of the QEMU guest agent (the same name as in _domain_builder and _snapshot).
# Guests that have a running QEMU and so can have addresses (a shut off guest's lease is stale).
ADDRESSABLE_STATES = ('running', 'paused', 'pmsuspended')
# The options that decide what a read returns: a cache entry read with others is not used.
READ_OPTIONS = ('uri', 'address_sources', 'name_patterns', 'states')
CACHE_FORMAT = 1


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    """The ``hypervisor.kvm.libvirt`` inventory plugin (see DOCUMENTATION)."""

    NAME = 'hypervisor.kvm.libvirt'

    def verify_file(self, path):
        """Only ``*.kvm.yml`` / ``*.kvm.yaml`` files are ours."""
        return super().verify_file(path) and path.endswith(('.kvm.yml', '.kvm.yaml'))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        config = self._read_config_data(path)
        self._reject_unknown_options(config, path)
        select = name_filter(self.get_option('name_patterns'))
        fingerprint = {option: self.get_option(option) for option in READ_OPTIONS}

        use_cache = self.get_option('cache')
        cache_key = self.get_cache_key(path)
        results = None
        if use_cache and cache:
            results = self._cached_results(cache_key, fingerprint)
        if results is None:
            results, complete = self._read_uris(select)
            if use_cache and complete:
                self._cache[cache_key] = {'format': CACHE_FORMAT, 'options': fingerprint, 'results': results}
        self._populate(results)

    # ---- options ---------------------------------------------------------------------------------
    def _reject_unknown_options(self, config, path) -> None:
        """Ansible ignores keys it has no definition for; a misspelled option must not be silent."""
        known = set(self.option_definitions) | {'plugin'}
        unknown = sorted(str(key) for key in config if key not in known)
        if unknown:
            raise AnsibleParserError(
                f"{self.NAME}: unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} in {path}; "
                f"valid options: {', '.join(sorted(known))}")

    def _cached_results(self, cache_key: str, fingerprint: dict):
        try:
            entry = self._cache[cache_key]
        except KeyError:
            return None
        if not isinstance(entry, dict) or entry.get('format') != CACHE_FORMAT or entry.get('options') != fingerprint:
            self.display.vvv(f'{self.NAME}: the cached guests were read with other options; reading libvirt')
            return None
        return entry['results']

    # ---- reading libvirt ---------------------------------------------------------------------------
    def _read_uris(self, select) -> tuple:
        """Every URI's guests, in the order of the ``uri`` option; ``complete`` is False when a
        URI was skipped (such a partial read is never cached)."""
        require_libvirt()
        states = set(self.get_option('states'))
        sources = list(self.get_option('address_sources'))
        results, complete = [], True
        for uri in unique(self.get_option('uri')):
            if not uri or not uri.strip():
                raise AnsibleParserError(f'{self.NAME}: uri: an empty URI in the list')
            try:
                results.append(read_uri(uri, select, states, sources, self.display))
            except KvmError as err:
                if not self.get_option('skip_unreachable'):
                    raise AnsibleParserError(f'{self.NAME}: {err.msg}') from None
                self.display.warning(f'{self.NAME}: skipped {uri}: {err.msg}')
                complete = False
        return results, complete

    # ---- the inventory --------------------------------------------------------------------------------
    def _populate(self, results: list) -> None:
        seen = {}
        strict = self.get_option('strict')
        for result in results:
            for guest in result['guests']:
                name = guest['name']
                if name in seen:
                    self.display.warning(
                        f"{self.NAME}: guest '{name}' exists on {seen[name]} and on {result['uri']}; "
                        f"keeping the one from {seen[name]} (the first URI listed)")
                    continue
                seen[name] = result['uri']
                self._add_guest(guest, result, strict)

    def _add_guest(self, guest: dict, result: dict, strict: bool) -> None:
        hostvars = wrap_var(host_variables(guest, result))
        name = self.inventory.add_host(guest['name'])
        for key, value in hostvars.items():
            self.inventory.set_variable(name, key, value)
        groups = [f"state_{guest['state']}", f"hypervisor_{result['hypervisor']}"]
        groups.extend(f'network_{network}' for network in hostvars['kvm_networks'])
        for group in groups:
            self.inventory.add_child(self.inventory.add_group(self._sanitize_group_name(group)), name)
        self._set_composite_vars(self.get_option('compose'), hostvars, name, strict=strict)
        self._add_host_to_composed_groups(self.get_option('groups'), hostvars, name, strict=strict)
        self._add_host_to_keyed_groups(self.get_option('keyed_groups'), hostvars, name, strict=strict)


def require_libvirt() -> None:
    """The plugin runs on the controller: without the binding there, say what to install."""
    if not _libvirt.HAS_LIBVIRT:
        raise AnsibleError(
            f'{InventoryModule.NAME}: the Python running Ansible ({sys.executable}) cannot import libvirt: '
            f'install libvirt-python on the controller, for that Python: {_libvirt.LIBVIRT_PACKAGES}. '
            'A virtualenv does not see the distribution package unless it was created with '
            '--system-site-packages.')


def unique(items) -> list:
    """``items`` without repeats, first occurrence kept."""
    return list(dict.fromkeys(items))


def name_filter(patterns):
    """A predicate on domain names from ``name_patterns`` (globs, ``~regex``, ``!`` excludes)."""
    include, exclude = [], []
    for pattern in patterns or []:
        negate = pattern.startswith('!')
        body = pattern[1:] if negate else pattern
        if body.startswith('~'):
            try:
                matcher = re.compile(body[1:]).search
            except re.error as err:
                raise AnsibleParserError(
                    f"{InventoryModule.NAME}: name_patterns: {pattern!r} is not a valid regular expression: {err}"
                ) from None
        else:
            matcher = glob_matcher(body)
        (exclude if negate else include).append(matcher)

    def selected(name: str) -> bool:
        if any(match(name) for match in exclude):
            return False
        return not include or any(match(name) for match in include)

    return selected


def glob_matcher(glob: str):
    """A predicate: does a name match the shell-style ``glob`` (whole name, case-sensitive)?"""
    return lambda name: fnmatch.fnmatchcase(name, glob)


def read_uri(uri: str, select, states: set, sources: list, display) -> dict:
    """One URI's guests as plain data (what is cached): ``{'uri', 'hypervisor', 'guests'}``."""
    with _libvirt.connect(uri) as conn, _libvirt.guard(f'reading the guests of {uri}'):
        hypervisor = conn.getHostname()
        handles = [handle for handle in conn.listAllDomains(0) if select(handle.name())]
        summaries = {summary['uuid']: summary for summary in bulk_summary(conn, handles)}
        handles = [handle for handle in handles if not states or summaries[handle.UUIDString()]['state'] in states]
        addressable = [h for h in handles if summaries[h.UUIDString()]['state'] in ADDRESSABLE_STATES]
        leases = lease_table(conn) if addressable and 'lease' in sources else None
        guests = []
        for handle in handles:
            guest = read_guest(handle, summaries[handle.UUIDString()], sources, leases, display)
            if guest is not None:
                guests.append(guest)
    return {'uri': uri, 'hypervisor': hypervisor, 'guests': sorted(guests, key=lambda guest: guest['name'])}


def lease_table(conn) -> dict | None:
    """MAC -> addresses from the DHCP leases of every active network (one call per network).
    None when the driver has no lease API (then each guest is asked on its own)."""
    table = {}
    for network in conn.listAllNetworks(_libvirt.libvirt.VIR_CONNECT_LIST_NETWORKS_ACTIVE):
        try:
            leases = network.DHCPLeases()
        except _libvirt.libvirt.libvirtError as err:
            if _libvirt.is_error(err, _libvirt.libvirt.VIR_ERR_NO_SUPPORT):
                return None
            if _libvirt.is_error(err, _libvirt.libvirt.VIR_ERR_NO_NETWORK):
                continue  # stopped while we read
            raise
        add_leases(table, leases)
    return table


def add_leases(table: dict, leases) -> dict:
    """Add libvirt's lease records (``mac``, ``ipaddr``...) to ``table`` (MAC -> addresses)."""
    for lease in leases or []:
        mac = (lease.get('mac') or '').lower()
        address = lease.get('ipaddr')
        if mac and address:
            known = table.setdefault(mac, [])
            if address not in known:
                known.append(address)
    return table


def read_guest(handle, summary: dict, sources: list, leases: dict | None, display) -> dict | None:
    """One guest from its summary and one definition read; None when it vanished meanwhile."""
    libvirt = _libvirt.libvirt
    name = summary['name']
    try:
        text = handle.XMLDesc(0)
        definition = _xml.parse_xml(text, f"the XML of domain '{name}'")
    except libvirt.libvirtError as err:
        if _libvirt.is_error(err, libvirt.VIR_ERR_NO_DOMAIN):
            return None
        raise
    interfaces = domain_interfaces(definition)
    macs = [interface['mac'] for interface in interfaces if interface['mac']]
    by_mac, order = {}, []
    if summary['state'] in ADDRESSABLE_STATES:
        by_mac, order = find_addresses(handle, summary['state'], definition, macs, sources, leases, display)
    interfaces = domain_interfaces(definition, by_mac)
    vcpus, memory = definition_sizes(definition)
    return {
        'name': name,
        'uuid': summary['uuid'],
        'state': summary['state'],
        'state_reason': summary['state_reason'],
        'persistent': summary['persistent'],
        'autostart': summary['autostart'],
        'vcpus': summary['vcpus'] if summary['vcpus'] is not None else vcpus,
        'memory': summary['memory'] if summary['memory'] is not None else memory,
        'interfaces': interfaces,
        'address': preferred_address(order),
        'title': definition.findtext('title'),
        'description': definition.findtext('description'),
        'metadata': metadata_texts(definition, text),
        'meta': metadata_facts(definition)['metadata'],
        # the bulk listing says which guests have snapshots: only those are asked for them
        'snapshots': snapshot_facts(handle) if summary.get('has_snapshots') else [],
    }


def find_addresses(handle, state: str, definition, macs: list, sources: list, leases, display) -> tuple:
    """``(by_mac, order)``: each interface's addresses from the first source that knows any, and
    every address in the order found (source order, then interface order)."""
    by_mac, order = {}, []
    for source in sources:
        if all(mac in by_mac for mac in macs):
            break
        answer = ask_source(handle, source, state, definition, leases, display)
        for mac in macs:
            usable = [address for address in answer.get(mac, []) if usable_address(address)]
            if mac not in by_mac and usable:
                by_mac[mac] = usable
                order.extend(usable)
    return by_mac, order


def ask_source(handle, source: str, state: str, definition, leases, display) -> dict:
    """MAC -> addresses from one source for one guest ({} when the source cannot answer)."""
    if source == 'lease' and leases is not None:
        return leases
    if source in ('agent', 'arp') and state != 'running':
        return {}
    if source == 'agent' and not agent_connected(definition):
        display.vvv(f"{InventoryModule.NAME}: not asking the guest agent of '{handle.name()}': not connected")
        return {}  # asking would wait for libvirt's agent timeout
    return source_addresses(handle, source, definition)


def preferred_address(order: list) -> str | None:
    """The first IPv4 address, else the first IPv6 address, else None."""
    for version in (4, 6):
        for address in order:
            if ipaddress.ip_address(address.split('%', 1)[0]).version == version:
                return address
    return None


def definition_sizes(definition) -> tuple:
    """(vcpus, memory in bytes) from the definition, for drivers whose statistics lack them."""
    vcpu = definition.find('vcpu')
    vcpus = int(vcpu.get('current') or vcpu.text) if vcpu is not None and (vcpu.text or '').strip() else None
    memory = definition.find('currentMemory')
    if memory is None:
        memory = definition.find('memory')
    size = None
    if memory is not None and (memory.text or '').strip():
        size = int(memory.text) * {'b': 1, 'bytes': 1, 'KiB': 1024, 'MiB': 1024 ** 2, 'GiB': 1024 ** 3}.get(
            memory.get('unit', 'KiB'), 1024)
    return vcpus, size


def metadata_texts(definition, text: str) -> dict:
    """The elements under ``<metadata>``: namespace URI -> the element as compact XML text, with
    the namespace prefixes the document declares (ElementTree alone would rename them ns0)."""
    holder = definition.find('metadata')
    elements = [element for element in (holder if holder is not None else []) if isinstance(element.tag, str)]
    if not elements:
        return {}
    prefixes = {}
    for _event, (prefix, uri) in ET.iterparse(io.StringIO(text), events=('start-ns',)):
        prefixes.setdefault(uri, prefix)
    return {split_name(element.tag)[0]: compact_xml(element, prefixes) for element in elements}


def split_name(name: str) -> tuple:
    """``'{uri}local'`` -> ``('uri', 'local')``; an unqualified name has the namespace ``''``."""
    if name.startswith('{'):
        uri, _brace, local = name[1:].partition('}')
        return uri, local
    return '', name


def compact_xml(element, prefixes: dict) -> str:
    """``element`` as XML text without layout whitespace, its namespaces declared on it."""
    declared = {}
    unqualified = any(isinstance(node.tag, str) and not node.tag.startswith('{') for node in element.iter())

    def qualified(name: str, attribute: bool = False) -> str:
        uri, local = split_name(name)
        if not uri:
            return local
        if uri not in declared:
            prefix = prefixes.get(uri) or ''
            if not prefix and (attribute or unqualified):  # a default namespace would capture them
                prefix = f'ns{len(declared)}'
            declared[uri] = prefix
        return f'{declared[uri]}:{local}' if declared[uri] else local

    def text_of(value) -> str:
        return escape(value) if value and value.strip() else ''

    def walk(node) -> str:
        tag = qualified(node.tag)
        attributes = ''.join(f' {qualified(key, True)}={quoteattr(value)}' for key, value in node.attrib.items())
        inner = text_of(node.text) + ''.join(
            walk(child) + text_of(child.tail) for child in node if isinstance(child.tag, str))
        return f'<{tag}{attributes}>{inner}</{tag}>' if inner else f'<{tag}{attributes}/>'

    body = walk(element)
    namespaces = ''.join(f' xmlns:{prefix}={quoteattr(uri)}' if prefix else f' xmlns={quoteattr(uri)}'
                         for uri, prefix in declared.items())
    head = len(qualified(element.tag)) + 1
    return body[:head] + namespaces + body[head:]


def host_variables(guest: dict, result: dict) -> dict:
    """The host variables of one guest (``kvm_*`` and ``ansible_host``)."""
    interfaces = guest['interfaces']
    hostvars = {
        'kvm_uri': result['uri'],
        'kvm_hypervisor': result['hypervisor'],
        'kvm_uuid': guest['uuid'],
        'kvm_state': guest['state'],
        'kvm_state_reason': guest['state_reason'],
        'kvm_persistent': guest['persistent'],
        'kvm_autostart': guest['autostart'],
        'kvm_vcpus': guest['vcpus'],
        'kvm_memory': guest['memory'],
        'kvm_macs': [interface['mac'] for interface in interfaces if interface['mac']],
        'kvm_networks': sorted({interface['network'] for interface in interfaces if interface['network']}),
        'kvm_interfaces': interfaces,
        'kvm_ips': unique(address for interface in interfaces for address in interface['addresses']),
        'kvm_title': guest['title'],
        'kvm_description': guest['description'],
        'kvm_metadata': guest['metadata'],
        'kvm_meta': guest['meta'],
        'kvm_snapshots': guest['snapshots'],
    }
    if guest['address']:
        hostvars['ansible_host'] = guest['address']
    return hostvars
