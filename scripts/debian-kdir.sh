#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# A KDIR for Debian's own Rust-enabled kernel: Debian's headers tree plus the
# Rust metadata (rust/*.rmeta, rust/*.so, scripts/target.json) that Debian's
# headers package does not ship, built from linux-source-<series> with that
# release's .config and the compilers it names (gcc-14, rustc, bindgen).
#
#   debian-kdir.sh RELEASE               make the KDIR if missing; print it
#   debian-kdir.sh --print-dir RELEASE   print where it is (or will be); make nothing
#   debian-kdir.sh --make RELEASE ARG... make -C KDIR ARG... with that kernel's compilers
#   debian-kdir.sh --resolve [--suite forky] [FLAVOUR...]
#                                        the newest kernel of each FLAVOUR (default
#                                        amd64) in trixie-backports (or forky), one a line
#   debian-kdir.sh --vmlinuz RELEASE     Debian's signed vmlinuz of RELEASE (apt-get
#                                        download, never installed); print its path
#   debian-kdir.sh --net-modules RELEASE the modules of RELEASE's virtio NIC, for the
#                                        QEMU guests with a network; print their directory
#
# A +deb13 release is Debian 13's (trixie, trixie-backports), a +deb14 one
# Debian testing's (forky): each needs its suite's compilers. On that Debian
# with the packages installed it works natively (DKMS calls it so). On any
# other host (Debian 12: the project's machines, CI) it runs itself inside
# that suite's build root of scripts/debian-root.sh, installing the
# headers and the source there. Nothing is written into package-owned paths:
# everything goes to the cache ($EMERGENCY_RESET_CACHE, else
# $XDG_CACHE_HOME/rust_emergency_reset, else ~/.cache/rust_emergency_reset),
# keyed by the package versions and the compilers.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
RECIPE="debian headers + rust/*.rmeta *.so + scripts/target.json from make rust/; v1"

log() { echo "debian-kdir: $*" >&2; }
die() {
	echo "debian-kdir: $*" >&2
	exit 1
}

cache=${EMERGENCY_RESET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rust_emergency_reset}

# Debian 13 with RELEASE's headers: build here. Anything else: the build root.
# (Where the release is $r, or the suite given.) Unstable calls itself by
# testing's name.
native() {
	local want=${suite:-$(suite_of "$r")}
	[ "$want" = sid ] && want=forky
	[ -f /etc/os-release ] && grep -qx "VERSION_CODENAME=$want" /etc/os-release
}

# The release's source package: 7.3.4+deb13-amd64 -> linux-source-7.3.
source_pkg() {
	local r=$1
	[[ $r =~ ^([0-9]+\.[0-9]+)[.0-9]*\+deb1[34]-[a-z0-9-]+$ ]] ||
		die "$r is no Debian 13 or testing kernel release (like 7.3.4+deb13-amd64, 7.2.12+deb14-amd64)"
	echo "linux-source-${BASH_REMATCH[1]}"
}

# The suite whose compilers built the release: +deb13 trixie; +deb14 forky
# (testing), or sid for a release forky does not have (unstable's newer one);
# $RER_SUITE decides if set.
suite_of() {
	case "$1" in
	*+deb13-*) echo trixie ;;
	*+deb14-*)
		if [ -n "${RER_SUITE:-}" ]; then
			echo "$RER_SUITE"
		else
			local in_forky
			if [ -f /etc/os-release ] && grep -qx VERSION_CODENAME=forky /etc/os-release; then
				in_forky=$(apt-cache policy "linux-headers-$1" 2>/dev/null)
			else
				"$here/debian-root.sh" --suite forky >/dev/null
				in_forky=$("$here/debian-root.sh" --suite forky --run apt-cache policy "linux-headers-$1" 2>/dev/null)
			fi
			case "$in_forky" in
			*"Candidate: (none)"* | "") echo sid ;;
			*) echo forky ;;
			esac
		fi
		;;
	*) source_pkg "$1" >/dev/null ;;
	esac
}

# Runs scripts/debian-root.sh for the suite of release $r (or $suite).
in_root() { "$here/debian-root.sh" --suite "${suite:-$(suite_of "$r")}" "$@"; }

# Where the KDIR of RELEASE is: a stable name, linked to the keyed build.
link_of() { echo "$cache/debian-kdir-$1"; }

# Checks that this Debian 13 system has everything RELEASE's KDIR needs;
# prints its key. One error names every missing or mismatched package.
check_native() {
	local r=$1 hdr=/usr/src/linux-headers-$1 src hver sver problems=() want have
	src=$(source_pkg "$r")
	if [ ! -f "$hdr/.config" ]; then
		die "no $hdr: apt-get install linux-headers-$r (from $(suite_of "$r")$([ "$(suite_of "$r")" = trixie ] && echo -backports))"
	fi
	grep -qx 'CONFIG_RUST=y' "$hdr/.config" ||
		die "kernel $r is built without CONFIG_RUST=y: rust_emergency_reset needs a Rust-enabled kernel (Debian 13: linux-image-amd64 from trixie-backports; testing's own)"
	hver=$(dpkg-query -W -f='${Version}' "linux-headers-$r")
	sver=$(dpkg-query -W -f='${Version}' "$src" 2>/dev/null || true)
	[ "$sver" = "$hver" ] || problems+=("$src=$hver (installed: ${sver:-none})")
	want=$(sed -n 's/^CONFIG_RUSTC_VERSION_TEXT="\(.*\)"$/\1/p' "$hdr/.config")
	have=$(rustc --version 2>/dev/null || true)
	[ "$have" = "$want" ] || problems+=("rustc printing '$want' (installed: '${have:-none}')")
	[ -d /usr/lib/rustlib/src/rust/library ] || problems+=("rust-src")
	want=$(sed -n 's/^CONFIG_BINDGEN_VERSION_TEXT="\(.*\)"$/\1/p' "$hdr/.config")
	have=$(bindgen --version 2>/dev/null || true)
	[ "$have" = "$want" ] || problems+=("bindgen printing '$want' (installed: '${have:-none}')")
	want=$(sed -n 's/^CONFIG_CC_VERSION_TEXT="\(.*\)"$/\1/p' "$hdr/.config")
	have=$(${want%% *} --version 2>/dev/null | head -1 || true)
	[ "$have" = "$want" ] || problems+=("${want%% *} printing '$want' (installed: '${have:-none}')")
	for p in make bc flex bison libelf-dev libssl-dev libclang-dev xz-utils python3; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			problems+=("$p")
	done
	if [ ${#problems[@]} -gt 0 ]; then
		die "building for $r needs: ${problems[*]}; e.g. apt-get install $([ "$(suite_of "$r")" = trixie ] && echo "-t trixie-backports ")linux-headers-$r $src=$hver rustc rust-src bindgen libclang-dev ${want%% *} make bc flex bison libelf-dev libssl-dev xz-utils python3"
	fi
	{
		echo "$RECIPE"
		echo "$hver"
		echo "$sver"
		rustc --version
		bindgen --version
		${want%% *} --version | head -1
	} | sha256sum | cut -c1-12
}

# Builds RELEASE's KDIR natively (Debian 13) unless the cache has it; prints it.
make_native() {
	local r=$1 hdr=/usr/src/linux-headers-$1 key out kdir src cc kbuild start
	# Explicitly: make_native runs inside $(...) (--make), where bash clears
	# set -e, and check_native's refusal would go unheeded.
	key=$(check_native "$r") || exit 1
	out="$cache/debian-kdir-$r-$key"
	kdir="$out/kdir"
	mkdir -p "$cache"
	exec 8>"$out.lock"
	flock 8
	if [ -f "$out/.built" ]; then
		ln -sfn "$(basename "$out")" "$(link_of "$r")"
		echo "$kdir"
		return
	fi
	start=$(date +%s)
	rm -rf "$out"
	mkdir -p "$out"
	src=$(source_pkg "$r")
	cc=$(sed -n 's/^CONFIG_CC_VERSION_TEXT="\([^ ]*\) .*$/\1/p' "$hdr/.config")
	log "$r: Rust metadata from $src $(dpkg-query -W -f='${Version}' "$src"), $(rustc --version | cut -d' ' -f1-2), $cc (log: $out/build.log)"
	tar -C "$out" -xf "/usr/src/$src.tar.xz"
	mv "$out/$src" "$out/src"
	cp "$hdr/.config" "$out/src/.config"
	(
		cd "$out/src"
		mk() { make ARCH=x86 CROSS_COMPILE=x86_64-linux-gnu- CC="$cc" "$@"; }
		mk olddefconfig
		# The tree must be configured exactly as Debian's build was.
		diff <(grep -v '^#' "$hdr/.config") <(grep -v '^#' .config) ||
			{ echo "olddefconfig changed $r's .config"; exit 1; }
		mk -j"$(nproc)" prepare
		cmp include/generated/rustc_cfg "$hdr/include/generated/rustc_cfg" ||
			{ echo "rustc_cfg differs from the headers'"; exit 1; }
		mk -j"$(nproc)" rust/
	) >"$out/build.log" 2>&1 || {
		tail -30 "$out/build.log" >&2
		die "$r: building the Rust metadata failed (log: $out/build.log)"
	}
	# The KDIR: the headers tree with its own Makefile path, a copy of the kbuild
	# scripts (target.json goes beside them) and the metadata.
	kbuild=$(readlink -f "$hdr/scripts")
	cp -a "$hdr/." "$kdir/"
	rm "$kdir/scripts" "$kdir/tools"
	cp -a "$kbuild" "$kdir/scripts"
	ln -s "$(readlink -f "$hdr/tools")" "$kdir/tools"
	cp "$out/src/scripts/target.json" "$kdir/scripts/"
	sed -i "s|^KBUILD_OUTPUT=.*|KBUILD_OUTPUT=$kdir|" "$kdir/Makefile"
	mkdir "$kdir/rust"
	cp "$out"/src/rust/*.rmeta "$out"/src/rust/*.so "$kdir/rust/"
	rm -rf "$out/src"
	echo $(($(date +%s) - start)) >"$out/build-seconds"
	touch "$out/.built"
	ln -sfn "$(basename "$out")" "$(link_of "$r")"
	log "$r: KDIR made in $(cat "$out/build-seconds") s: $kdir"
	echo "$kdir"
}

# One apt at a time in the build root of release $r, on fd 7 until it is
# closed: make check prepares the next kernels in the background while a leg
# makes its own.
apt_lock() {
	exec 7>"$(in_root --print-dir).apt.lock"
	flock 7
}

# In the build root: RELEASE's headers and the source of the same version.
root_packages() {
	local r=$1 src want have
	src=$(source_pkg "$r")
	apt_lock
	want=$(in_root --run apt-cache policy "linux-headers-$r" |
		awk '/Candidate:/ {print $2}')
	[ -n "$want" ] && [ "$want" != "(none)" ] ||
		die "Debian 13 has no package linux-headers-$r (see: $0 --resolve)"
	have=$(in_root --run dpkg-query -W -f='${Version} ' "linux-headers-$r" "$src" \
		2>/dev/null || true)
	if [ "$have" != "$want $want " ]; then
		log "installing linux-headers-$r and $src=$want in the build root"
		in_root --run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends "linux-headers-$r" "$src=$want" >/dev/null ||
			die "the build root cannot install linux-headers-$r with $src=$want (both from $(suite_of "$r"), same version)"
	fi
	exec 7>&-
}

ensure() {
	local r=$1
	if native; then
		make_native "$r"
	else
		[ -x "$here/debian-root.sh" ] ||
			die "building for $r needs Debian $(suite_of "$r") with its packages, or the project's scripts/debian-root.sh"
		in_root >/dev/null
		root_packages "$r"
		in_root --run "$here/debian-kdir.sh" "$r"
	fi
}

case "${1:-}" in
--print-dir)
	[ -n "${2:-}" ] || die "usage: $0 --print-dir RELEASE"
	if [ -e "$(link_of "$2")" ]; then
		echo "$(readlink -f "$(link_of "$2")")/kdir"
	else
		echo "$(link_of "$2")/kdir"
	fi
	;;
--make)
	[ -n "${2:-}" ] || die "usage: $0 --make RELEASE MAKE-ARGS..."
	r=$2
	shift 2
	kdir=$(ensure "$r")
	if native; then
		exec make -C "$kdir" "$@"
	fi
	exec "$here/debian-root.sh" --suite "$(suite_of "$r")" --run make -C "$kdir" "$@"
	;;
--resolve)
	shift
	suite=trixie
	if [ "${1:-}" = --suite ]; then
		suite=$2
		shift 2
	fi
	[ $# -gt 0 ] || set -- amd64
	case "$suite" in
	trixie) from=trixie-backports deb=deb13 ;;
	forky) from=forky deb=deb14 ;;
	*) die "--resolve: unknown suite $suite (trixie or forky)" ;;
	esac
	# linux-headers-FLAVOUR of the suite depends on the newest release's headers.
	q='f=$1 from=$2 deb=$3
	   v=$(apt-cache madison linux-headers-$f | awk -F" [|] " -v s="$from" "index(\$3, \" \" s \"/\") {gsub(/ /, \"\", \$2); print \$2; exit}")
	   [ -n "$v" ] && apt-cache depends "linux-headers-$f=$v" |
		sed -n "s/^ *Depends: linux-headers-\(.*+$deb-$f\)$/\1/p"'
	run=()
	native || { in_root >/dev/null; run=(in_root --run); }
	for f in "$@"; do
		r=$("${run[@]}" sh -c "$q" sh "$f" "$from" "$deb")
		[ -n "$r" ] || die "no $f kernel in $from (is it in the apt sources?)"
		echo "$r"
	done
	;;
--vmlinuz | --net-modules)
	[ -n "${2:-}" ] || die "usage: $0 $1 RELEASE"
	r=$2
	run=()
	native || { in_root >/dev/null; run=(in_root --run); }
	v=$("${run[@]}" apt-cache policy "linux-binary-$r" | awk '/Candidate:/ {print $2}')
	[ -n "$v" ] && [ "$v" != "(none)" ] || die "Debian 13 has no package linux-binary-$r"
	out="$cache/debian-binary-$r-${v//[^A-Za-z0-9.+-]/_}"
	exec 9>"$out.lock"
	flock 9
	if [ ! -f "$out/vmlinuz" ] || [ ! -f "$out/net-modules/order" ]; then
		rm -rf "$out"
		mkdir -p "$out/deb" "$out/net-modules"
		# The kernel, and the modules package for the QEMU guests' virtio NIC.
		[ ${#run[@]} = 0 ] || apt_lock
		"${run[@]}" sh -ec "cd '$out/deb'; apt-get download -q -o APT::Sandbox::User=root \
			'linux-binary-$r=$v' 'linux-modules-$r=$v' >/dev/null
			for d in *.deb; do dpkg-deb -x \$d x; done"
		exec 7>&-
		mods="$out/deb/x/usr/lib/modules/$r"
		# virtio_net after what it depends on (modinfo's depends=, recursively),
		# uncompressed; built-in ones (virtio_pci on Debian) are not modules here.
		order=()
		add() {
			local name=$1 f dep
			[[ " ${order[*]} " == *" $name.ko "* ]] && return
			f=$(find "$mods/kernel" -name "$name.ko*" | head -1)
			[ -n "$f" ] || die "$r: no module $name in linux-modules-$r"
			case "$f" in
			*.ko.xz) xz -dc "$f" >"$out/net-modules/$name.ko" ;;
			*.ko.zst) zstd -dcq "$f" >"$out/net-modules/$name.ko" ;;
			*.ko) cp "$f" "$out/net-modules/$name.ko" ;;
			*) die "$f: unknown compression" ;;
			esac
			for dep in $(/sbin/modinfo -F depends "$out/net-modules/$name.ko" | tr ',' ' '); do
				add "$dep"
			done
			order+=("$name.ko")
		}
		add virtio_net
		cp "$mods/vmlinuz" "$out/vmlinuz.tmp"
		rm -rf "$out/deb"
		printf '%s\n' "${order[@]}" >"$out/net-modules/order"
		mv "$out/vmlinuz.tmp" "$out/vmlinuz"
	fi
	if [ "$1" = --vmlinuz ]; then
		log "$r: Debian's signed vmlinuz, linux-binary-$r $v: $out/vmlinuz"
		echo "$out/vmlinuz"
	else
		log "$r: the virtio NIC's modules of linux-modules-$r $v: $(tr '\n' ' ' <"$out/net-modules/order")"
		echo "$out/net-modules"
	fi
	;;
-*)
	die "usage: see the head of $0"
	;;
"")
	die "usage: $0 RELEASE (e.g. 7.3.4+deb13-amd64; $0 --resolve prints the newest)"
	;;
*)
	ensure "$1"
	;;
esac
