{{/*
Chart name, or nameOverride. Kubernetes names are DNS labels: at most 63 characters.
*/}}
{{- define "zulip-bridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of every object: fullnameOverride, else <release>-<name>, or the release
name alone when it already contains the chart name (the usual Helm convention).
*/}}
{{- define "zulip-bridge.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "zulip-bridge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object.
*/}}
{{- define "zulip-bridge.labels" -}}
helm.sh/chart: {{ include "zulip-bridge.chart" . }}
{{ include "zulip-bridge.selectorLabels" . }}
app.kubernetes.io/version: {{ include "zulip-bridge.version" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: zulip-bridge
{{- end }}

{{/*
Selector labels: stable across upgrades (a Deployment's selector is immutable).
*/}}
{{- define "zulip-bridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "zulip-bridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The version the image runs: the tag, or the appVersion when the tag is empty.
*/}}
{{- define "zulip-bridge.version" -}}
{{- .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Image reference: repository@digest when a digest is given, else repository:tag. A moving
tag such as latest would make Recreate upgrades and rollbacks meaningless.
*/}}
{{- define "zulip-bridge.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion | toString }}
{{- if eq $tag "latest" }}
{{- fail "image.tag: latest is not allowed; pin a version (image.tag) or a digest (image.digest)" }}
{{- end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
Name of the ServiceAccount the pod runs as.
*/}}
{{- define "zulip-bridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "zulip-bridge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
True when the pod runs the embedded NATS server: the NATS sink without nats.url (the
nats-kv checkpoint needs the NATS sink, so it uses the same server).
*/}}
{{- define "zulip-bridge.embeddedNATS" -}}
{{- if and (eq .Values.sink "nats") (not .Values.nats.url) }}true{{ end }}
{{- end }}

{{/*
Directories inside the container. The state directory holds the file checkpoint and the
embedded NATS server's JetStream store; secrets are files, never env values.
*/}}
{{- define "zulip-bridge.stateDir" -}}/var/lib/zulip-bridge{{- end }}
{{- define "zulip-bridge.secretsDir" -}}/etc/zulip-bridge/secrets{{- end }}
{{- define "zulip-bridge.natsTLSDir" -}}/etc/zulip-bridge/nats-tls{{- end }}
{{- define "zulip-bridge.kafkaTLSDir" -}}/etc/zulip-bridge/kafka-tls{{- end }}

{{/*
Name of the chart's Secret.
*/}}
{{- define "zulip-bridge.secretName" -}}
{{- include "zulip-bridge.fullname" . }}
{{- end }}

{{/*
Files of the secret volume, as a list of {secret, key, path} (YAML), from the chart's
Secret or the existing Secrets. Every *_FILE variable points into this volume.
*/}}
{{- define "zulip-bridge.secretFiles" -}}
{{- $own := include "zulip-bridge.secretName" . }}
{{- $files := list }}
{{- if .Values.zulip.existingSecret }}
{{- $files = append $files (dict "secret" .Values.zulip.existingSecret "key" .Values.zulip.existingSecretKey "path" "zulip-api-key") }}
{{- else }}
{{- $files = append $files (dict "secret" $own "key" "zulip-api-key" "path" "zulip-api-key") }}
{{- end }}
{{- $na := .Values.nats.auth }}
{{- if $na.existingSecret }}
{{- if $na.existingSecretPasswordKey }}{{ $files = append $files (dict "secret" $na.existingSecret "key" $na.existingSecretPasswordKey "path" "nats-password") }}{{ end }}
{{- if $na.existingSecretTokenKey }}{{ $files = append $files (dict "secret" $na.existingSecret "key" $na.existingSecretTokenKey "path" "nats-token") }}{{ end }}
{{- if $na.existingSecretCredsKey }}{{ $files = append $files (dict "secret" $na.existingSecret "key" $na.existingSecretCredsKey "path" "nats.creds") }}{{ end }}
{{- if $na.existingSecretNkeyKey }}{{ $files = append $files (dict "secret" $na.existingSecret "key" $na.existingSecretNkeyKey "path" "nats.nk") }}{{ end }}
{{- else }}
{{- if $na.password }}{{ $files = append $files (dict "secret" $own "key" "nats-password" "path" "nats-password") }}{{ end }}
{{- if $na.token }}{{ $files = append $files (dict "secret" $own "key" "nats-token" "path" "nats-token") }}{{ end }}
{{- end }}
{{- $ks := .Values.kafka.sasl }}
{{- if $ks.existingSecret }}
{{- $files = append $files (dict "secret" $ks.existingSecret "key" $ks.existingSecretPasswordKey "path" "kafka-password") }}
{{- else if $ks.password }}
{{- $files = append $files (dict "secret" $own "key" "kafka-password" "path" "kafka-password") }}
{{- end }}
{{- toYaml (dict "files" $files) }}
{{- end }}

{{/*
Seconds of a Go duration string (e.g. 1m30s, 45s, 1.5m, 500ms), rounded up. The schema
allows only such strings; this refuses anything else rather than guess.
*/}}
{{- define "zulip-bridge.durationSeconds" -}}
{{- include "zulip-bridge.durationFloat" . | float64 | ceil | int }}
{{- end }}

{{/*
Seconds of a Go duration string, as a float (1.5 for 1500ms).
*/}}
{{- define "zulip-bridge.durationFloat" -}}
{{- $d := toString . }}
{{- if not (regexMatch "^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$" $d) }}
{{- fail (printf "%q is not a duration such as 30s or 1m30s" $d) }}
{{- end }}
{{- $units := dict "ns" 0.000000001 "us" 0.000001 "µs" 0.000001 "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 }}
{{- $total := 0.0 }}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h)" $d -1 }}
{{- $num := regexFind "^[0-9]+(\\.[0-9]+)?" . }}
{{- $unit := trimPrefix $num . }}
{{- $total = addf $total (mulf (float64 $num) (get $units $unit)) }}
{{- end }}
{{- $total }}
{{- end }}

{{/*
The leader election backend: off, lease or nats-kv (a bare YAML off arrives as false).
*/}}
{{- define "zulip-bridge.leaderElection" -}}
{{- $b := .Values.leaderElection.backend }}
{{- if kindIs "bool" $b }}
{{- if $b }}{{ fail "leaderElection.backend: true is not a backend; use lease or nats-kv" }}{{ end }}
{{- print "off" }}
{{- else }}
{{- default "off" $b }}
{{- end }}
{{- end }}

{{/*
Name of the Lease, or of the NATS KV key: leaderElection.leaseName, else the full name (with
nats-kv prefixed by the namespace: one bucket may serve the bridges of every namespace).
*/}}
{{- define "zulip-bridge.leaseName" -}}
{{- if .Values.leaderElection.leaseName }}
{{- .Values.leaderElection.leaseName }}
{{- else if eq (include "zulip-bridge.leaderElection" .) "nats-kv" }}
{{- printf "%s.%s" .Release.Namespace (include "zulip-bridge.fullname" .) }}
{{- else }}
{{- include "zulip-bridge.fullname" . }}
{{- end }}
{{- end }}

{{/*
True when the pod mounts its ServiceAccount token: asked for, or needed by the lease backend.
*/}}
{{- define "zulip-bridge.automountToken" -}}
{{- if or .Values.serviceAccount.automount (eq (include "zulip-bridge.leaderElection" .) "lease") }}true{{ else }}false{{ end }}
{{- end }}

{{/*
True when the chart creates a PodDisruptionBudget: podDisruptionBudget.enabled, or when it
is null (Helm may drop it) and there is a standby.
*/}}
{{- define "zulip-bridge.pdbEnabled" -}}
{{- $p := .Values.podDisruptionBudget }}
{{- if and (hasKey $p "enabled") (not (kindIs "invalid" $p.enabled)) }}
{{- if $p.enabled }}true{{ end }}
{{- else if gt (int .Values.replicaCount) 1 }}true
{{- end }}
{{- end }}

{{/*
terminationGracePeriodSeconds: above BRIDGE_SHUTDOWN_TIMEOUT, so that the kubelet never
kills a bridge that is still publishing, confirming and checkpointing its last batch.
*/}}
{{- define "zulip-bridge.terminationGracePeriodSeconds" -}}
{{- $shutdown := include "zulip-bridge.durationSeconds" .Values.shutdownTimeout | int }}
{{- /* Helm drops null values: a missing key is the default. */}}
{{- if or (not (hasKey .Values "terminationGracePeriodSeconds")) (kindIs "invalid" .Values.terminationGracePeriodSeconds) }}
{{- add $shutdown 10 }}
{{- else }}
{{- $set := .Values.terminationGracePeriodSeconds | int }}
{{- if le $set $shutdown }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be above shutdownTimeout (%s = %ds): the kubelet would kill the bridge during its drain" $set .Values.shutdownTimeout $shutdown) }}
{{- end }}
{{- $set }}
{{- end }}
{{- end }}

{{/*
Refuses combinations the schema also refuses, for installs with --skip-schema-validation:
a pod without a persistent volume loses a file checkpoint and the embedded NATS store on
every restart, so the opt-out needs an external broker holding the checkpoint.
*/}}
{{- define "zulip-bridge.validate" -}}
{{- include "zulip-bridge.validateStandby" . }}
{{- if not .Values.persistence.enabled }}
{{- if eq .Values.checkpoint.kind "file" }}
{{- fail "persistence.enabled=false needs checkpoint.kind nats-kv or kafka: the file checkpoint would be lost on every restart" }}
{{- end }}
{{- if include "zulip-bridge.embeddedNATS" . }}
{{- fail "persistence.enabled=false needs an external broker (nats.url, or sink kafka): the embedded NATS server would lose its stream on every restart" }}
{{- end }}
{{- end }}
{{- if and (eq .Values.checkpoint.kind "nats-kv") (ne .Values.sink "nats") }}
{{- fail "checkpoint.kind=nats-kv needs sink=nats" }}
{{- end }}
{{- if and (eq .Values.checkpoint.kind "kafka") (ne .Values.sink "kafka") }}
{{- fail "checkpoint.kind=kafka needs sink=kafka" }}
{{- end }}
{{- if and (eq .Values.sink "kafka") (not .Values.kafka.brokers) }}
{{- fail "sink=kafka needs kafka.brokers" }}
{{- end }}
{{- if not (or .Values.zulip.apiKey .Values.zulip.existingSecret) }}
{{- fail "zulip.apiKey or zulip.existingSecret is required" }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled .Values.podMonitor.enabled }}
{{- fail "enable serviceMonitor or podMonitor, not both: Prometheus would scrape the bridge twice" }}
{{- end }}
{{- end }}

{{/*
Refuses what a hot standby cannot make safe, as the schema does, and what the schema
cannot express (the durations' order). The bridge refuses the same at start (exit code 2);
refusing here keeps a release from rolling out pods that cannot start.
*/}}
{{- define "zulip-bridge.validateStandby" -}}
{{- $le := include "zulip-bridge.leaderElection" . }}
{{- $replicas := int .Values.replicaCount }}
{{- if gt $replicas 1 }}
{{- if eq $le "off" }}
{{- fail (printf "replicaCount=%d needs leaderElection.backend lease or nats-kv: bridges without an election poll one Zulip queue and steal each other's events" $replicas) }}
{{- end }}
{{- if .Values.persistence.enabled }}
{{- fail (printf "replicaCount=%d needs persistence.enabled=false: with leader election the state is in the broker, and pods on different nodes cannot share a ReadWriteOnce claim" $replicas) }}
{{- end }}
{{- end }}
{{- if ne $le "off" }}
{{- if not (has $le (list "lease" "nats-kv")) }}
{{- fail (printf "leaderElection.backend: %q is not off, lease or nats-kv" $le) }}
{{- end }}
{{- if eq .Values.checkpoint.kind "file" }}
{{- fail (printf "leaderElection.backend=%s needs checkpoint.kind nats-kv or kafka: a standby cannot read the file checkpoint on another pod's volume" $le) }}
{{- end }}
{{- if include "zulip-bridge.embeddedNATS" . }}
{{- fail (printf "leaderElection.backend=%s needs an external broker (nats.url, or sink kafka): with the embedded NATS server each replica would publish to a broker of its own" $le) }}
{{- end }}
{{- if and (eq $le "nats-kv") (ne .Values.sink "nats") }}
{{- fail "leaderElection.backend=nats-kv needs sink=nats; with Kafka use lease" }}
{{- end }}
{{- $spool := get .Values.config "BRIDGE_SPOOL" }}
{{- if or (eq (toString $spool) "on") (and (kindIs "bool" $spool) $spool) }}
{{- fail (printf "leaderElection.backend=%s cannot run with config.BRIDGE_SPOOL=on: the spool holds acknowledged events in one pod, which a standby cannot forward" $le) }}
{{- end }}
{{- $e := .Values.leaderElection }}
{{- $lease := include "zulip-bridge.durationFloat" $e.leaseDuration | float64 }}
{{- $renew := include "zulip-bridge.durationFloat" $e.renewDeadline | float64 }}
{{- $retry := include "zulip-bridge.durationFloat" $e.retryPeriod | float64 }}
{{- if or (le $lease 0.0) (le $renew 0.0) (le $retry 0.0) }}
{{- fail "leaderElection: leaseDuration, renewDeadline and retryPeriod must be above zero" }}
{{- end }}
{{- if ge $renew $lease }}
{{- fail (printf "leaderElection.renewDeadline (%s) must be shorter than leaderElection.leaseDuration (%s): a standby could take over while the leader still believes it leads" $e.renewDeadline $e.leaseDuration) }}
{{- end }}
{{- if le $renew (mulf 1.2 $retry) }}
{{- fail (printf "leaderElection.retryPeriod (%s) must be below leaderElection.renewDeadline (%s) / 1.2: the leader would get no retry before its deadline" $e.retryPeriod $e.renewDeadline) }}
{{- end }}
{{- if and (eq $le "lease") (ne $lease (floor $lease)) }}
{{- fail (printf "leaderElection.leaseDuration (%s) must be a whole number of seconds with the lease backend: a Lease stores seconds" $e.leaseDuration) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The secret files grouped by Secret name (a dict, rendered as YAML), one projected source each.
*/}}
{{- define "zulip-bridge.groupBySecret" -}}
{{- $groups := dict }}
{{- range . }}
{{- $_ := set $groups .secret (append (default (list) (get $groups .secret)) (dict "key" .key "path" .path)) }}
{{- end }}
{{- toYaml $groups }}
{{- end }}

{{/*
Items of a TLS Secret volume: the configured keys under the fixed names the TLS variables use.
*/}}
{{- define "zulip-bridge.tlsItems" -}}
{{- if .caKey }}
- key: {{ .caKey }}
  path: ca.crt
{{- end }}
{{- if .certKey }}
- key: {{ .certKey }}
  path: tls.crt
{{- end }}
{{- if .keyKey }}
- key: {{ .keyKey }}
  path: tls.key
{{- end }}
{{- end }}

{{/*
PromQL label matchers of this bridge's series (without braces).
*/}}
{{- define "zulip-bridge.promSelector" -}}
{{- if .Values.prometheusRule.selector }}
{{- .Values.prometheusRule.selector }}
{{- else if .Values.podMonitor.enabled }}
{{- printf "namespace=%q, job=%q" .Release.Namespace (printf "%s/%s" .Release.Namespace (include "zulip-bridge.fullname" .)) }}
{{- else }}
{{- printf "namespace=%q, job=%q" .Release.Namespace (include "zulip-bridge.fullname" .) }}
{{- end }}
{{- end }}

{{/*
A number (YAML numbers arrive as float64) or a quoted percentage.
*/}}
{{- define "zulip-bridge.intOrPercent" -}}
{{- if kindIs "string" . }}{{ . | quote }}{{ else }}{{ int . }}{{ end }}
{{- end }}
