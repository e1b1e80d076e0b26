#!/usr/bin/python
# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: kvm_host_info
short_description: Whether a Linux machine can be a KVM host, and why not
version_added: 0.1.0
description:
  - Reads the CPU's virtualization support (Intel VT-x C(vmx), AMD-V C(svm)), whether the machine
    is itself a VM, C(/dev/kvm) (present, usable by asking C(KVM_GET_API_VERSION), owner, group,
    mode), the KVM provider module (kvm_intel, kvm_amd, or another such as kvm_pvm), whether
    modules are built in or loadable, nested virtualization, IOMMU, hugepages, C(/dev/vhost-net)
    and C(/dev/net/tun), from /proc and /sys without running any command.
  - RV(virt_mode) says V(kvm) (KVM usable) or V(qemu) (emulation only), with the reason in plain
    words; RV(auto_virt_type) is the type M(hypervisor.kvm.kvm_domain) picks for
    O(hypervisor.kvm.kvm_domain#module:virt_type=auto).
  - When libvirt is reachable, adds its version, the QEMU version, domain types, machine types
    and UEFI firmware availability. Works without libvirt-python (hardware facts only), so it can
    run before anything is installed.
author:
  - hypervisor.kvm maintainers (@hypervisor-kvm)
extends_documentation_fragment:
  - hypervisor.kvm.connection
  - hypervisor.kvm.attributes.INFO_MODULE
options:
  libvirt:
    description: Also ask libvirt (when libvirt-python is there and libvirt answers).
    type: bool
    default: true
notes:
  - Without libvirt-python or a running libvirt, RV(libvirt) says C(reachable=false) with the C(reason).
'''

EXAMPLES = r'''
- name: Can this machine run KVM guests?
  hypervisor.kvm.kvm_host_info:
  register: host

- name: Say why not
  ansible.builtin.debug:
    msg: "{{ host.virt_mode }}: {{ host.virt_mode_reason }}"

- name: Refuse to go on without hardware virtualization
  ansible.builtin.assert:
    that: host.virt_mode == 'kvm'
    fail_msg: "{{ host.virt_mode_reason }}"
  when: require_kvm | default(false)
'''

RETURN = r'''
virt_mode:
  description: V(kvm) when KVM is usable on the host, V(qemu) when only emulation is.
  returned: always
  type: str
  sample: kvm
virt_mode_reason:
  description: Why, in plain words.
  returned: always
  type: str
  sample: "vmx virtualization with kvm_intel: /dev/kvm is usable"
auto_virt_type:
  description:
    - The domain type O(hypervisor.kvm.kvm_domain#module:virt_type=auto) picks; V(qemu) also when
      KVM comes from a paravirtual provider (kvm_pvm), under which stock guest kernels hang.
  returned: always
  type: str
cpu:
  description: C(vendor), C(model), C(virt_flag) (vmx, svm, sie or null), C(hypervisor_flag).
  returned: always
  type: dict
inside_vm:
  description: Whether this machine is itself a virtual machine (hypervisor CPU flag or DMI).
  returned: always
  type: bool
dmi:
  description: C(sys_vendor) and C(product_name) from DMI (null where there is no DMI).
  returned: always
  type: dict
kvm:
  description:
    - C(/dev/kvm) facts (C(present), C(usable), C(api_version), C(owner), C(group), C(mode)), the
      C(provider) module, C(module) and C(provider_module) (loaded, builtin or absent),
      C(loadable_modules) (whether the kernel supports loadable modules) and C(nested).
  returned: always
  type: dict
iommu:
  description: C(enabled) and the number of IOMMU C(groups).
  returned: always
  type: dict
hugepages:
  description: C(total), C(free) and C(size_kib).
  returned: always
  type: dict
vhost_net:
  description: Whether /dev/vhost-net exists.
  returned: always
  type: bool
tun:
  description: Whether /dev/net/tun exists.
  returned: always
  type: bool
ipv4_routes:
  description:
    - The IPv4 routes of the host the module runs on, but the default route (from
      C(/proc/net/route)), each with C(interface), C(network), C(prefix) and the interface's
      own C(address) (its primary IPv4 address, or null).
    - libvirt refuses to start a virtual network whose subnet is one of them; the
      P(hypervisor.kvm.kvm_host#role) role picks its C(default) network's subnet from them.
  returned: always
  type: list
  elements: dict
  sample: [{interface: eth0, network: 192.168.122.0, prefix: 24, address: 192.168.122.57}]
libvirt:
  description:
    - C(reachable), and when it is C(uri), C(hostname) (the libvirt host's), C(libvirt_version),
      C(hypervisor_version) (QEMU), C(host_arch), C(domain_types), C(guests) (per arch domain types
      and machine types), C(firmware), C(uefi_available), C(uefi_loaders); else C(reason).
    - With a remote O(uri) only this part describes the libvirt host; the other facts describe the
      host the module runs on (a warning says so).
  returned: always
  type: dict
'''


# first of all: the module_utils below are compiled once each (see _compile_once)
from ansible_collections.hypervisor.kvm.plugins.module_utils import _compile_once  # noqa: F401  # isort: skip  # pylint: disable=unused-import
from ansible_collections.hypervisor.kvm.plugins.module_utils import _libvirt
from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError
from ansible_collections.hypervisor.kvm.plugins.module_utils._host import hardware_facts, libvirt_facts
from ansible_collections.hypervisor.kvm.plugins.module_utils._options import KvmModule
from ansible_collections.hypervisor.kvm.plugins.module_utils._runner import run_without_connection


def main():
    module = KvmModule(
        argument_spec=dict(**_libvirt.connection_argument_spec(), libvirt=dict(type='bool', default=True)),
        supports_check_mode=True,
    )
    run_without_connection(module, lambda: host_info(module.params), 'reading the host')


def host_info(params: dict) -> dict:
    """The hardware facts, then what libvirt says (an unreachable libvirt is a fact, not a failure)."""
    result = dict(changed=False, **hardware_facts())
    if not params['libvirt']:
        result['libvirt'] = {'reachable': False, 'reason': 'not asked (libvirt: false)'}
    elif not _libvirt.HAS_LIBVIRT:
        result['libvirt'] = {'reachable': False, 'reason': 'libvirt-python is not installed on this host'}
    else:
        try:
            with _libvirt.connect(params['uri']) as conn, _libvirt.guard('reading libvirt capabilities'):
                result['libvirt'] = libvirt_facts(conn)
        except KvmError as err:
            result['libvirt'] = {'reachable': False, 'reason': err.msg}
    if _libvirt.is_remote_uri(_libvirt.resolve_uri(params['uri'])):
        result['warnings'] = [
            'the hardware facts describe the host this module runs on; with a remote uri only the libvirt part '
            'describes the libvirt host (run the module there, or delegate to it, for its hardware)']
    return result


if __name__ == '__main__':
    main()
