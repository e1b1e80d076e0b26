# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kvm_domain's title, description and metadata against libvirt's test:///default driver:
written, read back without drift, changed live on a running guest without a restart, removed,
predicted by check mode, and refused with a message when libvirt would refuse them."""

import libvirt

from ansible_collections.hypervisor.kvm.plugins.module_utils._domain_metadata import META_NS
from ansible_collections.hypervisor.kvm.plugins.modules import kvm_domain, kvm_domain_info, kvm_guests

NAME = 'kvmtest-meta'


def dom(**args):
    base = {'uri': 'test:///default', 'name': NAME, 'virt_type': 'qemu', 'memory': '128MiB', 'state': 'running'}
    base.update(args)
    return base


def live(conn, kind, uri=None):
    try:
        return conn.lookupByName(NAME).metadata(kind, uri, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    except libvirt.libvirtError:
        return None


def config(conn, kind, uri=None):
    try:
        return conn.lookupByName(NAME).metadata(kind, uri, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    except libvirt.libvirtError:
        return None


def test_written_read_back_and_idempotent(conn, run_module):
    args = dom(title='Web 1', description='serves\nthe web', metadata={'role': 'web', 'tier': 3, 'edge': True})
    result = run_module(kvm_domain.main, args)
    assert result['changed'] and not result['failed'], result
    assert result['domain']['title'] == 'Web 1'
    assert result['domain']['description'] == 'serves\nthe web'
    assert result['domain']['metadata'] == {'role': 'web', 'tier': '3', 'edge': 'true'}
    assert config(conn, libvirt.VIR_DOMAIN_METADATA_TITLE) == 'Web 1'
    assert '<entry key="role">web</entry>' in config(conn, libvirt.VIR_DOMAIN_METADATA_ELEMENT, META_NS)
    again = run_module(kvm_domain.main, args)
    assert not again['changed'] and again['actions'] == [], again
    info = run_module(kvm_domain_info.main, {'uri': 'test:///default', 'name': NAME})
    assert info['domains'][0]['metadata'] == {'role': 'web', 'tier': '3', 'edge': 'true'}
    # options not given leave what is there alone
    other = run_module(kvm_domain.main, dom())
    assert not other['changed'], other


def test_a_running_guest_is_told_at_once_with_no_restart(conn, run_module):
    run_module(kvm_domain.main, dom(title='Web 1', metadata={'role': 'web', 'tier': '3'}))
    args = dom(title='Web 2', description='now with a description', metadata={'role': 'db'})
    predicted = run_module(kvm_domain.main, args, check_mode=True, diff=True)
    assert predicted['changed'] and predicted['actions'] == ['set-metadata', 'define'], predicted
    assert live(conn, libvirt.VIR_DOMAIN_METADATA_TITLE) == 'Web 1'  # check mode changed nothing
    assert '<title>Web 2</title>' in predicted['diff']['after']
    result = run_module(kvm_domain.main, args)
    assert result['actions'] == predicted['actions'] and result['restart_required'] is False
    assert live(conn, libvirt.VIR_DOMAIN_METADATA_TITLE) == 'Web 2'
    assert live(conn, libvirt.VIR_DOMAIN_METADATA_DESCRIPTION) == 'now with a description'
    assert live(conn, libvirt.VIR_DOMAIN_METADATA_ELEMENT, META_NS) == '<meta>\n  <entry key="role">db</entry>\n</meta>'
    assert result['domain']['metadata'] == {'role': 'db'}  # tier is gone: the dict is authoritative
    assert not run_module(kvm_domain.main, args)['changed']


def test_empty_values_remove_and_other_namespaces_stay(conn, run_module):
    run_module(kvm_domain.main, dom(title='Web 1', description='d', metadata={'role': 'web'}))
    handle = conn.lookupByName(NAME)
    handle.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, '<app>kept</app>', 'other', 'urn:example:other',
                       libvirt.VIR_DOMAIN_AFFECT_CONFIG | libvirt.VIR_DOMAIN_AFFECT_LIVE)
    result = run_module(kvm_domain.main, dom(title='', description='', metadata={}))
    assert result['changed'], result
    assert result['domain']['title'] is None and result['domain']['description'] is None
    assert result['domain']['metadata'] == {}
    assert live(conn, libvirt.VIR_DOMAIN_METADATA_TITLE) is None
    assert live(conn, libvirt.VIR_DOMAIN_METADATA_ELEMENT, META_NS) is None
    assert config(conn, libvirt.VIR_DOMAIN_METADATA_ELEMENT, 'urn:example:other') == '<app>kept</app>'
    assert not run_module(kvm_domain.main, dom(title='', description='', metadata={}))['changed']


def test_a_new_guest_with_metadata_in_check_mode_creates_nothing(conn, run_module):
    result = run_module(kvm_domain.main, dom(metadata={'role': 'web'}), check_mode=True)
    assert result['changed'] and 'define' in result['actions']
    assert NAME not in [domain.name() for domain in conn.listAllDomains()]


def test_refused_with_a_message_and_nothing_changed(conn, run_module):
    run_module(kvm_domain.main, dom(title='Web 1'))
    for args, message in (
            (dom(title='two\nlines'), 'title: one line only'),
            (dom(metadata={'role': {'nested': 1}}), 'metadata.role: a string is expected'),
            (dom(metadata={'role': ['a']}), 'metadata.role: a string is expected'),
            ({'uri': 'test:///default', 'xml': '<domain type="qemu"><name>x</name></domain>', 'title': 't'},
             'mutually exclusive')):
        result = run_module(kvm_domain.main, args)
        assert result['failed'] and message in result['msg'], result
    assert config(conn, libvirt.VIR_DOMAIN_METADATA_TITLE) == 'Web 1'


def test_kvm_guests_passes_them_on(conn, run_module):
    guests = {'uri': 'test:///default', 'guests': [
        {'name': NAME, 'memory': '128MiB', 'virt_type': 'qemu', 'networks': [], 'state': 'shutdown',
         'title': 'from the fleet', 'metadata': {'owner': 'ops'}}]}
    result = run_module(kvm_guests.main, guests)
    assert result.get('changed') and not result['failed'], result
    assert config(conn, libvirt.VIR_DOMAIN_METADATA_TITLE) == 'from the fleet'
    assert '<entry key="owner">ops</entry>' in config(conn, libvirt.VIR_DOMAIN_METADATA_ELEMENT, META_NS)
    assert not run_module(kvm_guests.main, guests)['changed']
    bad = {'uri': 'test:///default', 'guests': [dict(guests['guests'][0], title='a\nb')]}
    refused = run_module(kvm_guests.main, bad)
    assert refused['failed'] and f'guests[0] ({NAME}): title: one line only' in refused['msg'], refused


def test_kvm_guests_passes_kvm_domains_options_per_guest(conn, run_module):
    import xml.etree.ElementTree as ET  # pylint: disable=import-outside-toplevel

    guest = {'name': NAME, 'memory': '128MiB', 'max_memory': '256MiB', 'virt_type': 'qemu', 'networks': [],
             'state': 'shutdown', 'machine': 'pc', 'tpm': True, 'rng': False, 'boot': {'devices': ['cdrom', 'hd']},
             'xml_patches': [{'xpath': './on_crash', 'value': 'restart'}]}
    args = {'uri': 'test:///default', 'guests': [guest]}
    result = run_module(kvm_guests.main, args)
    assert result.get('changed') and not result['failed'], result
    definition = ET.fromstring(conn.lookupByName(NAME).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    assert definition.find('os/type').get('machine').startswith('pc')
    assert [boot.get('dev') for boot in definition.findall('os/boot')] == ['cdrom', 'hd']
    assert definition.findtext('memory') == str(256 * 1024) and definition.findtext('currentMemory') == str(128 * 1024)
    assert definition.find('devices/tpm') is not None and definition.find('devices/rng') is None
    assert definition.findtext('on_crash') == 'restart'
    assert not run_module(kvm_guests.main, args)['changed']
    for bad, message in (({'secure_boot': True}, 'secure_boot needs firmware: efi'),
                         ({'kernel': '/k', 'boot': {'kernel': '/k'}}, 'at the top or under boot, not both'),
                         ({'xml_patches': [{'xpath': './nowhere/x', 'value': '1'}]}, "'./nowhere/x' matches nothing")):
        refused = run_module(kvm_guests.main, {'uri': 'test:///default', 'guests': [dict(guest, **bad)]})
        assert refused['failed'] and message in refused['msg'], refused
