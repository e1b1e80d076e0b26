# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r'''
options: {}
requirements:
  - libvirt-python on the managed host (the C(python3-libvirt) package of Debian, Ubuntu, Fedora,
    RHEL and SUSE, C(libvirt-python) on Arch, or C(pip install libvirt-python)). When the Python
    running the module lacks it, the module re-runs itself under the system Python that has it.
notes:
  - The module opens one libvirt connection per run. Errors from libvirt are reported with what
    failed, on which object, and libvirt's own message and error code (RV(ignore:libvirt_error)).
'''
