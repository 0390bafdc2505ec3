{{- define "whatchanged.name" -}}{{ .Chart.Name }}{{- end -}}
{{- define "whatchanged.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}
{{- define "whatchanged.labels" -}}
app.kubernetes.io/name: {{ include "whatchanged.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
{{- define "whatchanged.selector" -}}
app.kubernetes.io/name: {{ include "whatchanged.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{/* The Secret a value lives in: the user's existing one, or ours. */}}
{{- define "whatchanged.secretName" -}}
{{- if .existing -}}{{ .existing }}{{- else -}}{{ include "whatchanged.fullname" .root }}{{- end -}}
{{- end -}}
{{/* Secret files: each mounted at /etc/whatchanged/secrets/<name>/<key>. */}}
{{- define "whatchanged.secretMounts" -}}
{{- $m := list -}}
{{- $ours := include "whatchanged.fullname" . -}}
{{- with .Values.auth }}{{ if or .token .existingSecret }}{{ $m = append $m (dict "name" "auth-token" "secret" (.existingSecret | default $ours) "key" (ternary .existingSecretKey "auth-token" (ne .existingSecret ""))) }}{{ end }}{{ end -}}
{{- with .Values.downstream }}{{ if or .url .existingSecret }}{{ $m = append $m (dict "name" "downstream-url" "secret" (.existingSecret | default $ours) "key" (ternary .existingSecretKey "downstream-url" (ne .existingSecret ""))) }}{{ end }}{{ end -}}
{{- with .Values.sources.argocd }}{{ if and .enabled .server }}{{ $m = append $m (dict "name" "argocd-token" "secret" (.existingSecret | default $ours) "key" (ternary .existingSecretKey "argocd-token" (ne .existingSecret ""))) }}{{ end }}{{ end -}}
{{- with .Values.sources.github }}{{ if .enabled }}
{{- if .app.appID }}{{ $m = append $m (dict "name" "github-app" "secret" .app.existingSecret "key" .app.existingSecretKey) }}
{{- else }}{{ $m = append $m (dict "name" "github-token" "secret" (.existingSecret | default $ours) "key" (ternary .existingSecretKey "github-token" (ne .existingSecret ""))) }}{{ end }}
{{- end }}{{ end -}}
{{ toJson $m }}
{{- end -}}
{{/* RBAC rules for workloads (Kubernetes source). */}}
{{- define "whatchanged.kubeRules" -}}
- apiGroups: [apps]
  resources: [deployments, replicasets, statefulsets, daemonsets, controllerrevisions]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [services, pods]
  verbs: [get, list, watch]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, watch]
{{- if ne .Values.sources.kubernetes.rollouts "off" }}
- apiGroups: [argoproj.io]
  resources: [rollouts]
  verbs: [get, list, watch]
{{- end }}
{{- end -}}
{{- define "whatchanged.argoRules" -}}
- apiGroups: [argoproj.io]
  resources: [applications]
  verbs: [get, list, watch]
{{- end -}}
{{- define "whatchanged.subject" -}}
- kind: ServiceAccount
  name: {{ if eq .Values.mode "sidecar" }}{{ required "sidecar.serviceAccountName: the Alertmanager pod's ServiceAccount" .Values.sidecar.serviceAccountName }}{{ else }}{{ include "whatchanged.fullname" . }}{{ end }}
  namespace: {{ .Release.Namespace }}
{{- end -}}
