#!/usr/bin/python
# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: kvm_volume
short_description: Manage libvirt storage volumes, from empty disks to images and cloud-init seeds
version_added: 0.1.0
description:
  - Create, grow and delete volumes in a libvirt storage pool. A new volume is empty, a
    copy-on-write qcow2 overlay on a base volume (O(backing_volume)), a full copy of another
    volume (O(clone_from)), an image uploaded from a file or URL (O(upload_from)), or a
    cloud-init NoCloud seed image built by the module (O(cloud_init)).
  - Content options apply when the volume is created. An existing volume keeps its content
    unless O(recreate=true); a cloud-init seed whose content changed is rebuilt (it holds no
    data of its own).
  - Growing O(capacity) resizes in place; shrinking is refused unless O(allow_shrink=true);
    a different O(format) than the existing volume's is an error, never a silent re-create.
  - Uploads and downloads use libvirt's stream API, so they work with remote URIs too (the
    image file is read on the managed host).
author:
  - hypervisor.kvm maintainers (@hypervisor-kvm)
extends_documentation_fragment:
  - hypervisor.kvm.connection
  - hypervisor.kvm.requirements
  - hypervisor.kvm.attributes
options:
  name:
    description:
      - Name of the volume (for file-based pools, the file name). Required unless O(xml) names it.
    type: str
  pool:
    description: The storage pool holding the volume; it must be active.
    type: str
    required: true
  state:
    description:
      - V(present) - the volume exists (created from the content options when missing).
      - V(absent) - the volume is deleted (that is the explicit request; O(wipe) first if asked),
        unless other volumes use it as their backing file (O(if_in_use)).
    type: str
    choices: [present, absent]
    default: present
  capacity:
    description:
      - Size of the volume as a size string (V(20GiB), V(512MiB), V(10G), V(1.5T), V(10GB) for
        powers of 1000); a bare number is bytes, and one under 1 MiB is refused, saying what it was
        read as (V(20480) is 20 KiB, not 20 GiB; write the unit).
      - Required for an empty volume. With a source of content, the volume is grown to it when
        larger than the source.
      - On an existing volume, a larger value grows it; a smaller one is refused unless
        O(allow_shrink=true).
    type: str
  allocation:
    description:
      - Space to allocate up front when creating (sparse when not set); a size as for
        O(capacity), a bare number is bytes.
    type: str
  format:
    description:
      - Volume format, for example V(qcow2) or V(raw). New empty volumes in dir, fs and netfs
        pools default to V(qcow2); uploads keep the image's format unless this asks for another
        (then the image is converted); overlays are always V(qcow2); seeds are V(raw).
      - An existing volume of another format is an error (formats are not converted in place).
    type: str
  owner:
    description: Owner of the volume's file, a user name or numeric id.
    type: str
  group:
    description: Group of the volume's file, a group name or numeric id.
    type: str
  mode:
    description: Permissions of the volume's file as an octal string such as V('0640').
    type: raw
  backing_volume:
    description:
      - Create a copy-on-write qcow2 overlay on this volume. Creating it takes the same time
        whatever the size of the base.
    type: str
  backing_pool:
    description: Pool of O(backing_volume); default O(pool).
    type: str
  clone_from:
    description: Create the volume as a full copy of this volume (converting the format if O(format) differs).
    type: str
  clone_pool:
    description: Pool of O(clone_from); default O(pool).
    type: str
  upload_from:
    description:
      - A local image file on the managed host, or an C(http), C(https), C(ftp) or C(file) URL.
        The format (qcow2 or raw) is detected from the file; a standalone qcow2 or a raw image.
      - A URL is downloaded once into O(cache_dir) and reused while its checksum matches; nothing
        is downloaded when the volume exists already.
    type: str
  checksum:
    description:
      - Expected checksum of O(upload_from) as C(algorithm:hex), for example C(sha256:9f86d08...).
        A mismatch fails and leaves no volume behind.
    type: str
  cache_dir:
    description:
      - Where downloads are kept on the managed host. Default C(/var/cache/hypervisor.kvm/images)
        as root, else C(~/.cache/hypervisor.kvm/images).
    type: path
  cloud_init:
    description:
      - Build a NoCloud seed ISO (volume label C(cidata)) with these files and store it as the
        volume. Built in Python (pycdlib), no C(genisoimage) needed.
      - The content is compared with the existing seed on every run; a change rebuilds it.
    type: dict
    suboptions:
      user_data:
        description:
          - The user-data. A dict is written as C(#cloud-config) YAML; a string is written as is
            and must start with a cloud-init header (C(#cloud-config), C(#!)...).
          - Passwords in it (C(passwd), C(password), C(hashed_passwd), C(plain_text_passwd) anywhere,
            the C(user:password) lines of C(chpasswd)) are hidden from results and logs like any
            C(no_log) value; the rest (names, packages, commands, public keys) is shown.
        type: raw
      meta_data:
        description:
          - The meta-data, for example C(instance-id) and C(local-hostname). C(instance-id)
            defaults to the volume name without its extension.
        type: raw
      network_config:
        description: The network-config (version 1 or 2), as a dict or a string.
        type: raw
  xml:
    description: A full libvirt volume definition, used to create the volume.
    type: str
  allow_shrink:
    description: Allow a smaller O(capacity) than the existing volume's. This can destroy data.
    type: bool
    default: false
  recreate:
    description:
      - Delete an existing volume and create it again when it is not what the options describe.
        This destroys its content.
      - It is replaced when its format differs from O(format) (or the format in O(xml)), when an
        overlay has another backing store than O(backing_volume), when a clone is smaller than
        or formatted unlike O(clone_from), or when its content does not match O(checksum) of
        O(upload_from) (read from the volume's file on a local URI). An upload without a
        checksum is never replaced, so a second run destroys nothing.
    type: bool
    default: false
  wipe:
    description: With O(state=absent), overwrite the volume's data before deleting it.
    type: bool
    default: false
  if_in_use:
    description:
      - With O(state=absent), what to do with a volume that is the backing file of other volumes
        (copy-on-write overlays, in any active pool of the host), which would break without it.
      - V(fail) refuses, naming each of them, and deletes nothing (check mode predicts the
        refusal). V(keep) leaves the volume, reports C(changed=false) with a warning and
        RV(used_by), and does not fail (a teardown that removes what is no longer used).
    type: str
    choices: [fail, keep]
    default: fail
    version_added: 1.0.0
notes:
  - O(owner), O(group) and O(mode) are applied by libvirt when it creates the file, and by the
    module to an existing file when the URI is local.
  - In check mode a URL that is not downloaded yet is not fetched, so its format is guessed from
    its name for the plan and its size is not known.
  - New qcow2 volumes are qcow2 version 3 (compat 1.1).
  - libvirt reports a seed image's format as V(iso).
seealso:
  - module: hypervisor.kvm.kvm_pool
  - module: hypervisor.kvm.kvm_pool_info
  - name: libvirt storage volume XML format
    description: Everything O(xml) can express.
    link: https://libvirt.org/formatstorage.html#storage-volume-xml
'''

EXAMPLES = r'''
- name: A base image uploaded from a local file
  hypervisor.kvm.kvm_volume:
    name: debian-12-base.qcow2
    pool: images
    upload_from: /srv/images/debian-12-genericcloud-amd64.qcow2

- name: A cloud image downloaded once, checksum verified
  hypervisor.kvm.kvm_volume:
    name: ubuntu-24.04-base.img
    pool: images
    upload_from: https://cloud-images.example.com/noble/noble-server-cloudimg-amd64.img
    checksum: sha256:0f1d9e7c4d3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a29180f7e6d5c4b3a291

- name: A guest disk as a copy-on-write overlay on the base, grown to 20 GiB
  hypervisor.kvm.kvm_volume:
    name: web1.qcow2
    pool: images
    backing_volume: debian-12-base.qcow2
    capacity: 20GiB

- name: The guest's cloud-init seed
  hypervisor.kvm.kvm_volume:
    name: web1-seed.iso
    pool: images
    cloud_init:
      user_data:
        users:
          - name: debian
            sudo: ALL=(ALL) NOPASSWD:ALL
            ssh_authorized_keys: [ssh-ed25519 AAAAC3Nza... admin@example.com]
        packages: [nginx]
      meta_data:
        local-hostname: web1
      network_config:
        version: 2
        ethernets:
          id0:
            match: {name: "en*"}
            dhcp4: true

- name: An empty 10 GiB data disk
  hypervisor.kvm.kvm_volume:
    name: web1-data.qcow2
    pool: images
    capacity: 10GiB

- name: Grow it (shrinking would need allow_shrink)
  hypervisor.kvm.kvm_volume:
    name: web1-data.qcow2
    pool: images
    capacity: 15GiB

- name: A full, independent copy
  hypervisor.kvm.kvm_volume:
    name: web1-backup.qcow2
    pool: images
    clone_from: web1.qcow2

- name: Delete a volume, overwriting its data first
  hypervisor.kvm.kvm_volume:
    name: web1-backup.qcow2
    pool: images
    state: absent
    wipe: true
'''

RETURN = r'''
volume:
  description:
    - The volume after the run (predicted in check mode).
    - After O(state=absent) only its name, pool and C(state=absent).
  returned: always
  type: dict
  contains:
    name:
      description: Volume name.
      type: str
      sample: web1.qcow2
    pool:
      description: Pool name.
      type: str
      sample: images
    path:
      description: Path of the volume on the host (null in check mode before it exists).
      type: str
      sample: /var/lib/libvirt/images/web1.qcow2
    key:
      description: libvirt's key of the volume.
      type: str
    type:
      description: Volume type (file, block...).
      type: str
      sample: file
    format:
      description: Volume format.
      type: str
      sample: qcow2
    capacity:
      description: Size in bytes.
      type: int
      sample: 21474836480
    allocation:
      description: Bytes allocated on the host.
      type: int
    backing_store:
      description: The backing volume of an overlay (C(path), C(format)), else null.
      type: dict
      sample: {path: /var/lib/libvirt/images/debian-12-base.qcow2, format: qcow2}
    xml:
      description: The volume definition.
      type: str
actions:
  description:
    - What was done (or would be in check mode), in order; among them V(download), V(create),
      V(clone), V(upload), V(convert), V(resize), V(set-permissions), V(wipe), V(delete).
  returned: always
  type: list
  elements: str
  sample: [create]
restart_required:
  description: Always false (a volume has nothing to restart); present for a uniform interface.
  returned: always
  type: bool
used_by:
  description:
    - With O(state=absent), the volumes (C(pool/name)) whose backing file this volume is; it was
      kept (O(if_in_use=keep)) or the run failed.
  returned: when other volumes use the volume
  type: list
  elements: str
  sample: [images/web1.qcow2, images/web2.qcow2]
  version_added: 1.0.0
downloaded:
  description: The cache file a URL was (or would be) downloaded to.
  returned: when a download happens
  type: str
seed_changed:
  description: True when an existing cloud-init seed was rebuilt with new content.
  returned: when a seed changes
  type: bool
diff:
  description: The volume definition before and after (a cloud-init seed adds a content digest).
  returned: when the run asks for a diff (C(--diff), or the task keyword C(diff) set to true)
  type: dict
libvirt_error:
  description: libvirt's error (code, code_name, domain, message) when a libvirt call failed.
  returned: failure
  type: dict
'''


# first of all: the module_utils below are compiled once each (see _compile_once)
from ansible_collections.hypervisor.kvm.plugins.module_utils import _compile_once  # noqa: F401  # isort: skip  # pylint: disable=unused-import
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import connection_argument_spec
from ansible_collections.hypervisor.kvm.plugins.module_utils._options import KvmModule
from ansible_collections.hypervisor.kvm.plugins.module_utils._runner import run_resource
from ansible_collections.hypervisor.kvm.plugins.module_utils._seed import secret_values
from ansible_collections.hypervisor.kvm.plugins.module_utils._volume import Volume
from ansible_collections.hypervisor.kvm.plugins.module_utils._volume_options import volume_module_kwargs, volume_options


def main():
    module = KvmModule(argument_spec=dict(**connection_argument_spec(), **volume_options()), **volume_module_kwargs())
    module.no_log_values.update(secret_values((module.params.get('cloud_init') or {}).get('user_data')))
    run_resource(module, Volume)


if __name__ == '__main__':
    main()
