# SPDX-License-Identifier: GPL-2.0
#
# dmxx top-level Makefile. See README.md.
#
#   make            kernel modules (kbuild) and userspace libraries/tests (CMake)
#   make demo       install what is missing, build, boot the VM, run the pass-through demo
#   make check      every test: build checks, unit tests (plain, ASan+UBSan, TSan), VM tests
#   make bench      scripts/bench: fio, kernel targets vs ours (never part of check)
#
# Kernel modules follow kbuild conventions: `make -C $(KDIR) M=$(PWD)` works too.

KVER ?= $(shell ls -1 /lib/modules 2>/dev/null | grep -E 'amd64$$' | sort -V | tail -n 1)
KDIR ?= /lib/modules/$(KVER)/build
BUILD ?= $(CURDIR)/build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

export KVER

.PHONY: all modules userspace setup demo check check-build check-unit check-vm bench clean help

all: modules userspace

modules:
	$(MAKE) -C $(KDIR) M=$(CURDIR) modules

userspace:
	cmake -S $(CURDIR) -B $(BUILD)/default -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD)/default -j $(JOBS)

setup:
	@scripts/setup

# setup runs as a separate make so KVER/KDIR are computed after the kernel
# packages exist on a fresh machine.
demo: setup
	@$(MAKE) --no-print-directory modules >/dev/null
	scripts/demo

check: setup
	@$(MAKE) --no-print-directory check-build check-unit check-vm

# The C++ rule's checks, each proven to fail on a deliberately bad object.
check-build:
	@$(MAKE) --no-print-directory modules
	tests/build/test_object_checks.sh

# GoogleTest suites through CTest: plain, ASan+UBSan, TSan.
check-unit:
	tests/unit/run.sh

# Every VM test under QEMU (software emulation), logs scanned for kernel splats.
check-vm:
	@$(MAKE) --no-print-directory modules >/dev/null
	tests/vm/run_all.sh

bench: setup
	@$(MAKE) --no-print-directory modules >/dev/null
	scripts/bench $(BENCH_ARGS)

clean:
	-$(MAKE) -C $(KDIR) M=$(CURDIR) clean
	rm -rf $(BUILD) generated

help:
	@sed -n '3,12p' Makefile
