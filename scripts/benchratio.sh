#!/bin/sh
# Prints a sink's publish rate as a fraction of its raw client's (plain
# nats.go JetStream async publishing, or a plain kafka-go Writer with the
# sink's settings) publishing the same messages: the sink/raw metric of
# BenchmarkPublish/paired, which alternates raw and sink batches within one
# run so that load from other processes hits both alike. The median of N
# runs is the figure. Target: 0.9 or more.
#
#   scripts/benchratio.sh nats|kafka [runs]    # default 5 runs
set -eu
case "${1:-}" in
nats | kafka) ;;
*)
	echo "usage: $0 nats|kafka [runs]" >&2
	exit 2
	;;
esac
cd "$(dirname "$0")/.."
GOTOOLCHAIN=local go test -run '^$' -bench '^BenchmarkPublish$/^paired$' -benchtime 3s -count "${2:-5}" "./sink/$1/" |
	tee /dev/stderr |
	awk '
	$1 ~ /^BenchmarkPublish\/paired/ { for (i = 2; i < NF; i++) if ($(i + 1) == "sink/raw") print $i }' |
	sort -n |
	awk '
	{ r[NR] = $1 }
	END {
		if (NR == 0) { print "no benchmark results" > "/dev/stderr"; exit 1 }
		printf "median sink/raw over %d runs: %.3f (min %.3f, max %.3f)\n", NR, (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2, r[1], r[NR]
	}'
