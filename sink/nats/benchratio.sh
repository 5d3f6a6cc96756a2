#!/bin/sh
# Prints the NATS sink's publish rate as a fraction of plain nats.go
# JetStream async publishing of the same messages (BenchmarkPublish, whose
# "raw" and "sink" halves run back to back in one process). Each of the N
# runs gives one ratio; the median is the figure, so that load from other
# processes, which shifts both halves of a run alike, cancels out.
# Target: 0.9 or more.
#
#   sink/nats/benchratio.sh [runs]    # default 5
set -eu
cd "$(dirname "$0")/../.."
runs=${1:-5}
i=0
while [ "$i" -lt "$runs" ]; do
	GOTOOLCHAIN=local go test -run '^$' -bench '^BenchmarkPublish$' -benchtime 2s -count 1 ./sink/nats/ |
		awk '
		function rate(   i) { for (i = 2; i < NF; i++) if ($(i + 1) == "msgs/s") return $i; return 0 }
		$1 ~ /^BenchmarkPublish\/raw/  { raw = rate() }
		$1 ~ /^BenchmarkPublish\/sink/ { snk = rate() }
		END {
			if (raw == 0 || snk == 0) { print "no benchmark results" > "/dev/stderr"; exit 1 }
			printf "%.3f raw %.0f msgs/s, sink %.0f msgs/s\n", snk / raw, raw, snk
		}'
	i=$((i + 1))
done | sort -n | tee /dev/stderr | awk '{ r[NR] = $1 } END { printf "median ratio sink/raw over %d runs: %.3f\n", NR, (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2 }'
