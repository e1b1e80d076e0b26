# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a NoCloud seed ISO back with pycdlib (not with the module's code): print a JSON object
with its volume label and the text of user-data, meta-data and network-config when present.

usage: python read_seed.py IMAGE   (the collection's venv has pycdlib)
"""

from __future__ import annotations

import io
import json
import sys

import pycdlib


def main(path):
    iso = pycdlib.PyCdlib()
    iso.open(path)
    out = {'label': iso.pvd.volume_identifier.decode().strip(), 'files': {}}
    for name in ('user-data', 'meta-data', 'network-config'):
        data = io.BytesIO()
        try:
            iso.get_file_from_iso_fp(data, rr_path='/' + name)
        except pycdlib.pycdlibexception.PyCdlibException:
            continue
        out['files'][name] = data.getvalue().decode()
    iso.close()
    json.dump(out, sys.stdout, sort_keys=True)


if __name__ == '__main__':
    main(sys.argv[1])
