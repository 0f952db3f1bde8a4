{{/* Names, labels and the controller's argument list. */}}

{{- define "externalsource.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "externalsource.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "externalsource.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "externalsource.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "externalsource.selectorLabels" -}}
app.kubernetes.io/name: {{ include "externalsource.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "externalsource.labels" -}}
{{ include "externalsource.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "externalsource.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "externalsource.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "externalsource.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* "true" when leader election runs: asked for, or forced by replicas > 1. */}}
{{- define "externalsource.leaderElection" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicas) 1) -}}true{{- else -}}false{{- end -}}
{{- end -}}

{{- define "externalsource.advertisedAddress" -}}
{{- default (printf "%s.%s.svc.cluster.local." (include "externalsource.fullname" .) .Release.Namespace) .Values.storage.advertisedAddress -}}
{{- end -}}

{{- define "externalsource.whitelistConfigMap" -}}
{{- default (printf "%s-hooks-whitelist" (include "externalsource.fullname" .)) .Values.hooks.existingWhitelistConfigMap -}}
{{- end -}}

{{- define "externalsource.pvcName" -}}
{{- default (printf "%s-data" (include "externalsource.fullname" .)) .Values.storage.filesystem.persistence.existingClaim -}}
{{- end -}}

{{/* A values scalar as a flag value: integral numbers without exponent, lists comma-joined. */}}
{{- define "externalsource.flagValue" -}}
{{- if kindIs "slice" . -}}
{{- join "," . -}}
{{- else if and (kindIs "float64" .) (eq (float64 (int64 .)) .) -}}
{{- int64 . -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{/* Refuse combinations that cannot work, with a message naming the values. */}}
{{- define "externalsource.validate" -}}
{{- $backend := .Values.storage.backend -}}
{{- if and (gt (int .Values.replicas) 1) (eq $backend "filesystem") (not (has "ReadWriteMany" .Values.storage.filesystem.persistence.accessModes)) (not .Values.storage.filesystem.persistence.existingClaim) -}}
{{- fail "replicas > 1 with storage.backend filesystem needs storage.filesystem.persistence.accessModes to include ReadWriteMany" -}}
{{- end -}}
{{- if and (eq $backend "s3") (not .Values.storage.s3.bucket) -}}
{{- fail "storage.backend s3 needs storage.s3.bucket" -}}
{{- end -}}
{{- end -}}

{{/* The controller's arguments: chart-managed flags first, then .Values.config, then extraArgs. */}}
{{- define "externalsource.args" -}}
- --metrics-addr=:{{ .Values.ports.metrics }}
- --health-addr=:{{ .Values.ports.health }}
- --storage-addr=:{{ .Values.ports.artifacts }}
- --storage-adv-addr={{ include "externalsource.advertisedAddress" . }}
- --enable-leader-election={{ include "externalsource.leaderElection" . }}
- --storage-backend={{ .Values.storage.backend }}
{{- if eq .Values.storage.backend "filesystem" }}
- --storage-path={{ .Values.storage.filesystem.path }}
{{- end }}
{{- if eq .Values.storage.backend "s3" }}
{{- with .Values.storage.s3 }}
- --s3-bucket={{ .bucket }}
{{- with .endpoint }}
- --s3-endpoint={{ . }}
{{- end }}
{{- with .region }}
- --s3-region={{ . }}
{{- end }}
{{- with .prefix }}
- --s3-prefix={{ . }}
{{- end }}
- --s3-path-style={{ .pathStyle }}
{{- if .credentialsSecret.name }}
- --s3-credentials-dir=/etc/externalsource/s3-credentials
{{- end }}
{{- if .caSecret.name }}
- --s3-ca-bundle=/etc/externalsource/s3-ca/{{ .caSecret.key }}
{{- end }}
{{- end }}
{{- end }}
{{- if .Values.hooks.enabled }}
- --hooks-endpoint=http://127.0.0.1:{{ .Values.hooks.port }}
- --hooks-whitelist=/etc/externalsource/hooks/whitelist.yaml
- --hooks-token-file=/var/run/externalsource/hooks/token
{{- end }}
{{- range $key, $value := .Values.config }}
{{- if not (kindIs "invalid" $value) }}
- {{ printf "--%s=%s" $key (include "externalsource.flagValue" $value) | quote }}
{{- end }}
{{- end }}
{{- with .Values.extraArgs }}
{{ toYaml . }}
{{- end }}
{{- end -}}
