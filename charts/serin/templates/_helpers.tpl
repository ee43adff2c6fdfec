{{/* Base name of every object. */}}
{{- define "serin.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "serin.webhookService" -}}{{ include "serin.fullname" . }}-webhook{{- end -}}
{{- define "serin.xdsService" -}}{{ include "serin.fullname" . }}-xds{{- end -}}
{{- define "serin.webhookSecret" -}}{{ include "serin.fullname" . }}-webhook-tls{{- end -}}
{{- define "serin.serviceAccount" -}}{{ default (include "serin.fullname" .) .Values.controller.serviceAccount.name }}{{- end -}}

{{- define "serin.selectorLabels" -}}
app.kubernetes.io/name: serin
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "serin.labels" -}}
{{ include "serin.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "serin.image" -}}
{{- $img := .Values.controller.image -}}
{{- if $img.digest -}}
{{ $img.repository }}@{{ $img.digest }}
{{- else -}}
{{ $img.repository }}:{{ default .Chart.AppVersion $img.tag }}
{{- end -}}
{{- end -}}

{{/*
clientConfig of one webhook: by URL when webhook.url is set, else through
the webhook Service. Call with (dict "root" $ "path" "/...").
*/}}
{{- define "serin.clientConfig" -}}
{{- if .root.Values.webhook.url -}}
url: {{ printf "%s%s" (trimSuffix "/" .root.Values.webhook.url) .path | quote }}
{{- else -}}
service:
  name: {{ include "serin.webhookService" .root }}
  namespace: {{ .root.Release.Namespace }}
  path: {{ .path }}
  port: 443
{{- end -}}
{{- end -}}

{{/* Namespaces whose Deployments serin never sees. */}}
{{- define "serin.namespaceSelector" -}}
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values:
        {{- $names := concat (list "kube-system" "kube-public" "kube-node-lease" .Release.Namespace) .Values.webhook.excludeNamespaces | uniq }}
        {{- range $names }}
        - {{ . | quote }}
        {{- end }}
{{- end -}}

{{- define "serin.webhookAnnotations" -}}
{{- if eq .Values.certificates.mode "certManager" -}}
annotations:
  cert-manager.io/inject-ca-from: {{ printf "%s/%s-webhook" .Release.Namespace (include "serin.fullname" .) }}
{{- end -}}
{{- end -}}

{{/*
serin.xdsClientCA: the ConfigMap of extra xDS client CAs; in Istio modes
Istio's root (istio-ca-root-cert, which istiod publishes in every
namespace) unless set. Empty with xds.plaintext.
*/}}
{{- define "serin.xdsClientCA" -}}
{{- if not .Values.xds.plaintext -}}
{{- if .Values.xds.clientCA.configMap -}}{{ .Values.xds.clientCA.configMap }}
{{- else if ne .Values.istio.mode "none" -}}istio-ca-root-cert
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
serin.podAnnotations: controller.podAnnotations; in Istio modes serin's own
sidecar (if any) must not intercept the xDS port: Istio's Envoys talk TLS
straight to serin with their workload certificates.
*/}}
{{- define "serin.podAnnotations" -}}
{{- $ann := deepCopy (default dict .Values.controller.podAnnotations) -}}
{{- if ne .Values.istio.mode "none" -}}
{{- $key := "traffic.sidecar.istio.io/excludeInboundPorts" -}}
{{- $port := toString .Values.controller.ports.xds -}}
{{- $cur := get $ann $key | toString -}}
{{- if not $cur -}}
{{- $_ := set $ann $key $port -}}
{{- else if not (has $port (splitList "," (nospace $cur))) -}}
{{- $_ := set $ann $key (printf "%s,%s" $cur $port) -}}
{{- end -}}
{{- end -}}
{{- with $ann }}{{ toYaml . }}{{ end -}}
{{- end -}}
