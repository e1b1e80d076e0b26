#!/usr/bin/env bash
# ansible-test sanity, every test, offline-capable, from the ansible_collections/hypervisor/kvm
# symlink. Extra arguments go to ansible-test (e.g. `sanity.sh --test validate-modules`).
#
# ansible-test only sees the files git knows: tracked ones and untracked ones that are not
# git-ignored (`git ls-files --cached --others --exclude-standard`). A new file is checked
# as soon as it exists; anything under a git-ignored path (.venv, .tmp, tests/output) is not.
#
# --requirements makes ansible-test build one virtualenv per sanity test under
# ~/.ansible/test/venv (~ is .tmp/home/sanity) (first run ~70 s, then cached). It bootstraps pip in each with a
# get-pip script downloaded from ci-files.testing.ansible.com, which is unreachable here: the
# stand-in written below bootstraps pip from the interpreter's own ensurepip instead, and the
# pinned pip comes from PyPI.
set -euo pipefail
# shellcheck source=tests/utils/common.sh
. "$(dirname "$0")/common.sh"
require_venv
# Its venvs and the get-pip stand-in live in this tier's own home (common.sh, use_own_home).
use_own_home sanity

[ -f "$REPO_ROOT/galaxy.yml" ] || die "sanity: galaxy.yml is missing; ansible-test needs a collection"

# The file name ansible-test looks for: ~/.ansible/test/cache/get_pip_<pip version>.py, with the
# pip version ansible-test pins (python_requirements.get_venv_packages).
site=$("$VENV/bin/python" -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')
pip_version=$(sed -n "s/^ *pip='\([0-9.]*\)',\$/\1/p" "$site/_internal/python_requirements.py" | head -n 1)
[ -n "$pip_version" ] || die "sanity: cannot find the pip version ansible-test pins in $site/_internal/python_requirements.py"
get_pip=$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py
marker='# hypervisor.kvm offline get-pip stand-in'
if [ ! -f "$get_pip" ] || grep -qxF "$marker" "$get_pip"; then
    mkdir -p "$(dirname "$get_pip")"
    cat >"$get_pip" <<PY
$marker (written by tests/utils/sanity.sh)
# ansible-test runs this as get-pip.py: python get_pip.py [pip options] pip==X [--no-setuptools] [--no-wheel]
import subprocess
import sys

args = [arg for arg in sys.argv[1:] if arg not in ('--no-setuptools', '--no-wheel')]
subprocess.check_call([sys.executable, '-m', 'ensurepip', '--upgrade', '--default-pip'])
subprocess.check_call([sys.executable, '-m', 'pip', 'install', '--upgrade'] + args)
PY
fi

python_version=$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
link_collection
cd "$COLLECTION_DIR"
export ANSIBLE_TEST_CONTENT_ROOT=$COLLECTION_DIR
exec "$VENV/bin/ansible-test" sanity --python "$python_version" --requirements "$@"
