"""Results carry ``diff`` only when the run asks for one (``--diff``, ``_ansible_diff``); with or
without it, check mode predicts the same and a real run does the same: ``changed``, ``actions``
and every other key are identical. One scenario per module, against libvirt's test:///default
driver (kvm_migration's, which needs a second host, is in test_kvm_migration.py)."""

import pytest

from ansible_collections.hypervisor.kvm.plugins.modules import (
    kvm_domain,
    kvm_guests,
    kvm_network,
    kvm_pool,
    kvm_snapshot,
    kvm_volume,
)

URI = 'test:///default'
GUEST = ("<domain type='test'><name>kvmtest-diffmode</name><memory unit='MiB'>256</memory><vcpu>1</vcpu>"
         "<os><type>hvm</type></os><devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
         "<source file='/guest/kvmtest-diffmode.qcow2'/><target dev='vda' bus='virtio'/></disk></devices></domain>")


def guest(conn):
    conn.defineXML(GUEST).create()


SCENARIOS = {
    'kvm_pool': (kvm_pool.main, {'name': 'kvmtest-diffmode', 'target': {'path': '/var/tmp/kvmtest-diffmode'},
                                 'state': 'active', 'autostart': True}, None),
    'kvm_network': (kvm_network.main, {'name': 'kvmtest-diffmode', 'forward': 'nat', 'bridge': 'kvmtdm0',
                                       'ipv4': {'address': '10.241.9.1', 'prefix': 24}, 'state': 'active'}, None),
    'kvm_volume': (kvm_volume.main, {'pool': 'default-pool', 'name': 'kvmtest-diffmode.qcow2',
                                     'capacity': '10MiB'}, None),
    'kvm_domain': (kvm_domain.main, {'name': 'kvmtest-diffmode', 'virt_type': 'qemu', 'memory': '128MiB',
                                     'state': 'paused'}, None),
    'kvm_guests': (kvm_guests.main, {
        'pool': {'name': 'kvmtest-diffmode-pool', 'path': '/var/tmp/kvmtest-diffmode-pool'},
        'networks': [{'name': 'kvmtest-diffmode-net', 'forward': 'nat', 'bridge': 'kvmtdm1',
                      'ipv4': {'address': '10.241.10.1', 'prefix': 24}}],
        'defaults': {'memory': '64MiB', 'networks': ['kvmtest-diffmode-net']},
        'guests': [{'name': f'kvmtest-diffmode-{index}', 'disk_size': '16MiB'} for index in range(2)],
        'wait_for_ip': 0}, None),
    'kvm_snapshot': (kvm_snapshot.main, {'domain': 'kvmtest-diffmode', 'name': 's1', 'description': 'd'}, guest),
}


def actions(result: dict):
    """What a run did or would do (kvm_guests: per guest)."""
    return result['actions'] if 'actions' in result else [guest['actions'] for guest in result['guests']]


def less_diff(with_diff: dict) -> dict:
    return {key: value for key, value in with_diff.items() if key != 'diff'}


@pytest.mark.parametrize('module', sorted(SCENARIOS))
def test_the_diff_is_the_only_difference_and_only_under_diff(conn, run_module, module):
    main, args, setup = SCENARIOS[module]
    args = dict(args, uri=URI)
    if setup:
        setup(conn)
    # check mode: the same prediction, the diff only when asked
    check = run_module(main, args, check_mode=True)
    check_diff = run_module(main, args, check_mode=True, diff=True)
    assert not check['failed'] and check['changed'] and actions(check), check
    assert 'diff' not in check
    assert check_diff['diff'] and less_diff(check_diff) == check
    # a real run without --diff does what check mode predicted, and returns no diff
    real = run_module(main, args)
    assert not real['failed'] and real['changed'] and 'diff' not in real, real
    assert actions(real) == actions(check)
    # a no-op, with and without --diff: identical but for the diff
    noop = run_module(main, args)
    noop_diff = run_module(main, args, diff=True)
    assert not noop['changed'] and 'diff' not in noop, noop
    assert 'diff' in noop_diff and less_diff(noop_diff) == noop
