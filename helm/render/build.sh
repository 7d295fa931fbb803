#!/bin/sh
# Builds the chart renderer offline from Debian's Go packages:
#   apt-get install golang-go golang-github-masterminds-sprig-dev golang-gopkg-yaml.v3-dev
# Debian installs sprig v3 and semver v3 without the /v3 in their paths, so GOPATH mode finds them
# through two links in a scratch GOPATH. Usage: build.sh OUTPUT_BINARY
set -eu
out="${1:?usage: build.sh OUTPUT_BINARY}"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
mkdir -p "$(dirname "$out")"
here="$(cd "$(dirname "$0")" && pwd)"
gocode="${DEBIAN_GOCODE:-/usr/share/gocode}"
if ! command -v go >/dev/null 2>&1 || [ ! -d "$gocode/src/github.com/Masterminds/sprig" ]; then
  echo "render: needs Go and sprig: apt-get install -y golang-go golang-github-masterminds-sprig-dev golang-gopkg-yaml.v3-dev" >&2
  exit 1
fi
links="$(mktemp -d)"
trap 'rm -rf "$links"' EXIT
mkdir -p "$links/src/github.com/Masterminds/sprig" "$links/src/github.com/Masterminds/semver"
ln -s "$gocode/src/github.com/Masterminds/sprig" "$links/src/github.com/Masterminds/sprig/v3"
ln -s "$gocode/src/github.com/Masterminds/semver" "$links/src/github.com/Masterminds/semver/v3"
cd "$here"
GO111MODULE=off GOPATH="$links:$gocode" GOPROXY=off GOFLAGS= go build -o "$out" .
