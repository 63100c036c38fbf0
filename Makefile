# froster-slurm: every install and run step lives here, so a bare Debian 12 machine needs
# nothing but `make demo` or `make test`.
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -euo pipefail -c

VENV     ?= .venv
PY       := $(VENV)/bin/python
PIP      := $(VENV)/bin/pip
PYTHON3  ?= python3
# openssh-server: the tests run their own private sshd from it (tests/sshserver.py, sftp);
# on a systemd host the package also starts and enables the system's ssh service, which the
# tests never use: when this target installs the package, it stops and disables that service.
APT_PKGS := slurm-wlm munge rclone chromium gcc python3-dev tmux shellcheck openssh-server
# The Ceph RGW the tests use as a second real S3 (scripts/ceph-rgw.sh)
RGW_PKGS := ceph-mon ceph-osd radosgw curl
STAMP    := $(VENV)/.installed

.PHONY: setup system-deps venv test test-fast lint demo bench soak cluster-up cluster-down rgw-up rgw-down clean help

help:
	@echo "make setup        venv + Python deps (as root also Debian: $(APT_PKGS))"
	@echo "make test         the whole test suite against a real local Slurm cluster"
	@echo "make test-fast    the unit tests only: no cluster, no S3, no network, no jobs"
	@echo "make demo         archive a demo tree end to end and show status + catalog"
	@echo "make bench        crawl, rank, pick, archive, submit and queue benchmarks"
	@echo "make soak         the fault campaign, longer, random seed (SOAK_SECONDS SOAK_FOLDERS SOAK_SEED)"
	@echo "make lint         ruff, and shellcheck on jobscripts/ and scripts/"
	@echo "make cluster-up   start (or reuse) the single-node Slurm cluster"
	@echo "make cluster-down stop what cluster-up started"
	@echo "make rgw-up       start (or reuse) the Ceph RGW S3 server on 127.0.0.1:7480"
	@echo "make rgw-down     stop what rgw-up started"

setup: system-deps $(STAMP)

# Debian packages: only when root and only what is missing (idempotent, no prompts).
system-deps:
	if [ "$$(id -u)" != 0 ]; then
	  echo "not root: skipping apt; make sure $(APT_PKGS) $(RGW_PKGS) are installed" >&2; exit 0; fi
	missing=""
	for p in $(APT_PKGS) $(RGW_PKGS) python3-venv; do
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"
	done
	if [ -n "$$missing" ]; then
	  export DEBIAN_FRONTEND=noninteractive
	  apt-get update -qq
	  apt-get install -y -qq --no-install-recommends $$missing </dev/null
	  case " $$missing " in *" openssh-server "*)
	    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
	      systemctl disable --now ssh.service ssh.socket >/dev/null 2>&1 || true
	      echo "openssh-server installed for the tests' private sshd; the system ssh service was left stopped and disabled" >&2
	    fi;;
	  esac
	fi

venv: $(STAMP)

# setup.py and the C source: the compiled crawl walker is built in place by the editable install
$(STAMP): pyproject.toml setup.py froster_slurm/crawl/_fastwalk.c
	[ -x $(PY) ] || $(PYTHON3) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test]'
	touch $(STAMP)

# shellcheck: the job bodies are fragments (no shebang: -s bash); every rendered script is
# checked whole by tests/test_stage_scripts.py.
SHELLCHECK := shellcheck -S warning

lint: $(STAMP)
	$(VENV)/bin/ruff check froster_slurm tests bench
	$(SHELLCHECK) -s bash jobscripts/*.sh
	$(SHELLCHECK) scripts/*.sh

cluster-up: system-deps
	bash scripts/slurm-cluster.sh up

cluster-down:
	bash scripts/slurm-cluster.sh down

rgw-up: system-deps
	bash scripts/ceph-rgw.sh up

rgw-down:
	bash scripts/ceph-rgw.sh down

# The whole suite, real Slurm included. Under CI=true a Slurm test that cannot reach the
# cluster fails instead of skipping (tests/conftest.py).
test: setup
	bash scripts/slurm-cluster.sh up
	bash scripts/ceph-rgw.sh up
	$(MAKE) --no-print-directory lint
	$(VENV)/bin/pytest -p no:cacheprovider tests

# The unit tests (`-m unit`; tests/conftest.py marks them): no Slurm cluster, no S3 server, no
# network, no job run through a backend, no browser, so neither cluster-up nor rgw-up.
test-fast: $(STAMP)
	$(VENV)/bin/pytest -p no:cacheprovider -m unit tests

# The fault campaign of tests/test_fault_campaign.py for longer: a random seed (printed; replay
# one with SOAK_SEED=N), SOAK_SECONDS of faults over SOAK_FOLDERS folders.
SOAK_SECONDS ?= 600
SOAK_FOLDERS ?= 16
soak: setup
	bash scripts/slurm-cluster.sh up
	seed=$${SOAK_SEED:-$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
	echo "soak: seed $$seed, $(SOAK_SECONDS)s of faults, $(SOAK_FOLDERS) folders"
	FROSTER_TESTCAMPAIGN_SEED=$$seed FROSTER_TESTCAMPAIGN_SECONDS=$(SOAK_SECONDS) \
	  FROSTER_TESTCAMPAIGN_FOLDERS=$(SOAK_FOLDERS) \
	  $(VENV)/bin/pytest -p no:cacheprovider -s tests/test_fault_campaign.py

demo: setup
	bash scripts/demo.sh

# bench/out/cwalk: the minimal C walker the crawl benchmark compares against
bench/out/cwalk: bench/cwalk.c
	mkdir -p bench/out
	$${CC:-gcc} -O2 -Wall -o $@ $< -lpthread

bench: setup bench/out/cwalk
	bash scripts/bench.sh

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache bench/out .demo
