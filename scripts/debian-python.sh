#!/usr/bin/env bash
# A real CPython newer than the machine's, from Debian's packages, unpacked
# into a directory without installing anything over the system.
#
# Usage: scripts/debian-python.sh VERSION [DEST]
#   VERSION  a minor version Debian unstable ships, e.g. 3.14 or 3.15
#   DEST     where to unpack (default: target/debian-python/VERSION)
#
# Prints the path of DEST/usr/bin/pythonVERSION-run, an executable that
# starts that interpreter with the unpacked glibc (unstable's Python needs a
# newer glibc than bookworm's, so it runs under unstable's own dynamic
# loader). sys.executable is that wrapper, so subprocesses (compileall -j0,
# precompyle's workers) start the same way.
#
# The package index is checked against the Release file's signature
# (debian-archive-keyring) and every package against the index's SHA-256.
# Unstable moves: the patch release is whatever it ships today, and the
# script prints it. Running it again over an existing DEST does nothing.
set -euo pipefail

version=${1:?usage: scripts/debian-python.sh VERSION [DEST]}
[[ $version =~ ^3\.[0-9]+$ ]] || { echo "debian-python: VERSION is like 3.14, not '$version'" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
dest=${2:-$root/target/debian-python/$version}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
wrapper=$dest/usr/bin/python$version-run

if [[ -x $wrapper ]]; then
    echo "$wrapper"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fetch() { curl -fsS --retry 3 -m 300 -o "$2" "$mirror/$1"; }

fetch dists/sid/InRelease "$work/InRelease"
gpgv --keyring "$keyring" "$work/InRelease" 2>/dev/null ||
    { echo "debian-python: bad signature on $mirror/dists/sid/InRelease" >&2; exit 1; }
index_sha=$(awk '$3 == "main/binary-amd64/Packages.xz" && length($1) == 64 { print $1 }' "$work/InRelease")
fetch dists/sid/main/binary-amd64/Packages.xz "$work/Packages.xz"
echo "$index_sha  $work/Packages.xz" | sha256sum -c --quiet -
xz -d "$work/Packages.xz"

# What `python3.X -m compileall` and precompyle's workers load; the rest of
# libpython3.X-stdlib's dependencies (ssl, sqlite, readline…) are not needed.
packages=(libc6 libgcc-s1 libexpat1 zlib1g libzstd1
    "python$version-minimal" "libpython$version-minimal" "libpython$version-stdlib")

mkdir -p "$dest.partial"
for package in "${packages[@]}"; do
    # "Filename SHA256" of the package's paragraph.
    read -r file sha < <(awk -v RS= -v p="$package" '
        $0 ~ "(^|\n)Package: " p "\n" {
            match($0, /\nFilename: [^\n]+/); f = substr($0, RSTART + 11, RLENGTH - 11)
            match($0, /\nSHA256: [^\n]+/); s = substr($0, RSTART + 9, RLENGTH - 9)
            print f, s; exit
        }' "$work/Packages") || true
    [[ -n ${file:-} ]] || { echo "debian-python: unstable has no package $package" >&2; exit 1; }
    fetch "$file" "$work/$package.deb"
    echo "$sha  $work/$package.deb" | sha256sum -c --quiet -
    dpkg-deb -x "$work/$package.deb" "$dest.partial"
    echo "debian-python: $(basename "$file")" >&2
done

cat >"$dest.partial/usr/bin/python$version-run" <<EOF
#!/bin/sh
# CPython $version from Debian unstable, under unstable's own glibc
# (written by scripts/debian-python.sh).
d=\$(cd "\$(dirname "\$0")/../.." && pwd)
exec "\$d/usr/lib64/ld-linux-x86-64.so.2" \\
    --library-path "\$d/usr/lib/x86_64-linux-gnu:\$d/lib/x86_64-linux-gnu" \\
    --argv0 "\$d/usr/bin/python$version-run" \\
    "\$d/usr/bin/python$version" "\$@"
EOF
chmod +x "$dest.partial/usr/bin/python$version-run"
# Debian ships the stdlib without pycs (its postinst compiles them): without
# them every start compiles what it imports (argparse: 0.13 s more per
# start, which the worker restarts of a run add up).
"$dest.partial/usr/bin/python$version-run" -m compileall -q -j0 "$dest.partial/usr/lib/python$version" >/dev/null || true
rm -rf "$dest"
mv "$dest.partial" "$dest"
"$wrapper" -c 'import sys; print("debian-python:", sys.version.split()[0], sys.executable, file=sys.stderr)'
echo "$wrapper"
