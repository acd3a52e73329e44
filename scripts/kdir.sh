#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Print the kernel build directory to build the module against: the running
# kernel's, if it carries Rust metadata (rust/libkernel.rmeta), otherwise the
# project's test kernel (scripts/build-kernel.sh; built on demand by make).
set -eu
running=/lib/modules/$(uname -r)/build
if [ -f "$running/rust/libkernel.rmeta" ]; then
	readlink -f "$running"
else
	exec "$(dirname "$0")/build-kernel.sh" --print-dir
fi
