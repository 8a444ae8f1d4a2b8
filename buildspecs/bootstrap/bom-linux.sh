#!/bin/sh
# gild's bill of materials on a Debian builder: every installed package's
# name, version and architecture, one tab-separated line each
# (`dpkg<TAB>name<TAB>version<TAB>arch`) after a header naming the time,
# written to $GILD_BOM (default /var/log/gild/bom.tsv). Run as root by the
# template's `shell` provisioner, last; its `file` provisioner downloads the
# file and bake.yml turns it into gild.bom/1 JSON (buildspecs/bootstrap/bom.py).
#
# dpkg-query --show without a pattern lists every package in dpkg's status
# database except the purged ones, so packages removed with their config
# files left (status `config-files`) are listed too: only status word
# `installed` (${db:Status-Status}, dpkg >= 1.17.11) is kept. ${Package} is
# the bare name; the architecture is its own column (dpkg-query(1)).
set -eu

out="${GILD_BOM:-/var/log/gild/bom.tsv}"
mkdir -p "$(dirname "$out")"
tmp="$out.tmp"
{
  printf '# gild.bom raw: collected_at=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  dpkg-query --show \
    --showformat='${db:Status-Status}\t${Package}\t${Version}\t${Architecture}\n' |
    awk -F '\t' '$1 == "installed" && $2 != "" { printf "dpkg\t%s\t%s\t%s\n", $2, $3, $4 }' |
    LC_ALL=C sort -u
} > "$tmp"
count=$(grep -c '^dpkg' "$tmp" || true)
if [ "$count" -eq 0 ]; then
  echo "gild bom: dpkg-query listed no installed package" >&2
  exit 1
fi
chmod 0644 "$tmp"
mv "$tmp" "$out"
echo "gild bom: $count packages in $out"
