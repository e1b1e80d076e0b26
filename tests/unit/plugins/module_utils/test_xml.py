import pytest

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError

ACTUAL = """
<network connections='1'>
  <name>net</name>
  <uuid>0b6d4f52-59d5-4e0c-8d1a-0a5e0c0a0e01</uuid>
  <forward mode='nat'><nat><port start='1024' end='65535'/></nat></forward>
  <bridge name='virbr9' stp='on' delay='0'/>
  <mac address='52:54:00:aa:bb:cc'/>
  <ip address='10.9.0.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='10.9.0.10' end='10.9.0.99'/>
      <host mac='52:54:00:00:00:01' name='a' ip='10.9.0.11'/>
      <host mac='52:54:00:00:00:02' name='b' ip='10.9.0.12'/>
    </dhcp>
  </ip>
</network>
"""
HOSTS = frozenset({'ip/dhcp/host', 'ip/dhcp/range'})


def parse(text):
    return _xml.parse_xml(text, 'xml')


def test_malformed_xml_reports_line_and_column():
    with pytest.raises(KvmError) as err:
        parse("<pool>\n  <name>x</name>\n</pol>")
    assert 'xml is not well-formed XML' in err.value.msg
    assert 'line 3' in err.value.msg
    assert err.value.details['xml_error']['line'] == 3


@pytest.mark.parametrize('text', ['', '   ', None])
def test_empty_xml_is_refused(text):
    with pytest.raises(KvmError, match='empty'):
        _xml.parse_xml(text, 'xml')


def test_normalise_ignores_layout_and_attribute_order():
    one = parse("<a y='2' x='1'>\n  <b> text </b>\n</a>")
    two = parse('<a x="1" y="2"><b>text</b></a>')
    assert _xml.to_text(one) == _xml.to_text(two)
    assert _xml.to_text(one, pretty=False) == '<a x="1" y="2"><b>text</b></a>'


def test_libvirt_additions_are_not_drift():
    desired = parse("<network><name>net</name><forward mode='nat'/><ip address='10.9.0.1' netmask='255.255.255.0'/>"
                    "</network>")
    assert _xml.differences(desired, parse(ACTUAL)) == []
    assert _xml.is_subset(desired, parse(ACTUAL))


def test_changed_attribute_and_text_are_drift():
    desired = parse("<network><name>other</name><forward mode='route'/></network>")
    found = _xml.differences(desired, parse(ACTUAL))
    assert "network/@mode" not in found
    assert "network/name: 'net' -> 'other'" in found
    assert "network/forward/@mode: 'nat' -> 'route'" in found


def test_authoritative_lists_report_items_to_remove_even_when_desired_has_none():
    desired = parse("<network><ip address='10.9.0.1'><dhcp><range start='10.9.0.10' end='10.9.0.99'/>"
                    "</dhcp></ip></network>")
    found = _xml.differences(desired, parse(ACTUAL), HOSTS)
    assert len(found) == 2 and all('remove' in line and '<host' in line for line in found)
    # without the authority the extra hosts are libvirt's business
    assert _xml.differences(desired, parse(ACTUAL)) == []


def test_authoritative_lists_compare_items_in_order():
    desired = parse("<network><ip><dhcp>"
                    "<host mac='52:54:00:00:00:01' name='a' ip='10.9.0.11'/>"
                    "<host mac='52:54:00:00:00:02' name='b' ip='10.9.0.13'/>"
                    "<host mac='52:54:00:00:00:03' name='c' ip='10.9.0.14'/>"
                    "</dhcp></ip></network>")
    found = _xml.differences(desired, parse(ACTUAL), HOSTS)
    assert "network/ip/dhcp/host[2]/@ip: '10.9.0.12' -> '10.9.0.13'" in found
    assert any(line.startswith('network/ip/dhcp/host: add') for line in found)
    assert any(line.startswith('network/ip/dhcp/range: remove') for line in found)


def test_repeated_elements_match_any_item_when_not_authoritative():
    actual = parse("<devices><controller type='usb'/><controller type='pci' model='pcie-root'/></devices>")
    assert _xml.is_subset(parse("<devices><controller type='pci'/></devices>"), actual)
    found = _xml.differences(parse("<devices><controller type='sata'/></devices>"), actual)
    assert found == ["devices/controller: add <controller type=\"sata\" />"]


def test_merge_keeps_libvirt_additions_and_applies_the_desired_values():
    desired = parse("<network><name>net</name><forward mode='route'/><bridge stp='off'/></network>")
    merged = _xml.merge(desired, parse(ACTUAL))
    assert merged.find('uuid').text == '0b6d4f52-59d5-4e0c-8d1a-0a5e0c0a0e01'
    assert merged.find('forward').get('mode') == 'route'
    assert merged.find('bridge').attrib == {'name': 'virbr9', 'stp': 'off', 'delay': '0'}
    assert _xml.is_subset(desired, merged)


def test_merge_replaces_authoritative_lists():
    desired = parse("<network><ip><dhcp>"
                    "<range start='10.9.0.50' end='10.9.0.60'/>"
                    "<host mac='52:54:00:00:00:09' name='z' ip='10.9.0.19'/>"
                    "</dhcp></ip></network>")
    merged = _xml.merge(desired, parse(ACTUAL), HOSTS)
    hosts = merged.findall('ip/dhcp/host')
    assert [h.get('name') for h in hosts] == ['z']
    assert merged.find('ip/dhcp/range').get('start') == '10.9.0.50'
    assert merged.find('ip').get('netmask') == '255.255.255.0'  # kept from actual
    assert _xml.differences(desired, merged, HOSTS) == []


def test_merge_appends_new_authoritative_items_after_the_existing_ones():
    desired = parse("<network><ip><dhcp>"
                    "<range start='10.9.0.10' end='10.9.0.99'/>"
                    "<host mac='52:54:00:00:00:01' name='a' ip='10.9.0.11'/>"
                    "<host mac='52:54:00:00:00:02' name='b' ip='10.9.0.12'/>"
                    "<host mac='52:54:00:00:00:03' name='c' ip='10.9.0.13'/>"
                    "</dhcp></ip></network>")
    merged = _xml.merge(desired, parse(ACTUAL), HOSTS)
    assert [child.tag for child in merged.find('ip/dhcp')] == ['range', 'host', 'host', 'host']
    assert [h.get('name') for h in merged.findall('ip/dhcp/host')] == ['a', 'b', 'c']


def test_merge_without_actual_is_a_copy():
    desired = parse("<pool type='dir'><name>p</name></pool>")
    merged = _xml.merge(desired, None)
    assert merged is not desired and _xml.to_text(merged) == _xml.to_text(desired)


def test_remove_paths_drops_volatile_elements():
    pool = parse("<pool><name>p</name><capacity unit='bytes'>5</capacity><target><path>/x</path></target></pool>")
    _xml.remove_paths(pool, ('capacity', 'target/path', 'missing/child'))
    assert _xml.to_text(pool, pretty=False) == '<pool><name>p</name><target /></pool>'


def test_pretty_text_is_indented_and_ends_with_a_newline():
    text = _xml.to_text(parse("<a><b x='1'/></a>"))
    assert text == '<a>\n  <b x="1" />\n</a>\n'
    assert _xml.to_text(None) == ''


def test_sub_element_leaves_out_unset_attributes():
    root = parse('<a/>')
    _xml.sub_element(root, 'host', name='h', port=None)
    _xml.sub_element(root, 'name', 'n')
    assert _xml.to_text(root, pretty=False) == '<a><host name="h" /><name>n</name></a>'
