#!/usr/bin/env bash
# Offline Terraform toolchain for datapipe-cdk: OpenTofu + the three real providers,
# built from their Go modules, a filesystem mirror + CLI config, and cdktf-cli from npm.
#
# Idempotent: everything lives under ${DATAPIPE_CACHE:-$HOME/.cache/datapipe-cdk}/toolchain
# and a warm re-run skips every step whose stamp matches.
#
# Usage: datapipe_cdk/local/assets/toolchain.sh [--no-google] [--no-cdktf]   (make toolchain, datapipe local setup)
#   then: . "${DATAPIPE_CACHE:-$HOME/.cache/datapipe-cdk}/toolchain/env.sh"
set -euo pipefail

ASSETS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
. "$ASSETS/versions.env"

CACHE_ROOT="${DATAPIPE_CACHE:-$HOME/.cache/datapipe-cdk}"
TC="$CACHE_ROOT/toolchain"
BIN="$TC/bin"
SRC="$TC/src"
LOGS="$TC/logs"
MIRROR="$TC/mirror"
NPM_DIR="$TC/npm"
TIMINGS="$LOGS/timings.tsv"

WITH_GOOGLE=1
WITH_CDKTF=1
for arg in "$@"; do
  case "$arg" in
    --no-google) WITH_GOOGLE=0 ;;
    --no-cdktf) WITH_CDKTF=0 ;;
    -h | --help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "error: unknown option $arg (known: --no-google --no-cdktf)" >&2; exit 2 ;;
  esac
done

T0=$SECONDS
step() { printf '[toolchain %4ss] %s\n' "$((SECONDS - T0))" "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

mkdir -p "$BIN" "$SRC" "$LOGS" "$MIRROR" "$TC/plugin-cache" # cache: never inside the mirror

# ---------------------------------------------------------------- Go environment
command -v go >/dev/null 2>&1 || die "Go not found on PATH; install Go >= $GO_MIN_VERSION and re-run \`make toolchain\`"
GO_VERSION="$(go env GOVERSION)"
GO_VERSION="${GO_VERSION#go}"
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | sed -n 1p)" = "$2" ]; }
version_ge "$GO_VERSION" "$GO_MIN_VERSION" ||
  die "Go $GO_VERSION is too old (OpenTofu $TOFU_VERSION needs >= $GO_MIN_VERSION); install a newer Go and re-run \`make toolchain\`"

export GOMODCACHE="$TC/go/mod"
export GOCACHE="$TC/go/cache"
export GOTOOLCHAIN=local # never fetch another Go toolchain
export CGO_ENABLED=0
export GOFLAGS="-buildvcs=false -mod=readonly -p=${DATAPIPE_GO_PARALLEL:-$(nproc)}"
PLATFORM="$(go env GOOS)_$(go env GOARCH)"
step "go $GO_VERSION ($PLATFORM), GOCACHE=$GOCACHE"

# module_dir MODULE VERSION -> prints the unpacked (read-only) module directory
module_dir() {
  local json dir
  json="$(cd "$TC" && go mod download -json "$1@$2" 2>&1)" || true
  dir="$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
  if [ -z "$dir" ] || [ ! -d "$dir" ]; then
    local err
    err="$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Error": "\(.*\)",\{0,1\}$/\1/p')"
    die "cannot download Go module $1@$2 (${err:-$(printf '%s' "$json" | tr '\n' ' ' | cut -c1-300)})"
  fi
  printf '%s\n' "$dir"
}

# timed NAME LOG CMD... : runs CMD under /usr/bin/time -v, appends wall/peak RSS to timings.tsv
timed() {
  local name="$1" log="$2"
  shift 2
  local start=$SECONDS rc=0
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -v -o "$log.time" "$@" >"$log" 2>&1 || rc=$?
  else
    "$@" >"$log" 2>&1 || rc=$?
  fi
  local rss="?"
  [ -f "$log.time" ] && rss="$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$log.time")"
  printf '%s\t%s\t%ss\t%sKB\trc=%s\n' "$(date -u +%FT%TZ)" "$name" "$((SECONDS - start))" "$rss" "$rc" >>"$TIMINGS"
  return $rc
}

# build_go NAME MODULE MODVERSION PKG OUTPUT LDFLAGS
build_go() {
  local name="$1" module="$2" modver="$3" pkg="$4" out="$5" ldflags="$6"
  local key="$module@$modver pkg=$pkg go=$GO_VERSION flags=$GOFLAGS ldflags=$ldflags"
  if [ -x "$out" ] && [ -f "$out.stamp" ] && [ "$(cat "$out.stamp")" = "$key" ]; then
    step "$name: up to date ($(basename "$out"))"
    return 0
  fi
  step "$name: fetching $module@$modver"
  local moddir workdir="$SRC/$name-$modver"
  moddir="$(module_dir "$module" "$modver")"
  rm -rf "$workdir"
  cp -r "$moddir" "$workdir"
  chmod -R u+w "$workdir"
  local log="$LOGS/$name-build.log"
  step "$name: downloading dependencies"
  (cd "$workdir" && timed "$name-deps" "$LOGS/$name-deps.log" go list -deps "$pkg") ||
    die "$name: dependency download failed; see $LOGS/$name-deps.log"
  step "$name: go build $pkg (log: $log)"
  (cd "$workdir" && timed "$name-build" "$log" go build -trimpath -ldflags "$ldflags" -o "$out.tmp" "$pkg") ||
    die "$name: build failed; see $log"
  mv -f "$out.tmp" "$out"
  printf '%s' "$key" >"$out.stamp"
  rm -rf "$workdir" # sources stay in GOMODCACHE; compiled packages in GOCACHE
  step "$name: built $(basename "$out") ($(du -h "$out" | cut -f1), $(tail -n1 "$TIMINGS" | cut -f3,4))"
}

# mirror_provider NAMESPACE TYPE VERSION BINARY
mirror_provider() {
  local ns="$1" type="$2" ver="$3" binary="$4" host dir
  for host in registry.opentofu.org registry.terraform.io; do
    dir="$MIRROR/$host/$ns/$type/$ver/$PLATFORM"
    mkdir -p "$dir"
    ln -f "$binary" "$dir/terraform-provider-${type}_v$ver"
  done
}

# ---------------------------------------------------------------- OpenTofu
TOFU_BIN="$BIN/tofu-$TOFU_VERSION"
build_go tofu "$TOFU_MODULE" "v$TOFU_VERSION" ./cmd/tofu "$TOFU_BIN" \
  "-s -w -X github.com/opentofu/opentofu/version.dev=no"
ln -sf "tofu-$TOFU_VERSION" "$BIN/tofu"

# ---------------------------------------------------------------- providers
PROV="$BIN/providers"
mkdir -p "$PROV"
build_go kafka "$KAFKA_MODULE" "v$KAFKA_VERSION" . "$PROV/terraform-provider-kafka_v$KAFKA_VERSION" "-s -w"
mirror_provider mongey kafka "$KAFKA_VERSION" "$PROV/terraform-provider-kafka_v$KAFKA_VERSION"

build_go kafka-connect "$KAFKA_CONNECT_MODULE" "v$KAFKA_CONNECT_VERSION" . \
  "$PROV/terraform-provider-kafka-connect_v$KAFKA_CONNECT_VERSION" "-s -w"
mirror_provider mongey kafka-connect "$KAFKA_CONNECT_VERSION" "$PROV/terraform-provider-kafka-connect_v$KAFKA_CONNECT_VERSION"

if [ "$WITH_GOOGLE" = 1 ]; then
  build_go google "$GOOGLE_MODULE" "$GOOGLE_MODULE_VERSION" . "$PROV/terraform-provider-google_v$GOOGLE_VERSION" \
    "-s -w -X github.com/hashicorp/terraform-provider-google/version.ProviderVersion=$GOOGLE_VERSION"
  mirror_provider hashicorp google "$GOOGLE_VERSION" "$PROV/terraform-provider-google_v$GOOGLE_VERSION"
else
  step "google: skipped (--no-google)"
fi

# ---------------------------------------------------------------- mirror check + CLI config
step "mirror: checking $MIRROR"
expect=("mongey/kafka/$KAFKA_VERSION" "mongey/kafka-connect/$KAFKA_CONNECT_VERSION")
[ "$WITH_GOOGLE" = 1 ] && expect+=("hashicorp/google/$GOOGLE_VERSION")
for host in registry.opentofu.org registry.terraform.io; do
  for e in "${expect[@]}"; do
    type="${e#*/}"
    type="${type%/*}"
    f="$MIRROR/$host/$e/$PLATFORM/terraform-provider-${type}_v${e##*/}"
    [ -x "$f" ] || die "mirror incomplete: $f missing; re-run \`make toolchain\`"
  done
done
# stale versions (pins changed since the last run) would make `tofu init` ambiguous
while IFS= read -r d; do
  rel="${d#"$MIRROR"/*/}"
  keep=0
  for e in "${expect[@]}"; do [ "$rel" = "$e" ] && keep=1; done
  if [ "$keep" = 0 ]; then
    step "mirror: removing stale $d"
    rm -rf "$d"
  fi
done < <(find "$MIRROR" -mindepth 4 -maxdepth 4 -type d)

TFRC="$TC/tofurc.tfrc"
cat >"$TFRC.tmp" <<EOF
# Generated by datapipe_cdk/local/assets/toolchain.sh - offline provider installation only (no direct block).
disable_checkpoint = true
provider_installation {
  filesystem_mirror {
    path    = "$MIRROR"
    include = [
      "registry.opentofu.org/mongey/kafka",
      "registry.opentofu.org/mongey/kafka-connect",
      "registry.opentofu.org/hashicorp/google",
      "registry.terraform.io/mongey/kafka",
      "registry.terraform.io/mongey/kafka-connect",
      "registry.terraform.io/hashicorp/google",
    ]
  }
}
EOF
mv -f "$TFRC.tmp" "$TFRC"
step "config: $TFRC"

# ---------------------------------------------------------------- cdktf-cli (npm ci)
if [ "$WITH_CDKTF" = 1 ]; then
  command -v npm >/dev/null 2>&1 || die "npm not found on PATH; install Node.js >= 20 and re-run \`make toolchain\`"
  [ -f "$ASSETS/package-lock.json" ] || die "package-lock.json missing in $ASSETS"
  lock_sum="$(cat "$ASSETS/package.json" "$ASSETS/package-lock.json" | sha256sum | cut -d' ' -f1)"
  if [ -x "$NPM_DIR/node_modules/.bin/cdktf" ] && [ "$(cat "$NPM_DIR/.stamp" 2>/dev/null)" = "$lock_sum" ]; then
    step "cdktf-cli: up to date"
  else
    step "cdktf-cli: npm ci (cdktf-cli@$CDKTF_CLI_VERSION, log: $LOGS/npm-ci.log)"
    mkdir -p "$NPM_DIR"
    cp "$ASSETS/package.json" "$ASSETS/package-lock.json" "$NPM_DIR/"
    (cd "$NPM_DIR" && timed npm-ci "$LOGS/npm-ci.log" npm ci --no-audit --no-fund) ||
      die "cdktf-cli: npm ci failed; see $LOGS/npm-ci.log"
    printf '%s' "$lock_sum" >"$NPM_DIR/.stamp"
  fi
else
  step "cdktf-cli: skipped (--no-cdktf)"
fi

# ---------------------------------------------------------------- env.sh + smoke check
ENV_SH="$TC/env.sh"
cat >"$ENV_SH.tmp" <<EOF
# Generated by datapipe_cdk/local/assets/toolchain.sh - source it: . "$ENV_SH"
export DATAPIPE_TOOLCHAIN_DIR="$TC"
export PATH="$BIN:$NPM_DIR/node_modules/.bin:\$PATH"
export TF_CLI_CONFIG_FILE="$TFRC"
export TF_PLUGIN_CACHE_DIR="$TC/plugin-cache"
export TERRAFORM_BINARY_NAME=tofu
export CHECKPOINT_DISABLE=1
export TF_IN_AUTOMATION=1
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="\${JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION:-18,20}"
EOF
mv -f "$ENV_SH.tmp" "$ENV_SH"

got="$(TF_CLI_CONFIG_FILE="$TFRC" CHECKPOINT_DISABLE=1 "$BIN/tofu" version | sed -n 1p)"  # sed reads it all: no SIGPIPE under pipefail
[ "$got" = "OpenTofu v$TOFU_VERSION" ] || die "tofu reports '$got', expected 'OpenTofu v$TOFU_VERSION'; re-run \`make toolchain\`"
step "ready: $got; source $ENV_SH ($(du -sh "$TC" | cut -f1) in $TC)"
