"""The EXAMPLES of every resource module run as written, in order, against test:///default."""

import pytest
import yaml

from ansible_collections.hypervisor.kvm.plugins.modules import kvm_network, kvm_network_info, kvm_pool, kvm_pool_info

MODULES = {f'hypervisor.kvm.{module.__name__.rsplit(".", 1)[-1]}': module
           for module in (kvm_network, kvm_network_info, kvm_pool, kvm_pool_info)}


def example_tasks(module):
    for task in yaml.safe_load(module.EXAMPLES):
        for key, args in task.items():
            if key in MODULES:
                for item in task.get('loop') or [None]:
                    # the examples loop over names only
                    yield task['name'], MODULES[key], {
                        option: (item if value == '{{ item }}' else value) for option, value in (args or {}).items()}


@pytest.mark.parametrize('module', list(MODULES.values()), ids=lambda m: m.__name__.rsplit('.', 1)[-1])
def test_examples_run_as_written(conn, run_module, module):
    tasks = list(example_tasks(module))
    assert tasks, 'the module has no examples'
    for name, target, args in tasks:
        result = run_module(target.main, {**args, 'uri': 'test:///default'})
        assert not result['failed'], f'example {name!r} failed: {result.get("msg")}'
