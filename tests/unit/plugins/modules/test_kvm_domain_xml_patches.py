# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kvm_domain's xml_patches against libvirt's test:///default driver: each form changes the
definition once (the next run changes nothing), check mode predicts it and changes nothing, the
diff shows it, and a path that leads nowhere is refused by name with nothing changed."""

import pytest

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.modules import kvm_domain

NAME = 'kvmtest-patch'


def dom(patches, **args):
    base = {'uri': 'test:///default', 'name': NAME, 'virt_type': 'qemu', 'memory': '128MiB', 'state': 'present',
            'xml_patches': patches}
    base.update(args)
    return base


def definition(conn):
    import libvirt  # pylint: disable=import-outside-toplevel

    return _xml.parse_xml(conn.lookupByName(NAME).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), 'domain')


@pytest.mark.parametrize('patches, path, check', [
    # a value creates the last element when its parent exists (virt-install's --xml)
    ([{'xpath': './on_crash', 'value': 'restart'}], 'on_crash', lambda e: e.text == 'restart'),
    ([{'xpath': '/domain/on_crash', 'value': 'restart'}], 'on_crash', lambda e: e.text == 'restart'),
    # an attribute on an element the options built
    ([{'xpath': './os/type', 'attribute': 'machine', 'value': 'pc'}], 'os/type', lambda e: e.get('machine') == 'pc'),
    # an attribute on an element that only libvirt wrote: created with the predicate's attribute
    ([{'xpath': "./clock/timer[@name='rtc']", 'attribute': 'tickpolicy', 'value': 'catchup'}],
     'clock/timer', lambda e: e.get('name') == 'rtc' and e.get('tickpolicy') == 'catchup'),
    # a fragment appended once
    ([{'xpath': './devices', 'xml': "<watchdog model='i6300esb' action='reset'/>"}], 'devices/watchdog',
     lambda e: e.get('action') == 'reset'),
])
def test_each_form_once_predicted_and_idempotent(conn, run_module, patches, path, check):
    run_module(kvm_domain.main, dom(None))
    before = _xml.to_text(definition(conn))
    predicted = run_module(kvm_domain.main, dom(patches), check_mode=True, diff=True)
    assert predicted['changed'] and predicted['actions'] == ['define'], predicted
    assert _xml.to_text(definition(conn)) == before  # check mode changed nothing
    result = run_module(kvm_domain.main, dom(patches), diff=True)
    assert result['changed'] and result['diff'] == predicted['diff'], result
    element = definition(conn).find(path)
    assert element is not None and check(element), _xml.to_text(definition(conn))
    again = run_module(kvm_domain.main, dom(patches))
    assert not again['changed'], again
    assert len(definition(conn).findall(path)) == 1


def test_absent_removes_what_libvirt_or_the_options_wrote(conn, run_module):
    run_module(kvm_domain.main, dom(None))
    assert definition(conn).find('devices/rng') is not None  # kvm_domain adds one to new guests
    patches = [{'xpath': './devices/rng', 'state': 'absent'}, {'xpath': './features/apic', 'state': 'absent'}]
    result = run_module(kvm_domain.main, dom(patches))
    assert result['changed'], result
    assert definition(conn).find('devices/rng') is None and definition(conn).find('features/apic') is None
    assert not run_module(kvm_domain.main, dom(patches))['changed']


def test_a_patch_wins_over_the_option_it_overrides(conn, run_module):
    patches = [{'xpath': './devices/interface/model', 'attribute': 'type', 'value': 'e1000e'}]
    args = dom(patches, interfaces=[{'network': 'default'}])
    assert run_module(kvm_domain.main, args)['changed']
    assert definition(conn).find('devices/interface/model').get('type') == 'e1000e'
    assert not run_module(kvm_domain.main, args)['changed']


@pytest.mark.parametrize('patch, message', [
    ({'xpath': './nowhere/on_crash', 'value': 'x'}, "xml_patches[0]: './nowhere/on_crash' matches nothing in the "
                                                    "definition, and neither does its parent './nowhere'"),
    ({'xpath': './nowhere', 'xml': '<a/>'}, "xml_patches[0]: './nowhere' matches nothing"),
    ({'xpath': './devices/disk[2]', 'value': 'x'}, 'cannot be created'),
    ({'xpath': './on_crash[', 'value': 'x'}, 'xml_patches[0].xpath'),
    ({'xpath': '/network/name', 'value': 'x'}, 'another root element than <domain>'),
    ({'xpath': './devices', 'xml': '<broken'}, 'xml_patches[0].xml'),
    ({'xpath': './on_crash'}, 'give value'),
    ({'xpath': './on_crash', 'value': 'x', 'state': 'absent'}, 'takes no value'),
])
def test_refused_by_name_and_nothing_changed(conn, run_module, patch, message):
    run_module(kvm_domain.main, dom(None))
    before = _xml.to_text(definition(conn))
    result = run_module(kvm_domain.main, dom([patch]))
    assert result['failed'] and message in result['msg'], result
    assert _xml.to_text(definition(conn)) == before


def test_a_running_guest_is_told_to_restart_for_a_patch_it_does_not_have_yet(conn, run_module):
    running = dom(None, state='running')
    run_module(kvm_domain.main, running)
    patched = dom([{'xpath': './on_crash', 'value': 'restart'}], state='running')
    result = run_module(kvm_domain.main, patched)
    assert result['changed'] and result['restart_required'] is True, result
    assert run_module(kvm_domain.main, patched)['restart_required'] is True  # until it restarts
    restarted = run_module(kvm_domain.main, dict(patched, restart=True, force_off_after_timeout=True,
                                                 shutdown_timeout=1))
    assert restarted['changed'] and restarted['restart_required'] is False, restarted
    again = run_module(kvm_domain.main, patched)
    assert not again['changed'] and again['restart_required'] is False, again


def test_kvm_network_and_kvm_pool_take_them_too(conn, run_module):
    from ansible_collections.hypervisor.kvm.plugins.modules import kvm_network, kvm_pool  # pylint: disable=import-outside-toplevel

    # defined, not started: the test driver reads a running network's live definition only (the
    # kvm_network integration target checks a running one against the real libvirtd)
    network = {'uri': 'test:///default', 'name': 'kvmtest-patch-net', 'forward': 'nat', 'bridge': 'kvmtpatch0',
               'ipv4': {'address': '10.199.0.1', 'prefix': 24}, 'state': 'present'}
    run_module(kvm_network.main, network)
    patched = dict(network, xml_patches=[{'xpath': './mtu', 'attribute': 'size', 'value': '9000'}])
    result = run_module(kvm_network.main, patched)
    assert result['changed'] and result['actions'] == ['define'], result
    assert "<mtu size='9000'/>" in conn.networkLookupByName('kvmtest-patch-net').XMLDesc(0)
    assert not run_module(kvm_network.main, patched)['changed']
    pool = {'uri': 'test:///default', 'name': 'kvmtest-patch-pool', 'type': 'dir',
            'target': {'path': '/var/tmp/kvmtest-patch-pool'}, 'state': 'present',
            'xml_patches': [{'xpath': './target', 'xml': '<permissions><mode>0750</mode></permissions>'}]}
    result = run_module(kvm_pool.main, pool)
    assert result['changed'] and not result['failed'], result
    assert '<mode>0750</mode>' in conn.storagePoolLookupByName('kvmtest-patch-pool').XMLDesc(0)
    assert not run_module(kvm_pool.main, pool)['changed']
