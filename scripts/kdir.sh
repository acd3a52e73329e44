#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Print the kernel build directory to build the module against: the running
# kernel's, if it carries Rust metadata (rust/libkernel.rmeta), otherwise the
# project's test kernel (scripts/build-kernel.sh; built on demand by make).
#
#   kdir.sh --debian-release   the running kernel's release if it is Debian's
#                              own Rust-enabled kernel without Rust metadata
#                              (then make uses KRELEASE=it), else nothing
set -eu
running=/lib/modules/$(uname -r)/build
if [ "${1:-}" = "--debian-release" ]; then
	if [ ! -f "$running/rust/libkernel.rmeta" ] && [ -f "$running/.config" ] &&
		grep -qx 'CONFIG_RUST=y' "$running/.config" &&
		case "$(uname -r)" in *+deb[0-9]*-*) true ;; *) false ;; esac; then
		uname -r
	fi
	exit 0
fi
if [ -f "$running/rust/libkernel.rmeta" ]; then
	readlink -f "$running"
else
	exec "$(dirname "$0")/build-kernel.sh" --print-dir
fi
