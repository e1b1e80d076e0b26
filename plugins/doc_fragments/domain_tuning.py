# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r'''
options:
  filesystems:
    description:
      - Shared folders (virtiofs) - a directory of the libvirt host the guest mounts with
        C(mount -t virtiofs TARGET /mnt). libvirt starts C(virtiofsd) for each (on Debian 12 it comes
        with QEMU; on Debian 13 it is the C(virtiofsd) package).
      - virtiofs needs the guest's memory shared with virtiofsd - without O(memory_backing), the
        guest gets C(memfd) memory with shared access, unless its memory is shared already.
      - Given, the list is authoritative - V([]) removes every share. Shares pair by O(filesystems[].target).
      - A change on a running guest takes effect at its next start (C(restart_required)).
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
          - Share read-only. libvirt before 11.0 cannot make a virtiofs share read-only, so there
            V(true) is refused before anything changes (not tested on a libvirt that can).
        type: bool
        default: false
  watchdog:
    description:
      - A watchdog device. V({}) removes the guest's watchdogs.
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
    description:
      - The video device (the only one; libvirt adds one of its choosing to a guest with graphics
        when this is not given).
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
    description:
      - Host devices passed through to the guest - a PCI device by address, or a USB device by
        vendor and product. Given, the list is authoritative; V([]) removes them all.
      - They are defined and compared on any host; a guest with one starts only where the device
        exists (and, for PCI, the IOMMU and vfio are set up) - the tests define them only.
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
    description:
      - How the guest's memory is backed. Given, it is authoritative - V({}) removes the settings.
      - Hugepages start only where the host has enough free ones of that size (and a hugetlbfs mount).
    type: dict
    suboptions:
      hugepages:
        description:
          - Back the memory with the host's hugepages (of the default size unless O(memory_backing.hugepage_size)).
        type: bool
      hugepage_size:
        description:
          - The hugepage size, such as V(2MiB) or V(1GiB) (a bare number is KiB); implies
            O(memory_backing.hugepages).
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
    description:
      - Guest NUMA cells, in order (cell N is the Nth item). Each vCPU is in at most one cell; the
        cells' memory adds up to the guest's memory. V([]) removes them.
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
    description:
      - vCPU and emulator pinning to host CPUs. Given, it is authoritative - V({}) removes the pinning.
      - A change on a running guest takes effect at its next start (C(restart_required)).
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
'''
