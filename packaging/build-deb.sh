#!/usr/bin/env bash
# Build pmsd's Debian package from this tree: bash packaging/build-deb.sh
# Installs its build dependencies with apt-get (only when missing), builds in a temporary copy of the tree,
# runs lintian and a smoke test, writes dist/pmsd_<version>_all.deb and prints its path as the last line of
# stdout. Everything else goes to stderr.
#   LINTIAN=0   skip lintian        KEEP=1   keep the temporary build tree (its path is printed)
#   DEST=DIR    write the .deb to DIR instead of dist/
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
exec 3>&1 1>&2  # fd 3 is the real stdout: only the .deb's path goes there

export DEBIAN_FRONTEND=noninteractive
need() {  # apt-get install the Debian packages given that are not installed yet
    local missing=() deb
    for deb in "$@"; do
        dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q "ok installed" || missing+=("$deb")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "build-deb: apt-get install ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
need dpkg-dev fakeroot lintian python3

version=$(/usr/bin/python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' \
    "$repo/pyproject.toml")
work=$(mktemp -d /tmp/pmsd-deb.XXXXXX)
[ "${KEEP:-0}" = 1 ] && echo "build-deb: build tree kept in $work" || trap 'rm -rf "$work"' EXIT
src=$work/pmsd-$version

# The copy: the files git knows plus new ones not ignored (so uncommitted work is built, and no __pycache__,
# egg-info, build/ or dist/ comes along); a tree that is not a git checkout is copied whole, minus those.
mkdir -p "$src"
if git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$repo" && git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
        tar --null --no-recursion -T - -cf -) | tar -C "$src" -xf -
    commit=$(git -C "$repo" rev-parse --short HEAD)
    git -C "$repo" diff --quiet HEAD 2>/dev/null || commit="$commit with uncommitted changes"
    date=$(git -C "$repo" log -1 --format=%cD)
else
    tar -C "$repo" --exclude=.git --exclude=dist --exclude=build --exclude='*.egg-info' --exclude=__pycache__ \
        -cf - . | tar -C "$src" -xf -
    commit="a tree outside git"
    date=$(date -R)
fi
# debian/ lives in packaging/debian (the repository's root stays free of distro files; packaging/ holds them)
rm -rf "$src/debian"
cp -a "$src/packaging/debian" "$src/debian"
maintainer=$(sed -n 's/^Maintainer: //p' "$src/debian/control")
# A native package: its version is pyproject.toml's, and the changelog says what it was built from.
cat > "$src/debian/changelog" <<CHANGELOG
pmsd ($version) unstable; urgency=medium

  * Built from git $commit.

 -- $maintainer  $date
CHANGELOG

if ! (cd "$src" && dpkg-checkbuilddeps 2>/dev/null); then
    echo "build-deb: installing the build dependencies of debian/control"
    apt-get update -qq
    apt-get build-dep -y -qq --no-install-recommends "$src" >/dev/null
fi

echo "build-deb: dpkg-buildpackage in $src"
# Debian's own python3 and tools only: a pyenv or venv python3 earlier on PATH would build for itself.
(cd "$src" && env -u PYTHONPATH -u PYTHONHOME -u VIRTUAL_ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    dpkg-buildpackage -b -us -uc -rfakeroot)
deb=$work/pmsd_${version}_all.deb
[ -f "$deb" ] || { echo "build-deb: $deb was not built"; exit 1; }

if [ "${LINTIAN:-1}" != 0 ]; then
    echo "build-deb: lintian (tags are listed with their reasons in packaging/README.md)"
    lintian --info --display-info --display-experimental --pedantic --tag-display-limit 0 "$work"/pmsd_"${version}"_*.changes || true
fi

# Smoke test with Debian's python3 and python3-* packages, from the unpacked package, installing nothing.
echo "build-deb: smoke test of the unpacked package with /usr/bin/python3"
mkdir "$work/root"
dpkg-deb -x "$deb" "$work/root"
for argv in "--help" "start --help"; do
    # shellcheck disable=SC2086  # argv is split on purpose
    (cd "$work" && PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=$work/root/usr/lib/python3/dist-packages \
        /usr/bin/python3 -m pmsd $argv >/dev/null) || { echo "build-deb: python3 -m pmsd $argv failed"; exit 1; }
done

dest=${DEST:-$repo/dist}
mkdir -p "$dest"
cp "$deb" "$dest/"
echo "$(cd "$dest" && pwd)/$(basename "$deb")" >&3
