#!/usr/bin/env bash
# gild chroot test: applies ansible/playbooks/debian13-base.yml for real to a
# Debian 13 (trixie) root file system in a chroot, then runs the family's
# image tests (images/debian13-base/tests/run.sh) inside it.
#
#   tools/chroot-test.sh            (as root; `make chroot-test` runs it)
#
# What it proves and what it cannot: docs/images-testing.md.
#
# Environment:
#   GILD_CHROOT_CACHE     where the base root fs is cached
#                         (default: $HOME/.cache/gild/chroot, outside the repo)
#   GILD_CHROOT_MIRROR    Debian mirror (default http://deb.debian.org/debian)
#   GILD_CHROOT_MAX_AGE   rebuild a cached base older than this many days (30)
#   GILD_CHROOT_KEEP=1    keep the applied tree (its path is printed); it is
#                         then on disk, otherwise in a tmpfs (size GILD_CHROOT_TMPFS_SIZE, 4g)
#   ANSIBLE_PLAYBOOK      ansible-playbook to use (default: .venv/bin/ansible-playbook)
#   CI=true (or CI=1)     a reason to skip fails instead (exit 1): CI runs
#                         make test as root so that this test runs there
#
# Skips (exit 0, saying why) only when it cannot run debootstrap: not root,
# or no debootstrap binary and none can be installed. Under CI those fail,
# naming the reason: a skip there would pass `make test` with the playbook
# never applied. Any other problem always fails.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
suite=trixie
mirror=${GILD_CHROOT_MIRROR:-http://deb.debian.org/debian}
cache=${GILD_CHROOT_CACHE:-${HOME:-/root}/.cache/gild/chroot}
max_age=${GILD_CHROOT_MAX_AGE:-30}
playbook_bin=${ANSIBLE_PLAYBOOK:-$repo/.venv/bin/ansible-playbook}
family=debian13-base

# The base: Debian's minbase plus what Debian's own cloud image (the bake's
# source AMI) already carries and the roles expect to find: python3 for
# Ansible, systemd, OpenSSH, cloud-init, sudo, iproute2. debootstrap resolves
# no virtual packages, so it only lays the minimal system; apt adds the rest.
debootstrap_include=(python3 systemd-sysv ca-certificates)
base_packages=(openssh-server cloud-init sudo iproute2 python3-apt)
# The cache key: everything that shapes the base (and this recipe's version).
recipe="v1 $suite minbase ${debootstrap_include[*]} | ${base_packages[*]} | $mirror"
key=$(printf '%s' "$recipe" | sha256sum | cut -c1-12)
base_tar="$cache/$suite-$key.tar"

say() { printf 'chroot-test: %s\n' "$*"; }
die() { printf 'chroot-test: FAILED: %s\n' "$*" >&2; exit 1; }
skip() {
  case "${CI:-}" in
    true | 1)
      printf 'chroot-test: FAILED: would have skipped under CI=%s: %s\n' "$CI" "$*" >&2
      printf 'chroot-test: CI must run this test (as root, with debootstrap installed or installable)\n' >&2
      exit 1
      ;;
  esac
  printf 'chroot-test: SKIPPED: %s\n' "$*"
  exit 0
}

# --- timing -----------------------------------------------------------------
timings=()
phase_start=0
phase_name=""
begin() { phase_name=$1; phase_start=$SECONDS; say "== $1"; }
end() {
  local took=$((SECONDS - phase_start))
  timings+=("$(printf '%5ds  %s' "$took" "$phase_name")")
  say "== $phase_name: ${took}s"
}
report_timings() {
  local line
  say "phase timings:"
  for line in "${timings[@]}"; do printf '  %s\n' "$line"; done
  printf '  %5ds  %s\n' "$SECONDS" "total"
}

# --- mounts -------------------------------------------------------------------
# Every mount made under a tree is recorded, and undone in reverse order by
# the EXIT trap, also on failure. A tree is deleted only when nothing is
# mounted under it any more (a bind mount of /dev must never be rm -rf'd).
mounted=()
mount_into() { # $1 root, then mount(8) arguments: last one is the target inside $1
  local root=$1; shift
  local target="$root${!#}"
  mkdir -p "$target"
  mount "${@:1:$#-1}" "$target"
  mounted+=("$target")
}
unmount_all() {
  local i target ok=0
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    target=${mounted[i]}
    if mountpoint -q "$target"; then
      umount "$target" 2>/dev/null || umount -l "$target" || ok=1
    fi
  done
  mounted=()
  return $ok
}
still_mounted_under() { # prints mount points at or below $1
  awk -v root="$1" '$2 == root || index($2, root "/") == 1 { print $2 }' /proc/self/mounts
}
remove_tree() {
  local dir=$1
  [ -n "$dir" ] && [ -d "$dir" ] || return 0
  if [ -n "$(still_mounted_under "$dir")" ]; then
    printf 'chroot-test: NOT removing %s: still mounted:\n%s\n' "$dir" "$(still_mounted_under "$dir")" >&2
    return 1
  fi
  rm -rf --one-file-system "$dir"
}
mount_system() { # $1 root: what apt, Ansible and the tests need of the kernel
  local root=$1 node
  mount_into "$root" -t proc proc /proc
  mount_into "$root" -t sysfs -o ro sysfs /sys
  # A /dev of its own (never a bind of this machine's /dev: nothing done in
  # the tree can reach the real device nodes), with what programs expect.
  mount_into "$root" -t tmpfs -o mode=0755,nosuid,size=16m gild-dev /dev
  for node in "null 1 3" "zero 1 5" "full 1 7" "random 1 8" "urandom 1 9" "tty 5 0"; do
    # shellcheck disable=SC2086 # name, major, minor
    set -- $node
    mknod -m 0666 "$root/dev/$1" c "$2" "$3"
  done
  ln -s /proc/self/fd "$root/dev/fd"
  ln -s /proc/self/fd/0 "$root/dev/stdin"
  ln -s /proc/self/fd/1 "$root/dev/stdout"
  ln -s /proc/self/fd/2 "$root/dev/stderr"
  ln -s pts/ptmx "$root/dev/ptmx"
  mkdir -m 1777 "$root/dev/shm"
  mount_into "$root" -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /dev/pts
  cp --remove-destination /etc/resolv.conf "$root/etc/resolv.conf"
}
# Services must not start inside the chroot (they would run on this machine).
deny_service_starts() {
  printf '#!/bin/sh\n# gild chroot-test: no service starts in a chroot\nexit 101\n' > "$1/usr/sbin/policy-rc.d"
  chmod 0755 "$1/usr/sbin/policy-rc.d"
}
allow_service_starts() { rm -f "$1/usr/sbin/policy-rc.d"; }

work=""
building=""
cleanup() {
  local rc=$?
  set +e
  local cleanup_start=$SECONDS
  unmount_all || rc=1
  remove_tree "$building" || rc=1
  if [ -n "$work" ]; then
    if [ "${GILD_CHROOT_KEEP:-0}" = 1 ] && [ -d "$work/root" ]; then
      say "kept the applied tree: $work/root"
    else
      remove_tree "$work" || rc=1
    fi
  fi
  if [ ${#timings[@]} -gt 0 ]; then
    timings+=("$(printf '%5ds  %s' "$((SECONDS - cleanup_start))" "cleanup (unmount, remove the tree)")")
    report_timings
  fi
  exit $rc
}
# Long steps run in the background so that a signal is handled at once:
# the step is stopped, then the EXIT trap unmounts and cleans up.
child=""
run() { # run COMMAND...: in the background, waited for; its exit status
  "$@" &
  child=$!
  local rc=0
  wait "$child" || rc=$?
  child=""
  return $rc
}
on_signal() {
  if [ -n "$child" ]; then
    kill -TERM "$child" 2>/dev/null
    wait "$child" 2>/dev/null
  fi
  exit 130
}
trap cleanup EXIT
trap on_signal INT TERM

# --- 1. can we run at all? ----------------------------------------------------
begin "preflight"
[ "$(id -u)" -eq 0 ] || skip "needs root (debootstrap, chroot and mounts); run it as root"
# Everything runs in a private mount namespace: the mounts made here are
# invisible to the rest of the machine and vanish with this script, even if
# it is killed before its trap runs.
if [ "${GILD_CHROOT_NS:-}" != self ] && command -v unshare >/dev/null 2>&1; then
  if unshare --mount --propagation private true 2>/dev/null; then
    trap - EXIT
    exec unshare --mount --propagation private \
      env GILD_CHROOT_NS=self "$BASH" "${BASH_SOURCE[0]}" "$@"
  fi
  say "no private mount namespace here (unshare failed): mounts are undone by the trap"
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    say "installing debootstrap"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null 2>&1; then
      apt-get update -qq >/dev/null 2>&1 || true
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null 2>&1 || true
    fi
  fi
  command -v debootstrap >/dev/null 2>&1 || skip "no debootstrap, and it could not be installed with apt-get"
fi
[ -e "/usr/share/debootstrap/scripts/$suite" ] || die "this debootstrap ($(debootstrap --version)) does not know $suite"
[ -x "$playbook_bin" ] || die "no $playbook_bin: run 'make tools' first"
for tool in chroot mount umount mountpoint tar sha256sum flock; do
  command -v "$tool" >/dev/null 2>&1 || die "missing $tool"
done
say "$(debootstrap --version 2>&1 | sed -n 1p), $("$playbook_bin" --version 2>&1 | sed -n 1p), cache $base_tar"
end

# --- 2. the base root file system, cached -------------------------------------
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9 # one builder at a time; a second run waits, then finds the tar
if [ -f "$base_tar" ] && [ -n "$(find "$base_tar" -mtime "+$max_age" 2>/dev/null)" ]; then
  say "cached base is older than $max_age days: rebuilding"
  rm -f "$base_tar"
fi
if [ -f "$base_tar" ]; then
  say "cached base: $base_tar ($(du -h "$base_tar" | cut -f1))"
else
  begin "base: debootstrap $suite (cold cache)"
  building=$(mktemp -d "$cache/build.XXXXXX")
  include=$(IFS=,; printf '%s' "${debootstrap_include[*]}")
  if ! run debootstrap --variant=minbase --include="$include" "$suite" "$building/root" "$mirror" \
      > "$building/debootstrap.out" 2>&1; then
    tail -n 30 "$building/debootstrap.out" >&2
    [ -f "$building/root/debootstrap/debootstrap.log" ] && tail -n 30 "$building/root/debootstrap/debootstrap.log" >&2
    die "debootstrap $suite from $mirror failed"
  fi
  end

  begin "base: apt-get install ${base_packages[*]}"
  mount_system "$building/root"
  deny_service_starts "$building/root"
  run chroot "$building/root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
    sh -ec "apt-get update -qq; apt-get install -y -qq --no-install-recommends ${base_packages[*]} >/dev/null; apt-get clean"
  allow_service_starts "$building/root"
  unmount_all
  # A fresh rootfs like an AMI's: no machine id yet, no apt lists.
  : > "$building/root/etc/machine-id"
  rm -rf "$building/root/var/lib/apt/lists/"* "$building/root/var/cache/apt/"*.bin
  run tar --numeric-owner --xattrs -C "$building/root" -cf "$building/base.tar" .
  mv "$building/base.tar" "$base_tar"
  remove_tree "$building"
  building=""
  # Bases of older recipes are not needed any more.
  find "$cache" -maxdepth 1 -name "$suite-*.tar" ! -name "$(basename "$base_tar")" -delete
  say "cached base: $base_tar ($(du -h "$base_tar" | cut -f1))"
  end
fi
flock -u 9

# --- 3. a fresh copy --------------------------------------------------------
begin "restore a fresh copy of the base"
work=$(mktemp -d "${TMPDIR:-/var/tmp}/gild-chroot.XXXXXX")
root="$work/root"
mkdir "$root"
if [ "${GILD_CHROOT_KEEP:-0}" != 1 ]; then
  # In memory: faster to fill, and gone with one umount.
  mount_into "$work" -t tmpfs -o "mode=0755,size=${GILD_CHROOT_TMPFS_SIZE:-4g}" gild-root /root
fi
run tar --numeric-owner --xattrs -C "$root" -xpf "$base_tar"
mount_system "$root"
deny_service_starts "$root"
end

# --- 4. the playbook, for real ----------------------------------------------
begin "ansible-playbook $family.yml"
cat > "$work/inventory.ini" <<EOF
[chroot]
$root ansible_connection=community.general.chroot ansible_python_interpreter=/usr/bin/python3
EOF
apply_playbook() {
  cd "$repo"
  export ANSIBLE_CONFIG="$repo/ansible/ansible.cfg" ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0
  PATH="$(dirname "$playbook_bin"):$PATH"
  export PATH
  exec "$playbook_bin" -i "$work/inventory.ini" "ansible/playbooks/$family.yml" \
    -e gild_offline_test=true -e gild_aws_region=us-east-1
}
run apply_playbook || die "the playbook failed (see above)"
allow_service_starts "$root"
end

# --- 5. the family's tests, inside the chroot ------------------------------------
begin "images/$family/tests/run.sh in the chroot"
install -d -m 0700 "$root/root/gild-test"
install -m 0755 "$repo/images/$family/tests/run.sh" "$root/root/gild-test/run.sh"
set +e
chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
  GILD_CHROOT=1 GILD_OFFLINE_TEST=1 bash /root/gild-test/run.sh > "$work/tests.out" 2>&1
tests_rc=$?
set -e
rm -rf "$root/root/gild-test"
cat "$work/tests.out"
checks=$(grep -cE '^(not )?ok\b' "$work/tests.out" || true)
failed=$(grep -cE '^not ok\b' "$work/tests.out" || true)
skipped=$(grep -cE '^ok\b.*# SKIP' "$work/tests.out" || true)
end
say "$checks checks: $((checks - failed)) passed ($skipped of them skipped), $failed failed; run.sh exit code $tests_rc"
[ "$checks" -gt 0 ] || die "run.sh reported no checks"
if [ "$failed" -ne 0 ] || [ "$tests_rc" -ne 0 ]; then
  die "$failed image check(s) failed"
fi
say "PASSED: $family applied in a $suite chroot and its image tests pass"
