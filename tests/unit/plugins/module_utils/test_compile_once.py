# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_compile_once: imported from a zip as Ansible's payload is, each module is compiled once and
keeps the file name, spec and behaviour it has without it; from files, nothing changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

from ansible_collections.hypervisor.kvm.plugins.module_utils import _compile_once

# counts compile() calls per file name, then imports pkgx.two (optionally pkgx._compile_once first)
PROBE = '''
import builtins, collections, json, sys
counts = collections.Counter()
real = builtins.compile
def counting(source, filename, *args, **kwargs):
    counts[str(filename).rsplit('/', 1)[-1]] += 1
    return real(source, filename, *args, **kwargs)
builtins.compile = counting
sys.path.insert(0, sys.argv[1])
if sys.argv[2] == 'first':
    import pkgx._compile_once
import pkgx.two
import pkgx.three
print(json.dumps({'counts': counts, 'file': pkgx.two.__file__, 'origin': pkgx.two.__spec__.origin,
                  'double': pkgx.two.DOUBLE, 'package': pkgx.three.__name__, 'sub': pkgx.three.sub.NAME}))
'''


def write_zip(archive, modules: dict) -> None:
    """A zip of Python source: {dotted name: source}; a name with dotted children is a package."""
    with zipfile.ZipFile(archive, 'w') as payload:
        for name, source in modules.items():
            parts = name.split('.')
            if any(other.startswith(name + '.') for other in modules):
                parts.append('__init__')
            payload.writestr('/'.join(parts) + '.py', source)


def probe(tmp_path, first: bool) -> dict:
    archive = tmp_path / 'payload.zip'
    with open(_compile_once.__file__, encoding='utf-8') as handle:
        source = handle.read()
    write_zip(archive, {'pkgx': '', 'pkgx._compile_once': source, 'pkgx.one': 'VALUE = 21\n',
                        'pkgx.two': 'from pkgx.one import VALUE\nDOUBLE = 2 * VALUE\n',
                        'pkgx.three': 'from pkgx.three import sub\n', 'pkgx.three.sub': 'NAME = __name__\n'})
    out = subprocess.run([sys.executable, '-c', PROBE, str(archive), 'first' if first else 'plain'],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def test_from_a_zip_each_module_is_compiled_once_and_means_the_same(tmp_path):
    plain = probe(tmp_path, first=False)
    once = probe(tmp_path, first=True)
    # after _compile_once, the modules of its own package are compiled once (a sub-package is
    # another path entry with a loader of its own, left as it is)
    assert once['counts']['one.py'] == 1
    assert once['counts']['two.py'] == 1
    assert once['counts']['one.py'] <= plain['counts']['one.py']
    for key in ('file', 'origin', 'double', 'package', 'sub'):
        assert once[key] == plain[key], key
    assert once['file'] == os.path.join(str(tmp_path), 'payload.zip', 'pkgx', 'two.py')
    assert once['double'] == 42 and once['sub'] == 'pkgx.three.sub'


def test_from_files_and_twice_it_does_nothing(tmp_path):
    # the unit tests import the collection from files: another loader, left alone
    assert _compile_once.compile_once(_compile_once.__loader__) is False
    assert _compile_once.compile_once(None) is False
    archive = tmp_path / 'p.zip'
    write_zip(archive, {'m': 'X = 1\n'})
    import zipimport  # pylint: disable=import-outside-toplevel

    loader = zipimport.zipimporter(str(archive))
    assert _compile_once.compile_once(loader) is True
    assert _compile_once.compile_once(loader) is False
    name = loader.get_filename('m')
    kept = loader.get_code('m')
    assert kept.co_filename == name == os.path.join(str(archive), 'm.py')
    # the code get_filename compiled is handed over once; a later get_code compiles afresh
    again = loader.get_code('m')
    assert again is not kept and again.co_filename == name
