#!/usr/bin/env bash
# Build the real peers pinned in scripts/peers.txt (cosign, notation, oras, distribution's registry, regctl …)
# from the Go module proxy into a cache shared by every checkout on the machine:
#
#   scripts/install-peers.sh [--strict] [--list] [--measure] [NAME ...]
#
#   cache:  ${SIGSCOPE_PEERS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sigscope/peers}/NAME-VERSION/TOOL
#
# Each peer is `GOBIN=<cache>/NAME-VERSION go install [-tags …] MODULE@VERSION`, built only when its binary is
# missing (idempotent; concurrent runs serialise on a lock per peer). A build prints how long it took and
# whether Go's build cache was cold; the figure is also kept in <cache>/NAME-VERSION/BUILD.
# When the proxy serves MODULE@VERSION but refuses its version list (go install then fails while "loading
# deprecation"), or MODULE's go.mod has replace directives (go install refuses those: etcd), the same package
# is built from a wrapper module requiring exactly MODULE VERSION (kept in <cache>/NAME-VERSION/wrapper).
# Options: bin=NAME names the binary when the package path does not end in it (go.etcd.io/etcd/server/v3);
# staging=V builds from the wrapper at once, pinning every module that MODULE's go.mod replaces with
# ./staging/src/… to V (k8s.io/kubernetes requires its staging modules at v0.0.0: k8s.io/api v0.37.2 …), and
# stamps the release into k8s.io/component-base/version as Kubernetes' own build does.
#
# A failing build prints go's own output and the script carries on with the other peers. The exit status is 0
# anyway unless --strict (or SIGSCOPE_PEERS_STRICT=1) is given: setup.sh must not stop for one peer, and the
# tests needing a missing peer skip locally and fail under CI=true with a line naming this script.
# --list prints NAME VERSION STATUS PATH for each peer (installed/missing) and the recorded build time.
# --measure times a cold build of each (an empty private GOCACHE; modules already downloaded), installs nothing.
# Env: GO (the go command; default `go` on PATH, else /usr/local/go/bin/go).
set -uo pipefail
cd "$(dirname "$0")/.."

STRICT="${SIGSCOPE_PEERS_STRICT:-0}"
LIST=0
MEASURE=0
ONLY=()
for arg in "$@"; do
  case "$arg" in
    --strict) STRICT=1 ;;
    --list) LIST=1 ;;
    --measure) MEASURE=1 ;;
    -h | --help)
      sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    -*)
      echo "install-peers: unknown option $arg" >&2
      exit 2
      ;;
    *) ONLY+=("$arg") ;;
  esac
done

PEERS_FILE="scripts/peers.txt"
CACHE="${SIGSCOPE_PEERS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sigscope/peers}"

wanted() {
  [ "${#ONLY[@]}" -eq 0 ] && return 0
  local n
  for n in "${ONLY[@]}"; do [ "$n" = "$1" ] && return 0; done
  return 1
}

# NAME MODULE/cmd/TOOL VERSION [tags=…] [cgo=1] [bin=…] [staging=…], comments and blank lines skipped.
mapfile -t LINES < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$PEERS_FILE")

# tool_name PKG "OPTS": the binary's name: bin=NAME, else the package path's last element.
tool_name() {
  local opt
  for opt in $2; do
    case "$opt" in bin=*)
      echo "${opt#bin=}"
      return
      ;;
    esac
  done
  echo "${1##*/}"
}

if [ "$LIST" = 1 ]; then
  for line in "${LINES[@]}"; do
    read -r name pkg version opts <<<"$line"
    wanted "$name" || continue
    bin="$CACHE/$name-$version/$(tool_name "$pkg" "$opts")"
    if [ -x "$bin" ]; then
      echo "$name $version installed $bin $(cat "$CACHE/$name-$version/BUILD" 2>/dev/null)"
    else
      echo "$name $version missing $bin"
    fi
  done
  exit 0
fi

GO_CMD="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
if ! [ -x "$GO_CMD" ] && ! command -v "$GO_CMD" >/dev/null; then
  echo "install-peers: Go not found (set GO= or install Go): peers not built; tests needing them skip (fail under CI=true)" >&2
  [ "$STRICT" = 1 ] && exit 1
  exit 0
fi

mkdir -p "$CACHE" || {
  echo "install-peers: cannot create $CACHE" >&2
  exit 1
}

# "cold (empty)" or "warm (N MiB)": the state of Go's build cache just before a build.
gocache_state() {
  local dir size
  dir="$("$GO_CMD" env GOCACHE 2>/dev/null)"
  if [ -z "$dir" ] || ! [ -d "$dir" ] || [ -z "$(ls -A "$dir" 2>/dev/null | grep -v -e '^README$' -e '^trim.txt$')" ]; then
    echo "cold (empty)"
    return
  fi
  size="$(du -sm "$dir" 2>/dev/null | cut -f1)"
  echo "warm (${size:-?} MiB)"
}

# wrapper_build MODULE VERSION PKG STAGING OUT TOOL LOG: `go build` PKG in a module requiring exactly MODULE
# VERSION (with STAGING: every ./staging/src/P that MODULE's go.mod replaces pinned to P STAGING); the wrapper
# is kept beside OUT. Appends go's output to LOG; uses `args`, `envs`, `tags` and `timing` of build_peer.
wrapper_build() {
  local module="$1" version="$2" pkg="$3" staging="$4" out="$5" tool="$6" log="$7" wrap gomod p
  wrap="$(dirname "$out")/wrapper"
  rm -rf "$wrap" && mkdir -p "$wrap"
  printf 'module sigscope.local/peer-%s\n\ngo %s\n\nrequire %s %s\n' "$name" \
    "$("$GO_CMD" env GOVERSION | sed 's/^go//')" "$module" "$version" >"$wrap/go.mod"
  if [ -n "$staging" ]; then
    gomod="$(cd "$wrap" && "$GO_CMD" mod download -json "$module@$version" 2>>"$log" \
      | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
    [ -f "$gomod" ] || return 1
    for p in $(sed -n 's#^[[:space:]]*\([^[:space:]]*\) => \./staging/src/.*#\1#p' "$gomod"); do
      printf 'replace %s => %s %s\n' "$p" "$p" "$staging" >>"$wrap/go.mod"
    done
  fi
  args=(build -mod=mod -o "$out/$tool")
  [ -n "$tags" ] && args+=(-tags "${tags//,/ }")
  # what `kube-apiserver --version` and /version report (the release's own build stamps it so)
  [ -n "$staging" ] && args+=(-ldflags "-X k8s.io/component-base/version.gitVersion=$version")
  args+=("$pkg")
  COMMAND="(cd $wrap && env ${envs[*]} $GO_CMD ${args[*]})"
  { time (cd "$wrap" && env "${envs[@]}" "$GO_CMD" "${args[@]}" >>"$log" 2>&1); } 2>>"$timing" \
    && [ -x "$out/$tool" ]
}

# build_peer NAME PKG VERSION "OPTS" OUTDIR LOG: go install (or the wrapper-module build) into OUTDIR.
# Sets BUILT=1 on success, HOW (the method), REAL and CPU (wall-clock and user+sys seconds of the go command).
build_peer() {
  local name="$1" pkg="$2" version="$3" opts="$4" out="$5" log="$6"
  local tool tags="" cgo="" staging="" opt module timing
  tool="$(tool_name "$pkg" "$opts")"
  module="${pkg%%/cmd/*}"
  for opt in $opts; do
    case "$opt" in
      tags=*) tags="${opt#tags=}" ;;
      cgo=*) cgo="${opt#cgo=}" ;;
      staging=*) staging="${opt#staging=}" ;;
      bin=*) ;;
      *) echo "install-peers: $name: unknown option '$opt' in $PEERS_FILE" >&2 ;;
    esac
  done
  local args=(install) envs=(GOBIN="$out")
  [ -n "$tags" ] && args+=(-tags "${tags//,/ }")
  args+=("$pkg@$version")
  [ -n "$cgo" ] && envs+=(CGO_ENABLED="$cgo")
  BUILT=0
  timing="$(mktemp)"
  local TIMEFORMAT='%R %U %S'
  : >"$log"
  if [ -n "$staging" ]; then
    HOW="go build in a module requiring $module $version, its staging modules at $staging"
    wrapper_build "$module" "$version" "$pkg" "$staging" "$out" "$tool" "$log" && BUILT=1
  else
    HOW="go install"
    COMMAND="env ${envs[*]} $GO_CMD ${args[*]}"
    { time (env "${envs[@]}" "$GO_CMD" "${args[@]}" >"$log" 2>&1); } 2>"$timing" && [ -x "$out/$tool" ] && BUILT=1
  fi
  if [ "$BUILT" = 0 ] && grep -q -e 'loading deprecation' -e '/@v/list' -e 'replace directives' "$log"; then
    # `go install M@V` also asks the proxy for M's version list (to look for a deprecation notice), and
    # refuses a module whose go.mod replaces anything: build the same package from a wrapper module requiring
    # exactly M V (the build list is M's own go.mod's requirements, as with go install).
    HOW="go build in a module requiring $module $version (go install refused)"
    echo "install-peers: go install refused; retrying in a wrapper module" >>"$log"
    wrapper_build "$module" "$version" "$pkg" "" "$out" "$tool" "$log" && BUILT=1
  fi
  # the sum over both attempts
  read -r REAL CPU < <(awk '{ r += $1; c += $2 + $3 } END { printf "%.0f %.0f\n", r, c }' "$timing")
  rm -f "$timing"
}

if [ "$MEASURE" = 1 ]; then
  # Cold builds: an empty private GOCACHE per peer (the module cache is shared: downloads are not timed,
  # `go mod download` them first), binaries thrown away; nothing installed changes.
  for line in "${LINES[@]}"; do
    read -r name pkg version opts <<<"$line"
    wanted "$name" || continue
    scratch="$(mktemp -d)"
    GOCACHE="$scratch/gocache" build_peer "$name" "$pkg" "$version" "$opts" "$scratch/bin" "$scratch/build.log"
    if [ "$BUILT" = 1 ]; then
      echo "install-peers: measure: $name $version cold build (empty GOCACHE): ${REAL} s wall, ${CPU} s CPU on $(nproc) cores, by $HOW"
    else
      echo "install-peers: measure: $name $version FAILED: $COMMAND" >&2
      sed 's/^/  | /' "$scratch/build.log" >&2
    fi
    rm -rf "$scratch"
  done
  exit 0
fi

failed=()
for line in "${LINES[@]}"; do
  read -r name pkg version opts <<<"$line"
  wanted "$name" || continue
  tool="$(tool_name "$pkg" "$opts")"
  dest="$CACHE/$name-$version"
  [ -x "$dest/$tool" ] && continue
  mkdir -p "$dest"
  exec 9>"$dest.lock"
  command -v flock >/dev/null && flock 9
  if [ -x "$dest/$tool" ]; then # another run built it while we waited
    exec 9>&-
    continue
  fi
  state="$(gocache_state)"
  log="$dest/build.log"
  echo "install-peers: building $name $version (GOCACHE $state) ..." >&2
  build_peer "$name" "$pkg" "$version" "$opts" "$dest/.tmp.$$" "$log"
  if [ "$BUILT" = 1 ]; then
    mv -f "$dest/.tmp.$$/$tool" "$dest/$tool"
    rm -rf "$dest/.tmp.$$"
    summary="built in ${REAL} s (${CPU} s CPU) by $HOW with $("$GO_CMD" env GOVERSION), GOCACHE $state before, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores"
    echo "$summary" >"$dest/BUILD"
    echo "install-peers: $name $version $summary -> $dest/$tool" >&2
  else
    rm -rf "$dest/.tmp.$$"
    echo "install-peers: FAILED $name $version: $COMMAND (log: $log)" >&2
    sed 's/^/  | /' "$log" >&2
    failed+=("$name")
  fi
  exec 9>&-
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "install-peers: not built: ${failed[*]} (tests needing them skip, or fail under CI=true)" >&2
  [ "$STRICT" = 1 ] && exit 1
fi
exit 0
