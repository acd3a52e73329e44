#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the Rust-enabled x86_64 test kernel the QEMU tests boot, and print
# its build directory (the KDIR modules are built against) on stdout.
#
#   scripts/build-kernel.sh [--print-dir] [--plain] [EXTRA_FRAGMENT...]
#
# --print-dir prints where it is (or will be) and builds nothing. The tree is
# unpacked from linux-source-7.3 and configured as allnoconfig +
# scripts/test-kernel.config + scripts/debug.config (lock checking and kCFI:
# the kernel `make check` boots) + any extra fragments; --plain leaves out
# debug.config (the production-like kernel `make bench` measures on).  The result lives in a
# cache outside the clone, keyed by everything that produced it: the source
# package version, the fragments, RECIPE below (bump it when the way the
# kernel is built changes), rustc, bindgen and clang.  A second run with the
# same key prints the directory and does nothing else.
#
# Cache: $EMERGENCY_RESET_CACHE, else $XDG_CACHE_HOME/rust_emergency_reset,
# else ~/.cache/rust_emergency_reset.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
export PATH="$HOME/.cargo/bin:$PATH"
export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-19/lib}
SRC_TAR=/usr/src/linux-source-7.3.tar.xz
LLVM_SUFFIX=-19
RECIPE="allnoconfig+fragments; bzImage modules; v1"

log() { echo "build-kernel: $*" >&2; }

[ -f "$SRC_TAR" ] || { log "$SRC_TAR missing: run scripts/setup.sh as root"; exit 1; }

print_only=0 plain=0
while :; do
	case "${1:-}" in
	--print-dir) print_only=1 ;;
	--plain) plain=1 ;;
	*) break ;;
	esac
	shift
done
fragments=("$here/test-kernel.config")
[ "$plain" = 1 ] || fragments+=("$here/debug.config")
for f in "$@"; do
	[ -f "$f" ] || { log "no such fragment: $f"; exit 1; }
	fragments+=("$(readlink -f "$f")")
done

pkgver=$(dpkg-query -W -f='${Version}' linux-source-7.3 2>/dev/null || stat -c %Y "$SRC_TAR")
key=$({
	echo "$pkgver"
	cat "${fragments[@]}"
	echo "$RECIPE"
	rustc --version
	bindgen --version
	clang$LLVM_SUFFIX --version | head -1
} | sha256sum | cut -c1-12)

cache=${EMERGENCY_RESET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rust_emergency_reset}
out="$cache/kernel-${pkgver//[^A-Za-z0-9.+-]/_}-$key"
if [ "$print_only" = 1 ]; then
	echo "$out/linux"
	exit 0
fi
mkdir -p "$cache"

exec 9>"$out.lock"
flock 9

if [ -f "$out/.built" ]; then
	log "cached: $out"
	echo "$out/linux"
	exit 0
fi

start=$(date +%s)
rm -rf "$out"
mkdir -p "$out"
log "unpacking $SRC_TAR ($pkgver) into $out"
tar -C "$out" -xf "$SRC_TAR"
mv "$out"/linux-source-7.3 "$out/linux"
cd "$out/linux"

mk() { make -s LLVM=$LLVM_SUFFIX "$@"; }

mk allnoconfig >/dev/null
scripts/kconfig/merge_config.sh -m -O . .config "${fragments[@]}" >/dev/null
mk olddefconfig >/dev/null

# Every requested option must have survived dependency resolution.
bad=0
for f in "${fragments[@]}"; do
	while IFS= read -r line; do
		case "$line" in
		CONFIG_*=*) grep -qxF "$line" .config || { log "not applied: $line"; bad=1; } ;;
		"# CONFIG_"*" is not set") grep -qxF "$line" .config || { log "not applied: $line"; bad=1; } ;;
		esac
	done <"$f"
done
[ "$bad" = 0 ] || { log "config fragment not applied: a dependency is missing (for CONFIG_RUST: 'make LLVM=$LLVM_SUFFIX rustavailable' in the tree)"; exit 1; }

log "building bzImage and modules with $(nproc) jobs (log: $out/build.log)"
if ! make LLVM=$LLVM_SUFFIX -j"$(nproc)" bzImage modules >"$out/build.log" 2>&1; then
	tail -40 "$out/build.log" >&2
	log "kernel build failed"
	exit 1
fi
echo $(($(date +%s) - start)) >"$out/build-seconds"
touch "$out/.built"
log "built in $(cat "$out/build-seconds") s: $out/linux/arch/x86/boot/bzImage"
echo "$out/linux"
