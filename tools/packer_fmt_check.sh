#!/usr/bin/env bash
# `packer fmt -check` on every images/<family>/ folder, with a real Packer.
#
# Why this Packer: the templates pin Packer >= 1.16.1 (bake.yml installs
# 1.16.1 from releases.hashicorp.com), which no package registry gild's
# machines reach serves (PyPI and npm have no HashiCorp build; the only
# Debian `packer` is Debian 12's 1.6.6, version 1.6.6+ds2-1+b1, checked with
# `apt-cache policy packer` on 2026-12-02). Its `packer fmt`
# is the same code path as 1.16's (parse with hclsyntax, then
# hclwrite.Format on the bytes), only an older vendored HCL. It checks layout
# only; it does not validate 1.16 syntax or the plugins' schemas.
#
# The .deb is fetched with `apt-get download` (signed Debian archive), checked
# against the sha256 below (`apt-cache show packer=<version>`), and unpacked
# into .tools/ without installing anything system-wide.
#
# Usage: tools/packer_fmt_check.sh [folder...]   (default: every images/*/
#        holding a *.pkr.hcl; a family's own folder may hold only tests)
# Env:   PACKER_FMT_BIN=/path/to/packer  uses that binary instead.
set -euo pipefail

DEB_VERSION="1.6.6+ds2-1+b1"
DEB_SHA256="7b690f62b30ba76e14769c4d40a2b883e1be6807c95f7fca22190c6f319c18c5"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOOLS_DIR="$ROOT/.tools/packer-deb-$DEB_VERSION"

fetch_packer() {
  if [ "$(dpkg --print-architecture 2>/dev/null || echo unknown)" != amd64 ]; then
    echo "packer-fmt: the pinned Debian packer .deb is amd64 only; set PACKER_FMT_BIN" >&2
    exit 1
  fi
  local work deb
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  # apt-get download needs the package lists; a fresh machine may have none.
  if ! (cd "$work" && apt-get download -q "packer=$DEB_VERSION" >/dev/null 2>&1); then
    if [ "$(id -u)" = 0 ]; then
      apt-get update -q >/dev/null
      (cd "$work" && apt-get download -q "packer=$DEB_VERSION" >/dev/null 2>&1)
    else
      echo "packer-fmt: apt-get download packer=$DEB_VERSION failed; run 'apt-get update' as root" >&2
      exit 1
    fi
  fi
  deb="$(ls "$work"/packer_*.deb)"
  if [ "$(sha256sum "$deb" | cut -d' ' -f1)" != "$DEB_SHA256" ]; then
    echo "packer-fmt: $deb is not the pinned packer $DEB_VERSION ($DEB_SHA256)" >&2
    exit 1
  fi
  rm -rf "$TOOLS_DIR.tmp"
  mkdir -p "$TOOLS_DIR.tmp"
  dpkg-deb -x "$deb" "$TOOLS_DIR.tmp"
  rm -rf "$TOOLS_DIR"
  mv "$TOOLS_DIR.tmp" "$TOOLS_DIR"
}

PACKER="${PACKER_FMT_BIN:-$TOOLS_DIR/usr/bin/packer}"
if [ -z "${PACKER_FMT_BIN:-}" ] && [ ! -x "$PACKER" ]; then
  fetch_packer
fi
export CHECKPOINT_DISABLE=1

# The formatter must catch a misaligned file, or a pass below means nothing.
probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
printf 'locals {\n  a = 1\n  long_name = 2\n}\n' > "$probe/probe.pkr.hcl"
if "$PACKER" fmt -check "$probe" >/dev/null 2>&1; then
  echo "packer-fmt: $PACKER fmt -check accepted a misaligned file; not a usable formatter" >&2
  exit 1
fi

cd "$ROOT"
if [ "$#" -eq 0 ]; then
  for folder in images/*/; do
    if compgen -G "${folder}*.pkr.hcl" > /dev/null; then
      set -- "$@" "$folder"
    fi
  done
fi
failed=0
for folder in "$@"; do
  # packer 1.6's fmt takes one folder and does not recurse.
  if "$PACKER" fmt -check -diff "$folder"; then
    echo "packer fmt -check $folder: ok ($("$PACKER" version | head -n1))"
  else
    echo "packer fmt -check $folder: FAILS (run: $PACKER fmt $folder)" >&2
    failed=1
  fi
done
exit "$failed"
