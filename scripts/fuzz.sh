#!/usr/bin/env bash
# Runs every fuzz target of the bridge's module (every `func FuzzXxx(f
# *testing.F)` in the test files of its packages; the Helm chart's module
# under helm/ has none) for FUZZTIME each, one target at a time, as `go test`
# fuzzes one target per package per invocation. Stops at the first failure
# and says how to reproduce it.
#
#   scripts/fuzz.sh                  # 5s each, as `make test` runs it
#   FUZZTIME=10m scripts/fuzz.sh     # longer; also FUZZTIME=100000x (executions)
#   scripts/fuzz.sh ./source         # only the targets of these packages
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
fuzztime="${FUZZTIME:-5s}"

# "<dir> <import path>" of each package of this module (go list leaves out
# the nested modules, helm/ and helm/kubebin/).
mapfile -t pkgs < <(go list -f '{{.Dir}} {{.ImportPath}}' "${@:-./...}")
module="$(go list -m)"

targets=()
for p in "${pkgs[@]}"; do
	dir="${p%% *}"
	ip="${p#* }"
	rel=".${ip#"$module"}" # ./source, or . for the module's root
	shopt -s nullglob
	files=("$dir"/*_test.go)
	shopt -u nullglob
	[ ${#files[@]} -gt 0 ] || continue
	while read -r name; do
		targets+=("$rel $name")
	done < <(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(\([A-Za-z_][A-Za-z0-9_]*\) \*testing\.F).*/\1/p' "${files[@]}" | sort -u)
done
if [ ${#targets[@]} -eq 0 ]; then
	echo "fuzz.sh: no fuzz targets found" >&2
	exit 1
fi

echo "fuzz.sh: ${#targets[@]} targets, ${fuzztime} each"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
start=$SECONDS
for t in "${targets[@]}"; do
	pkg="${t%% *}"
	name="${t#* }"
	t0=$SECONDS
	ok=true
	for try in 1 2; do
		if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" 2>&1 | tee "$log"; then
			ok=true
			break
		fi
		ok=false
		input="$(sed -n "s|.*Failing input written to testdata/fuzz/${name}/\([^ ]*\).*|\1|p" "$log" | tail -1)"
		# A failure without an input is the fuzzing engine's, not the
		# target's (Go 1.26's coordinator can fail as -fuzztime runs out,
		# golang/go#75804): once more, then it counts.
		[ -z "$input" ] && [ "$try" -eq 1 ] || break
		echo "fuzz.sh: ${name} failed without a failing input; running it once more" >&2
	done
	if ! $ok; then
		cat >&2 <<-EOF

			fuzz.sh: ${name} in ${pkg} failed after $((SECONDS - t0))s.
		EOF
		if [ -n "$input" ]; then
			cat >&2 <<-EOF
				  The failing input is ${pkg}/testdata/fuzz/${name}/${input}.
				  Reproduce: go test -run '^${name}\$/^${input}\$' ${pkg}
			EOF
		else
			cat >&2 <<-EOF
				  Reproduce: go test -run '^${name}\$' ${pkg}    (the seeds and every input in ${pkg}/testdata/fuzz/${name}/)
			EOF
		fi
		cat >&2 <<-EOF
			  Fuzz on:   go test -run '^\$' -fuzz '^${name}\$' -fuzztime 1m ${pkg}
			  Commit the input under testdata/fuzz/ with the fix, so that every later test run replays it.
		EOF
		exit 1
	fi
	echo "fuzz.sh: ${name} (${pkg}) ok in $((SECONDS - t0))s"
done
echo "fuzz.sh: all ${#targets[@]} targets passed in $((SECONDS - start))s"
