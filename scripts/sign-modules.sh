#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Sign modules with a kernel tree's own build key, as kbuild's modules_install
# does, when the tree has one (the test kernel generates certs/signing_key.pem
# at build time); a kernel in lockdown loads only signed modules.
#
#   sign-modules.sh KDIR FILE.ko...
#
# A module that already carries a signature is left as it is; a tree without
# a key (Debian's headers: Debian's key stays with Debian) signs nothing.
set -eu
kdir=$1
shift
key=$kdir/certs/signing_key.pem
cert=$kdir/certs/signing_key.x509
[ -f "$key" ] && [ -f "$cert" ] || exit 0
hash=$(sed -n 's/^CONFIG_MODULE_SIG_HASH="\(.*\)"$/\1/p' "$kdir/.config")
for ko in "$@"; do
	if tail -c 28 "$ko" | grep -q '~Module signature appended~'; then
		continue
	fi
	"$kdir/scripts/sign-file" "${hash:-sha512}" "$key" "$cert" "$ko"
	echo "  SIGN    $ko ($hash, $cert)"
done
