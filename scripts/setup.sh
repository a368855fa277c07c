#!/usr/bin/env bash
# Installs what Emile needs to build and test on Debian 12, then builds.
# Idempotent: packages already present are not reinstalled.
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=(build-essential pkg-config libjansson-dev libsqlite3-dev libcmocka-dev
      libcurl4-openssl-dev libmicrohttpd-dev sqlite3 chromium jq libpcre2-dev libutf8proc-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
make -j"$(nproc)" all
