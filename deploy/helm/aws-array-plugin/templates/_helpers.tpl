{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "aws-array-plugin.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's resources. Kept to 54 characters so that "<fullname>-headless" still fits
a DNS label.
*/}}
{{- define "aws-array-plugin.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 54 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "aws-array-plugin.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "aws-array-plugin.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aws-array-plugin.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "aws-array-plugin.labels" -}}
helm.sh/chart: {{ include "aws-array-plugin.chart" . }}
{{ include "aws-array-plugin.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: flyte
{{- end }}

{{- define "aws-array-plugin.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "aws-array-plugin.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "aws-array-plugin.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The server's grace period (config.server.gracePeriod, seconds), the one source of both the
server's shutdown budget and the pod's terminationGracePeriodSeconds. */}}
{{- define "aws-array-plugin.gracePeriod" -}}
{{- int (dig "server" "gracePeriod" 20 .Values.config) }}
{{- end }}

{{- define "aws-array-plugin.terminationGracePeriod" -}}
{{- add (int .Values.preStopDelaySeconds) (include "aws-array-plugin.gracePeriod" . | int) (int .Values.terminationGracePeriodMarginSeconds) }}
{{- end }}

{{/* Where the TLS Secret is mounted. */}}
{{- define "aws-array-plugin.tlsDir" -}}
/etc/aws-array-plugin-tls
{{- end }}

{{/* The service config file: .Values.config plus the keys the chart owns. */}}
{{- define "aws-array-plugin.configYaml" -}}
{{- $config := deepCopy (default (dict) .Values.config) }}
{{- $events := include "aws-array-plugin.events" . | fromYaml }}
{{- if and $events.enabled (not (trim (toString (default "" $events.stream)))) }}
{{- fail "config.status.events.stream is required when config.status.events.enabled is true: the Kinesis stream's name or ARN (the StreamArn output of deploy/aws/batch-events.cloudformation.yaml)" }}
{{- end }}
{{- $server := deepCopy (default (dict) $config.server) }}
{{- $_ := set $server "gracePeriod" (include "aws-array-plugin.gracePeriod" . | int) }}
{{- if .Values.tls.enabled }}
{{- $dir := include "aws-array-plugin.tlsDir" . }}
{{- $_ := set $server "tlsCertFile" (printf "%s/tls.crt" $dir) }}
{{- $_ := set $server "tlsKeyFile" (printf "%s/tls.key" $dir) }}
{{- if .Values.tls.clientCa }}
{{- $_ := set $server "tlsClientCaFile" (printf "%s/ca.crt" $dir) }}
{{- end }}
{{- end }}
{{- $_ := set $config "server" $server }}
{{- toYaml $config }}
{{- end }}

{{/* The endpoint propeller should use for this release. */}}
{{- define "aws-array-plugin.propellerEndpoint" -}}
{{- $fullname := include "aws-array-plugin.fullname" . }}
{{- if .Values.service.headless.enabled }}
{{- printf "dns:///%s-headless.%s.svc.cluster.local:%d" $fullname .Release.Namespace (int .Values.ports.grpc) }}
{{- else }}
{{- printf "k8s://%s.%s:%d" $fullname .Release.Namespace (int .Values.ports.grpc) }}
{{- end }}
{{- end }}

{{/*
The service as the Flyte 2 executor reaches it. The executor registers no k8s:// resolver (only
flytepropeller 1.x does), so without the headless Service this is a plain host:port (one connection,
not load-balanced). `aws-array-plugin propeller-config --flyte2` rejects k8s:// for the same reason.
*/}}
{{- define "aws-array-plugin.flyte2Endpoint" -}}
{{- $fullname := include "aws-array-plugin.fullname" . }}
{{- if .Values.service.headless.enabled }}
{{- printf "dns:///%s-headless.%s.svc.cluster.local:%d" $fullname .Release.Namespace (int .Values.ports.grpc) }}
{{- else }}
{{- printf "%s.%s:%d" $fullname .Release.Namespace (int .Values.ports.grpc) }}
{{- end }}
{{- end }}

{{/* config.status.events (an empty map when unset). */}}
{{- define "aws-array-plugin.events" -}}
{{- toYaml (dig "status" "events" (dict) (default (dict) .Values.config)) }}
{{- end }}

{{/* Seconds of a service-config duration: a number, or a string such as "500ms", "1s", "2m", "1h", "1d". */}}
{{- define "aws-array-plugin.seconds" -}}
{{- $value := trim (toString .) }}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" $value }}
{{- $unit := trim (trimPrefix $number $value) }}
{{- $n := float64 (default "0" $number) }}
{{- if eq $unit "ms" }}{{ divf $n 1000 }}
{{- else if eq $unit "m" }}{{ mulf $n 60 }}
{{- else if eq $unit "h" }}{{ mulf $n 3600 }}
{{- else if eq $unit "d" }}{{ mulf $n 86400 }}
{{- else }}{{ $n }}
{{- end }}
{{- end }}

{{/*
GetRecords calls per second per shard of all replicas together (replicas / status.events.pollInterval);
Kinesis serves 5 per shard, shared by every reader. With autoscaling, the most replicas it may run.
*/}}
{{- define "aws-array-plugin.eventReadsPerShard" -}}
{{- $events := include "aws-array-plugin.events" . | fromYaml }}
{{- $replicas := ternary .Values.autoscaling.maxReplicas .Values.replicaCount (.Values.autoscaling.enabled | default false) | float64 }}
{{- $poll := include "aws-array-plugin.seconds" (default "1s" $events.pollInterval) | float64 }}
{{- if gt $poll 0.0 }}{{ divf $replicas $poll }}{{ else }}0{{ end }}
{{- end }}
