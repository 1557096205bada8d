{{- define "sigscope.webhook" -}}{{ .Release.Name }}-webhook{{- end }}

{{- define "sigscope.labels" -}}
app.kubernetes.io/name: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end }}

{{- define "sigscope.metadata" -}}
name: {{ include "sigscope.webhook" . }}
namespace: {{ .Release.Namespace }}
labels:
  {{- include "sigscope.labels" . | nindent 2 }}
{{- end }}

{{/* One webhook of either configuration; call with (dict "root" $ "mutating" true|false). */}}
{{- define "sigscope.hook" -}}
{{- $root := .root -}}
- name: {{ ternary "mutate" "validate" .mutating }}.sigscope.dev
  admissionReviewVersions: [v1]
  clientConfig:
    service:
      name: {{ include "sigscope.webhook" $root }}
      namespace: {{ $root.Release.Namespace }}
      path: {{ ternary "/mutate" "/validate" .mutating }}
      port: 443
    {{- with $root.Values.caBundle }}
    caBundle: {{ b64enc . }}
    {{- end }}
  rules:
    - apiGroups: [""]
      apiVersions: [v1]
      resources: [pods, pods/ephemeralcontainers, replicationcontrollers]
      operations: [CREATE, UPDATE]
      scope: Namespaced
    - apiGroups: [apps]
      apiVersions: [v1]
      resources: [deployments, replicasets, statefulsets, daemonsets]
      operations: [CREATE, UPDATE]
      scope: Namespaced
    - apiGroups: [batch]
      apiVersions: [v1]
      resources: [jobs, cronjobs]
      operations: [CREATE, UPDATE]
      scope: Namespaced
  failurePolicy: {{ $root.Values.failurePolicy }}
  matchPolicy: Equivalent
  sideEffects: None
  timeoutSeconds: {{ $root.Values.timeoutSeconds }}
  namespaceSelector:
    matchExpressions:
      - key: kubernetes.io/metadata.name
        operator: NotIn
        values:
          {{- concat (list "kube-system" $root.Release.Namespace) $root.Values.exemptNamespaces | uniq | sortAlpha | toYaml | nindent 10 }}
  {{- if .mutating }}
  reinvocationPolicy: IfNeeded
  {{- end }}
{{- end }}

{{- define "sigscope.configMetadata" -}}
name: {{ include "sigscope.webhook" . }}
labels:
  {{- include "sigscope.labels" . | nindent 2 }}
{{- if not .Values.caBundle }}
annotations:
  cert-manager.io/inject-ca-from: {{ .Release.Namespace }}/{{ include "sigscope.webhook" . }}
{{- end }}
{{- end }}
