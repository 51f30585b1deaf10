#!/bin/sh
# docker-compose's init-secrets service: writes each service's secrets as files into that service's own volume,
# owned by the user the service runs as and readable by it alone, then exits; the other services start after it.
#
# Why not compose's own `secrets:`: Drover's containers have a read-only root filesystem, and there compose only
# takes secrets from host files, bind-mounted with the host file's owner and mode (its uid/gid/mode options do not
# apply to them). The runner runs as root without CAP_DAC_OVERRIDE and its jobs as other uids, so a runner secret must
# be owned by root with mode 0400: readable by the runner, not by a job. A host file cannot promise that.
#
#   api        uid 1000      redis-url admin-token env-key [amqp-url] [database-url]
#   scheduler  uid 1000      redis-url callback-secret env-key [amqp-url] [database-url]
#   runner     uid 0         redis-url env-key [amqp-url]            (directory 0700: jobs cannot even list it)
#   redis      uid 999       users.acl healthcheck-password           (rendered by render-acl.sh)
#   grafana    uid 472       admin-password
#   postgres   uid 999       password                                 (with docker-compose.archive.yml)
#   redis      uid 999/0     replication.conf cluster-admin-password replica-password (with docker-compose.cluster.yml)
#
# Input: the variables compose passes from .env (deploy/compose.env.example); RABBITMQ_PASSWORD and
# POSTGRES_PASSWORD only come with their override files, CLUSTER_NODES (not a secret) with
# docker-compose.cluster.yml. Usage: init-secrets.sh [OUT_DIR] [ACL_DIR], by default
# /out (one mounted volume per service below it) and /drover/redis (users.acl.in and render-acl.sh).
set -eu
umask 077
out=${1:-/out}
acl=${2:-/drover/redis}

die() {
  echo "init-secrets: $*" >&2
  exit 1
}

# need NAME: the variable's value, or stop naming it (compose already refuses an empty one; this covers a run by hand).
need() {
  eval "value=\${$1:-}"
  [ -n "$value" ] || die "$1 is empty: set it in .env (see deploy/compose.env.example)"
  printf '%s' "$value"
}

# URL-safe as they are, since they become part of a URL.
url_safe() {
  case $2 in
    '' | *[!A-Za-z0-9._~-]*) die "$1 must be URL-safe (letters, digits, . _ ~ -): generate it with openssl rand -hex 32" ;;
  esac
}

# dir PATH MODE: a directory owned by root (so this script can rewrite it without CAP_DAC_OVERRIDE).
dir() {
  [ -d "$1" ] || die "$1 is not mounted"
  chown 0:0 "$1"
  chmod "$2" "$1"
}

# put DIR NAME OWNER MODE VALUE: replaces DIR/NAME atomically (printf is a shell builtin: the value is never an argument
# of a process). Mode before owner: once the file belongs to another uid, this script may no longer change it.
put() {
  tmp="$1/.$2.tmp"
  rm -f "$tmp"
  printf '%s' "$5" >"$tmp"
  chmod "$4" "$tmp"
  chown "$3" "$tmp"
  mv -f "$tmp" "$1/$2"
}

admin_token=$(need DROVER_ADMIN_TOKEN)
[ ${#admin_token} -ge 16 ] || die "DROVER_ADMIN_TOKEN must be at least 16 characters"
callback_secret=$(need DROVER_CALLBACK_SECRET)
env_key=$(need DROVER_ENV_KEY)
grafana_password=$(need GRAFANA_ADMIN_PASSWORD)
redis_api=$(need REDIS_API_PASSWORD)
redis_scheduler=$(need REDIS_SCHEDULER_PASSWORD)
redis_runner=$(need REDIS_RUNNER_PASSWORD)
for p in "REDIS_API_PASSWORD:$redis_api" "REDIS_SCHEDULER_PASSWORD:$redis_scheduler" "REDIS_RUNNER_PASSWORD:$redis_runner"; do
  url_safe "${p%%:*}" "${p#*:}"
done
[ "$redis_api" != "$redis_scheduler" ] && [ "$redis_api" != "$redis_runner" ] && [ "$redis_scheduler" != "$redis_runner" ] ||
  die "REDIS_API_PASSWORD, REDIS_SCHEDULER_PASSWORD and REDIS_RUNNER_PASSWORD must differ (each can then be changed alone)"

api_redis="redis://drover-api:$redis_api@redis:6379"
scheduler_redis="redis://drover-scheduler:$redis_scheduler@redis:6379"
runner_redis="redis://drover-runner:$redis_runner@redis:6379"

dir "$out/api" 0755
dir "$out/scheduler" 0755
dir "$out/runner" 0700
dir "$out/redis" 0755
dir "$out/grafana" 0755

put "$out/api" redis-url 1000:1000 0400 "$api_redis"
put "$out/api" admin-token 1000:1000 0400 "$admin_token"
put "$out/api" env-key 1000:1000 0400 "$env_key"
put "$out/scheduler" redis-url 1000:1000 0400 "$scheduler_redis"
put "$out/scheduler" callback-secret 1000:1000 0400 "$callback_secret"
put "$out/scheduler" env-key 1000:1000 0400 "$env_key"
put "$out/runner" redis-url 0:0 0400 "$runner_redis"
put "$out/runner" env-key 0:0 0400 "$env_key"
put "$out/grafana" admin-password 472:472 0400 "$grafana_password"

# With docker-compose.cluster.yml, CLUSTER_NODES (host:port,host:port,...) names the cluster's nodes: each
# redis-url is rewritten as redis+cluster://drover-<service>:<password>@<nodes> (the URLs above, which render-acl.sh
# reads for the users and passwords, stay as they are). Without it, nothing here changes.
if [ -n "${CLUSTER_NODES:-}" ]; then
  case $CLUSTER_NODES in
    ,* | *, | *,,*) die "CLUSTER_NODES must be host:port,host:port,... (got \"$CLUSTER_NODES\")" ;;
  esac
  for node in $(printf '%s' "$CLUSTER_NODES" | tr ',' ' '); do
    host=${node%:*}
    port=${node##*:}
    case "$host:$port" in
      "$node") ;;
      *) die "CLUSTER_NODES: \"$node\" is not host:port" ;;
    esac
    case $host in '' | *[!A-Za-z0-9.-]*) die "CLUSTER_NODES: \"$node\" is not host:port" ;; esac
    case $port in '' | *[!0-9]*) die "CLUSTER_NODES: \"$node\" is not host:port" ;; esac
  done
  put "$out/api" redis-url 1000:1000 0400 "redis+cluster://drover-api:$redis_api@$CLUSTER_NODES"
  put "$out/scheduler" redis-url 1000:1000 0400 "redis+cluster://drover-scheduler:$redis_scheduler@$CLUSTER_NODES"
  put "$out/runner" redis-url 0:0 0400 "redis+cluster://drover-runner:$redis_runner@$CLUSTER_NODES"
fi

if [ -n "${RABBITMQ_PASSWORD:-}" ]; then
  url_safe RABBITMQ_PASSWORD "$RABBITMQ_PASSWORD"
  amqp="amqp://drover:$RABBITMQ_PASSWORD@rabbitmq:5672"
  put "$out/api" amqp-url 1000:1000 0400 "$amqp"
  put "$out/scheduler" amqp-url 1000:1000 0400 "$amqp"
  put "$out/runner" amqp-url 0:0 0400 "$amqp"
fi

if [ -n "${POSTGRES_PASSWORD:-}" ]; then
  url_safe POSTGRES_PASSWORD "$POSTGRES_PASSWORD"
  dir "$out/postgres" 0755
  database="postgres://drover:$POSTGRES_PASSWORD@postgres:5432/drover"
  put "$out/api" database-url 1000:1000 0400 "$database"
  put "$out/scheduler" database-url 1000:1000 0400 "$database"
  put "$out/postgres" password 999:999 0400 "$POSTGRES_PASSWORD"
fi

# Redis's users: the ACL file holds only hashes of the three passwords above. Group redis (999) reads the files;
# root keeps ownership so the next run can read the probe's password again and keep it.
printf '%s\n' "$api_redis" "$scheduler_redis" "$runner_redis" | sh "$acl/render-acl.sh" "$acl/users.acl.in" "$out/redis"
for f in users.acl healthcheck-password; do
  chmod 0440 "$out/redis/$f"
  chown 0:999 "$out/redis/$f"
done
# A cluster's nodes need two more users: drover-replica, which a replica logs in to its primary as (PSYNC, REPLCONF,
# PING; every node gets masteruser/masterauth in replication.conf, since any node may become a replica), and
# drover-cluster-admin, for the one-shot that creates the cluster (CLUSTER, INFO, PING; no keys). Their passwords
# are generated once and kept, like the probe's: nothing outside the redis-secrets volume ever needs them.
if [ -n "${CLUSTER_NODES:-}" ]; then
  # redis-cluster-init (uid 999) reads the admin's; the replica's stays root's (the nodes get it in replication.conf).
  [ -s "$out/redis/replica-password" ] || put "$out/redis" replica-password 0:0 0400 "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
  [ -s "$out/redis/cluster-admin-password" ] || put "$out/redis" cluster-admin-password 0:999 0440 "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
  replica_password=$(cat "$out/redis/replica-password")
  admin_password=$(cat "$out/redis/cluster-admin-password")
  replica_hash=$(printf '%s' "$replica_password" | sha256sum | cut -d' ' -f1)
  admin_hash=$(printf '%s' "$admin_password" | sha256sum | cut -d' ' -f1)
  acl_users=$(cat "$out/redis/users.acl")
  put "$out/redis" users.acl 0:999 0440 "$acl_users
user drover-replica reset on #$replica_hash +psync +replconf +ping
user drover-cluster-admin reset on #$admin_hash +cluster +info +ping
"
  put "$out/redis" replication.conf 0:999 0440 "masteruser drover-replica
masterauth $replica_password
"
  echo "init-secrets: Redis Cluster: redis-url in cluster form ($CLUSTER_NODES), replica and cluster-admin users"
fi
echo "init-secrets: secrets written for api, scheduler, runner, redis and grafana${RABBITMQ_PASSWORD:+, rabbitmq URLs}${POSTGRES_PASSWORD:+, postgres}"
