"""The EXAMPLES of every resource module run as written, in order, against test:///default."""

import yaml

import pytest

from ansible_collections.hypervisor.kvm.plugins.modules import kvm_pool, kvm_pool_info

MODULES = {'hypervisor.kvm.kvm_pool': kvm_pool, 'hypervisor.kvm.kvm_pool_info': kvm_pool_info}


def example_tasks(module):
    for task in yaml.safe_load(module.EXAMPLES):
        for key, args in task.items():
            if key in MODULES:
                yield task['name'], MODULES[key], dict(args or {})


@pytest.mark.parametrize('module', [kvm_pool, kvm_pool_info], ids=lambda m: m.__name__.rsplit('.', 1)[-1])
def test_examples_run_as_written(conn, run_module, module):
    tasks = list(example_tasks(module))
    assert tasks, 'the module has no examples'
    for name, target, args in tasks:
        failed, result = run_module(target.main, {**args, 'uri': 'test:///default'})
        assert not failed, f'example {name!r} failed: {result.get("msg")}'
