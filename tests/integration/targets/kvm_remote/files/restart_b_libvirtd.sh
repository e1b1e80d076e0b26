#!/usr/bin/env bash
# Usage: restart_b_libvirtd.sh SECOND_HOST_SH B_URI
# Restart host B's libvirtd (the test rig's own daemon, never host A's): SIGTERM to the pid in
# B's state directory, wait until it is gone, start it again inside B's namespaces with the same
# pid file, wait until B answers. B's guests and networks keep running (QEMU and dnsmasq outlive
# libvirtd; the new daemon reconnects to them). Prints two lines: when the restart began (epoch
# seconds), then the pids and the timings.
set -euo pipefail
second_host=$1
uri=$2
repo_root=$(cd "$(dirname "$second_host")/../.." && pwd -P)
state=${SECOND_HOST_STATE:-$repo_root/.cache/second-host}
pidfile=$state/libvirtd.pid

now() { date +%s%N; }
elapsed() { awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.2f", (e - s) / 1e9 }'; }

old=$(tr -dc '0-9' <"$pidfile")
if [ -z "$old" ] || [ "$(cat "/proc/$old/comm" 2>/dev/null)" != libvirtd ]; then
    echo "host B's libvirtd does not run (pid file $pidfile)" >&2
    exit 1
fi
t0=$(now)
awk -v t="$t0" 'BEGIN { printf "%.3f\n", t / 1e9 }'
kill "$old"
for _ in $(seq 200); do
    [ -d "/proc/$old" ] || break
    sleep 0.1
done
[ ! -d "/proc/$old" ] || { echo "libvirtd pid $old still runs 20 s after SIGTERM" >&2; exit 1; }
stopped=$(elapsed "$t0")
t1=$(now)
"$second_host" exec libvirtd -d -l -p "$pidfile" </dev/null >>"$state/daemons.log" 2>&1
for _ in $(seq 200); do
    if timeout 10 virsh -q -c "$uri" version >/dev/null 2>&1; then
        echo "B's libvirtd pid $old stopped in $stopped s; pid $(tr -dc '0-9' <"$pidfile") answered $(elapsed "$t1") s later"
        exit 0
    fi
    sleep 0.1
done
echo "host B's libvirtd did not answer on $uri within 20 s of its restart" >&2
exit 1
