# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one exception type the collection's code raises for people to read."""

from __future__ import annotations


class KvmError(Exception):
    """A failure to report with ``fail_json``: ``msg`` for people, ``details`` as extra result keys."""

    def __init__(self, msg: str, **details):
        super().__init__(msg)
        self.msg = msg
        self.details = details
