#!/usr/bin/env bash
# Load benchmark of group_join: builds ./cmd/caddy and
# bench/edgebench, then runs edgebench, which starts a fast backend, an
# external validation service and the same Caddy in four setups on
# 127.0.0.1, drives them with wrk in alternating rounds and prints req/s,
# p50/p99, Caddy's CPU µs per request and peak RSS, with the target ratios.
#
#   bench/run.sh                 # default: 4 rounds × 8 s per setup, about 2.5 minutes; 200 users,
#                                # 30,000 distinct invites rotated (nearly every invite never seen recently)
#   bench/run.sh -shared         # the shared-link case: 2,000 invites rotated, which the invite cache holds
#   bench/run.sh -long           # 10 rounds × 15 s, about 11 minutes
#   bench/run.sh -rounds 6 -duration 10s -connections 64 -markdown
#   bench/run.sh -pin            # Caddy alone on CPU 0, the rest on the other CPUs
#   bench/run.sh -only ab -options 'upstream_headers off'   # cost of an option
#   bench/run.sh -profile        # CPU profiles and allocation snapshots, kept
#   bench/run.sh -only abef      # (e), (f): (b) and (a) with reverse_proxy's request_buffers
#   bench/run.sh -pace 3         # every setup at about the same rate: CPU per request at equal load
#   bench/run.sh -h              # all flags
#   CADDY=/path/to/caddy bench/run.sh   # measure another build
#   bench/run.sh -only abd -baseline /path/to/caddy   # (g), (h): (b), (d) on another build, same rounds
#   bench/run.sh -only ab -baseline /path/to/caddy -together -pace 30   # all at once, same rate: before/after on a noisy host
#
# Needs Go and wrk (Debian: apt-get install -y wrk). Talks only to
# 127.0.0.1, stops by itself and kills what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null 2>&1; then
  echo "bench/run.sh: wrk not found; install it with: apt-get install -y wrk" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# edgebench is its own Go module (bench/go.mod), built against this checkout.
go build -C bench -o "$tmp/edgebench" ./edgebench
caddy=${CADDY:-}
if [ -z "$caddy" ]; then
  caddy=$tmp/caddy
  go build -o "$caddy" ./cmd/caddy
  echo "built Caddy $("$caddy" version | cut -d' ' -f1) with group_join at commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (+ uncommitted changes)')"
else
  echo "using Caddy $caddy ($("$caddy" version | cut -d' ' -f1))"
fi
"$tmp/edgebench" -caddy "$caddy" "$@"
