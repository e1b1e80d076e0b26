#!/usr/bin/python
# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: kvm_guests
short_description: Converge a whole list of guests in one run (the kvm_guest role's engine)
version_added: 0.2.0
description:
  - Converges a storage pool, networks, base images and a list of guests over one libvirt
    connection, in one module run. The role M(hypervisor.kvm.kvm_guest) calls it once for all
    its guests; use it directly for the same result from your own tasks.
  - "For each guest, in order: its disk (a copy-on-write qcow2 overlay C(<name>.qcow2) on its base
    image grown to O(guests[].disk_size), or an empty disk of that size), its cloud-init NoCloud
    seed C(<name>-seed.iso) (hostname, a sudo user with SSH keys, packages, free-form user-data
    and network-config) attached as a CD-ROM, and its domain. Base images are uploaded into the
    pool once (from a file on the managed host, or a URL downloaded once and checked against its
    checksum)."
  - Each step is planned and applied by the same code as M(hypervisor.kvm.kvm_pool),
    M(hypervisor.kvm.kvm_network), M(hypervisor.kvm.kvm_volume) and M(hypervisor.kvm.kvm_domain),
    so idempotence, check mode and C(--diff) behave as in those modules, guest by guest.
  - Every guest is checked before anything is touched (duplicate names, unknown networks, two image
    sources or none, a base image that is neither qcow2 nor raw, a disk smaller than its base image,
    user-data cloud-init cannot read, SSH keys that are not public keys...); all problems are
    reported at once and nothing changes.
  - A guest that fails later (libvirt refuses its domain, no address in time) does not stop the
    others; the module fails at the end with one line per failed guest, and RV(guests) shows what
    was done for each.
  - Running guests are started first and then waited for together (O(wait_for_ip)), so their boots
    overlap.
author:
  - hypervisor.kvm maintainers (@hypervisor-kvm)
extends_documentation_fragment:
  - hypervisor.kvm.connection
  - hypervisor.kvm.requirements
  - hypervisor.kvm.attributes
options:
  pool:
    description:
      - The directory storage pool that holds base images, disks and seeds. Required when a guest
        has a disk or a seed.
    type: dict
    suboptions:
      name:
        description: Pool name.
        type: str
        required: true
      path:
        description: The pool's directory on the libvirt host.
        type: path
        default: /var/lib/libvirt/images
      autostart:
        description: Start the pool with libvirt.
        type: bool
        default: true
      manage:
        description:
          - V(true) defines and starts the pool like M(hypervisor.kvm.kvm_pool) with O(pool.path) as
            target. V(false) uses an existing pool as it is.
        type: bool
        default: true
  networks:
    description:
      - Networks to converge before the guests. Each item takes the options of
        M(hypervisor.kvm.kvm_network) (C(name), C(forward), C(bridge), C(mtu), C(domain), C(ipv4),
        C(ipv6), C(dns), C(nat_ports), C(routes), C(dnsmasq_options), C(xml), C(autostart),
        C(restart), C(state)) and is checked
        against them; C(state) defaults to V(active) and C(autostart) to V(true) here.
    type: list
    elements: dict
    default: []
  guests:
    description: The guests.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Domain name, also the hostname given to cloud-init.
        type: str
        required: true
      state:
        description:
          - V(running) (started, waited for until it has an address), V(shutdown) (defined and off,
            a clean ACPI shutdown when it runs) or V(absent) (undefined).
        type: str
        choices: [running, shutdown, absent]
        default: running
      remove_storage:
        description:
          - With O(guests[].state=absent), also delete the volumes made for the guest - its disk and
            seed, and the new volumes of O(guests[].disks). Base images, and volumes given as
            O(guests[].disks[].volume), stay.
        type: bool
        default: false
      memory:
        description:
          - Memory, for example V(2GiB); a bare number is MiB. KiB, MiB, GiB are powers of 1024,
            KB, MB, GB powers of 1000. Default O(defaults.memory).
        type: str
      vcpus:
        description: Virtual CPUs. Default O(defaults.vcpus).
        type: int
      cpu:
        description:
          - The guest's CPU model and topology, as M(hypervisor.kvm.kvm_domain)'s
            O(hypervisor.kvm.kvm_domain#module:cpu) option, for example
            mode V(custom) with model V(qemu64). Unset leaves it to libvirt (and an existing guest's as it is).
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
      virt_type:
        description: V(auto), V(kvm) or V(qemu). Default O(defaults.virt_type).
        type: str
        choices: [auto, kvm, qemu]
      autostart:
        description: Start the guest with libvirt.
        type: bool
      base_image:
        description:
          - The image the guest's disk is an overlay on (qcow2 or raw). Without it (and with
            O(guests[].disk_size)) the guest gets an empty disk.
        type: dict
        suboptions:
          url:
            description:
              - An C(http), C(https), C(ftp) or C(file) URL, downloaded once per host (needs
                O(guests[].base_image.checksum)).
            type: str
          path:
            description: An image file on the managed host (an absolute path).
            type: path
          checksum:
            description: C(algorithm:hex) of the image; a mismatch fails before the guest is touched.
            type: str
          volume:
            description: Name of the base volume in the pool (default the file name of the URL or path).
            type: str
      disk_size:
        description:
          - Size of the guest's disk (the overlay is grown to it; cloud-init grows the filesystem),
            for example V(20GiB). KiB, MiB, GiB are powers of 1024, KB, MB, GB powers of 1000; a
            bare number is bytes, and one under 1 MiB is refused (write the unit).
        type: str
      networks:
        description:
          - Networks the guest has a NIC on, in order. Default O(defaults.networks).
          - Each is a network name, or a dict with C(name), C(mac) (a fixed MAC address) and C(model)
            (the NIC model, default C(virtio)).
        type: list
        elements: raw
      disks:
        description:
          - Extra disks, after the guest's own disk and seed, in order. Each is a new volume of
            O(guests[].disks[].size), made in the pool and named after the guest
            (C(NAME-diskN.qcow2), or C(.img) with O(guests[].disks[].format=raw)), or an existing
            O(guests[].disks[].volume).
          - With O(guests[].remove_storage=true) the new ones go with the guest; an existing volume
            given here is kept, with a warning.
        type: list
        elements: dict
        suboptions:
          size:
            description: The size of a new volume, for example V(10GiB).
            type: str
          volume:
            description: An existing volume.
            type: str
          pool:
            description: The pool of O(guests[].disks[].volume) (default the fleet's pool).
            type: str
          bus:
            description: The M(hypervisor.kvm.kvm_domain) disk bus.
            type: str
            choices: [virtio, sata, scsi, usb, ide]
          format:
            description: The volume format (a new one is V(qcow2), the default, or V(raw)).
            type: str
          cache:
            description: The M(hypervisor.kvm.kvm_domain) disk cache mode, for example V(none).
            type: str
      cloud_init:
        description:
          - The cloud-init seed. Guests with a base image get a seed even without this option
            (the hostname only).
        type: dict
        suboptions:
          user:
            description: A user to create, with passwordless sudo.
            type: str
          ssh_authorized_keys:
            description: >-
              SSH public keys of that user (of the image's default user without
              O(guests[].cloud_init.user)). Each must be a public key line.
            type: list
            elements: str
            default: []
          packages:
            description: Packages to install on first boot.
            type: list
            elements: str
            default: []
          user_data:
            description:
              - Free-form user-data. A dict is merged over the generated C(#cloud-config); a string
                replaces it and must start with a cloud-init header (V(#cloud-config), V(#!)...).
            type: raw
          network_config:
            description: A cloud-init network-config (version 1 or 2), for example a static address.
            type: raw
      kernel:
        description: Path of a kernel on the libvirt host, for direct kernel boot.
        type: path
      initrd:
        description: Path of an initramfs on the libvirt host, with O(guests[].kernel).
        type: path
      cmdline:
        description: The kernel command line, with O(guests[].kernel).
        type: str
      graphics:
        description: The M(hypervisor.kvm.kvm_domain) O(hypervisor.kvm.kvm_domain#module:graphics) option.
        type: raw
      console:
        description: The M(hypervisor.kvm.kvm_domain) O(hypervisor.kvm.kvm_domain#module:console) option.
        type: raw
      guest_agent:
        description:
          - V(true) adds the QEMU guest agent channel, so addresses can come from an agent in the
            guest (for example on a network without DHCP). V(false) removes it.
        type: bool
      title:
        description: The M(hypervisor.kvm.kvm_domain) O(hypervisor.kvm.kvm_domain#module:title) option.
        type: str
      description:
        description: The M(hypervisor.kvm.kvm_domain) O(hypervisor.kvm.kvm_domain#module:description) option.
        type: str
      metadata:
        description: The M(hypervisor.kvm.kvm_domain) O(hypervisor.kvm.kvm_domain#module:metadata) option.
        type: dict
      machine:
        description: The M(hypervisor.kvm.kvm_domain) O(hypervisor.kvm.kvm_domain#module:machine) option.
        type: str
      max_memory:
        description: The M(hypervisor.kvm.kvm_domain) O(hypervisor.kvm.kvm_domain#module:max_memory) option.
        type: str
      firmware:
        description: The M(hypervisor.kvm.kvm_domain) O(hypervisor.kvm.kvm_domain#module:firmware) option.
        type: str
        choices: [bios, efi]
      secure_boot:
        description: The M(hypervisor.kvm.kvm_domain) O(hypervisor.kvm.kvm_domain#module:secure_boot) option.
        type: bool
      boot:
        description:
          - The M(hypervisor.kvm.kvm_domain) O(hypervisor.kvm.kvm_domain#module:boot) option. A guest's
            O(guests[].kernel), O(guests[].initrd) and O(guests[].cmdline) go here or at the top, not both.
        type: dict
        suboptions:
          devices:
            description: Boot devices in order.
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
            description: The kernel command line.
            type: str
      rng:
        description: The M(hypervisor.kvm.kvm_domain) O(hypervisor.kvm.kvm_domain#module:rng) option.
        type: bool
      tpm:
        description: The M(hypervisor.kvm.kvm_domain) O(hypervisor.kvm.kvm_domain#module:tpm) option.
        type: bool
      xml_patches:
        description: The M(hypervisor.kvm.kvm_domain) O(hypervisor.kvm.kvm_domain#module:xml_patches) option.
        type: list
        elements: dict
        suboptions:
          xpath:
            description: The elements to change.
            type: str
            required: true
          value:
            description: The text to set, or with O(guests[].xml_patches[].attribute) the attribute's value.
            type: str
          attribute:
            description: The attribute to set.
            type: str
          xml:
            description: A fragment to append as a child, once.
            type: str
          state:
            description: V(absent) removes the elements.
            type: str
            choices: [present, absent]
            default: present
      filesystems:
        description: The M(hypervisor.kvm.kvm_domain) O(hypervisor.kvm.kvm_domain#module:filesystems) option.
        type: list
        elements: dict
        suboptions:
          source:
            description: The directory on the libvirt host (absolute; it must exist when the URI is local).
            type: path
            required: true
          target:
            description: The mount tag the guest mounts (no blanks, at most 36 characters).
            type: str
            required: true
          readonly:
            description:
              - Share read-only. libvirt before 11.0 cannot make a virtiofs share read-only, so there V(true) is
                refused before anything changes (not tested on a libvirt that can).
            type: bool
            default: false
      watchdog:
        description: The M(hypervisor.kvm.kvm_domain) O(hypervisor.kvm.kvm_domain#module:watchdog) option.
        type: dict
        suboptions:
          model:
            description: The emulated device (V(i6300esb) when not given; V(itco) is the q35 chipset's own).
            type: str
            choices: [i6300esb, ib700, diag288, itco]
          action:
            description: What happens when the guest stops feeding it (V(reset) when not given).
            type: str
            choices: [reset, shutdown, poweroff, pause, none, dump, inject-nmi]
      video:
        description: The M(hypervisor.kvm.kvm_domain) O(hypervisor.kvm.kvm_domain#module:video) option.
        type: dict
        suboptions:
          model:
            description: The device model. V(none) gives the guest no video device.
            type: str
            required: true
            choices: [virtio, qxl, vga, cirrus, bochs, ramfb, none]
          heads:
            description: Number of screens (1 to 16).
            type: int
          vram:
            description: Video memory, a size such as V(16MiB) (a bare number is KiB).
            type: str
      hostdevs:
        description: The M(hypervisor.kvm.kvm_domain) O(hypervisor.kvm.kvm_domain#module:hostdevs) option.
        type: list
        elements: dict
        suboptions:
          pci:
            description: A PCI address as C(lspci -D) shows it (V(0000:03:00.0); the domain may be left out).
            type: str
          usb:
            description: A USB device, by the ids C(lsusb) shows.
            type: dict
            suboptions:
              vendor:
                description: Vendor id (V(046d) or V(0x046d)).
                type: str
                required: true
              product:
                description: Product id.
                type: str
                required: true
          managed:
            description: libvirt detaches the device from the host's driver at start and gives it back after.
            type: bool
            default: true
      memory_backing:
        description: The M(hypervisor.kvm.kvm_domain) O(hypervisor.kvm.kvm_domain#module:memory_backing) option.
        type: dict
        suboptions:
          hugepages:
            description:
              - Back the memory with the host's hugepages (of the default size unless
                O(hypervisor.kvm.kvm_domain#module:memory_backing.hugepage_size)).
            type: bool
          hugepage_size:
            description:
              - The hugepage size, such as V(2MiB) or V(1GiB) (a bare number is KiB); implies
                O(hypervisor.kvm.kvm_domain#module:memory_backing.hugepages).
            type: str
          source:
            description: The memory's source.
            type: str
            choices: [anonymous, file, memfd]
          shared:
            description: Share the memory (C(<access mode='shared'/>)), as virtiofs and vhost-user need.
            type: bool
          locked:
            description: Lock the memory in the host's RAM (never swapped).
            type: bool
      numa:
        description: The M(hypervisor.kvm.kvm_domain) O(hypervisor.kvm.kvm_domain#module:numa) option.
        type: list
        elements: dict
        suboptions:
          cpus:
            description: The cell's vCPUs, as a CPU list (V(0-1), V(0,2)).
            type: str
            required: true
          memory:
            description: The cell's memory, a size such as V(512MiB) (a bare number is MiB).
            type: str
            required: true
      cputune:
        description: The M(hypervisor.kvm.kvm_domain) O(hypervisor.kvm.kvm_domain#module:cputune) option.
        type: dict
        suboptions:
          vcpupin:
            description: One entry per pinned vCPU.
            type: list
            elements: dict
            suboptions:
              vcpu:
                description: The vCPU number (from 0).
                type: int
                required: true
              cpuset:
                description: The host CPUs it may run on, as a CPU list (V(2-3), V(0,4)).
                type: str
                required: true
          emulatorpin:
            description: The host CPUs QEMU's own threads may run on.
            type: str
  defaults:
    description: Values for the guests that do not set their own.
    type: dict
    default: {}
    suboptions:
      memory:
        description: Memory (a bare number is MiB).
        type: str
        default: 1GiB
      vcpus:
        description: Virtual CPUs.
        type: int
        default: 1
      virt_type:
        description: Domain type; V(auto) picks V(kvm) where hardware KVM is usable, else V(qemu).
        type: str
        choices: [auto, kvm, qemu]
        default: auto
      networks:
        description: Networks.
        type: list
        elements: str
        default: [default]
  wait_for_ip:
    description: Seconds to wait (for all running guests together) until each has an address; V(0) does not wait.
    type: int
    default: 120
notes:
  - Check mode plans every step as if the earlier ones had run, so a guest on a network, pool or
    base image the same run would create is predicted, not refused. It does not wait for addresses.
  - C(--diff) shows one diff per changed object (pool, network, base image, and each guest's disk,
    seed and domain).
seealso:
  - module: hypervisor.kvm.kvm_domain
  - module: hypervisor.kvm.kvm_volume
  - module: hypervisor.kvm.kvm_network
'''

EXAMPLES = r'''
- name: Two guests from a Debian cloud image, one network, in one run
  hypervisor.kvm.kvm_guests:
    pool: {name: guests, path: /var/lib/libvirt/guests}
    networks:
      - name: lab
        forward: nat
        ipv4: {address: 192.168.150.1, prefix: 24, dhcp: {ranges: [{start: 192.168.150.100, end: 192.168.150.199}]}}
    defaults: {memory: 1GiB, vcpus: 1, networks: [lab]}
    guests:
      - name: web1
        base_image: {path: /var/lib/images/debian-12.qcow2}
        disk_size: 8GiB
        cloud_init:
          user: debian
          ssh_authorized_keys: ["{{ lookup('ansible.builtin.file', '~/.ssh/id_ed25519.pub') }}"]
      - name: web2
        base_image: {path: /var/lib/images/debian-12.qcow2}
        disk_size: 8GiB
        guest_agent: true
  register: fleet

- name: Their addresses
  ansible.builtin.debug:
    msg: "{{ fleet.guests | items2dict(key_name='name', value_name='ips') }}"

- name: A guest with a data disk, a second NIC with a fixed MAC, metadata and a patch
  hypervisor.kvm.kvm_guests:
    pool: {name: guests, path: /var/lib/libvirt/guests}
    guests:
      - name: db1
        memory: 2GiB
        disks:
          - {size: 20GiB, cache: none}
        networks:
          - default
          - {name: default, mac: "52:54:00:10:00:01", model: e1000e}
        title: Primary database
        metadata: {role: db}
        tpm: true
        xml_patches:
          - {xpath: ./on_crash, value: restart}
        state: shutdown

- name: Remove one, with its disk and seed (the base image stays)
  hypervisor.kvm.kvm_guests:
    pool: {name: guests, path: /var/lib/libvirt/guests}
    guests:
      - {name: web2, state: absent, remove_storage: true}
'''

RETURN = r'''
guests:
  description: One entry per guest, in the order given (the role's C(kvm_guest_results)).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The guest.
      type: str
    state:
      description: Its power state (running, shutoff, paused...) or absent; predicted in check mode.
      type: str
    ips:
      description: Its addresses (after the wait for running guests).
      type: list
      elements: str
    macs:
      description: The MAC addresses of its NICs.
      type: list
      elements: str
    changed:
      description: Whether anything of this guest changed (or would, in check mode).
      type: bool
    actions:
      description: What was (or would be) done, by step (C(disk), C(seed), C(disks[N]) for a new extra disk, C(domain)).
      type: dict
      sample: {disk: [create], seed: [create, upload], domain: [define, start]}
    failed:
      description: Present and true when this guest failed; RV(guests[].msg) says why.
      type: bool
    msg:
      description: Why this guest failed.
      type: str
  sample:
    - {name: web1, state: running, ips: [192.168.150.123], macs: ['52:54:00:6b:3c:58'], changed: true,
       actions: {disk: [create], seed: [create, upload], domain: [define, start]}}
pool:
  description: The pool's actions (null when the pool is not managed or not needed).
  returned: always
  type: list
  elements: str
networks:
  description: Each network's name and actions.
  returned: always
  type: list
  elements: dict
base_images:
  description: Each base image volume's name and actions.
  returned: always
  type: list
  elements: dict
diff:
  description: One before/after per object that changed.
  returned: when the run asks for a diff (C(--diff), or the task keyword C(diff) set to true)
  type: list
  elements: dict
problems:
  description: Every problem found before anything changed, one per line (the message lists them too).
  returned: failure, when the input was refused
  type: list
  elements: str
'''


# first of all: the module_utils below are compiled once each (see _compile_once)
from ansible_collections.hypervisor.kvm.plugins.module_utils import _compile_once  # noqa: F401  # isort: skip  # pylint: disable=unused-import
from ansible_collections.hypervisor.kvm.plugins.module_utils._guests import converge_fleet, fleet_options
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import connection_argument_spec
from ansible_collections.hypervisor.kvm.plugins.module_utils._options import KvmModule
from ansible_collections.hypervisor.kvm.plugins.module_utils._runner import run


def main():
    module = KvmModule(
        argument_spec=dict(**connection_argument_spec(), **fleet_options()),
        supports_check_mode=True,
    )
    run(module, lambda conn: converge_fleet(conn, module.params, module.check_mode, module.no_log_values, module._diff),
        'converging the guests')


if __name__ == '__main__':
    main()
