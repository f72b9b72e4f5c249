{{/* Names and labels. */}}
{{- define "jobsight.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "jobsight.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "jobsight.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ include "jobsight.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "jobsight.selectorLabels" -}}
app.kubernetes.io/name: {{ include "jobsight.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "jobsight.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "jobsight.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
The sidecar container. Include it in your own chart's pod spec:

  containers:
    - name: worker
      ...
    - {{- include "jobsight.sidecar" . | nindent 6 }}

and add the volumes of "jobsight.volumes" to the pod.
*/}}
{{- define "jobsight.sidecar" -}}
name: jobsight
image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
imagePullPolicy: {{ .Values.image.pullPolicy }}
args: ["serve", "--config", "/etc/jobsight/jobsight.yaml"]
ports:
  - name: jobsight
    containerPort: {{ .Values.sidecar.port }}
    protocol: TCP
env:
  - name: DATABASE_URL
    valueFrom:
      secretKeyRef:
        name: {{ .Values.sidecar.database.existingSecret | default .Values.database.existingSecret }}
        key: {{ ternary .Values.sidecar.database.key .Values.database.key (ne .Values.sidecar.database.existingSecret "") }}
  {{- if .Values.sidecar.webConfig.existingSecret }}
  - name: JOBSIGHT_WEB_CONFIG_FILE
    value: /etc/jobsight/web/{{ .Values.sidecar.webConfig.key }}
  {{- end }}
  - name: JOBSIGHT_HOST
    value: "0.0.0.0"
  - name: JOBSIGHT_PORT
    value: {{ .Values.sidecar.port | quote }}
  - name: JOBSIGHT_INSTANCE
    value: {{ include "jobsight.fullname" . | quote }}
  {{- if .Values.temporal.enabled }}
  - name: TEMPORAL_ADDRESS
    value: {{ .Values.temporal.address | quote }}
  {{- with .Values.temporal.httpAddress }}
  - name: JOBSIGHT_TEMPORAL_HTTP_ADDRESS
    value: {{ . | quote }}
  {{- end }}
  - name: TEMPORAL_NAMESPACE
    value: {{ .Values.temporal.namespace | quote }}
  - name: JOBSIGHT_TEMPORAL_TASK_QUEUES
    value: {{ join "," .Values.temporal.taskQueues | quote }}
  - name: TEMPORAL_TLS
    value: {{ .Values.temporal.tls | quote }}
  {{- with .Values.temporal.uiUrl }}
  - name: TEMPORAL_UI_URL
    value: {{ . | quote }}
  {{- end }}
  {{- if .Values.temporal.apiKey.existingSecret }}
  - name: TEMPORAL_API_KEY
    valueFrom:
      secretKeyRef:
        name: {{ .Values.temporal.apiKey.existingSecret }}
        key: {{ .Values.temporal.apiKey.key }}
  {{- end }}
  {{- end }}
  {{- with .Values.sidecar.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
livenessProbe:
  httpGet: {path: /livez, port: jobsight, scheme: {{ include "jobsight.scheme" . }}}
  {{- toYaml .Values.sidecar.livenessProbe | nindent 2 }}
readinessProbe:
  httpGet: {path: /readyz, port: jobsight, scheme: {{ include "jobsight.scheme" . }}}
  {{- toYaml .Values.sidecar.readinessProbe | nindent 2 }}
resources:
  {{- toYaml .Values.sidecar.resources | nindent 2 }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
volumeMounts:
  - name: jobsight-config
    mountPath: /etc/jobsight
    readOnly: true
  - name: jobsight-tmp
    mountPath: /tmp
  {{- if .Values.sidecar.webConfig.existingSecret }}
  - name: jobsight-web
    mountPath: /etc/jobsight/web
    readOnly: true
  {{- end }}
{{- end -}}

{{/* HTTPS when the web configuration turns TLS on (probes and monitors follow). */}}
{{- define "jobsight.scheme" -}}
{{ ternary "HTTPS" "HTTP" .Values.sidecar.webConfig.tls }}
{{- end -}}

{{/* The volumes the sidecar mounts (its settings; /tmp on a read-only root filesystem). */}}
{{- define "jobsight.volumes" -}}
- name: jobsight-config
  configMap:
    name: {{ include "jobsight.fullname" . }}-config
- name: jobsight-tmp
  emptyDir: {}
{{- if .Values.sidecar.webConfig.existingSecret }}
- name: jobsight-web
  secret:
    secretName: {{ .Values.sidecar.webConfig.existingSecret }}
{{- end }}
{{- end -}}

{{/* The sidecar as a Kubernetes native sidecar: an init container that keeps running. */}}
{{- define "jobsight.nativeSidecar" -}}
{{ include "jobsight.sidecar" . }}
restartPolicy: Always
{{- end -}}
