# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Addresses given as options: MAC and IP addresses checked, with messages naming the option."""

from __future__ import annotations

import ipaddress
import re

from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError

MAC_RE = re.compile(r'^[0-9a-f]{2}(:[0-9a-f]{2}){5}$')
# a PCI address as lspci prints it: [domain:]bus:slot.function
PCI_RE = re.compile(r'^(?:([0-9a-f]{1,4}):)?([0-9a-f]{1,2}):([0-9a-f]{1,2})\.([0-7])$')


def mac_address(value, option: str) -> str:
    text = str(value).strip().lower()
    if not MAC_RE.match(text):
        raise KvmError(f"{option}: {value!r} is not a MAC address such as '52:54:00:12:34:56'")
    return text


def ip_address(value, option: str, version: int):
    try:
        address = ipaddress.ip_address(str(value).strip())
    except ValueError:
        raise KvmError(f'{option}: {value!r} is not an IP address') from None
    if address.version != version:
        raise KvmError(f'{option}: {value!r} is not an IPv{version} address')
    return address


def pci_address(value, option: str) -> dict:
    """``0000:04:10.1`` (or ``04:10.1``) as libvirt writes a PCI ``<address>``'s attributes."""
    match = PCI_RE.match(str(value).strip().lower())
    if not match or int(match.group(3), 16) > 0x1f:
        raise KvmError(f"{option}: {value!r} is not a PCI address such as '0000:04:10.1' (domain:bus:slot.function)")
    domain, bus, slot, function = (int(part, 16) if part else 0 for part in match.groups())
    return {'type': 'pci', 'domain': f'0x{domain:04x}', 'bus': f'0x{bus:02x}', 'slot': f'0x{slot:02x}',
            'function': f'0x{function:x}'}
