#!/usr/bin/env bash
# A real S3 server for the tests: Ceph's RADOS Gateway (Debian 12 packages, Ceph 16.2) as a
# one-node cluster on loopback. Started by scripts/services.sh; adapted from the recipe in
# ../shared/tools/ceph-s3.sh.
#   ceph-rgw.sh up      starts the cluster, or reuses a healthy one (idempotent); last line: "ENDPOINT ACCESS SECRET"
#   ceph-rgw.sh down    stops the daemons this script started (by their pid files)
#   ceph-rgw.sh status  prints "up" or "down" (exit 0 / 1)
# One monitor, one OSD on memstore (RAM, no disk: data lives only while the OSD runs), one radosgw.
# No manager: object I/O does not need one, and ceph-mgr alone would take ~300 MiB (the cluster
# idles at ~120 MiB RSS without it). A cluster that is not fully running is rebuilt from nothing
# (~15 s); a healthy one is reused as it is. Deleted data is reclaimed after ~1 minute (rgw gc).
# Packages are installed by scripts/services.sh (ceph-mon ceph-osd radosgw ceph-common).
# How RGW differs from AWS S3 and moto, and what clonekit does about it: docs/format.md.
# Env: CLONEKIT_RGW_DIR (state; default $CLONEKIT_SERVICES_DIR/rgw), CLONEKIT_TEST_RGW_PORT (7480),
#      CLONEKIT_RGW_MON_PORT (3300, msgr2), CLONEKIT_RGW_MON_V1_PORT (6789),
#      CLONEKIT_RGW_STORE_BYTES (memstore cap, 4 GiB; RAM is used only as data is stored),
#      CLONEKIT_RGW_ACCESS / CLONEKIT_RGW_SECRET (the test user's keys).
set -euo pipefail

D=${CLONEKIT_RGW_DIR:-${CLONEKIT_SERVICES_DIR:-/var/tmp/clonekit-services}/rgw}
RGW_PORT=${CLONEKIT_TEST_RGW_PORT:-7480}
MON_PORT=${CLONEKIT_RGW_MON_PORT:-3300}
MON_V1_PORT=${CLONEKIT_RGW_MON_V1_PORT:-6789}
STORE_BYTES=${CLONEKIT_RGW_STORE_BYTES:-4294967296}
ACCESS=${CLONEKIT_RGW_ACCESS:-clonekit-test}
SECRET=${CLONEKIT_RGW_SECRET:-clonekit-test-secret}
S3_UID=clonekit
ENDPOINT="http://127.0.0.1:$RGW_PORT"
CONF="$D/ceph.conf"
DAEMONS="mon.a osd.0 client.rgw.x"

log() { echo "[ceph-rgw] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
ceph_() { timeout 30 ceph -c "$CONF" --connect-timeout 10 "$@"; }

# pid of a daemon we started, if it is still that daemon
live_pid() {
  local f="$D/run/$1.pid" pid
  [ -s "$f" ] || return 1
  pid=$(cat "$f")
  [ -d "/proc/$pid" ] || return 1
  grep -qE '^(ceph-mon|ceph-osd|radosgw)$' "/proc/$pid/comm" 2>/dev/null || return 1
  echo "$pid"
}

healthy() {
  [ -f "$CONF" ] || return 1
  local n
  for n in $DAEMONS; do live_pid "$n" >/dev/null || return 1; done
  curl -s -o /dev/null --max-time 5 "$ENDPOINT/" || return 1
  [ -f "$D/user.done" ] || return 1
}

stop_all() {
  local n pid pids=()
  for n in client.rgw.x osd.0 mon.a; do
    if pid=$(live_pid "$n"); then kill -TERM "$pid" 2>/dev/null || true; pids+=("$pid"); fi
  done
  for _ in $(seq 50); do
    local alive=0
    for pid in "${pids[@]}"; do [ -d "/proc/$pid" ] && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.2
  done
  for pid in "${pids[@]}"; do
    [ -d "/proc/$pid" ] && grep -qE '^(ceph-mon|ceph-osd|radosgw)$' "/proc/$pid/comm" 2>/dev/null \
      && kill -KILL "$pid" 2>/dev/null || true
  done
  rm -f "$D"/run/*.pid
}

# start a daemon (it daemonizes itself and writes $D/run/NAME.pid); fd 9 (our lock) must not leak into it
start_daemon() {  # name command...
  local name=$1; shift
  "$@" 9>&- </dev/null >>"$D/log/$name.stderr" 2>&1 \
    || die "$1 did not start: $(tail -5 "$D/log/$name.log" "$D/log/$name.stderr" 2>/dev/null)"
}

wait_for() {  # seconds description command...
  local secs=$1 what=$2; shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || die "timed out after ${secs}s waiting for $what (logs: $D/log)"
    sleep 0.5
  done
}

port_free() { ! ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

write_conf() {
  local fsid=$1
  cat >"$CONF" <<EOF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$MON_V1_PORT]
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $D/keyring
run dir = $D/run
admin socket = $D/run/\$name.asok
pid file = $D/run/\$name.pid
log file = $D/log/\$name.log
mon cluster log file = $D/log/cluster.log
log to stderr = false
err to stderr = true
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
mon data avail warn = 2
mon data avail crit = 1
auth allow insecure global id reclaim = false

[mon]
mon data = $D/mon/ceph-\$id

[osd]
osd data = $D/osd/ceph-\$id
osd objectstore = memstore
memstore device bytes = $STORE_BYTES

[client.rgw.x]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw data = $D/rgw/ceph-x
# deleted objects' data is reclaimed after a minute, not two hours (memstore holds it in RAM)
rgw gc obj min wait = 60
rgw gc processor period = 60
EOF
}

bootstrap() {
  local t0=$SECONDS fsid osd_uuid
  for p in "$MON_PORT" "$MON_V1_PORT" "$RGW_PORT"; do
    port_free "$p" || die "port $p on 127.0.0.1 is taken by something else"
  done
  # keep the venv (if any), wipe the cluster state
  rm -rf "$D/mon" "$D/osd" "$D/rgw" "$D/run" "$D/log" "$D/keyring" "$D/monmap" "$D/user.done" "$CONF"
  mkdir -p "$D"/{mon/ceph-a,osd/ceph-0,rgw/ceph-x,run,log}
  fsid=$(cat /proc/sys/kernel/random/uuid)
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  write_conf "$fsid"

  # one keyring for every daemon and the admin; the monitor imports it (keys and caps) at mkfs
  ceph-authtool --create-keyring "$D/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool "$D/keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
  ceph-authtool "$D/keyring" --gen-key -n osd.0 \
    --cap mon 'allow profile osd' --cap mgr 'allow profile osd' --cap osd 'allow *' >/dev/null
  ceph-authtool "$D/keyring" --gen-key -n client.rgw.x \
    --cap mon 'allow rw' --cap osd 'allow rwx' --cap mgr 'allow rw' >/dev/null
  chmod 600 "$D/keyring"

  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$MON_V1_PORT]" \
    "$D/monmap" >/dev/null
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$D/monmap" --keyring "$D/keyring" 2>"$D/log/mkfs-mon.err" \
    || die "ceph-mon --mkfs: $(tail -3 "$D/log/mkfs-mon.err")"
  start_daemon mon.a ceph-mon -c "$CONF" -i a
  wait_for 60 "the monitor" ceph_ mon stat
  log "monitor up ($((SECONDS - t0))s)"

  [ "$(ceph_ osd new "$osd_uuid" 0)" = 0 ] || die "ceph osd new did not give id 0"
  ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" 2>"$D/log/mkfs-osd.err" >/dev/null \
    || die "ceph-osd --mkfs: $(tail -3 "$D/log/mkfs-osd.err")"
  start_daemon osd.0 ceph-osd -c "$CONF" -i 0
  wait_for 90 "osd.0 up" bash -c "timeout 30 ceph -c '$CONF' osd dump 2>/dev/null | grep -q '^osd.0 up'"
  log "osd up ($((SECONDS - t0))s)"

  start_daemon client.rgw.x radosgw -c "$CONF" -n client.rgw.x
  wait_for 120 "radosgw on $ENDPOINT" curl -s -o /dev/null --max-time 3 "$ENDPOINT/"
  log "radosgw up ($((SECONDS - t0))s)"

  if ! timeout 60 radosgw-admin -c "$CONF" user info --uid="$S3_UID" >/dev/null 2>&1; then
    timeout 60 radosgw-admin -c "$CONF" user create --uid="$S3_UID" --display-name="$S3_UID" \
      --access-key="$ACCESS" --secret-key="$SECRET" >"$D/log/user-create.out" 2>&1 \
      || die "radosgw-admin user create: $(tail -3 "$D/log/user-create.out")"
  fi
  touch "$D/user.done"
  for n in $DAEMONS; do live_pid "$n" >/dev/null || die "$n is not running after start (see $D/log)"; done
  log "cluster ready in $((SECONDS - t0))s"
}

case "${1:-up}" in
  up)
    for b in ceph-mon ceph-osd radosgw radosgw-admin ceph ceph-authtool monmaptool curl; do
      command -v "$b" >/dev/null || die "$b is missing: scripts/services.sh installs it (apt: ceph-mon ceph-osd radosgw ceph-common)"
    done
    mkdir -p "$D"
    exec 9>"$D/.lock"; flock -w 300 9 || die "another ceph-s3.sh holds $D/.lock"
    if healthy; then
      log "reusing the running cluster in $D"
    else
      stop_all
      bootstrap
    fi
    echo "$ENDPOINT $ACCESS $SECRET"
    ;;
  down)
    [ -d "$D/run" ] || { log "nothing to stop"; exit 0; }
    exec 9>"$D/.lock"; flock -w 300 9 || die "another ceph-s3.sh holds $D/.lock"
    stop_all
    log "stopped"
    ;;
  status)
    if healthy; then echo up; else echo down; exit 1; fi
    ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
