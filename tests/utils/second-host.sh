#!/usr/bin/env bash
# Usage: second-host.sh start|stop|status|uri|hosta-uri|exec COMMAND [ARG...]
#
# "Host B": a second libvirtd + virtlogd on this machine, next to the normal daemon ("host A",
# qemu:///system), so that live migration and remote URIs can be tested on one machine.
#
# ############################################################################################
# ##  FOR TESTS ONLY.  Host B accepts libvirt connections on 127.0.0.1:PORT over PLAIN TCP  ##
# ##  WITH NO AUTHENTICATION AND NO ENCRYPTION (listen_tcp = 1, auth_tcp = "none"): every   ##
# ##  user and process on this machine can then run anything as root through B's guests.   ##
# ##  Never run this on a shared or production host, never change the listen address.      ##
# ############################################################################################
#
# How B is built (each step is needed, see docs/several-hosts.md):
#   - its own mount and UTS namespaces (unshare --mount --uts --propagation private), held
#     open by a `sleep infinity` holder process; hostname kvmtest-mig-hostb;
#   - private bind mounts over /run/libvirt, /etc/libvirt (a copy of A's with its domains,
#     networks, storage pools and secrets removed), /var/lib/libvirt (A's empty directory
#     tree), /var/cache/libvirt (a copy of A's: its QEMU capabilities cache makes B's first
#     guest start and migration ~4 s faster) and /var/log/libvirt;
#   - libvirtd.conf: its own host_uuid (libvirt refuses to migrate to "itself"), listen_tcp
#     with auth_tcp = "none" on 127.0.0.1:PORT; qemu.conf: migration_host = "127.0.0.2" (the
#     address A's QEMU sends the guest to; 127.0.0.1 is refused as local), a migration port
#     range of its own, cgroup_controllers = [ ] (no systemd, one cgroup tree for both).
#   The network namespace is shared: libvirt networks on B need bridge names and subnets of
#   their own (never a second `default`), or guests use a host bridge both hosts attach to.
#
# Storage: a directory is the same directory for A and B unless it lies under one of B's
# private mounts. A "copied" disk (copy_storage) in a shared directory would overwrite its own
# source. Tests put the pools they migrate between under /var/lib/libvirt/<name>: a different
# directory on each host. Files elsewhere (/var/tmp, /var/cache/hypervisor-kvm-tests with the
# tiny guest's kernel) are shared, like a cluster filesystem would be.
#
# Commands:
#   start      start B unless it runs (idempotent). The LAST line of stdout is B's URI,
#              qemu+tcp://127.0.0.1:PORT/system, and nothing else; progress goes to stderr.
#   stop       destroy B's guests and networks, stop B's libvirtd and virtlogd, then any
#              process left in B's mount namespace (QEMU, dnsmasq, or an sshd started with
#              `exec`) and the holder, each by pid; remove B's private copies. Only what `start`
#              started is stopped; host A is never touched.
#   status     what runs (pids, namespace, URI, B's guests and networks). Exit 0 either way.
#   uri        B's URI; exit 1 when B does not run.
#   hosta-uri  a URI that reaches host A from both namespaces (A's and B's), for migrations
#              back to A peer to peer (B's libvirtd connects to it): qemu+unix:///system with
#              socket=/proc/<anchor>/root/run/libvirt/libvirt-sock, where <anchor> is a process
#              this script keeps in A's mount namespace. Exit 1 when B does not run.
#   exec CMD   run CMD inside B's namespaces (it sees B's /run/libvirt, /var/lib/libvirt...).
#              A `qemu+ssh://` transport to B can be added this way: start an sshd inside B
#              (`exec /usr/sbin/sshd -p PORT -o ListenAddress=127.0.0.1 ...`); its sessions
#              reach B's libvirt-sock, and `stop` ends it with B.
#
# Environment: SECOND_HOST_PORT (first TCP port tried, default 16519; the next 20 are tried when
# it is taken), SECOND_HOST_MIGRATION_PORTS (default 49700-49763; A keeps libvirt's default
# 49152-49215), SECOND_HOST_STATE (default .cache/second-host at the repository root: pids,
# port, B's private directories, logs; git-ignored). Needs root.
# Measured on the build machine (2 shared cores): start 0.3-0.9 s (fresh copies included), 0.08 s when
# B already runs; stop 3.6-4.3 s (libvirtd and virtlogd take about 2 s each to exit).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
STATE=${SECOND_HOST_STATE:-$REPO_ROOT/.cache/second-host}
ROOT=$STATE/root
FIRST_PORT=${SECOND_HOST_PORT:-16519}
MIGRATION_PORTS=${SECOND_HOST_MIGRATION_PORTS:-49700-49763}
HOSTNAME_B=kvmtest-mig-hostb
# The directories B gets a private copy of: name under $ROOT, mount point.
MOUNTS=(run:/run/libvirt etc:/etc/libvirt lib:/var/lib/libvirt cache:/var/cache/libvirt log:/var/log/libvirt)

log() { printf 'second-host: %s\n' "$*" >&2; }
die() { printf 'second-host: ERROR: %s\n' "$*" >&2; exit 1; }

# ---- pids ----------------------------------------------------------------------------------------
pid_of() {  # the pid recorded in $STATE/$1.pid if that process still runs as command $2
    local pid
    pid=$(tr -dc '0-9' 2>/dev/null <"$STATE/$1.pid" || true)
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] && echo "$pid"
    return 0
}

namespace_of() { readlink "/proc/$1/ns/mnt" 2>/dev/null || true; }

holder_pid() {  # the holder, only if it really sits in a namespace other than ours
    local pid
    pid=$(pid_of holder sleep)
    if [ -n "$pid" ] && [ "$(namespace_of "$pid")" != "$(namespace_of $$)" ]; then
        echo "$pid"
    fi
}

in_b() {  # run a command inside B's namespaces
    local holder
    holder=$(holder_pid)
    [ -n "$holder" ] || die "host B does not run (no namespace holder): run '$0 start'"
    nsenter --target "$holder" --mount --uts -- "$@"
}

port() { tr -dc '0-9' 2>/dev/null <"$STATE/port" || true; }
uri_b() { echo "qemu+tcp://127.0.0.1:$(port)/system"; }
hosta_uri() {
    local anchor
    anchor=$(pid_of anchor sleep)
    [ -n "$anchor" ] || return 1
    echo "qemu+unix:///system?socket=/proc/$anchor/root/run/libvirt/libvirt-sock"
}

virsh_b() { timeout 30 virsh -q -c "$(uri_b)" "$@"; }
answers() { [ -n "$(port)" ] && timeout 10 virsh -q -c "$(uri_b)" version >/dev/null 2>&1; }

running() {
    [ -n "$(holder_pid)" ] && [ -n "$(pid_of libvirtd libvirtd)" ] && [ -n "$(pid_of virtlogd virtlogd)" ] \
        && [ -n "$(pid_of anchor sleep)" ] && answers
}

port_free() {  # nothing listens on 127.0.0.1:$1 (or on every address)
    ! ss -Htln 2>/dev/null | awk '{ print $4 }' | grep -Eq "^(127\.0\.0\.1|0\.0\.0\.0|\*|\[::\]):$1\$"
}

# ---- start -----------------------------------------------------------------------------------------
copy_tree_skeleton() {  # the directories of $1 (owner, group, mode) under $2, no files
    local src=$1 dst=$2 dir
    mkdir -p "$dst"
    chown --reference="$src" "$dst"
    chmod --reference="$src" "$dst"
    # A's running guests have per-domain directories: B starts without them. Pool
    # directories under images/ belong to A's pools.
    (cd "$src" && find . -mindepth 1 \( -path './qemu/domain-*' -o -path './qemu/channel/target/domain-*' \
        -o -path './images/*' -o -path './kvmtest*' \) -prune -o -type d -print0) |
        while IFS= read -r -d '' dir; do
            mkdir -p "$dst/$dir"
            chown --reference="$src/$dir" "$dst/$dir"
            chmod --reference="$src/$dir" "$dst/$dir"
        done
}

set_conf() {  # set_conf FILE KEY VALUE: drop every line that sets KEY, then append KEY = VALUE
    sed -i -E "/^[[:space:]]*$2[[:space:]]*=/d" "$1"
    printf '%s = %s\n' "$2" "$3" >>"$1"
}

prepare_root() {
    local port=$1
    rm -rf -- "$ROOT"
    mkdir -p "$ROOT/run"
    chmod 0755 "$ROOT/run"

    # /etc/libvirt without A's guests, networks, pools and secrets.
    cp -a /etc/libvirt "$ROOT/etc"
    find "$ROOT/etc/qemu" -maxdepth 1 -name '*.xml' -delete
    rm -rf "$ROOT/etc/qemu/autostart" "$ROOT/etc/qemu/networks" "$ROOT/etc/storage" "$ROOT/etc/secrets" \
        "$ROOT/etc/qemu/checkpoint" "$ROOT/etc/qemu/snapshot"
    mkdir -p "$ROOT/etc/qemu/networks/autostart" "$ROOT/etc/storage/autostart" "$ROOT/etc/secrets"
    chmod 0700 "$ROOT/etc/secrets"
    {
        echo
        echo '# ---- host B (tests/utils/second-host.sh): FOR TESTS ONLY, unauthenticated TCP on loopback ----'
    } | tee -a "$ROOT/etc/libvirtd.conf" >>"$ROOT/etc/qemu.conf"
    set_conf "$ROOT/etc/libvirtd.conf" host_uuid "\"$(cat /proc/sys/kernel/random/uuid)\""
    set_conf "$ROOT/etc/libvirtd.conf" listen_tls 0
    set_conf "$ROOT/etc/libvirtd.conf" listen_tcp 1
    set_conf "$ROOT/etc/libvirtd.conf" listen_addr '"127.0.0.1"'
    set_conf "$ROOT/etc/libvirtd.conf" tcp_port "\"$port\""
    set_conf "$ROOT/etc/libvirtd.conf" auth_tcp '"none"'
    set_conf "$ROOT/etc/libvirtd.conf" log_outputs '"3:file:/var/log/libvirt/libvirtd.log"'
    set_conf "$ROOT/etc/qemu.conf" migration_host '"127.0.0.2"'
    set_conf "$ROOT/etc/qemu.conf" migration_port_min "${MIGRATION_PORTS%-*}"
    set_conf "$ROOT/etc/qemu.conf" migration_port_max "${MIGRATION_PORTS#*-}"
    set_conf "$ROOT/etc/qemu.conf" cgroup_controllers '[ ]'

    copy_tree_skeleton /var/lib/libvirt "$ROOT/lib"
    mkdir -p "$ROOT/cache"
    if [ -d /var/cache/libvirt ]; then
        cp -a /var/cache/libvirt/. "$ROOT/cache/"
    fi
    copy_tree_skeleton /var/log/libvirt "$ROOT/log"
}

spawn_anchor_and_holder() {
    # Both detach from the caller (setsid, no inherited stdio): an Ansible task that runs
    # `start` must not wait for them.
    # Nor do they keep the lock (fd 9) of this script.
    setsid sleep infinity </dev/null >/dev/null 2>&1 9>&- &
    echo $! >"$STATE/anchor.pid"
    setsid unshare --mount --uts --propagation private -- sleep infinity </dev/null >/dev/null 2>&1 9>&- &
    echo $! >"$STATE/holder.pid"
    local _
    for _ in $(seq 50); do
        [ -n "$(holder_pid)" ] && return 0
        sleep 0.02
    done
    die "the namespace holder did not come up"
}

start_daemons() {
    local mounts='' entry
    for entry in "${MOUNTS[@]}"; do
        mounts+="mount --bind '$ROOT/${entry%%:*}' '${entry#*:}' && "
    done
    # virtlogd first: without it QEMU cannot start. Their pid files live in $STATE so that
    # A's /run/libvirtd.pid and /run/virtlogd.pid are never touched.
    in_b bash -c "set -e; hostname $HOSTNAME_B; ${mounts} true
        virtlogd -d -p '$STATE/virtlogd.pid' </dev/null >>'$STATE/daemons.log' 2>&1
        libvirtd -d -l -p '$STATE/libvirtd.pid' </dev/null >>'$STATE/daemons.log' 2>&1" 9>&-
}

start() {
    [ "$(id -u)" -eq 0 ] || die "host B needs root (namespaces, bind mounts, a system libvirtd)"
    local tool
    for tool in unshare nsenter setsid libvirtd virtlogd virsh ss; do
        command -v "$tool" >/dev/null 2>&1 || die "$tool not found (make deps installs libvirt)"
    done
    [ -d /etc/libvirt ] || die "/etc/libvirt missing: install libvirt first (make deps)"
    mkdir -p "$STATE"
    if running; then
        log "host B already runs (libvirtd pid $(pid_of libvirtd libvirtd))"
        uri_b
        return 0
    fi
    if [ -n "$(holder_pid)$(pid_of libvirtd libvirtd)$(pid_of virtlogd virtlogd)$(pid_of anchor sleep)" ]; then
        log "host B is half up (an earlier run failed): stopping what is left first"
        stop
    fi
    local t0 port candidate _
    t0=$(date +%s%N)
    port=''
    for candidate in $(seq "$FIRST_PORT" $((FIRST_PORT + 20))); do
        if port_free "$candidate"; then port=$candidate; break; fi
    done
    [ -n "$port" ] || die "no free TCP port on 127.0.0.1 between $FIRST_PORT and $((FIRST_PORT + 20))"
    prepare_root "$port"
    echo "$port" >"$STATE/port"
    spawn_anchor_and_holder
    start_daemons || { stop; die "B's daemons did not start (see $STATE/daemons.log)"; }
    for _ in $(seq 100); do
        if answers; then
            log "host B up in $(awk -v s="$t0" -v e="$(date +%s%N)" 'BEGIN { printf "%.2f", (e - s) / 1e9 }') s:" \
                "libvirtd pid $(pid_of libvirtd libvirtd), hostname $HOSTNAME_B, migrations on 127.0.0.2:$MIGRATION_PORTS"
            log "FOR TESTS ONLY: $(uri_b) accepts anyone on this machine, without authentication"
            uri_b
            return 0
        fi
        sleep 0.1
    done
    stop
    die "host B did not answer on $(uri_b) within 10 s (see $STATE/daemons.log)"
}

# ---- stop -------------------------------------------------------------------------------------------
stop_pids() {  # stop_pids "NAME PID" ...: SIGTERM to all at once, wait up to 15 s, then SIGKILL
    local entry pid waiting alive _
    waiting=()
    alive=()
    for entry in "$@"; do
        pid=${entry##* }
        if [ -z "$pid" ] || [ "$pid" = "${entry% *}" ]; then continue; fi
        log "stopping ${entry% *} (pid $pid)"
        kill "$pid" 2>/dev/null && waiting+=("$pid")
    done
    for _ in $(seq 150); do
        alive=()
        for pid in "${waiting[@]}"; do
            [ -d "/proc/$pid" ] && alive+=("$pid")
        done
        [ "${#alive[@]}" -eq 0 ] && return 0
        sleep 0.1
    done
    for pid in "${alive[@]}"; do
        if [ -d "/proc/$pid" ]; then
            log "pid $pid ignored SIGTERM for 15 s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
}

processes_in() {  # every pid in the mount namespace of the holder $1, except the holder
    local holder=$1 inode
    [ -n "$holder" ] || return 0
    inode=$(stat -L -c %i "/proc/$holder/ns/mnt" 2>/dev/null) || return 0
    # One stat for every process (a readlink per pid takes seconds on a busy machine).
    stat -L -c '%i %n' /proc/[0-9]*/ns/mnt 2>/dev/null \
        | awk -v ns="$inode" -v holder="$holder" '$1 == ns { split($2, p, "/"); if (p[3] != holder) print p[3] }'
}

stop() {
    local t0 holder name pid leftovers
    t0=$(date +%s%N)
    holder=$(holder_pid)
    # QEMU and dnsmasq outlive libvirtd: B's guests and networks go first.
    if [ -n "$(pid_of libvirtd libvirtd)" ] && answers; then
        for name in $(virsh_b list --name 2>/dev/null); do
            log "destroying B's guest $name"
            virsh_b destroy "$name" >/dev/null 2>&1 || log "could not destroy guest $name"
        done
        for name in $(virsh_b net-list --name 2>/dev/null); do
            log "destroying B's network $name"
            virsh_b net-destroy "$name" >/dev/null 2>&1 || log "could not destroy network $name"
        done
    fi
    # Both daemons at once: each takes ~2 s to exit, nothing they do then needs the other.
    stop_pids "libvirtd $(pid_of libvirtd libvirtd)" "virtlogd $(pid_of virtlogd virtlogd)"
    # Whatever else runs in B's namespace was started by B (or by `exec`): by pid.
    leftovers=()
    for pid in $(processes_in "$holder"); do
        leftovers+=("$(cat "/proc/$pid/comm" 2>/dev/null || echo process)-left-in-B $pid")
    done
    stop_pids "${leftovers[@]}"
    stop_pids "namespace-holder $holder" "A's-anchor $(pid_of anchor sleep)"
    # With the holder gone the namespace and its bind mounts are gone: the copies are plain
    # directories of ours again.
    if [ -n "$holder" ] && [ -d "/proc/$holder" ]; then
        die "the namespace holder (pid $holder) still runs: B's directories under $ROOT are kept"
    fi
    rm -rf -- "$ROOT"
    rm -f -- "$STATE"/{holder,anchor,libvirtd,virtlogd}.pid "$STATE/port"
    log "host B stopped in $(awk -v s="$t0" -v e="$(date +%s%N)" 'BEGIN { printf "%.2f", (e - s) / 1e9 }') s"
}

# ---- status -----------------------------------------------------------------------------------------
status() {
    local holder
    holder=$(holder_pid)
    echo "state: $STATE"
    echo "namespace holder: ${holder:-not running}${holder:+ ($(namespace_of "$holder"))}"
    echo "A's anchor: $(pid_of anchor sleep | grep . || echo 'not running')"
    echo "virtlogd: $(pid_of virtlogd virtlogd | grep . || echo 'not running')"
    echo "libvirtd: $(pid_of libvirtd libvirtd | grep . || echo 'not running')"
    if answers; then
        echo "uri: $(uri_b) (answers; FOR TESTS ONLY, no authentication)"
        echo "host A from both namespaces: $(hosta_uri || echo '?')"
        echo "guests: $(virsh_b list --all --name 2>/dev/null | tr '\n' ' ')"
        echo "networks: $(virsh_b net-list --all --name 2>/dev/null | tr '\n' ' ')"
        echo "pools: $(virsh_b pool-list --all --name 2>/dev/null | tr '\n' ' ')"
    else
        echo "uri: ${holder:+$(uri_b) }(no answer: host B does not run)"
    fi
    return 0
}

case "${1:-}" in
    # One start or stop at a time (make and a test target may both ask).
    start) mkdir -p "$(dirname "$STATE")"; exec 9>>"$STATE.lock"; flock 9; start ;;
    stop) mkdir -p "$(dirname "$STATE")"; exec 9>>"$STATE.lock"; flock 9; stop ;;
    status) status ;;
    uri) running || die "host B does not run"; uri_b ;;
    hosta-uri) running || die "host B does not run"; hosta_uri ;;
    exec) shift; [ $# -gt 0 ] || die "usage: $0 exec COMMAND [ARG...]"; in_b "$@" ;;
    *) die "usage: $0 start|stop|status|uri|hosta-uri|exec COMMAND [ARG...]" ;;
esac
