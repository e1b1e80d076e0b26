# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Resource modules: plan first, then apply; check mode only skips the side effects.
    DOCUMENTATION = r'''
options: {}
attributes:
  check_mode:
    description: Runs in check mode and reports exactly the changes and actions a real run would make.
    support: full
  diff_mode:
    description:
      - With C(--diff), returns the libvirt definition (inactive XML) and the small state dict before and after.
      - Without it, results carry no C(diff); C(changed), C(actions) and check mode's prediction are the
        same either way.
    support: full
  idempotent:
    description: A second run with the same arguments reports no change.
    support: full
  platform:
    description: Target operating systems.
    support: full
    platforms: posix
'''

    # Read-only modules.
    INFO_MODULE = r'''
options: {}
attributes:
  check_mode:
    description: Reads only, so it runs unchanged in check mode.
    support: full
  diff_mode:
    description: Reads only; there is never a difference to show.
    support: N/A
  idempotent:
    description: Reads only; it never changes anything.
    support: full
  platform:
    description: Target operating systems.
    support: full
    platforms: posix
'''
