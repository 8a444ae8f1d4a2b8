#!/usr/bin/env bash
# debian13-base image tests. Run as root:
#   - on a fresh instance of the image (buildspecs/test.yml sends this file
#     over SSM Run Command), where services are live;
#   - in a chroot of the applied root fs (tools/chroot-test.sh) with
#     GILD_CHROOT=1: no systemd is running there, so services are checked by
#     their boot enablement, config files and binaries, not live processes.
# GILD_OFFLINE_TEST=1 skips the checks of the two vendor agents (the roles
# skip their download/install when offline, gild_offline_test=true).
# GILD_ALLOWED_PORTS: listeners allowed on non-loopback addresses (live only).
#
# Prints one line per check, `ok - <name>` (`ok - <name> # SKIP <why>` when
# it cannot apply here) or `not ok - <name>: <why>`; exits 1 if any failed.
set -uo pipefail
export LC_ALL=C

chroot_mode=${GILD_CHROOT:-0}
offline=${GILD_OFFLINE_TEST:-0}
allowed_ports=${GILD_ALLOWED_PORTS:-tcp:22 udp:68 udp:546 udp:323}
failed=0
count=0

ok() { count=$((count + 1)); printf 'ok - %s\n' "$1"; }
not_ok() {
  count=$((count + 1)); failed=$((failed + 1))
  # One line per check: the reason loses its newlines.
  printf 'not ok - %s: %s\n' "$1" "$(printf '%s' "$2" | tr '\n' ' ' | sed 's/ *$//')"
}
skip() { count=$((count + 1)); printf 'ok - %s # SKIP %s\n' "$1" "$2"; }
live() { [ "$chroot_mode" != 1 ]; }
# check NAME WHY-IF-FAILED COMMAND...: ok when COMMAND succeeds.
check() {
  local name=$1 why=$2; shift 2
  if "$@" >/dev/null 2>&1; then ok "$name"; else not_ok "$name" "$why"; fi
}
# expect NAME ACTUAL EXPECTED
expect() {
  if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got '${2}', want '${3}'"; fi
}
installed() { [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" = "ii " ]; }
unit_enabled() { [ "$(systemctl is-enabled "$1" 2>/dev/null)" = enabled ]; }

if [ "$(id -u)" -ne 0 ]; then
  echo "not ok - run as root: the checks read /etc/shadow, sshd -T and audit rules"
  exit 1
fi

# --- OS and updates --------------------------------------------------------------
# shellcheck source=/dev/null
. /etc/os-release
expect "os is Debian 13" "${ID:-?} ${VERSION_ID:-?}" "debian 13"

# shellcheck disable=SC2016 # $(RELEASE) is apt's field, not the shell's
suites=$(apt-get indextargets --no-release-info --format '$(RELEASE)' 'Created-By: Packages' 2>/dev/null | sort -u | tr '\n' ' ')
for suite in trixie trixie-updates trixie-security; do
  case " $suites" in
    *" $suite "*) ok "apt source $suite configured" ;;
    *) not_ok "apt source $suite configured" "apt knows only: ${suites:-nothing}" ;;
  esac
done

if pending=$(apt-get -s -o Debug::NoLocking=1 dist-upgrade 2>&1); then
  n=$(grep -c '^Inst ' <<<"$pending")
  if [ "$n" -eq 0 ]; then ok "no pending upgrades (image's apt lists)"
  else not_ok "no pending upgrades (image's apt lists)" "$n: $(grep '^Inst ' <<<"$pending" | cut -d' ' -f2 | head -n 10 | tr '\n' ' ')"; fi
else
  not_ok "no pending upgrades (image's apt lists)" "apt-get -s dist-upgrade failed: $(tail -n 2 <<<"$pending")"
fi

for pkg in openssh-server chrony auditd procps; do
  check "package $pkg installed" "dpkg says: $(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>&1)" installed "$pkg"
done

check "no policy-rc.d left in the image" "/usr/sbin/policy-rc.d exists (it blocks service starts)" test ! -e /usr/sbin/policy-rc.d
check "no gild download cache left" "/var/cache/gild exists" test ! -e /var/cache/gild

# --- SSH ---------------------------------------------------------------------------
check "ssh enabled at boot" "systemctl is-enabled ssh.service: $(systemctl is-enabled ssh.service 2>&1)" unit_enabled ssh.service
if live; then
  check "ssh running" "systemctl is-active ssh.service: $(systemctl is-active ssh.service 2>&1)" systemctl is-active --quiet ssh.service
fi
check "sshd hardening drop-in present" "no /etc/ssh/sshd_config.d/00-gild-hardening.conf" test -s /etc/ssh/sshd_config.d/00-gild-hardening.conf

host_keys=$(find /etc/ssh -maxdepth 1 -name 'ssh_host_*_key' 2>/dev/null | sort)
sshd_args=()
keydir=""
if live; then
  if [ -n "$host_keys" ]; then ok "ssh host keys made for this instance"
  else not_ok "ssh host keys made for this instance" "none in /etc/ssh"; fi
else
  if [ -z "$host_keys" ]; then ok "no ssh host keys baked into the image"
  else not_ok "no ssh host keys baked into the image" "$host_keys"; fi
  # sshd -T wants a host key: lend it a throwaway one.
  keydir=$(mktemp -d)
  ssh-keygen -q -t ed25519 -N '' -f "$keydir/key" >/dev/null 2>&1
  sshd_args=(-h "$keydir/key")
  mkdir -p /run/sshd
fi
if sshd_t=$(/usr/sbin/sshd -T "${sshd_args[@]}" 2>&1); then
  ok "sshd configuration valid (sshd -T)"
else
  not_ok "sshd configuration valid (sshd -T)" "$(tail -n 3 <<<"$sshd_t")"
  sshd_t=""
fi
[ -n "$keydir" ] && rm -rf "$keydir"
sshd_value() { awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); print; exit }' <<<"$sshd_t"; }
for kv in "permitrootlogin no" "passwordauthentication no" "kbdinteractiveauthentication no" \
          "permitemptypasswords no" "pubkeyauthentication yes" "hostbasedauthentication no" \
          "x11forwarding no" "permituserenvironment no" "maxauthtries 4" "logingracetime 30"; do
  key=${kv%% *}
  expect "sshd effective $key" "$(sshd_value "$key")" "${kv#* }"
done
weak() { # $1 keyword, $2 regex of weak algorithms
  local list
  list=$(sshd_value "$1")
  if [ -z "$list" ]; then not_ok "sshd $1 has no weak algorithm" "no value"
  elif bad=$(tr ',' '\n' <<<"$list" | grep -E "$2"); then not_ok "sshd $1 has no weak algorithm" "$(tr '\n' ' ' <<<"$bad")"
  else ok "sshd $1 has no weak algorithm"; fi
}
weak ciphers '(-cbc|3des|arcfour|blowfish|cast128|rijndael)'
weak macs '^(hmac-md5|hmac-sha1|umac-64|hmac-sha2-256$|hmac-sha2-512$|umac-128@)'
weak kexalgorithms '(sha1|group1-|group14-sha1|group-exchange-sha1)'

# --- accounts and secrets ----------------------------------------------------------
root_hash=$(awk -F: '$1 == "root" { print $2 }' /etc/shadow)
case "$root_hash" in
  '!'* | '*'*) ok "root has no usable password" ;;
  *) not_ok "root has no usable password" "root's shadow entry is not locked" ;;
esac
if ! empty=$(awk -F: '$2 == "" { print $1 }' /etc/shadow); then not_ok "no account with an empty password" "cannot read /etc/shadow"
elif [ -z "$empty" ]; then ok "no account with an empty password"
else not_ok "no account with an empty password" "$empty"; fi
if ! uid0=$(awk -F: '$3 == 0 && $1 != "root" { print $1 }' /etc/passwd); then not_ok "root is the only uid 0" "cannot read /etc/passwd"
elif [ -z "$uid0" ]; then ok "root is the only uid 0"
else not_ok "root is the only uid 0" "$uid0"; fi
secrets=$(find /root /home -maxdepth 3 \( -path '*/.aws/credentials' -o -path '*/.ssh/id_*' -o -name '.netrc' -o -name '.git-credentials' \) 2>/dev/null | tr '\n' ' ')
if [ -z "$secrets" ]; then ok "no credentials or private keys in home folders"; else not_ok "no credentials or private keys in home folders" "$secrets"; fi
if ! live; then
  keys=$(find /root /home -maxdepth 3 -path '*/.ssh/authorized_keys' -size +0 2>/dev/null | tr '\n' ' ')
  if [ -z "$keys" ]; then ok "no ssh authorized_keys baked into the image"; else not_ok "no ssh authorized_keys baked into the image" "$keys"; fi
fi

# --- kernel hardening (sysctl) ---------------------------------------------------------
check "sysctl hardening drop-in present" "no /etc/sysctl.d/60-gild-hardening.conf" test -s /etc/sysctl.d/60-gild-hardening.conf
if ! live; then
  # What systemd-sysctl would apply at boot: every file in its order, last one wins.
  sysctl_boot=$(systemd-analyze cat-config sysctl.d 2>/dev/null | sed -e 's/#.*//' -e 's/;.*//' | tr -d ' \t' | grep '=')
fi
sysctl_expected=(
  net.ipv4.conf.all.accept_redirects=0 net.ipv4.conf.default.accept_redirects=0
  net.ipv6.conf.all.accept_redirects=0 net.ipv4.conf.all.send_redirects=0
  net.ipv4.conf.all.accept_source_route=0 net.ipv6.conf.all.accept_source_route=0
  net.ipv4.conf.all.rp_filter=1 net.ipv4.conf.all.log_martians=1
  net.ipv4.icmp_echo_ignore_broadcasts=1 net.ipv4.tcp_syncookies=1
  kernel.randomize_va_space=2 kernel.kptr_restrict=2 kernel.dmesg_restrict=1
  kernel.yama.ptrace_scope=1 kernel.unprivileged_bpf_disabled=1
  fs.protected_hardlinks=1 fs.protected_symlinks=1 fs.suid_dumpable=0
)
for kv in "${sysctl_expected[@]}"; do
  key=${kv%%=*} want=${kv#*=}
  if live; then
    expect "sysctl $key = $want" "$(sysctl -n "$key" 2>&1)" "$want"
  else
    got=$(grep -E "^-?${key//./\\.}=" <<<"$sysctl_boot" | tail -n 1 | cut -d= -f2)
    expect "sysctl $key = $want (set at boot)" "${got:-unset}" "$want"
  fi
done

# --- auditd -------------------------------------------------------------------------
check "auditd enabled at boot" "systemctl is-enabled auditd.service: $(systemctl is-enabled auditd.service 2>&1)" unit_enabled auditd.service
rules=$(cat /etc/audit/rules.d/*.rules 2>/dev/null)
if live; then
  check "auditd running" "systemctl is-active auditd.service: $(systemctl is-active auditd.service 2>&1)" systemctl is-active --quiet auditd.service
  rules=$(auditctl -l 2>&1)
fi
where=$(live && echo "loaded (auditctl -l)" || echo "in /etc/audit/rules.d")
for rule in "-w /etc/shadow -p wa -k identity" "-w /etc/passwd -p wa -k identity" \
            "-w /etc/sudoers -p wa -k privilege" "-w /etc/ssh/sshd_config -p wa -k sshd"; do
  if grep -qxF -- "$rule" <<<"$rules"; then ok "audit rule $where: $rule"
  else not_ok "audit rule $where: $rule" "missing"; fi
done
for key in time-change modules; do
  if grep -qE -- "-S .*(-k|key=)$key\$|-k $key\$" <<<"$rules"; then ok "audit syscall rules $where: $key"
  else not_ok "audit syscall rules $where: $key" "no rule with key $key"; fi
done

# --- time ---------------------------------------------------------------------------
check "chrony enabled at boot" "systemctl is-enabled chrony.service: $(systemctl is-enabled chrony.service 2>&1)" unit_enabled chrony.service
chrony_conf=$(chronyd -p 2>&1)
if grep -q '^sourcedir /etc/chrony/sources.d$' <<<"$chrony_conf"; then ok "chrony reads /etc/chrony/sources.d"
else not_ok "chrony reads /etc/chrony/sources.d" "chronyd -p: $(head -n 3 <<<"$chrony_conf")"; fi
if grep -qE '^server 169\.254\.169\.123( |$)' /etc/chrony/sources.d/*.sources 2>/dev/null; then ok "chrony uses the Amazon Time Sync Service (169.254.169.123)"
else not_ok "chrony uses the Amazon Time Sync Service (169.254.169.123)" "no server 169.254.169.123 in /etc/chrony/sources.d"; fi
others=$(grep -E '^(pool|server|peer) ' <<<"$chrony_conf" | tr '\n' ' ')
if [ -z "$others" ]; then ok "chrony has no other time sources"; else not_ok "chrony has no other time sources" "$others"; fi
if unit_enabled systemd-timesyncd.service; then not_ok "systemd-timesyncd not enabled (chrony is the clock)" "it is enabled"
else ok "systemd-timesyncd not enabled (chrony is the clock)"; fi
if live; then
  check "chrony running" "systemctl is-active chrony.service: $(systemctl is-active chrony.service 2>&1)" systemctl is-active --quiet chrony.service
  if chronyc -n sources 2>/dev/null | grep -q '169\.254\.169\.123'; then ok "chronyc lists 169.254.169.123"
  else not_ok "chronyc lists 169.254.169.123" "$(chronyc -n sources 2>&1 | tail -n 3)"; fi
fi

# --- vendor agents -------------------------------------------------------------------
agent() { # $1 package, $2 unit, $3 must it run on a live instance?
  local pkg=$1 unit=$2 running=$3
  if [ "$offline" = 1 ]; then
    skip "$pkg installed" "GILD_OFFLINE_TEST=1: the role does not download vendor packages offline"
    skip "$unit enabled at boot" "GILD_OFFLINE_TEST=1"
    return
  fi
  check "$pkg installed" "dpkg says: $(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>&1)" installed "$pkg"
  check "$unit enabled at boot" "systemctl is-enabled: $(systemctl is-enabled "$unit" 2>&1)" unit_enabled "$unit"
  if live && [ "$running" = yes ]; then
    check "$unit running" "systemctl is-active: $(systemctl is-active "$unit" 2>&1)" systemctl is-active --quiet "$unit"
  fi
}
agent amazon-ssm-agent amazon-ssm-agent.service yes
agent amazon-cloudwatch-agent amazon-cloudwatch-agent.service no

# --- a fresh instance: cloud-init, machine-id ------------------------------------------
if command -v cloud-init >/dev/null 2>&1; then ok "cloud-init installed"; else not_ok "cloud-init installed" "no cloud-init"; fi
if live; then
  status=$(timeout 600 cloud-init status --wait 2>&1 | tail -n 1)
  expect "cloud-init finished first boot" "$status" "status: done"
  instances=$(find /var/lib/cloud/instances -mindepth 1 -maxdepth 1 -printf '%f ' 2>/dev/null)
  id=$(cloud-init query instance-id 2>/dev/null)
  expect "cloud-init state is only this instance's" "$instances" "$id "
  machine_id=$(cat /etc/machine-id 2>/dev/null)
  if [[ "$machine_id" =~ ^[0-9a-f]{32}$ ]]; then ok "machine-id made at first boot"; else not_ok "machine-id made at first boot" "'$machine_id'"; fi
else
  state=$(find /var/lib/cloud -mindepth 1 -maxdepth 2 \( -path '/var/lib/cloud/instances/*' -o -name instance -o -path '/var/lib/cloud/data/*' -o -path '/var/lib/cloud/seed/*' \) 2>/dev/null | tr '\n' ' ')
  if [ -z "$state" ]; then ok "cloud-init has no instance state (clean)"; else not_ok "cloud-init has no instance state (clean)" "$state"; fi
  logs=$(find /var/log -maxdepth 1 -name 'cloud-init*.log' 2>/dev/null | tr '\n' ' ')
  if [ -z "$logs" ]; then ok "cloud-init logs removed"; else not_ok "cloud-init logs removed" "$logs"; fi
  if [ -f /etc/machine-id ] && [ ! -s /etc/machine-id ]; then ok "machine-id empty (made at first boot)"
  else not_ok "machine-id empty (made at first boot)" "'$(cat /etc/machine-id 2>&1)'"; fi
fi

# --- the package list Packer downloads ------------------------------------------------
list=/var/log/gild/packages.txt
if [ -s "$list" ]; then
  ok "package list $list present"
  # Compare as name/version pairs (architecture qualifiers and separators aside).
  normalize() { sed -E 's/:[a-z0-9]+([ \t])/\1/; s/[ \t]+/ /g; s/ $//' | sort -u; }
  # diff exits 0 only when it compared and found no difference.
  if diff_out=$(diff <(normalize < "$list") <(dpkg-query -W -f='${Package} ${Version}\n' | normalize) 2>&1); then
    ok "package list matches the installed packages"
  else
    not_ok "package list matches the installed packages" "$(head -n 6 <<<"$diff_out")"
  fi
else
  not_ok "package list $list present" "missing or empty"
fi

# --- listening ports (live only) --------------------------------------------------------
if live; then
  unexpected=""
  while read -r proto local_addr; do
    port=${local_addr##*:} addr=${local_addr%:*}
    case "$addr" in 127.* | '[::1]' | '::1' | '[::ffff:127.'*) continue ;; esac
    case " $allowed_ports " in *" $proto:$port "*) continue ;; esac
    unexpected="$unexpected $proto:$local_addr"
  done < <(ss -H -ltun 2>/dev/null | awk '{ print $1, $5 }' | sed 's/%[^:]*:/:/')
  if [ -z "$unexpected" ]; then ok "only expected ports listen ($allowed_ports)"
  else not_ok "only expected ports listen ($allowed_ports)" "also:$unexpected"; fi
else
  skip "only expected ports listen" "GILD_CHROOT=1: nothing runs in a chroot"
fi

printf '# %d checks, %d failed\n' "$count" "$failed"
[ "$failed" -eq 0 ]
