{{- define "whatchanged.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "whatchanged.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := .Values.nameOverride | default .Chart.Name -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "whatchanged.selector" -}}
app.kubernetes.io/name: {{ include "whatchanged.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "whatchanged.labels" -}}
{{ include "whatchanged.selector" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "whatchanged.serviceAccountName" -}}
{{- if eq .Values.mode "sidecar" -}}
{{- required "sidecar.serviceAccountName: the Alertmanager pod's ServiceAccount (kube-prometheus-stack: <release>-alertmanager)" .Values.sidecar.serviceAccountName -}}
{{- else if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "whatchanged.fullname" .) -}}
{{- else -}}
{{- required "serviceAccount.name: the existing ServiceAccount to run as (serviceAccount.create is false)" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* repository:tag, or repository:tag@digest when a digest pins it. */}}
{{- define "whatchanged.image" -}}
{{- $ref := printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- with .Values.image.digest }}{{ $ref = printf "%s@%s" $ref . }}{{ end -}}
{{- $ref -}}
{{- end -}}

{{/* global.imagePullSecrets (a parent chart's: names or {name}) then ours. */}}
{{- define "whatchanged.imagePullSecrets" -}}
{{- $all := list -}}
{{- range (concat (dig "global" "imagePullSecrets" (list) .Values.AsMap) .Values.imagePullSecrets) -}}
{{- if kindIs "string" . }}{{ $all = append $all (dict "name" .) }}{{ else }}{{ $all = append $all . }}{{ end -}}
{{- end -}}
{{- with $all }}{{ toYaml . }}{{ end -}}
{{- end -}}

{{/* The port whatchanged listens on: loopback in the Alertmanager pod, else 8080. */}}
{{- define "whatchanged.listen" -}}
{{- if eq .Values.mode "sidecar" -}}127.0.0.1:{{ .Values.sidecar.port }}{{- else -}}0.0.0.0:8080{{- end -}}
{{- end -}}

{{/*
The secret files whatchanged reads, as a JSON list of {path, secret, key}:
each key of a Secret is projected to /etc/whatchanged/secrets/<path>. One
projected volume (not subPath mounts) so a rotated Secret reaches the file,
which whatchanged re-reads. The config, the volume and the chart's own
Secret are all built from this list.
*/}}
{{- define "whatchanged.secretFiles" -}}
{{- $f := list -}}
{{- $ours := include "whatchanged.fullname" . -}}
{{- with .Values.auth -}}
{{- if .existingSecret }}{{ $f = append $f (dict "path" "auth-token" "secret" .existingSecret "key" .existingSecretKey) }}
{{- else if .token }}{{ $f = append $f (dict "path" "auth-token" "secret" $ours "key" "auth-token") }}{{ end -}}
{{- end -}}
{{- with .Values.downstream -}}
{{- if .existingSecret }}{{ $f = append $f (dict "path" "downstream-url" "secret" .existingSecret "key" .existingSecretKey) }}
{{- else if .url }}{{ $f = append $f (dict "path" "downstream-url" "secret" $ours "key" "downstream-url") }}{{ end -}}
{{- with .authorization.existingSecret }}{{ $f = append $f (dict "path" "downstream-credentials" "secret" . "key" $.Values.downstream.authorization.existingSecretKey) }}{{ end -}}
{{- end -}}
{{- with .Values.sources.argocd -}}
{{- if and .enabled .server -}}
{{- if .existingSecret }}{{ $f = append $f (dict "path" "argocd-token" "secret" .existingSecret "key" .existingSecretKey) }}
{{- else if .token }}{{ $f = append $f (dict "path" "argocd-token" "secret" $ours "key" "argocd-token") }}
{{- else }}{{ fail "sources.argocd.server needs sources.argocd.existingSecret (or token): an Argo CD API token (argocd account generate-token)" }}{{ end -}}
{{- end -}}
{{- end -}}
{{- with .Values.sources.github -}}
{{- if .enabled -}}
{{- if .app.appID }}{{ $f = append $f (dict "path" (printf "github-app/%s" .app.existingSecretKey) "secret" (required "sources.github.app.existingSecret: the Secret holding the GitHub App's private key" .app.existingSecret) "key" .app.existingSecretKey) }}
{{- else if .existingSecret }}{{ $f = append $f (dict "path" "github-token" "secret" .existingSecret "key" .existingSecretKey) }}
{{- else if .token }}{{ $f = append $f (dict "path" "github-token" "secret" $ours "key" "github-token") }}
{{- else }}{{ fail "sources.github.enabled needs sources.github.existingSecret (or token), or a GitHub App (sources.github.app)" }}{{ end -}}
{{- end -}}
{{- end -}}
{{- with .Values.sources.grafana -}}
{{- if .enabled -}}
{{- if .existingSecret }}{{ $f = append $f (dict "path" "grafana-token" "secret" .existingSecret "key" .existingSecretKey) }}
{{- else if .token }}{{ $f = append $f (dict "path" "grafana-token" "secret" $ours "key" "grafana-token") }}
{{- else }}{{ fail "sources.grafana.enabled needs sources.grafana.existingSecret (or token): a Grafana service-account token with the Viewer role" }}{{ end -}}
{{- end -}}
{{- end -}}
{{- with .Values.redis -}}
{{- if .enabled -}}
{{- if .existingSecret }}{{ $f = append $f (dict "path" "redis-password" "secret" .existingSecret "key" .existingSecretKey) }}
{{- else if .password }}{{ $f = append $f (dict "path" "redis-password" "secret" $ours "key" "redis-password") }}{{ end -}}
{{- if .tls.enabled -}}
{{- with .tls.caSecret.name }}{{ $f = append $f (dict "path" "redis-tls/ca.crt" "secret" . "key" $.Values.redis.tls.caSecret.key) }}{{ end -}}
{{- with .tls.clientCertSecret }}{{ $f = append $f (dict "path" "redis-tls/tls.crt" "secret" . "key" "tls.crt") }}{{ $f = append $f (dict "path" "redis-tls/tls.key" "secret" . "key" "tls.key") }}{{ end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $c := .Values.clusters -}}
{{- with $c.kubeconfigSecret }}{{ $f = append $f (dict "path" (printf "kubeconfig-%s" $c.name) "secret" (required (printf "clusters (%s): kubeconfigSecret.name, the Secret holding the cluster's kubeconfig" $c.name) .name) "key" (.key | default "kubeconfig")) }}{{ end -}}
{{- end -}}
{{- toJson $f -}}
{{- end -}}

{{/*
The Kubernetes settings of the cluster whatchanged runs in, as JSON: its
RBAC is the chart's to grant. Without clusters, sources.kubernetes; with
them, the entry without kubeconfigSecret (in-cluster config), its own
settings over sources.kubernetes; enabled is false when every cluster is
remote.
*/}}
{{- define "whatchanged.localKube" -}}
{{- $k := deepCopy .Values.sources.kubernetes -}}
{{- if .Values.clusters -}}
{{- $local := list -}}
{{- range .Values.clusters }}{{ if not .kubeconfigSecret }}{{ $local = append $local . }}{{ end }}{{ end -}}
{{- if gt (len $local) 1 }}{{ fail (printf "clusters: %d entries have no kubeconfigSecret; only the cluster whatchanged runs in may go without one" (len $local)) }}{{ end -}}
{{- $_ := set $k "enabled" (eq (len $local) 1) -}}
{{- range $local }}{{ range $key, $v := pick . "namespaces" "rollouts" "configmaps" "secrets" "helm" "flux" }}{{ $_ := set $k $key $v }}{{ end }}{{ end -}}
{{- end -}}
{{- toJson $k -}}
{{- end -}}

{{/* Inline mode's upstreams as a JSON list: the operator's Alertmanager, then inline.upstreams. */}}
{{- define "whatchanged.inlineUpstreams" -}}
{{- $ups := list -}}
{{- with .Values.inline.alertmanager -}}
{{- if .enabled -}}
{{- $u := dict "name" "alertmanager" "url" (.url | default (printf "http://alertmanager-operated.%s.svc:9093" $.Release.Namespace)) "timeout" .timeout -}}
{{- with .discovery }}{{ $_ := set $u "discovery" . }}{{ end -}}
{{- with .httpConfig }}{{ $_ := set $u "http_config" . }}{{ end -}}
{{- $ups = append $ups $u -}}
{{- end -}}
{{- end -}}
{{- toJson (concat $ups .Values.inline.upstreams) -}}
{{- end -}}

{{/* RBAC rules for workloads (Kubernetes source), given its settings
     (sources.kubernetes, or a cluster's: whatchanged.localKube). */}}
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
{{- if ne .rollouts "off" }}
- apiGroups: [argoproj.io]
  resources: [rollouts]
  verbs: [get, list, watch]
{{- end }}
{{- with . }}
{{- $res := list }}
{{- if or .configmaps .helm }}{{ $res = append $res "configmaps" }}{{ end }}
{{- if or .secrets .helm }}{{ $res = append $res "secrets" }}{{ end }}
{{- if $res }}
- apiGroups: [""]
  resources: [{{ join ", " $res }}]
  verbs: [get, list, watch]
{{- end }}
{{- if ne .flux "off" }}
- apiGroups: [kustomize.toolkit.fluxcd.io]
  resources: [kustomizations]
  verbs: [get, list, watch]
- apiGroups: [helm.toolkit.fluxcd.io]
  resources: [helmreleases]
  verbs: [get, list, watch]
- apiGroups: [source.toolkit.fluxcd.io]
  resources: [gitrepositories]
  verbs: [get, list, watch]
{{- end }}
{{- end }}
{{- end -}}

{{- define "whatchanged.argoRules" -}}
- apiGroups: [argoproj.io]
  resources: [applications]
  verbs: [get, list, watch]
{{- end -}}

{{- define "whatchanged.subject" -}}
- kind: ServiceAccount
  name: {{ include "whatchanged.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- end -}}
