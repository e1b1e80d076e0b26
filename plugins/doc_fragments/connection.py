# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r'''
options:
  uri:
    description:
      - The libvirt connection URI, for example V(qemu:///system), V(qemu+ssh://root@host/system)
        or V(test:///default) (libvirt's in-memory test driver).
      - When not set, the E(LIBVIRT_DEFAULT_URI) environment variable of the managed host is used,
        and without it V(qemu:///system).
      - Set it once for every module of this collection with
        C(module_defaults) and the action group C(group/hypervisor.kvm.kvm).
    type: str
    default: qemu:///system
'''
