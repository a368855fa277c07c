#!/usr/bin/env bash
# Fills .devlib/ with the shared libraries build/emile links that the GPU
# host (Ubuntu 24.04, no package registry) may lack: what ldd names, less
# glibc's own and the base libraries every Ubuntu 24.04 has under the same
# soname (copying those would override the host's own for every program
# on LD_LIBRARY_PATH, python3 and its ssl/sqlite3/ctypes modules among
# them).  Built here on Debian 12 (glibc 2.36), they run there (glibc
# 2.39).  bench/gpu_session.sh puts .devlib on LD_LIBRARY_PATH and prints
# what ldd still cannot find; name .devlib in the device call's carry.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/emile ] || { echo "devlib: build first (make all)"; exit 1; }
rm -rf .devlib && mkdir -p .devlib
ldd build/emile | awk '$3 ~ /^\// {print $3}' | while read -r lib; do
  case $(basename "$lib") in
    libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|libresolv.so*|ld-linux*) continue ;;
    libssl.so*|libcrypto.so*|libffi.so*|libz.so*|libzstd.so*|libsqlite3.so*|libpcre2-8.so*) continue ;;
    libgnutls.so*|libnettle.so*|libhogweed.so*|libgmp.so*|libp11-kit.so*|libtasn1.so*) continue ;;
    libkeyutils.so*|libcom_err.so*|libkrb5*|libk5crypto.so*|libgssapi_krb5.so*) continue ;;
    libbrotli*|libidn2.so*|libsasl2.so*|libnghttp2.so*|libpsl.so*) continue ;;
  esac
  cp -L "$lib" .devlib/
done
du -sh .devlib
