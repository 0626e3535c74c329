#!/usr/bin/env bash
# Release builds of wardgate: a static binary for linux/amd64 and one for
# linux/arm64, and a Debian package of each (nfpm, pinned below).
#
#   cmd/wardgate/release/build.sh [-o DIR] [-a "amd64 arm64"] [-n]
#
#   -o DIR   where to put them (default cmd/wardgate/release/dist):
#            DIR/linux-ARCH/wardgate, DIR/wardgate_VERSION_ARCH.deb,
#            DIR/wardgate.yaml (the packaged example config)
#   -a LIST  the architectures (default "amd64 arm64")
#   -n       binaries only, no packages
#
# VERSION (a semantic version, v1.2.0) names the release; without it the
# build is v0.0.0-git.gCOMMIT. The commit is stamped too: `wardgate version`
# and wardgate_build_info in /metrics show both.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"

nfpm=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0

out=$here/dist arches="amd64 arm64" packages=1
while getopts o:a:n opt; do
  case $opt in
    o) out=$OPTARG ;;
    a) arches=$OPTARG ;;
    n) packages= ;;
    *) sed -n '2,16p' "$0" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
out=$(cd "$out" && pwd)

commit=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)
if [ "$commit" != unknown ] && [ -n "$(git -C "$root" status --porcelain --untracked-files=no)" ]; then
  commit+=-modified
fi
version=${VERSION:-v0.0.0-git.g${commit:0:12}}
version=${version%-modified}  # semver: the mark stays on the commit
stamp=github.com/wardgate/wardgate/edge/build

for arch in $arches; do
  echo "build.sh: wardgate $version linux/$arch (static)"
  (cd "$root" && CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -buildvcs=false \
    -ldflags "-s -w -X $stamp.version=$version -X $stamp.commit=$commit" \
    -o "$out/linux-$arch/wardgate" ./cmd/wardgate)
done

# The packaged config is the README's example (which edge/config's tests
# load), with a header, and without profiles_dir (no such folder yet).
{
  cat <<'HEAD'
# wardgate's configuration. This is the example from the README
# (/usr/share/doc/wardgate/README.md, "Configuration"), every key explained
# there: set this ward's site, FHIR server, monitors and modalities, then
#
#   wardgate check -config /etc/wardgate/wardgate.yaml
#   systemctl restart wardgate
#
# Secrets never go in this file: *_file keys name files that hold them.

HEAD
  awk '/<!-- example-config/ {m=1; next} m==1 && /^```yaml/ {m=2; next} m==2 && /^```/ {exit} m==2 {print}' "$root/README.md" |
    sed -e 's|^profiles_dir:|# profiles_dir:|'
} > "$out/wardgate.yaml"
grep -q '^site:' "$out/wardgate.yaml" || { echo "build.sh: no example config found in README.md" >&2; exit 1; }

[ -n "$packages" ] || exit 0
for arch in $arches; do
  echo "build.sh: wardgate_${version#v}_$arch.deb"
  (cd "$here" && ARCH=$arch VERSION=$version DIST=$out GOFLAGS= \
    go run "$nfpm" package --config nfpm.yaml --packager deb --target "$out/")
done
ls -l "$out"/*.deb
