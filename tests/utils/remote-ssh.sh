#!/usr/bin/env bash
# Usage: remote-ssh.sh start|stop|status|uri
#
# A `qemu+ssh://` transport to host B (tests/utils/second-host.sh): an OpenSSH server that runs
# INSIDE B's mount namespace, so that the commands of an ssh session (libvirt runs
# `virt-ssh-helper qemu:///system` there) reach B's /run/libvirt/libvirt-sock, not A's.
#
# ############################################################################################
# ##  FOR TESTS ONLY. It lets root log in to this machine over ssh on 127.0.0.1:PORT with a ##
# ##  key this script generates (git-ignored, in .cache/remote-ssh). Never change the       ##
# ##  listen address; never run it on a shared or production machine.                       ##
# ############################################################################################
#
# The sshd: Debian's openssh-server (installed when missing, as root, without starting the
# distribution's own sshd: a policy-rc.d refuses service starts during the install), started
# with `second-host.sh exec /usr/sbin/sshd -f <its own config>`; no systemd, no /etc/ssh keys.
#   - ListenAddress 127.0.0.1 only, on a port of its own (REMOTE_SSH_PORT, default 16539; the
#     next 20 are tried when it is taken);
#   - its own ed25519 host key, and an ed25519 client key pair, generated once under
#     .cache/remote-ssh/ (REMOTE_SSH_STATE) and kept (the host key stays the same across runs);
#   - root may log in with that key only: PermitRootLogin prohibit-password, PasswordAuthentication
#     and keyboard-interactive off, no PAM, AllowUsers root, the key `restrict`ed (no forwarding,
#     no pty) and accepted from 127.0.0.1 only;
#   - logs to .cache/remote-ssh/sshd.log (there is no syslog here).
#
# Commands:
#   start   start the sshd unless it runs in B's current namespace (idempotent). Host B must run
#           (`second-host.sh start`). The LAST line of stdout is the URI, and nothing else:
#             qemu+ssh://root@127.0.0.1:PORT/system?keyfile=<state>/client_key&command=<state>/ssh
#           progress goes to stderr.
#   stop    stop the sshd this script started, by its pid (nothing else).
#           `second-host.sh stop` also ends it (it stops every process left in B's namespace).
#   status  what runs (pid, port, namespace, URI). Exit 0 either way.
#   uri     the URI; exit 1 when the sshd does not run.
#
# B's host key is checked, against a known_hosts file of our own: libvirt's `known_hosts` URI
# parameter exists only for the libssh and libssh2 transports, so the URI's `command=` names
# <state>/ssh, a wrapper that runs OpenSSH with UserKnownHostsFile=<state>/known_hosts (B's key
# on [127.0.0.1]:PORT) and StrictHostKeyChecking=yes. Nothing is read from or written to root's
# ~/.ssh (no_verify=1 would record the key there, a file every test run and tier shares).
#
# Environment: REMOTE_SSH_PORT, REMOTE_SSH_STATE (default .cache/remote-ssh at the repository
# root), SECOND_HOST_STATE (passed on to second-host.sh). Needs root.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
# shellcheck source=tests/utils/common.sh
. "$REPO_ROOT/tests/utils/common.sh"  # apt_get
SECOND_HOST=$REPO_ROOT/tests/utils/second-host.sh
STATE=${REMOTE_SSH_STATE:-$REPO_ROOT/.cache/remote-ssh}
FIRST_PORT=${REMOTE_SSH_PORT:-16539}
SSHD=/usr/sbin/sshd

log() { printf 'remote-ssh: %s\n' "$*" >&2; }
die() { printf 'remote-ssh: ERROR: %s\n' "$*" >&2; exit 1; }

port() { tr -dc '0-9' 2>/dev/null <"$STATE/port" || true; }
uri() {
    echo "qemu+ssh://root@127.0.0.1:$(port)/system?keyfile=$STATE/client_key&command=$STATE/ssh"
}

b_namespace() {  # the mount namespace of host B, empty when B does not run
    "$SECOND_HOST" exec readlink /proc/self/ns/mnt 2>/dev/null || true
}

sshd_pid() {  # the recorded sshd's pid, if that process still runs as sshd
    local pid
    pid=$(tr -dc '0-9' 2>/dev/null <"$STATE/sshd.pid" || true)
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = sshd ] && echo "$pid"
    return 0
}

running() {  # our sshd runs in B's current namespace (B may have been restarted under it)
    local pid ns
    pid=$(sshd_pid)
    [ -n "$pid" ] || return 1
    ns=$(b_namespace)
    [ -n "$ns" ] && [ "$(readlink "/proc/$pid/ns/mnt" 2>/dev/null)" = "$ns" ]
}

port_free() {  # nothing listens on 127.0.0.1:$1 (or on every address)
    ! ss -Htln 2>/dev/null | awk '{ print $4 }' | grep -Eq "^(127\.0\.0\.1|0\.0\.0\.0|\*|\[::\]):$1\$"
}

# ---- start -----------------------------------------------------------------------------------------
install_openssh_server() {
    [ -x "$SSHD" ] && return 0
    command -v apt-get >/dev/null 2>&1 || die "$SSHD missing: install OpenSSH's server (not a Debian-family system)"
    local policy=/usr/sbin/policy-rc.d made_policy=''
    if [ ! -e "$policy" ]; then
        # The package's postinst would start the distribution's sshd on every address:
        # refuse service starts for the duration of the install.
        printf '#!/bin/sh\n# remote-ssh.sh: no service starts during its install\nexit 101\n' >"$policy"
        chmod 0755 "$policy"
        made_policy=yes
    fi
    log "installing openssh-server (its own service is not started)"
    local rc=0
    export DEBIAN_FRONTEND=noninteractive
    if ! apt_get install -y -qq --no-install-recommends openssh-server >&2; then
        apt_get update -qq >&2 && apt_get install -y -qq --no-install-recommends openssh-server >&2 || rc=$?
    fi
    [ -n "$made_policy" ] && rm -f "$policy"
    if [ "$rc" -ne 0 ] || [ ! -x "$SSHD" ]; then die "could not install openssh-server"; fi
}

make_keys() {
    mkdir -p "$STATE"
    chmod 0700 "$STATE"
    if [ ! -s "$STATE/ssh_host_ed25519_key" ]; then
        ssh-keygen -q -t ed25519 -N '' -C 'kvmtest-rem host B (tests only)' -f "$STATE/ssh_host_ed25519_key"
    fi
    if [ ! -s "$STATE/client_key" ]; then
        ssh-keygen -q -t ed25519 -N '' -C 'kvmtest-rem client (tests only)' -f "$STATE/client_key"
    fi
    # The one key root may log in with, from loopback only, without forwarding or a pty.
    printf 'restrict,from="127.0.0.1" %s\n' "$(cat "$STATE/client_key.pub")" >"$STATE/authorized_keys"
    chmod 0600 "$STATE/authorized_keys"
}

write_client() {  # the known_hosts with B's key on port $1, and the ssh the URI's command= runs
    printf '[127.0.0.1]:%s %s\n' "$1" "$(cut -d' ' -f1,2 "$STATE/ssh_host_ed25519_key.pub")" >"$STATE/known_hosts"
    cat >"$STATE/ssh" <<EOF
#!/bin/sh
# tests/utils/remote-ssh.sh: OpenSSH for the qemu+ssh:// URI of the test sshd (its command=).
# B's host key is checked against the known_hosts next to this file; root's ~/.ssh is not used.
exec ssh -o UserKnownHostsFile='$STATE/known_hosts' -o GlobalKnownHostsFile=/dev/null \\
    -o StrictHostKeyChecking=yes "\$@"
EOF
    chmod 0755 "$STATE/ssh"
}

write_config() {
    cat >"$STATE/sshd_config" <<EOF
# tests/utils/remote-ssh.sh: FOR TESTS ONLY (root on 127.0.0.1:$1, its own key only)
Port $1
ListenAddress 127.0.0.1
AddressFamily inet
HostKey $STATE/ssh_host_ed25519_key
PidFile $STATE/sshd.pid
AuthorizedKeysFile $STATE/authorized_keys
# the state directory is inside the clone, which may sit under a world-writable /tmp: sshd's
# StrictModes would refuse the key there ("bad ownership or modes for directory /tmp")
StrictModes no
AllowUsers root
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
GSSAPIAuthentication no
UsePAM no
PermitUserEnvironment no
AllowTcpForwarding no
AllowAgentForwarding no
AllowStreamLocalForwarding no
X11Forwarding no
PermitTunnel no
PrintMotd no
UseDNS no
MaxStartups 20:30:60
LogLevel INFO
EOF
}

start() {
    [ "$(id -u)" -eq 0 ] || die "needs root (an sshd for root logins inside host B's namespace)"
    [ -n "$(b_namespace)" ] || die "host B does not run: start it first ($SECOND_HOST start)"
    install_openssh_server
    mkdir -p "$STATE"
    if running; then
        log "sshd already runs in host B (pid $(sshd_pid), port $(port))"
        write_client "$(port)"
        uri
        return 0
    fi
    local old t0 candidate chosen _
    old=$(sshd_pid)
    if [ -n "$old" ]; then
        log "sshd pid $old runs outside B's current namespace (B was restarted): stopping it"
        stop_sshd "$old"
    fi
    t0=$(date +%s%N)
    chosen=''
    for candidate in $(seq "$FIRST_PORT" $((FIRST_PORT + 20))); do
        if port_free "$candidate"; then chosen=$candidate; break; fi
    done
    [ -n "$chosen" ] || die "no free TCP port on 127.0.0.1 between $FIRST_PORT and $((FIRST_PORT + 20))"
    make_keys
    write_client "$chosen"
    write_config "$chosen"
    echo "$chosen" >"$STATE/port"
    rm -f "$STATE/sshd.pid"
    # sshd's privilege separation directory (the init script creates it; /run is shared with B).
    mkdir -p /run/sshd
    chmod 0755 /run/sshd
    "$SSHD" -t -f "$STATE/sshd_config" || die "sshd refuses its configuration $STATE/sshd_config"
    # sshd daemonizes (its pid goes to $STATE/sshd.pid); it must not keep our stdio open.
    "$SECOND_HOST" exec "$SSHD" -f "$STATE/sshd_config" -E "$STATE/sshd.log" </dev/null >/dev/null 2>&1 8>&- \
        || die "sshd did not start (see $STATE/sshd.log)"
    for _ in $(seq 100); do
        if [ -n "$(sshd_pid)" ] && ! port_free "$chosen"; then
            log "sshd up in $(awk -v s="$t0" -v e="$(date +%s%N)" 'BEGIN { printf "%.2f", (e - s) / 1e9 }') s:" \
                "pid $(sshd_pid), 127.0.0.1:$chosen, inside host B"
            log "FOR TESTS ONLY: root logs in on 127.0.0.1:$chosen with $STATE/client_key"
            uri
            return 0
        fi
        sleep 0.1
    done
    stop
    die "sshd did not listen on 127.0.0.1:$chosen within 10 s (see $STATE/sshd.log)"
}

# ---- stop ------------------------------------------------------------------------------------------
stop_sshd() {  # SIGTERM the listener (its sessions end with it), up to 10 s, then SIGKILL
    local pid=$1 _
    log "stopping sshd (pid $pid)"
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do
        [ -d "/proc/$pid" ] || return 0
        sleep 0.1
    done
    log "sshd pid $pid ignored SIGTERM for 10 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

stop() {
    local pid
    pid=$(sshd_pid)
    if [ -n "$pid" ]; then
        stop_sshd "$pid"
    else
        log "sshd does not run"
    fi
    rm -f "$STATE/sshd.pid" "$STATE/port"
}

status() {
    local pid
    pid=$(sshd_pid)
    echo "state: $STATE"
    echo "sshd: ${pid:-not running}${pid:+ (port $(port), namespace $(readlink "/proc/$pid/ns/mnt" 2>/dev/null))}"
    echo "host B's namespace: $(b_namespace | grep . || echo 'host B does not run')"
    if running; then
        echo "uri: $(uri) (FOR TESTS ONLY)"
    fi
    return 0
}

case "${1:-}" in
    start) mkdir -p "$(dirname "$STATE")"; exec 8>>"$STATE.lock"; flock 8; start ;;
    stop) mkdir -p "$(dirname "$STATE")"; exec 8>>"$STATE.lock"; flock 8; stop ;;
    status) status ;;
    uri) running || die "the sshd of host B does not run"; uri ;;
    *) die "usage: $0 start|stop|status|uri" ;;
esac
