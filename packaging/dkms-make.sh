#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# DKMS's build command for rust_emergency_reset (see dkms.conf):
#   sh dkms-make.sh KERNEL_SOURCE_DIR KERNEL_RELEASE [ignored...]
#
# - A kernel tree with Rust metadata (rust/libkernel.rmeta): built against it.
#   DKMS appends "CC=clang LD=ld.lld" for a clang-built kernel; that names the
#   wrong compiler where LLVM is installed with a version suffix (clang-19), so
#   those words are ignored: the LLVM version is taken from the kernel's own
#   configuration (CONFIG_CLANG_VERSION) instead, as Kbuild's LLVM=-N expects.
# - Debian's own Rust-enabled kernel, whose headers ship no Rust metadata:
#   debian-kdir.sh makes it once per kernel (in /var/cache/rust_emergency_reset)
#   from linux-source-<series> with the kernel's own compilers, then builds.
# A kernel without CONFIG_RUST=y never gets here: dkms.conf's
# BUILD_EXCLUSIVE_CONFIG makes DKMS refuse it (exit 77), and its autoinstall
# skip it, so installing such a kernel does not fail.
set -eu
kdir=$1
kver=$2
if [ ! -f "$kdir/rust/libkernel.rmeta" ]; then
	case "$kver" in
	*+deb[0-9]*-*)
		export EMERGENCY_RESET_CACHE="${EMERGENCY_RESET_CACHE:-/var/cache/rust_emergency_reset}"
		exec bash ./debian-kdir.sh --make "$kver" M="$PWD" modules
		;;
	esac
	echo "rust_emergency_reset: $kdir has no Rust metadata (rust/libkernel.rmeta): build the kernel tree with CONFIG_RUST=y and keep rust/" >&2
	exit 1
fi
ver=$(sed -n 's/^CONFIG_CLANG_VERSION=\([0-9]*\)$/\1/p' "$kdir/.config")
llvm=
if [ -n "$ver" ]; then
	llvm=LLVM=1
	command -v "clang-$((ver / 10000))" >/dev/null 2>&1 && llvm=LLVM=-$((ver / 10000))
fi
exec make -C "$kdir" M="$PWD" $llvm modules
