#!/usr/bin/env bash
# Shared by the bench scripts: a throwaway clone, a registry on a free port, timing.
# Sourced, not run: `source "$(dirname "$0")/lib.sh"`; it sets `work` and
# `xtask` for them.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/xtask-bench.XXXXXX")
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target/bench}
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print(round($(now) - $1, 2))"; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
cleanup() {
  if [ -n "${registry_pid:-}" ]; then kill "$registry_pid" 2>/dev/null || true; fi
  docker ps -aq --filter "name=xtask-bench-" | xargs -r docker rm -f >/dev/null
  docker network ls -q --filter "name=xtask-bench-" | xargs -r docker network rm >/dev/null 2>&1 || true
  docker images --format '{{.Repository}}:{{.Tag}}' | grep "^127.0.0.1:${port:-0}/" | xargs -r docker rmi -f >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
port=$(free_port)
mkdir -p "$work/registry"
printf 'version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: %s}, delete: {enabled: true}}\nhttp: {addr: 127.0.0.1:%s}\n' "$work/registry" "$port" > "$work/registry.yml"
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 & registry_pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
git clone -q "$root" "$work/repo"
cd "$work/repo"
git config user.email bench@example.invalid; git config user.name bench
export XTASK_ROOT="$work/repo" XTASK_REPOSITORY="127.0.0.1:$port/bench/api" XTASK_STAGING_REPOSITORY="127.0.0.1:$port/bench/api-staging"
unset CI GITHUB_REF_NAME
cargo build -q -p xtask
# shellcheck disable=SC2034 # read by the bench scripts that source this file
xtask="$CARGO_TARGET_DIR/debug/xtask"
