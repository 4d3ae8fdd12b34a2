#!/usr/bin/env bash
# Build the local images the tests and the demo use. No image registry is reachable, so each
# image starts from a Debian bookworm root filesystem made by mmdebstrap with the machine's own
# apt sources, imported with `docker import`, then finished by a classic `docker build`.
#
#   scripts/images.sh            build what is missing (idempotent)
#   scripts/images.sh NAME...    only these (busybox, mariadb, wordpress, caddy; remote-engine, swarm-node on request)
#   IMAGES_REBUILD=1 scripts/images.sh   rebuild the finished images (bases are kept)
#   IMAGES_NAMESPACE=x scripts/images.sh  tag x/... instead of clonekit/... (timing from nothing)
#
# An image is skipped when `docker image inspect` finds it with the label clonekit.context
# equal to the hash of its build folder, so an edited Dockerfile is picked up by the next run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONTEXTS=$ROOT/fixtures/wordpress/images
SUITE=${IMAGES_SUITE:-bookworm}
NS=${IMAGES_NAMESPACE:-clonekit}
log() { printf '[images] %s\n' "$*" >&2; }

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

context_hash() {  # a stable hash of a build folder's names and contents
  (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16
}

# mmdebstrap only needs apt and the host's sources; it is installed by services.sh too.
ensure_tools() {
  local need=()
  command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
  [ -x /bin/busybox ] || need+=(busybox-static)
  if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q "${need[@]}" >/dev/null
  fi
}

base_image() {  # base_image TAG PACKAGES(comma separated)
  local tag=$1 packages=$2
  have_image "$tag" && return 0
  log "building base $tag from Debian $SUITE packages ($packages)"
  local started=$SECONDS
  # Docs, man pages and translations are dropped: they are most of a rootfs and never read.
  mmdebstrap --quiet --variant=apt \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --include="$packages" "$SUITE" - | docker import - "$tag" >/dev/null
  log "base $tag ready in $((SECONDS - started))s"
}

finished_image() {  # finished_image TAG CONTEXT_FOLDER BASE_TAG
  local tag=$1 context=$2 base=$3 hash current
  hash=$(context_hash "$context")
  if [ -z "${IMAGES_REBUILD:-}" ] && have_image "$tag"; then
    current=$(docker image inspect -f '{{ index .Config.Labels "clonekit.context" }}' "$tag" 2>/dev/null || true)
    if [ "$current" = "$hash" ]; then
      log "$tag: present"
      return 0
    fi
    log "$tag: its build folder changed, rebuilding"
  fi
  local started=$SECONDS
  local out
  # The classic builder (no buildx here); its deprecation notice is noise, its errors are not.
  if ! out=$(DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE=$base" --label "clonekit.context=$hash" \
      -t "$tag" "$context" 2>&1); then
    printf '%s\n' "$out" >&2
    log "building $tag failed"
    exit 1
  fi
  log "$tag ready in $((SECONDS - started))s"
}

build_busybox() {
  local tag=$NS/busybox:latest hash current
  hash=$( (sha256sum /bin/busybox; echo v1) | sha256sum | cut -c1-16)
  if [ -z "${IMAGES_REBUILD:-}" ] && have_image "$tag"; then
    current=$(docker image inspect -f '{{ index .Config.Labels "clonekit.context" }}' "$tag" 2>/dev/null || true)
    [ "$current" = "$hash" ] && { log "$tag: present"; return 0; }
  fi
  local tmp
  tmp=$(mktemp -d)
  mkdir -p "$tmp/bin" "$tmp/tmp" "$tmp/etc" "$tmp/root"
  chmod 1777 "$tmp/tmp"
  cp /bin/busybox "$tmp/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$tmp/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$tmp/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$tmp/etc/group"
  tar -C "$tmp" -c . | docker import \
    -c 'ENV PATH=/bin' -c 'CMD ["sh"]' -c "LABEL clonekit.context=$hash" - "$tag" >/dev/null
  rm -rf "$tmp"
  log "$tag ready"
}

build_mariadb() {
  base_image "$NS/base-mariadb:10.11" mariadb-server,mariadb-client,zstd
  finished_image "$NS/mariadb:10.11" "$CONTEXTS/mariadb" "$NS/base-mariadb:10.11"
}

build_wordpress() {
  base_image "$NS/base-wordpress:6.1" \
    wordpress,wordpress-theme-twentytwentyone,wordpress-theme-twentytwentythree,apache2,libapache2-mod-php,php-mysql,php-mbstring,php-xml,php-curl,curl,ca-certificates
  finished_image "$NS/wordpress:6.1" "$CONTEXTS/wordpress" "$NS/base-wordpress:6.1"
}

# Caddy 2.6 from Debian for the preview proxy (users get the official caddy:2 image; both have
# `caddy` on PATH and clonekit gives the command, so the image needs nothing more).
build_caddy() {
  local tag=$NS/caddy:2.6
  if have_image "$tag"; then log "$tag: present"; return 0; fi
  local started=$SECONDS
  mmdebstrap --quiet --variant=apt \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --include=caddy,ca-certificates "$SUITE" - |
    docker import -c 'CMD ["caddy", "run"]' - "$tag" >/dev/null
  log "$tag ready in $((SECONDS - started))s"
}

# A second Docker engine behind sshd (Debian's docker.io and openssh-server), for the tests of
# previews.docker_host: ssh://. Only built on request (`scripts/images.sh remote-engine`).
build_remote_engine() {
  base_image "$NS/base-remote-engine:20.10" docker.io,openssh-server,iptables,mount,ca-certificates,procps
  finished_image "$NS/remote-engine:20.10" "$ROOT/fixtures/remote-engine" "$NS/base-remote-engine:20.10"
}

# A node of the swarm tests: the same engine and sshd, plus Debian's docker-registry (the
# manager runs the registry the nodes pull previews' images from). On request only.
build_swarm_node() {
  base_image "$NS/base-swarm-node:20.10" docker.io,openssh-server,iptables,mount,ca-certificates,procps,docker-registry
  finished_image "$NS/swarm-node:20.10" "$ROOT/fixtures/remote-engine" "$NS/base-swarm-node:20.10"
}

main() {
  local wanted=("$@")
  [ ${#wanted[@]} -gt 0 ] || wanted=(busybox mariadb wordpress caddy)
  docker info >/dev/null 2>&1 || { log "the Docker engine is not running (start it with scripts/services.sh)"; exit 1; }
  ensure_tools
  # Several helpers may ask at once; one builder at a time, the others then find the images.
  exec 9>"/var/tmp/$NS-images.lock"
  flock 9
  for name in "${wanted[@]}"; do
    case "$name" in
      busybox) build_busybox ;;
      mariadb) build_mariadb ;;
      wordpress) build_wordpress ;;
      caddy) build_caddy ;;
      remote-engine) build_remote_engine ;;
      swarm-node) build_swarm_node ;;
      *) log "unknown image $name (expected busybox, mariadb, wordpress, caddy, remote-engine or swarm-node)"; exit 2 ;;
    esac
  done
}

main "$@"
