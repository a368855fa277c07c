#!/usr/bin/env bash
# Installs what Emile needs to build and test on Debian 12, then builds.
# Idempotent, and offline once everything is installed:
#   1. Debian packages (compilers, libraries, chromium for the browser
#      tests), waiting for another apt/dpkg to finish instead of failing;
#   2. a Python virtual environment in build/venv with the pinned packages
#      of python/requirements.txt (torch CPU, Triton, transformers,
#      tokenizers, Playwright): the system Python is never touched;
#   3. where nvcc is found but its toolkit has no cuBLAS (the engine's GPU
#      path links it), cuBLAS's headers and library from NVIDIA's PyPI
#      wheel into build/deps/cublas;
#   4. `make all`.
# EMILE_SETUP_SKIP_PYTHON=1 skips step 2 (the main job needs no Python).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "setup: $*"; }
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo

# --- 1. Debian packages ------------------------------------------------------
pkgs=(build-essential pkg-config libjansson-dev libsqlite3-dev libcmocka-dev
      libcurl4-openssl-dev libmicrohttpd-dev sqlite3 chromium jq libpcre2-dev libutf8proc-dev
      unzip libssl-dev slurm-wlm munge)
python3 -c 'import ensurepip, venv' 2>/dev/null || pkgs+=(python3-venv)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Another apt (unattended upgrades, a provisioning script) may hold the
# locks: wait for it, up to 15 minutes, instead of failing.
apt_wait() {
  local out
  for _ in $(seq 1 180); do
    if out=$("$@" 2>&1); then return 0; fi
    if grep -qiE 'could not get lock|unable to acquire|is another process using it' <<<"$out"; then
      say "another apt or dpkg holds the lock; waiting"
      sleep 5
    else
      echo "$out" >&2
      return 1
    fi
  done
  echo "$out" >&2
  return 1
}
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  apt_wait $SUDO apt-get -o DPkg::Lock::Timeout=60 update -qq
  apt_wait $SUDO env DEBIAN_FRONTEND=noninteractive \
    apt-get -o DPkg::Lock::Timeout=60 install -y -qq "${missing[@]}"
fi

# --- 2. the Python side, in build/venv -------------------------------------
venv=build/venv
req=python/requirements.txt
con=python/constraints.txt
stamp=$venv/.emile-requirements
want=$(cat "$req" "$con" | sha256sum | cut -d' ' -f1)
if [ "${EMILE_SETUP_SKIP_PYTHON:-0}" != 1 ]; then
  if [ ! -x $venv/bin/python3 ] || [ "$(cat $stamp 2>/dev/null)" != "$want" ]; then
    say "installing python/requirements.txt into $venv (torch CPU, triton, transformers, tokenizers, playwright)"
    [ -x $venv/bin/python3 ] || python3 -m venv $venv
    # (this machine's pip config names local indexes that may be absent: hide
    # pip's warnings about them, keep everything else it says)
    PIP_DISABLE_PIP_VERSION_CHECK=1 $venv/bin/pip install -q -r "$req" -c "$con" \
      2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
    echo "$want" > $stamp
  else
    say "$venv is up to date"
  fi
fi

# --- 3. cuBLAS for the engine's GPU path, where the toolkit lacks it --------
cublas_pin=nvidia-cublas==13.0.0.19     # CUDA 13.0, as nvcc here and on the GPU host
nvcc_bin=$(command -v nvcc || true)
if [ -n "$nvcc_bin" ]; then
  cuda_inc=$("$nvcc_bin" -v -x cu -E /dev/null -o /dev/null 2>&1 | sed -n 's/^#\$ INCLUDES="-I\([^"]*\)".*/\1/p' | head -1)
  if [ -n "$cuda_inc" ] && [ -f "$cuda_inc/cublas_v2.h" ]; then
    : # the toolkit has cuBLAS
  elif [ ! -f build/deps/cublas/include/cublas_v2.h ]; then
    say "nvcc's toolkit has no cuBLAS: fetching its headers and library ($cublas_pin)"
    tmp=$(mktemp -d)
    PIP_DISABLE_PIP_VERSION_CHECK=1 python3 -m pip download -q --no-deps -d "$tmp" "$cublas_pin"
    mkdir -p build/deps/cublas
    unzip -q -o "$tmp"/nvidia_cublas-*.whl 'nvidia/cu13/include/*' 'nvidia/cu13/lib/libcublas.so.13' -d "$tmp/x"
    cp -r "$tmp"/x/nvidia/cu13/include "$tmp"/x/nvidia/cu13/lib build/deps/cublas/
    ln -sf libcublas.so.13 build/deps/cublas/lib/libcublas.so
    rm -rf "$tmp"
  fi
fi

# --- 4. build ------------------------------------------------------------------
make -j"$(nproc)" all
