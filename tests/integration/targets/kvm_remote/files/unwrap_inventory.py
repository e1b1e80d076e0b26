# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read `ansible-inventory --list` JSON on stdin and print it without the ``{"__ansible_unsafe":
value}`` wrappers ansible-core 2.19 writes around values marked unsafe (the plugin's strings)."""

from __future__ import annotations

import json
import sys


def unwrap(value):
    """The value with every unsafe wrapper replaced by what it wraps."""
    if isinstance(value, dict):
        if set(value) == {'__ansible_unsafe'}:
            return unwrap(value['__ansible_unsafe'])
        return {key: unwrap(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unwrap(item) for item in value]
    return value


if __name__ == '__main__':
    json.dump(unwrap(json.load(sys.stdin)), sys.stdout, sort_keys=True)
