#!/usr/bin/env bash
# Installs what terracover needs on a fresh Debian bookworm machine: the services the tests start on loopback
# (PostgreSQL 15 + PostGIS, Prometheus, Alertmanager, Chromium) and one virtual environment pinned by
# requirements/dev.txt. Safe to re-run: it only installs what is missing.
set -euo pipefail
VENV=${1:-.venv}
cd "$(dirname "$0")/.."

need_apt=()
for pkg in postgresql-15 postgresql-15-postgis-3 prometheus prometheus-alertmanager chromium; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

command -v uv >/dev/null 2>&1 || python3 -m pip install -q "uv==0.13.9"
[ -x "$VENV/bin/python" ] || uv venv -q --python 3.11 "$VENV"
echo "setup: syncing $VENV with requirements/dev.txt"
VIRTUAL_ENV="$VENV" uv pip sync -q --compile-bytecode requirements/dev.txt
VIRTUAL_ENV="$VENV" uv pip install -q --no-deps --compile-bytecode -e .
echo "setup: done"
