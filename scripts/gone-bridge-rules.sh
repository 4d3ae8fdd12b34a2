#!/usr/bin/env bash
# Remove the iptables rules (nat and filter tables) that name a Docker bridge (br-<12 hex>) this
# host no longer has. Idempotent; run by scripts/services.sh. Usage: scripts/gone-bridge-rules.sh
#
# Docker adds rules for each bridge network and removes them with the network, but a dockerd
# stopped with its data removed (a package purge, a fresh /var/lib/docker) leaves them behind,
# and services.sh deletes such bridges (troubleshooting.md #15). Most of these rules name the
# bridge and match nothing once it is gone; its masquerade rule does not:
#   -A POSTROUTING -s 172.18.0.0/16 ! -o br-GONE -j MASQUERADE
# matches every packet from that subnet. When a new network gets the subnet, even the traffic
# between two of its containers (bridged, shown to iptables by br_netfilter) leaves with the
# gateway's address. Plain TCP hardly notices; the swarm tests' nodes (dockerd in containers on
# such a network) lose their overlay: a node's VXLAN drops every frame whose outer source is not
# the address Docker recorded for the sender's MAC (kfree_skb reason VXLAN_ENTRY_EXISTS), so the
# manager's proxy times out dialing a task on a worker (docs/scaling.md, "Limits on a swarm").
#
# Rules are listed before bridges: a network created meanwhile (Docker makes its bridge first,
# its rules after) is never taken for a gone one.
set -euo pipefail
log() { printf '[gone-bridge-rules] %s\n' "$*" >&2; }
command -v iptables >/dev/null || exit 0
for table in nat filter; do
  rules=$(iptables -w -t "$table" -S 2>/dev/null | grep -E -e '-[io] br-[0-9a-f]{12}( |$)' || true)
  [ -n "$rules" ] || continue
  bridges=" $(ip -o link show type bridge 2>/dev/null | awk -F': ' '{print $2}' | tr '\n' ' ') "
  while read -r rule; do
    gone=""
    for bridge in $(printf '%s\n' "$rule" | grep -oE 'br-[0-9a-f]{12}' | sort -u); do
      case "$bridges" in *" $bridge "*) ;; *) gone=$bridge ;; esac
    done
    [ -n "$gone" ] || continue
    log "removing a $table rule of bridge $gone (gone): $rule"
    eval "iptables -w -t $table $(printf '%s' "$rule" | sed 's/^-A /-D /')" || true
  done <<< "$rules"
done
