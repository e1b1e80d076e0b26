# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The life of every module run: libvirt importable, one connection, the work, then exit_json or
a failure report (docs/architecture.md, "Failures are reports").

Whatever goes wrong inside the work ends in ``fail_json``: a KvmError with its message and
details (``changed``, ``actions``, ``actions_done`` and ``failed_action`` when a plan was partly
applied), a libvirt error, an OSError or an unexpected exception, each with what failed. Only the
last kind carries a traceback, under ``exception`` (it is a defect to report).
"""

from __future__ import annotations

from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import as_failure, connect, ensure_libvirt


def run(module, work, what: str = 'the module') -> None:
    """``work(conn)`` over the module's one libvirt connection; its dict is the result."""
    ensure_libvirt(module)
    result, failure = None, None
    try:
        with connect(module.params.get('uri')) as conn:
            result = work(conn)
            if conn.reopened:
                result['reconnected'] = conn.reopened
                result.setdefault('warnings', []).append(
                    f'the connection to libvirt at {conn.uri} was lost during the run (libvirtd restarted?) and '
                    f'opened again {conn.reopened} time(s); the run carried on')
    except Exception as err:  # pylint: disable=broad-exception-caught  # every failure is a report
        failure = as_failure(err, what)
    finish(module, result, failure)


def run_without_connection(module, work, what: str) -> None:
    """``work()`` for a module that opens libvirt itself, or not at all (kvm_host_info reads the
    host first): its dict is the result, and a failure is a report as with :func:`run`."""
    result, failure = None, None
    try:
        result = work()
    except Exception as err:  # pylint: disable=broad-exception-caught  # every failure is a report
        failure = as_failure(err, what)
    finish(module, result, failure)


def finish(module, result: dict | None, failure: KvmError | None) -> None:
    """exit_json, or fail_json for a failure. Called outside any ``except`` block so that
    ansible-core attaches no traceback of its own: the message is the whole story."""
    if failure is not None:
        details = dict(failure.details)
        details.setdefault('changed', False)
        for warning in details.pop('warnings', []):
            module.warn(warning)  # what a partly applied run noticed is worth seeing on failure too
        module.fail_json(msg=failure.msg, **details)
    for warning in result.pop('warnings', []):
        module.warn(warning)
    module.exit_json(**result)


def run_info(module, what: str, key: str, read) -> None:
    """An info module: ``read(conn)`` becomes ``result[key]``, never changed."""
    run(module, lambda conn: {'changed': False, key: read(conn)}, f'reading {what}')


def run_resource(module, resource_class) -> None:
    """A resource module: ``resource_class(conn, params, check_mode, diff=...).converge()``; the
    diff only when the run asked for one (``--diff``)."""
    label = f"{resource_class.kind} {module.params.get('name') or ''}".rstrip()
    run(module, lambda conn: resource_class(conn, module.params, module.check_mode, diff=module._diff).converge(),
        f'managing {label}')
