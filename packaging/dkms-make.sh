#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# DKMS's build command for rust_emergency_reset (see dkms.conf):
#   sh dkms-make.sh KERNEL_SOURCE_DIR [ignored...]
#
# DKMS appends "CC=clang LD=ld.lld" for a clang-built kernel; that names the
# wrong compiler where LLVM is installed with a version suffix (clang-19),
# so those words are ignored: the LLVM version is taken from the kernel's own
# configuration (CONFIG_CLANG_VERSION) instead, as Kbuild's LLVM=-N expects.
set -eu
kdir=$1
ver=$(sed -n 's/^CONFIG_CLANG_VERSION=\([0-9]*\)$/\1/p' "$kdir/.config")
llvm=1
if [ -n "$ver" ] && command -v "clang-$((ver / 10000))" >/dev/null 2>&1; then
	llvm=-$((ver / 10000))
fi
exec make -C "$kdir" M="$PWD" LLVM="$llvm" modules
