{{/*
The dispatcher's pod template, shared by the StatefulSet (embedded JetStream, its data on the "data"
volumeClaimTemplate) and the Deployment (external NATS, no data volume).
*/}}
{{- define "hookline.dispatcher.podTemplate" -}}
{{- $d := .Values.dispatcher }}
{{- $embedded := not .Values.nats.url }}
metadata:
  {{- with (include "hookline.podAnnotations" (dict "ctx" $ "values" $d) | trim) }}
  {{- . | nindent 2 }}
  {{- end }}
  labels:
    {{- include "hookline.labels" (dict "ctx" $ "component" "dispatcher") | nindent 4 }}
    {{- with $d.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "hookline.dispatcher.fullname" . }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  # The dispatcher drains the ingest API for up to 10 s, then finishes in-flight deliveries.
  terminationGracePeriodSeconds: 30
  containers:
    - name: dispatcher
      image: {{ include "hookline.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      command: ["/dispatcher"]
      args:
        - --listen-address=:8090
        - --metrics-bind-address=:8091
        {{- if $d.metrics.secure }}
        - --metrics-secure
        {{- if $d.metrics.tls.existingSecret }}
        - --metrics-cert-dir=/etc/hookline/metrics-tls
        {{- end }}
        {{- end }}
        - --health-probe-bind-address=:8092
        - --tokens-file=/etc/hookline/tokens/tokens.yaml
        - --max-ingest-bytes-in-flight={{ $d.maxIngestBytesInFlight | int64 }}
        - --max-stored-bytes-per-account={{ $d.maxStoredBytesPerAccount | int64 }}
        - --max-events-per-second-per-account={{ $d.maxEventsPerSecondPerAccount }}
        - --max-receiver-connections={{ $d.maxReceiverConnections | int64 }}
        - --delivery-log={{ $d.deliveryLog.enabled }}
        {{- if $d.deliveryLog.enabled }}
        - --delivery-log-max-age={{ $d.deliveryLog.maxAge }}
        - --delivery-log-max-bytes={{ $d.deliveryLog.maxBytes | int64 }}
        - --delivery-log-gather={{ $d.deliveryLog.gather }}
        {{- end }}
        - --replay-max-per-namespace={{ $d.replay.maxPerNamespace | int64 }}
        - --replay-max-selection={{ $d.replay.maxSelection | int64 }}
        - --replay-log-reads-per-minute={{ $d.replay.logReadsPerMinute }}
        - --replay-notes-per-minute={{ $d.replay.notesPerMinute }}
        {{- if $d.tls.existingSecret }}
        - --tls-cert-file=/etc/hookline/ingest-tls/tls.crt
        - --tls-key-file=/etc/hookline/ingest-tls/tls.key
        {{- end }}
        {{- if include "hookline.dispatcher.apiServed" . }}
        - --api-bind-address=:8444
        {{- if and $d.api.allowPlainHTTP (not $d.tls.existingSecret) }}
        - --api-allow-plain-http
        {{- end }}
        {{- else }}
        - --api-bind-address=0
        {{- end }}
        {{- if $embedded }}
        - --data-dir=/data
        {{- with .Values.nats.listen.address }}
        {{- if not $.Values.nats.listen.tokenSecret }}
        {{- fail "nats.listen.address needs nats.listen.tokenSecret: the listener refuses clients without a token" }}
        {{- end }}
        - {{ printf "--nats-listen-address=%s" . | quote }}
        - --nats-listen-token-file=/etc/hookline/nats-listen/token
        {{- end }}
        {{- else }}
        - {{ printf "--nats-url=%s" .Values.nats.url | quote }}
        - --nats-replicas={{ .Values.nats.replicas }}
        - --lease-ttl={{ $d.leaseTTL }}
        {{- if gt (int $d.partitions) 0 }}
        - --partitions={{ $d.partitions }}
        {{- end }}
        {{- if .Values.nats.auth.existingSecret }}
        {{- if eq .Values.nats.auth.type "nkey" }}
        - --nats-nkey-seed-file=/etc/hookline/nats-auth/nkey.seed
        {{- else if eq .Values.nats.auth.type "token" }}
        - --nats-token-file=/etc/hookline/nats-auth/token
        {{- else }}
        - --nats-creds-file=/etc/hookline/nats-auth/user.creds
        {{- end }}
        {{- end }}
        {{- if .Values.nats.tlsSecret }}
        - --nats-ca-file=/etc/hookline/nats-tls/ca.crt
        {{- if .Values.nats.tlsClientCert }}
        - --nats-cert-file=/etc/hookline/nats-tls/tls.crt
        - --nats-key-file=/etc/hookline/nats-tls/tls.key
        {{- end }}
        {{- end }}
        {{- end }}
        {{- with .Values.smtp }}
        {{- if .address }}
        - {{ printf "--smtp-address=%s" .address | quote }}
        - {{ printf "--smtp-from=%s" .from | quote }}
        - --smtp-starttls={{ .starttls }}
        {{- if .username }}
        - {{ printf "--smtp-username=%s" .username | quote }}
        {{- end }}
        {{- if .existingSecret }}
        - --smtp-password-file=/etc/hookline/smtp/password
        {{- end }}
        - --problem-email-after={{ $.Values.problemEmails.after }}
        - --problem-email-interval={{ $.Values.problemEmails.interval }}
        - --problem-email-namespace-limit={{ $.Values.problemEmails.namespaceLimit | int }}
        - --problem-email-total-limit={{ $.Values.problemEmails.totalLimit | int }}
        {{- range $account, $domains := $.Values.problemEmails.allowedDomains }}
        {{- if $domains }}
        - {{ printf "--problem-email-allowed-domains=%s=%s" $account (join "," $domains) | quote }}
        {{- end }}
        {{- end }}
        {{- end }}
        {{- end }}
        {{- include "hookline.commonArgs" . | nindent 8 }}
        {{- with $d.extraArgs }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        - name: ingest
          containerPort: 8090
          protocol: TCP
        {{- if include "hookline.dispatcher.apiServed" . }}
        - name: api
          containerPort: 8444
          protocol: TCP
        {{- end }}
        - name: metrics
          containerPort: 8091
          protocol: TCP
        - name: probes
          containerPort: 8092
          protocol: TCP
      # The probe server starts only once the store is open, which after an unclean stop can take
      # minutes (JetStream checks and recovers its files): liveness applies once /healthz has
      # answered, or after 5 minutes.
      startupProbe:
        httpGet:
          path: /healthz
          port: probes
        periodSeconds: 10
        failureThreshold: 30
      livenessProbe:
        httpGet:
          path: /healthz
          port: probes
        initialDelaySeconds: 15
        periodSeconds: 20
      # The ingest API answers only once the routing table reflects the cluster, and is ready while
      # events can be stored (NATS reachable, the tokens file valid) and, active-active, while this
      # replica is a current member of the group.
      readinessProbe:
        httpGet:
          path: /readyz
          port: ingest
          {{- if $d.tls.existingSecret }}
          scheme: HTTPS
          {{- end }}
        periodSeconds: 10
      resources:
        {{- toYaml $d.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        {{- if $embedded }}
        - name: data
          mountPath: /data
        {{- end }}
        - name: tokens
          mountPath: /etc/hookline/tokens
          readOnly: true
        {{- include "hookline.attestation.volumeMount" . | nindent 8 }}
        {{- if and $d.metrics.secure $d.metrics.tls.existingSecret }}
        - name: metrics-tls
          mountPath: /etc/hookline/metrics-tls
          readOnly: true
        {{- end }}
        {{- if $d.tls.existingSecret }}
        - name: ingest-tls
          mountPath: /etc/hookline/ingest-tls
          readOnly: true
        {{- end }}
        {{- if and .Values.smtp.address .Values.smtp.existingSecret }}
        - name: smtp
          mountPath: /etc/hookline/smtp
          readOnly: true
        {{- end }}
        {{- if and (not $embedded) .Values.nats.auth.existingSecret }}
        - name: nats-auth
          mountPath: /etc/hookline/nats-auth
          readOnly: true
        {{- end }}
        {{- if and $embedded .Values.nats.listen.address }}
        - name: nats-listen
          mountPath: /etc/hookline/nats-listen
          readOnly: true
        {{- end }}
        {{- if and (not $embedded) .Values.nats.tlsSecret }}
        - name: nats-tls
          mountPath: /etc/hookline/nats-tls
          readOnly: true
        {{- end }}
        {{- with (include "hookline.extraCA.volumeMount" . | trim) }}
        {{- . | nindent 8 }}
        {{- end }}
  volumes:
    - name: tokens
      secret:
        secretName: {{ include "hookline.ingestTokens.secretName" . }}
    {{- include "hookline.attestation.volume" . | nindent 4 }}
    {{- if and $d.metrics.secure $d.metrics.tls.existingSecret }}
    - name: metrics-tls
      secret:
        secretName: {{ $d.metrics.tls.existingSecret }}
    {{- end }}
    {{- if $d.tls.existingSecret }}
    - name: ingest-tls
      secret:
        secretName: {{ $d.tls.existingSecret }}
    {{- end }}
    {{- if and (not $embedded) .Values.nats.auth.existingSecret }}
    - name: nats-auth
      secret:
        secretName: {{ .Values.nats.auth.existingSecret }}
    {{- end }}
    {{- if and $embedded .Values.nats.listen.address }}
    - name: nats-listen
      secret:
        secretName: {{ .Values.nats.listen.tokenSecret }}
        items:
          - key: token
            path: token
    {{- end }}
    {{- if and (not $embedded) .Values.nats.tlsSecret }}
    - name: nats-tls
      secret:
        secretName: {{ .Values.nats.tlsSecret }}
    {{- end }}
    {{- if and .Values.smtp.address .Values.smtp.existingSecret }}
    - name: smtp
      secret:
        secretName: {{ .Values.smtp.existingSecret }}
        items:
          - key: password
            path: password
    {{- end }}
    {{- with (include "hookline.extraCA.volume" . | trim) }}
    {{- . | nindent 4 }}
    {{- end }}
  {{- with (include "hookline.scheduling" $d | trim) }}
  {{- . | nindent 2 }}
  {{- end }}
  {{- if and (not $embedded) (gt (int $d.replicas) 1) }}
  # Replicas on different nodes where the scheduler can: a node lost takes one replica's share (or
  # the lease holder or a standby), not all of them. Soft, so that a small cluster still runs every
  # replica.
  topologySpreadConstraints:
    {{- if $d.topologySpreadConstraints }}
    {{- toYaml $d.topologySpreadConstraints | nindent 4 }}
    {{- else }}
    - maxSkew: 1
      topologyKey: kubernetes.io/hostname
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "hookline.selectorLabels" (dict "ctx" $ "component" "dispatcher") | nindent 10 }}
    {{- end }}
  {{- end }}
{{- end }}
