#!/usr/bin/env bash
# billing-worker's tests: what the billing worker needs from debian13-base.
# buildspecs/test.yml runs this as root (SSM Run Command, bash) on the
# family's test instance, after the family's own tests, before the image is
# promoted; a failing check stops the promotion and names team-billing.
#
# Prints one line per check, `ok - <name>` or `not ok - <name>: <why>`, and
# exits 1 if any failed. Check names are literal strings: the twin's SSM
# stand-in (tools/codebuild_ssm_proxy.py) reads them from this file.
# It leaves nothing behind: the unit it installs is removed at the end.
set -uo pipefail
export LC_ALL=C

failed=0
count=0
unit=gild-check-billing-worker

ok() { count=$((count + 1)); printf 'ok - %s\n' "$1"; }
not_ok() {
  count=$((count + 1)); failed=$((failed + 1))
  printf 'not ok - %s: %s\n' "$1" "$(printf '%s' "$2" | tr '\n' ' ' | sed 's/ *$//')"
}
# check NAME WHY-IF-FAILED COMMAND...: ok when COMMAND succeeds.
check() {
  local name=$1 why=$2; shift 2
  if "$@" >/dev/null 2>&1; then ok "$name"; else not_ok "$name" "$why"; fi
}
# until_true TRIES COMMAND...: COMMAND every second until it succeeds.
until_true() {
  local tries=$1; shift
  while ! "$@" >/dev/null 2>&1; do
    tries=$((tries - 1))
    [ "$tries" -gt 0 ] || return 1
    sleep 1
  done
}
remove_unit() {
  systemctl stop "$unit.service" >/dev/null 2>&1
  rm -f "/etc/systemd/system/$unit.service"
  systemctl daemon-reload >/dev/null 2>&1
  rm -rf "/var/lib/private/$unit" "/var/lib/$unit"
}
trap remove_unit EXIT

# --- the service manager ------------------------------------------------------------
# The worker is a systemd service: it needs systemd, and a boot that ended
# with every unit up (a degraded boot is how a broken image shows first).
check "booted with systemd" "no /run/systemd/system" test -d /run/systemd/system
state=$(timeout 300 systemctl is-system-running --wait 2>&1)
if [ "$state" = running ]; then ok "boot finished with no failed unit"
else not_ok "boot finished with no failed unit" "is-system-running: $state; failed: $(systemctl list-units --state=failed --plain --no-legend 2>&1 | awk '{ print $1 }' | tr '\n' ' ')"; fi

# --- Python, which the worker is written in -------------------------------------------
check "python3 is 3.11 or later" "python3 --version: $(python3 --version 2>&1)" \
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'
check "python3 has the modules the worker imports" \
  "$(python3 -c 'import ssl, sqlite3, decimal, hashlib, json, urllib.request' 2>&1 | tail -n 1)" \
  python3 -c 'import ssl, sqlite3, decimal, hashlib, json, urllib.request'
check "python3 speaks TLS 1.3 with OpenSSL 3" \
  "$(python3 -c 'import ssl; print(ssl.OPENSSL_VERSION, "TLSv1.3:", ssl.HAS_TLSv1_3)' 2>&1)" \
  python3 -c 'import ssl, sys; sys.exit(not (ssl.HAS_TLSv1_3 and ssl.OPENSSL_VERSION_INFO >= (3,)))'
check "UTF-8 locale C.UTF-8 available" "python3 cannot set LC_ALL=C.UTF-8" \
  python3 -c 'import locale; locale.setlocale(locale.LC_ALL, "C.UTF-8")'

# --- OpenSSL and the CA bundle ----------------------------------------------------------
# The worker signs invoices with the openssl command, and reaches AWS (SQS,
# S3: Amazon's roots) and the payment gateway (DigiCert Global Root G2)
# through the system's trust store.
version=$(openssl version 2>&1)
case "$version" in
  "OpenSSL 3."*) ok "openssl command is OpenSSL 3" ;;
  *) not_ok "openssl command is OpenSSL 3" "openssl version: $version" ;;
esac
bundle=/etc/ssl/certs/ca-certificates.crt
roots=$(grep -c 'BEGIN CERTIFICATE' "$bundle" 2>/dev/null)
if [ "${roots:-0}" -ge 100 ]; then ok "CA bundle holds the public roots"
else not_ok "CA bundle holds the public roots" "$bundle has ${roots:-no} certificates"; fi
check "system trust store verifies Amazon Root CA 1" \
  "$(openssl verify /etc/ssl/certs/Amazon_Root_CA_1.pem 2>&1 | tail -n 1)" \
  openssl verify /etc/ssl/certs/Amazon_Root_CA_1.pem
check "system trust store verifies DigiCert Global Root G2" \
  "$(openssl verify /etc/ssl/certs/DigiCert_Global_Root_G2.pem 2>&1 | tail -n 1)" \
  openssl verify /etc/ssl/certs/DigiCert_Global_Root_G2.pem

# --- time -----------------------------------------------------------------------------------
# Invoices carry timestamps and billing periods close at midnight UTC.
tz=$(date +%Z%z)
if [ "$tz" = UTC+0000 ]; then ok "system time zone is UTC"
else not_ok "system time zone is UTC" "date says $tz"; fi
check "clock synchronised within 100 ms (chronyc waitsync)" \
  "$(chronyc -n tracking 2>&1 | grep -E '^(Reference ID|System time|Leap status)' | tr '\n' ' ')" \
  chronyc waitsync 60 0.1 0 2

# --- disk --------------------------------------------------------------------------------
# The worker spools invoices under /var/lib before it uploads them.
free_mb=$(df --output=avail -BM /var/lib 2>/dev/null | tail -n 1 | tr -dc 0-9)
if [ "${free_mb:-0}" -ge 1024 ]; then ok "1 GiB free under /var/lib for the spool"
else not_ok "1 GiB free under /var/lib for the spool" "${free_mb:-?} MiB free"; fi

# --- a unit shaped like billing-worker.service ---------------------------------------------
# The same sandboxing as the real unit: a dynamic user, a read-only system,
# its own state directory, logs to the journal.
cat > "/etc/systemd/system/$unit.service" <<'UNIT'
[Unit]
Description=gild consumer check: a unit shaped like billing-worker.service

[Service]
Type=exec
DynamicUser=yes
StateDirectory=gild-check-billing-worker
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
NoNewPrivileges=yes
ExecStart=/usr/bin/python3 -u -c "import os, time; open(os.path.join(os.environ['STATE_DIRECTORY'], 'ready'), 'w').write(str(os.getuid())); print('billing-worker check up as uid', os.getuid()); time.sleep(600)"
UNIT
if out=$(systemctl daemon-reload 2>&1 && systemctl start "$unit.service" 2>&1) \
  && systemctl is-active --quiet "$unit.service"; then
  ok "a unit like billing-worker starts (DynamicUser, ProtectSystem=strict)"
else
  not_ok "a unit like billing-worker starts (DynamicUser, ProtectSystem=strict)" \
    "$out $(systemctl status --no-pager --lines=5 "$unit.service" 2>&1 | tail -n 5)"
fi
ready=/var/lib/$unit/ready
if until_true 15 test -s "$ready" && [ "$(cat "$ready")" != 0 ]; then
  ok "the unit runs unprivileged and writes its state directory"
else
  not_ok "the unit runs unprivileged and writes its state directory" "$ready: '$(cat "$ready" 2>&1)'"
fi
logged() { journalctl -u "$unit.service" -o cat --no-pager 2>/dev/null | grep -q 'billing-worker check up'; }
if until_true 15 logged; then ok "the unit logs reach the journal"
else not_ok "the unit logs reach the journal" "journalctl -u $unit: $(journalctl -u "$unit.service" -o cat --no-pager 2>&1 | tail -n 3)"; fi
remove_unit
if [ ! -e "/etc/systemd/system/$unit.service" ] && ! systemctl is-active --quiet "$unit.service"; then
  ok "test unit removed"
else
  not_ok "test unit removed" "$(systemctl is-active "$unit.service" 2>&1)"
fi

printf '# %d checks, %d failed\n' "$count" "$failed"
[ "$failed" -eq 0 ]
