#!/usr/bin/env bash
# A real booted systemd (a Debian 12 system instance, systemd 252 as PID 1, or Debian 13's, systemd 257) in
# systemd-nspawn, for pmsd's system-mode tests: `pmsd --system`, `User=`, other users, lingering, reboots, and
# the Debian package installed with apt.
#
#   PMSD_TEST_SUITE=bookworm|trixie         which Debian release boots (default bookworm)
#   PMSD_TEST_INSTALL=venv|package|stock    how pmsd gets inside: the venv bound at /opt/pmsd-venv (default; a
#                                           bookworm host's python3 must match the machine's), or not at all: the
#                                           caller installs the .deb (tests/system/test_package.py); `stock` is
#                                           a plain Debian (minbase, systemd, python3) on the host's network,
#                                           where the README's own commands install everything
#                                           (tests/system/test_readme_commands.py)
#
#   systemd-system.sh image                 build (or reuse) the cached debootstrap rootfs
#   systemd-system.sh venv                  build (or reuse) the venv pmsd is installed in, seen as /opt/pmsd-venv inside
#   systemd-system.sh up NAME               boot machine NAME (builds image and venv first if needed); idempotent
#   systemd-system.sh exec NAME [--user USER] [--env K=V]... [--cwd DIR] [--timeout SEC] -- CMD...
#                                           run CMD inside, as root or USER (exit status is CMD's)
#   systemd-system.sh reboot NAME           `systemctl reboot` inside, wait until it runs again (state is kept)
#   systemd-system.sh down NAME             power it off and remove everything it left; idempotent
#   systemd-system.sh status NAME           print the recorded state
#
# Exit status 77 means "this machine cannot run nspawn at all" (not root, no overlayfs, no cgroups): callers
# may skip. Every other failure is a real error.
#
# How it works, and why ("FACTS" is shared/SYSTEMD-FACTS.md, section "A real systemd on a machine whose PID 1 is
# not systemd": its numbered items, and the bullets under "A full system instance", quoted by their first words):
# - image: `debootstrap --variant=minbase bookworm` once, cached in /var/cache/pmsd-test/rootfs-bookworm. It is
#   never booted directly: every boot mounts an overlayfs (lower = the cached rootfs, upper = a per-machine dir)
#   so each `up` starts clean while a reboot keeps its state (FACTS: "-D / with --volatile is refused ...").
# - venv: pmsd is installed the way a user installs it, with Debian's /usr/bin/python3 (bookworm's 3.11) into a
#   venv whose path is /opt/pmsd-venv (FACTS: "bind-mount a venv built on the host with /usr/bin/python3"). It is
#   built on the host in a private mount namespace where /opt/pmsd-venv is a bind of the cached directory, so
#   every path written into it (shebangs, pyvenv.cfg) is /opt/pmsd-venv, and bound read-only at that path inside.
# - up: each boot runs `systemd-nspawn --boot` inside `unshare --mount --propagation private` with a tmpfs on
#   /run (FACTS: otherwise nspawn fails on exit, "Attempted to remove disk file system"), `--register=no
#   --keep-unit` (no machined, no host bus), `--private-network`. The launcher first moves itself into its own
#   cgroup, /machine.slice/pmsd-test-NAME.scope, in EVERY hierarchy and checks /proc/self/cgroup (FACTS: "Confine
#   it like the user manager"; never the root cgroup, never PID 1). The container's own cgroup is bound
#   writable over a tmpfs /sys/fs/cgroup so MemoryCurrent/TasksCurrent/CPUUsageNSec work (FACTS: "With no user
#   namespace nspawn mounts the v1 controllers read-only"; cpuacct is bound under both cpu and cpuacct names,
#   FACTS: "systemd assumes cpu and cpuacct are co-mounted"; CPUUsageNSec still needs CPUAccounting=yes, which
#   systemd 252 does not default to on cgroup v1).
# - reboot: `systemctl reboot` inside makes nspawn exit 133 (FACTS): the launcher loops and boots again on the
#   same overlay upper dir, so state is kept.
# - exec: nsenter into the leader's namespaces after moving the caller into the container's cgroup (FACTS).
#   Users run through setpriv (no PAM session, so lingering is what keeps their manager: tests stay honest).
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SELF")/../.." && pwd)

CACHE=/var/cache/pmsd-test
STATE_ROOT=/run/pmsd-test             # per machine: launcher.pid nspawn.pid leader.pid boots run_dir venv ...
RUNS=$CACHE/runs                      # per machine: upper/ work/ merged/ console.log (overlay needs a disk fs)
SUITE=${PMSD_TEST_SUITE:-bookworm}
case "$SUITE" in bookworm | trixie) ;; *) echo "systemd-system: PMSD_TEST_SUITE must be bookworm or trixie, not '$SUITE'" >&2; exit 2 ;; esac
INSTALL=${PMSD_TEST_INSTALL:-venv}
case "$INSTALL" in venv | package | stock) ;; *) echo "systemd-system: PMSD_TEST_INSTALL must be venv, package or stock, not '$INSTALL'" >&2; exit 2 ;; esac
MIRROR=${PMSD_TEST_MIRROR:-http://deb.debian.org/debian}
ROOTFS=$CACHE/rootfs-$SUITE
[ "$INSTALL" = stock ] && ROOTFS=$CACHE/rootfs-$SUITE-stock
VENV_PATH=/opt/pmsd-venv              # the venv's path on the host (inside the build namespace) and inside
APPS_PATH=/opt/pmsd-tests/apps        # tests/apps, read-only inside
BOOT_TIMEOUT=${PMSD_TEST_BOOT_TIMEOUT:-90}
# What the rootfs holds beyond minbase. Changing this list rebuilds the image (the stamp file holds it).
# util-linux (Essential) brings runuser and setpriv; no ca-certificates: nothing inside downloads.
PACKAGES=(systemd systemd-sysv dbus dbus-user-session libpam-systemd python3 python3-venv procps iproute2
    # The Debian package's Depends (debian/control), so that `apt-get install ./pmsd_*.deb` works offline
    # inside, and what the end-to-end suite needs to run there on the release's own python3-* versions.
    python3-jinja2 python3-pystemd python3-sdnotify python3-typer python3-yaml python3-pytest python3-hypothesis
    python3-prometheus-client
    # The package's Recommends: Node apps and ecosystem.config.js, on the release's own node (18, 20).
    nodejs)
# Host packages: nspawn + debootstrap (--no-install-recommends: the recommended libnss-mymachines edits the
# host's nsswitch.conf, FACTS), and what pystemd's C extension needs to build (FACTS: "pystemd 0.15.x on PyPI
# is an sdist only").
HOST_PACKAGES=(debootstrap systemd-container libsystemd-dev pkg-config gcc python3-dev python3-venv)

log() { printf 'systemd-system: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
cannot_run() { log "cannot run systemd-nspawn on this machine: $*"; exit 77; }

usage() {
    sed -n '2,/^# How it works/p' "$SELF" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

# --------------------------------------------------------------------------------------------------- checks

check_host() {
    [ "$(id -u)" -eq 0 ] || cannot_run "it needs root (cgroups, mounts, namespaces)"
    # Inside one of these machines (the README's test command run in a stock machine): no nspawn in nspawn.
    [ ! -e /run/systemd/container ] || cannot_run "this is itself a container ($(cat /run/systemd/container))"
    grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || cannot_run "the kernel has no overlayfs"
    [ -n "$(hierarchies)" ] || cannot_run "no cgroup hierarchy is mounted under /sys/fs/cgroup"
    unshare --mount --propagation private true 2>/dev/null || cannot_run "unshare --mount is not permitted"
}

ensure_host_packages() {
    local missing=() pkg
    for pkg in "${HOST_PACKAGES[@]}"; do
        [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" = "install ok installed" ] || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing host packages: ${missing[*]}"
    apt-get update -qq >&2 || log "warning: apt-get update failed; trying the install anyway"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
        || die "could not install ${missing[*]} with apt-get"
}

# Builds of the image and the venv are serialised (two pytest sessions may start at once).
LOCK_FD=""
lock_cache() {
    [ -z "$LOCK_FD" ] || return 0    # already held by this process (up builds the image, then the venv)
    mkdir -p "$CACHE"
    exec {LOCK_FD}>"$CACHE/.lock"
    flock "$LOCK_FD"
}

# Release it before starting anything long-lived: a launcher that inherited the fd would hold it for its life.
unlock_cache() {
    [ -n "$LOCK_FD" ] || return 0
    exec {LOCK_FD}>&-
    LOCK_FD=""
}

# Machines whose launcher is alive, one name a line.
live_machines() {
    local dir pid
    for dir in "$STATE_ROOT"/*/; do
        [ -f "$dir/launcher.pid" ] || continue
        pid=$(cat "$dir/launcher.pid")
        kill -0 "$pid" 2>/dev/null && basename "$dir"
    done
    return 0
}

# ---------------------------------------------------------------------------------------------------- image

# The rootfs a machine was booted on (the lower dir of its overlay).
machine_rootfs() {
    local sd
    sd=$(state_dir "$1")
    if [ -f "$sd/rootfs" ]; then cat "$sd/rootfs"; else echo "$CACHE/rootfs-$(cat "$sd/suite" 2>/dev/null || echo bookworm)"; fi
}

# A stock machine: what a minimal Debian server has (systemd as init, logind, D-Bus, the distro's python3), and
# nothing of pmsd's: the README's commands install the rest over the network.
STOCK_PACKAGES=(systemd systemd-sysv dbus libpam-systemd python3)
[ "$INSTALL" = stock ] && PACKAGES=("${STOCK_PACKAGES[@]}")

image_stamp() { printf 'suite=%s variant=minbase packages=%s\n' "$SUITE" "${PACKAGES[*]}"; }

cmd_image() {
    check_host
    ensure_host_packages
    lock_cache
    if [ -f "$ROOTFS.stamp" ] && [ "$(cat "$ROOTFS.stamp")" = "$(image_stamp)" ] && [ -x "$ROOTFS/lib/systemd/systemd" ]; then
        log "image: $ROOTFS is up to date"
        return 0
    fi
    # The rootfs is every machine's overlay lower dir: replacing it under a running machine is undefined.
    local users="" machine
    for machine in $(live_machines); do
        [ "$(machine_rootfs "$machine")" != "$ROOTFS" ] || users+="$machine "
    done
    [ -z "$users" ] || die "image: $ROOTFS must be rebuilt but machines are running on it: ${users//$'\n'/ }; run 'down' first"
    local started=$SECONDS tmp=$ROOTFS.new
    rm -rf "$tmp"
    log "image: debootstrap --variant=minbase $SUITE from $MIRROR with: ${PACKAGES[*]} (about a minute)"
    local packages
    packages=$(IFS=,; echo "${PACKAGES[*]}")
    if ! debootstrap --variant=minbase --include="$packages" "$SUITE" "$tmp" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1; then
        tail -n 20 "$CACHE/debootstrap.log" >&2
        die "image: debootstrap failed; the whole log is $CACHE/debootstrap.log"
    fi
    configure_rootfs "$tmp"
    rm -rf "$ROOTFS"
    mv "$tmp" "$ROOTFS"
    image_stamp >"$ROOTFS.stamp"
    log "image: built $ROOTFS in $((SECONDS - started)) s ($(du -sh "$ROOTFS" | cut -f1))"
}

# A stock machine downloads through this network, which intercepts TLS (FACTS: pip fails with
# CERTIFICATE_VERIFY_FAILED until the host's CA bundle is used): the host's bundle and a pip.conf naming it go
# into the machine's upper dir, as an admin of such a network configures every host. Nothing of pmsd's.
seed_network_config() {
    local upper=$1 bundle=/etc/ssl/certs/ca-certificates.crt
    [ -f "$bundle" ] || return 0
    mkdir -p "$upper/etc/ssl/certs"
    cp "$bundle" "$upper/etc/ssl/certs/site-ca.crt"
    printf '[global]\ncert = /etc/ssl/certs/site-ca.crt\n' >"$upper/etc/pip.conf"
}

configure_rootfs() {
    local root=$1
    # nspawn names the machine (--machine=) through its UTS namespace; a hostname copied from the host would
    # override it.
    rm -f "$root/etc/hostname"
    # Nothing inside downloads (--private-network): drop the package cache and lists (~100 MB).
    rm -rf "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    printf 'LANG=C.UTF-8\n' >"$root/etc/default/locale"
    # The console is a read-only pty logged to console.log: a getty there only adds a login prompt.
    ln -sf /dev/null "$root/etc/systemd/system/console-getty.service"
    # A real Debian machine has a root shell; minbase's is already bash. Root login is never needed (nsenter).
    [ -e "$root/usr/bin/setpriv" ] || die "image: setpriv is missing from the rootfs (util-linux)"
}

# ----------------------------------------------------------------------------------------------------- venv

# The pmsd sources the venv is built from; any change to them rebuilds it.
source_files() {
    (cd "$REPO" && find pmsd templates pyproject.toml -type f ! -name '*.pyc' ! -path '*/__pycache__/*' | LC_ALL=C sort)
}

source_hash() {
    {
        /usr/bin/python3 -c 'import sys; print(sys.version)'
        cd "$REPO"
        source_files | while IFS= read -r file; do
            printf '%s\n' "$file"
            sha256sum <"$file"
        done
    } | sha256sum | cut -c1-16
}

# bookworm's python3 (inside) and the host's /usr/bin/python3 must be the same minor release: the venv's python
# is a symlink to /usr/bin/python3 and pystemd's extension is built for the host's ABI.
check_python_versions() {
    local host inside
    host=$(/usr/bin/python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
    inside=$(chroot "$ROOTFS" /usr/bin/python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
    if [ "${host%.*}" != "${inside%.*}" ]; then
        die "venv: the host's /usr/bin/python3 is $host but $SUITE's is $inside: a venv built on the host would not run inside (different minor release, different ABI). Build it inside the container instead, or use a host of the same Debian release."
    fi
    [ "$host" = "$inside" ] || log "venv: warning: host python $host, container python $inside (same ABI, patch levels differ)"
    log "venv: python $host on the host, $inside inside"
}

venv_dir_for() { printf '%s/venv-%s\n' "$CACHE" "$1"; }

cmd_venv() {
    check_host
    ensure_host_packages
    [ -x "$ROOTFS/lib/systemd/systemd" ] || cmd_image
    lock_cache
    local hash dir
    hash=$(source_hash)
    dir=$(venv_dir_for "$hash")
    if [ -x "$dir/bin/pmsd" ] && [ -f "$dir/.complete" ]; then
        log "venv: $dir is up to date"
        ln -sfn "$(basename "$dir")" "$CACHE/venv"
        gc_venvs "$dir"
        return 0
    fi
    check_python_versions
    local started=$SECONDS src
    rm -rf "$dir"
    mkdir -p "$dir"
    # A copy of the working tree as it is now (pip builds a wheel from it: a normal, non-editable install).
    src=$(mktemp -d /tmp/pmsd-venv-src.XXXXXX)    # removed below whatever happens, with $src.opt
    # (README.md too: pyproject.toml names it as the readme; it is not part of the hash.)
    { source_files; [ ! -e "$REPO/README.md" ] || echo README.md; } | (cd "$REPO" && xargs -d '\n' cp --parents -t "$src")
    log "venv: installing pmsd from a copy of $REPO into $VENV_PATH (cached as $dir)"
    # /opt/pmsd-venv exists only in this private mount namespace: an overlay over /opt (its contents stay
    # visible: pip's find-links live there) with a bind of the cache dir on top. The host's /opt is untouched.
    mkdir "$src.opt"
    if ! unshare --mount --propagation private env SRC="$src" DIR="$dir" VENV="$VENV_PATH" bash -euo pipefail -c '
        scratch=$SRC.opt
        mount -t tmpfs tmpfs "$scratch"
        mkdir "$scratch/upper" "$scratch/work"
        mount -t overlay overlay -o "lowerdir=/opt,upperdir=$scratch/upper,workdir=$scratch/work" /opt
        mkdir -p "$VENV"
        mount --bind "$DIR" "$VENV"
        /usr/bin/python3 -m venv "$VENV"
        "$VENV/bin/pip" install --quiet --no-input "$SRC"
        "$VENV/bin/python" -c "import pmsd, pystemd, typer, jinja2, psutil, yaml, sdnotify"
        test -x "$VENV/bin/pmsd"
    ' >"$CACHE/venv.log" 2>&1; then
        rm -rf "$src" "$src.opt"
        tail -n 30 "$CACHE/venv.log" >&2
        die "venv: pip install failed; the whole log is $CACHE/venv.log"
    fi
    rm -rf "$src" "$src.opt"    # the mounts on them lived only in the namespace, gone with it
    touch "$dir/.complete"
    ln -sfn "$(basename "$dir")" "$CACHE/venv"
    log "venv: built $dir in $((SECONDS - started)) s"
    gc_venvs "$dir"
}

# Remove venvs of older sources that no machine has bound: every machine with a state dir counts, also one
# still booting or one that died without `down` (its next `up` or `down` releases it).
gc_venvs() {
    local keep=$1 dir used
    used=" $(cat "$STATE_ROOT"/*/venv 2>/dev/null | tr '\n' ' ' || true) "
    for dir in "$CACHE"/venv-*; do
        [ -d "$dir" ] && [ "$dir" != "$keep" ] || continue
        case "$used" in *" $dir "*) continue ;; esac
        rm -rf "$dir"
    done
}

# -------------------------------------------------------------------------------------------------- cgroups

scope_of() { printf 'machine.slice/pmsd-test-%s.scope\n' "$1"; }

# Every mounted hierarchy: the v1 controllers, name=systemd and cgroup2 (hybrid), or the cgroup2 root.
hierarchies() {
    local h
    for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
        [ -e "$h/cgroup.procs" ] && printf '%s\n' "${h%/}"
    done
    return 0
}

make_cgroups() {
    local scope=$1 h parent dir level
    while IFS= read -r h; do
        parent=$h
        for level in ${scope//\// }; do
            dir=$parent/$level
            # (Explicit returns: the caller retries, and set -e does not act inside an || list.)
            if [ ! -d "$dir" ]; then
                mkdir "$dir" || return 1
                # cpuset children start empty and refuse tasks (ENOSPC) until they get cpus and mems (FACTS 3).
                if [ -e "$dir/cpuset.cpus" ]; then
                    cat "$parent/cpuset.cpus" >"$dir/cpuset.cpus" || return 1
                    cat "$parent/cpuset.mems" >"$dir/cpuset.mems" || return 1
                fi
            fi
            parent=$dir
        done
    done < <(hierarchies)
    return 0
}

# Move process $2 into cgroup $1 (relative to each hierarchy's root) everywhere; with "container", into the
# container's root cgroup, which is $1/payload where nspawn made one (the systemd hierarchies), else $1.
move_to_cgroup() {
    local scope=$1 pid=$2 mode=${3:-} h target
    while IFS= read -r h; do
        target=$h/$scope
        [ "$mode" = container ] && [ -d "$target/payload" ] && target=$target/payload
        echo "$pid" >"$target/cgroup.procs"
    done < <(hierarchies)
}

# True when every line of /proc/$1/cgroup names $2 (or a child of it).
in_cgroup() {
    local pid=$1 scope=$2 line path
    while IFS= read -r line; do
        path=${line#*:*:}
        case "$path" in "/$scope" | "/$scope/"*) ;; *) return 1 ;; esac
    done <"/proc/$pid/cgroup"
}

# Remove the machine's cgroup (and every cgroup systemd created below it) in every hierarchy, deepest first.
remove_cgroups() {
    local scope=$1 h
    while IFS= read -r h; do
        [ -d "$h/$scope" ] || continue
        find "$h/$scope" -depth -type d -exec rmdir {} + 2>/dev/null || true
        [ -d "$h/$scope" ] && log "warning: could not remove $h/$scope (processes left in it: $(tr '\n' ' ' <"$h/$scope/cgroup.procs"))"
        rmdir "$h/machine.slice" 2>/dev/null || true   # only when no other machine uses it
    done < <(hierarchies)
}

# ---------------------------------------------------------------------------------------------- the machine

state_dir() { printf '%s/%s\n' "$STATE_ROOT" "$1"; }

check_name() {
    [[ "$1" =~ ^[a-zA-Z0-9][a-zA-Z0-9_-]{0,40}$ ]] || die "bad machine name '$1' (letters, digits, - and _; at most 41)"
}

launcher_alive() {
    local sd
    sd=$(state_dir "$1")
    [ -f "$sd/launcher.pid" ] && kill -0 "$(cat "$sd/launcher.pid")" 2>/dev/null
}

# The container's PID 1 as the host sees it: the child of nspawn that is PID 1 of its own PID namespace, once it
# runs systemd (before that it may still be nspawn's setup code, in a half-built root).
leader_pid() {
    local sd nspawn child nspid
    sd=$(state_dir "$1")
    [ -f "$sd/nspawn.pid" ] || return 1
    nspawn=$(cat "$sd/nspawn.pid")
    for child in $(ps -o pid= --ppid "$nspawn" 2>/dev/null); do
        nspid=$(awk '/^NSpid:/ {print $NF}' "/proc/$child/status" 2>/dev/null) || continue
        [ "$nspid" = 1 ] && [ "$(cat "/proc/$child/comm" 2>/dev/null)" = systemd ] && { echo "$child"; return 0; }
    done
    return 1
}

# Runs in the background (setsid) for the machine's whole life: confines itself, then boots until the machine
# powers off (nspawn exit status 0) or fails; exit status 133 is a reboot: boot again on the same upper dir.
cmd__launch() {
    local name=$1 sd scope rc=0 boots=0
    sd=$(state_dir "$name")
    scope=$(scope_of "$name")
    move_to_cgroup "$scope" "$BASHPID"
    if ! in_cgroup "$BASHPID" "$scope"; then
        log "refusing to boot outside /$scope:"; cat /proc/self/cgroup >&2
        echo 1 >"$sd/exit"
        exit 1
    fi
    while :; do
        boots=$((boots + 1))
        log "boot $boots of $name ($(date -Is))"
        # unshare and bash exec: $! is nspawn's own PID.
        unshare --mount --propagation private -- bash "$SELF" _boot "$name" &
        echo $! >"$sd/nspawn.pid"
        echo "$boots" >"$sd/boots"
        rc=0
        wait $! || rc=$?
        log "nspawn exited with status $rc"
        [ "$rc" -eq 133 ] || break
    done
    echo "$rc" >"$sd/exit"
    exit "$rc"
}

# One boot, in its own mount namespace (made by the launcher's unshare).
cmd__boot() {
    local name=$1 sd run_dir venv scope h controller binds=()
    sd=$(state_dir "$name")
    run_dir=$(cat "$sd/run_dir")
    venv=$(cat "$sd/venv")
    # The release and flavour `up` chose (reboots do not see its environment).
    ROOTFS=$(cat "$sd/rootfs")
    local network=(--private-network --resolv-conf=off)
    # A stock machine uses the host's network: apt and pip download inside.
    [ "$(cat "$sd/install")" != stock ] || network=(--resolv-conf=copy-host)
    scope=$(scope_of "$name")
    [ -z "$venv" ] || binds+=("--bind-ro=$venv:$VENV_PATH")
    # nspawn keeps /run/systemd/nspawn/... and refuses to clean it up on a disk-backed /run (FACTS). This also
    # hides the host's /run (its journald socket, user manager) from nspawn.
    mount -t tmpfs -o mode=0755 tmpfs /run
    mount -t overlay overlay -o "lowerdir=$ROOTFS,upperdir=$run_dir/upper,workdir=$run_dir/work" "$run_dir/merged"
    if [ -e /sys/fs/cgroup/memory/cgroup.procs ]; then
        # v1 controllers: nspawn mounts them read-only without a user namespace; our own cgroup, bound writable
        # over a tmpfs, is left alone by nspawn (it skips mount points) and gives systemd inside its accounting.
        binds+=(--tmpfs=/sys/fs/cgroup:mode=0755)
        for controller in memory pids blkio devices cpuacct; do
            h=/sys/fs/cgroup/$controller
            [ -d "$h/$scope" ] && binds+=("--bind=$h/$scope:/sys/fs/cgroup/$controller")
        done
        # cpu is mounted apart from cpuacct here: bind cpuacct under both names for CPUUsageNSec (FACTS).
        [ -d "/sys/fs/cgroup/cpuacct/$scope" ] && binds+=("--bind=/sys/fs/cgroup/cpuacct/$scope:/sys/fs/cgroup/cpu")
    fi
    exec systemd-nspawn --boot --quiet \
        --directory="$run_dir/merged" --machine="pmsd-test-$name" \
        --register=no --keep-unit "${network[@]}" \
        --console=read-only --link-journal=no --timezone=off \
        "${binds[@]}" \
        --bind-ro="$REPO/tests/apps:$APPS_PATH"
}

wait_running() {
    local name=$1 deadline=$((SECONDS + BOOT_TIMEOUT)) state="" started=$SECONDS sd
    sd=$(state_dir "$name")
    while [ $SECONDS -lt $deadline ]; do
        launcher_alive "$name" || die "machine $name stopped while booting (exit $(cat "$sd/exit" 2>/dev/null || echo ?)); see $(cat "$sd/run_dir")/console.log"
        if leader_pid "$name" >/dev/null; then
            state=$(cmd_exec "$name" --timeout 5 -- systemctl is-system-running 2>/dev/null) || true
            case "$state" in
                running) break ;;
                degraded)
                    log "warning: $name is degraded; failed units:"
                    (cmd_exec "$name" -- systemctl --failed --no-legend) >&2 || true   # a subshell: cmd_exec execs
                    break ;;
            esac
        fi
        sleep 0.1
    done
    case "$state" in running | degraded) ;; *)
        die "machine $name did not reach 'running' within $BOOT_TIMEOUT s (last state: '${state:-no answer}'); see $(cat "$sd/run_dir")/console.log" ;;
    esac
    leader_pid "$name" >"$sd/leader.pid"
    log "machine $name is $state (leader pid $(cat "$sd/leader.pid"), ready after $((SECONDS - started)) s)"
}

cmd_up() {
    local name=$1 sd run_dir scope
    check_name "$name"
    check_host
    sd=$(state_dir "$name")
    if launcher_alive "$name"; then
        log "machine $name is already up"
        wait_running "$name"
        return 0
    fi
    cmd_image
    [ "$INSTALL" = venv ] && cmd_venv
    # Whatever an earlier run left (it died without `down`) goes first: every `up` starts clean.
    [ -z "$(cgroup_pids "$(scope_of "$name")")" ] || stop_machine "$name"
    cleanup "$name"
    scope=$(scope_of "$name")
    run_dir=$RUNS/$name
    mkdir -p "$sd" "$run_dir/upper" "$run_dir/work" "$run_dir/merged"
    echo "$run_dir" >"$sd/run_dir"
    if [ "$INSTALL" = venv ]; then readlink -f "$CACHE/venv" >"$sd/venv"; else : >"$sd/venv"; fi
    echo "$SUITE" >"$sd/suite"
    echo "$INSTALL" >"$sd/install"
    echo "$ROOTFS" >"$sd/rootfs"
    [ "$INSTALL" != stock ] || seed_network_config "$run_dir/upper"
    echo "/$scope" >"$sd/cgroup"
    # A concurrent `down` of another machine may remove an empty machine.slice between our two mkdirs: retry.
    make_cgroups "$scope" 2>/dev/null || make_cgroups "$scope" 2>/dev/null || make_cgroups "$scope"
    unlock_cache    # the venv in use is recorded: a concurrent build will not remove it
    log "booting $name (console: $run_dir/console.log)"
    setsid bash "$SELF" _launch "$name" </dev/null >>"$run_dir/console.log" 2>&1 &
    echo $! >"$sd/launcher.pid"
    wait_running "$name"
}

# Run a command inside. Flags before `--`; the command after it.
cmd_exec() {
    local name=$1 user="" cwd="" timeout="" envs=() sd scope leader
    shift
    while [ $# -gt 0 ]; do
        case "$1" in
            --user) user=$2; shift 2 ;;
            --user=*) user=${1#*=}; shift ;;
            --env) envs+=("$2"); shift 2 ;;
            --env=*) envs+=("${1#*=}"); shift ;;
            --cwd) cwd=$2; shift 2 ;;
            --cwd=*) cwd=${1#*=}; shift ;;
            --timeout) timeout=$2; shift 2 ;;
            --timeout=*) timeout=${1#*=}; shift ;;
            --) shift; break ;;
            *) die "exec: unknown option '$1' (the command goes after --)" ;;
        esac
    done
    [ $# -gt 0 ] || die "exec: no command given (exec NAME [options] -- CMD...)"
    sd=$(state_dir "$name")
    launcher_alive "$name" || die "machine $name is not up"
    leader=$(leader_pid "$name") || die "machine $name has no running systemd (booting or rebooting?)"
    scope=$(scope_of "$name")
    [ -n "$timeout" ] && set -- timeout --kill-after=5 "$timeout" "$@"
    # The inside part: a clean environment (nothing of the host's leaks in), the user's identity through
    # setpriv (no PAM session), the user manager's runtime dir, then the command.
    local inner='
        user=$1 cwd=$2; shift 2    # then the K=V assignments, then the command: both go to env
        if [ -n "$user" ]; then
            uid=$(id -u "$user") && gid=$(id -g "$user") || exit 125
            home=$(getent passwd "$user" | cut -d: -f6)
            prefix="setpriv --reuid=$uid --regid=$gid --init-groups --reset-env --"
            xdg="XDG_RUNTIME_DIR=/run/user/$uid DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/$uid/bus"
        else
            home=/root prefix="" xdg="HOME=/root USER=root LOGNAME=root"
        fi
        exec $prefix env -C "${cwd:-$home}" $xdg LANG=C.UTF-8 "$@"'
    # Into the container's cgroup first (FACTS): this process, which then becomes nsenter (not the caller of
    # a $(...) that runs cmd_exec: $BASHPID is the subshell).
    move_to_cgroup "$scope" "$BASHPID" container
    exec nsenter --target "$leader" --mount --uts --ipc --net --pid --cgroup --root --wd -- \
        /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb \
        /bin/sh -c "$inner" sh "$user" "$cwd" "${envs[@]}" "$@"
}

cmd_reboot() {
    local name=$1 sd boots
    sd=$(state_dir "$name")
    launcher_alive "$name" || die "machine $name is not up"
    boots=$(cat "$sd/boots")
    log "rebooting $name"
    (cmd_exec "$name" -- systemctl reboot) >/dev/null 2>&1 || true
    local deadline=$((SECONDS + BOOT_TIMEOUT))
    until [ "$(cat "$sd/boots" 2>/dev/null)" != "$boots" ]; do
        launcher_alive "$name" || die "machine $name powered off instead of rebooting; see $(cat "$sd/run_dir")/console.log"
        [ $SECONDS -lt $deadline ] || die "machine $name did not restart within $BOOT_TIMEOUT s"
        sleep 0.1
    done
    wait_running "$name"
}

# PIDs of every process in the machine's cgroup tree (any hierarchy: they all hold the same processes).
cgroup_pids() {
    local scope=$1 h
    for h in $(hierarchies); do break; done    # the first one (no pipe into head: pipefail and SIGPIPE)
    [ -n "$h" ] && [ -d "$h/$scope" ] || return 0
    find "$h/$scope" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -un
}

wait_gone() {  # wait_gone SECONDS PID...: true once none of the PIDs exists
    local deadline=$((SECONDS + $1)) pid alive
    shift
    while :; do
        alive=""
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ -z "$alive" ] && return 0
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.1
    done
}

# Stop the machine: `systemctl poweroff` inside; then SIGTERM to nspawn (which powers the container off too);
# then SIGKILL to the container's PID 1 (ending its whole PID namespace) and nspawn. Last, anything still in the
# machine's cgroup (which this script created, so every process there is the machine's) is killed by its PID.
# Never by name.
stop_machine() {
    local name=$1 sd launcher="" nspawn="" leader="" scope pids
    sd=$(state_dir "$name")
    scope=$(scope_of "$name")
    [ -f "$sd/launcher.pid" ] && launcher=$(cat "$sd/launcher.pid")
    [ -f "$sd/nspawn.pid" ] && nspawn=$(cat "$sd/nspawn.pid")
    leader=$(leader_pid "$name" || true)
    if [ -n "$leader" ] && launcher_alive "$name"; then
        (cmd_exec "$name" --timeout 10 -- systemctl poweroff) >/dev/null 2>&1 || true
        wait_gone 30 $launcher $nspawn && return 0
        log "warning: $name did not power off within 30 s"
    fi
    if [ -n "$nspawn" ] && kill -0 "$nspawn" 2>/dev/null; then
        log "sending SIGTERM to nspawn (pid $nspawn)"
        kill -TERM "$nspawn" 2>/dev/null || true
        wait_gone 15 $launcher $nspawn && return 0
        leader=$(leader_pid "$name" || true)
        log "warning: $name still runs; SIGKILL to its PID 1 (pid ${leader:-none}) and nspawn (pid $nspawn)"
        [ -z "$leader" ] || kill -KILL "$leader" 2>/dev/null || true
        kill -KILL "$nspawn" 2>/dev/null || true
        wait_gone 10 $launcher $nspawn || true
    fi
    pids=$(cgroup_pids "$scope")
    if [ -n "$pids" ]; then
        log "warning: killing what is left in /$scope: $(echo $pids)"
        kill -KILL $pids 2>/dev/null || true
        wait_gone 10 $pids || die "processes $(echo $pids) of $name do not exit"
    fi
    return 0
}

# Remove what a machine leaves: its overlay dirs, its cgroups, its state. Idempotent.
cleanup() {
    local name=$1 sd run_dir
    sd=$(state_dir "$name")
    run_dir=$RUNS/$name
    [ -f "$sd/run_dir" ] && run_dir=$(cat "$sd/run_dir")
    # The overlay was mounted only in the boot's private namespace, so nothing is mounted here; refuse to rm
    # a tree that is mounted anyway (it would be the lower rootfs).
    if mountpoint -q "$run_dir/merged" 2>/dev/null; then
        die "$run_dir/merged is mounted in the host's namespace; not removing it"
    fi
    rm -rf "$run_dir"
    rmdir "$RUNS" 2>/dev/null || true
    remove_cgroups "$(scope_of "$name")"
    rm -rf "$sd"
    rmdir "$STATE_ROOT" 2>/dev/null || true
}

cmd_down() {
    local name=$1
    check_name "$name"
    [ "$(id -u)" -eq 0 ] || cannot_run "it needs root"
    if launcher_alive "$name" || [ -n "$(cgroup_pids "$(scope_of "$name")")" ]; then
        log "powering off $name"
        stop_machine "$name"
    fi
    cleanup "$name"
    log "machine $name is down"
}

cmd_status() {
    local name=$1 sd f
    sd=$(state_dir "$name")
    [ -d "$sd" ] || { echo "$name: not up"; return 1; }
    for f in launcher.pid nspawn.pid leader.pid boots run_dir venv suite install rootfs cgroup exit; do
        [ -f "$sd/$f" ] && printf "%s=%s\n" "${f%.pid}" "$(cat "$sd/$f")"
    done
    launcher_alive "$name" && echo "alive=yes" || echo "alive=no"
}

[ $# -ge 1 ] || usage
command=$1
shift
case "$command" in
    image | venv) [ $# -eq 0 ] || usage; "cmd_$command" ;;
    up | down | reboot | status) [ $# -eq 1 ] || usage; "cmd_$command" "$1" ;;
    exec) [ $# -ge 1 ] || usage; cmd_exec "$@" ;;
    _launch | _boot) "cmd_$command" "$1" ;;
    -h | --help | help) usage ;;
    *) usage ;;
esac
