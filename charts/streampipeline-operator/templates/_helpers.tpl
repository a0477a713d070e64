{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "streampipeline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: the release name, unless it already contains the chart name.
*/}}
{{- define "streampipeline.fullname" -}}
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

{{- define "streampipeline.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object, without app.kubernetes.io/component. */}}
{{- define "streampipeline.baseLabels" -}}
helm.sh/chart: {{ include "streampipeline.chart" . }}
app.kubernetes.io/name: {{ include "streampipeline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: streampipeline
{{- end }}

{{/* Labels of the operator's own objects. */}}
{{- define "streampipeline.labels" -}}
{{ include "streampipeline.baseLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Selector labels of the operator Deployment (immutable: keep them minimal). */}}
{{- define "streampipeline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "streampipeline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The operator's ServiceAccount. */}}
{{- define "streampipeline.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "streampipeline.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator image reference (tag defaults to the chart's appVersion). */}}
{{- define "streampipeline.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* The REST service's image (spec.api): pipelines.apiImage, else the operator image (it
carries the `api` extra). */}}
{{- define "streampipeline.apiImage" -}}
{{- .Values.pipelines.apiImage | default (include "streampipeline.image" .) }}
{{- end }}

{{/* Namespaces the Spark driver's ServiceAccount + Role go to. */}}
{{- define "streampipeline.sparkNamespaces" -}}
{{- $ns := .Values.sparkRbac.namespaces | default .Values.watchNamespaces | default (list .Release.Namespace) }}
{{- toJson (uniq $ns) }}
{{- end }}

{{/*
The operator's rules without the cluster-scoped ones: kept equal to
streampipeline.rbac.rules(cluster=False) (tests/unit/test_chart.py checks).
*/}}
{{- define "streampipeline.namespacedRules" -}}
- apiGroups: ["streampipeline.io"]
  resources: ["streampipelines"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["streampipeline.io"]
  resources: ["streampipelines/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["streampipeline.io"]
  resources: ["streampipelines/finalizers"]
  verbs: ["update"]
- apiGroups: ["kafka.strimzi.io"]
  resources: ["kafkatopics"]
  verbs: ["get", "list", "watch", "create", "patch", "update"]
- apiGroups: ["sparkoperator.k8s.io"]
  resources: ["sparkapplications"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: [""]
  resources: ["configmaps", "persistentvolumeclaims"]
  verbs: ["get", "list", "watch", "create", "patch", "update"]
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* kopf discovers CRDs (always cluster-wide). */}}
{{- define "streampipeline.crdRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
{{- end }}

{{/* Cluster-wide mode: namespaced rules + CRDs + namespaces = streampipeline.rbac.rules(). */}}
{{- define "streampipeline.clusterRules" -}}
{{ include "streampipeline.namespacedRules" . }}
{{ include "streampipeline.crdRules" . }}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list", "watch"]
{{- end }}

{{/* The Spark driver's rules: equal to streampipeline.rbac.spark_rules(). */}}
{{- define "streampipeline.sparkRules" -}}
- apiGroups: [""]
  resources: ["pods", "services", "configmaps", "persistentvolumeclaims"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]
{{- end }}
