#!/usr/bin/env bash
# Create .venv with a python between 3.11 and 3.13 (ansible-core 2.19's controller range;
# 3.11 preferred) and install requirements-dev.txt into it. A stamp file named after the
# requirements' checksum makes a second run a no-op until requirements-dev.txt changes.
# PYTHON=/path/to/python overrides the choice.
set -euo pipefail
# shellcheck source=tests/utils/common.sh
. "$(dirname "$0")/common.sh"

requirements=$REPO_ROOT/requirements-dev.txt
sum=$(sha256sum "$requirements" | cut -c1-16)
stamp=$VENV/.stamp-$sum

python_ok() {  # usable interpreter with 3.11 <= version <= 3.13?
    "$1" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] <= (3, 13)))' >/dev/null 2>&1
}

if [ -f "$stamp" ] && python_ok "$VENV/bin/python"; then
    log "venv: $VENV is up to date with requirements-dev.txt"
    exit 0
fi

if [ -n "${PYTHON:-}" ]; then
    python_ok "$PYTHON" || die "PYTHON=$PYTHON is not a python between 3.11 and 3.13"
else
    # A pyenv shim can exist for a version that is not installed: python_ok runs each candidate.
    for candidate in python3.11 /usr/bin/python3.11 python3.12 python3.13 python3; do
        if command -v "$candidate" >/dev/null && python_ok "$candidate"; then
            PYTHON=$(command -v "$candidate")
            break
        fi
    done
    [ -n "${PYTHON:-}" ] || die "no python between 3.11 and 3.13 found (ansible-core 2.19 needs one)"
fi

if [ -d "$VENV" ] && ! python_ok "$VENV/bin/python"; then
    log "venv: $VENV is broken or has the wrong python: recreating it"
    rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
    log "venv: creating $VENV with $PYTHON ($("$PYTHON" -V 2>&1))"
    "$PYTHON" -m venv "$VENV" \
        || die "'$PYTHON -m venv' failed (Debian/Ubuntu: apt-get install python3-venv, or run 'make deps')"
fi

log "venv: installing requirements-dev.txt"
if ! "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet -r "$requirements"; then
    die "pip install failed; libvirt-python builds from source and needs libvirt-dev, pkg-config, gcc and the Python headers ('make deps' installs them)"
fi
rm -f "$VENV"/.stamp-*
touch "$stamp"
log "venv: ready ($("$VENV/bin/python" -V), ansible-core $("$VENV/bin/python" -c 'import ansible; print(ansible.__version__)'))"
