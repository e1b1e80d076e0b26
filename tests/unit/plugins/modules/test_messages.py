"""Messages that used to mislead (issue 21, part 4): each names the option the user wrote, in the
user's words, and nothing changes."""

from ansible_collections.hypervisor.kvm.plugins.modules import kvm_domain, kvm_guests, kvm_network, kvm_pool

URI = 'test:///default'
KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl user@host'


def lines(result):
    return result['msg'].split('\n')


def test_a_string_where_a_dict_is_expected_names_the_option_and_its_form(conn, run_module):
    pool = run_module(kvm_pool.main, {'uri': URI, 'name': 'kvmtest-msg-pool', 'type': 'dir', 'target': '/srv/x'})
    assert pool['failed'] and not pool.get('changed')
    assert lines(pool) == ["target: a dict with the keys group, mode, owner, path (for example target: "
                           "{path: /srv/x}), not the string '/srv/x'"]
    domain = run_module(kvm_domain.main, {'uri': URI, 'name': 'kvmtest-msg-dom', 'memory': '64MiB',
                                          'interfaces': ['default']})
    assert domain['failed'] and lines(domain) == [
        "interfaces[0]: a dict with the keys bridge, direct, mac, mode, model, network (for example "
        "{network: default}), not the string 'default'"]
    assert 'kvmtest-msg-pool' not in [p.name() for p in conn.listAllStoragePools()]
    assert 'kvmtest-msg-dom' not in [d.name() for d in conn.listAllDomains()]


def test_a_misspelled_key_is_named_unknown_beside_the_missing_one(conn, run_module):
    result = run_module(kvm_network.main, {'uri': URI, 'name': 'kvmtest-msg-net', 'ipv4': {'adress': '10.0.0.1'}})
    assert result['failed']
    assert lines(result) == ['ipv4.adress: unknown key (the keys here are address, dhcp, netmask, prefix, tftp)',
                             'missing required arguments: address found in ipv4']
    top = run_module(kvm_network.main, {'uri': URI, 'name': 'kvmtest-msg-net', 'forwrd': 'nat'})
    assert top['failed'] and lines(top)[0].startswith('forwrd: unknown option (the options are autostart, bridge,')


def test_a_misspelled_network_key_of_kvm_guests_says_unknown(conn, run_module):
    result = run_module(kvm_guests.main, {'uri': URI, 'networks': [{'name': 'kvmtest-msg-n', 'forwrd': 'nat'}],
                                          'guests': []})
    assert result['failed'] and not result['changed']
    assert result['msg'].startswith('networks[0].forwrd: unknown key (the keys here are autostart, bridge, dns,')


def test_a_misspelled_domain_says_it_does_not_exist(conn, run_module):
    for state in ('running', 'shutdown'):
        result = run_module(kvm_domain.main, {'uri': URI, 'name': 'kvmtest-msg-nosuch', 'state': state})
        assert result['failed'] and not result['changed']
        assert result['msg'] == (f"no domain named 'kvmtest-msg-nosuch' on test:///default: state {state} needs "
                                 'an existing domain (is the name right?), and creating one needs memory '
                                 '(e.g. memory: 1GiB)')
    present = run_module(kvm_domain.main, {'uri': URI, 'name': 'kvmtest-msg-nosuch', 'state': 'present'})
    assert present['msg'] == 'memory: required to create a domain (e.g. memory: 1GiB)'


def test_a_bad_ssh_key_is_reported_where_the_user_wrote_it(conn, run_module):
    result = run_module(kvm_guests.main, {
        'uri': URI, 'pool': {'name': 'kvmtest-msg-pool', 'path': '/var/tmp/kvmtest-msg-pool'},
        'guests': [{'name': 'kvmtest-msg-g', 'networks': [],
                    'cloud_init': {'user': 'u', 'ssh_authorized_keys': [KEY, '/root/.ssh/id.pub']}}]})
    assert result['failed'] and not result['changed']
    assert result['problems'] == [
        "guests[0] (kvmtest-msg-g): cloud_init.ssh_authorized_keys[1]: '/root/.ssh/id.pub' is not an SSH public key "
        "(expected a line such as 'ssh-ed25519 AAAAC3Nza... user@host'; a private key or a file path is not one)"]
    assert 'users[' not in result['msg']


def test_the_test_driver_is_not_called_the_remote_host(conn, run_module):
    result = run_module(kvm_domain.main, {'uri': URI, 'name': 'kvmtest-msg-auto', 'memory': '64MiB',
                                          'virt_type': 'auto'}, check_mode=True)
    assert not result['failed']
    assert "libvirt's test driver offers no kvm domains" in str(result['warnings'])
    assert 'remote host' not in str(result['warnings'])


def test_a_bare_disk_size_under_1_mib_fails_before_anything_changes(conn, run_module):
    from ansible_collections.hypervisor.kvm.plugins.modules import kvm_volume

    volume = run_module(kvm_volume.main, {'uri': URI, 'name': 'kvmtest-msg.qcow2', 'pool': 'default-pool',
                                          'capacity': 20480})
    assert volume['failed'] and not volume['changed']
    assert volume['msg'].startswith("capacity: 20480 is a bare number, so it is bytes (20 KiB), too small for a disk")
    fleet = run_module(kvm_guests.main, {'uri': URI, 'pool': {'name': 'kvmtest-msg-pool', 'path': '/var/tmp/x'},
                                         'guests': [{'name': 'kvmtest-msg-g', 'disk_size': 20480, 'networks': []}]})
    assert fleet['failed'] and not fleet['changed']
    assert "guests[0] (kvmtest-msg-g): disk_size: 20480 is a bare number, so it is bytes (20 KiB)" in fleet['msg']
    assert 'kvmtest-msg-pool' not in [p.name() for p in conn.listAllStoragePools()]
