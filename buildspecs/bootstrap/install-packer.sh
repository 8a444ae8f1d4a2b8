#!/usr/bin/env bash
# bake.yml, install phase: Packer ${PACKER_VERSION} into /usr/local/bin,
# verified two ways (see the comment on PACKER_SHA256 in bake.yml):
# SHA256SUMS signed by HashiCorp's release key (HASHICORP_PGP_FINGERPRINT),
# and the zip pinned by PACKER_SHA256 once the operator has confirmed it.
# Needs outbound HTTPS to releases.hashicorp.com and www.hashicorp.com.
# The offline twin replaces this script (it downloads): see
# tests/twin/codebuild/README.md.
set -euo pipefail
: "${PACKER_VERSION:?}" "${HASHICORP_PGP_FINGERPRINT:?}"
case "$(uname -m)" in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
  *) echo "unsupported machine $(uname -m)" >&2; exit 1 ;;
esac
base="https://releases.hashicorp.com/packer/${PACKER_VERSION}"
zip="packer_${PACKER_VERSION}_linux_${arch}.zip"
sums="packer_${PACKER_VERSION}_SHA256SUMS"
work=$(mktemp -d)
cd "$work"
fetch() { curl -fsSL --retry 5 --retry-all-errors -o "$1" "$2"; }
fetch "$zip" "$base/$zip"
fetch "$sums" "$base/$sums"
fetch "$sums.sig" "$base/$sums.sig"
fetch hashicorp.asc https://www.hashicorp.com/.well-known/pgp-key.txt
export GNUPGHOME="$work/gnupg"
mkdir -m 0700 "$GNUPGHOME"
gpg --batch --quiet --import hashicorp.asc
fingerprints=$(gpg --batch --with-colons --fingerprint | awk -F: '$1 == "fpr" { print $10 }')
if ! grep -qx "$HASHICORP_PGP_FINGERPRINT" <<<"$fingerprints"; then
  echo "the downloaded HashiCorp key is not $HASHICORP_PGP_FINGERPRINT" >&2
  exit 1
fi
status=$(gpg --batch --status-fd 1 --verify "$sums.sig" "$sums" 2>/dev/null || true)
if ! grep -q "^\[GNUPG:\] VALIDSIG .* $HASHICORP_PGP_FINGERPRINT\$" <<<"$status"; then
  echo "$sums is not signed by HashiCorp's release key" >&2
  exit 1
fi
grep " $zip\$" "$sums" > expected.sha256
sha256sum -c expected.sha256
actual=$(sha256sum "$zip" | cut -d' ' -f1)
if [ -n "${PACKER_SHA256:-}" ]; then
  if [ "$actual" != "$PACKER_SHA256" ]; then
    echo "$zip is $actual, pinned $PACKER_SHA256" >&2
    exit 1
  fi
else
  echo "WARNING: PACKER_SHA256 is not pinned yet; verified by signature only. Confirm and pin: $zip $actual"
fi
unzip -o -q "$zip" packer -d /usr/local/bin
cd /
rm -rf "$work"
packer version
