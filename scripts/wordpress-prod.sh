#!/usr/bin/env bash
# The WordPress "production" that clonekit clones in tests and in the demo.
#
#   scripts/wordpress-prod.sh up       start it (building images when missing) and seed it once
#   scripts/wordpress-prod.sh status   exit 0 when it runs and is seeded, 1 otherwise
#   scripts/wordpress-prod.sh seed     wipe the database and uploads, seed them again
#   scripts/wordpress-prod.sh down     remove containers, database volume and local state
#
# Compose project `ckprod` (fixtures/wordpress/compose.yml): WordPress on 127.0.0.1:8088,
# MariaDB on 127.0.0.1:33306 (database wordpress, user wp). Secrets live in
# $CKPROD_STATE/prod.env (mode 600), never in argv; seeded personal values in
# $CKPROD_STATE/seeded.json for leak tests.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
COMPOSE_FILE=$ROOT/fixtures/wordpress/compose.yml
STATE=${CKPROD_STATE:-/var/tmp/clonekit-wordpress}
ENV_FILE=$STATE/prod.env
UPLOADS=$STATE/uploads
SEEDED=$STATE/seeded.json
URL=http://127.0.0.1:8088
DB_PORT=33306
SEED_VERSION=2
PY=${PYTHON:-python3}
log() { printf '[ckprod] %s\n' "$*" >&2; }

compose() { docker compose -p ckprod -f "$COMPOSE_FILE" --env-file "$ENV_FILE" "$@"; }

write_env_file() {
  [ -s "$ENV_FILE" ] && return 0
  mkdir -p "$STATE"
  ( umask 077
    { echo "# ckprod secrets (scripts/wordpress-prod.sh); load with: set -a; . $ENV_FILE; set +a"
      for name in CKPROD_DB_PASSWORD CKPROD_DB_ROOT_PASSWORD CKPROD_AUTH_KEY CKPROD_NONCE_KEY CKPROD_ADMIN_PASSWORD; do
        echo "$name=$(head -c 24 /dev/urandom | base64 | tr -d '/+=' | cut -c1-24)"
      done
      echo "CKPROD_UPLOADS=$UPLOADS"
    } > "$ENV_FILE.tmp" )
  mv "$ENV_FILE.tmp" "$ENV_FILE"
}

load_env() { set -a; . "$ENV_FILE"; set +a; }

db_query() {  # db_query SQL: one value per line; the password goes by environment, never argv
  if command -v mariadb >/dev/null; then
    MYSQL_PWD=$CKPROD_DB_PASSWORD mariadb --protocol=tcp -h127.0.0.1 -P"$DB_PORT" -uwp \
      --batch --skip-column-names wordpress -e "$1"
  else  # no client on this host: the one in the db container, with the container's own variable
    compose exec -T db sh -c 'MYSQL_PWD="$MARIADB_PASSWORD" exec mariadb -uwp --batch --skip-column-names wordpress' <<<"$1"
  fi
}

# "service image-id" of each running container of the project (one docker call, not compose:
# `up` on a running production must stay quick).
running_services() {
  local ids
  ids=$(docker ps -q --filter label=com.docker.compose.project=ckprod)
  [ -n "$ids" ] || return 0
  # shellcheck disable=SC2086
  docker inspect -f '{{ index .Config.Labels "com.docker.compose.service" }} {{ .Image }}' $ids
}

running() {
  local services
  services=$(running_services)
  grep -q '^db ' <<<"$services" && grep -q '^app ' <<<"$services"
}

seeded() {
  [ -s "$SEEDED" ] || return 1
  local version
  version=$(db_query "SELECT option_value FROM wp_options WHERE option_name='ckprod_seed_version'" 2>/dev/null) || return 1
  [ "$version" = "$SEED_VERSION" ]
}

stale() {  # a service runs an older build of its image (scripts/images.sh rebuilt it)
  local services db_image app_image
  services=$(running_services)
  read -r db_image app_image < <(docker image inspect -f '{{ .Id }}' clonekit/mariadb:10.11 clonekit/wordpress:6.1 | tr '\n' ' ')
  ! { grep -qx "db $db_image" <<<"$services" && grep -qx "app $app_image" <<<"$services"; }
}

seed() {
  log "seeding (WordPress install, users, posts, comments, uploads)"
  local started=$SECONDS
  CKPROD_SEED_VERSION=$SEED_VERSION CKPROD_STATE=$STATE CKPROD_URL=$URL CKPROD_DB_PORT=$DB_PORT \
    "$PY" "$ROOT/fixtures/wordpress/seed.py"
  log "seeded in $((SECONDS - started))s"
}

print_info() {
  cat <<INFO
ckprod is up (compose project ckprod, $COMPOSE_FILE)
  site:      $URL/   (admin: $URL/wp-admin/, user admin, password CKPROD_ADMIN_PASSWORD)
  database:  127.0.0.1:$DB_PORT, database wordpress, user wp, password CKPROD_DB_PASSWORD
  uploads:   $UPLOADS
  secrets:   set -a; . $ENV_FILE; set +a
  seeded:    $SEEDED
INFO
}

remove_by_labels() {  # without the env file compose cannot even parse the project
  docker ps -aq --filter label=com.docker.compose.project=ckprod | xargs -r docker rm -f -v >/dev/null
  docker volume ls -q --filter label=com.docker.compose.project=ckprod | xargs -r docker volume rm >/dev/null
  docker network ls -q --filter label=com.docker.compose.project=ckprod | xargs -r docker network rm >/dev/null
}

cmd_up() {
  "$ROOT/scripts/images.sh" mariadb wordpress
  if [ ! -s "$ENV_FILE" ] && [ -n "$(docker volume ls -q --filter label=com.docker.compose.project=ckprod)" ]; then
    # Its secrets are gone, so its database cannot be reached: start again from nothing.
    log "found a ckprod without its $ENV_FILE: removing it"
    remove_by_labels
  fi
  write_env_file
  load_env
  if running && seeded && ! stale; then
    log "already running and seeded"
    print_info
    return 0
  fi
  mkdir -p "$UPLOADS"
  chown 33:33 "$UPLOADS"  # www-data in the image
  local started=$SECONDS
  local out
  if ! out=$(compose up -d --wait 2>&1); then
    printf '%s\n' "$out" >&2
    compose logs --tail 20 >&2 || true
    log "the containers did not become healthy"
    exit 1
  fi
  log "containers healthy in $((SECONDS - started))s"
  seeded || seed
  print_info
}

cmd_seed() {
  [ -s "$ENV_FILE" ] || { log "not started: run $0 up"; exit 1; }
  load_env
  running || { log "not running: run $0 up"; exit 1; }
  seed
}

cmd_status() {
  if [ ! -s "$ENV_FILE" ]; then echo "ckprod: not set up"; return 1; fi
  load_env
  compose ps
  if running && seeded; then echo "ckprod: running and seeded ($URL)"; return 0; fi
  if running; then echo "ckprod: running, not seeded (run $0 up)"; else echo "ckprod: not running"; fi
  return 1
}

cmd_down() {
  if [ -s "$ENV_FILE" ]; then
    compose down --volumes --remove-orphans --timeout 5 2>/dev/null
  else
    remove_by_labels
  fi
  rm -rf "$STATE"
  log "removed"
}

# Tests on several workers and the demo may ask at once: one at a time (the lock file lives
# outside $STATE, which `down` removes).
exec 9>"${STATE%/}.lock"
case "${1:-}" in
  up|down|seed) flock 9 ;;
esac

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  seed) cmd_seed ;;
  *) echo "usage: $0 up|down|status|seed" >&2; exit 2 ;;
esac
