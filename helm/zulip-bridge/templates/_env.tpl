{{/*
The bridge's plain environment, as a dict of VARIABLE -> string: the chart's own
settings over .Values.config (the schema keeps the two apart). Every *_FILE variable
and every TLS or creds path points into a read-only secret volume; no secret value is
ever an env value.
*/}}
{{- define "zulip-bridge.env" -}}
{{- $env := dict }}
{{- range $k, $v := .Values.config }}
{{- $_ := set $env $k (include "zulip-bridge.envValue" $v) }}
{{- end }}
{{- $secrets := include "zulip-bridge.secretsDir" . }}
{{- $_ := set $env "ZULIP_SITE" .Values.zulip.site }}
{{- $_ = set $env "ZULIP_EMAIL" .Values.zulip.email }}
{{- $_ = set $env "ZULIP_API_KEY_FILE" (printf "%s/zulip-api-key" $secrets) }}
{{- $_ = set $env "BRIDGE_SINK" .Values.sink }}
{{- $_ = set $env "BRIDGE_CHECKPOINT" .Values.checkpoint.kind }}
{{- $_ = set $env "BRIDGE_STATE_DIR" (include "zulip-bridge.stateDir" .) }}
{{- $_ = set $env "BRIDGE_HTTP_ADDR" (printf ":%d" (int .Values.http.port)) }}
{{- $_ = set $env "BRIDGE_SHUTDOWN_TIMEOUT" .Values.shutdownTimeout }}
{{- $le := include "zulip-bridge.leaderElection" . }}
{{- $_ = set $env "BRIDGE_LEADER_ELECTION" $le }}
{{- if ne $le "off" }}
{{- /* The identity (the pod's name) and the Lease's namespace come from the downward API: deployment.yaml. */}}
{{- $e := .Values.leaderElection }}
{{- $_ = set $env "BRIDGE_LEADER_LEASE_NAME" (include "zulip-bridge.leaseName" .) }}
{{- $_ = set $env "BRIDGE_LEADER_LEASE_DURATION" $e.leaseDuration }}
{{- $_ = set $env "BRIDGE_LEADER_RENEW_DEADLINE" $e.renewDeadline }}
{{- $_ = set $env "BRIDGE_LEADER_RETRY_PERIOD" $e.retryPeriod }}
{{- if eq $le "nats-kv" }}
{{- $_ = set $env "BRIDGE_LEADER_NATS_BUCKET" $e.natsBucket }}
{{- end }}
{{- end }}
{{- if eq .Values.sink "nats" }}
{{- $n := .Values.nats }}
{{- if $n.url }}
{{- $_ = set $env "BRIDGE_NATS_URL" $n.url }}
{{- else }}
{{- $_ = set $env "BRIDGE_NATS_EMBEDDED_ADDR" (printf "0.0.0.0:%d" (int $n.embedded.port)) }}
{{- end }}
{{- $_ = set $env "BRIDGE_NATS_JETSTREAM" (toString $n.jetstream) }}
{{- $_ = set $env "BRIDGE_NATS_STREAM" $n.stream }}
{{- if $n.auth.user }}
{{- $_ = set $env "BRIDGE_NATS_USER" $n.auth.user }}
{{- end }}
{{- $files := (include "zulip-bridge.secretFiles" . | fromYaml).files }}
{{- range $files }}
{{- if eq .path "nats-password" }}{{ $_ = set $env "BRIDGE_NATS_PASSWORD_FILE" (printf "%s/%s" $secrets .path) }}{{ end }}
{{- if eq .path "nats-token" }}{{ $_ = set $env "BRIDGE_NATS_TOKEN_FILE" (printf "%s/%s" $secrets .path) }}{{ end }}
{{- if eq .path "nats.creds" }}{{ $_ = set $env "BRIDGE_NATS_CREDS" (printf "%s/%s" $secrets .path) }}{{ end }}
{{- if eq .path "nats.nk" }}{{ $_ = set $env "BRIDGE_NATS_NKEY" (printf "%s/%s" $secrets .path) }}{{ end }}
{{- end }}
{{- if $n.tls.existingSecret }}
{{- $dir := include "zulip-bridge.natsTLSDir" . }}
{{- if $n.tls.caKey }}{{ $_ = set $env "BRIDGE_NATS_TLS_CA" (printf "%s/ca.crt" $dir) }}{{ end }}
{{- if $n.tls.certKey }}{{ $_ = set $env "BRIDGE_NATS_TLS_CERT" (printf "%s/tls.crt" $dir) }}{{ end }}
{{- if $n.tls.keyKey }}{{ $_ = set $env "BRIDGE_NATS_TLS_KEY" (printf "%s/tls.key" $dir) }}{{ end }}
{{- end }}
{{- else }}
{{- $k := .Values.kafka }}
{{- $_ = set $env "BRIDGE_KAFKA_BROKERS" (join "," $k.brokers) }}
{{- if $k.sasl.mechanism }}
{{- $_ = set $env "BRIDGE_KAFKA_SASL_MECHANISM" $k.sasl.mechanism }}
{{- $_ = set $env "BRIDGE_KAFKA_USERNAME" $k.sasl.username }}
{{- end }}
{{- if or $k.sasl.existingSecret $k.sasl.password }}
{{- $_ = set $env "BRIDGE_KAFKA_PASSWORD_FILE" (printf "%s/kafka-password" $secrets) }}
{{- end }}
{{- if or $k.tls.enabled $k.tls.existingSecret }}
{{- $_ = set $env "BRIDGE_KAFKA_TLS" "true" }}
{{- end }}
{{- if $k.tls.existingSecret }}
{{- $dir := include "zulip-bridge.kafkaTLSDir" . }}
{{- if $k.tls.caKey }}{{ $_ = set $env "BRIDGE_KAFKA_TLS_CA" (printf "%s/ca.crt" $dir) }}{{ end }}
{{- if $k.tls.certKey }}{{ $_ = set $env "BRIDGE_KAFKA_TLS_CERT" (printf "%s/tls.crt" $dir) }}{{ end }}
{{- if $k.tls.keyKey }}{{ $_ = set $env "BRIDGE_KAFKA_TLS_KEY" (printf "%s/tls.key" $dir) }}{{ end }}
{{- end }}
{{- end }}
{{- toYaml $env }}
{{- end }}

{{/*
A config value as the bridge reads it: YAML numbers arrive as float64, so whole
numbers are printed without an exponent (67108864, not 6.7108864e+07).
*/}}
{{- define "zulip-bridge.envValue" -}}
{{- if kindIs "float64" . }}
{{- if eq (floor .) . }}{{ printf "%.0f" . }}{{ else }}{{ toString . }}{{ end }}
{{- else if kindIs "int64" . }}
{{- toString . }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}
