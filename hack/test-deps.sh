#!/usr/bin/env bash
# Installs the Debian packages of the servers the integration tests run for
# real (integration/providers): InfluxDB 1.x, Graphite's carbon-cache and
# graphite-web; and gRPC C-core's Python binding (python3-grpcio), the
# independent xDS client of integration/traffic. Installs only what is
# missing; needs root for that.
set -euo pipefail

log() { echo "test-deps: $*" >&2; }

missing=()
command -v influxd >/dev/null || missing+=(influxdb)
command -v carbon-cache >/dev/null || missing+=(graphite-carbon)
[ -f /usr/lib/python3/dist-packages/graphite/wsgi.py ] || missing+=(graphite-web)
# Debian's binding is for Debian's interpreter, whatever python3 is first in PATH.
/usr/bin/python3 -c 'import grpc' 2>/dev/null || missing+=(python3-grpcio)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
	log "please install as root: apt-get install -y --no-install-recommends ${missing[*]}"
	# Without CI the tests that need them skip and say so.
	[ -z "${CI:-}" ] && exit 0
	exit 1
fi
log "installing ${missing[*]} from Debian"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# The postinst scripts try to start the system services; the tests run
# their own on loopback ports.
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
