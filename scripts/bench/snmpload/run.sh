#!/usr/bin/env bash
# run.sh measures GET requests per second of iad-agent and of net-snmp's
# snmpd on this machine with the same load generator (main.go): v2c, then
# SNMPv3 authPriv (SHA/AES). Both agents run in the foreground on loopback
# ports in a temporary directory and are stopped by PID at the end.
#
#   scripts/bench/run.sh [CLIENTS] [DURATION]      e.g. scripts/bench/run.sh 8 10s
set -euo pipefail
cd "$(dirname "$0")/../../.."
CLIENTS=${1:-8}
DURATION=${2:-10s}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

go build -o "$work/iad-agent" ./cmd/iad-agent
go build -o "$work/bench" ./scripts/bench/snmpload
SNMPD=$(command -v snmpd || echo /usr/sbin/snmpd)

AUTH=bench-auth-pass PRIV=bench-priv-pass
cat >"$work/snmp.conf" <<EOC
community public ro
user bench auth SHA $AUTH priv AES $PRIV
EOC
chmod 600 "$work/snmp.conf"
"$work/iad-agent" -data "$work/var" -listen 127.0.0.1:17161 -snmp-config "$work/snmp.conf" -slot-size 1MiB -log-level error &
pids+=($!)

mkdir -p "$work/snmpd/conf" "$work/snmpd/persist"
cat >"$work/snmpd/conf/snmpd.conf" <<EOC
rocommunity public 127.0.0.1
createUser bench SHA $AUTH AES $PRIV
rouser bench priv
dontLogTCPWrappersConnects yes
EOC
SNMP_PERSISTENT_DIR="$work/snmpd/persist" SNMPCONFPATH="$work/snmpd/conf" \
	"$SNMPD" -f -Lf "$work/snmpd/log" -C -c "$work/snmpd/conf/snmpd.conf" udp:127.0.0.1:17162 &
pids+=($!)
sleep 2

echo "$(nproc) CPUs, $(snmpd -v 2>/dev/null | grep -m1 -o 'version: *[0-9.]*' || true), clients=$CLIENTS duration=$DURATION"
for v in v2c v3; do
	for t in "iad-agent 127.0.0.1:17161" "snmpd 127.0.0.1:17162"; do
		set -- $t
		if [ "$v" = v3 ]; then
			"$work/bench" -label "$1 $v authPriv" -target "$2" -clients "$CLIENTS" -duration "$DURATION" -v3user bench -v3auth "$AUTH" -v3priv "$PRIV"
		else
			"$work/bench" -label "$1 $v" -target "$2" -clients "$CLIENTS" -duration "$DURATION"
		fi
	done
done
