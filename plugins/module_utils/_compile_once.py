# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compile each of the collection's module_utils once per module run, not twice.

A module runs from Ansible's payload, a zip file imported with the standard library's
``zipimport``. For every module it imports from a zip, ``zipimport`` compiles the source twice:
once when the import system asks the loader for the file name (``get_filename`` works the name
out by loading the code), and again when it asks for the code (``get_code``). Nothing is cached:
a payload holds no bytecode. The collection's module_utils on a module's import path are about
100 KB of source, so the second compile costs a module run about 15 ms.

Imported first by every module, this keeps the code that ``get_filename`` compiled and hands it
to ``get_code``, on the one loader that loads the collection's module_utils in this run. Both
methods keep their meaning (the same file name, the same code object); nothing else changes. A
module run from files (unit tests, ``ansible-test``) has another loader, and this does nothing.
"""

from __future__ import annotations

import zipimport


def compile_once(loader) -> bool:
    """Make ``loader`` (a ``zipimporter``) compile each module once. Returns whether it did."""
    if not isinstance(loader, zipimport.zipimporter) or 'get_code' in vars(loader):
        return False
    get_code = loader.get_code
    get_filename = loader.get_filename
    compiled = {}

    def filename_once(fullname):
        code = get_code(fullname)
        # source compiled from the zip carries its path in the zip as its file name; for anything
        # else (bytecode in the zip), ask the loader as before
        if not code.co_filename.startswith(loader.archive):
            return get_filename(fullname)
        compiled[fullname] = code
        return code.co_filename

    def code_once(fullname):
        code = compiled.pop(fullname, None)
        return get_code(fullname) if code is None else code

    loader.get_filename = filename_once
    loader.get_code = code_once
    return True


compile_once(globals().get('__loader__'))
