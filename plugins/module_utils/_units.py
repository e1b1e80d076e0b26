# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sizes as users write them, converted the way libvirt defines its units.

libvirt's rules (``virScaleInteger``): a bare ``k``/``M``/``G``... or ``KiB``/``MiB``/``GiB``...
is a power of 1024; ``KB``/``MB``/``GB``... (a ``B`` straight after the prefix letter) is a
power of 1000; ``b``, ``byte`` and ``bytes`` are single bytes. The prefix letter is
case-insensitive, so ``2g``, ``2G`` and ``2GiB`` are all 2 * 1024**3 bytes.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError

_PREFIXES = 'KMGTPE'
_SIZE_RE = re.compile(r'^\s*(?P<number>\d+(?:\.\d+)?|\.\d+)\s*(?P<unit>[A-Za-z]*)\s*$')


def unit_factor(unit: str) -> int | None:
    """Return the number of bytes in one ``unit`` (libvirt's spelling), or None if unknown."""
    if unit == '' or unit.lower() in ('b', 'byte', 'bytes'):
        return 1
    power = _PREFIXES.find(unit[0].upper()) + 1
    if power == 0:
        return None
    rest = unit[1:]
    if rest == '' or rest.lower() == 'ib':
        return 1024 ** power
    if rest.lower() == 'b':
        return 1000 ** power
    return None


def parse_size(value, option: str, default_unit: str = 'B') -> int:
    """Convert a user-written size to bytes.

    ``value`` may be an int (in ``default_unit``) or a string such as ``2GiB``, ``512 MiB``,
    ``2G``, ``1.5T``, ``4096`` (``default_unit`` again) or ``10GB`` (decimal). ``option`` names
    the module option in the error raised for anything else.
    """
    if isinstance(value, bool):
        raise KvmError(f"{option}: expected a size such as '20GiB' or '512MiB', got {value!r}")
    if isinstance(value, int):
        number, unit = Decimal(value), default_unit
    elif isinstance(value, float):
        number, unit = Decimal(str(value)), default_unit
    elif isinstance(value, str):
        match = _SIZE_RE.match(value)
        if not match:
            raise KvmError(
                f"{option}: cannot read {value!r} as a size; write a number with an optional unit, "
                "e.g. '20GiB', '512 MiB', '2G', '1.5T' or '4096'"
            )
        try:
            number = Decimal(match.group('number'))
        except InvalidOperation:  # pragma: no cover - the regex only lets numbers through
            raise KvmError(f'{option}: cannot read {value!r} as a size') from None
        unit = match.group('unit') or default_unit
    else:
        raise KvmError(f"{option}: expected a size such as '20GiB', got {type(value).__name__} {value!r}")
    if number < 0:
        raise KvmError(f'{option}: a size cannot be negative, got {value!r}')
    factor = unit_factor(unit)
    if factor is None:
        raise KvmError(
            f"{option}: unknown unit {unit!r} in {value!r}; use B, KiB/K, MiB/M, GiB/G, TiB/T, PiB/P, EiB/E "
            "(powers of 1024) or KB, MB, GB, TB, PB, EB (powers of 1000)"
        )
    return int((number * factor).to_integral_value(rounding=ROUND_HALF_UP))


MIB = 1024 ** 2


def disk_size(value, option: str) -> int:
    """A disk's size in bytes (:func:`parse_size`; a bare number is bytes). A bare number that
    makes a disk under 1 MiB is an error saying what it was understood as: ``disk_size: 20480``
    meant 20 GiB to whoever wrote it, not 20 KiB."""
    size = parse_size(value, option)
    bare = isinstance(value, (int, float)) or (isinstance(value, str) and not _SIZE_RE.match(value).group('unit'))
    if bare and size < MIB:
        raise KvmError(f"{option}: {value} is a bare number, so it is bytes ({format_size(size)}), too small for a "
                       f"disk; write the unit, for example '{value}MiB' or '{value}GiB' (KiB, MiB, GiB are powers of "
                       "1024, KB, MB, GB powers of 1000)")
    return size


def bytes_to_kib(size: int) -> int:
    """Bytes to KiB for libvirt's memory fields, rounding up so nothing is lost."""
    return -(-size // 1024)


def format_size(size: int) -> str:
    """A short human form of a byte count for messages: ``2 GiB``, ``1.5 MiB``, ``512 B``."""
    value = Decimal(size)
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'):
        if abs(value) < 1024 or unit == 'PiB':
            text = f'{value:.2f}'.rstrip('0').rstrip('.') if unit != 'B' else str(int(value))
            return f'{text} {unit}'
        value /= 1024
    return f'{size} B'  # pragma: no cover


def libvirt_size(element) -> int | None:
    """Read a libvirt size element (``<capacity unit='KiB'>42</capacity>``) as bytes."""
    if element is None or element.text is None or not element.text.strip():
        return None
    factor = unit_factor(element.get('unit', 'bytes'))
    if factor is None:
        return None
    return int(element.text.strip()) * factor
