# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A TCP listener on 127.0.0.1 that accepts every connection and never answers: a libvirt
"host" whose daemon hangs. It exits by itself after LIFETIME seconds (or when killed by pid).

usage: python silent_listener.py PORT PIDFILE [LIFETIME]   (prints nothing; writes its pid)
"""

from __future__ import annotations

import os
import socket
import sys
import time


def main(port, pidfile, lifetime=120.0):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(('127.0.0.1', port))
    server.listen(16)
    server.settimeout(1.0)
    with open(pidfile, 'w', encoding='ascii') as handle:
        handle.write(f'{os.getpid()}\n')
    accepted = []  # kept open: the client waits for an answer that never comes
    deadline = time.monotonic() + lifetime
    while time.monotonic() < deadline:
        try:
            connection, _address = server.accept()
        except TimeoutError:
            continue
        accepted.append(connection)
    for connection in accepted:
        connection.close()
    server.close()


if __name__ == '__main__':
    main(int(sys.argv[1]), sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 120.0)
