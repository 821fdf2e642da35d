{{/*
Name of the chart, or nameOverride.
*/}}
{{- define "hookline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Prefix of every object name: fullnameOverride, else the release name when it contains the chart
name ("hookline" -> hookline-manager), else <release>-<chart>. Short enough for "-manager-metrics-auth".
*/}}
{{- define "hookline.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "hookline.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object. Call with (dict "ctx" $ "component" "manager"); component may be empty.
*/}}
{{- define "hookline.labels" -}}
helm.sh/chart: {{ include "hookline.chart" .ctx }}
{{ include "hookline.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- end }}

{{/*
Selector labels of one component's pods. Call with (dict "ctx" $ "component" "manager").
*/}}
{{- define "hookline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hookline.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end }}

{{- define "hookline.manager.fullname" -}}
{{- printf "%s-manager" (include "hookline.fullname" .) }}
{{- end }}

{{- define "hookline.console.fullname" -}}
{{- printf "%s-console" (include "hookline.fullname" .) }}
{{- end }}

{{- define "hookline.dispatcher.fullname" -}}
{{- printf "%s-dispatcher" (include "hookline.fullname" .) }}
{{- end }}

{{- define "hookline.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "hookline.extraCA.name" -}}
{{- printf "%s-extra-ca" (include "hookline.fullname" .) }}
{{- end }}

{{/*
The ingest tokens Secret: ingestTokens.existingSecret, or <release>-ingest-tokens made from
ingestTokens.tokens. Fails unless exactly one of the two is set.
*/}}
{{- define "hookline.ingestTokens.secretName" -}}
{{- $t := .Values.ingestTokens }}
{{- if and $t.existingSecret $t.tokens }}
{{- fail "ingestTokens: set either ingestTokens.existingSecret or ingestTokens.tokens, not both" }}
{{- else if $t.existingSecret }}
{{- $t.existingSecret }}
{{- else if $t.tokens }}
{{- printf "%s-ingest-tokens" .Release.Name }}
{{- else }}
{{- fail "ingestTokens: the dispatcher needs ingest tokens; set ingestTokens.existingSecret (a Secret with the key tokens.yaml) or ingestTokens.tokens (a list of {name, token, accounts}), e.g. --set-json 'ingestTokens.tokens=[{\"name\":\"platform\",\"token\":\"<16+ random characters>\",\"accounts\":[\"*\"]}]'" }}
{{- end }}
{{- end }}

{{/*
Container settings shared by both components: image, flags every component takes, security.
*/}}
{{- define "hookline.commonArgs" -}}
- --attestation-key-file=/etc/hookline/attestation/key
- {{ printf "--default-client-id=%s" (required "clientId is required: the default X-AdobeSign-ClientId of Webhooks without spec.clientId" .Values.clientId) | quote }}
{{- if .Values.allowHTTP }}
- --allow-http
{{- end }}
{{- if .Values.extraCABundle }}
- --extra-ca-bundle=/etc/hookline/ca/ca.crt
{{- end }}
{{- $ssrf := .Values.ssrf | default dict }}
{{- with $ssrf.allowedCIDRs }}
- {{ printf "--allowed-cidrs=%s" (join "," .) | quote }}
{{- end }}
{{- with $ssrf.blockedCIDRs }}
- {{ printf "--blocked-cidrs=%s" (join "," .) | quote }}
{{- end }}
{{- if eq ($ssrf.mode | default "public") "allowlist" }}
{{- if not $ssrf.allowedCIDRs }}
{{- fail "ssrf.mode allowlist needs ssrf.allowedCIDRs: without them no receiver can be reached" }}
{{- end }}
- --egress-mode=allowlist
{{- end }}
{{- end }}

{{/*
The attestation key Secret: attestation.existingSecret, or <release>-attestation, which the chart
creates. Both components mount it (hookline.attestation.volume and .volumeMount).
*/}}
{{- define "hookline.attestation.secretName" -}}
{{- .Values.attestation.existingSecret | default (printf "%s-attestation" (include "hookline.fullname" .)) }}
{{- end }}

{{- define "hookline.attestation.volumeMount" -}}
- name: attestation
  mountPath: /etc/hookline/attestation
  readOnly: true
{{- end }}

{{- define "hookline.attestation.volume" -}}
- name: attestation
  secret:
    secretName: {{ include "hookline.attestation.secretName" . }}
    items:
      - key: key
        path: key
{{- end }}

{{- define "hookline.extraCA.volumeMount" -}}
{{- if .Values.extraCABundle }}
- name: extra-ca
  mountPath: /etc/hookline/ca
  readOnly: true
{{- end }}
{{- end }}

{{- define "hookline.extraCA.volume" -}}
{{- if .Values.extraCABundle }}
- name: extra-ca
  configMap:
    name: {{ include "hookline.extraCA.name" . }}
{{- end }}
{{- end }}

{{/*
Pod annotations: the user's, plus a checksum of the CA bundle so that changing it restarts the pods
(the tokens Secret needs none: the dispatcher re-reads it).
*/}}
{{- define "hookline.podAnnotations" -}}
{{- $ann := deepCopy (.values.podAnnotations | default dict) }}
{{- if .ctx.Values.extraCABundle }}
{{- $_ := set $ann "checksum/extra-ca" (sha256sum .ctx.Values.extraCABundle) }}
{{- end }}
{{- with $ann }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
nodeSelector, tolerations and affinity of one component. Call with the component's values.
*/}}
{{- define "hookline.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Whether the dispatcher serves the delivery log's read API: it carries bearer tokens, so only over
the ingest TLS certificate, or in plain HTTP when explicitly allowed. "true" or "".
*/}}
{{- define "hookline.dispatcher.apiServed" -}}
{{- $d := .Values.dispatcher }}
{{- if and $d.api.enabled (or $d.tls.existingSecret $d.api.allowPlainHTTP) }}true{{ end }}
{{- end }}

{{/*
Whether the console reads the delivery log: the dispatcher serves the read API over TLS (the console
sends users' tokens nowhere in plain HTTP). "true" or "".
*/}}
{{- define "hookline.console.deliveryLog" -}}
{{- $d := .Values.dispatcher }}
{{- if and .Values.console.deliveryLog.enabled $d.api.enabled $d.tls.existingSecret }}true{{ end }}
{{- end }}
