"""The hypervisor.kvm.libvirt inventory plugin against libvirt's test driver: test:///default
(shared with the ``conn`` fixture) and distinct hosts built from node XML files
(test:///path/to/node.xml), plus the real ``ansible-inventory`` command for the loader path."""

import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import libvirt
import pytest
import yaml
from ansible.module_utils import _internal as ansible_internal

# Importing Ansible's controller (below) switches module_utils to controller behaviour for the
# whole process (module warnings go to the Display instead of the result): the module tests
# sharing this pytest process need the target-side behaviour, so it is restored after the
# imports and switched on only around the tests of this file (fixture controller_side).
TARGET_SIDE = ansible_internal.is_controller

from ansible import constants as C
from ansible.errors import AnsibleError, AnsibleParserError
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.doc_fragments import constructed, inventory_cache
from ansible.plugins.loader import inventory_loader

from ansible_collections.hypervisor.kvm.plugins.inventory import libvirt as plugin_module
from ansible_collections.hypervisor.kvm.plugins.module_utils import _libvirt

ansible_internal.is_controller = TARGET_SIDE

NAME = 'hypervisor.kvm.libvirt'
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
VENV_BIN = os.path.dirname(sys.executable)
UNREACHABLE = 'qemu+tcp://127.0.0.1:1/system'  # nothing listens on port 1 of loopback: refused at once


class RecordingDisplay:
    """Collects what the plugin tells the user (Ansible's Display shows a warning only once per
    process, which would hide repeats between tests)."""

    def __init__(self):
        self.warnings = []
        self.verbose = []

    def warning(self, msg, *args, **kwargs):
        self.warnings.append(msg)

    def __getattr__(self, name):
        return lambda msg, *args, **kwargs: self.verbose.append(msg)


@pytest.fixture(autouse=True)
def controller_side(monkeypatch):
    """The plugin runs on the controller."""
    monkeypatch.setattr(ansible_internal, 'is_controller', True)


@pytest.fixture(scope='module', autouse=True)
def plugin_definitions():
    """Give Ansible's config manager the plugin's options, as the plugin loader does (the loader
    resolves ansible.builtin doc fragments only with the collection finder installed, which would
    change how every other unit test imports the collection)."""
    options = {}
    for documentation in (constructed.ModuleDocFragment.DOCUMENTATION,
                          inventory_cache.ModuleDocFragment.DOCUMENTATION, plugin_module.DOCUMENTATION):
        options.update(yaml.safe_load(documentation)['options'])
    C.config.initialize_plugin_configuration_definitions('inventory', NAME, options)


@pytest.fixture
def run(tmp_path):
    """Parse an inventory file with the given options; returns (inventory, display)."""

    def parse(options, filename='inventory.kvm.yml', cache=True):
        path = tmp_path / filename
        path.write_text(yaml.safe_dump({'plugin': NAME, **options}))
        plugin = plugin_module.InventoryModule()
        inventory_loader._update_object(obj=plugin, name=NAME, path=plugin_module.__file__, resolved=NAME)
        plugin.display = RecordingDisplay()
        inventory = InventoryData()
        plugin.parse(inventory, DataLoader(), str(path), cache=cache)
        if plugin.get_option('cache'):
            plugin.update_cache_if_changed()  # what ansible-core's auto plugin does after parse()
        return inventory, plugin.display

    return parse


def hostvars(inventory, name):
    return inventory.get_host(name).get_vars()


def groups_of(inventory, name):
    return sorted(group.name for group in inventory.get_host(name).get_groups() if group.name != 'all')


def define(conn, name, interfaces='', extra='', start=False, agent=False):
    channel = ("<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
               if agent else '')
    domain = conn.defineXML(
        f"<domain type='test'><name>{name}</name><memory unit='MiB'>256</memory><vcpu>1</vcpu>{extra}"
        f"<os><type>hvm</type></os><devices>{interfaces}{channel}</devices></domain>")
    if start:
        domain.create()
    return domain


def nic(mac, network='default'):
    return f"<interface type='network'><mac address='{mac}'/><source network='{network}'/></interface>"


def node_file(tmp_path, name, domains):
    """A test driver host of its own: test:///<path> builds it from this file (domains start running)."""
    body = ''.join(
        f"<domain type='test'><name>{domain}</name><memory>262144</memory><vcpu>1</vcpu>"
        f"<os><type>hvm</type></os></domain>" for domain in domains)
    path = tmp_path / f'{name}.xml'
    path.write_text(f'<node><cpu><mhz>2000</mhz><model>i686</model><active>2</active><nodes>1</nodes>'
                    f'<sockets>1</sockets><cores>2</cores><threads>1</threads></cpu><memory>8388608</memory>'
                    f'{body}</node>')
    return f'test://{path}'


# ---- the file ------------------------------------------------------------------------------------------
def test_verify_file_takes_only_kvm_yml_files(tmp_path):
    plugin = plugin_module.InventoryModule()
    plugin.display = RecordingDisplay()
    for name in ('a.kvm.yml', 'b.kvm.yaml', 'plain.yml', 'kvm.yml', 'c.kvm.json'):
        (tmp_path / name).write_text('plugin: hypervisor.kvm.libvirt\n')
    assert plugin.verify_file(str(tmp_path / 'a.kvm.yml'))
    assert plugin.verify_file(str(tmp_path / 'b.kvm.yaml'))
    assert not plugin.verify_file(str(tmp_path / 'plain.yml'))
    assert not plugin.verify_file(str(tmp_path / 'kvm.yml'))
    assert not plugin.verify_file(str(tmp_path / 'c.kvm.json'))
    assert not plugin.verify_file(str(tmp_path / 'missing.kvm.yml'))


# ---- hosts and variables -----------------------------------------------------------------------------------
def test_the_test_drivers_running_guest_becomes_a_host_with_its_variables(conn, run):
    inventory, display = run({'uri': 'test:///default'})
    assert list(inventory.hosts) == ['test']
    handle = conn.lookupByName('test')
    answer = handle.interfaceAddresses(libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, 0)
    address = answer['testnet0']['addrs'][0]['addr']
    found = hostvars(inventory, 'test')
    assert found['kvm_uri'] == 'test:///default'
    assert found['kvm_hypervisor'] == conn.getHostname()
    assert found['kvm_uuid'] == handle.UUIDString()
    assert found['kvm_state'] == 'running'
    assert found['kvm_persistent'] is True
    assert found['kvm_autostart'] is False
    assert found['kvm_vcpus'] == 2
    assert found['kvm_memory'] == 2 * 1024 ** 3
    assert found['kvm_macs'] == ['aa:bb:cc:dd:ee:ff']
    assert found['kvm_networks'] == ['default']
    assert found['kvm_interfaces'] == [{'type': 'network', 'mac': 'aa:bb:cc:dd:ee:ff', 'network': 'default',
                                        'bridge': None, 'device': 'testnet0', 'model': None,
                                        'addresses': [address]}]
    assert found['kvm_ips'] == [address]
    assert found['ansible_host'] == address
    assert found['kvm_title'] is None and found['kvm_description'] is None and found['kvm_metadata'] == {}
    assert display.warnings == []


def test_a_shut_off_guest_has_its_definition_but_no_address(conn, run):
    conn.lookupByName('test').setAutostart(1)
    define(conn, 'kvmtest-inv-off', nic('52:54:00:AA:00:01') + nic('52:54:00:aa:00:02', 'kvmtinv-lan.1'),
           extra='<title>Web server</title><description>serves the web</description>')
    inventory, _display = run({'uri': 'test:///default'})
    found = hostvars(inventory, 'kvmtest-inv-off')
    assert found['kvm_state'] == 'shutoff'
    assert found['kvm_vcpus'] == 1
    assert found['kvm_memory'] == 256 * 1024 ** 2
    assert found['kvm_macs'] == ['52:54:00:aa:00:01', '52:54:00:aa:00:02']
    assert found['kvm_networks'] == ['default', 'kvmtinv-lan.1']
    assert found['kvm_ips'] == []
    assert 'ansible_host' not in found
    assert found['kvm_title'] == 'Web server'
    assert found['kvm_description'] == 'serves the web'
    assert hostvars(inventory, 'test')['kvm_autostart'] is True


def test_metadata_is_one_compact_xml_text_per_namespace(conn, run):
    define(conn, 'kvmtest-inv-meta', extra=(
        '<metadata>'
        '<app:instance xmlns:app="http://example.com/app/1">\n  <app:role>web &amp; db</app:role>\n'
        '  <app:tier level="2" app:zone="a"/>\n</app:instance>'
        '<b:x xmlns:b="urn:example:b">1</b:x>'
        '<c:loose xmlns:c="urn:example:c"><plain>unqualified child</plain></c:loose>'
        '<owner xmlns="urn:example:d"><team>ops</team></owner>'
        '</metadata>'))
    inventory, _display = run({'uri': 'test:///default'})
    metadata = hostvars(inventory, 'kvmtest-inv-meta')['kvm_metadata']
    assert metadata == {
        'http://example.com/app/1': ('<app:instance xmlns:app="http://example.com/app/1"><app:role>web &amp; db'
                                     '</app:role><app:tier level="2" app:zone="a"/></app:instance>'),
        'urn:example:b': '<b:x xmlns:b="urn:example:b">1</b:x>',
        'urn:example:c': '<c:loose xmlns:c="urn:example:c"><plain>unqualified child</plain></c:loose>',
        'urn:example:d': '<owner xmlns="urn:example:d"><team>ops</team></owner>',
    }
    for namespace, text in metadata.items():  # each one is XML that parses back to its namespace
        assert ET.fromstring(text).tag.startswith('{' + namespace + '}')


def test_metadata_text_never_lets_a_default_namespace_capture_unqualified_names():
    element = ET.fromstring('<owner xmlns="urn:example:d"><team xmlns="">ops</team></owner>')
    text = plugin_module.compact_xml(element, {'urn:example:d': ''})
    assert text == '<ns0:owner xmlns:ns0="urn:example:d"><team>ops</team></ns0:owner>'
    assert ET.fromstring(text).find('team').text == 'ops'


def test_values_from_libvirt_are_not_templates(conn, run):
    define(conn, 'kvmtest-inv-tmpl', extra='<title>{{ 6 * 7 }}</title>')
    inventory, _display = run({'uri': 'test:///default'})
    title = hostvars(inventory, 'kvmtest-inv-tmpl')['kvm_title']
    assert title == '{{ 6 * 7 }}'
    from ansible._internal._datatag._tags import TrustedAsTemplate  # pylint: disable=import-outside-toplevel
    assert not TrustedAsTemplate.is_tagged_on(title)


def test_default_uri_comes_from_libvirt_default_uri(conn, run, monkeypatch):
    monkeypatch.setenv('LIBVIRT_DEFAULT_URI', 'test:///default')
    inventory, _display = run({})
    assert hostvars(inventory, 'test')['kvm_uri'] == 'test:///default'


# ---- groups --------------------------------------------------------------------------------------------------
def test_state_network_and_hypervisor_groups(conn, run):
    define(conn, 'kvmtest-inv-off', nic('52:54:00:aa:00:01', 'kvmtinv-lan.1'))
    define(conn, 'kvmtest-inv-paused', nic('52:54:00:aa:00:03'), start=True).suspend()
    inventory, _display = run({'uri': 'test:///default'})
    hypervisor = 'hypervisor_' + conn.getHostname().replace('.', '_').replace('-', '_')
    assert groups_of(inventory, 'test') == sorted([hypervisor, 'network_default', 'state_running'])
    assert groups_of(inventory, 'kvmtest-inv-off') == sorted([hypervisor, 'network_kvmtinv_lan_1', 'state_shutoff'])
    assert groups_of(inventory, 'kvmtest-inv-paused') == sorted([hypervisor, 'network_default', 'state_paused'])
    # a paused guest still has its lease
    assert hostvars(inventory, 'kvmtest-inv-paused')['kvm_ips']


def test_compose_groups_and_keyed_groups(conn, run):
    define(conn, 'kvmtest-inv-db', extra='<title>db primary</title>')
    inventory, _display = run({
        'uri': 'test:///default',
        'compose': {'ansible_user': "'debian'", 'memory_mib': 'kvm_memory // 1048576'},
        'groups': {'kvm_guests': 'true', 'databases': "'db' in (kvm_title or '')", 'big': 'memory_mib | int > 1024'},
        'keyed_groups': [{'key': 'kvm_state', 'prefix': 'power'}, {'key': 'kvm_networks', 'prefix': 'net'}],
    })
    assert hostvars(inventory, 'test')['ansible_user'] == 'debian'
    assert hostvars(inventory, 'kvmtest-inv-db')['memory_mib'] == 256
    assert sorted(host.name for host in inventory.groups['kvm_guests'].get_hosts()) == ['kvmtest-inv-db', 'test']
    assert [host.name for host in inventory.groups['databases'].get_hosts()] == ['kvmtest-inv-db']
    assert [host.name for host in inventory.groups['big'].get_hosts()] == ['test']
    assert [host.name for host in inventory.groups['power_shutoff'].get_hosts()] == ['kvmtest-inv-db']
    assert [host.name for host in inventory.groups['net_default'].get_hosts()] == ['test']


def test_compose_can_override_ansible_host(conn, run):
    inventory, _display = run({'uri': 'test:///default', 'compose': {'ansible_host': "'127.0.0.1'"}})
    assert hostvars(inventory, 'test')['ansible_host'] == '127.0.0.1'


def test_strict_makes_a_broken_expression_an_error(conn, run):
    options = {'uri': 'test:///default', 'compose': {'x': 'kvm_no_such_variable.attribute'}}
    inventory, _display = run(options)
    assert 'x' not in hostvars(inventory, 'test')
    with pytest.raises(AnsibleError, match='Could not set x for host test'):
        run({**options, 'strict': True})


# ---- filters -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('patterns, expected', [
    ([], ['kvmtest-inv-db1', 'kvmtest-inv-db2', 'kvmtest-inv-web1', 'kvmtest-inv-web1-template', 'test']),
    (['kvmtest-inv-web*'], ['kvmtest-inv-web1', 'kvmtest-inv-web1-template']),
    (['kvmtest-inv-web*', '!*-template'], ['kvmtest-inv-web1']),
    (['~db[0-9]$'], ['kvmtest-inv-db1', 'kvmtest-inv-db2']),
    (['!~^kvmtest-inv-'], ['test']),
    (['KVMTEST-INV-*'], []),
    (['kvmtest-inv-db[2]', 'test'], ['kvmtest-inv-db2', 'test']),
])
def test_name_patterns(conn, run, patterns, expected):
    for name in ('kvmtest-inv-db1', 'kvmtest-inv-db2', 'kvmtest-inv-web1', 'kvmtest-inv-web1-template'):
        define(conn, name)
    inventory, _display = run({'uri': 'test:///default', 'name_patterns': patterns})
    assert sorted(inventory.hosts) == expected


def test_an_invalid_regular_expression_is_named(conn, run):
    with pytest.raises(AnsibleParserError, match=r"name_patterns: '~web\(' is not a valid regular expression"):
        run({'uri': 'test:///default', 'name_patterns': ['~web(']})


def test_states(conn, run):
    define(conn, 'kvmtest-inv-off')
    define(conn, 'kvmtest-inv-paused', start=True).suspend()
    assert sorted(run({'uri': 'test:///default', 'states': ['running']})[0].hosts) == ['test']
    assert sorted(run({'uri': 'test:///default', 'states': ['shutoff', 'paused']})[0].hosts) == [
        'kvmtest-inv-off', 'kvmtest-inv-paused']
    assert sorted(run({'uri': 'test:///default'})[0].hosts) == ['kvmtest-inv-off', 'kvmtest-inv-paused', 'test']
    assert list(run({'uri': 'test:///default', 'states': ['crashed']})[0].hosts) == []


# ---- addresses ---------------------------------------------------------------------------------------------
def test_address_sources_empty_reads_no_address(conn, run):
    found = hostvars(run({'uri': 'test:///default', 'address_sources': []})[0], 'test')
    assert found['kvm_ips'] == [] and 'ansible_host' not in found


def test_the_agent_is_asked_only_when_the_guest_has_an_agent_channel(conn, run):
    with_agent = define(conn, 'kvmtest-inv-agent', nic('52:54:00:aa:00:05'), start=True, agent=True)
    define(conn, 'kvmtest-inv-noagent', nic('52:54:00:aa:00:06'), start=True)
    inventory, _display = run({'uri': 'test:///default', 'address_sources': ['agent']})
    answer = with_agent.interfaceAddresses(libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT, 0)
    expected = [entry['addr'] for details in answer.values() for entry in details['addrs']]
    assert hostvars(inventory, 'kvmtest-inv-agent')['kvm_ips'] == expected
    assert hostvars(inventory, 'kvmtest-inv-agent')['ansible_host'] == expected[0]
    assert hostvars(inventory, 'kvmtest-inv-noagent')['kvm_ips'] == []
    assert 'ansible_host' not in hostvars(inventory, 'kvmtest-inv-noagent')


def test_arp_source(conn, run):
    inventory, _display = run({'uri': 'test:///default', 'address_sources': ['arp']})
    assert hostvars(inventory, 'test')['kvm_ips']


def test_lease_records_are_read_by_mac():
    table = plugin_module.add_leases({}, [
        {'iface': 'virbr9', 'type': 0, 'mac': '52:54:00:AA:00:01', 'ipaddr': '10.248.0.10', 'prefix': 24},
        {'iface': 'virbr9', 'type': 1, 'mac': '52:54:00:aa:00:01', 'ipaddr': 'fd00:248::10', 'prefix': 64},
        {'iface': 'virbr9', 'type': 1, 'mac': None, 'ipaddr': 'fd00:248::11', 'prefix': 64, 'clientid': 'x'},
        {'iface': 'virbr9', 'type': 0, 'mac': '52:54:00:aa:00:01', 'ipaddr': '10.248.0.10', 'prefix': 24},
    ])
    assert table == {'52:54:00:aa:00:01': ['10.248.0.10', 'fd00:248::10']}


@pytest.mark.parametrize('order, expected', [
    (['fd00::5', '10.248.0.7', '10.248.0.8'], '10.248.0.7'),
    (['fd00::5', 'fd00::6'], 'fd00::5'),
    ([], None),
])
def test_ipv4_is_preferred(order, expected):
    assert plugin_module.preferred_address(order) == expected


@pytest.mark.parametrize('address, usable', [
    ('10.248.0.7', True), ('fd00::5', True), ('127.0.0.1', False), ('::1', False),
    ('fe80::5054:ff:fe00:1', False), ('fe80::1%eth0', False), ('169.254.3.4', False), ('0.0.0.0', False),
    ('not-an-address', False),
])
def test_usable_addresses(address, usable):
    assert plugin_module.usable_address(address) is usable


def test_agent_channel_detection():
    def definition(target):
        return ET.fromstring(f"<domain><devices><channel type='unix'>{target}</channel></devices></domain>")

    assert plugin_module.agent_connected(definition("<target type='virtio' name='org.qemu.guest_agent.0'/>"))
    assert plugin_module.agent_connected(
        definition("<target type='virtio' name='org.qemu.guest_agent.0' state='connected'/>"))
    assert not plugin_module.agent_connected(
        definition("<target type='virtio' name='org.qemu.guest_agent.0' state='disconnected'/>"))
    assert not plugin_module.agent_connected(definition("<target type='virtio' name='org.other'/>"))


# ---- several URIs --------------------------------------------------------------------------------------------
def test_a_name_on_two_uris_warns_and_keeps_the_first(conn, run, tmp_path):
    other = node_file(tmp_path, 'other', ['test', 'kvmtest-inv-only-b'])
    inventory, display = run({'uri': ['test:///default', other]})
    assert sorted(inventory.hosts) == ['kvmtest-inv-only-b', 'test']
    assert hostvars(inventory, 'test')['kvm_uri'] == 'test:///default'
    assert hostvars(inventory, 'kvmtest-inv-only-b')['kvm_uri'] == other
    assert display.warnings == [
        f"hypervisor.kvm.libvirt: guest 'test' exists on test:///default and on {other}; "
        "keeping the one from test:///default (the first URI listed)"]

    inventory, display = run({'uri': [other, 'test:///default']})
    assert hostvars(inventory, 'test')['kvm_uri'] == other
    assert hostvars(inventory, 'test')['kvm_uuid'] != conn.lookupByName('test').UUIDString()
    assert len(display.warnings) == 1


def test_a_uri_listed_twice_is_read_once(conn, run):
    inventory, display = run({'uri': ['test:///default', 'test:///default']})
    assert list(inventory.hosts) == ['test'] and display.warnings == []


def test_an_unreachable_uri_fails_fast_naming_the_uri(conn, run):
    started = time.monotonic()
    with pytest.raises(AnsibleParserError) as failure:
        run({'uri': ['test:///default', UNREACHABLE]})
    assert time.monotonic() - started < 10
    message = str(failure.value)
    assert message.startswith(f'hypervisor.kvm.libvirt: connecting to libvirt at {UNREACHABLE} failed: ')
    assert 'Connection refused' in message


def test_skip_unreachable_warns_and_reads_the_others(conn, run):
    inventory, display = run({'uri': [UNREACHABLE, 'test:///default'], 'skip_unreachable': True})
    assert list(inventory.hosts) == ['test']
    assert len(display.warnings) == 1
    assert display.warnings[0].startswith(f'hypervisor.kvm.libvirt: skipped {UNREACHABLE}: connecting to libvirt')


# ---- bad input -------------------------------------------------------------------------------------------------
def test_an_unknown_option_is_an_error(conn, run):
    expected = r'unknown option name_pattern in .*inventory\.kvm\.yml; valid options: address_sources, cache, '
    with pytest.raises(AnsibleParserError, match=expected):
        run({'uri': 'test:///default', 'name_pattern': ['web*']})


def test_an_unknown_state_is_an_error(conn, run):
    with pytest.raises(AnsibleError, match=r"Invalid value \['runing'\] for config 'states'"):
        run({'uri': 'test:///default', 'states': ['runing']})


def test_an_unknown_address_source_is_an_error(conn, run):
    with pytest.raises(AnsibleError, match=r"Invalid value \['lease', 'dns'\] for config 'address_sources'"):
        run({'uri': 'test:///default', 'address_sources': ['lease', 'dns']})


def test_an_empty_uri_is_an_error(conn, run):
    with pytest.raises(AnsibleParserError, match='uri: an empty URI in the list'):
        run({'uri': ['test:///default', '']})


def test_missing_libvirt_python_names_the_package(conn, run, monkeypatch):
    monkeypatch.setattr(_libvirt, 'HAS_LIBVIRT', False)
    with pytest.raises(AnsibleError) as failure:
        run({'uri': 'test:///default'})
    message = str(failure.value)
    assert 'cannot import libvirt' in message and 'on the controller' in message
    assert 'python3-libvirt' in message and 'pip install libvirt-python' in message


# ---- cache ---------------------------------------------------------------------------------------------------------
# The cache plugin by its short name: its FQCN would need Ansible's collection finder (see plugin_definitions).
def test_cache_answers_until_refreshed_or_the_options_change(conn, run, tmp_path, monkeypatch):
    cache = {'cache': True, 'cache_plugin': 'jsonfile', 'cache_connection': str(tmp_path / 'cache')}
    inventory, _display = run({'uri': 'test:///default', **cache})
    assert list(inventory.hosts) == ['test']
    assert os.listdir(tmp_path / 'cache')

    define(conn, 'kvmtest-inv-new')
    monkeypatch.setattr(_libvirt, 'HAS_LIBVIRT', False)  # a cache hit does not need libvirt at all
    inventory, _display = run({'uri': 'test:///default', **cache})
    assert list(inventory.hosts) == ['test']
    assert hostvars(inventory, 'test')['kvm_memory'] == 2 * 1024 ** 3
    monkeypatch.setattr(_libvirt, 'HAS_LIBVIRT', True)

    # other read options: the entry is not used
    inventory, _display = run({'uri': 'test:///default', 'states': ['shutoff'], **cache})
    assert list(inventory.hosts) == ['kvmtest-inv-new']
    # a refresh (--flush-cache, meta: refresh_inventory) reads libvirt and rewrites the entry
    inventory, _display = run({'uri': 'test:///default', **cache}, cache=False)
    assert sorted(inventory.hosts) == ['kvmtest-inv-new', 'test']
    conn.lookupByName('kvmtest-inv-new').undefine()
    inventory, _display = run({'uri': 'test:///default', **cache})
    assert sorted(inventory.hosts) == ['kvmtest-inv-new', 'test']


def test_a_read_with_a_skipped_uri_is_not_cached(conn, run, tmp_path):
    cache = {'cache': True, 'cache_plugin': 'jsonfile', 'cache_connection': str(tmp_path / 'cache')}
    options = {'uri': [UNREACHABLE, 'test:///default'], 'skip_unreachable': True, **cache}
    run(options)
    define(conn, 'kvmtest-inv-new')
    assert sorted(run(options)[0].hosts) == ['kvmtest-inv-new', 'test']


# ---- the real command ---------------------------------------------------------------------------------------
def ansible_cli(command, path, env=None):
    environment = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, '.tmp', 'collections'),
                       ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED='true', ANSIBLE_NOCOLOR='1', **(env or {}))
    return subprocess.run([os.path.join(VENV_BIN, command[0]), *command[1:], '-i', str(path)],
                          capture_output=True, text=True, env=environment, timeout=120, check=False)


@pytest.fixture
def inventory_file(tmp_path):
    def write(options, name='guests.kvm.yml'):
        path = tmp_path / name
        path.write_text(yaml.safe_dump({'plugin': NAME, **options}))
        return path

    return write


def test_ansible_inventory_loads_the_plugin_from_the_file(tmp_path, inventory_file):
    other = node_file(tmp_path, 'hostb', ['kvmtest-inv-b1', 'kvmtest-inv-b2'])
    path = inventory_file({'uri': ['test:///default', other], 'groups': {'kvm_guests': 'true'}})
    result = ansible_cli(['ansible-inventory', '--list'], path)
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert sorted(listed['kvm_guests']['hosts']) == ['kvmtest-inv-b1', 'kvmtest-inv-b2', 'test']
    assert sorted(listed['state_running']['hosts']) == ['kvmtest-inv-b1', 'kvmtest-inv-b2', 'test']


def test_ansible_does_not_template_a_guests_title(tmp_path, inventory_file):
    node = tmp_path / 'node.xml'
    node.write_text("<node><domain type='test'><name>kvmtest-inv-t</name><title>{{ 6 * 7 }}</title>"
                    "<memory>262144</memory><os><type>hvm</type></os></domain></node>")
    path = inventory_file({'uri': f'test://{node}'})
    result = ansible_cli(['ansible', 'all', '-m', 'ansible.builtin.debug', '-a', 'var=kvm_title'], path)
    assert result.returncode == 0, result.stderr
    assert '"kvm_title": "{{ 6 * 7 }}"' in result.stdout


def test_ansible_inventory_without_libvirt_python(tmp_path, inventory_file):
    shadow = tmp_path / 'shadow'
    shadow.mkdir()
    (shadow / 'libvirt.py').write_text("raise ImportError('No module named libvirt (a test stand-in)')\n")
    path = inventory_file({'uri': 'test:///default'})
    result = ansible_cli(['ansible-inventory', '--graph'], path, env={'PYTHONPATH': str(shadow)})
    assert result.returncode != 0
    assert 'cannot import libvirt: install libvirt-python on the controller' in result.stderr
    assert 'python3-libvirt' in result.stderr


def test_ansible_inventory_names_an_unreachable_uri(inventory_file):
    path = inventory_file({'uri': UNREACHABLE})
    result = ansible_cli(['ansible-inventory', '--graph'], path)
    assert result.returncode != 0
    assert f'connecting to libvirt at {UNREACHABLE} failed' in result.stderr


def test_the_collections_metadata_is_a_dict_to_group_by(conn, run):
    define(conn, 'kvmtest-inv-web', extra=(
        '<metadata><kvm:meta xmlns:kvm="https://hypervisor.kvm/meta"><kvm:entry key="role">web</kvm:entry>'
        '<kvm:entry key="tier">3</kvm:entry></kvm:meta></metadata>'))
    inventory, _display = run({'uri': 'test:///default', 'keyed_groups': [{'key': 'kvm_meta.role', 'prefix': 'role'}]})
    found = hostvars(inventory, 'kvmtest-inv-web')
    assert found['kvm_meta'] == {'role': 'web', 'tier': '3'}
    assert list(found['kvm_metadata']) == ['https://hypervisor.kvm/meta']  # and still as XML text
    assert hostvars(inventory, 'test')['kvm_meta'] == {}
    assert [host.name for host in inventory.groups['role_web'].get_hosts()] == ['kvmtest-inv-web']
