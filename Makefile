# SPDX-License-Identifier: GPL-2.0
# dmxx top-level Makefile. See README.md.
#   make            modules (kbuild) + userspace libraries and tests (CMake)
#   make demo       set up, build, boot the VM, run the pass-through demo
#   make check      every test: object checks, unit tests (plain, ASan/UBSan, TSan), VM tests
#   make bench      scripts/bench (performance; never part of check)

KVER ?= $(shell ls -1 /lib/modules 2>/dev/null | grep -E 'amd64$$' | sort -V | tail -n 1)
KDIR ?= /lib/modules/$(KVER)/build
BUILD ?= $(CURDIR)/build
JOBS ?= $(shell nproc)

.PHONY: all modules userspace setup demo check check-build check-unit check-vm bench clean

all: modules userspace

modules:
	$(MAKE) -C $(KDIR) M=$(CURDIR) modules

userspace:
	cmake -S $(CURDIR) -B $(BUILD)/default -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD)/default -j $(JOBS)

setup:
	scripts/setup

clean:
	-$(MAKE) -C $(KDIR) M=$(CURDIR) clean
	rm -rf $(BUILD) generated
