# SPDX-License-Identifier: GPL-2.0
#
# rust_emergency_reset: out-of-tree build, tests and demo.
#
#   make                     build rust_emergency_reset.ko against $(KDIR)
#   make KRELEASE=7.3.4+deb13-amd64   the same for Debian's own kernel of that release
#   make print-kdir          the KDIR that would be used
#   make CLIPPY=1            the same, with clippy (must be warning-free)
#   make modules_install     install into /lib/modules/<KDIR's release>/updates (as root)
#   make install             that, the udev rule and the modprobe.d example (DESTDIR= to stage)
#   make dkms-source         the source tree for DKMS, in /usr/src (see packaging/dkms.conf)
#   make deb                 the Debian packages rust-emergency-reset-dkms and
#                            emergency-reset-send, into qemu-tests/target/deb/ (as root:
#                            dpkg-buildpackage in a Debian 13 root; lintian must pass)
#   make clean
#   make check               set up what is missing, run host unit tests and the QEMU suite
#                            (the test kernel, with lock checking and kCFI; then Debian's
#                            kernel), and end with where the time went
#   make fuzz                the parsers' property tests with 10 million inputs each
#   make bench               trigger-to-reset latency beside reboot -f, sysrq-b, /dev/port
#                            (on the test kernel without its debug options)
#   make demo                set up what is missing, show the seed scenario in QEMU
#
# KDIR defaults to the running kernel's build directory when it carries Rust
# metadata (rust/libkernel.rmeta); else, when the running kernel is Debian's
# own Rust-enabled kernel, to KRELEASE=$(uname -r); else to the project's test
# kernel, built on demand into a cache outside the clone (scripts/build-kernel.sh).
# KRELEASE=<Debian kernel release> builds with that kernel's own compilers
# against its headers plus Rust metadata made in the cache
# (scripts/debian-kdir.sh; inside a Debian 13 build root when this host is not
# Debian 13). Loading the module resets the machine it runs on: the tests load
# it only inside QEMU guests.

LLVM ?= -19
export LIBCLANG_PATH ?= /usr/lib/llvm-19/lib
export PATH := $(HOME)/.cargo/bin:$(PATH)

# Goals that build nothing against a kernel look for no KDIR: dpkg-buildpackage
# runs `make dkms-source` where there is neither a kernel tree nor its source.
ifneq ($(MAKECMDGOALS),)
ifeq ($(filter-out dkms-source deb clean,$(MAKECMDGOALS)),)
KDIR := none
endif
endif
ifndef KDIR
ifndef KRELEASE
KRELEASE := $(shell scripts/kdir.sh --debian-release)
endif
ifdef KRELEASE
KDIR := $(shell scripts/debian-kdir.sh --print-dir $(KRELEASE))
else
KDIR := $(shell scripts/kdir.sh)
endif
endif
# The test kernel make check boots (lock checking and kCFI: scripts/debug.config),
# and the same without them, which make bench measures on.
TEST_KDIR = $(shell scripts/build-kernel.sh --print-dir)
BENCH_KDIR = $(shell scripts/build-kernel.sh --print-dir --plain)

# Kbuild with the kernel's own compilers: Debian's GCC kernel through
# debian-kdir.sh, the clang-built test kernel (or any KDIR) with LLVM.
ifdef KRELEASE
KBUILD = scripts/debian-kdir.sh --make $(KRELEASE) $(if $(CLIPPY),CLIPPY=$(CLIPPY))
KVER = $(KRELEASE)
else
KBUILD = $(MAKE) -C $(KDIR) LLVM=$(LLVM) $(if $(CLIPPY),CLIPPY=$(CLIPPY))
KVER = $(shell cat $(KDIR)/include/config/kernel.release)
endif

# The test modules the QEMU suite loads next to ours (deliberately broken).
TEST_MODULES := $(CURDIR)/qemu-tests/modules

.PHONY: all modules kernel print-kdir modules_install clean setup check check-run \
	demo demo-run test-modules unit-test fuzz rustfmt rustfmtcheck \
	check-legs check-test-kernel check-debian-legs check-debian-run check-debian-prep install \
	check-side-legs leg-modules \
	dkms-source sender deb \
	bench bench-run quiet-module

all: modules

# Build the test kernel when KDIR is the test kernel and it is not built yet;
# make a Debian release's KDIR when it is not made yet.
kernel:
	@if [ -n "$(KRELEASE)" ]; then scripts/debian-kdir.sh $(KRELEASE) >/dev/null; \
	elif [ "$(KDIR)" = "$(TEST_KDIR)" ]; then scripts/build-kernel.sh >/dev/null; \
	elif [ "$(KDIR)" = "$(BENCH_KDIR)" ]; then scripts/build-kernel.sh --plain >/dev/null; fi
	@test -f "$(KDIR)/Module.symvers" || { echo "KDIR=$(KDIR) is no built kernel tree"; exit 1; }
	@test -f "$(KDIR)/rust/libkernel.rmeta" || { \
		echo "KDIR=$(KDIR) has no rust/libkernel.rmeta: build against a kernel with CONFIG_RUST=y"; \
		exit 1; }

# Signed with the kernel's own build key where the tree has one (the test
# kernel): a kernel in lockdown loads only signed modules.
modules: kernel
	$(KBUILD) M=$(CURDIR) modules
	scripts/sign-modules.sh $(KDIR) rust_emergency_reset.ko

test-modules: kernel
	$(KBUILD) M=$(TEST_MODULES) modules
	scripts/sign-modules.sh $(KDIR) $(TEST_MODULES)/*.ko

print-kdir:
	@echo $(KDIR)

# DESTDIR stages the install elsewhere (as packagers do). For a Debian release
# the build may have run in the build root: the .ko is copied as DKMS does.
modules_install: modules
# `make` signed the module already where the tree has a key, as kbuild's
# modules_install would (CONFIG_MODULE_SIG_ALL): kbuild's signing, which
# does not look for a signature, would append a second one.
ifdef KRELEASE
	install -D -m 644 -t $(DESTDIR)/lib/modules/$(KVER)/updates rust_emergency_reset.ko
else
	$(KBUILD) M=$(CURDIR) INSTALL_MOD_PATH=$(DESTDIR) DEPMOD=true CONFIG_MODULE_SIG_ALL= \
		modules_install
endif
	depmod -a $(if $(DESTDIR),-b $(DESTDIR)) $(KVER)

# The module where modprobe finds it, the udev rule, and the modprobe.d example.
install: modules_install
	install -D -m 644 packaging/60-emergency-reset.rules \
		$(DESTDIR)/lib/udev/rules.d/60-emergency-reset.rules
	install -D -m 644 packaging/rust_emergency_reset.conf \
		$(DESTDIR)/usr/share/doc/rust_emergency_reset/modprobe.d-example.conf

# The source tree DKMS builds from: /usr/src/rust_emergency_reset-<version>.
DKMS_VERSION := $(shell sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' packaging/dkms.conf)
DKMS_SRC = $(DESTDIR)/usr/src/rust_emergency_reset-$(DKMS_VERSION)
dkms-source:
	install -D -m 644 -t $(DKMS_SRC) Kbuild rust_emergency_reset.rs device.rs sysrq.rs nmi.rs \
		oops.rs net.rs last_words.rs hw.rs ffi.rs task_offsets.c net_offsets.c abi_offsets.c \
		packaging/dkms.conf \
		packaging/dkms-make.sh scripts/debian-kdir.sh
	install -D -m 644 -t $(DKMS_SRC)/logic/src logic/src/logic.rs logic/src/record.rs \
		logic/src/packet.rs logic/src/ip.rs

# The Debian packages (debian/), built with dpkg-buildpackage inside the
# Debian 13 packaging root (scripts/debian-root.sh --packaging: the
# Build-Depends and lintian) from a copy of the tree's files that git knows
# (committed or not, ignored ones left out): the clone's own build products
# stay out of the package, and dpkg-buildpackage writes its results into the
# copy's parent, DEB_DIR, not the clone's. lintian then checks them as an
# unprivileged user, as it expects, and fails the build on any error or
# warning (debian/*.lintian-overrides hold the reasoned exceptions).
#
# make check runs it in the test kernel's leg (its tests, qemu-tests/tests/deb.rs,
# are in QEMU_TESTS), where a cold run makes the packaging root (75 to 146 s
# measured, mostly downloads; the packages then take about 30 s) while the
# background set-up, which a cold run waits on, builds the Debian kernels' KDIRs.
DEB_DIR = $(CURDIR)/qemu-tests/target/deb
deb:
	scripts/debian-root.sh --packaging >/dev/null
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/src
	git ls-files -z --cached --others --exclude-standard | \
		tar --null -T - -cf - | tar -C $(DEB_DIR)/src -xf -
	scripts/debian-root.sh --packaging --run sh -ec '\
		cd $(DEB_DIR)/src; \
		dpkg-buildpackage -b -us -uc >../build.log 2>&1 || { tail -30 ../build.log; \
			echo "make deb: dpkg-buildpackage failed (log: $(DEB_DIR)/build.log)"; exit 1; }; \
		cd ..; rm -rf src; \
		lint=$$(mktemp -d); cp *.deb *.buildinfo *.changes $$lint; chown -R nobody $$lint; \
		rc=0; runuser -u nobody -- env HOME=$$lint lintian --fail-on error,warning \
			--display-info $$lint/*.changes >lintian.log 2>&1 || rc=$$?; \
		rm -rf $$lint; cat lintian.log; \
		[ $$rc = 0 ] || { echo "make deb: lintian failed (log: $(DEB_DIR)/lintian.log)"; exit 1; }'
	@ls $(DEB_DIR)/*.deb

clean:
	rm -rf *.ko *.o *.mod *.mod.c *.mod.o .*.cmd .*.d Module.symvers modules.order .tmp_versions \
		task_offsets.s task_offsets.rs net_offsets.s net_offsets.rs abi_offsets.s abi_offsets.rs \
		$(addprefix $(TEST_MODULES)/,*.ko *.o *.mod *.mod.c .*.cmd .*.d Module.symvers modules.order) \
		logic/target sender/target qemu-tests/target qemu-tests/bench/target

# Root installs what is missing; anyone else is told what is missing.
setup:
	@if [ "$$(id -u)" = 0 ]; then scripts/setup.sh; else scripts/setup.sh --check; fi

unit-test:
	cd logic && cargo test --quiet
	cd sender && cargo test --quiet
	cd qemu-tests && cargo test --release --quiet --lib

# The network trigger's sender (host side): sender/target/release/emergency-reset-send.
SENDER := $(CURDIR)/sender/target/release/emergency-reset-send
sender:
	cd sender && cargo build --release --quiet

# The dedicated property run: 10 million inputs per parser (make check runs 20 000).
fuzz:
	cd logic && RER_FUZZ_ITERATIONS=10000000 cargo test --release --quiet fuzz

# The QEMU suite boots the test kernel whatever KDIR says (built with
# PROVE_LOCKING, DEBUG_ATOMIC_SLEEP and kCFI: any lock report or CFI failure
# fails a run), then Debian's own kernel: the newest Rust-enabled Debian 13
# kernel in trixie-backports, resolved here, its signed vmlinuz fetched into
# the cache (never installed), the modules built for it by
# `make KRELEASE=<release>`. Each step is timed (scripts/timed.sh) and the
# run ends with the table of where the time went (qemu-tests' bin/report),
# failed or not.
QEMU_TESTS = --test seed --test engine --test faults --test module_file --test packaging --test deb \
	--test docs --test lockdown --test lockdown_signed --test harness --test last_words \
	--test dead_methods --test reset_path --test network --test lockdep --test cfi
QEMU_TESTS_DEBIAN = --test seed --test engine --test faults --test module_file --test debian \
	--test deb_install --test lockdown --test last_words --test dead_methods --test reset_path \
	--test network --test tcg --test kdump --test secure_boot --test harness
# Every other flavour of Debian's kernel (DEBIAN_FLAVOURS after the first, which
# is the primary kernel's) gets the core scenarios: the seed scenario and its
# control, bad input and privileges, each method alone and the fallback, the
# sysrq file, the keyboard chord and a serial break, an NMI with every CPU
# spinning and one taking over from a stalled attempt, on_oops, last words
# across two boots, lockdown's refusals, the network trigger (a good
# datagram with userspace stopped, every datagram that must not reset, a
# replay), load/unload cycles with every trigger armed, and a reset while a
# CPU holds the console's port lock for good.
# On rt-amd64 (PREEMPT_RT) the console prints from a thread that a reset never
# lets run (7.2's 8250 console even in a panic; 7.3's nbcon one when its
# preempted printer thread owns it): the harness stops such a guest at its
# reset and reads the kernel's log from its RAM (qemu-tests/src/kernel_log.rs),
# and any BUG:, WARNING: or sleeping-in-atomic line there or on the console
# fails the test. DEBIAN_FLAVOURS=... on the command line runs any set.
DEBIAN_FLAVOURS = amd64 cloud-amd64 rt-amd64
QEMU_TESTS_CORE = --test seed --test engine --test faults --test last_words --test lockdown \
	--test network --test reset_path -- --exact \
	seed_scenario_device_resets_while_reboot_is_stuck seed_scenario_control_without_module_stays_stuck \
	bad_input_and_unprivileged_writers_are_refused each_method_forced_alone_resets_q35 \
	without_an_8042_the_default_order_falls_back_to_acpi sysrq_trigger_file_resets \
	keyboard_chord_alt_sysrq_x_resets serial_break_then_x_resets \
	bad_parameters_fail_the_load_and_change_nothing \
	an_nmi_takes_over_from_an_attempt_whose_cpu_stopped_for_good lockup_all_nmi \
	on_oops_0_resets_at_once_from_the_oops on_oops_resets_n_seconds_after_the_oops \
	seed_scenario_the_second_boot_names_the_device_its_caller_and_the_oops \
	lockdown_refuses_the_userspace_rescue_and_an_unsigned_module \
	dead_userspace_is_reset_by_the_sender_over_ipv4 every_datagram_that_must_not_reset_is_dropped_and_counted \
	a_datagram_replayed_after_the_reset_and_reboot_is_refused \
	unload_with_every_trigger_armed_leaves_no_handler_behind \
	unloading_while_datagrams_arrive_leaves_no_hook_behind \
	a_cpu_holding_the_consoles_port_lock_does_not_stop_the_reset
TIMED = scripts/timed.sh
# The QEMU tests run under cargo-nextest (qemu-tests/.config/nextest.toml):
# one process per test, QEMU_THREADS tests at once across all the binaries
# of a run, the long ones first.
QEMU_THREADS ?= 3
NEXTEST = cargo nextest run --release --no-fail-fast -j $(QEMU_THREADS)
RER_TIMINGS := $(CURDIR)/qemu-tests/target/timings.tsv
export RER_TIMINGS
check-run:
	rc=0; $(MAKE) check-legs || rc=$$?; \
		cd qemu-tests && cargo run --release --quiet --bin report; exit $$rc

# Every leg runs, whatever an earlier one did; the run fails at the end if
# any failed. The Debian kernels' set-up starts at once beside them, in the
# background (check-debian-prep).
DEBIAN_PREP = $(CURDIR)/qemu-tests/target/debian-prep
check-legs:
	rm -rf $(DEBIAN_PREP) && mkdir -p $(DEBIAN_PREP)
	(nice -n 19 $(MAKE) --no-print-directory check-debian-prep >$(DEBIAN_PREP)/log 2>&1; \
		echo $$? >$(DEBIAN_PREP)/rc) </dev/null &
	rc=0; $(MAKE) check-test-kernel || rc=1; $(MAKE) check-debian-legs || rc=1; \
		until [ -f $(DEBIAN_PREP)/rc ]; do sleep 1; done; \
		[ "$$(cat $(DEBIAN_PREP)/rc)" = 0 ] || { echo "check: the background set-up failed:"; \
			tail -20 $(DEBIAN_PREP)/log; }; exit $$rc

# What every Debian leg needs before its tests, made ahead in the legs'
# order, at nice 19 and beside the test kernel's leg: the build roots, the
# resolved set, and each supported kernel's vmlinuz, NIC modules and KDIR.
# It downloads while the test kernel builds and compiles while the guests
# wait; each leg's own steps then find the cache, wait on the step's lock
# while this makes it, or make what this has not reached yet (the scripts
# lock every shared step: a root, its apt, a vmlinuz, a KDIR). Timed as leg
# "background" (the report leaves it out of the total: it ran beside).
check-debian-prep:
	$(TIMED) background "roots and resolve" -- \
		sh -c '$(call resolve,$(DEBIAN_FLAVOURS))' \
		>$(DEBIAN_PREP)/releases
	for r in $$(cat $(DEBIAN_PREP)/releases); do \
		case " $(RER_SUPPORTED) " in *" $$(echo $$r | cut -d. -f1-2) "*) ;; *) continue ;; esac; \
		$(TIMED) background "$$r vmlinuz" -- sh -c '$(call fetch_binaries,'$$r')' || exit 1; \
		$(TIMED) background "$$r KDIR" -- $(MAKE) KRELEASE=$$r kernel || exit 1; \
	done

check-test-kernel:
	$(TIMED) "test kernel" kernel --cached-if $(TEST_KDIR)/../.built -- $(MAKE) KDIR=$(TEST_KDIR) kernel
	$(TIMED) "test kernel" modules -- $(MAKE) KDIR=$(TEST_KDIR) modules test-modules
	$(TIMED) host "unit tests and sender" -- $(MAKE) unit-test sender
	$(TIMED) host "deb" --cached-if $$(scripts/debian-root.sh --packaging --print-dir)/.ready -- \
		$(MAKE) deb
	cd qemu-tests && ../$(TIMED) "test kernel" "QEMU tests" -- env RER_KDIR=$(TEST_KDIR) \
		RER_MODULE=$(CURDIR)/rust_emergency_reset.ko RER_TEST_MODULES=$(TEST_MODULES) \
		RER_SENDER=$(SENDER) $(NEXTEST) $(QEMU_TESTS)
	cd qemu-tests/bench && ../../$(TIMED) "test kernel" "bench smoke" -- env RER_KDIR=$(TEST_KDIR) \
		RER_MODULE=$(CURDIR)/rust_emergency_reset.ko RER_TEST_MODULES=$(TEST_MODULES) \
		cargo run --release --quiet -- --smoke

# Debian's signed vmlinuz of release $(1) and its virtio NIC's modules, into the cache.
fetch_binaries = scripts/debian-kdir.sh --vmlinuz $(1) >/dev/null && \
	scripts/debian-kdir.sh --net-modules $(1) >/dev/null

# The newest release of each flavour $(1) in trixie-backports, then in forky.
resolve = { scripts/debian-kdir.sh --resolve $(1) && scripts/debian-kdir.sh --resolve --suite forky $(1); }

check-debian-legs:
	$(TIMED) debian "roots and resolve" --cached-if $$(scripts/debian-root.sh --suite forky --print-dir)/.ready -- \
		sh -c '$(call resolve,$(DEBIAN_FLAVOURS)) >qemu-tests/target/debian-releases'
	rm -rf qemu-tests/target/legs
	rc=0; $(MAKE) check-debian-run DEBIAN_RELEASE=$$(head -1 qemu-tests/target/debian-releases) || rc=1; \
		(cd qemu-tests && cargo run --release --quiet --bin matrix -- test $$(cat target/debian-release)) || rc=1; \
		$(MAKE) -k -O -j$(SIDE_LEGS) check-side-legs || rc=1; \
		(cd qemu-tests && cargo run --release --quiet --bin kernels) || rc=1; exit $$rc

# Every kernel of the resolved set but the primary one gets its core leg:
# SIDE_LEGS legs at once, each running
# SIDE_THREADS tests at once (a core leg's guests leave a core idle about half
# the time), each leg's output in one piece when it ends.
SIDE_LEGS ?= 2
SIDE_THREADS ?= 2
check-side-legs: $(addprefix leg-core/,$(shell tail -n +2 qemu-tests/target/debian-releases 2>/dev/null))
leg-core/%:
	$(MAKE) check-debian-run DEBIAN_RELEASE=$* DEBIAN_LEG=core QEMU_THREADS=$(SIDE_THREADS)

# The kernel series the module supports (Kbuild's RER_SUPPORTED): a Debian
# kernel of another series gets no leg, and the table says why.
RER_SUPPORTED := $(shell sed -n 's/^RER_SUPPORTED := //p' Kbuild)
series = $(shell echo $(1) | cut -d. -f1-2)

# One leg on Debian's kernel DEBIAN_RELEASE: the whole suite, with
# DEBIAN_LEG=core the core scenarios (QEMU_TESTS_CORE). The test output is
# kept in qemu-tests/target/legs/RELEASE.log for bin/kernels.
LEG_LOG = qemu-tests/target/legs/$(DEBIAN_RELEASE).log
# The whole leg tests `make KRELEASE=` itself: its modules are built in the
# tree. A core leg builds its own copy, from the DKMS source tree and
# the test modules' sources under its directory, so that such legs can run
# side by side.
LEG_DIR = $(CURDIR)/qemu-tests/target/legs/$(DEBIAN_RELEASE)
LEG_MODULE = $(if $(DEBIAN_LEG),$(LEG_DIR)/usr/src/rust_emergency_reset-$(DKMS_VERSION),$(CURDIR))
LEG_TEST_MODULES = $(if $(DEBIAN_LEG),$(LEG_DIR)/test-modules,$(TEST_MODULES))
leg-modules: kernel
	rm -rf $(LEG_DIR) && mkdir -p $(LEG_TEST_MODULES)
	$(MAKE) dkms-source DESTDIR=$(LEG_DIR)
	cp $(TEST_MODULES)/Kbuild $(TEST_MODULES)/*.rs $(TEST_MODULES)/*.c $(LEG_TEST_MODULES)
	$(KBUILD) M=$(LEG_MODULE) modules
	$(KBUILD) M=$(LEG_TEST_MODULES) modules
LEG_TESTS = $(if $(DEBIAN_LEG),$(QEMU_TESTS_CORE),$(QEMU_TESTS_DEBIAN))
check-debian-run:
	@test -n "$(DEBIAN_RELEASE)" || { echo "check: no Debian kernel resolved" >&2; exit 1; }
	@echo "check: Debian's kernel under test: $(DEBIAN_RELEASE) ($(or $(DEBIAN_LEG),whole) leg)"
	mkdir -p qemu-tests/target/legs
ifeq ($(filter $(call series,$(DEBIAN_RELEASE)),$(RER_SUPPORTED)),)
	echo "check: not built: Linux $(DEBIAN_RELEASE) is not supported (supported: $(RER_SUPPORTED))" \
		| tee $(LEG_LOG)
else
	$(if $(DEBIAN_LEG),,echo $(DEBIAN_RELEASE) >qemu-tests/target/debian-release)
	$(TIMED) $(DEBIAN_RELEASE) "vmlinuz and NIC modules" \
		--cached-if "$$(ls -d $$(scripts/debian-root.sh --print-dir)/../debian-binary-$(DEBIAN_RELEASE)-*/vmlinuz 2>/dev/null | head -1)" -- \
		sh -c '$(call fetch_binaries,$(DEBIAN_RELEASE))'
	$(TIMED) $(DEBIAN_RELEASE) KDIR --cached-if $$(scripts/debian-kdir.sh --print-dir $(DEBIAN_RELEASE))/../.built -- \
		$(MAKE) KRELEASE=$(DEBIAN_RELEASE) kernel
ifdef DEBIAN_LEG
	$(TIMED) $(DEBIAN_RELEASE) modules -- $(MAKE) KRELEASE=$(DEBIAN_RELEASE) leg-modules
else
	$(TIMED) $(DEBIAN_RELEASE) modules -- $(MAKE) KRELEASE=$(DEBIAN_RELEASE) modules test-modules
endif
	cd qemu-tests && { ../$(TIMED) $(DEBIAN_RELEASE) "QEMU tests" -- \
		env RER_KDIR=$$(../scripts/debian-kdir.sh --print-dir $(DEBIAN_RELEASE)) \
		RER_KERNEL=$$(../scripts/debian-kdir.sh --vmlinuz $(DEBIAN_RELEASE)) \
		RER_NET_MODULES=$$(../scripts/debian-kdir.sh --net-modules $(DEBIAN_RELEASE)) \
		RER_KERNEL_NAME=$(DEBIAN_RELEASE) RER_MODULE=$(LEG_MODULE)/rust_emergency_reset.ko \
		RER_TEST_MODULES=$(LEG_TEST_MODULES) RER_SENDER=$(SENDER) \
		$(NEXTEST) $(LEG_TESTS) 2>&1; \
		echo $$? >target/legs/$(DEBIAN_RELEASE).rc; } | tee ../$(LEG_LOG); \
		exit $$(cat target/legs/$(DEBIAN_RELEASE).rc)
endif

# Trigger-to-reset latency beside the anchors (see qemu-tests/bench); writes
# Documentation/benchmark.md and .png. BENCH_RUNS=N runs per case (default 20).
bench-run:
	$(MAKE) KDIR=$(BENCH_KDIR) modules test-modules quiet-module
	cd qemu-tests/bench && RER_KDIR=$(BENCH_KDIR) RER_MODULE=$(CURDIR)/rust_emergency_reset.ko \
		RER_QUIET_MODULE=$(QUIET_SRC)/rust_emergency_reset.ko \
		RER_TEST_MODULES=$(TEST_MODULES) cargo run --release --quiet

# The bench's build without the reset path's emergency lines (Kbuild's
# RER_BENCH_QUIET), which measures what they cost: the DKMS source tree,
# staged under qemu-tests/target, built with it. Never for users.
QUIET_DIR = $(CURDIR)/qemu-tests/target/quiet
QUIET_SRC = $(QUIET_DIR)/usr/src/rust_emergency_reset-$(DKMS_VERSION)
quiet-module: kernel
	rm -rf $(QUIET_DIR)
	$(MAKE) dkms-source DESTDIR=$(QUIET_DIR)
	$(KBUILD) M=$(QUIET_SRC) RER_BENCH_QUIET=1 modules

bench: setup
	$(MAKE) bench-run

check:
	rm -f qemu-tests/target/timings.tsv qemu-tests/target/guest-times.tsv qemu-tests/target/retries.tsv \
		qemu-tests/target/secure-boot-times.tsv
	$(TIMED) setup setup --cached-if-ok 'scripts/setup.sh --check' -- $(MAKE) setup
	$(MAKE) check-run

demo-run:
	$(MAKE) KDIR=$(TEST_KDIR) modules test-modules
	cd qemu-tests && RER_KDIR=$(TEST_KDIR) RER_MODULE=$(CURDIR)/rust_emergency_reset.ko \
		RER_TEST_MODULES=$(TEST_MODULES) cargo run --release --quiet --bin demo

demo: setup
	$(MAKE) demo-run

rustfmt:
	rustfmt --config-path .rustfmt.toml $$(git ls-files '*.rs')

rustfmtcheck:
	rustfmt --config-path .rustfmt.toml --check $$(git ls-files '*.rs')
