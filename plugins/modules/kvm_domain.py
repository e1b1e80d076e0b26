#!/usr/bin/python
# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: kvm_domain
short_description: Define, change and drive libvirt domains (guests) through their whole life
version_added: 0.1.0
description:
  - Define a guest from structured options (memory, vcpus, CPU, firmware, boot, disks,
    interfaces, graphics, console, guest agent, rng, tpm) or from a full XML definition, and
    take it to a power state (O(state)).
  - Idempotent by comparison with libvirt's inactive definition. libvirt's additions (uuid,
    MACs, PCI addresses, controllers) are not drift; the uuid and MACs of an existing domain are
    kept when you do not give them. Disks and interfaces you list are authoritative.
  - A change to a running guest is written to its persistent definition and reported with
    RV(restart_required=true); O(restart=true) shuts it down gracefully and starts it again;
    O(live=true) applies memory, vcpu and disk/interface additions or removals to the running
    guest too.
  - Paravirtualized virtio devices by default.
author:
  - hypervisor.kvm maintainers (@hypervisor-kvm)
extends_documentation_fragment:
  - hypervisor.kvm.connection
  - hypervisor.kvm.requirements
  - hypervisor.kvm.attributes
  - hypervisor.kvm.xml_patches
  - hypervisor.kvm.domain_tuning
options:
  name:
    description: Name of the domain. Required unless O(xml) names it.
    type: str
  state:
    description:
      - V(present) - defined; the power state is left as it is (a new domain stays off).
      - V(running) - defined and running (started, or resumed when paused).
      - V(shutdown) - defined and off, by an ACPI shutdown; returns when the guest is off, waiting
        up to O(shutdown_timeout), then forces it off with O(force_off_after_timeout=true) or fails.
      - V(destroyed) - defined and off, by a hard power off.
      - V(paused) - defined, started if needed, and paused.
      - V(absent) - powered off if needed and undefined with its managed save image, snapshot
        metadata and NVRAM. Its disks stay unless O(remove_storage=true). A missing domain is fine.
    type: str
    choices: [present, running, shutdown, destroyed, paused, absent]
    default: present
  virt_type:
    description:
      - V(kvm) (hardware-assisted), V(qemu) (emulation, TCG), or V(auto).
      - V(auto) picks V(kvm) for a new domain when hardware-assisted KVM is usable on the host
        (vmx/svm and /dev/kvm usable), else V(qemu) with a warning saying why; an existing
        domain keeps its type.
    type: str
    choices: [auto, kvm, qemu]
    default: auto
  arch:
    description: Guest architecture (a new domain defaults to V(x86_64)).
    type: str
  machine:
    description:
      - Machine type, for example V(q35) or V(pc). A new x86_64 domain defaults to V(q35).
        The alias matches the versioned type libvirt expands it to (V(pc-q35-7.2)).
    type: str
  memory:
    description:
      - Memory as a size string (V(2GiB), V(512MiB)); a bare number is MiB. KiB, MiB, GiB are
        powers of 1024, KB, MB, GB powers of 1000 (V(2GB) is 2,000,000,000 bytes). Required for a
        new domain.
    type: str
  max_memory:
    description:
      - Maximum memory the guest can balloon up to (default O(memory)); a size as for O(memory),
        a bare number is MiB.
    type: str
  vcpus:
    description: Virtual CPUs (a new domain defaults to 1).
    type: int
  max_vcpus:
    description: Maximum virtual CPUs, for hot-plugging up to it (default O(vcpus)).
    type: int
  cpu:
    description:
      - CPU model and topology.
      - A new domain whose O(cpu) gives no O(cpu.mode) gets V(host-passthrough) under KVM (as
        C(virt-install) does) and V(maximum) under QEMU emulation, everything TCG can emulate
        (QEMU's default C(qemu64) model lacks the x86-64-v2 features current distributions
        need). libvirt before 7.1 has no V(maximum); there QEMU's default stays.
      - An existing domain's CPU is never changed by this default - only what O(cpu) says is
        compared, so upgrading the collection causes no drift and no O(restart).
    type: dict
    suboptions:
      mode:
        description: CPU mode.
        type: str
        choices: [host-passthrough, host-model, maximum, custom]
      model:
        description: CPU model for V(custom), for example V(Skylake-Client).
        type: str
      sockets:
        description: Sockets (sockets * cores * threads must equal the vcpus).
        type: int
      cores:
        description: Cores per socket.
        type: int
      threads:
        description: Threads per core.
        type: int
  firmware:
    description: V(bios) or V(efi) (OVMF, chosen by libvirt's firmware autoselection).
    type: str
    choices: [bios, efi]
  secure_boot:
    description:
      - With O(firmware=efi), V(true) asks for a Secure Boot firmware with enrolled keys, V(false) for
        one without Secure Boot.
      - Unset, a new definition gets V(false) (libvirt on its own picks a firmware with Microsoft's keys
        enrolled, which refuses an unsigned boot loader); an existing definition keeps its firmware.
    type: bool
  boot:
    description: Boot order, or direct kernel boot.
    type: dict
    suboptions:
      devices:
        description: Boot devices in order. A new domain without a kernel boots from V(hd).
        type: list
        elements: str
        choices: [hd, cdrom, network, fd]
      kernel:
        description: Path of a kernel on the host, for direct kernel boot.
        type: path
      initrd:
        description: Path of an initrd on the host.
        type: path
      cmdline:
        description: Kernel command line.
        type: str
  disks:
    description:
      - The domain's disks, in order (authoritative). Each is a pool volume (O(disks[].volume)
        and O(disks[].pool)) or a host path (O(disks[].path)); a cdrom may be empty.
    type: list
    elements: dict
    suboptions:
      volume:
        description: Volume name in O(disks[].pool).
        type: str
      pool:
        description: Pool of the volume (default V(default)).
        type: str
      path:
        description: A file or block device on the host.
        type: path
      device:
        description: V(disk) or V(cdrom).
        type: str
        choices: [disk, cdrom]
        default: disk
      bus:
        description:
          - Disk bus. Disks default to V(virtio); cdroms to V(sata), which q35 and UEFI guests accept.
        type: str
        choices: [virtio, sata, scsi, usb, ide]
      format:
        description: Image format (default the volume's format, or guessed from the file name).
        type: str
      readonly:
        description: Read-only disk (cdroms always are).
        type: bool
        default: false
      cache:
        description: Cache mode, for example V(none) or V(writeback).
        type: str
      target:
        description: Device name in the guest (default vda, vdb... or sda... by bus).
        type: str
  interfaces:
    description: The domain's network interfaces, in order (authoritative).
    type: list
    elements: dict
    suboptions:
      network:
        description: A libvirt network.
        type: str
      bridge:
        description: A host bridge.
        type: str
      direct:
        description: A host device for macvtap.
        type: str
      mode:
        description: macvtap mode for O(interfaces[].direct) (bridge, vepa, private, passthrough).
        type: str
      model:
        description: Device model.
        type: str
        default: virtio
      mac:
        description: MAC address; libvirt generates one when not set (and keeps it afterwards).
        type: str
  graphics:
    description:
      - V(none), V(vnc) or V(spice), or a dict with C(type), C(listen) (default V(127.0.0.1)),
        C(port) (default automatic) and C(password) (never shown in results or diffs).
    type: raw
  console:
    description:
      - A serial console. V(true) (a pty, the default of a new domain), V(false), or a dict with
        C(pty) (bool) and C(log) (a file on the host that records the console output).
    type: raw
  guest_agent:
    description: Add (or remove) the QEMU guest agent channel.
    type: bool
  rng:
    description: A virtio random number generator (a new domain has one unless V(false)).
    type: bool
  tpm:
    description: An emulated TPM 2.0 (needs swtpm on the host).
    type: bool
  title:
    description:
      - A short title for the guest (one line), as C(virsh desc --title) sets it. V('') removes it.
      - A change is written to the definition and told to a running guest at once, with no restart.
    type: str
  description:
    description:
      - A description of the guest (any text). V('') removes it. Changed live as O(title) is.
    type: str
  metadata:
    description:
      - The collection's own metadata for the guest, a dict of string keys and values (numbers
        and booleans are stored as text). Stored in the definition under C(<metadata>) in the
        namespace C(https://hypervisor.kvm/meta), as C(<kvm:entry key="...">value</kvm:entry>).
      - Authoritative when given - the guest has exactly these keys afterwards; V({}) removes
        them all. Other applications' metadata (other namespaces) is never touched.
      - Changed live as O(title) is. The inventory plugin returns it as C(kvm_meta).
    type: dict
  xml:
    description:
      - A full domain definition (from C(virt-install --print-xml), virt-manager or a template),
        compared as a subset of libvirt's definition. Mutually exclusive with the structured options.
    type: str
  autostart:
    description: Start the domain when libvirt starts. Honoured with every O(state) but V(absent).
    type: bool
  restart:
    description:
      - When a running guest's change needs a restart, V(true) shuts it down gracefully (the
        O(shutdown_timeout) rules apply) and starts it again; V(false) reports RV(restart_required).
    type: bool
    default: false
  live:
    description:
      - Also apply to the running guest what libvirt can change live; memory within
        O(max_memory), vcpus within O(max_vcpus), and added or removed interfaces and disks.
    type: bool
    default: false
  shutdown_timeout:
    description: Seconds to wait for an ACPI shutdown (O(state=shutdown), O(restart=true)).
    type: int
    default: 120
  force_off_after_timeout:
    description: Force the guest off when it has not shut down within O(shutdown_timeout), instead of failing.
    type: bool
    default: false
  wait_for_ip:
    description:
      - With O(state=running), wait up to this many seconds until the guest has an IP address
        (DHCP lease, else guest agent), and return RV(domain.interfaces) with it. V(0) does not wait.
    type: int
    default: 0
  remove_storage:
    description:
      - With O(state=absent), also delete the volumes and files the domain's own disks use (not
        cdroms, not shareable disks); RV(removed_storage) lists them.
      - What something else still uses is kept, with a warning, and listed in RV(kept_storage), namely
        a disk another domain uses, and a volume that is the backing file of other volumes (their
        copy-on-write overlays would break).
    type: bool
    default: false
notes:
  - Graphics listen on 127.0.0.1 unless told otherwise; reach them through an SSH tunnel.
seealso:
  - module: hypervisor.kvm.kvm_domain_info
  - module: hypervisor.kvm.kvm_volume
  - module: hypervisor.kvm.kvm_network
  - name: libvirt domain XML format
    description: Everything O(xml) can express.
    link: https://libvirt.org/formatdomain.html
'''

EXAMPLES = r'''
- name: A guest on an overlay disk and a cloud-init seed, running, with its address
  hypervisor.kvm.kvm_domain:
    name: web1
    memory: 2GiB
    vcpus: 2
    cpu:
      mode: host-passthrough
    disks:
      - {volume: web1.qcow2, pool: images}
      - {volume: web1-seed.iso, pool: images, device: cdrom}
    interfaces:
      - network: default
    guest_agent: true
    graphics: none
    state: running
    wait_for_ip: 120
    autostart: true
  register: web1

- name: Show its address
  ansible.builtin.debug:
    msg: "{{ web1.domain.interfaces[0].addresses }}"

- name: More memory and a second NIC, live and in the definition
  hypervisor.kvm.kvm_domain:
    name: web1
    memory: 2GiB
    max_memory: 4GiB
    interfaces:
      - network: default
      - network: backplane
    live: true
    state: running

- name: A UEFI guest with Secure Boot, defined but left off
  hypervisor.kvm.kvm_domain:
    name: win11
    memory: 8GiB
    vcpus: 4
    firmware: efi
    secure_boot: true
    tpm: true
    disks:
      - {volume: win11.qcow2, pool: images, bus: sata}
      - {path: /srv/iso/Win11.iso, device: cdrom}
    boot:
      devices: [cdrom, hd]
    graphics: {type: spice, password: "{{ vault_spice_password }}"}
    state: present

- name: A title and the collection's metadata, changed on the running guest without a restart
  hypervisor.kvm.kvm_domain:
    name: web1
    title: Web server, blue
    metadata:
      role: web
      color: blue
    state: running

- name: What the options do not cover, as patches - restart on a crash, no USB, a watchdog
  hypervisor.kvm.kvm_domain:
    name: web1
    xml_patches:
      - {xpath: ./on_crash, value: restart}
      - {xpath: "./devices/controller[@type='usb']", attribute: model, value: none}
      - {xpath: ./devices, xml: "<watchdog model='i6300esb' action='reset'/>"}
    state: running

- name: Direct kernel boot with a serial console log
  hypervisor.kvm.kvm_domain:
    name: tiny
    virt_type: qemu
    memory: 256MiB
    boot:
      kernel: /var/lib/libvirt/boot/vmlinuz
      initrd: /var/lib/libvirt/boot/initrd.img
      cmdline: console=ttyS0
    console:
      log: /var/log/libvirt/qemu/tiny-console.log
    interfaces:
      - network: default
    state: running

- name: A guest with a shared folder (virtiofs), a watchdog and pinned vCPUs
  hypervisor.kvm.kvm_domain:
    name: build1
    memory: 2GiB
    vcpus: 2
    filesystems:
      - {source: /srv/src, target: src}    # in the guest: mount -t virtiofs src /mnt
    watchdog: {model: i6300esb, action: reset}
    cputune:
      vcpupin: [{vcpu: 0, cpuset: "2"}, {vcpu: 1, cpuset: "3"}]
    state: running

- name: A guest from a full definition
  hypervisor.kvm.kvm_domain:
    xml: "{{ lookup('ansible.builtin.template', 'db1.xml.j2') }}"
    state: running

- name: Shut it down cleanly, forcing it off after a minute
  hypervisor.kvm.kvm_domain:
    name: web1
    state: shutdown
    shutdown_timeout: 60
    force_off_after_timeout: true

- name: Remove a guest and the disks only it used
  hypervisor.kvm.kvm_domain:
    name: web1
    state: absent
    remove_storage: true
'''

RETURN = r'''
domain:
  description:
    - The domain after the run (predicted in check mode), as M(hypervisor.kvm.kvm_domain_info)
      describes one domain. After O(state=absent) only its name and C(state=absent).
  returned: always
  type: dict
  contains:
    name:
      description: Domain name.
      type: str
      sample: web1
    uuid:
      description: Domain UUID (null in check mode before the domain exists).
      type: str
    state:
      description: Power state; V(running), V(paused), V(shutoff), V(crashed), V(pmsuspended) (or V(absent)).
      type: str
      sample: running
    state_reason:
      description: Why it is in that state (booted, shutdown, destroyed, user...).
      type: str
    autostart:
      description: Whether it starts with libvirt.
      type: bool
    persistent:
      description: Whether it has a persistent definition.
      type: bool
    virt_type:
      description: The domain type in effect, V(kvm) or V(qemu).
      type: str
      sample: kvm
    vcpus:
      description: Current vcpus.
      type: int
    max_vcpus:
      description: Maximum vcpus.
      type: int
    memory:
      description: Current memory in bytes.
      type: int
    max_memory:
      description: Maximum memory in bytes.
      type: int
    disks:
      description: Disks (device, path or pool/volume, target, bus, format).
      type: list
      elements: dict
    title:
      description: The guest's title, V(null) when it has none.
      type: str
    description:
      description: The guest's description, V(null) when it has none.
      type: str
    metadata:
      description: The collection's metadata of the guest (see O(metadata)), V({}) when it has none.
      type: dict
      sample: {role: web, tier: "3"}
    interfaces:
      description:
        - Interfaces (type, mac, network, bridge, device, model, addresses). Addresses come from
          DHCP leases or the guest agent.
      type: list
      elements: dict
      sample: [{type: network, mac: "52:54:00:6b:3c:58", network: default, bridge: virbr0,
                device: vnet0, model: virtio, addresses: [192.168.122.45]}]
    has_managed_save:
      description: Whether a managed save image exists.
      type: bool
    snapshot_count:
      description: Number of snapshots.
      type: int
    xml:
      description: The persistent definition (passwords masked).
      type: str
actions:
  description:
    - What was done (or would be in check mode), in order; among them V(define), V(start),
      V(resume), V(pause), V(shutdown), V(destroy), V(restart), V(set-memory), V(set-vcpus),
      V(attach-interface), V(detach-interface), V(attach-disk), V(detach-disk), V(autostart),
      V(disable-autostart), V(undefine), V(remove-storage).
  returned: always
  type: list
  elements: str
  sample: [define, start]
restart_required:
  description: True when the running guest needs a restart to use its saved definition.
  returned: always
  type: bool
virt_type_reason:
  description: Why the domain has its type (O(virt_type=auto) explains its choice).
  returned: when the domain is defined by this module
  type: str
removed_storage:
  description: Paths of the volumes and files deleted with O(remove_storage=true).
  returned: when O(remove_storage=true) deleted something
  type: list
  elements: str
kept_storage:
  description:
    - The domain's storage O(remove_storage=true) did not delete because something else uses it,
      each with its C(path) and the C(reason) (C(another domain uses it too), or C(the backing
      file of pool/volume, ...)).
  returned: when O(remove_storage=true) and the domain existed
  type: list
  elements: dict
  sample: [{path: /var/lib/libvirt/images/base.qcow2, reason: the backing file of images/web2.qcow2}]
  version_added: 1.0.0
forced_off:
  description: True when the guest did not shut down in time and was forced off.
  returned: when it happened
  type: bool
diff:
  description: The power state dict and inactive XML before and after.
  returned: when the run asks for a diff (C(--diff), or the task keyword C(diff) set to true)
  type: dict
libvirt_error:
  description: libvirt's error (code, code_name, domain, message) when a libvirt call failed.
  returned: failure
  type: dict
'''


# first of all: the module_utils below are compiled once each (see _compile_once)
from ansible_collections.hypervisor.kvm.plugins.module_utils import _compile_once  # noqa: F401  # isort: skip  # pylint: disable=unused-import
from ansible_collections.hypervisor.kvm.plugins.module_utils._domain import Domain
from ansible_collections.hypervisor.kvm.plugins.module_utils._domain_options import domain_module_kwargs, domain_options
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import connection_argument_spec
from ansible_collections.hypervisor.kvm.plugins.module_utils._options import KvmModule, apply_unions
from ansible_collections.hypervisor.kvm.plugins.module_utils._runner import run_resource


def main():
    module = KvmModule(argument_spec=dict(**connection_argument_spec(), **domain_options()), **domain_module_kwargs())
    apply_unions(module, {'graphics': 'graphics', 'console': 'console'})
    run_resource(module, Domain)


if __name__ == '__main__':
    main()
