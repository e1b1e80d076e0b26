#!/usr/bin/env bash
# ansible-test integration against the real libvirtd (qemu:///system) on this machine, no
# containers: the controller and the target are the venv's python, which has libvirt-python
# and lxml. TARGETS="kvm_pool kvm_pool_info" runs only those targets (names of folders under
# tests/integration/targets, or ansible-test aliases such as "destructive/"), one after the
# other; extra arguments go to ansible-test (e.g. --list-targets, --start-at-task).
#
# Without TARGETS every target runs, in two streams at once: the targets whose `aliases` say
# shippable/posix/group1, and those that say group2 (each stream one ansible-test, its output in
# .tmp/integration-groupN.log). Much of a target's time is waiting (guests booting under TCG,
# DHCP, SSH) and Ansible's own start-up per task, so two streams on two cores take about 60% of
# the time of one. Every target names its objects with a prefix of its own and only compares
# what carries it, so streams do not see each other. The groups are balanced by measured
# time; the guests of host B (kvm_migration, kvm_remote) are in one group, one after the other.
# INTEGRATION_JOBS=1 runs them in one stream instead.
#
# The streams share nothing that ansible-test writes on first use or per target:
#   - ansible-test's SSH key pair (~/.ansible/test/id_rsa) is made here, before they start
#     (ansible_test_key below); each ansible-test would otherwise make it when it is missing, and
#     the second ssh-keygen would ask whether to overwrite the first one's, with nobody to answer;
#   - each stream runs on a copy of the collection of its own
#     (.tmp/streams/groupN/ansible_collections/hypervisor/kvm: the files git sees, taken when the
#     run starts): ansible-test rewrites tests/integration/inventory and empties
#     tests/output/.tmp/output_dir at the start of every target, and two streams on one tree
#     would meet there. The copy's .cache is a link to the repository's, where host B, the test
#     sshd and the tiny guest keep their state, so both streams find the same host B. A stream's
#     results stay in its copy (tests/output) until the next run.
# The targets keep root's home: Ansible finds async jobs under the remote user's home from the
# password database (async_status), while a task's module would write them under $HOME.
# ~/.ansible/tmp is Ansible's usual per-run scratch space, which concurrent runs share by design.
#
# Which targets run: ansible-test lists the folders under tests/integration/targets that
# git knows (tracked, or untracked and not git-ignored) and skips those whose `aliases` file
# says disabled, unsupported, unstable or hidden. --allow-destructive is passed: the targets
# change this host's libvirt (objects named kvmtest*, which `make test-clean` removes).
set -euo pipefail
# shellcheck source=tests/utils/common.sh
. "$(dirname "$0")/common.sh"
require_venv

targets_dir=$REPO_ROOT/tests/integration/targets
if [ -z "$(find "$targets_dir" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | head -n 1)" ]; then
    log "integration: no integration targets yet (tests/integration/targets is empty)"
    exit 0
fi
if ! git_sees tests/integration/targets; then
    die "integration: git sees no file under tests/integration/targets (git-ignored?); ansible-test would find no target"
fi

"$REPO_ROOT/tests/utils/libvirt-daemon.sh" start
# Leftovers of an earlier, failed run would spoil the "first run changed" assertions.
"$REPO_ROOT/tests/utils/cleanup.sh"

run_tests() {  # run_tests COLLECTION_DIR [ansible-test arguments]: from that copy of the collection
    # ansible-test resolves its working directory to the real path, outside ansible_collections/
    # when it is a link: ANSIBLE_TEST_CONTENT_ROOT tells it where the collection is.
    (cd "$1" && ANSIBLE_TEST_CONTENT_ROOT=$1 "$VENV/bin/ansible-test" integration -v --allow-destructive \
        --python-interpreter "$VENV/bin/python" "${@:2}")
}

# ansible-test's SSH key pair, as ansible-test makes it (SshKey.generate_key_pair in
# ansible_test/_internal/core_ci.py). A pair an earlier run left is kept when it is whole (the
# public key is the private key's); anything else is made anew.
ansible_test_key() {
    local key=$HOME/.ansible/test/id_rsa
    if [ -f "$key" ] && [ -f "$key.pub" ] \
        && [ "$(ssh-keygen -y -f "$key" 2>/dev/null | cut -d' ' -f1,2)" = "$(cut -d' ' -f1,2 "$key.pub")" ]; then
        return 0
    fi
    mkdir -p "$(dirname "$key")"
    rm -f "$key.new" "$key.new.pub"
    ssh-keygen -m PEM -q -t rsa -N '' -f "$key.new" </dev/null >/dev/null
    sed -i 's/\(BEGIN\|END\) PRIVATE KEY/\1 RSA PRIVATE KEY/' "$key.new"
    mv -f "$key.new.pub" "$key.pub"
    mv -f "$key.new" "$key"
    log "integration: made ansible-test's SSH key pair $key"
}
ansible_test_key

if [ -n "${TARGETS:-}" ] || [ "$#" -gt 0 ] || [ "${INTEGRATION_JOBS:-2}" = 1 ]; then
    link_collection
    # shellcheck disable=SC2086  # TARGETS is a list of words
    run_tests "$COLLECTION_DIR" "$@" ${TARGETS:-}
    exit
fi

# copy_collection DEST: the files git sees (tracked and present, or untracked and not ignored),
# as ansible-test would list them, copied to DEST; DEST/.cache links to the repository's.
copy_collection() {
    local dest=$1
    rm -rf "$dest"
    mkdir -p "$dest"
    (
        cd "$REPO_ROOT"
        git ls-files -z --cached --others --exclude-standard \
            | while IFS= read -r -d '' path; do
                if [ -e "$path" ] || [ -L "$path" ]; then printf '%s\0' "$path"; fi  # not deleted
            done \
            | tar --null --no-recursion -T - -cf -
    ) | tar -C "$dest" -xf -
    mkdir -p "$REPO_ROOT/.cache"
    ln -s "$REPO_ROOT/.cache" "$dest/.cache"
}

logs=$REPO_ROOT/.tmp
mkdir -p "$logs"
stream() {  # one group's targets, one after the other; "status seconds" into its .status file
    local group=$1 start status
    start=$(date +%s)
    if run_tests "$(stream_collection "$group")" "shippable/posix/$group/" >"$logs/integration-$group.log" 2>&1; then
        status=ok
    else
        status=FAILED
    fi
    echo "$status $(($(date +%s) - start))" >"$logs/integration-$group.status"
}
stream_collection() { echo "$REPO_ROOT/.tmp/streams/$1/ansible_collections/hypervisor/kvm"; }
pids=()
for group in group1 group2; do
    rm -f "$logs/integration-$group.status"
    copy_collection "$(stream_collection "$group")"
    log "integration: stream $group (targets with the alias shippable/posix/$group), output in .tmp/integration-$group.log"
    stream "$group" &
    pids+=($!)
done
wait "${pids[@]}" || true
failed=0
for group in group1 group2; do
    read -r status seconds <"$logs/integration-$group.status" || { status=FAILED; seconds='?'; }
    targets=$(grep -o 'Running [a-z_0-9]* integration test role' "$logs/integration-$group.log" | awk '{ print $2 }' | tr '\n' ' ')
    log "== integration $group: $status in $seconds s: ${targets:-no target ran}"
    if [ "$status" != ok ]; then
        failed=1
        log "---- the end of .tmp/integration-$group.log ----"
        tail -n 200 "$logs/integration-$group.log"
        # What failed, whatever the tail shows (a target's cleanup can fill 200 lines).
        log "---- the failures in .tmp/integration-$group.log ----"
        # (also kept in .tmp/failures-integration-GROUP.txt: test-all.sh repeats it at the end)
        grep -n -E '^(fatal|failed): |^FATAL: |^TASK \[' "$logs/integration-$group.log" \
            | grep -B1 -E '^[0-9]+:(fatal|failed): |^[0-9]+:FATAL: ' | grep -v '^--$' | cut -c1-1500 | tail -n 40 \
            | tee "$logs/failures-integration-$group.txt" || true
    fi
done
exit "$failed"
