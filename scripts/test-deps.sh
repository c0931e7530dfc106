#!/usr/bin/env bash
# Installs the Debian packages the end-to-end tests need, when missing.
# Idempotent, and a fast no-op when every command is already present.
set -euo pipefail

# command -> Debian package
declare -A PKG_FOR=(
  [litmus]=litmus
  [rclone]=rclone
  [fusermount3]=fuse3
)

missing=()
for cmd in "${!PKG_FOR[@]}"; do
  if ! command -v "$cmd" >/dev/null 2>&1; then
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
  command -v "$cmd" >/dev/null 2>&1 || still+=("$cmd")
done
if [ "${#still[@]}" -ne 0 ]; then
  echo "test-deps: still missing after install: ${still[*]}" >&2
  exit 1
fi
