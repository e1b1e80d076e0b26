"""Benchmark of kvm_domain_info's engine: list_domains() over many defined domains.

Usage (the venv's python has libvirt-python; not part of the test suite):
    .venv/bin/python tests/utils/bench-domain-info.py [--sizes 10,100,500] [--repeats 5]
        [--details] [--uri qemu:///system]

For each size N it defines N kernel-less domains named kvmtest-bench-N-<i> (type qemu, never
started), times list_domains(conn) from plugins/module_utils/_domain.py (the summary that
kvm_domain_info returns without a name: bulk stats and flag-filtered listings), best of
--repeats, and removes the domains again, also on Ctrl-C, SIGTERM or an error (and leftovers of
an interrupted earlier run first). The raw bulk call (getAllDomainStats) is timed too, for
reference; --details also times the per-domain details (details=True).
Domains other than the benchmark's (other tests, real guests) are listed too and counted in
the "listed" column; they are never touched.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS_ROOT = os.path.join(REPO_ROOT, '.tmp', 'collections')
COLLECTION_DIR = os.path.join(COLLECTIONS_ROOT, 'ansible_collections', 'hypervisor', 'kvm')
PREFIX = 'kvmtest-bench-'

DOMAIN_XML = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type><boot dev='hd'/></os>
  <features><acpi/><apic/></features>
</domain>"""


def import_engine():
    """list_domains through the ansible_collections path (the symlink tests/utils/common.sh makes)."""
    if not os.path.exists(COLLECTION_DIR):
        os.makedirs(os.path.dirname(COLLECTION_DIR), exist_ok=True)
        os.symlink(REPO_ROOT, COLLECTION_DIR)
    sys.path.insert(0, COLLECTIONS_ROOT)
    from ansible_collections.hypervisor.kvm.plugins.module_utils._domain_facts import list_domains  # noqa: E402
    return list_domains


def remove_benchmark_domains(conn, libvirt) -> int:
    removed = 0
    for dom in conn.listAllDomains(0):
        if not dom.name().startswith(PREFIX):
            continue
        try:
            if dom.isActive():
                dom.destroy()
            dom.undefine()
            removed += 1
        except libvirt.libvirtError as err:
            print(f'warning: could not remove {dom.name()}: {err}', file=sys.stderr)
    return removed


def best_of(repeats: int, function) -> tuple:
    best, result = None, None
    for _attempt in range(repeats):
        start = time.perf_counter()
        result = function()
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    return best, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', default='10,100,500', help='numbers of domains, comma-separated')
    parser.add_argument('--repeats', type=int, default=5, help='timed runs per size (the best is kept)')
    parser.add_argument('--details', action='store_true', help='also time list_domains(details=True)')
    parser.add_argument('--uri', default=os.environ.get('LIBVIRT_URI', 'qemu:///system'))
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(',') if size.strip()]

    import libvirt  # the venv's libvirt-python
    list_domains = import_engine()
    conn = libvirt.open(args.uri)

    def on_sigterm(_signum, _frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_sigterm)

    leftovers = remove_benchmark_domains(conn, libvirt)
    if leftovers:
        print(f'removed {leftovers} leftover {PREFIX}* domain(s) of an earlier run')

    rows = []
    try:
        for size in sizes:
            start = time.perf_counter()
            for index in range(size):
                conn.defineXML(DOMAIN_XML.format(name=f'{PREFIX}{size}-{index}'))
            define_seconds = time.perf_counter() - start

            summary_seconds, domains = best_of(args.repeats, lambda: list_domains(conn))
            mine = [d for d in domains if d['name'].startswith(f'{PREFIX}{size}-')]
            if len(mine) != size:
                raise RuntimeError(f'list_domains returned {len(mine)} of the {size} benchmark domains')
            raw_seconds = best_of(args.repeats, lambda: conn.getAllDomainStats(0, 0))[0]
            details_seconds = None
            if args.details:
                details_seconds = best_of(args.repeats, lambda: list_domains(conn, details=True))[0]
            rows.append((size, len(domains), summary_seconds, raw_seconds, details_seconds, define_seconds))
            remove_benchmark_domains(conn, libvirt)
    except KeyboardInterrupt:
        print('interrupted: removing the benchmark domains', file=sys.stderr)
        return 130
    finally:
        remove_benchmark_domains(conn, libvirt)
        conn.close()

    header = f"{'N':>5} {'listed':>7} {'list_domains s':>15} {'per domain us':>14} {'raw bulk s':>11}"
    if args.details:
        header += f" {'details s':>10} {'details/dom us':>15}"
    print(f'list_domains(conn) on {args.uri}, best of {args.repeats} (domains defined, not running)')
    print(header)
    for size, listed, summary_seconds, raw_seconds, details_seconds, _define in rows:
        line = (f'{size:>5} {listed:>7} {summary_seconds:>15.4f} {summary_seconds / listed * 1e6:>14.1f}'
                f' {raw_seconds:>11.4f}')
        if details_seconds is not None:
            line += f' {details_seconds:>10.4f} {details_seconds / listed * 1e6:>15.1f}'
        print(line)
    return 0


if __name__ == '__main__':
    sys.exit(main())
