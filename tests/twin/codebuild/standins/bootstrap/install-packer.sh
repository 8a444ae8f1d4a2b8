#!/usr/bin/env bash
# Offline twin stand-in for buildspecs/bootstrap/install-packer.sh, which
# downloads Packer from releases.hashicorp.com and checks HashiCorp's
# signature: neither can run without the network. What does run: the pins
# it reads are set, and `packer` on PATH answers (the twin's stand-in,
# tests/twin/codebuild/standins/bin/packer).
set -euo pipefail
: "${PACKER_VERSION:?}" "${HASHICORP_PGP_FINGERPRINT:?}"
echo "stand-in: Packer ${PACKER_VERSION} not downloaded (offline); using $(command -v packer)"
packer version
