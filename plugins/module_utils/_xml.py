# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""XML helpers shared by every resource: parse, normalise, compare as a subset, merge, print.

The standard library's ElementTree is enough for libvirt's documents, so managed hosts need
no XML package beyond Python itself. Expat does not fetch external entities.

Comparison rules (docs/architecture.md, "The module contract" and "Equal means equal to libvirt"):

* what the *desired* document specifies (attributes, text, children) must be in the *actual*
  one; attributes and elements libvirt added (uuid, MACs, addresses, defaults) are not drift;
* children with the same tag are matched in order; a group of children named in
  ``authoritative`` (tag paths relative to the root, e.g. ``ip/dhcp/host``; a dict maps a path
  to a function giving each item a key, to pair items by key instead of position) is a list the
  user owns: items the desired document lacks are drift and are removed by :func:`merge`, even when
  the desired document has none of them (as long as it has their parent); :func:`merge` gives
  its items exactly the desired attributes.
"""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET

from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError

# an element's namespace in ElementTree's spelling of a tag: {uri}name
NAMESPACE = re.compile(r'\{[^}]*\}')


def parse_xml(text: str, what: str = 'xml') -> ET.Element:
    """Parse ``text``; malformed input raises KvmError naming ``what``, the line and the column."""
    if not isinstance(text, str) or not text.strip():
        raise KvmError(f'{what}: expected an XML document, got an empty value')
    try:
        return ET.fromstring(text.strip())
    except ET.ParseError as err:
        line, column = err.position
        reason = str(err).split(':', maxsplit=1)[0]
        raise KvmError(
            f'{what} is not well-formed XML: {reason} at line {line}, column {column + 1}',
            xml_error={'line': line, 'column': column + 1, 'reason': reason},
        ) from None


def normalise(element: ET.Element) -> ET.Element:
    """A copy without layout whitespace, with text trimmed and attributes in sorted order."""
    result = ET.Element(element.tag, dict(sorted(element.attrib.items())))
    text = (element.text or '').strip()
    result.text = text or None
    for child in element:
        if not isinstance(child.tag, str):  # comments and processing instructions
            continue
        result.append(normalise(child))
    return result


def to_text(element: ET.Element | None, pretty: bool = True) -> str:
    """Serialise ``element`` (normalised first); pretty output ends with a newline."""
    if element is None:
        return ''
    tree = normalise(element)
    if pretty:
        ET.indent(tree, space='  ')
        return ET.tostring(tree, encoding='unicode') + '\n'
    return ET.tostring(tree, encoding='unicode')


def remove_paths(element: ET.Element, paths) -> ET.Element:
    """Remove every element at the given tag paths (relative to the root), in place; returns it."""
    for path in paths:
        parent_path, tag = path.rpartition('/')[::2]
        parents = [element] if not parent_path else element.findall(parent_path)
        for parent in parents:
            for child in parent.findall(tag):
                parent.remove(child)
    return element


def _text(element: ET.Element) -> str:
    return (element.text or '').strip()


def _child_tags(desired: ET.Element, relpath: str, authoritative) -> list:
    tags = []
    for child in desired:
        if isinstance(child.tag, str) and child.tag not in tags:
            tags.append(child.tag)
    prefix = f'{relpath}/' if relpath else ''
    for path in sorted(authoritative):
        tag = path[len(prefix):]
        if path.startswith(prefix) and '/' not in NAMESPACE.sub('', tag):  # a namespace URI has slashes
            if tag not in tags:
                tags.append(tag)
    return tags


def _describe(element: ET.Element) -> str:
    text = ET.tostring(normalise(element), encoding='unicode')
    return text if len(text) <= 120 else text[:117] + '...'


def reconcile(desired: ET.Element, actual: ET.Element | None, authoritative=frozenset()) -> tuple:
    """Compare and merge in one walk: ``(differences, merged)``.

    ``differences`` lists, as readable lines, what ``desired`` specifies that ``actual`` lacks or
    has differently; empty means ``desired`` is a subset of ``actual`` (nothing to change).
    ``merged`` is ``actual`` with everything ``desired`` specifies applied over it (a new tree,
    the document to define): libvirt's own additions (uuid, MACs, defaults) are kept, and
    authoritative lists hold exactly the desired items.
    """
    if actual is None:
        return [f'{desired.tag}: new'], copy.deepcopy(desired)
    merged = copy.deepcopy(actual)
    found = []
    _walk(desired, merged, authoritative, '', desired.tag, found, merge=True, exact=False)
    return found, merged


def differences(desired: ET.Element, actual: ET.Element, authoritative=frozenset()) -> list:
    """What ``desired`` specifies that ``actual`` lacks or has differently (see :func:`reconcile`)."""
    found = []
    _walk(desired, actual, authoritative, '', desired.tag, found, merge=False, exact=False)
    return found


def is_subset(desired: ET.Element, actual: ET.Element, authoritative=frozenset()) -> bool:
    """True when everything ``desired`` specifies is already in ``actual``."""
    return not differences(desired, actual, authoritative)


def merge(desired: ET.Element, actual: ET.Element | None, authoritative=frozenset()) -> ET.Element:
    """``actual`` with everything ``desired`` specifies applied over it (see :func:`reconcile`)."""
    return reconcile(desired, actual, authoritative)[1]


def _walk(desired, actual, authoritative, relpath: str, shown: str, found: list, merge: bool, exact: bool) -> None:
    """The one walk behind comparing and merging. ``actual`` is changed in place when ``merge``;
    ``exact`` (inside an item of an authoritative list, which the user describes whole) gives
    merged elements exactly the desired attributes."""
    if desired.tag != actual.tag:
        found.append(f'{shown}: element <{actual.tag}> should be <{desired.tag}>')
        return
    for key, value in desired.attrib.items():
        if actual.get(key) != value:
            found.append(f'{shown}/@{key}: {actual.get(key)!r} -> {value!r}')
    if _text(desired) and _text(desired) != _text(actual):
        found.append(f'{shown}: {_text(actual)!r} -> {_text(desired)!r}')
    if merge:
        if exact:
            actual.attrib.clear()
        actual.attrib.update(desired.attrib)
        if _text(desired):
            actual.text = desired.text
    for tag in _child_tags(desired, relpath, authoritative):
        childpath = f'{relpath}/{tag}' if relpath else tag
        wanted = [c for c in desired if c.tag == tag]
        present = [c for c in actual if c.tag == tag]
        if childpath in authoritative:
            pairs, added, removed = _pairs(wanted, present, _key(authoritative, childpath))
            for index, (want, have) in enumerate(pairs):
                _walk(want, have, authoritative, childpath, f'{shown}/{tag}[{index + 1}]', found, merge, True)
            found.extend(f'{shown}/{tag}: add {_describe(want)}' for want in added)
            found.extend(f'{shown}/{tag}: remove {_describe(have)}' for have in removed)
            if merge:
                for have in removed:
                    actual.remove(have)
                kept = [have for have in present if not any(have is gone for gone in removed)]
                anchor = kept[-1] if kept else None
                for want in added:
                    element = copy.deepcopy(want)
                    _insert_after(actual, anchor, element)
                    anchor = element
        elif len(wanted) == 1 and len(present) == 1:
            _walk(wanted[0], present[0], authoritative, childpath, f'{shown}/{tag}', found, merge, exact)
        else:
            unused = list(present)
            for want in wanted:
                match = next((have for have in unused if not differences(want, have, _below(authoritative, childpath))),
                             None)
                if match is None:
                    found.append(f'{shown}/{tag}: add {_describe(want)}')
                    if merge:
                        actual.append(copy.deepcopy(want))
                else:
                    unused.remove(match)


def _below(authoritative, path: str):
    """The authoritative paths under ``path``, relative to it (to compare one item on its own)."""
    prefix = f'{path}/'
    if isinstance(authoritative, dict):
        return {key[len(prefix):]: value for key, value in authoritative.items() if key.startswith(prefix)}
    return frozenset(key[len(prefix):] for key in authoritative if key.startswith(prefix))


def _key(authoritative, path: str):
    """The function pairing the items of an authoritative list (a dict maps paths to one),
    or None to pair them by position."""
    return authoritative.get(path) if isinstance(authoritative, dict) else None


def _pairs(wanted: list, present: list, key) -> tuple:
    """(pairs of desired and actual items, desired items to add, actual items to remove)."""
    if key is None:
        return list(zip(wanted, present)), wanted[len(present):], present[len(wanted):]
    buckets = {}
    for have in present:
        buckets.setdefault(key(have), []).append(have)
    pairs, added = [], []
    for want in wanted:
        bucket = buckets.get(key(want))
        if bucket:
            pairs.append((want, bucket.pop(0)))
        else:
            added.append(want)
    paired = [have for _want, have in pairs]
    removed = [have for have in present if not any(have is item for item in paired)]
    return pairs, added, removed


def _insert_after(parent: ET.Element, anchor: ET.Element | None, element: ET.Element) -> None:
    if anchor is None:
        parent.append(element)
    else:
        parent.insert(list(parent).index(anchor) + 1, element)


def sub_element(parent: ET.Element, tag: str, text=None, **attributes) -> ET.Element:
    """Append ``<tag attributes>text</tag>`` to ``parent``; None-valued attributes are left out."""
    child = ET.SubElement(parent, tag, {k: str(v) for k, v in attributes.items() if v is not None})
    if text is not None:
        child.text = str(text)
    return child


def project(original: ET.Element, canonical: ET.Element, authoritative=frozenset(), _path: str = '') -> tuple:
    """``original`` in ``canonical``'s spelling: ``(projected, dropped)``.

    ``canonical`` is what libvirt writes back for ``original`` (numbers in its base, MACs in its
    letter case, sizes in KiB, defaults filled in or left out). The projection keeps exactly the
    elements, attributes and texts ``original`` specifies, with libvirt's values, so that it
    compares equal to libvirt's own definition. What libvirt does not keep at all is left out
    and named in ``dropped`` (comparing it could never converge), except an emptied parent of an
    authoritative list (``<dns/>``: "no entries"), which still says what the user owns. Elements
    in another XML namespace (libvirt's per-driver extensions) are kept as given. Repeated
    children pair up as in :func:`reconcile`.
    """
    dropped = []
    result = ET.Element(original.tag)
    _path = _path or original.tag
    for key, value in original.attrib.items():
        if key in canonical.attrib:
            result.set(key, canonical.get(key))
        else:
            dropped.append(f'{_path}/@{key}={value!r}')
    if _text(original):
        if _text(canonical):
            result.text = _text(canonical)
        else:
            dropped.append(f'{_path}: text {_text(original)!r}')
    tags = []
    for child in original:
        if isinstance(child.tag, str) and child.tag not in tags:
            tags.append(child.tag)
    projected = {}
    for tag in tags:
        wanted = [c for c in original if c.tag == tag]
        childpath = f'{_path}/{tag}'
        relpath = childpath.split('/', 1)[1]
        if tag.startswith('{'):
            projected.update((id(want), copy.deepcopy(want)) for want in wanted)
            continue
        pairs, missing, _extra = _pairs(wanted, [c for c in canonical if c.tag == tag], _key(authoritative, relpath))
        for want, have in pairs:
            element, lost = project(want, have, authoritative, childpath)
            projected[id(want)] = element
            dropped.extend(lost)
        owner = any(path.startswith(f'{relpath}/') for path in authoritative)
        for want in missing:
            if owner:
                projected[id(want)] = copy.deepcopy(want)
            else:
                dropped.append(f'{childpath}: {_describe(want)}')
    result.extend(projected[id(child)] for child in original if id(child) in projected)
    return result, dropped
