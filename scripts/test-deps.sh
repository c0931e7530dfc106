#!/usr/bin/env bash
# Installs the Debian packages the end-to-end tests need, when missing.
# Idempotent, and a fast no-op when every command is already present.
set -euo pipefail

# ---- BEGIN ceph (single-node Ceph for test/helpers/ceph.ts; see shared/CEPH.md) ----
# Self-contained, and placed before the generic check below because that one exits early
# when its own commands are present. ~25 s to install; a no-op when the commands exist.
ceph_missing=0
for cmd in ceph-mon ceph-osd radosgw radosgw-admin ceph ceph-mds ceph-fuse; do
  command -v "$cmd" >/dev/null 2>&1 || ceph_missing=1
done
if [ "$ceph_missing" -eq 1 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    CEPH_SUDO=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    CEPH_SUDO=(sudo -n)
  else
    echo "test-deps: the ceph commands are missing; as root run:" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw ceph-common ceph-mds ceph-fuse" >&2
    exit 1
  fi
  echo "test-deps: installing ceph-mon ceph-osd radosgw ceph-common ceph-mds ceph-fuse" >&2
  # Without systemd the package scripts must not start daemons: policy-rc.d answering 101 stops them.
  ceph_own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | "${CEPH_SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${CEPH_SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
    ceph_own_policy=1
  fi
  ceph_rc=0
  { "${CEPH_SUDO[@]}" apt-get update &&
    "${CEPH_SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ceph-mon ceph-osd radosgw ceph-common ceph-mds ceph-fuse; } || ceph_rc=$?
  if [ "$ceph_own_policy" -eq 1 ]; then
    "${CEPH_SUDO[@]}" rm -f /usr/sbin/policy-rc.d
  fi
  if [ "$ceph_rc" -ne 0 ]; then
    echo "test-deps: installing the ceph packages failed (exit $ceph_rc)" >&2
    exit "$ceph_rc"
  fi
  for cmd in ceph-mon ceph-osd radosgw radosgw-admin ceph ceph-mds ceph-fuse; do
    if ! command -v "$cmd" >/dev/null 2>&1; then
      echo "test-deps: $cmd still missing after installing the ceph packages" >&2
      exit 1
    fi
  done
fi
# ---- END ceph ----

# ---- BEGIN webdav-upstreams (nginx + dav-ext, Apache mod_dav for test/helpers/dav-servers.ts) ----
# Self-contained and placed before the generic check below, which exits early when its own
# commands are present. ~10 s to install; a no-op when everything is there. The servers are
# started by the tests on random loopback ports; the packages' own services must not start.
dav_missing=0
for f in /usr/sbin/nginx /usr/lib/nginx/modules/ngx_http_dav_ext_module.so /usr/sbin/apache2 \
         /usr/lib/apache2/modules/mod_dav_fs.so /usr/bin/htpasswd; do
  [ -e "$f" ] || dav_missing=1
done
if [ "$dav_missing" -eq 1 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    DAV_SUDO=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    DAV_SUDO=(sudo -n)
  else
    echo "test-deps: nginx/apache2 WebDAV servers are missing; as root run:" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends nginx libnginx-mod-http-dav-ext apache2 apache2-utils" >&2
    exit 1
  fi
  echo "test-deps: installing nginx libnginx-mod-http-dav-ext apache2 apache2-utils" >&2
  # policy-rc.d answering 101 keeps the package scripts from starting nginx and apache2.
  dav_own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | "${DAV_SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${DAV_SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
    dav_own_policy=1
  fi
  dav_rc=0
  { "${DAV_SUDO[@]}" apt-get update &&
    "${DAV_SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      nginx libnginx-mod-http-dav-ext apache2 apache2-utils; } || dav_rc=$?
  if [ "$dav_own_policy" -eq 1 ]; then
    "${DAV_SUDO[@]}" rm -f /usr/sbin/policy-rc.d
  fi
  if [ "$dav_rc" -ne 0 ]; then
    echo "test-deps: installing the WebDAV server packages failed (exit $dav_rc)" >&2
    exit "$dav_rc"
  fi
  for f in /usr/sbin/nginx /usr/lib/nginx/modules/ngx_http_dav_ext_module.so /usr/sbin/apache2 \
           /usr/lib/apache2/modules/mod_dav_fs.so /usr/bin/htpasswd; do
    if [ ! -e "$f" ]; then
      echo "test-deps: $f still missing after installing the WebDAV server packages" >&2
      exit 1
    fi
  done
fi
# ---- END webdav-upstreams ----

# command -> Debian package. Commands are looked up on PATH and in the sbin/libexec directories
# (mount.davfs lives in /usr/sbin, the gvfs daemons in /usr/libexec, neither always on PATH).
# gvfs-backends (gvfsd-dav) pulls in ~75 packages (udisks2, samba and MTP libraries, a systemd
# update): about 10 s here; the package scripts start no daemon (udev sees a chroot).
declare -A PKG_FOR=(
  [litmus]=litmus
  [rclone]=rclone
  [fusermount3]=fuse3
  [mount.davfs]=davfs2
  [gio]=libglib2.0-bin
  [dbus-daemon]=dbus-daemon
  [gvfsd-dav]=gvfs-backends
  [gvfsd-fuse]=gvfs-fuse
)

have() {
  command -v "$1" >/dev/null 2>&1 && return 0
  local d
  for d in /usr/sbin /sbin /usr/libexec /usr/lib/gvfs; do
    [ -x "$d/$1" ] && return 0
  done
  return 1
}

missing=()
for cmd in "${!PKG_FOR[@]}"; do
  if ! have "$cmd"; then
    missing+=("${PKG_FOR[$cmd]}")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

# de-duplicate, stable order
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "test-deps: missing Debian packages: ${missing[*]}" >&2
  echo "test-deps: not root and no passwordless sudo; install them with:" >&2
  echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "test-deps: missing packages ${missing[*]} and apt-get is not available; install them by hand" >&2
  exit 1
fi

echo "test-deps: installing ${missing[*]}" >&2
"${SUDO[@]}" apt-get update
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y --no-install-recommends "${missing[@]}"

still=()
for cmd in "${!PKG_FOR[@]}"; do
  have "$cmd" || still+=("$cmd")
done
if [ "${#still[@]}" -ne 0 ]; then
  echo "test-deps: still missing after install: ${still[*]}" >&2
  exit 1
fi
