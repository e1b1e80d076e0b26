# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``xml_patches``: small changes to a definition the structured options do not cover, applied
before the comparison, so that they are idempotent, predicted by check mode and shown in the
diff. Paths are ElementTree's XPath subset (tags, ``*``, ``//``, ``..``, ``[@attr]``,
``[@attr='value']``, ``[tag]``, ``[tag='text']`` and positions), relative to the document's root
element; ``/domain/...`` is read as ``./...``.

The forms: ``{xpath, value}`` sets the text of every element the path matches,
``{xpath, attribute, value}`` sets an attribute, ``{xpath, xml}`` appends a fragment as a child
(once: an equal child is not added again), ``{xpath, state: absent}`` removes the elements. As
with ``virt-install --xml``, a text or attribute patch whose path matches nothing creates its last
element when the parent path matches (``./on_crash`` adds ``<on_crash>``); the attributes a last
step names as ``[@attr='value']`` are set on it."""

from __future__ import annotations

import copy
import re

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError

# one step a missing element can be made from: a tag with optional [@attr='value'] predicates
CREATABLE = re.compile(r"""^(?P<tag>[A-Za-z_][\w.-]*)(?P<predicates>(\[@[A-Za-z_][\w.:-]*=(?:'[^']*'|"[^"]*")\])*)$""")
PREDICATE = re.compile(r"""\[@(?P<name>[A-Za-z_][\w.:-]*)=(?:'(?P<single>[^']*)'|"(?P<double>[^"]*)")\]""")


class Patch:
    """One checked item of ``xml_patches``."""

    def __init__(self, index: int, item: dict, root_tag: str):
        self.where = f'xml_patches[{index}]'
        self.xpath = item.get('xpath') or ''
        self.value, self.attribute = item.get('value'), item.get('attribute')
        self.state = item.get('state') or 'present'
        self.fragment = None
        given = [key for key in ('value', 'attribute', 'xml') if item.get(key) is not None]
        if self.state == 'absent':
            if given:
                raise KvmError(f"{self.where}: state absent removes the elements; it takes no {', '.join(given)}")
            self.kind = 'absent'
        elif item.get('xml') is not None:
            if self.value is not None or self.attribute is not None:
                raise KvmError(f'{self.where}: xml appends a fragment; it takes no value or attribute')
            self.fragment = _xml.parse_xml(item['xml'], f'{self.where}.xml')
            self.kind = 'append'
        elif self.value is None:
            raise KvmError(f'{self.where}: give value (with or without attribute), xml, or state: absent')
        else:
            self.kind = 'attribute' if self.attribute else 'text'
        self.path = relative_path(self.xpath, root_tag, self.where)

    def matches(self, root) -> list:
        return [root] if self.path == '.' else root.findall(self.path)

    def apply(self, root, create: bool) -> str | None:
        """Apply to ``root`` (changed in place); what changed, as a line for the differences, or
        None. Without ``create``, only what the path matches is touched (the desired definition,
        before the comparison); with it, missing elements are made, or the path is refused."""
        found = self.matches(root)
        if self.kind == 'absent':
            parents = {child: parent for parent in root.iter() for child in parent}
            removable = [element for element in found if element in parents]
            for element in removable:
                parents[element].remove(element)
            return f'{self.where}: remove {len(removable)} element(s) at {self.xpath}' if removable else None
        if self.kind == 'append':
            return self.append(root, found, create)
        if not found and create:
            found = [self.create(root)]
        changed = False
        for element in found:
            if self.kind == 'text' and (element.text or '').strip() != self.value.strip():
                element.text, changed = self.value, True
            elif self.kind == 'attribute' and element.get(self.attribute) != self.value:
                element.set(self.attribute, self.value)
                changed = True
        if not changed:
            return None
        what = f'@{self.attribute}={self.value!r}' if self.kind == 'attribute' else f'text {self.value!r}'
        return f'{self.where}: {self.xpath} {what}'

    def append(self, root, found: list, create: bool) -> str | None:
        if not found:
            if create:
                raise KvmError(f'{self.where}: {self.xpath!r} matches nothing in the definition, '
                               'so there is no element to append the fragment to')
            return None
        added = 0
        for element in found:
            if not any(child.tag == self.fragment.tag and _xml.is_subset(self.fragment, child) for child in element):
                element.append(copy.deepcopy(self.fragment))
                added += 1
        return f'{self.where}: append <{self.fragment.tag}> to {added} element(s) at {self.xpath}' if added else None

    def create(self, root):
        """The last element of the path, made under the element its parent path matches."""
        parent_path, step = split_last(self.path)
        parents = [root] if parent_path == '.' else root.findall(parent_path)
        made = CREATABLE.match(step)
        if not parents:
            raise KvmError(f"{self.where}: {self.xpath!r} matches nothing in the definition, and neither does its "
                           f"parent {split_last(self.xpath.strip())[0]!r}, so there is nowhere to create it")
        if made is None or len(parents) != 1:
            reason = (f'its last step {step!r} is not a plain element name' if made is None
                      else f'its parent matches {len(parents)} elements')
            raise KvmError(f'{self.where}: {self.xpath!r} matches nothing in the definition, and it cannot be '
                           f'created: {reason}')
        attributes = {match.group('name'): match.group('single') if match.group('single') is not None
                      else match.group('double') for match in PREDICATE.finditer(made.group('predicates'))}
        return _xml.sub_element(parents[0], made.group('tag'), **attributes)


def relative_path(xpath: str, root_tag: str, where: str) -> str:
    """``xpath`` relative to the root element, checked by ElementTree."""
    path = xpath.strip()
    if path.startswith('//'):
        path = '.' + path
    elif path == f'/{root_tag}':
        path = '.'
    elif path.startswith(f'/{root_tag}/'):
        path = '.' + path[len(root_tag) + 1:]
    elif path.startswith('/'):
        raise KvmError(f'{where}.xpath: {xpath!r} starts at another root element than <{root_tag}>')
    if not path:
        raise KvmError(f'{where}.xpath: an empty path')
    if path != '.':
        try:
            _xml.parse_xml(f'<{root_tag}/>').findall(path)
        except (SyntaxError, KeyError, TypeError, ValueError, IndexError) as err:  # ElementTree's many ways
            reason = str(err) or type(err).__name__
            raise KvmError(f'{where}.xpath: {xpath!r} is not a path ElementTree can follow ({reason}); '
                           "it reads tags, *, //, .., [@attr], [@attr='value'], [tag], [tag='text'] "
                           'and positions') from None
    return path


def split_last(path: str) -> tuple:
    """(parent path, last step): the last '/' outside brackets splits them."""
    depth = 0
    for index in range(len(path) - 1, -1, -1):
        char = path[index]
        if char == ']':
            depth += 1
        elif char == '[':
            depth -= 1
        elif char == '/' and depth == 0:
            return path[:index] or '.', path[index + 1:]
    return '.', path


def checked_patches(items: list, root_tag: str) -> list:
    """Every item checked; all problems at once."""
    patches, problems = [], []
    for index, item in enumerate(items or []):
        try:
            patches.append(Patch(index, item, root_tag))
        except KvmError as err:
            problems.append(err.msg)
    if problems:
        raise KvmError('\n'.join(problems))
    return patches


def patch_desired(desired, patches: list) -> None:
    """The patches on the desired definition, before the comparison: only what they match."""
    for patch in patches:
        patch.apply(desired, create=False)


def patch_merged(merged, patches: list) -> list:
    """The patches on the definition to write (libvirt's with the options applied): missing
    elements made; the differences they make, as lines."""
    return [line for line in (patch.apply(merged, create=True) for patch in patches) if line]
