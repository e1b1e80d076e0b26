#!/bin/sh
# libvirt's daemons on a host without systemd (containers, CI machines), for the kvm_host role.
#   libvirt_daemons.sh status  NAME...   which of the daemons run, and where their programs are
#   libvirt_daemons.sh start   NAME...   start those not running, in the order given
#   libvirt_daemons.sh restart NAME...   stop (SIGTERM, pid file) and start again those running
# A daemon NAME runs as `NAME --daemon` and writes /run/NAME.pid. A daemon counts as running when
# its pid file names a live process called NAME, or else when any process is called NAME (one
# started by hand without a pid file is not started twice). Prints one JSON object:
#   {"daemons": {"NAME": {"running": true, "pid": 123, "binary": "/usr/sbin/NAME"}, ...},
#    "started": [...], "restarted": [...]}
# and exits non-zero, with the reason on stderr, when a daemon does not start or stop.
set -u
# Daemons live in sbin, which a non-login PATH may lack.
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin

# The pid of the running daemon $1, or nothing. Only shell builtins in the /proc scan: no fork
# per process.
pid_of() {
    pid=''
    if [ -r "/run/$1.pid" ]; then
        read -r pid <"/run/$1.pid" 2>/dev/null || true
        case $pid in '' | *[!0-9]*) pid='' ;; esac
        if [ -n "$pid" ] && [ -r "/proc/$pid/comm" ]; then
            read -r comm <"/proc/$pid/comm" 2>/dev/null || comm=''
            [ "$comm" = "$1" ] && { echo "$pid"; return 0; }
        fi
    fi
    for file in /proc/[0-9]*/comm; do
        read -r comm <"$file" 2>/dev/null || continue
        if [ "$comm" = "$1" ]; then
            pid=${file#/proc/}
            echo "${pid%/comm}"
            return 0
        fi
    done
    return 1
}

# wait_running NAME TENTHS: wait for daemon NAME to run; wait_gone PID TENTHS: for PID to end.
wait_running() {
    tries=$2
    while [ "$tries" -gt 0 ]; do
        pid_of "$1" >/dev/null && return 0
        sleep 0.1
        tries=$((tries - 1))
    done
    return 1
}
wait_gone() {
    tries=$2
    while [ "$tries" -gt 0 ]; do
        [ -d "/proc/$1" ] || return 0
        sleep 0.1
        tries=$((tries - 1))
    done
    return 1
}

start_one() {
    binary=$(command -v "$1") || { echo "$1: not installed" >&2; return 1; }
    "$binary" --daemon || { echo "$1: '$binary --daemon' failed" >&2; return 1; }
    wait_running "$1" 100 || { echo "$1: not running 10 s after '$binary --daemon'" >&2; return 1; }
}

json_list() {
    out=''
    for item in "$@"; do out="$out${out:+, }\"$item\""; done
    printf '[%s]' "$out"
}

action=${1:-}
[ "$#" -gt 0 ] && shift
started=''
restarted=''
rc=0
case $action in
    status) ;;
    start)
        for name in "$@"; do
            pid_of "$name" >/dev/null && continue
            if start_one "$name"; then started="$started $name"; else rc=1; break; fi
        done
        ;;
    restart)
        for name in "$@"; do
            pid=$(pid_of "$name") || continue
            kill -TERM "$pid" 2>/dev/null
            if ! wait_gone "$pid" 150; then
                echo "$name: pid $pid still running 15 s after SIGTERM" >&2
                rc=1
                break
            fi
            if start_one "$name"; then restarted="$restarted $name"; else rc=1; break; fi
        done
        ;;
    *)
        echo "usage: $0 status|start|restart NAME..." >&2
        exit 2
        ;;
esac

daemons=''
for name in "$@"; do
    if pid=$(pid_of "$name"); then running=true; else running=false; pid=null; fi
    if binary=$(command -v "$name"); then binary="\"$binary\""; else binary=null; fi
    daemons="$daemons${daemons:+, }\"$name\": {\"running\": $running, \"pid\": $pid, \"binary\": $binary}"
done
# Word splitting of the lists is intended: daemon names have no spaces.
# shellcheck disable=SC2086
printf '{"daemons": {%s}, "started": %s, "restarted": %s}\n' \
    "$daemons" "$(json_list $started)" "$(json_list $restarted)"
exit "$rc"
