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
/metrics on an operations port. `secrets` are the variables each one takes from a Secret; `redis`
ones talk to Redis and all get the same Redis environment (food.redisConfig, food.redisSecrets).
*/}}
{{- define "food.components" -}}
gateway:
  values: gateway
  kind: graphql
  image: gateway
  portEnv: GATEWAY_PORT
  configMaps: [gateway]
  secrets: [INTERNAL_TOKEN_SECRET]
  redis: true
  subgraph: false
users:
  values: users
  kind: graphql
  image: users
  portEnv: USERS_PORT
  configMaps: [users]
  secrets: [INTERNAL_TOKEN_SECRET, USERS_SIGNING_KEYS, USERS_ENCRYPTION_KEYS, USERS_BLIND_INDEX_KEY, USERS_DATABASE_URL]
  redis: true
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
  secrets: [INTERNAL_TOKEN_SECRET, ORDERS_ENCRYPTION_KEYS, ORDERS_DATABASE_URL]
  subgraph: true
payments:
  values: payments
  kind: graphql
  image: payments
  portEnv: PAYMENTS_PORT
  configMaps: [payments]
  secrets: [INTERNAL_TOKEN_SECRET, PAYMENTS_DATABASE_URL]
  subgraph: true
users-worker:
  values: usersWorker
  kind: worker
  image: users
  portEnv: USERS_WORKER_PORT
  configMaps: [users, users-worker]
  # The worker loads the users configuration whole, signing keys included (it signs nothing).
  secrets: [INTERNAL_TOKEN_SECRET, USERS_SIGNING_KEYS, USERS_ENCRYPTION_KEYS, USERS_BLIND_INDEX_KEY, USERS_DATABASE_URL]
  redis: true
  command: [node, dist/worker-main.js]
  subgraph: false
meals-worker:
  values: mealsWorker
  kind: worker
  image: meals
  portEnv: MEALS_WORKER_PORT
  configMaps: [meals, meals-worker]
  secrets: [INTERNAL_TOKEN_SECRET, MEALS_DATABASE_URL]
  redis: true
  command: [node, dist/worker-main.js]
  subgraph: false
orders-worker:
  values: ordersWorker
  kind: worker
  image: orders
  portEnv: ORDERS_WORKER_PORT
  configMaps: [orders, orders-worker]
  secrets: [INTERNAL_TOKEN_SECRET, ORDERS_ENCRYPTION_KEYS, ORDERS_DATABASE_URL]
  redis: true
  command: [node, dist/worker-main.js]
  subgraph: false
payments-worker:
  values: paymentsWorker
  kind: worker
  image: payments
  portEnv: PAYMENTS_WORKER_PORT
  configMaps: [payments, payments-worker]
  secrets: [INTERNAL_TOKEN_SECRET, PAYMENTS_DATABASE_URL]
  redis: true
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
{{- if has $var (list "INTERNAL_TOKEN_SECRET" "USERS_SIGNING_KEYS" "USERS_ENCRYPTION_KEYS" "USERS_BLIND_INDEX_KEY" "ORDERS_ENCRYPTION_KEYS") -}}
  {{- if $s.existingSecret -}}
name: {{ $s.existingSecret }}
key: {{ $var }}
  {{- else -}}
    {{- $field := get (dict "INTERNAL_TOKEN_SECRET" "internalTokenSecret" "USERS_SIGNING_KEYS" "usersSigningKeys" "USERS_ENCRYPTION_KEYS" "usersEncryptionKeys" "USERS_BLIND_INDEX_KEY" "usersBlindIndexKey" "ORDERS_ENCRYPTION_KEYS" "ordersEncryptionKeys") $var -}}
    {{- $value := required (printf "secrets.%s is required (%s), or set secrets.existingSecret" $field $var) (get $s $field) -}}
    {{- if and (has $var (list "INTERNAL_TOKEN_SECRET" "USERS_BLIND_INDEX_KEY")) (lt (len $value) 32) -}}
      {{- fail (printf "secrets.%s must be at least 32 characters" $field) -}}
    {{- end -}}
name: {{ $fullname }}
key: {{ $var }}
  {{- end -}}
{{- else if eq $var "REDIS_PASSWORD" -}}
  {{- $c := $root.Values.redis.cluster -}}
  {{- if $c.existingSecret.name -}}
name: {{ $c.existingSecret.name }}
key: {{ $c.existingSecret.key | default "REDIS_PASSWORD" }}
  {{- else -}}
    {{- $_ := required "redis.cluster.password is empty: set it or redis.cluster.existingSecret.name" $c.password -}}
name: {{ $fullname }}
key: REDIS_PASSWORD
  {{- end -}}
{{- else if eq $var "REDIS_URL" -}}
  {{- $r := $root.Values.redis -}}
  {{- if $r.existingSecret.name -}}
name: {{ $r.existingSecret.name }}
key: {{ $r.existingSecret.key | default "REDIS_URL" }}
  {{- else -}}
    {{- $_ := required "redis.url is required (redis:// or rediss://), or set redis.existingSecret.name, or redis.cluster.nodes for a Redis Cluster" $r.url -}}
name: {{ $fullname }}
key: REDIS_URL
  {{- end -}}
{{- else if hasSuffix "_DATABASE_REPLICA_URLS" $var -}}
  {{- $replicas := (index $root.Values.databases ($var | trimSuffix "_DATABASE_REPLICA_URLS" | lower)).replicas -}}
  {{- if $replicas.existingSecret.name -}}
name: {{ $replicas.existingSecret.name }}
key: {{ $replicas.existingSecret.key | default $var }}
  {{- else -}}
name: {{ $fullname }}
key: {{ $var }}
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

{{/*
Redis: one node (redis.url or redis.existingSecret.name: REDIS_URL) or a Redis Cluster
(redis.cluster.nodes: REDIS_CLUSTER_NODES), never both. "single" or "cluster"; fails with the value
to set when the values name neither, both, or settings of the other mode.
*/}}
{{- define "food.redisMode" -}}
{{- $r := .Values.redis -}}
{{- $single := or $r.url $r.existingSecret.name -}}
{{- $c := $r.cluster -}}
{{- if and $single $c.nodes -}}
  {{- fail "redis: set either redis.url / redis.existingSecret.name (one Redis node) or redis.cluster.nodes (a Redis Cluster), not both" -}}
{{- end -}}
{{- if and $r.tlsCa.secretName $r.tlsCa.configMapName -}}
  {{- fail "redis.tlsCa: set either secretName or configMapName, not both" -}}
{{- end -}}
{{- if $c.nodes -}}
  {{- range $c.nodes -}}
    {{- if not (regexMatch "^(\\[[0-9a-fA-F:]+\\]|[^\\s:,\\[\\]]+)(:[0-9]{1,5})?$" (toString .)) -}}
      {{- fail (printf "redis.cluster.nodes: %q is not a host:port seed node" (toString .)) -}}
    {{- end -}}
  {{- end -}}
  {{- if and (or $r.tlsCa.secretName $r.tlsCa.configMapName) (not $c.tls) -}}
    {{- fail "redis.tlsCa is set but redis.cluster.tls is false: turn TLS on to use the CA" -}}
  {{- end -}}
cluster
{{- else -}}
  {{- if or $c.tls $c.username $c.password $c.existingSecret.name -}}
    {{- fail "redis.cluster.tls, username, password and existingSecret are for a Redis Cluster (redis.cluster.nodes); one node takes them in its URL (rediss:// for TLS)" -}}
  {{- end -}}
single
{{- end -}}
{{- end -}}

{{/* The secret variables of one Redis user, as a YAML list: REDIS_URL, or a cluster's REDIS_PASSWORD when it has one. */}}
{{- define "food.redisSecrets" -}}
{{- if eq (include "food.redisMode" .) "single" -}}
[REDIS_URL]
{{- else if or .Values.redis.cluster.password .Values.redis.cluster.existingSecret.name -}}
[REDIS_PASSWORD]
{{- else -}}
[]
{{- end -}}
{{- end -}}

{{/* The secret variables of one component (dict "root" $ "component" <its food.components entry>), as a YAML list. */}}
{{- define "food.componentSecrets" -}}
{{- $vars := .component.secrets -}}
{{- /* A subgraph with read replicas gets their URLs (a Secret: they hold credentials); workers read the primary only. */ -}}
{{- if .component.subgraph -}}
  {{- $replicas := (index .root.Values.databases .component.values).replicas -}}
  {{- if or $replicas.urls $replicas.existingSecret.name -}}
    {{- $vars = append $vars (printf "%s_DATABASE_REPLICA_URLS" (upper .component.values)) -}}
  {{- end -}}
{{- end -}}
{{- if .component.redis -}}
  {{- $vars = concat $vars (include "food.redisSecrets" .root | fromYamlArray) -}}
{{- end -}}
{{- toYaml $vars -}}
{{- end -}}

{{/* Where the Redis CA file is mounted in the pods, and the file's name there. */}}
{{- define "food.redisCaDir" -}}/etc/food/redis-ca{{- end -}}
{{- define "food.redisCaFile" -}}ca.crt{{- end -}}

{{/*
The non-secret Redis environment every Redis user gets (in its ConfigMap), as YAML. The names of
the partition and replica settings are here only, so a rename is one line.
*/}}
{{- define "food.redisConfig" -}}
{{- $r := .Values.redis -}}
{{- $data := dict -}}
{{- if eq (include "food.redisMode" .) "cluster" -}}
  {{- $_ := set $data "REDIS_CLUSTER_NODES" (join "," $r.cluster.nodes) -}}
  {{- $_ := set $data "REDIS_TLS" (ternary "true" "false" (and $r.cluster.tls true)) -}}
  {{- with $r.cluster.username -}}
    {{- $_ := set $data "REDIS_USERNAME" . -}}
  {{- end -}}
{{- end -}}
{{- if or $r.tlsCa.secretName $r.tlsCa.configMapName -}}
  {{- $_ := set $data "REDIS_TLS_CA_FILE" (printf "%s/%s" (include "food.redisCaDir" .) (include "food.redisCaFile" .)) -}}
{{- end -}}
{{- if hasKey $r "streamPartitions" -}}
  {{- $_ := set $data "REDIS_STREAM_PARTITIONS" (include "food.envValue" $r.streamPartitions) -}}
{{- end -}}
{{- if hasKey $r "publishReplicas" -}}
  {{- $_ := set $data "REDIS_PUBLISH_REPLICAS" (include "food.envValue" $r.publishReplicas) -}}
{{- end -}}
{{- toYaml $data -}}
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
  {{- /* One lag bound for the subgraphs (replicas older are skipped) and the gateway (read-your-writes window). */ -}}
  {{- $_ := set $data "DATABASE_REPLICA_MAX_LAG_SECONDS" (include "food.envValue" $v.databaseReplicaMaxLagSeconds) -}}
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
  {{- $_ := set $data "REDIS_KEY_PREFIX" $v.redis.keyPrefix -}}
  {{- $_ := set $data "REDIS_REDELIVER_AFTER_MS" (include "food.envValue" $v.redis.redeliverAfterMs) -}}
  {{- $_ := set $data "USERS_SIGNING_ACTIVE_KEY_ID" (required "users.signingActiveKeyId is required: the kid (in USERS_SIGNING_KEYS) of the key access tokens are signed with" $v.users.signingActiveKeyId) -}}
  {{- $_ := set $data "USERS_ENCRYPTION_ACTIVE_KEY_ID" (required "users.encryptionActiveKeyId is required: the id (in USERS_ENCRYPTION_KEYS) of the key new values are encrypted with" $v.users.encryptionActiveKeyId) -}}
{{- else if eq $name "meals" -}}
  {{- $_ := set $data "MEALS_PORT" (include "food.envValue" $v.meals.port) -}}
  {{- $_ := set $data "REDIS_KEY_PREFIX" $v.redis.keyPrefix -}}
  {{- $_ := set $data "REDIS_REDELIVER_AFTER_MS" (include "food.envValue" $v.redis.redeliverAfterMs) -}}
{{- else if eq $name "orders" -}}
  {{- $_ := set $data "ORDERS_PORT" (include "food.envValue" $v.orders.port) -}}
  {{- $_ := set $data "ORDERS_ENCRYPTION_ACTIVE_KEY_ID" (required "orders.encryptionActiveKeyId is required: the id (in ORDERS_ENCRYPTION_KEYS) of the key new addresses are encrypted with" $v.orders.encryptionActiveKeyId) -}}
  {{- $_ := set $data "MEALS_SUBGRAPH_URL" (include "food.subgraphUrl" (dict "root" $root "name" "meals")) -}}
  {{- $_ := set $data "REDIS_KEY_PREFIX" $v.redis.keyPrefix -}}
  {{- $_ := set $data "REDIS_REDELIVER_AFTER_MS" (include "food.envValue" $v.redis.redeliverAfterMs) -}}
{{- else if eq $name "payments" -}}
  {{- $_ := set $data "PAYMENTS_PORT" (include "food.envValue" $v.payments.port) -}}
  {{- $_ := set $data "ORDERS_SUBGRAPH_URL" (include "food.subgraphUrl" (dict "root" $root "name" "orders")) -}}
  {{- $_ := set $data "REDIS_KEY_PREFIX" $v.redis.keyPrefix -}}
  {{- $_ := set $data "REDIS_REDELIVER_AFTER_MS" (include "food.envValue" $v.redis.redeliverAfterMs) -}}
{{- else if eq $name "users-worker" -}}
  {{- $_ := set $data "USERS_WORKER_PORT" (include "food.envValue" $v.usersWorker.port) -}}
  {{- $_ := set $data "REDIS_KEY_PREFIX" $v.redis.keyPrefix -}}
  {{- $_ := set $data "REDIS_REDELIVER_AFTER_MS" (include "food.envValue" $v.redis.redeliverAfterMs) -}}
{{- else if eq $name "meals-worker" -}}
  {{- $_ := set $data "MEALS_WORKER_PORT" (include "food.envValue" $v.mealsWorker.port) -}}
{{- else if eq $name "orders-worker" -}}
  {{- $_ := set $data "ORDERS_WORKER_PORT" (include "food.envValue" $v.ordersWorker.port) -}}
{{- else if eq $name "payments-worker" -}}
  {{- $_ := set $data "PAYMENTS_WORKER_PORT" (include "food.envValue" $v.paymentsWorker.port) -}}
{{- end -}}
{{- $component := index (include "food.components" $root | fromYaml) $name -}}
{{- if $component.redis -}}
  {{- range $key, $value := (include "food.redisConfig" $root | fromYaml) -}}
    {{- $_ := set $data $key $value -}}
  {{- end -}}
{{- end -}}
{{- range $key, $value := (index $v $component.values "env") -}}
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
