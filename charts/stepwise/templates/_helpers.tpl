{{/*
The standard helper set: name, fullname, chart, labels, selectorLabels, serviceAccountName,
image. Components (operator, worker, postgresql) add `app.kubernetes.io/component` next to
the shared labels in their own templates, so these helpers stay component-agnostic except the
two that must pick a component's values.
*/}}

{{/* Chart name, overridable with nameOverride. */}}
{{- define "stepwise.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name (63 chars: DNS label limit). The release name alone when it already
contains the chart name.
*/}}
{{- define "stepwise.fullname" -}}
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

{{/* Chart name and version, for the helm.sh/chart label. */}}
{{- define "stepwise.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "stepwise.labels" -}}
helm.sh/chart: {{ include "stepwise.chart" . }}
{{ include "stepwise.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: stepwise
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels (immutable in a Deployment: never add to them after a release). */}}
{{- define "stepwise.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stepwise.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
ServiceAccount of a component: include "stepwise.serviceAccountName" (dict "root" $ "component" "operator").
<fullname>-<component> when the chart creates it, else the given name or "default".
*/}}
{{- define "stepwise.serviceAccountName" -}}
{{- $sa := (index .root.Values .component).serviceAccount }}
{{- if $sa.create }}
{{- default (printf "%s-%s" (include "stepwise.fullname" .root) .component | trunc 63 | trimSuffix "-") $sa.name }}
{{- else }}
{{- default "default" $sa.name }}
{{- end }}
{{- end }}

{{/*
Image reference of a component: include "stepwise.image" (dict "root" $ "image" .Values.worker.image).
A component's own full reference wins; else image.repository:image.tag (tag defaults to appVersion).
*/}}
{{- define "stepwise.image" -}}
{{- if .image }}
{{- .image }}
{{- else }}
{{- printf "%s:%s" .root.Values.image.repository (default .root.Chart.AppVersion .root.Values.image.tag) }}
{{- end }}
{{- end }}
