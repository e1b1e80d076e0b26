# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r'''
options:
  xml_patches:
    description:
      - Small changes to the definition that the other options do not cover, in order, as
        C(virt-install --xml) and Terraform's C(xml { xslt }) make them.
      - They are applied to the definition the options describe before it is compared with
        libvirt's, and again to the definition that would be written (libvirt's own, with the
        options applied), so that a patch can reach what only libvirt wrote. A second run
        changes nothing, check mode predicts the change, and C(--diff) shows it.
      - Paths are ElementTree's XPath subset, relative to the root element (C(./on_crash), or
        C(/domain/on_crash)) - tags, C(*), C(//), C(..), C([@attr]), C([@attr='value']),
        C([tag]), C([tag='text']) and positions.
      - A path that matches nothing makes nothing happen for O(xml_patches[].state=absent); for
        O(xml_patches[].value), the last element of the path is created under its parent (with
        the attributes a last step names as C([@attr='value'])). A path whose parent matches
        nothing either is an error that names it, before anything changes.
      - A patch can reach anything in the definition, so on a running domain M(hypervisor.kvm.kvm_domain)
        reports C(restart_required) while the running guest lacks what a patch asks for.
      - Write values as libvirt writes them back. A value libvirt rewrites (a machine alias such
        as V(pc), which it stores as C(pc-i440fx-7.2)) differs from the definition again on every
        run; the options that cover it (O(hypervisor.kvm.kvm_domain#module:machine)) know
        libvirt's spelling.
    type: list
    elements: dict
    suboptions:
      xpath:
        description: The elements to change.
        type: str
        required: true
      value:
        description:
          - The text to set on every element the path matches, or with O(xml_patches[].attribute),
            the attribute's value.
        type: str
      attribute:
        description: The attribute to set to O(xml_patches[].value).
        type: str
      xml:
        description:
          - An XML fragment to append as a child of every element the path matches, once (a
            child that already has everything the fragment says is not added again).
        type: str
      state:
        description: V(absent) removes every element the path matches.
        type: str
        choices: [present, absent]
        default: present
'''
