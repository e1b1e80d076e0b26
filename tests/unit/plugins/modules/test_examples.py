"""The EXAMPLES of every module run as written, in order, against test:///default (libvirt's test
driver), after the objects they refer to are made there. What the test driver cannot answer is
listed in CANNOT with the reason, and checked to fail for that reason only where it says so."""

import pytest
import yaml

from ansible_collections.hypervisor.kvm.plugins.modules import (
    kvm_domain,
    kvm_domain_info,
    kvm_guests,
    kvm_host_info,
    kvm_migration,
    kvm_network,
    kvm_network_info,
    kvm_pool,
    kvm_pool_info,
    kvm_snapshot,
    kvm_volume,
)

ALL = (kvm_domain, kvm_domain_info, kvm_guests, kvm_host_info, kvm_migration, kvm_network, kvm_network_info,
       kvm_pool, kvm_pool_info, kvm_snapshot, kvm_volume)
MODULES = {f'hypervisor.kvm.{module.__name__.rsplit(".", 1)[-1]}': module for module in ALL}
TEST = 'test:///default'

# (module, example name) -> why libvirt's test driver (or this machine) cannot run it
CANNOT = {
    ('kvm_domain', 'A guest on an overlay disk and a cloud-init seed, running, with its address'):
        'it waits for an address (wait_for_ip), and the test driver\'s guests never get one; the examples '
        'after it run on the same web1 made without the wait',
    ('kvm_domain', 'More memory and a second NIC, live and in the definition'):
        'its max_memory (4 GiB) is more than the test driver\'s host has (3 GiB), which kvm_domain refuses',
    ('kvm_domain', 'A UEFI guest with Secure Boot, defined but left off'):
        'its memory (8 GiB) is more than the test driver\'s host has (3 GiB), which kvm_domain refuses',
    ('kvm_domain', 'A guest from a full definition'):
        'its XML comes from a template on the controller (db1.xml.j2), which a unit test does not have',
    ('kvm_volume', 'A base image uploaded from a local file'): 'the test driver has no volume upload',
    ('kvm_volume', 'A cloud image downloaded once, checksum verified'):
        'a download from the internet, and the test driver has no volume upload',
    ('kvm_volume', 'Grow it (shrinking would need allow_shrink)'): 'the test driver has no volume resize',
    ('kvm_volume', 'Delete a volume, overwriting its data first'): 'the test driver has no volume wipe',
    ('kvm_volume', "The guest's cloud-init seed"): 'a seed is written by a volume upload, which the test driver lacks',
    ('kvm_guests', 'Two guests from a Debian cloud image, one network, in one run'):
        'a base image downloaded from the internet, and seeds written by volume uploads',
    ('kvm_snapshot', 'A disk-only external snapshot of db1\'s data disk, its file systems frozen by the guest agent'):
        'quiesce needs a guest agent in a running guest',
    ('kvm_snapshot', 'Delete it (its overlay is merged into the data disk, the guest keeps its data)'):
        'it deletes the external snapshot that the example before makes',
    ('kvm_migration', 'Guest web1 runs on host-b (live, its disks on shared storage)'): 'a second host',
    ('kvm_migration', 'Move db1 with its disks, within 10 minutes or not at all'): 'a second host',
    ('kvm_migration', 'Peer to peer, the guest paused after 2 minutes so that it finishes'): 'a second host',
    ('kvm_migration', 'A shut-off guest moves by its definition'): 'a second host',
}


def example_tasks(module):
    """(task name, module, args) of each example task of ``module`` (other modules' tasks are left
    out: ``debug``, ``assert``), a loop unrolled over its items."""
    name = module.__name__.rsplit('.', 1)[-1]
    for task in yaml.safe_load(module.EXAMPLES):
        for key, args in task.items():
            if key in MODULES:
                for item in task.get('loop') or [None]:
                    options = {option: (item if value == '{{ item }}' else value)
                               for option, value in (args or {}).items()}
                    yield task['name'], MODULES[key], options, name


def prepare(run, module_name: str) -> None:
    """What the examples of ``module_name`` refer to, made on the test driver: pool ``images``, the
    volumes of the domain examples (the volume examples make their own), network ``backplane``,
    guests ``web1`` (running) and ``db1`` (with a data disk) for the snapshot and info examples."""
    run(kvm_pool.main, {'uri': TEST, 'name': 'images', 'type': 'dir', 'target': {'path': '/var/lib/libvirt/images'},
                        'state': 'active'})
    volumes = {'kvm_volume': ['debian-12-base.qcow2'],
               'kvm_domain': ['web1.qcow2', 'web1-seed.iso', 'win11.qcow2']}.get(
        module_name, ['web1.qcow2', 'db1.qcow2', 'db1-data.qcow2'])
    for volume in volumes:
        run(kvm_volume.main, {'uri': TEST, 'pool': 'images', 'name': volume, 'capacity': '1GiB', 'format': 'qcow2'})
    run(kvm_network.main, {'uri': TEST, 'name': 'backplane', 'forward': 'isolated',
                           'ipv4': {'address': '10.99.0.1', 'prefix': 24}, 'state': 'active'})
    if module_name == 'kvm_domain':
        run(kvm_domain.main, {'uri': TEST, 'name': 'web1', 'memory': '2GiB', 'vcpus': 2, 'state': 'running',
                              'disks': [{'volume': 'web1.qcow2', 'pool': 'images'},
                                        {'volume': 'web1-seed.iso', 'pool': 'images', 'device': 'cdrom'}],
                              'interfaces': [{'network': 'default'}]})
    if module_name in ('kvm_snapshot', 'kvm_domain_info', 'kvm_migration'):
        for name, disks in (('web1', ['web1.qcow2']), ('db1', ['db1.qcow2', 'db1-data.qcow2'])):
            run(kvm_domain.main, {'uri': TEST, 'name': name, 'memory': '1GiB', 'state': 'running',
                                  'disks': [{'volume': disk, 'pool': 'images'} for disk in disks]})


@pytest.mark.parametrize('module', ALL, ids=lambda m: m.__name__.rsplit('.', 1)[-1])
def test_examples_run_as_written(conn, reset_driver, run_module, module):
    reset_driver(conn)
    prepare(run_module, module.__name__.rsplit('.', 1)[-1])
    tasks = list(example_tasks(module))
    assert tasks, 'the module has no examples'
    ran, skipped = [], []
    for name, target, args, module_name in tasks:
        if (module_name, name) in CANNOT:
            skipped.append(name)
            continue
        result = run_module(target.main, {**args, 'uri': TEST})
        assert not result['failed'], f'example {name!r} failed: {result.get("msg")}'
        ran.append(name)
    print(f"\n{module.__name__.rsplit('.', 1)[-1]}: {len(ran)} examples ran, {len(skipped)} cannot here: {skipped}")


def test_every_reason_names_an_example():
    names = {(module_name, name) for module in ALL for name, _t, _a, module_name in example_tasks(module)}
    assert set(CANNOT) - names == set()
