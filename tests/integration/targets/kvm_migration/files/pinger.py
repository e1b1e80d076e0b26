# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ping a test guest every INTERVAL seconds while it migrates, then say what was lost.

    pinger.py run ADDRESS STATE_DIR [--interval 0.2] [--max-seconds 60]
    pinger.py stop STATE_DIR

``run`` sends ICMP echo requests (a raw socket: root, no ping binary needed) until STATE_DIR/stop
exists or --max-seconds pass (bounded either way), then waits one second for late replies and
writes STATE_DIR/result.json. ``stop`` creates the stop file, waits for the result (up to 15 s)
and prints it: sent, received, lost, the lost sequence numbers, and ``longest_gap_ms`` (the
longest time without a reply, between two replies: the guest's downtime as the network saw it).
Only addresses of the test subnet 10.249.0.0/24 are accepted: tests send traffic nowhere else.
"""

from __future__ import annotations

import ipaddress
import json
import os
import select
import socket
import struct
import sys
import time

SUBNET = ipaddress.ip_network('10.249.0.0/24')


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b'\0'
    total = sum(struct.unpack(f'!{len(data) // 2}H', data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(ident: int, seq: int) -> bytes:
    payload = struct.pack('!d', time.time()) + b'kvmtest-mig'
    header = struct.pack('!BBHHH', 8, 0, 0, ident, seq)
    return struct.pack('!BBHHH', 8, 0, checksum(header + payload), ident, seq) + payload


def run(address: str, state_dir: str, interval: float, max_seconds: float) -> None:
    if ipaddress.ip_address(address) not in SUBNET:
        sys.exit(f'pinger: {address} is outside the test subnet {SUBNET}')
    stop_file = os.path.join(state_dir, 'stop')
    ident = os.getpid() & 0xFFFF
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sent, replies = {}, {}
    start = time.monotonic()
    next_send, seq = start, 0
    sending = True
    grace_end = None
    while True:
        now = time.monotonic()
        if sending and (os.path.exists(stop_file) or now - start >= max_seconds):
            sending, grace_end = False, now + 1.0
        if not sending and now >= grace_end:
            break
        if sending and now >= next_send:
            seq += 1
            sock.sendto(echo_request(ident, seq & 0xFFFF), (address, 0))
            sent[seq] = now
            next_send += interval
        wait = max(0.0, (next_send if sending else grace_end) - time.monotonic())
        ready = select.select([sock], [], [], wait)[0]
        if ready:
            packet, source = sock.recvfrom(2048)
            header_length = (packet[0] & 0x0F) * 4
            kind, _code, _sum, reply_ident, reply_seq = struct.unpack('!BBHHH', packet[header_length:header_length + 8])
            if kind == 0 and reply_ident == ident and source[0] == address and reply_seq in sent:
                replies.setdefault(reply_seq, time.monotonic())
    answered = sorted(replies)
    gaps = [sent[answered[i + 1]] - sent[answered[i]] for i in range(len(answered) - 1)]
    result = {
        'address': address, 'interval_ms': int(interval * 1000), 'sent': len(sent), 'received': len(replies),
        'lost': len(sent) - len(replies), 'lost_seqs': [s for s in sorted(sent) if s not in replies],
        'longest_gap_ms': int(max(gaps) * 1000) if gaps else None,
        'seconds': round(time.monotonic() - start, 1),
    }
    with open(os.path.join(state_dir, 'result.json.tmp'), 'w', encoding='utf-8') as handle:
        json.dump(result, handle)
    os.rename(os.path.join(state_dir, 'result.json.tmp'), os.path.join(state_dir, 'result.json'))


def stop(state_dir: str) -> None:
    open(os.path.join(state_dir, 'stop'), 'w', encoding='utf-8').close()
    result = os.path.join(state_dir, 'result.json')
    for _attempt in range(150):
        if os.path.exists(result):
            with open(result, encoding='utf-8') as handle:
                print(handle.read())
            return
        time.sleep(0.1)
    sys.exit(f'pinger: no result in {result} after 15 s')


def main() -> None:
    args = sys.argv[1:]
    if len(args) >= 3 and args[0] == 'run':
        options = {args[i]: args[i + 1] for i in range(3, len(args) - 1, 2)}
        run(args[1], args[2], float(options.get('--interval', 0.2)), float(options.get('--max-seconds', 60)))
    elif len(args) == 2 and args[0] == 'stop':
        stop(args[1])
    else:
        sys.exit(__doc__)


if __name__ == '__main__':
    main()
