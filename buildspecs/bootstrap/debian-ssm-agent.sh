#!/bin/sh
# User data of the debian13-base builder instance (images/debian13-base,
# `user_data_file`). Debian's official AMIs ship without the SSM agent, and
# Packer reaches the builder only through Session Manager: no inbound port
# is open. This installs the agent from AWS's bucket in the instance's own
# region at first boot so the session can open; the ssm-agent role then
# manages it like any other package. Instances of the finished image do not
# run this (cloud-init is reset before the image is taken).
set -eu

region=$(cloud-init query v1.region)
case "$region" in
  *[!a-z0-9-]* | "") echo "gild bootstrap: unexpected region '$region'" >&2; exit 1 ;;
esac
url="https://s3.${region}.amazonaws.com/amazon-ssm-${region}/latest/debian_amd64/amazon-ssm-agent.deb"
deb=$(mktemp --suffix=.deb)

attempt=1
until python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' "$url" "$deb"; do
  if [ "$attempt" -ge 10 ]; then
    echo "gild bootstrap: could not download $url" >&2
    exit 1
  fi
  attempt=$((attempt + 1))
  sleep 15
done

dpkg -i "$deb"
rm -f "$deb"
systemctl enable --now amazon-ssm-agent.service
echo "gild bootstrap: SSM agent running"
