#!/usr/bin/env bash
# bake.yml, install phase: the Session Manager plugin ${SSM_PLUGIN_VERSION}
# for the aws CLI (Packer's session_manager interface and Ansible's
# AWS-StartSSHSession ProxyCommand need it), pinned by SSM_PLUGIN_SHA256
# once the operator has confirmed it. Needs outbound HTTPS to
# s3.amazonaws.com. The offline twin replaces this script (it downloads).
set -euo pipefail
: "${SSM_PLUGIN_VERSION:?}"
case "$(uname -m)" in
  x86_64) deb=ubuntu_64bit rpm=linux_64bit ;;
  aarch64) deb=ubuntu_arm64 rpm=linux_arm64 ;;
  *) echo "unsupported machine $(uname -m)" >&2; exit 1 ;;
esac
base="https://s3.amazonaws.com/session-manager-downloads/plugin/${SSM_PLUGIN_VERSION}"
work=$(mktemp -d)
if command -v dpkg >/dev/null 2>&1; then
  pkg="$work/session-manager-plugin.deb"
  url="$base/$deb/session-manager-plugin.deb"
else
  pkg="$work/session-manager-plugin.rpm"
  url="$base/$rpm/session-manager-plugin.rpm"
fi
curl -fsSL --retry 5 --retry-all-errors -o "$pkg" "$url"
actual=$(sha256sum "$pkg" | cut -d' ' -f1)
if [ -n "${SSM_PLUGIN_SHA256:-}" ]; then
  if [ "$actual" != "$SSM_PLUGIN_SHA256" ]; then
    echo "$url is $actual, pinned $SSM_PLUGIN_SHA256" >&2
    exit 1
  fi
else
  echo "WARNING: SSM_PLUGIN_SHA256 is not pinned yet (fetched over HTTPS from AWS). Confirm and pin: $url $actual"
fi
if command -v dpkg >/dev/null 2>&1; then
  dpkg -i "$pkg"
else
  rpm -U --replacepkgs "$pkg"
fi
rm -rf "$work"
session-manager-plugin --version
