#!/usr/bin/env bash
# Installs the Debian packages the end-to-end tests need, when missing: one `apt-get update`,
# one `apt-get install`. Idempotent, and a fast no-op when everything is present.
set -euo pipefail

# What must exist (a command, looked up on PATH and in the sbin/libexec directories, or an
# absolute file) -> the Debian package that provides it.
declare -A PKG_FOR=(
  [litmus]=litmus                       # WebDAV compliance suite
  [rclone]=rclone                       # FUSE mount client
  [fusermount3]=fuse3
  [mount.davfs]=davfs2                  # davfs2 mount client
  [gio]=libglib2.0-bin                  # GNOME gvfs client, headless
  [dbus-daemon]=dbus-daemon
  [gvfsd-dav]=gvfs-backends             # ~75 packages, ~10 s; no daemon starts (udev sees a chroot)
  [gvfsd-fuse]=gvfs-fuse
  [ceph-mon]=ceph-mon                   # single-node Ceph: S3 (RGW) and CephFS (test/helpers/ceph.ts)
  [ceph-osd]=ceph-osd
  [radosgw]=radosgw
  [radosgw-admin]=radosgw
  [ceph]=ceph-common
  [ceph-mds]=ceph-mds
  [ceph-fuse]=ceph-fuse
  [/usr/sbin/nginx]=nginx               # WebDAV upstreams (test/helpers/dav-servers.ts)
  [/usr/lib/nginx/modules/ngx_http_dav_ext_module.so]=libnginx-mod-http-dav-ext
  [/usr/sbin/apache2]=apache2
  [/usr/lib/apache2/modules/mod_dav_fs.so]=apache2
  [htpasswd]=apache2-utils
  [lftp]=lftp                           # a WebDAV client with its own habits (PROPPATCH + stray header, DELETE Depth: 0)
  [prometheus]=prometheus               # dashboard and alert expressions on a real Prometheus
  [promtool]=prometheus
  [buildah]=buildah                     # the image is built and run in the tests (no Docker engine)
  [debootstrap]=debootstrap             # the local node base image those builds start FROM
  [redis-server]=redis-server           # shared locks, properties and invalidation of several gateways (test/helpers/redis.ts)
  [chromium]=chromium                   # the browser file manager, driven headless by playwright-core
  [/usr/sbin/haproxy]=haproxy           # a load balancer in front of them (test/helpers/haproxy.ts)
)

have() {
  case "$1" in /*) [ -e "$1" ]; return ;; esac
  command -v "$1" >/dev/null 2>&1 && return 0
  local d
  for d in /usr/sbin /sbin /usr/libexec /usr/lib/gvfs; do
    [ -x "$d/$1" ] && return 0
  done
  return 1
}

missing=()
for what in "${!PKG_FOR[@]}"; do
  have "$what" || missing+=("${PKG_FOR[$what]}")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
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
# Without systemd the package scripts must not start daemons (nginx, apache2, ceph):
# policy-rc.d answering 101 is the Debian way. Ours only if there was none.
own_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
  "${SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
  own_policy=1
fi
rc=0
{ "${SUDO[@]}" apt-get update &&
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"; } || rc=$?
[ "$own_policy" -eq 1 ] && "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d
if [ "$rc" -ne 0 ]; then
  echo "test-deps: apt-get failed (exit $rc)" >&2
  exit "$rc"
fi

still=()
for what in "${!PKG_FOR[@]}"; do
  have "$what" || still+=("$what")
done
if [ "${#still[@]}" -ne 0 ]; then
  echo "test-deps: still missing after install: ${still[*]}" >&2
  exit 1
fi
