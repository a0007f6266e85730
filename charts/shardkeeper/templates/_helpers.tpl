{{/*
The chart's name, overridable with nameOverride.
*/}}
{{- define "shardkeeper.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's full name: the release name alone when it already contains the chart name
("shardkeeper"), else "<release>-<chart>". Truncated to 63 characters, a DNS label.
*/}}
{{- define "shardkeeper.fullname" -}}
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

{{- define "shardkeeper.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object.
*/}}
{{- define "shardkeeper.labels" -}}
helm.sh/chart: {{ include "shardkeeper.chart" . }}
{{ include "shardkeeper.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels that select the operator's pods; they never change between upgrades.
*/}}
{{- define "shardkeeper.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shardkeeper.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "shardkeeper.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "shardkeeper.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false: the operator needs an existing ServiceAccount" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "shardkeeper.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "shardkeeper.defaultBotImage" -}}
{{- printf "%s:%s" .Values.defaultBotImage.repository (.Values.defaultBotImage.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "shardkeeper.gatewayProxyImage" -}}
{{- printf "%s:%s" .Values.gatewayProxyImage.repository (.Values.gatewayProxyImage.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
The rules of a generated Role or ClusterRole under files/rbac (copies of config/rbac that
`make manifests` writes), so the chart grants exactly what the generated RBAC grants.
*/}}
{{- define "shardkeeper.rulesFrom" -}}
{{- $role := .Files.Get .path | fromYaml }}
{{- if not $role.rules }}
{{- fail (printf "%s has no rules: run `make manifests`" .path) }}
{{- end }}
{{- toYaml $role.rules }}
{{- end }}

{{/*
The user name the operator's requests carry: its ServiceAccount's.
*/}}
{{- define "shardkeeper.operatorUser" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "shardkeeper.serviceAccountName" .) }}
{{- end }}

{{/*
The job label of the operator's series: the ServiceMonitor's (the metrics Service's name)
unless metrics.prometheusRule.operatorJob says otherwise.
*/}}
{{- define "shardkeeper.operatorJob" -}}
{{- .Values.metrics.prometheusRule.operatorJob | default (printf "%s-metrics" (include "shardkeeper.fullname" .)) }}
{{- end }}

{{/*
The job label of the bots' series: the PodMonitor's (<namespace>/<name>) unless
metrics.prometheusRule.botJob says otherwise.
*/}}
{{- define "shardkeeper.botJob" -}}
{{- .Values.metrics.prometheusRule.botJob | default (printf "%s/%s-bots" .Release.Namespace (include "shardkeeper.fullname" .)) }}
{{- end }}

{{/*
An alert's labels: its severity, and metrics.prometheusRule.alertLabels.
*/}}
{{- define "shardkeeper.alertLabels" -}}
severity: {{ .alert.severity }}
{{- with .rule.alertLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}
