# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kvm_volume's options, in one place: the module is built from them, and kvm_guests fills its
disks, seeds and base images through them (their defaults included)."""

from __future__ import annotations

# where a new volume's content comes from: one at most
CONTENT_OPTIONS = ('backing_volume', 'clone_from', 'upload_from', 'cloud_init', 'xml')


def volume_options() -> dict:
    """kvm_volume's options (but the connection's); kvm_guests' disks, seeds and base images go
    through them too."""
    return dict(
        name=dict(type='str'),
        pool=dict(type='str', required=True),
        state=dict(type='str', default='present', choices=['present', 'absent']),
        capacity=dict(type='str'),
        allocation=dict(type='str'),
        format=dict(type='str'),
        owner=dict(type='str'),
        group=dict(type='str'),
        mode=dict(type='raw'),
        backing_volume=dict(type='str'),
        backing_pool=dict(type='str'),
        clone_from=dict(type='str'),
        clone_pool=dict(type='str'),
        upload_from=dict(type='str'),
        checksum=dict(type='str'),
        cache_dir=dict(type='path'),
        cloud_init=dict(type='dict', options=dict(
            user_data=dict(type='raw', no_log=False),
            meta_data=dict(type='raw'),
            network_config=dict(type='raw'),
        )),
        xml=dict(type='str'),
        allow_shrink=dict(type='bool', default=False),
        recreate=dict(type='bool', default=False),
        wipe=dict(type='bool', default=False),
        if_in_use=dict(type='str', default='fail', choices=['fail', 'keep']),
    )


def volume_module_kwargs() -> dict:
    """What kvm_volume's AnsibleModule is made with, but the argument spec."""
    return dict(
        required_one_of=[('name', 'xml')],
        mutually_exclusive=[CONTENT_OPTIONS],
        required_by={'backing_pool': 'backing_volume', 'clone_pool': 'clone_from', 'checksum': 'upload_from'},
        supports_check_mode=True,
    )
