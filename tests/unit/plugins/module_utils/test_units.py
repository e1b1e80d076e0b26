import pytest

from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError
from ansible_collections.hypervisor.kvm.plugins.module_utils._units import (
    bytes_to_kib,
    disk_size,
    format_size,
    parse_size,
    unit_factor,
)


@pytest.mark.parametrize('value, expected', [
    ('2GiB', 2 * 1024 ** 3),
    ('512 MiB', 512 * 1024 ** 2),
    ('2G', 2 * 1024 ** 3),
    ('2g', 2 * 1024 ** 3),
    ('1.5T', int(1.5 * 1024 ** 4)),
    ('10GB', 10 * 1000 ** 3),
    ('1KB', 1000),
    ('1KiB', 1024),
    ('1k', 1024),
    ('7b', 7),
    ('7 bytes', 7),
    ('0', 0),
    ('.5K', 512),
    ('1E', 1024 ** 6),
])
def test_parse_size_follows_libvirt_units(value, expected):
    assert parse_size(value, 'capacity') == expected


def test_bare_numbers_take_the_default_unit():
    assert parse_size(4096, 'memory', default_unit='KiB') == 4096 * 1024
    assert parse_size('4096', 'memory', default_unit='MiB') == 4096 * 1024 ** 2
    assert parse_size(4096, 'capacity') == 4096


@pytest.mark.parametrize('value, words', [
    ('2 gigs', 'unknown unit'),
    ('lots', 'cannot read'),
    ('-1G', 'cannot read'),
    ('1.2.3G', 'cannot read'),
    ('', 'cannot read'),
    (True, 'expected a size'),
    ([1], 'expected a size'),
    (-5, 'negative'),
    ('5 KiBB', 'unknown unit'),
])
def test_bad_sizes_name_the_option_and_the_value(value, words):
    with pytest.raises(KvmError) as err:
        parse_size(value, 'disk_size')
    assert err.value.msg.startswith('disk_size: ')
    assert words in err.value.msg


def test_unit_factor():
    assert unit_factor('MB') == 10 ** 6
    assert unit_factor('MiB') == unit_factor('M') == unit_factor('m') == 2 ** 20
    assert unit_factor('bytes') == 1
    assert unit_factor('Q') is None
    assert unit_factor('Mx') is None


def test_kib_rounds_up_and_sizes_print_for_people():
    assert bytes_to_kib(1) == 1
    assert bytes_to_kib(2048) == 2
    assert format_size(512) == '512 B'
    assert format_size(2 * 1024 ** 3) == '2 GiB'
    assert format_size(1536 * 1024) == '1.5 MiB'


@pytest.mark.parametrize('value', [20480, '20480', 1048575, 0.5, '4096'])
def test_a_bare_number_that_makes_a_disk_under_1_mib_is_refused_saying_what_it_was_read_as(value):
    with pytest.raises(KvmError) as caught:
        disk_size(value, 'disk_size')
    assert caught.value.msg.startswith(f'disk_size: {value} is a bare number, so it is bytes (')
    assert f"'{value}GiB'" in caught.value.msg


@pytest.mark.parametrize('value, expected', [(1048576, 1048576), ('16777216', 16777216), ('512KiB', 524288),
                                             ('20GiB', 20 * 1024 ** 3), ('1KB', 1000)])
def test_a_bare_number_of_a_mib_or_more_or_any_size_with_a_unit_is_taken(value, expected):
    assert disk_size(value, 'capacity') == expected
