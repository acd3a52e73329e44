#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Run one step of `make check` and record how long it took, for the table
# that `make check` ends with (qemu-tests/src/bin/report.rs).
#
#   scripts/timed.sh LEG STEP [--cached-if PATH | --cached-if-ok CHECK] -- CMD...
#
# Appends "LEG<TAB>STEP<TAB>SECONDS<TAB>STATE<TAB>EXIT" to $RER_TIMINGS
# (default: qemu-tests/target/timings.tsv). STATE is "cached" when PATH
# existed before CMD ran (the step's product was in the cache), or when the
# shell command CHECK succeeded before it (nothing to install), "cold" when
# not, "-" for a step with nothing cached (a test run). Exits with
# CMD's status.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 3 ] || { echo "usage: $0 LEG STEP [--cached-if PATH] -- CMD..." >&2; exit 2; }
leg=$1 step=$2
shift 2
state=-
case "${1:-}" in
--cached-if)
	if [ -e "$2" ]; then state=cached; else state=cold; fi
	shift 2
	;;
--cached-if-ok)
	if sh -c "$2" >/dev/null 2>&1; then state=cached; else state=cold; fi
	shift 2
	;;
esac
[ "${1:-}" = -- ] || { echo "$0: -- before the command" >&2; exit 2; }
shift
timings=${RER_TIMINGS:-$here/../qemu-tests/target/timings.tsv}
mkdir -p "$(dirname "$timings")"
start=$(date +%s)
"$@"
rc=$?
printf '%s\t%s\t%s\t%s\t%s\n' "$leg" "$step" $(($(date +%s) - start)) "$state" "$rc" >>"$timings"
exit $rc
