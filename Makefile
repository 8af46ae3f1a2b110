# cshell: make demo | make test | make bench   (run as root: cshell makes namespaces and mounts)

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_HOST := /usr/bin/python3
VENV        := .venv
STAMP       := $(VENV)/.stamp
APT_PKGS    := python3-venv busybox-static iproute2 iptables tmux qemu-system-x86 cpio mmdebstrap xz-utils kmod skopeo umoci debian-archive-keyring docker-registry apache2-utils openssl libseccomp2 procps gcc libc6-dev
BENCH_PKGS  := runc crun
TEST_PKGS   := vagrant vagrant-libvirt sudo docker.io  # vagrant(-libvirt): the Vagrantfile checks (test_provision.py); sudo: the cshell group (test_cli.py); docker.io: the parity harness (tests/parity/)
BENCH_ARGS  ?=

# Install the Debian packages in $(1) that are not installed yet; apt-get update only then.
define apt_ensure
	@missing=""; \
	for p in $(1); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

.PHONY: help deps venv vm-image test-v2 demo test lint bench clean box box-clean box-smoke test-vm

# cshell creates namespaces, mounts and cgroups: everything but `help` needs root.
ifneq ($(shell id -u),0)
ifneq ($(filter-out help,$(or $(MAKECMDGOALS),help)),)
$(error cshell: 'make $(MAKECMDGOALS)' must run as root; try: sudo make $(MAKECMDGOALS))
endif
endif

help:
	@echo "make demo    install what is needed, then replay lesson 08 (the article)"
	@echo "make test    ruff + pytest (as root: the kernel tests make real containers)"
	@echo "make bench   cshell vs runc and crun (BENCH_ARGS='--runs 50 --json out.json')"
	@echo "make box     build the Vagrant box cshell/bookworm-local here (libvirt; see README)"
	@echo "make deps | venv | vm-image | test-v2 | lint | clean | box-clean | box-smoke | test-vm"

deps:
	$(call apt_ensure,$(APT_PKGS))

# The venv comes from Debian's python, whatever python3 is first on PATH. Byte-compile
# cshell every time (quick when nothing changed): where PYTHONDONTWRITEBYTECODE is set,
# Python would otherwise compile every module on every start (~30 ms of each command).
venv: $(STAMP)
	@$(VENV)/bin/python -m compileall -q cshell
	@$(VENV)/bin/python -m cshell.engine.container.initbin >/dev/null  # run --init's PID 1: gcc -static -Os cshell/data/init.c

$(STAMP): pyproject.toml
	@if [ ! -x $(VENV)/bin/python ] || ! grep -qx 'home = /usr/bin' $(VENV)/pyvenv.cfg 2>/dev/null; then \
	  echo "$(PYTHON_HOST) -m venv $(VENV)"; rm -rf $(VENV); $(PYTHON_HOST) -m venv $(VENV); \
	fi
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[test]' --config-settings editable_mode=compat
	@touch $@

demo: deps venv
	$(VENV)/bin/cshell --script lesson08.cs

# A Debian 12 guest with pure cgroup v2 (the students' VMs) for tests/test_cgroup_v2_vm.py.
VMDIR ?= /var/tmp/cshell-vm
vm-image: $(VMDIR)/base.cpio

$(VMDIR)/base.cpio: tests/vm/cgroup-v2-vm.sh
	VMDIR=$(VMDIR) EXTRA_PKGS="busybox-static iproute2" tests/vm/cgroup-v2-vm.sh build

# Only the cgroup tests in that guest (one boot, ~2 min); `make test` runs them too.
test-v2: venv vm-image
	VMDIR=$(VMDIR) $(VENV)/bin/python -m pytest -q tests/test_cgroup_v2_vm.py

test: deps venv vm-image
	$(call apt_ensure,$(TEST_PKGS))
	$(VENV)/bin/ruff check cshell tests
	$(VENV)/bin/python -m pytest -q tests

lint: venv
	$(VENV)/bin/ruff check cshell tests bench

# The students' VM, offline: a libvirt Vagrant box built from Debian packages, with everything
# provisioning installs already inside; also installs and starts libvirt on this host.
# Cached in $(BOXDIR) until the packages or scripts that make it change.
#   make box && CSHELL_BOX=cshell/bookworm-local vagrant up --provider=libvirt
BOXDIR ?= /var/tmp/cshell-box
box:
	BOXDIR=$(BOXDIR) scripts/box/build-box.sh build

box-clean:
	BOXDIR=$(BOXDIR) scripts/box/build-box.sh clean

# The local box for real: vagrant up, provisioning, lesson08 --fast inside, destroy (timed).
box-smoke: box
	scripts/box/smoke.sh

# The students' machine, proven: box-smoke plus every lesson in both languages, a pty session
# over ssh, a reboot with containers running, the VM killed mid-lesson then `lesson reset`, and
# the kernel test files under pytest, inside the VM (scripts/box/smoke.sh says how long each took).
test-vm: box
	FULL=1 scripts/box/smoke.sh

bench: deps venv
	$(call apt_ensure,$(BENCH_PKGS))
	$(VENV)/bin/python bench/bench_run.py $(BENCH_ARGS)
	$(VENV)/bin/python bench/bench_images.py
	$(VENV)/bin/python bench/bench_network.py
	$(VENV)/bin/python bench/bench_cgroups.py
	$(VENV)/bin/python bench/bench_volumes.py
	$(VENV)/bin/python bench/bench_registry.py
	$(VENV)/bin/python bench/bench_reliability.py
	$(VENV)/bin/python bench/bench_containment.py
	$(VENV)/bin/python bench/bench_lessons.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache bench/results
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
