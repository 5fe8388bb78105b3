{{/* Names and labels shared by every template. */}}

{{- define "meshgate.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "meshgate.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "meshgate.labels" -}}
{{ include "meshgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "meshgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "meshgate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
The gateway YAML as mounted: the user's config, plus the mesh section the
Istio mode needs when the user did not write one (proxyless: the bootstrap
istio-agent writes; direct: the bootstrap in GRPC_XDS_BOOTSTRAP_CONFIG).
*/}}
{{- define "meshgate.config" -}}
{{- $config := deepCopy .Values.config -}}
{{- if ne .Values.istio.mode "none" -}}
{{- $mesh := default dict (get $config "mesh") -}}
{{- if not (hasKey $mesh "xds") -}}
{{- if eq .Values.istio.mode "proxyless" -}}
{{- $_ := set $mesh "xds" (dict "bootstrap" .Values.istio.proxyless.bootstrapPath) -}}
{{- else -}}
{{- $_ := set $mesh "xds" dict -}}
{{- end -}}
{{- end -}}
{{- $_ := set $config "mesh" $mesh -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{- define "meshgate.validate" -}}
{{- if not (has .Values.istio.mode (list "none" "proxyless" "direct")) -}}
{{- fail (printf "istio.mode must be none, proxyless or direct, not %q" .Values.istio.mode) -}}
{{- end -}}
{{- if not (has .Values.configChange (list "rollout" "none")) -}}
{{- fail (printf "configChange must be rollout or none, not %q" .Values.configChange) -}}
{{- end -}}
{{- end -}}
