#!/usr/bin/env bash
# Offline twin stand-in for buildspecs/bootstrap/install-session-manager-plugin.sh,
# which downloads the plugin package from s3.amazonaws.com and installs it
# with dpkg/rpm. What does run: its pin is set and the stand-in answers.
set -euo pipefail
: "${SSM_PLUGIN_VERSION:?}"
echo "stand-in: session-manager-plugin ${SSM_PLUGIN_VERSION} not downloaded (offline)"
session-manager-plugin --version
