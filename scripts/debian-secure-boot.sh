#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Debian 13's signed boot chain for the QEMU Secure Boot machine
# (qemu-tests/src/firmware.rs): shim as Microsoft signed it, its MokManager,
# and grub as Debian signed it, fetched with apt-get download inside the
# Debian 13 build root (scripts/debian-root.sh), never installed.
#
#   debian-secure-boot.sh    fetch them if missing; print their directory
#
# The directory (in the cache, keyed by the three packages' versions) holds
#   shimx64.efi  from shim-signed                (shimx64.efi.signed)
#   mmx64.efi    from shim-helpers-amd64-signed  (mmx64.efi.signed: MokManager,
#                which shim starts only when a MOK request is pending)
#   grubx64.efi  from grub-efi-amd64-signed      (grubx64.efi.signed)
#   versions     the packages and versions, one a line
# fbx64.efi (shim's fallback) is left out on purpose: without it shim starts
# grubx64.efi from its own directory.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
log() { echo "debian-secure-boot: $*" >&2; }
die() {
	log "$*"
	exit 1
}

cache=${EMERGENCY_RESET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rust_emergency_reset}
pkgs="shim-signed shim-helpers-amd64-signed grub-efi-amd64-signed"

root=$("$here/debian-root.sh")
versions=$("$here/debian-root.sh" --run apt-cache policy $pkgs |
	awk '/^[a-z]/ {p=$1; sub(":$", "", p)} /Candidate:/ {print p "=" $2}')
for p in $pkgs; do
	v=$(echo "$versions" | sed -n "s/^$p=//p")
	[ -n "$v" ] && [ "$v" != "(none)" ] || die "Debian 13 has no package $p"
done
key=$(echo "$versions" | sha256sum | cut -c1-12)
out="$cache/debian-secure-boot-$(echo "$versions" | sed -n 's/^shim-signed=//p' |
	tr -c 'A-Za-z0-9.+\n-' _)-$key"
exec 9>"$out.lock"
flock 9
if [ ! -f "$out/versions" ]; then
	rm -rf "$out"
	mkdir -p "$out/deb"
	# One apt at a time in the build root (the lock debian-kdir.sh's apt_lock takes).
	exec 7>"$root.apt.lock"
	flock 7
	# shellcheck disable=SC2086
	"$here/debian-root.sh" --run sh -ec "cd '$out/deb'
		apt-get download -q -o APT::Sandbox::User=root $(echo $versions) >/dev/null
		for d in *.deb; do dpkg-deb -x \$d x; done"
	exec 7>&-
	find_one() {
		local f
		f=$(find "$out/deb/x" -name "$1" | head -1)
		[ -n "$f" ] || die "no $1 in $2"
		cp "$f" "$out/$3"
	}
	find_one shimx64.efi.signed shim-signed shimx64.efi
	find_one mmx64.efi.signed shim-helpers-amd64-signed mmx64.efi
	find_one grubx64.efi.signed grub-efi-amd64-signed grubx64.efi
	rm -rf "$out/deb"
	echo "$versions" >"$out/versions.tmp"
	mv "$out/versions.tmp" "$out/versions"
fi
log "$(tr '\n' ' ' <"$out/versions"): $out"
echo "$out"
