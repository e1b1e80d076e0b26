# Build and test harness for the hypervisor.kvm collection. `make help` lists the targets.
# The work is done by the scripts in tests/utils/ (each one documents itself); every target
# prints its wall time at the end ("== unit: 12.3 s").

SHELL := /bin/bash
.DEFAULT_GOAL := help

UTILS := tests/utils
TIMED := $(UTILS)/timed.sh
VENV := .venv
# The venv is rebuilt when requirements-dev.txt changes: its stamp is named after its checksum.
VENV_STAMP := $(VENV)/.stamp-$(shell sha256sum requirements-dev.txt | cut -c1-16)

# Knobs, passed to the scripts through the environment:
#   TARGETS="kvm_pool kvm_pool_info"   integration targets to run (default: all)
#   SCENARIOS="default"                Molecule scenarios to run (default: all)
#   PYTEST_ARGS="-x -k pool"           extra pytest arguments for test-unit
#   SANITY_ARGS="--test pep8"          extra ansible-test arguments for sanity
#   CLOUD_IMAGE_ARGS="--release 13 --bare-host"   which image cloud-image builds
export TARGETS SCENARIOS PYTEST_ARGS SANITY_ARGS CLOUD_IMAGE_ARGS

.PHONY: help venv deps libvirt-start libvirt-stop libvirt-status test-clean test-unit \
	test-integration test-molecule sanity lint test demo demo-clean tiny-guest bench \
	second-host-start second-host-stop second-host-status cloud-image demo-debian \
	remote-ssh-start remote-ssh-stop remote-ssh-status

help: ## list the targets
	@echo "hypervisor.kvm: make <target>"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{ printf "  %-18s %s\n", $$1, $$2 }'
	@echo "Knobs: TARGETS=... (test-integration), SCENARIOS=... (test-molecule), PYTEST_ARGS=..., SANITY_ARGS=..."

venv: ## create .venv and install requirements-dev.txt (no-op while it is unchanged)
	@$(TIMED) venv $(UTILS)/venv.sh

$(VENV_STAMP): requirements-dev.txt
	@$(TIMED) venv $(UTILS)/venv.sh

deps: ## install the missing system packages (libvirt, QEMU, build deps; Debian/Ubuntu, root)
	@$(TIMED) deps $(UTILS)/system-deps.sh

libvirt-start: ## start libvirt (systemd units, or virtlogd + libvirtd by hand), wait until it answers
	@$(TIMED) libvirt-start $(UTILS)/libvirt-daemon.sh start

libvirt-stop: test-clean ## remove test objects, then stop the daemons libvirt-start started
	@$(TIMED) libvirt-stop $(UTILS)/libvirt-daemon.sh stop

second-host-start: ## start host B, a second libvirtd for migration and remote-URI tests (TESTS ONLY: unauthenticated TCP on 127.0.0.1); prints its URI
	@$(TIMED) second-host-start $(UTILS)/second-host.sh start

second-host-stop: ## stop host B: its guests and networks first, then what second-host-start started
	@$(TIMED) second-host-stop $(UTILS)/second-host.sh stop

second-host-status: ## show host B's daemons, URI, guests, networks and pools
	@$(UTILS)/second-host.sh status

remote-ssh-start: ## start an sshd for root inside host B on 127.0.0.1 (TESTS ONLY; needs second-host-start); prints its qemu+ssh URI
	@$(TIMED) remote-ssh-start $(UTILS)/remote-ssh.sh start

remote-ssh-stop: ## stop the sshd remote-ssh-start started (by pid)
	@$(TIMED) remote-ssh-stop $(UTILS)/remote-ssh.sh stop

remote-ssh-status: ## show the test sshd, its port and its qemu+ssh URI
	@$(UTILS)/remote-ssh.sh status

libvirt-status: ## show which libvirt daemons run and whether qemu:///system answers
	@$(UTILS)/libvirt-daemon.sh status

test-clean: ## remove every libvirt object and /var/tmp folder named kvmtest*
	@$(TIMED) test-clean $(UTILS)/cleanup.sh

test-unit: $(VENV_STAMP) ## pytest tests/unit
	@$(TIMED) unit $(UTILS)/unit.sh

test-integration: $(VENV_STAMP) ## ansible-test integration against the local libvirtd (TARGETS=... for a subset)
	@$(TIMED) integration $(UTILS)/integration.sh

test-molecule: $(VENV_STAMP) ## every Molecule scenario under extensions/molecule (SCENARIOS=... for a subset)
	@$(TIMED) molecule $(UTILS)/molecule.sh

sanity: $(VENV_STAMP) ## ansible-test sanity, all tests, offline-capable
	@$(TIMED) sanity $(UTILS)/sanity.sh $(SANITY_ARGS)

lint: $(VENV_STAMP) ## ruff check, then ansible-lint --profile production on roles/ and playbooks/
	@$(TIMED) lint $(UTILS)/lint.sh

test: ## everything: deps, venv, libvirt-start, then every test tier and the linters, with a summary
	@MAKE="$(MAKE)" $(TIMED) test $(UTILS)/test-all.sh

cloud-image: ## build (or reuse) a Debian cloud test image (mmdebstrap, GRUB, cloud-init; CLOUD_IMAGE_ARGS="--release 12|13 --bare-host") in /var/cache/hypervisor-kvm-tests/cloud-image
	@$(TIMED) cloud-image $(UTILS)/build-cloud-image.sh $(CLOUD_IMAGE_ARGS)

bench: deps $(VENV_STAMP) libvirt-start ## speed as ratios in one run: anchor work vs community.libvirt, ping floors, 20-guest role, 200-guest fleet, payloads (not in make test)
	@$(TIMED) bench $(VENV)/bin/python $(UTILS)/bench.py

tiny-guest: ## build (or reuse) the tiny test guest, a Debian kernel + busybox initramfs, in .cache/tiny-guest
	@$(TIMED) tiny-guest $(UTILS)/build-tiny-guest.sh

demo: deps $(VENV_STAMP) libvirt-start ## the main job: site.yml on this machine: host, pool, NAT network, a tiny guest booted to its DHCP address
	@$(TIMED) demo $(UTILS)/demo.sh

demo-debian: deps $(VENV_STAMP) libvirt-start ## site.yml with a real Debian 12 guest (cloud image built offline, cached) on the NAT network kvmdemo-debian; prints an ssh line that logs in
	@$(TIMED) demo-debian $(UTILS)/demo-debian.sh

demo-clean: $(VENV_STAMP) libvirt-start ## teardown.yml: remove the guests, networks and pools make demo and make demo-debian created, nothing else
	@DEMO_STATE=absent $(TIMED) demo-clean $(UTILS)/demo.sh
