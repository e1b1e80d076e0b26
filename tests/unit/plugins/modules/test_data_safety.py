"""Never destroy what something else uses (issue 21, part 1), on libvirt's test driver: a base
image other volumes are backed by, a disk that backs another volume, a network running guests
are on. Each refusal names what uses the object, in check mode too, and changes nothing."""

from ansible_collections.hypervisor.kvm.plugins.modules import kvm_domain, kvm_network, kvm_volume

URI = 'test:///default'
POOL = 'default-pool'


def volume(name, **extra):
    return {'uri': URI, 'name': name, 'pool': POOL, **extra}


def volume_names(conn):
    return sorted(conn.storagePoolLookupByName(POOL).listVolumes())


def base_and_overlays(run_module, *overlays):
    assert run_module(kvm_volume.main, volume('kvmtest-base.qcow2', capacity='16MiB', format='qcow2'))['changed']
    for name in overlays:
        assert run_module(kvm_volume.main, volume(name, backing_volume='kvmtest-base.qcow2'))['changed']


def test_a_base_image_that_backs_overlays_is_not_deleted(conn, run_module):
    base_and_overlays(run_module, 'kvmtest-web1.qcow2', 'kvmtest-web2.qcow2')
    for check_mode in (True, False):
        result = run_module(kvm_volume.main, volume('kvmtest-base.qcow2', state='absent'), check_mode=check_mode)
        assert result['failed'] and not result['changed']
        assert result['used_by'] == [f'{POOL}/kvmtest-web1.qcow2', f'{POOL}/kvmtest-web2.qcow2']
        assert result['msg'].startswith(f"volume 'kvmtest-base.qcow2' in storage pool '{POOL}' is the backing file "
                                        f"of {POOL}/kvmtest-web1.qcow2, {POOL}/kvmtest-web2.qcow2: deleting it "
                                        'would break them, so nothing was deleted')
    assert volume_names(conn) == ['kvmtest-base.qcow2', 'kvmtest-web1.qcow2', 'kvmtest-web2.qcow2']


def test_if_in_use_keep_leaves_it_with_a_warning_and_deletes_it_once_unused(conn, run_module):
    base_and_overlays(run_module, 'kvmtest-web1.qcow2')
    kept = run_module(kvm_volume.main, volume('kvmtest-base.qcow2', state='absent', if_in_use='keep'))
    assert not kept['failed'] and not kept['changed'] and kept['actions'] == []
    assert kept['used_by'] == [f'{POOL}/kvmtest-web1.qcow2']
    assert 'it is the backing file of default-pool/kvmtest-web1.qcow2' in str(kept['warnings'])
    assert 'kvmtest-base.qcow2' in volume_names(conn)
    assert run_module(kvm_volume.main, volume('kvmtest-web1.qcow2', state='absent'))['changed']
    gone = run_module(kvm_volume.main, volume('kvmtest-base.qcow2', state='absent', if_in_use='keep'))
    assert gone['changed'] and gone['actions'] == ['delete'] and 'used_by' not in gone
    assert volume_names(conn) == []


def test_remove_storage_keeps_a_disk_that_backs_another_volume_and_lists_it(conn, run_module):
    base_and_overlays(run_module, 'kvmtest-web2.qcow2')
    dom = {'uri': URI, 'name': 'kvmtest-safe', 'memory': '64MiB',
           'disks': [{'volume': 'kvmtest-base.qcow2', 'pool': POOL}], 'state': 'present'}
    assert run_module(kvm_domain.main, dom)['changed']
    gone = {'uri': URI, 'name': 'kvmtest-safe', 'state': 'absent', 'remove_storage': True}
    check = run_module(kvm_domain.main, gone, check_mode=True)
    result = run_module(kvm_domain.main, gone)
    for outcome in (check, result):
        assert not outcome['failed'] and outcome['changed']
        assert outcome['kept_storage'] == [{'path': f'/{POOL}/kvmtest-base.qcow2',
                                            'reason': f'the backing file of {POOL}/kvmtest-web2.qcow2'}]
        assert 'removed_storage' not in outcome
    assert 'the backing file of default-pool/kvmtest-web2.qcow2' in str(result['warnings'])
    assert volume_names(conn) == ['kvmtest-base.qcow2', 'kvmtest-web2.qcow2']
    assert 'kvmtest-safe' not in [d.name() for d in conn.listAllDomains()]


def test_remove_storage_deletes_a_disk_nothing_else_uses_and_says_it_kept_nothing(conn, run_module):
    base_and_overlays(run_module, 'kvmtest-web3.qcow2')
    dom = {'uri': URI, 'name': 'kvmtest-safe', 'memory': '64MiB',
           'disks': [{'volume': 'kvmtest-web3.qcow2', 'pool': POOL}], 'state': 'present'}
    run_module(kvm_domain.main, dom)
    result = run_module(kvm_domain.main, {'uri': URI, 'name': 'kvmtest-safe', 'state': 'absent',
                                          'remove_storage': True})
    assert result['kept_storage'] == [] and result['removed_storage'] == [f'/{POOL}/kvmtest-web3.qcow2']
    assert volume_names(conn) == ['kvmtest-base.qcow2']


def test_a_network_running_guests_are_on_is_not_removed_without_force(conn, run_module):
    # the test driver's running domain 'test' has its NIC on the network 'default'
    gone = {'uri': URI, 'name': 'default', 'state': 'absent'}
    for check_mode in (True, False):
        result = run_module(kvm_network.main, gone, check_mode=check_mode)
        assert result['failed'] and not result['changed'] and result['guests'] == ['test']
        assert result['msg'].startswith("network 'default' has running guests attached: test. Removing it would "
                                        'cut them off, so nothing was changed')
    assert conn.networkLookupByName('default').isActive()
    forced = run_module(kvm_network.main, dict(gone, force=True))
    assert not forced['failed'] and forced['changed'] and forced['actions'] == ['stop', 'undefine']
    conn.networkDefineXML(FORCED_BACK)


FORCED_BACK = "<network><name>default</name><bridge name='virbr0'/><forward/><ip address='192.168.122.1' " \
              "netmask='255.255.255.0'><dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp></ip></network>"
