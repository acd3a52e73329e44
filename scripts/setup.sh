#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Install what building the test kernel, the module and the QEMU tests needs
# on Debian 12 (bookworm).  Idempotent: a second run only checks and exits.
#
#   sudo scripts/setup.sh          install what is missing
#   scripts/setup.sh --check       say what is missing, change nothing
#
# Never loads a module: it only installs build tools and QEMU.
set -euo pipefail

BINDGEN_VERSION=0.73.2
LLVM_PKGS="clang-19 lld-19 llvm-19 libclang-19-dev"
BUILD_PKGS="build-essential flex bison bc libelf-dev libssl-dev openssl cpio xz-utils kmod"
# git: make deb packages the files git knows; dpkg-deb (dpkg) reads the packages.
TEST_PKGS="busybox-static dkms fonts-dejavu-core python3-docutils debootstrap iproute2 socat git"
# The Secure Boot machine (qemu-tests/src/firmware.rs): OVMF, the ESP's tools,
# and a venv for virt-firmware (PyPI), whose virt-fw-vars enrolls the MOK.
SB_PKGS="ovmf gdisk dosfstools mtools python3-venv"
VIRT_FIRMWARE_VERSION=26.10
SRC_PKG=linux-source-7.3
BPO_LIST=/etc/apt/sources.list.d/emergency-reset-trixie-backports.sources
BPO_PIN=/etc/apt/preferences.d/emergency-reset-trixie-backports
# QEMU from bookworm-backports: bookworm's 7.2 TCG now and then runs a stale
# translation of code the guest kernel has patched (README.md, "QEMU").
QEMU_PKGS="qemu-system-x86 seabios"
QEMU_MIN="1:10.0.2"
SEABIOS_MIN="1.16.3"
QEMU_LIST=/etc/apt/sources.list.d/emergency-reset-bookworm-backports.sources

cache=${EMERGENCY_RESET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rust_emergency_reset}
# virt-firmware's venv, keyed by its version.
venv="$cache/virt-firmware-$VIRT_FIRMWARE_VERSION"
# scripts/setup.sh --virt-fw-vars: where virt-fw-vars is (installed or not).
if [ "${1:-}" = "--virt-fw-vars" ]; then
	echo "$venv/bin/virt-fw-vars"
	exit 0
fi

check_only=0
[ "${1:-}" = "--check" ] && check_only=1

export PATH="$HOME/.cargo/bin:$PATH"

missing_pkgs() {
	local p
	for p in $LLVM_PKGS $BUILD_PKGS $TEST_PKGS $SB_PKGS $SRC_PKG; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			printf '%s ' "$p"
	done
}

bindgen_ok() {
	command -v bindgen >/dev/null 2>&1 &&
		[ "$(bindgen --version 2>/dev/null | awk '{print $2}')" = "$BINDGEN_VERSION" ]
}

# The QEMU tests' runner (qemu-tests/.config/nextest.toml).
nextest_ok() {
	cargo nextest --version >/dev/null 2>&1
}

virt_firmware_ok() {
	[ -x "$venv/bin/virt-fw-vars" ] &&
		[ "$("$venv/bin/pip" show virt-firmware 2>/dev/null | sed -n 's/^Version: //p')" = "$VIRT_FIRMWARE_VERSION" ]
}

rust_src_ok() {
	[ -d "$(rustc --print sysroot 2>/dev/null)/lib/rustlib/src/rust/library" ]
}

# The installed version of package $1 is at least $2.
at_least() {
	local v
	v=$(dpkg-query -W -f='${Version}' "$1" 2>/dev/null) &&
		dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed' &&
		dpkg --compare-versions "$v" ge "$2"
}

qemu_ok() {
	at_least qemu-system-x86 "$QEMU_MIN" && at_least seabios "$SEABIOS_MIN"
}

pkgs=$(missing_pkgs)
todo=""
[ -n "$pkgs" ] && todo="${todo}packages: $pkgs
"
qemu_ok || todo="${todo}qemu-system-x86 >= $QEMU_MIN and seabios >= $SEABIOS_MIN (bookworm-backports)
"
[ -f "$BPO_LIST" ] || [ -z "$pkgs" ] || todo="${todo}apt source: trixie-backports (for $SRC_PKG), pinned to 50
"
command -v rustc >/dev/null 2>&1 || todo="${todo}rustc (rustup)
"
rust_src_ok || todo="${todo}rustup component rust-src
"
bindgen_ok || todo="${todo}bindgen-cli $BINDGEN_VERSION
"
nextest_ok || todo="${todo}cargo-nextest
"
virt_firmware_ok || todo="${todo}virt-firmware $VIRT_FIRMWARE_VERSION (PyPI) in $venv
"

if [ -z "$todo" ]; then
	echo "setup: everything is installed ($SRC_PKG $(dpkg-query -W -f='${Version}' $SRC_PKG)," \
		"$(rustc --version | cut -d' ' -f1-2), bindgen $BINDGEN_VERSION, $(cargo nextest --version | head -1)," \
		"$(qemu-system-x86_64 --version | head -1 | awk '{print $4}') qemu, virt-firmware $VIRT_FIRMWARE_VERSION)"
	exit 0
fi

if [ "$check_only" = 1 ] || [ "$(id -u)" != 0 ]; then
	echo "setup: missing:" >&2
	printf '%s' "$todo" | sed 's/^/  - /' >&2
	if [ "$(id -u)" != 0 ]; then
		echo "setup: run as root to install them:  sudo $0" >&2
		echo "  or by hand:" >&2
		[ -z "$pkgs" ] || echo "    apt-get install $pkgs" >&2
		case " $pkgs " in *" $SRC_PKG "*)
			echo "    ($SRC_PKG comes from Debian's trixie-backports suite, pinned to 50: see $0)" >&2 ;;
		esac
		qemu_ok || echo "    apt-get install -t bookworm-backports $QEMU_PKGS" >&2
		rust_src_ok || echo "    rustup component add rust-src" >&2
		bindgen_ok || echo "    cargo install bindgen-cli --locked --version $BINDGEN_VERSION" >&2
		nextest_ok || echo "    cargo install cargo-nextest --locked" >&2
		virt_firmware_ok || echo "    python3 -m venv $venv && $venv/bin/pip install virt-firmware==$VIRT_FIRMWARE_VERSION" >&2
	fi
	exit 1
fi

# Writes apt source $1 for suite $2 of the Debian mirror this machine uses
# (in $mirror).
add_suite() {
	mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
	[ -n "$mirror" ] || mirror=$(awk '/^deb / && $2 ~ /debian\/?$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
	[ -n "$mirror" ] || { echo "setup: cannot find the Debian mirror this machine uses" >&2; exit 1; }
	cat >"$1" <<SRC
Types: deb
URIs: $mirror
Suites: $2
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
}

setup_start=$(date +%s)
if [ -n "$pkgs" ]; then
	if [ ! -f "$BPO_LIST" ]; then
		add_suite "$BPO_LIST" trixie-backports
		cat >"$BPO_PIN" <<PIN
Package: *
Pin: release n=trixie-backports
Pin-Priority: 50
PIN
		echo "setup: added trixie-backports ($mirror), pinned to 50"
	fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
	echo "setup: installed $pkgs"
	echo "setup: $SRC_PKG $(dpkg-query -W -f='${Version}' $SRC_PKG)"
fi

if ! qemu_ok; then
	if [ ! -f "$QEMU_LIST" ]; then
		add_suite "$QEMU_LIST" bookworm-backports
		echo "setup: added bookworm-backports ($mirror)"
	fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		-t bookworm-backports $QEMU_PKGS >/dev/null
	qemu_ok || { echo "setup: bookworm-backports gave no qemu-system-x86 >= $QEMU_MIN with seabios >= $SEABIOS_MIN" >&2; exit 1; }
	echo "setup: installed qemu-system-x86 $(dpkg-query -W -f='${Version}' qemu-system-x86)," \
		"seabios $(dpkg-query -W -f='${Version}' seabios)"
fi

command -v rustc >/dev/null 2>&1 || { echo "setup: no rustc; install rustup first" >&2; exit 1; }
rust_src_ok || rustup component add rust-src
if ! bindgen_ok; then
	LIBCLANG_PATH=/usr/lib/llvm-19/lib cargo install bindgen-cli --locked --version "$BINDGEN_VERSION"
fi
nextest_ok || cargo install cargo-nextest --locked
if ! virt_firmware_ok; then
	rm -rf "$venv"
	mkdir -p "$cache"
	python3 -m venv "$venv"
	"$venv/bin/pip" install -q "virt-firmware==$VIRT_FIRMWARE_VERSION"
	virt_firmware_ok || { echo "setup: virt-firmware $VIRT_FIRMWARE_VERSION did not install into $venv" >&2; exit 1; }
	echo "setup: installed virt-firmware $VIRT_FIRMWARE_VERSION into $venv"
fi
mkdir -p "$cache" && echo $(($(date +%s) - setup_start)) >"$cache/setup-seconds"
echo "setup: done in $(cat "$cache/setup-seconds") s ($(rustc --version | cut -d' ' -f1-2), bindgen $(bindgen --version | awk '{print $2}'))"
