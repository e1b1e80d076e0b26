"""Read a cloud-init NoCloud seed ISO back, independently of the module: print a JSON object
with the volume label, the ISO 9660 / Rock Ridge / Joliet names and each file's text, on one
line (kvm_remote reads it as one line of a longer output; it declares needs/target/kvm_volume).

usage: python read_seed.py IMAGE  (needs pycdlib; the collection's venv has it)
"""

import io
import json
import sys

import pycdlib


def main(path):
    iso = pycdlib.PyCdlib()
    iso.open(path)
    out = {
        'label': iso.pvd.volume_identifier.decode().strip(),
        'iso9660': sorted(child.file_identifier().decode() for child in iso.list_children(iso_path='/')
                          if not (child.is_dot() or child.is_dotdot())),
        'joliet': iso.has_joliet(),
        'rock_ridge': iso.has_rock_ridge(),
        'files': {},
    }
    for name in ('user-data', 'meta-data', 'network-config'):
        data = io.BytesIO()
        try:
            iso.get_file_from_iso_fp(data, rr_path='/' + name)
        except pycdlib.pycdlibexception.PyCdlibException:
            continue
        out['files'][name] = data.getvalue().decode()
    if iso.has_joliet():
        out['joliet_names'] = sorted(child.file_identifier().decode('utf-16_be')
                                     for child in iso.list_children(joliet_path='/')
                                     if not (child.is_dot() or child.is_dotdot()))
    iso.close()
    json.dump(out, sys.stdout, sort_keys=True)


if __name__ == '__main__':
    main(sys.argv[1])
