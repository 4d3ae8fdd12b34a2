#!/usr/bin/env bash
# `make demo`: start the WordPress "production" on this machine, then clone it into a
# preview with clonekit and print the URL. Safe to run again (refreshes the preview).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=${PYTHON:-python3}
STATE=${CKPROD_STATE:-/var/tmp/clonekit-wordpress}
say() { printf '\n==> %s\n' "$*" >&2; }

say "starting the WordPress production (compose project ckprod)"
./scripts/wordpress-prod.sh up

# Secrets are named in demo/clonekit.yml and come from the environment, never from argv.
set -a; . "$STATE/prod.env"; set +a
if [ -z "${CLONEKIT_SECRET:-}" ]; then
  SECRET_FILE=demo/.clonekit/secret
  mkdir -p demo/.clonekit
  [ -s "$SECRET_FILE" ] || (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$SECRET_FILE")
  CLONEKIT_SECRET=$(cat "$SECRET_FILE"); export CLONEKIT_SECRET
fi
ck() { "$PY" -m clonekit -c demo/clonekit.yml "$@"; }

say "clonekit scan prod: which columns hold personal data, and which rule covers each"
ck scan prod || true

say "clonekit clone prod --as demo (snapshot: capture + sanitize + store; then a preview)"
if ck --json list | grep -q '"name": "demo"'; then
  ck snapshot prod
  ck refresh demo
else
  ck clone prod --as demo
fi

say "snapshots in the store"
ck snapshots prod
say "previews"
ck list
URL=$(ck --json list | "$PY" -c 'import json,sys; print(next(p["url"] for p in json.load(sys.stdin) if p["name"]=="demo"))')
say "the preview answers at $URL (production: http://127.0.0.1:8088). Personal data is pseudonymized;"
echo "    every account's password is the development password 'clonekit'." >&2
echo "    Remove it with: $PY -m clonekit -c demo/clonekit.yml destroy demo --yes" >&2
echo "$URL"
