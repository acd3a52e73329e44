#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# A Debian build root with the compilers Debian's own Rust-enabled kernels
# were built with, for hosts that are not that Debian themselves (the
# project's machines and CI are Debian 12): Debian 13 ("trixie", with
# trixie-backports: gcc-14, rustc 1.85.1, bindgen 0.71.1) for the +deb13
# kernels, Debian testing ("forky": gcc-16, rustc 1.97.1, bindgen 0.72.1) or
# unstable ("sid", the same compilers) for the +deb14 ones.
#
#   scripts/debian-root.sh [--suite forky|sid]           make it if missing; print its path
#   scripts/debian-root.sh [--suite forky] --print-dir   print its path, make nothing
#   scripts/debian-root.sh [--suite forky] --run CMD...  run CMD inside it (chroot, /proc
#                                        mounted, the clone and the cache at the same paths)
#   scripts/debian-root.sh --packaging [--print-dir | --run CMD...]
#                                        the same for the Debian 13 root that builds
#                                        the project's .debs (make deb)
#
# The suite is trixie unless --suite says forky or sid (or $RER_SUITE does).
#
# The packaging root is a root of its own, not the trixie build root with the
# packaging tools added: adding them would change that root's key, and every
# machine would debootstrap it again and reinstall each kernel's headers and
# linux-source in it (the KDIRs themselves are keyed by package and compiler
# versions, not by the root, and would stay). As its own root it costs a cold
# run one more debootstrap (in make check's deb step, in the test kernel's
# leg), and a warm run nothing. It holds build-essential, lintian
# and the Build-Depends of debian/control (apt-get build-dep), and no more, so
# that dpkg-buildpackage's own check of the Build-Depends is a real one; the
# trixie build root stays the plain machine the package is installed on
# (qemu-tests/tests/deb_install.rs).
#
# Made with debootstrap into the cache ($EMERGENCY_RESET_CACHE, else
# $XDG_CACHE_HOME/rust_emergency_reset, else ~/.cache/rust_emergency_reset),
# keyed by RECIPE and the package list below. Needs root (debootstrap, chroot).
# Its apt lists are refreshed when older than a day, so the newest kernel in
# trixie-backports is seen. Nothing runs on the host's kernel but compilers.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
suite=${RER_SUITE:-trixie}
packaging=
if [ "${1:-}" = --suite ]; then
	suite=${2:-}
	shift 2
fi
if [ "${1:-}" = --packaging ]; then
	packaging=1
	shift
fi
# The build packages; the compiler is the suite's.
pkgs() {
	printf 'rustc rust-src bindgen libclang-dev %s make bc flex bison libelf-dev libssl-dev\n cpio xz-utils kmod dwarves python3 dkms ca-certificates' "$1"
}
case "$suite" in
trixie)
	RECIPE="debootstrap minbase trixie; trixie trixie-updates trixie-security trixie-backports; v1"
	PKGS=$(pkgs gcc-14)
	suites="trixie trixie-updates trixie-backports"
	security=trixie-security
	name=debian13
	;;
forky)
	RECIPE="debootstrap minbase forky (sid's script); forky forky-security; no Valid-Until; v1"
	PKGS=$(pkgs gcc-16)
	suites=forky
	security=forky-security
	name=debian14
	;;
sid)
	RECIPE="debootstrap minbase sid; sid; no Valid-Until; v1"
	PKGS=$(pkgs gcc-16)
	suites=sid
	security=
	name=debian-sid
	;;
*)
	echo "debian-root: unknown suite '$suite' (trixie for +deb13 kernels, forky or sid for +deb14)" >&2
	exit 2
	;;
esac
if [ -n "$packaging" ]; then
	[ "$suite" = trixie ] || {
		echo "debian-root: --packaging: the packages are built on Debian 13 (trixie) only" >&2
		exit 2
	}
	# What builds and checks a package; then debian/control's Build-Depends,
	# installed by apt-get build-dep. The field is part of the key: a change to
	# it makes a new root.
	builddeps=$(awk '/^Build-Depends:/ {f = 1; print; next} f && /^[ \t]/ {print; next} {f = 0}' \
		"$here/../debian/control")
	RECIPE="debootstrap minbase trixie; trixie trixie-updates trixie-security trixie-backports; packaging: apt-get build-dep of $builddeps; v2"
	PKGS="build-essential lintian"
	name=debian13-packaging
fi

log() { echo "debian-root: $*" >&2; }

cache=${EMERGENCY_RESET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rust_emergency_reset}
key=$(printf '%s\n%s\n' "$RECIPE" "$PKGS" | sha256sum | cut -c1-12)
root="$cache/$name-root-$key"

# Runs "$@" inside the root: a private mount namespace (the mounts vanish with
# the command, whatever happens), /proc and /dev mounted, the clone (this
# script's tree) and the cache at their host paths.
in_root() {
	local repo
	repo=$(cd "$here/.." && pwd)
	unshare --mount --propagation private -- sh -ec '
		root=$1 repo=$2 cache=$3; shift 3
		mount -t proc proc "$root/proc"
		mount --bind /dev "$root/dev"
		for d in "$repo" "$cache"; do
			mkdir -p "$root$d"
			mount --bind "$d" "$root$d"
		done
		cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
		exec chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin \
			LANG=C.UTF-8 EMERGENCY_RESET_CACHE="$cache" "$@"
	' sh "$root" "$repo" "$cache" "$@"
}

mode=make
case "${1:-}" in
--print-dir)
	echo "$root"
	exit 0
	;;
--run)
	shift
	mode=run
	;;
"") ;;
*)
	echo "usage: $0 [--suite trixie|forky|sid] [--packaging] [--print-dir | --run CMD...]" >&2
	exit 2
	;;
esac

[ "$(id -u)" = 0 ] || {
	log "making the Debian 13 build root needs root (debootstrap, chroot): sudo $0"
	exit 1
}
command -v debootstrap >/dev/null || { log "debootstrap missing: run scripts/setup.sh as root"; exit 1; }
mkdir -p "$cache"
exec 9>"$root.lock"
flock 9

mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(awk '/^deb / && $2 ~ /debian\/?$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian

if [ ! -f "$root/.ready" ]; then
	start=$(date +%s)
	rm -rf "$root"
	log "debootstrap $suite into $root ($mirror)"
	# Debian 12's debootstrap has no script for forky: sid's is the one for
	# testing and unstable.
	script=
	[ -e "/usr/share/debootstrap/scripts/$suite" ] || script=/usr/share/debootstrap/scripts/sid
	debootstrap --variant=minbase "$suite" "$root" "$mirror" $script >"$root.debootstrap.log" 2>&1 || {
		tail -20 "$root.debootstrap.log" >&2
		log "debootstrap failed (log: $root.debootstrap.log)"
		exit 1
	}
	cat >"$root/etc/apt/sources.list.d/debian.sources" <<SRC
Types: deb
URIs: $mirror
Suites: $suites
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

SRC
	# Unstable has no security suite.
	[ -z "$security" ] || cat >>"$root/etc/apt/sources.list.d/debian.sources" <<SRC

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: $security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
	rm -f "$root/etc/apt/sources.list"
	# The registry's testing Release file can be past its Valid-Until (seen for
	# forky, by weeks): apt would refuse the whole suite. The archive's
	# signature is still checked; only the freshness date is not.
	[ "$suite" = trixie ] || echo 'Acquire::Check-Valid-Until "false";' \
		>"$root/etc/apt/apt.conf.d/99emergency-reset-no-valid-until"
	# No daemons in the root; no documentation either.
	printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
	chmod 755 "$root/usr/sbin/policy-rc.d"
	in_root apt-get update -qq
	in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		$PKGS >"$root.apt.log" 2>&1 || {
		tail -20 "$root.apt.log" >&2
		log "installing the build packages failed (log: $root.apt.log)"
		exit 1
	}
	if [ -n "$packaging" ]; then
		in_root env DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -qq "$(cd "$here/.." && pwd)" \
			>>"$root.apt.log" 2>&1 || {
			tail -20 "$root.apt.log" >&2
			log "installing debian/control's Build-Depends failed (log: $root.apt.log)"
			exit 1
		}
	fi
	echo $(($(date +%s) - start)) >"$root.seconds"
	touch "$root/.ready"
	log "made in $(cat "$root.seconds") s: $(in_root rustc --version)"
elif [ -z "$(find "$root/var/lib/apt/lists" -maxdepth 1 -name '*Packages*' -mmin -1440 | head -1)" ]; then
	log "refreshing the apt lists (older than a day)"
	in_root apt-get update -qq
fi
flock -u 9
if [ "$mode" = run ]; then
	in_root "$@"
else
	echo "$root"
fi
