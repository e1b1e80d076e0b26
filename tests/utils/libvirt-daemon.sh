#!/usr/bin/env bash
# Usage: libvirt-daemon.sh start|stop|status
# start: make libvirt answer on qemu:///system. With systemd as PID 1 it starts the units;
#   without systemd (containers, the build machines) it runs `virtlogd -d`, then `libvirtd -d`
#   (QEMU cannot start a guest without virtlogd). Daemons that already run are left alone, so
#   it is idempotent. What it starts is recorded in .cache/libvirt-started.
# stop: stops only what `start` recorded. Run tests/utils/cleanup.sh first: QEMU and dnsmasq
#   processes outlive libvirtd.
set -euo pipefail
# shellcheck source=tests/utils/common.sh
. "$(dirname "$0")/common.sh"

STATE_FILE=$REPO_ROOT/.cache/libvirt-started

virsh_answers() {
    timeout 10 virsh -c "$LIBVIRT_URI" version >/dev/null 2>&1
}

# Is daemon $1 running? Its pid file ($2) first, then any process of that name.
daemon_running() {
    local pid
    if [ -r "$2" ]; then
        pid=$(tr -dc '0-9' <"$2")
        if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ]; then
            return 0
        fi
    fi
    pgrep -x "$1" >/dev/null 2>&1
}

record() {
    mkdir -p "$(dirname "$STATE_FILE")"
    grep -qxF "$1" "$STATE_FILE" 2>/dev/null || echo "$1" >>"$STATE_FILE"
}

# Without udev /dev/kvm is root:root 0600, and QEMU runs as libvirt-qemu (in group kvm).
fix_dev_kvm() {
    if [ -e /dev/kvm ] && [ "$(id -u)" -eq 0 ] && getent group kvm >/dev/null; then
        if ! { chgrp kvm /dev/kvm && chmod g+rw /dev/kvm; }; then
            log "libvirt: could not open /dev/kvm to group kvm"
        fi
    fi
}

start_systemd() {
    local units=() unit
    if systemctl is-active --quiet libvirtd.service; then
        return 0
    elif systemctl cat virtqemud.socket >/dev/null 2>&1; then
        # Modular daemons (Fedora, RHEL 9, Debian 13+): socket activated.
        for unit in virtlogd.socket virtqemud.socket virtnetworkd.socket virtstoraged.socket; do
            systemctl cat "$unit" >/dev/null 2>&1 && units+=("$unit")
        done
    else
        units=(virtlogd.socket libvirtd.service)
    fi
    for unit in "${units[@]}"; do
        if ! systemctl is-active --quiet "$unit"; then
            log "libvirt: systemctl start $unit"
            systemctl start "$unit"
            record "systemd:$unit"
        fi
    done
}

start_by_hand() {
    local name
    for name in virtlogd libvirtd; do
        command -v "$name" >/dev/null || die "$name not found: run 'make deps'"
        if daemon_running "$name" "/run/$name.pid"; then
            log "libvirt: $name already running"
        else
            log "libvirt: starting $name -d"
            "$name" -d
            record "$name"
        fi
    done
}

start() {
    if [ "$(id -u)" -ne 0 ]; then
        virsh_answers || die "$LIBVIRT_URI does not answer this user; starting libvirt needs root"
        log "libvirt: $LIBVIRT_URI answers (not root: nothing else checked)"
        return 0
    fi
    fix_dev_kvm
    if [ -d /run/systemd/system ]; then
        start_systemd
    else
        start_by_hand
    fi
    for _ in $(seq 100); do
        if virsh_answers; then
            log "libvirt: $LIBVIRT_URI answers ($(virsh -c "$LIBVIRT_URI" version 2>/dev/null | grep -i 'running hypervisor' || true))"
            return 0
        fi
        sleep 0.2
    done
    die "libvirt: $LIBVIRT_URI does not answer after 20 s"
}

stop_pid_file() {  # stop daemon $1 whose pid is in $2; wait up to 15 s
    local pid
    pid=$(tr -dc '0-9' <"$2" 2>/dev/null || true)
    if [ -z "$pid" ] || [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != "$1" ]; then
        log "libvirt: $1 is not running"
        return 0
    fi
    log "libvirt: stopping $1 (pid $pid)"
    kill "$pid"
    for _ in $(seq 150); do
        [ -d "/proc/$pid" ] || return 0
        sleep 0.1
    done
    die "$1 (pid $pid) did not exit within 15 s"
}

stop() {
    if [ ! -s "$STATE_FILE" ]; then
        log "libvirt: nothing was started by this script; leaving the daemons alone"
        return 0
    fi
    local entry unit
    # Reverse order: libvirtd before virtlogd.
    for entry in $(tac "$STATE_FILE"); do
        case $entry in
            systemd:*.socket)
                # A socket-activated daemon keeps running after its socket stops.
                log "libvirt: systemctl stop ${entry#systemd:} and its service"
                unit=${entry#systemd:}
                systemctl stop "$unit" "${unit%.socket}.service"
                ;;
            systemd:*)
                log "libvirt: systemctl stop ${entry#systemd:}"
                systemctl stop "${entry#systemd:}"
                ;;
            *) stop_pid_file "$entry" "/run/$entry.pid" ;;
        esac
    done
    rm -f "$STATE_FILE"
}

status() {
    local name
    for name in virtlogd libvirtd; do
        if daemon_running "$name" "/run/$name.pid"; then log "$name: running"; else log "$name: not running"; fi
    done
    if virsh_answers; then log "$LIBVIRT_URI: answers"; else log "$LIBVIRT_URI: no answer"; fi
    [ -s "$STATE_FILE" ] && log "started by this script: $(tr '\n' ' ' <"$STATE_FILE")"
    return 0
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) die "usage: $0 start|stop|status" ;;
esac
