#!/usr/bin/env bash
# Install a ggon .deb into a throw-away root and check the installed system.
#
#   unshare --mount --net --pid --fork --propagation private \
#       bash throwaway-install.sh BASE_DIR PACKAGE.deb
#
# The throw-away root is an overlay of this machine's root file system with
# its writable layer on a tmpfs at BASE_DIR, so dpkg, adduser and ggond write
# there only; the private mount, network and pid namespaces (unshare) drop it
# all, mounts and processes, when this script ends, however it ends. In the
# private network namespace only loopback exists, so the default config's
# 127.0.0.1:53 and :5380 collide with nothing.
#
# Prints `STEP name` before each check and `RESULT key value` lines; exits 0
# when every check passed.
set -euo pipefail

if [ "${1:-}" != "--inside" ]; then
    base=$1 deb=$2
    mount -t tmpfs -o size=512m tmpfs "$base"
    mkdir -p "$base/upper" "$base/work" "$base/root"
    mount -t overlay overlay -o "lowerdir=/,upperdir=$base/upper,workdir=$base/work" "$base/root"
    r=$base/root
    mount -t proc proc "$r/proc"
    mount --rbind /dev "$r/dev"
    mount -t sysfs sysfs "$r/sys"
    mount -t tmpfs tmpfs "$r/tmp"
    mount -t tmpfs tmpfs "$r/run"
    cp "$deb" "$r/tmp/ggon.deb"
    cp "$0" "$r/tmp/inside.sh"
    exec chroot "$r" /bin/bash /tmp/inside.sh --inside
fi

step() { echo "STEP $*"; }
fail() { echo "FAILED: $*"; exit 1; }
export DEBIAN_FRONTEND=noninteractive PATH=/usr/sbin:/usr/bin:/sbin:/bin
ip link set lo up

step install
dpkg -i /tmp/ggon.deb
[ "$(dpkg-query -W -f='${Status}' ggon)" = "install ok installed" ] || fail "not installed"

step user
getent passwd ggon || fail "no user ggon"
uid=$(id -u ggon)
[ "$(stat -c '%U:%G %a' /var/lib/ggon)" = "ggon:ggon 750" ] ||
    fail "/var/lib/ggon is $(stat -c '%U:%G %a' /var/lib/ggon)"

step files
for f in /usr/sbin/ggond /usr/bin/ggon-ctl /usr/bin/ggon-perf /etc/ggon/ggon.toml \
    /etc/ggon/zones/example.invalid.zone /lib/systemd/system/ggond.service \
    /usr/share/man/man8/ggond.8.gz /usr/share/man/man1/ggon-ctl.1.gz \
    /usr/share/man/man1/ggon-perf.1.gz /usr/share/bash-completion/completions/ggon-ctl \
    /usr/share/zsh/vendor-completions/_ggon-ctl /usr/share/fish/vendor_completions.d/ggon-ctl.fish; do
    [ -e "$f" ] || fail "missing $f"
done
dpkg-query -W -f='${Conffiles}\n' ggon | grep -q /etc/ggon/ggon.toml || fail "ggon.toml is no conffile"

step unit
systemd-analyze verify /lib/systemd/system/ggond.service
exposure=$(systemd-analyze security --offline=true --no-pager /lib/systemd/system/ggond.service |
    sed -n 's/.*Overall exposure level for ggond.service: \([0-9.]*\) \([A-Z]*\).*/\1 \2/p')
echo "RESULT exposure $exposure"

step man
MANWIDTH=80 man ggond 2>&1 | grep -q "EXIT STATUS" || fail "man ggond"
man -w ggon-ctl-remap >/dev/null || fail "man ggon-ctl-remap"

step completions
bash -c 'source /usr/share/bash-completion/completions/ggon-ctl && complete -p ggon-ctl' |
    grep -q ggon-ctl || fail "bash completion for ggon-ctl"

step check-config
ggond --check-config --config /etc/ggon/ggon.toml

step start
cd /
ggond --config /etc/ggon/ggon.toml 2>/tmp/ggond.log &
pid=$!
served=""
for _ in $(seq 1 100); do
    served=$(dig @127.0.0.1 -p 53 example.invalid SOA +short +time=1 +tries=1 2>/dev/null || true)
    [ -n "$served" ] && break
    kill -0 "$pid" 2>/dev/null || { cat /tmp/ggond.log; fail "ggond exited"; }
    sleep 0.1
done
echo "RESULT soa $served"
case "$served" in ns1.example.invalid.*) ;; *) cat /tmp/ggond.log; fail "no SOA answer" ;; esac
status=$(dig @127.0.0.1 -p 53 www.example.com A +time=1 +tries=1 | sed -n 's/.*status: \([A-Z]*\).*/\1/p')
[ "$status" = REFUSED ] || fail "a name outside the zones got $status, not REFUSED"

step privileges
grep -E "^(Uid|Gid):" "/proc/$pid/status"
read -r _ ruid euid suid fsuid < <(grep '^Uid:' "/proc/$pid/status")
[ "$ruid $euid $suid $fsuid" = "$uid $uid $uid $uid" ] || fail "ggond runs as uid $ruid/$euid, not $uid"

step ggon-ctl
ggon-ctl status || fail "ggon-ctl status (config found without --config?)"
ggon-ctl reload | grep -q reloaded || fail "ggon-ctl reload"
[ "$(stat -c %U /var/lib/ggon/control.token)" = ggon ] || fail "token not written by ggon"

step stop
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 0 ] || { cat /tmp/ggond.log; fail "ggond exited $rc on SIGTERM"; }
[ "$(stat -c %U /var/lib/ggon/state.json)" = ggon ] || fail "state not saved by ggon"

step purge
dpkg --purge ggon
for f in /usr/sbin/ggond /var/lib/ggon /etc/ggon/ggon.toml /lib/systemd/system/ggond.service; do
    [ ! -e "$f" ] || fail "$f left after purge"
done

echo "ALL CHECKS PASSED"
