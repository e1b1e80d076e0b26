"""Every repository path that a comment, doc or script cites exists: a file renamed or removed
leaves no stale citation behind (a task file of an integration target renamed, and the comments
in the target's other task files still naming it).

A citation is a token that looks like a relative path: it has a slash and ends in a known
extension, or it starts with a top-level folder of the repository (docs, tests...). It resolves
against the repository root, the citing file's folder, or the role, integration target or
Molecule scenario the file belongs to (a target's task file cites its siblings as tasks/<name>.yml);
one that names none of the repository's top-level folders may also be a file of the installed
ansible-core (ansible-test's internals). URLs, absolute and ``~`` paths, globs and placeholders
(``<name>``, ``{{ x }}``, ``$VAR``, ``%s``, ``STATE_DIR``) are not citations.
"""

from __future__ import annotations

import os
import re

import ansible

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# What is scanned (folders and files of the repository root), and what is skipped under them.
SCANNED = ('plugins', 'roles', 'playbooks', 'extensions', 'tests', 'docs', 'README.md',
           os.path.join('changelogs', 'fragments'), 'Makefile', '.ci')
SKIPPED_DIRS = {'.venv', '.tmp', '.git', '.cache', '__pycache__', '.pytest_cache', '.ruff_cache'}
SKIPPED_PATHS = {os.path.join('tests', 'output')}
SKIPPED_SUFFIXES = ('.qcow2', '.iso', '.img', '.raw', '.png', '.gz', '.xz', '.pyc')

EXTENSIONS = ('.md', '.yml', '.yaml', '.py', '.sh', '.j2', '.cfg', '.txt', '.json')
TOP_LEVEL = ('plugins', 'roles', 'docs', 'tests', 'playbooks', 'extensions', 'changelogs', 'meta')
# A folder under one of these is a role, an integration target or a Molecule scenario: its files
# cite each other from its root (tasks/<name>.yml).
UNIT_PARENTS = ('roles', 'targets', 'molecule')
# Where ansible-core's own files are (module_utils/basic.py, ansible_test/_internal/...).
ANSIBLE_CORE = (os.path.dirname(ansible.__file__), os.path.dirname(os.path.dirname(ansible.__file__)))

URL = re.compile(r'[A-Za-z][A-Za-z0-9+.-]*://\S*')
TOKEN = re.compile(r'[\w.~/*<>{}$%-]+')
# globs and placeholders: <name>, {{ var }}, $VAR, %s, and a folder named like a variable (STATE_DIR/...)
PLACEHOLDER = re.compile(r'[*<>{}$%]|(^|/)[A-Z][A-Z0-9]*_[A-Z0-9_]+(/|$)')
# A path inside the installed collection (ansible_collections/hypervisor/kvm/docs/...) is the repository's.
COLLECTION_PREFIX = 'ansible_collections/hypervisor/kvm/'

# What the test runs create (git-ignored): cited freely, whether a run left them here or not (so
# these never count as needed or not needed by the allow-list check below).
RUN_TIME = {
    '.tmp/': 'the harness creates it at run time: logs, failure lists, the collection link',
    'tests/output': 'ansible-test writes its results there at run time',
    'tests/integration/inventory': 'ansible-test integration writes it on every run',
}
# Cited paths that are not in the repository, on purpose: a prefix each, and why.
ALLOWED = {
    'playbooks/demo.yml': 'removed; changelogs/fragments/7-kvm_guest.yml records that it is gone',
    'molecule/default/': "docs/molecule-kvm-platform.md: the files its sample role gets, not this repository's",
    'host_vars/': "docs/several-hosts.md: the reader's inventory in an example",
    'group_vars/': "docs/several-hosts.md: the reader's inventory in an example",
}


def scanned_files(root: str):
    """The files to scan, as paths relative to ``root``."""
    for top in SCANNED:
        start = os.path.join(root, top)
        if os.path.isfile(start):
            yield top
            continue
        for folder, dirs, files in os.walk(start):
            relative = os.path.relpath(folder, root)
            dirs[:] = sorted(name for name in dirs
                             if name not in SKIPPED_DIRS and os.path.join(relative, name) not in SKIPPED_PATHS)
            for name in sorted(files):
                if not name.endswith(SKIPPED_SUFFIXES):
                    yield os.path.join(relative, name)


def citations(line: str):
    """The paths a line cites."""
    for match in TOKEN.finditer(URL.sub(' ', line)):
        token = match.group().rstrip('.')
        if '/' not in token or token.startswith(('/', '~')) or PLACEHOLDER.search(token):
            continue
        if token.startswith(COLLECTION_PREFIX):
            token = token[len(COLLECTION_PREFIX):]
        if token.endswith(EXTENSIONS) or token.split('/', 1)[0] in TOP_LEVEL:
            yield token


def bases(root: str, path: str) -> list:
    """Where the paths the file ``path`` cites may be: the repository root, the file's folder and
    the role, target or scenario it is in."""
    found = [root, os.path.join(root, os.path.dirname(path))]
    parts = path.split(os.sep)
    for index in range(1, len(parts) - 1):
        if parts[index - 1] in UNIT_PARENTS:
            found.append(os.path.join(root, *parts[:index + 1]))
    return found


def stale_citations(root: str, allowed=None) -> list:
    """``file:line: path`` for every cited path that exists nowhere it could be (``allowed``: the
    allow-list, ALLOWED unless given)."""
    allowed = tuple(ALLOWED if allowed is None else allowed) + tuple(RUN_TIME)
    stale = []
    for path in scanned_files(root):
        try:
            with open(os.path.join(root, path), encoding='utf-8') as handle:
                lines = handle.read().splitlines()
        except UnicodeDecodeError:
            continue  # not text
        where = bases(root, path)
        for number, line in enumerate(lines, 1):
            for cited in citations(line):
                if cited.startswith(allowed):
                    continue
                candidates = where if cited.split('/', 1)[0] in TOP_LEVEL else where + list(ANSIBLE_CORE)
                if not any(os.path.exists(os.path.join(base, cited)) for base in candidates):
                    stale.append(f'{path}:{number}: {cited}')
    return stale


def test_every_cited_path_exists():
    stale = stale_citations(REPO)
    assert not stale, 'cited paths that do not exist (fix the citation, or add it to ALLOWED with a reason):\n' + \
        '\n'.join(stale)


def test_every_allowed_path_is_still_cited():
    """An entry no file needs any more goes: the allow-list stays short."""
    me = os.path.relpath(os.path.abspath(__file__), REPO)
    for prefix in ALLOWED:
        others = {key: reason for key, reason in ALLOWED.items() if key != prefix}
        needed = [line for line in stale_citations(REPO, allowed=others) if not line.startswith(me + ':')]
        assert needed, f'ALLOWED[{prefix!r}] is not needed any more: remove it'


# ---- the scanner itself, on a tree of its own ----------------------------------------------------
# The paths below are written with | for / so that this file cites none of them itself.
TREE = {
    'README.md': 'See docs|guide.md (ansible_collections|hypervisor|kvm|docs|guide.md) and docs|gone.md.\n',
    'docs|guide.md': ('Run tests|utils|unit.sh (not https:||example.org|docs|nowhere.md), then read\n'
                      '[the roles](..|roles|r|README.md) and ..|docs|missing.md.\n'
                      'Not citations: |etc|hosts.yml ~|.ansible|x.yml docs|*.md <role>|tasks|main.yml\n'
                      '{{ role_path }}|files|x.yml $REPO|docs|x.md %s|x.yml STATE_DIR|result.json\n'
                      'Allowed: .tmp|unit-faults.txt\n'),
    'tests|utils|unit.sh': '# cites tests|utils|common.sh, which is gone\n',
    'roles|r|README.md': 'The role: tasks|main.yml, defaults|main.yml (none), vars|main.yml.\n',
    'roles|r|tasks|main.yml': '- import_tasks: other.yml  # tasks|other.yml, then tasks|removed.yml\n',
    'roles|r|tasks|other.yml': '# ansible-core: module_utils|basic.py and module_utils|nothing_here.py\n',
    'roles|r|vars|main.yml': '---\n',
    'tests|integration|targets|t|tasks|main.yml': '# tasks|regressions.yml, bug 1; tasks|known_bugs.yml\n',
    'tests|integration|targets|t|tasks|regressions.yml': '---\n',
    'tests|output|junk.md': 'docs|in-output.md\n',
    'extensions|.venv|x.md': 'docs|in-venv.md\n',
    'changelogs|fragments|1.yml': 'minor_changes: [playbooks|site.yml is new]\n',
    'docs|blob.bin': b'\xff\xfe docs|in-binary.md',
}


def slashes(text: str) -> str:
    return text.replace('|', '/')


def test_the_scanner_finds_exactly_the_stale_citations(tmp_path):
    for name, text in TREE.items():
        path = tmp_path / slashes(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text.replace(b'|', b'/'))
        else:
            path.write_text(slashes(text))
    stale = stale_citations(str(tmp_path), allowed={'.tmp/': 'run time'})
    assert stale == [slashes(line) for line in (
        'roles|r|README.md:1: defaults|main.yml',
        'roles|r|tasks|main.yml:1: tasks|removed.yml',
        'roles|r|tasks|other.yml:1: module_utils|nothing_here.py',
        'tests|integration|targets|t|tasks|main.yml:1: tasks|known_bugs.yml',
        'tests|utils|unit.sh:1: tests|utils|common.sh',
        'docs|guide.md:2: ..|docs|missing.md',
        'README.md:1: docs|gone.md',
        'changelogs|fragments|1.yml:1: playbooks|site.yml',
    )]
