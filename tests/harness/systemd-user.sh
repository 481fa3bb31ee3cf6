#!/usr/bin/env bash
# Bring up (or reuse) a real systemd user manager plus journald for pmsd.
#
#   systemd-user.sh up      start journald and `systemd --user` if they are not running (idempotent)
#   systemd-user.sh down    stop the user manager this script started (journald is left running)
#   systemd-user.sh env     print the environment a client needs (eval "$(systemd-user.sh env)")
#
# On a host booted with systemd it only makes sure the user manager of the calling user runs (lingering).
# Elsewhere (containers, microVMs whose PID 1 is not systemd) it follows the recipe in SYSTEMD-FACTS:
# /run/systemd/system must exist (sd_booted()), journald runs first, and the manager is exec'd from a shell
# that already sits in user.slice/user-$UID.slice/user@$UID.service in every cgroup hierarchy. Starting it in
# the root cgroup would make it adopt every process of the machine, PID 1 included, so the script refuses.
set -euo pipefail

uid=$(id -u)
runtime_dir=/run/user/$uid
state_dir=/run/pmsd-harness
manager_cgroup="user.slice/user-$uid.slice/user@$uid.service"

log() { printf 'systemd-user: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

print_env() {
    printf 'export XDG_RUNTIME_DIR=%s\n' "$runtime_dir"
    printf 'export DBUS_SESSION_BUS_ADDRESS=unix:path=%s/bus\n' "$runtime_dir"
}

booted_with_systemd() { [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; }

manager_state() {
    XDG_RUNTIME_DIR=$runtime_dir DBUS_SESSION_BUS_ADDRESS=unix:path=$runtime_dir/bus \
        timeout 5 systemctl --user is-system-running 2>/dev/null || true
}

manager_running() {
    # is-system-running exits non-zero for "degraded" (a failed unit) and "starting", which still mean a
    # manager answers. Compare the text; a pipeline into grep would inherit systemctl's status (pipefail).
    case "$(manager_state)" in
        running | degraded | starting | initializing | maintenance) return 0 ;;
    esac
    # A manager this script started that is alive but slow to answer must not get a twin.
    [ -f "$state_dir/manager.pid" ] && kill -0 "$(cat "$state_dir/manager.pid")" 2>/dev/null
}

wait_running() {
    local deadline=$((SECONDS + 30)) state=""
    while [ $SECONDS -lt $deadline ]; do
        state=$(manager_state)
        case "$state" in running | degraded) return 0 ;; esac
        sleep 0.1
    done
    die "the user manager did not reach 'running' within 30 s (last state: '${state:-no answer}'); see $state_dir/manager.log"
}

journald_alive() {
    [ -f "$state_dir/journald.pid" ] && kill -0 "$(cat "$state_dir/journald.pid")" 2>/dev/null && return 0
    # Someone else's journald (a systemd host, or an earlier run that lost its pid file) owns the socket.
    [ -S /run/systemd/journal/socket ] && pgrep -x systemd-journal >/dev/null 2>&1
}

start_journald() {
    journald_alive && return 0
    log "starting systemd-journald"
    setsid /lib/systemd/systemd-journald </dev/null >>"$state_dir/journald.log" 2>&1 &
    echo $! >"$state_dir/journald.pid"
    local deadline=$((SECONDS + 10))
    until [ -S /run/systemd/journal/stdout ]; do
        [ $SECONDS -lt $deadline ] || die "journald did not create /run/systemd/journal/stdout; see $state_dir/journald.log"
        sleep 0.05
    done
}

make_cgroups() {
    local hierarchy dir parent level
    for hierarchy in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
        [ -e "$hierarchy/cgroup.procs" ] || continue
        parent=${hierarchy%/}
        for level in user.slice "user-$uid.slice" "user@$uid.service"; do
            dir=$parent/$level
            if [ ! -d "$dir" ]; then
                mkdir "$dir"
                # cpuset children start empty and refuse tasks (ENOSPC) until they get cpus and mems.
                if [ -e "$dir/cpuset.cpus" ]; then
                    cat "$parent/cpuset.cpus" >"$dir/cpuset.cpus"
                    cat "$parent/cpuset.mems" >"$dir/cpuset.mems"
                fi
            fi
            parent=$dir
        done
    done
}

start_manager() {
    make_cgroups
    mkdir -p "$runtime_dir" && chmod 0700 "$runtime_dir"
    log "starting systemd --user in $manager_cgroup"
    # The child moves itself into the manager's cgroup in every hierarchy, checks that it arrived, and only
    # then execs the manager; if any step fails it exits instead of starting a manager that would adopt PID 1.
    XDG_RUNTIME_DIR=$runtime_dir DBUS_SESSION_BUS_ADDRESS=unix:path=$runtime_dir/bus \
    MANAGER_CGROUP=$manager_cgroup setsid bash -c '
        set -e
        for procs in /sys/fs/cgroup/*/"$MANAGER_CGROUP"/cgroup.procs /sys/fs/cgroup/"$MANAGER_CGROUP"/cgroup.procs; do
            [ -e "$procs" ] && echo $$ >"$procs"
        done
        grep -q "^0::/$MANAGER_CGROUP\$" /proc/self/cgroup || {
            echo "refusing to start systemd --user outside /$MANAGER_CGROUP:" >&2; cat /proc/self/cgroup >&2; exit 1; }
        exec /lib/systemd/systemd --user
    ' </dev/null >>"$state_dir/manager.log" 2>&1 &
    echo $! >"$state_dir/manager.pid"
    wait_running
}

up() {
    mkdir -p "$state_dir"
    if booted_with_systemd; then
        if ! manager_running; then
            loginctl enable-linger "$(id -un)" >/dev/null 2>&1 || true
            systemctl start "user@$uid.service"
        fi
        wait_running
        return 0
    fi
    [ "$uid" -eq 0 ] || die "without systemd as PID 1 this needs root (it creates cgroups and /run/systemd/system)"
    mkdir -p /run/systemd/system
    start_journald
    manager_running && return 0
    start_manager
    log "user manager running (pid $(cat "$state_dir/manager.pid"))"
}

down() {
    booted_with_systemd && return 0
    [ -f "$state_dir/manager.pid" ] || return 0
    local pid
    pid=$(cat "$state_dir/manager.pid")
    if kill -0 "$pid" 2>/dev/null; then
        XDG_RUNTIME_DIR=$runtime_dir systemctl --user exit >/dev/null 2>&1 || kill "$pid"
        local deadline=$((SECONDS + 30))
        while kill -0 "$pid" 2>/dev/null; do
            [ $SECONDS -lt $deadline ] || die "systemd --user (pid $pid) did not exit within 30 s"
            sleep 0.1
        done
    fi
    rm -f "$state_dir/manager.pid"
}

case "${1:-up}" in
    up) up && print_env ;;
    down) down ;;
    env) print_env ;;
    *) die "usage: $0 up|down|env" ;;
esac
