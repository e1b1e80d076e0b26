# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kvm_domain's options, in one place: the module is built from them, and kvm_guests fills each
guest's domain options through them (their defaults included), so the two cannot drift apart.
Nothing to import here but the spec: every kvm_domain and kvm_guests run loads this file."""

from __future__ import annotations

from ansible_collections.hypervisor.kvm.plugins.module_utils._options import xml_patches_option

DOMAIN_STATES = ('present', 'running', 'shutdown', 'destroyed', 'paused', 'absent')
# the structured options, which ``xml`` excludes (virt_type too, but it may go with xml)
STRUCTURED = ('virt_type', 'arch', 'machine', 'memory', 'max_memory', 'vcpus', 'max_vcpus', 'cpu', 'firmware',
              'secure_boot', 'boot', 'disks', 'interfaces', 'graphics', 'console', 'guest_agent', 'rng', 'tpm',
              'title', 'description', 'metadata', 'filesystems', 'watchdog', 'video', 'hostdevs', 'memory_backing',
              'numa', 'cputune')
VIRT_TYPES = ['auto', 'kvm', 'qemu']
WATCHDOG_MODELS = ['i6300esb', 'ib700', 'diag288', 'itco']
WATCHDOG_ACTIONS = ['reset', 'shutdown', 'poweroff', 'pause', 'none', 'dump', 'inject-nmi']
VIDEO_MODELS = ['virtio', 'qxl', 'vga', 'cirrus', 'bochs', 'ramfb', 'none']
# Shared folders, devices and tuning (_domain_tuning.py builds them; compiled only when given).
TUNING = ('memory_backing', 'numa', 'cputune', 'filesystems', 'watchdog', 'video', 'hostdevs')


def tuning_options() -> dict:
    """The argument spec of these options (kvm_domain's, and a kvm_guests guest's)."""
    return dict(
        filesystems=dict(type='list', elements='dict', options=dict(
            source=dict(type='path', required=True), target=dict(type='str', required=True),
            readonly=dict(type='bool', default=False),
        )),
        watchdog=dict(type='dict', options=dict(
            model=dict(type='str', choices=WATCHDOG_MODELS), action=dict(type='str', choices=WATCHDOG_ACTIONS),
        )),
        video=dict(type='dict', options=dict(
            model=dict(type='str', required=True, choices=VIDEO_MODELS), heads=dict(type='int'),
            vram=dict(type='str'),
        )),
        hostdevs=dict(type='list', elements='dict', options=dict(
            pci=dict(type='str'), usb=dict(type='dict', options=dict(
                vendor=dict(type='str', required=True), product=dict(type='str', required=True))),
            managed=dict(type='bool', default=True),
        )),
        memory_backing=dict(type='dict', options=dict(
            hugepages=dict(type='bool'), hugepage_size=dict(type='str'),
            source=dict(type='str', choices=['anonymous', 'file', 'memfd']), shared=dict(type='bool'),
            locked=dict(type='bool'),
        )),
        numa=dict(type='list', elements='dict', options=dict(
            cpus=dict(type='str', required=True), memory=dict(type='str', required=True),
        )),
        cputune=dict(type='dict', options=dict(
            vcpupin=dict(type='list', elements='dict', options=dict(
                vcpu=dict(type='int', required=True), cpuset=dict(type='str', required=True))),
            emulatorpin=dict(type='str'),
        )),
    )


def cpu_options() -> dict:
    """The suboptions of kvm_domain's ``cpu`` (also those of a kvm_guests guest's)."""
    return dict(
        mode=dict(type='str', choices=['host-passthrough', 'host-model', 'maximum', 'custom']),
        model=dict(type='str'), sockets=dict(type='int'), cores=dict(type='int'), threads=dict(type='int'),
    )


def domain_options() -> dict:
    """kvm_domain's options (but the connection's)."""
    return dict(
        name=dict(type='str'),
        state=dict(type='str', default='present', choices=list(DOMAIN_STATES)),
        virt_type=dict(type='str', default='auto', choices=VIRT_TYPES),
        arch=dict(type='str'),
        machine=dict(type='str'),
        memory=dict(type='str'),
        max_memory=dict(type='str'),
        vcpus=dict(type='int'),
        max_vcpus=dict(type='int'),
        cpu=dict(type='dict', options=cpu_options()),
        firmware=dict(type='str', choices=['bios', 'efi']),
        secure_boot=dict(type='bool'),
        boot=dict(type='dict', options=dict(
            devices=dict(type='list', elements='str', choices=['hd', 'cdrom', 'network', 'fd']),
            kernel=dict(type='path'), initrd=dict(type='path'), cmdline=dict(type='str'),
        )),
        disks=dict(type='list', elements='dict', options=dict(
            volume=dict(type='str'), pool=dict(type='str'), path=dict(type='path'),
            device=dict(type='str', default='disk', choices=['disk', 'cdrom']),
            bus=dict(type='str', choices=['virtio', 'sata', 'scsi', 'usb', 'ide']),
            format=dict(type='str'), readonly=dict(type='bool', default=False), cache=dict(type='str'),
            target=dict(type='str'),
        )),
        interfaces=dict(type='list', elements='dict', options=dict(
            network=dict(type='str'), bridge=dict(type='str'), direct=dict(type='str'), mode=dict(type='str'),
            model=dict(type='str', default='virtio'), mac=dict(type='str'),
        )),
        graphics=dict(type='raw'),
        console=dict(type='raw'),
        guest_agent=dict(type='bool'),
        rng=dict(type='bool'),
        tpm=dict(type='bool'),
        title=dict(type='str'),
        description=dict(type='str'),
        metadata=dict(type='dict'),
        **tuning_options(),
        xml_patches=xml_patches_option(),
        xml=dict(type='str'),
        autostart=dict(type='bool'),
        restart=dict(type='bool', default=False),
        live=dict(type='bool', default=False),
        shutdown_timeout=dict(type='int', default=120),
        force_off_after_timeout=dict(type='bool', default=False),
        wait_for_ip=dict(type='int', default=0),
        remove_storage=dict(type='bool', default=False),
    )


def domain_module_kwargs() -> dict:
    """What kvm_domain's AnsibleModule is made with, but the argument spec's connection options."""
    return dict(
        required_one_of=[('name', 'xml')],
        mutually_exclusive=[('xml', option) for option in STRUCTURED if option != 'virt_type'],
        supports_check_mode=True,
    )
