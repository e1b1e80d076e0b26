# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""docs/architecture.md's layer table is what the code does: every file of plugins/module_utils
is in it once, imports only files of its own or a lower layer, and no import cycle exists (an
import inside a function counts: a lazy import does not break a cycle)."""

from __future__ import annotations

import ast
import os
import re

ROOT = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..')
MODULE_UTILS = os.path.join(ROOT, 'plugins', 'module_utils')
PACKAGE = 'ansible_collections.hypervisor.kvm.plugins.module_utils'


def layer_table(text: str) -> dict:
    """{file: layer} from the table under '## The layers'."""
    section = text.split('## The layers', 1)[1].split('\n## ', 1)[0]
    layers = {}
    for number, files in re.findall(r'^\| (\d+) \| ([^|]+) \|', section, re.MULTILINE):
        for name in re.findall(r'`(_\w+)`', files):
            assert name not in layers, f'{name} is in the table twice'
            layers[name] = int(number)
    return layers


def imports(source: str) -> set:
    """The module_utils files ``source`` imports, at any depth (a function's imports too)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE):
            rest = node.module[len(PACKAGE):].lstrip('.')
            found.update([rest.split('.')[0]] if rest else (alias.name for alias in node.names))
    return found


def import_graph(directory: str) -> dict:
    graph = {}
    for name in sorted(os.listdir(directory)):
        if name.endswith('.py') and name != '__init__.py':
            with open(os.path.join(directory, name), encoding='utf-8') as handle:
                graph[name[:-3]] = imports(handle.read()) - {name[:-3]}
    return graph


def cycles(graph: dict) -> list:
    """Each import cycle once, as the path that closes it."""
    found, done = [], set()

    def visit(node, path):
        if node in path:
            cycle = path[path.index(node):] + [node]
            if frozenset(cycle) not in done:
                done.add(frozenset(cycle))
                found.append(' -> '.join(cycle))
            return
        for target in sorted(graph.get(node, ())):
            visit(target, path + [node])

    for start in sorted(graph):
        visit(start, [])
    return found


def layer_problems(graph: dict, layers: dict) -> list:
    problems = [f'{name}: not in the table of docs/architecture.md (The layers)'
                for name in graph if name not in layers]
    problems += [f'{name}: in the table, but plugins/module_utils has no such file'
                 for name in layers if name not in graph]
    for name, targets in graph.items():
        for target in sorted(targets):
            if name in layers and target in layers and layers[target] > layers[name]:
                problems.append(f'{name} (layer {layers[name]}) imports {target} (layer {layers[target]})')
    return problems


def test_the_code_keeps_to_the_layer_table():
    with open(os.path.join(ROOT, 'docs', 'architecture.md'), encoding='utf-8') as handle:
        layers = layer_table(handle.read())
    assert layers, 'no layer table found in docs/architecture.md'
    assert layer_problems(import_graph(MODULE_UTILS), layers) == []


def test_no_import_cycle():
    assert cycles(import_graph(MODULE_UTILS)) == []


def test_an_upward_import_and_a_cycle_are_found():
    graph = {'_low': {'_high'}, '_high': {'_low'}, '_lazy': {'_low'}}
    layers = {'_low': 1, '_high': 2, '_lazy': 2}
    assert layer_problems(graph, layers) == ['_low (layer 1) imports _high (layer 2)']
    assert cycles(graph) == ['_high -> _low -> _high']
    assert layer_problems({'_new': set()}, {}) == ['_new: not in the table of docs/architecture.md (The layers)']


def test_an_import_inside_a_function_counts():
    source = f'def later():\n    from {PACKAGE}._domain import Domain\n    return Domain\n'
    assert imports(source) == {'_domain'}
    assert imports(f'from {PACKAGE} import _xml\n') == {'_xml'}
