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
{{- $excluded := concat (list "kube-system" "kube-public" "kube-node-lease" .Release.Namespace) .Values.webhook.excludeNamespaces | uniq }}
{{- $watch := include "serin.watchNamespaces" . | fromJsonArray -}}
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      {{- if $watch }}
      {{- $served := list }}
      {{- range $watch }}{{ if not (has . $excluded) }}{{ $served = append $served . }}{{ end }}{{ end }}
      {{- if not $served }}{{ fail "watchNamespaces: every namespace is excluded from the Deployment webhooks (kube-system, kube-public, kube-node-lease, the release namespace, webhook.excludeNamespaces); install serin in a namespace of its own" }}{{ end }}
      operator: In
      values:
        {{- range $served }}
        - {{ . | quote }}
        {{- end }}
      {{- else }}
      operator: NotIn
      values:
        {{- range $excluded }}
        - {{ . | quote }}
        {{- end }}
      {{- end }}
{{- end -}}

{{/* The namespaceSelector of serin's own kinds' webhooks: the watched
namespaces in a namespaced install, else every namespace. */}}
{{- define "serin.crdNamespaceSelector" -}}
{{- with include "serin.watchNamespaces" . | fromJsonArray }}
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: In
      values:
        {{- range . }}
        - {{ . | quote }}
        {{- end }}
{{- end }}
{{- end -}}

{{- define "serin.webhookAnnotations" -}}
{{- if eq .Values.certificates.mode "certManager" -}}
annotations:
  cert-manager.io/inject-ca-from: {{ printf "%s/%s-webhook" .Release.Namespace (include "serin.fullname" .) }}
{{- end -}}
{{- end -}}

{{/* watchNamespaces, unique and sorted, as a JSON list (empty: the cluster). */}}
{{- define "serin.watchNamespaces" -}}
{{- .Values.watchNamespaces | default list | uniq | sortAlpha | toJson -}}
{{- end -}}

{{/* Istio's root namespace, where mesh-wide EnvoyFilters live. */}}
{{- define "serin.istioRootNamespace" -}}istio-system{{- end -}}

{{/* RBAC of the core group: Services serin creates for hooks, the pods
behind them, and events on Canaries. */}}
{{- define "serin.coreRules" -}}
{{- if .Values.controller.configTracking }}
{{- /* Config tracking: ConfigMaps and Secrets an opted-in template
references are read and snapshotted beside them; pods the pod webhook
missed are deleted so that they are made again. */}}
- apiGroups: [""]
  resources: ["configmaps", "secrets", "services"]
  verbs: ["create", "delete", "get", "list", "patch", "update", "watch"]
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["delete", "get", "list", "watch"]
{{- else }}
- apiGroups: [""]
  resources: ["namespaces", "pods"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["create", "delete", "get", "list", "patch", "update", "watch"]
{{- end }}
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}

{{/* RBAC of the release engine's workloads and serin's own kinds; with
Istio on, EnvoyFilters. */}}
{{- define "serin.appRules" -}}
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["create", "delete", "get", "list", "patch", "update", "watch"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["create", "delete", "get", "list", "patch", "update", "watch"]
- apiGroups: ["flagger.app"]
  resources: ["alertproviders", "canaries", "metrictemplates"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["flagger.app", "serin.dev"]
  resources: ["canaries/finalizers", "canaries/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["gateways"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["grpcroutes", "httproutes", "tcproutes"]
  verbs: ["create", "delete", "get", "list", "patch", "update", "watch"]
- apiGroups: ["keda.sh"]
  resources: ["scaledobjects"]
  verbs: ["create", "delete", "get", "update"]
{{- if ne .Values.istio.mode "none" }}
{{ include "serin.envoyFilterRule" . }}
{{ include "serin.virtualServiceRule" . }}
{{- end }}
- apiGroups: ["networking.istio.io"]
  resources: ["gateways", "virtualservices"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["serin.dev"]
  resources: ["alertproviders", "metrictemplates"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["serin.dev"]
  resources: ["canaries"]
  verbs: ["create", "delete", "get", "list", "patch", "update", "watch"]
- apiGroups: ["split.smi-spec.io"]
  resources: ["trafficsplits"]
  verbs: ["create", "delete", "get", "list", "patch", "update", "watch"]
{{- end -}}

{{/* Who routes which host: read cluster-wide to decide which hosts a
Canary's namespace owns (admission and the traffic controller). */}}
{{- define "serin.hostRules" -}}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["gateways"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["grpcroutes", "httproutes", "tcproutes"]
  verbs: ["create", "delete", "get", "list", "patch", "update", "watch"]
- apiGroups: ["networking.istio.io"]
  resources: ["gateways", "virtualservices"]
  verbs: ["get", "list", "watch"]
{{- end -}}

{{/* The VirtualService that binds a release's hosts to its gateways (or
its delegate), in the release's namespace, as Flagger's Istio router writes. */}}
{{- define "serin.virtualServiceRule" -}}
- apiGroups: ["networking.istio.io"]
  resources: ["virtualservices"]
  verbs: ["create", "delete", "patch", "update"]
{{- end -}}

{{- define "serin.envoyFilterRule" -}}
- apiGroups: ["networking.istio.io"]
  resources: ["envoyfilters"]
  verbs: ["create", "delete", "get", "list", "patch", "update", "watch"]
{{- end -}}

{{/* A RoleBinding of serin's service account: dict root, namespace, role. */}}
{{- define "serin.roleBinding" -}}
{{- $root := .root }}
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ .role }}
  namespace: {{ .namespace }}
  labels:
    {{- include "serin.labels" $root | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ .role }}
subjects:
  - kind: ServiceAccount
    name: {{ include "serin.serviceAccount" $root }}
    namespace: {{ $root.Release.Namespace }}
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
