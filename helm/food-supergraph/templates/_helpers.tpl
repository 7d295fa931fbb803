{{/*
Names. Every object is "<fullname>-<component>"; fullname is the release name unless overridden.
*/}}
{{- define "food.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "food.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "food.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "food.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: food-supergraph
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component; call with (dict "root" $ "component" "users"). */}}
{{- define "food.selectorLabels" -}}
app.kubernetes.io/name: {{ include "food.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "food.componentLabels" -}}
{{ include "food.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
The deployable components. Subgraph workers run their subgraph's image with another command, read
their subgraph's ConfigMap and then their own (later keys win), and serve /healthz, /readyz and
/metrics on an operations port. `secrets` are the variables each one takes from a Secret.
*/}}
{{- define "food.components" -}}
gateway:
  values: gateway
  kind: graphql
  image: gateway
  portEnv: GATEWAY_PORT
  configMaps: [gateway]
  secrets: [INTERNAL_TOKEN_SECRET, JWT_SECRET, REDIS_URL]
  subgraph: false
users:
  values: users
  kind: graphql
  image: users
  portEnv: USERS_PORT
  configMaps: [users]
  secrets: [INTERNAL_TOKEN_SECRET, JWT_SECRET, USERS_ENCRYPTION_KEYS, USERS_DATABASE_URL]
  subgraph: true
meals:
  values: meals
  kind: graphql
  image: meals
  portEnv: MEALS_PORT
  configMaps: [meals]
  secrets: [INTERNAL_TOKEN_SECRET, MEALS_DATABASE_URL]
  subgraph: true
orders:
  values: orders
  kind: graphql
  image: orders
  portEnv: ORDERS_PORT
  configMaps: [orders]
  secrets: [INTERNAL_TOKEN_SECRET, ORDERS_DATABASE_URL]
  subgraph: true
payments:
  values: payments
  kind: graphql
  image: payments
  portEnv: PAYMENTS_PORT
  configMaps: [payments]
  secrets: [INTERNAL_TOKEN_SECRET, PAYMENTS_DATABASE_URL]
  subgraph: true
meals-worker:
  values: mealsWorker
  kind: worker
  image: meals
  portEnv: MEALS_WORKER_PORT
  configMaps: [meals, meals-worker]
  secrets: [INTERNAL_TOKEN_SECRET, MEALS_DATABASE_URL, REDIS_URL]
  command: [node, dist/worker-main.js]
  subgraph: false
orders-worker:
  values: ordersWorker
  kind: worker
  image: orders
  portEnv: ORDERS_WORKER_PORT
  configMaps: [orders, orders-worker]
  secrets: [INTERNAL_TOKEN_SECRET, ORDERS_DATABASE_URL, REDIS_URL]
  command: [node, dist/worker-main.js]
  subgraph: false
payments-worker:
  values: paymentsWorker
  kind: worker
  image: payments
  portEnv: PAYMENTS_WORKER_PORT
  configMaps: [payments, payments-worker]
  secrets: [INTERNAL_TOKEN_SECRET, PAYMENTS_DATABASE_URL, REDIS_URL]
  command: [node, dist/worker-main.js]
  subgraph: false
{{- end -}}

{{/* "registry/repository:tag" of one image key (gateway, users, ..., migrations). */}}
{{- define "food.image" -}}
{{- $root := .root -}}
{{- $image := index $root.Values .key "image" -}}
{{- $tag := $image.tag | default $root.Values.image.tag | default $root.Chart.AppVersion -}}
{{- $repository := $image.repository -}}
{{- with $root.Values.image.registry -}}
{{- $repository = printf "%s/%s" (trimSuffix "/" .) $repository -}}
{{- end -}}
{{- printf "%s:%s" $repository (toString $tag) -}}
{{- end -}}

{{/* The in-cluster GraphQL URL of one subgraph. */}}
{{- define "food.subgraphUrl" -}}
{{- $port := index .root.Values .name "port" -}}
{{- printf "http://%s-%s.%s.svc:%v/graphql" (include "food.fullname" .root) .name .root.Release.Namespace $port -}}
{{- end -}}

{{/*
Where each secret variable comes from: {"name": <Secret>, "key": <key>}. Values given inline go into
the chart's Secret (<fullname>); existingSecret references point at a Secret the operator made.
Fails with a message naming the value to set when neither is given.
*/}}
{{- define "food.secretRef" -}}
{{- $root := .root -}}
{{- $var := .var -}}
{{- $fullname := include "food.fullname" $root -}}
{{- $s := $root.Values.secrets -}}
{{- if has $var (list "INTERNAL_TOKEN_SECRET" "JWT_SECRET" "USERS_ENCRYPTION_KEYS") -}}
  {{- if $s.existingSecret -}}
name: {{ $s.existingSecret }}
key: {{ $var }}
  {{- else -}}
    {{- $field := get (dict "INTERNAL_TOKEN_SECRET" "internalTokenSecret" "JWT_SECRET" "jwtSecret" "USERS_ENCRYPTION_KEYS" "usersEncryptionKeys") $var -}}
    {{- $value := required (printf "secrets.%s is required (%s), or set secrets.existingSecret" $field $var) (get $s $field) -}}
    {{- if and (ne $var "USERS_ENCRYPTION_KEYS") (lt (len $value) 32) -}}
      {{- fail (printf "secrets.%s must be at least 32 characters" $field) -}}
    {{- end -}}
name: {{ $fullname }}
key: {{ $var }}
  {{- end -}}
{{- else if eq $var "REDIS_URL" -}}
  {{- $r := $root.Values.redis -}}
  {{- if $r.existingSecret.name -}}
name: {{ $r.existingSecret.name }}
key: {{ $r.existingSecret.key | default "REDIS_URL" }}
  {{- else -}}
    {{- $_ := required "redis.url is required (redis:// or rediss://), or set redis.existingSecret.name" $r.url -}}
name: {{ $fullname }}
key: REDIS_URL
  {{- end -}}
{{- else if hasSuffix "_DATABASE_URL" $var -}}
  {{- $service := $var | trimSuffix "_DATABASE_URL" | lower -}}
  {{- $db := index $root.Values.databases $service -}}
  {{- if $db.existingSecret.name -}}
name: {{ $db.existingSecret.name }}
key: {{ $db.existingSecret.key | default $var }}
  {{- else -}}
    {{- $_ := required (printf "databases.%s.url is required (postgresql://...), or set databases.%s.existingSecret.name" $service $service) $db.url -}}
name: {{ .secretName | default $fullname }}
key: {{ $var }}
  {{- end -}}
{{- else -}}
  {{- fail (printf "food.secretRef: unknown secret variable %s" $var) -}}
{{- end -}}
{{- end -}}

{{/* One env entry per secret variable, from food.secretRef. */}}
{{- define "food.secretEnv" -}}
{{- $root := .root -}}
{{- range .vars }}
- name: {{ . }}
  valueFrom:
    secretKeyRef:
{{ include "food.secretRef" (dict "root" $root "var" . "secretName" $.secretName) | indent 6 }}
{{- end }}
{{- end -}}

{{/* Pod and container security settings every workload shares. */}}
{{- define "food.podSecurityContext" -}}
{{ toYaml .Values.podSecurityContext }}
{{- end -}}

{{- define "food.containerSecurityContext" -}}
{{ toYaml .Values.securityContext }}
{{- end -}}

{{/* An env value as the string a container sees; whole numbers without an exponent. */}}
{{- define "food.envValue" -}}
{{- if and (kindIs "float64" .) (eq (float64 (int64 .)) .) -}}
{{- int64 . -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{/*
The non-secret environment of one component's ConfigMap, as YAML. Workers read their subgraph's
ConfigMap first, so theirs holds only what differs. `<component>.env` entries come last and win.
*/}}
{{- define "food.configData" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $name := .component -}}
{{- $data := dict "OTEL_SERVICE_NAME" $name -}}
{{- if not (hasSuffix "-worker" $name) -}}
  {{- $_ := set $data "NODE_ENV" $v.nodeEnv -}}
  {{- $_ := set $data "LOG_LEVEL" $v.logLevel -}}
  {{- $_ := set $data "HOST" "0.0.0.0" -}}
  {{- with $v.tracing.otlpEndpoint -}}
    {{- $_ := set $data "OTEL_EXPORTER_OTLP_ENDPOINT" . -}}
  {{- end -}}
{{- end -}}
{{- if eq $name "gateway" -}}
  {{- $_ := set $data "GATEWAY_PORT" (include "food.envValue" $v.gateway.port) -}}
  {{- $_ := set $data "JWT_ISSUER" $v.auth.jwtIssuer -}}
  {{- $_ := set $data "JWT_AUDIENCE" $v.auth.jwtAudience -}}
  {{- range $subgraph := list "users" "meals" "orders" "payments" -}}
    {{- $_ := set $data (printf "%s_SUBGRAPH_URL" (upper $subgraph)) (include "food.subgraphUrl" (dict "root" $root "name" $subgraph)) -}}
  {{- end -}}
  {{- $_ := set $data "REDIS_KEY_PREFIX" $v.redis.keyPrefix -}}
  {{- $_ := set $data "REDIS_REDELIVER_AFTER_MS" (include "food.envValue" $v.redis.redeliverAfterMs) -}}
  {{- if $v.gateway.persistedQueriesManifest -}}
    {{- $_ := set $data "PERSISTED_QUERIES" "safelist" -}}
    {{- $_ := set $data "PERSISTED_QUERIES_MANIFEST" "/etc/food/persisted-queries/manifest.json" -}}
  {{- end -}}
{{- else if eq $name "users" -}}
  {{- $_ := set $data "USERS_PORT" (include "food.envValue" $v.users.port) -}}
  {{- $_ := set $data "JWT_ISSUER" $v.auth.jwtIssuer -}}
  {{- $_ := set $data "JWT_AUDIENCE" $v.auth.jwtAudience -}}
  {{- $_ := set $data "USERS_ENCRYPTION_ACTIVE_KEY_ID" (required "users.encryptionActiveKeyId is required: the id (in USERS_ENCRYPTION_KEYS) of the key new values are encrypted with" $v.users.encryptionActiveKeyId) -}}
{{- else if eq $name "meals" -}}
  {{- $_ := set $data "MEALS_PORT" (include "food.envValue" $v.meals.port) -}}
  {{- $_ := set $data "REDIS_KEY_PREFIX" $v.redis.keyPrefix -}}
  {{- $_ := set $data "REDIS_REDELIVER_AFTER_MS" (include "food.envValue" $v.redis.redeliverAfterMs) -}}
{{- else if eq $name "orders" -}}
  {{- $_ := set $data "ORDERS_PORT" (include "food.envValue" $v.orders.port) -}}
  {{- $_ := set $data "MEALS_SUBGRAPH_URL" (include "food.subgraphUrl" (dict "root" $root "name" "meals")) -}}
  {{- $_ := set $data "REDIS_KEY_PREFIX" $v.redis.keyPrefix -}}
  {{- $_ := set $data "REDIS_REDELIVER_AFTER_MS" (include "food.envValue" $v.redis.redeliverAfterMs) -}}
{{- else if eq $name "payments" -}}
  {{- $_ := set $data "PAYMENTS_PORT" (include "food.envValue" $v.payments.port) -}}
  {{- $_ := set $data "ORDERS_SUBGRAPH_URL" (include "food.subgraphUrl" (dict "root" $root "name" "orders")) -}}
  {{- $_ := set $data "REDIS_KEY_PREFIX" $v.redis.keyPrefix -}}
  {{- $_ := set $data "REDIS_REDELIVER_AFTER_MS" (include "food.envValue" $v.redis.redeliverAfterMs) -}}
{{- else if eq $name "meals-worker" -}}
  {{- $_ := set $data "MEALS_WORKER_PORT" (include "food.envValue" $v.mealsWorker.port) -}}
{{- else if eq $name "orders-worker" -}}
  {{- $_ := set $data "ORDERS_WORKER_PORT" (include "food.envValue" $v.ordersWorker.port) -}}
{{- else if eq $name "payments-worker" -}}
  {{- $_ := set $data "PAYMENTS_WORKER_PORT" (include "food.envValue" $v.paymentsWorker.port) -}}
{{- end -}}
{{- $values := index (include "food.components" $root | fromYaml) $name "values" -}}
{{- range $key, $value := (index $v $values "env") -}}
  {{- $_ := set $data $key (include "food.envValue" $value) -}}
{{- end -}}
{{- toYaml $data -}}
{{- end -}}

{{- define "food.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "food.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* PromQL label matchers for this release's scrape targets (labels the Prometheus Operator sets). */}}
{{- define "food.promSelector" -}}
namespace="{{ .Release.Namespace }}",service=~"{{ include "food.fullname" . }}-.+"
{{- end -}}
