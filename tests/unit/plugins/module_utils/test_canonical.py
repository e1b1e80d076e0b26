# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The private test-driver host that judges equality: one per process, opened on first use and
closed at the end of the run."""

from __future__ import annotations

import atexit
import xml.etree.ElementTree as ET

import libvirt
import pytest

from ansible_collections.hypervisor.kvm.plugins.module_utils import _canonical


def test_one_private_host_opened_on_first_use_and_closed_at_exit(monkeypatch):
    _canonical._close_private_host()  # pylint: disable=protected-access
    registered = []
    monkeypatch.setattr(atexit, 'register', registered.append)
    first = _canonical._private_host()  # pylint: disable=protected-access
    assert _canonical._private_host() is first  # pylint: disable=protected-access
    assert registered == [_canonical._close_private_host]  # pylint: disable=protected-access
    assert first.listAllDomains() == []  # empty and private: not test:///default's 'test' domain
    registered[0]()
    assert _canonical._PRIVATE == {}  # pylint: disable=protected-access
    with pytest.raises(libvirt.libvirtError, match='invalid connection pointer'):
        first.isAlive()  # closed


def test_a_comparison_after_the_close_opens_it_again():
    _canonical._close_private_host()  # pylint: disable=protected-access
    element = ET.fromstring('<network><name>n</name><forward mode="nat"/></network>')
    assert _canonical.canonical(element)[0] is not None
    assert 'conn' in _canonical._PRIVATE  # pylint: disable=protected-access
