#!/usr/bin/env bash
# Unpack Debian 13 ("trixie") skopeo 1.18 with trixie's own glibc into DEST, without installing anything.
#
#   scripts/install-skopeo-trixie.sh [DEST]      (default ${XDG_CACHE_HOME:-$HOME/.cache}/sigscope/skopeo-trixie)
#
# Debian 12's skopeo 1.9.3 has sigstore (cosign-format) signing disabled by a Debian patch; trixie's is
# unpatched. Recipe (see /work/shared/TESTBED.md): a private apt state pointing at the machine's Debian mirror
# with suite trixie, `apt-get download` the .debs, `dpkg -x` them, and a wrapper that runs the binary through
# trixie's dynamic loader. Idempotent: a working install is reused. Prints the wrapper path (DEST/skopeo).
# Env: SIGSCOPE_DEBIAN_MIRROR overrides the mirror URI; SIGSCOPE_DEBIAN_SUITE overrides the suite (trixie).
set -euo pipefail

die() {
  echo "install-skopeo-trixie: error: $*" >&2
  exit 1
}

DEST="${1:-${XDG_CACHE_HOME:-$HOME/.cache}/sigscope/skopeo-trixie}"
SUITE="${SIGSCOPE_DEBIAN_SUITE:-trixie}"
# skopeo links libgpgme, libsqlite3 and libc; gpgme pulls libassuan and libgpg-error; libsqlite3 needs libm (libc6).
PACKAGES=(skopeo libc6 libgpgme11t64 libassuan9 libgpg-error0 libsqlite3-0)

case "$(uname -m)" in
  x86_64) ;;
  *) die "only x86_64 is supported (this machine is $(uname -m))" ;;
esac
command -v apt-get >/dev/null || die "apt-get not found (this script needs a Debian-based machine)"
command -v dpkg >/dev/null || die "dpkg not found"

# Returns success when DEST holds a working wrapper.
installed_ok() {
  [ -x "$DEST/skopeo" ] || return 1
  "$DEST/skopeo" --version 2>/dev/null | grep -q '^skopeo version '
}

mkdir -p "$(dirname "$DEST")" || die "cannot create $(dirname "$DEST")"
DEST="$(cd "$(dirname "$DEST")" && pwd)/$(basename "$DEST")"

if installed_ok; then
  echo "$DEST/skopeo"
  exit 0
fi

# Serialise concurrent installs (e.g. parallel test sessions) on a lock next to DEST.
if command -v flock >/dev/null; then
  exec 9>"$DEST.lock"
  flock 9
  if installed_ok; then
    echo "$DEST/skopeo"
    exit 0
  fi
fi

# -- the machine's Debian mirror ---------------------------------------------------------------------------
mirror_from_deb822() {
  # First URIs of a stanza that is not a security archive, from /etc/apt/sources.list.d/*.sources.
  local f
  for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    awk '
      /^[[:space:]]*$/ { if (uri != "" && suites !~ /security/ && uri !~ /security/ && types ~ /(^|[[:space:]])deb([[:space:]]|$)/) { print uri; exit }
                         uri = ""; suites = ""; types = ""; next }
      /^[[:space:]]*#/ { next }
      tolower($1) == "uris:" { uri = $2 }
      tolower($1) == "suites:" { $1 = ""; suites = $0 }
      tolower($1) == "types:" { $1 = ""; types = $0 " " }
      END { if (uri != "" && suites !~ /security/ && uri !~ /security/ && types ~ /(^|[[:space:]])deb([[:space:]]|$)/) print uri }
    ' "$f" | head -n 1
  done | head -n 1
}

mirror_from_list() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    awk '$1 == "deb" {
           i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/ && i < NF) i++; i++ }
           if ($(i) !~ /security/ && $(i + 1) !~ /security/) { print $(i); exit }
         }' "$f"
  done | head -n 1
}

MIRROR="${SIGSCOPE_DEBIAN_MIRROR:-}"
[ -n "$MIRROR" ] || MIRROR="$(mirror_from_deb822 || true)"
[ -n "$MIRROR" ] || MIRROR="$(mirror_from_list || true)"
[ -n "$MIRROR" ] || die "no Debian mirror found in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list (set SIGSCOPE_DEBIAN_MIRROR)"
MIRROR="${MIRROR%/}"

KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
SIGNED_BY=""
[ -r "$KEYRING" ] && SIGNED_BY="[signed-by=$KEYRING] "

# -- build in a scratch dir next to DEST, then rename into place ----------------------------------------------
STAGE="$(mktemp -d "$DEST.tmp.XXXXXX")"
cleanup() { rm -rf "$STAGE"; }
trap cleanup EXIT

APT_DIR="$STAGE/apt"
mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial" "$APT_DIR/empty.d" \
  "$STAGE/debs" "$STAGE/x" "$STAGE/rt"
echo "deb ${SIGNED_BY}${MIRROR} ${SUITE} main" >"$APT_DIR/sources.list"

APT_OPTS=(
  -o "Dir::Etc::sourcelist=$APT_DIR/sources.list"
  -o "Dir::Etc::sourceparts=$APT_DIR/empty.d"
  -o "Dir::Etc::preferences=$APT_DIR/empty.d/preferences"
  -o "Dir::Etc::preferencesparts=$APT_DIR/empty.d"
  -o "Dir::State::Lists=$APT_DIR/lists"
  -o "Dir::State::status=/dev/null"
  -o "Dir::Cache=$APT_DIR/cache"
  -o "Debug::NoLocking=1"
  -o "APT::Architecture=amd64"
  -o "APT::Architectures::=amd64"
)
# as root apt drops to _apt for downloads, which cannot write into a private dir under $HOME
[ "$(id -u)" -eq 0 ] && APT_OPTS+=(-o "APT::Sandbox::User=root")

echo "install-skopeo-trixie: fetching ${SUITE} package lists from ${MIRROR}" >&2
if ! apt-get "${APT_OPTS[@]}" -q update >"$STAGE/apt-update.log" 2>&1; then
  cat "$STAGE/apt-update.log" >&2
  die "apt-get update for ${SUITE} from ${MIRROR} failed (is the Debian mirror reachable?)"
fi
if grep -qE '^(W|E): ' "$STAGE/apt-update.log"; then
  grep -E '^(W|E): ' "$STAGE/apt-update.log" >&2
  if grep -qE 'NO_PUBKEY|not signed|is not valid' "$STAGE/apt-update.log"; then
    die "cannot authenticate the ${SUITE} archive (debian-archive-keyring older than 2023.3+deb12u1 lacks the trixie keys: apt-get install debian-archive-keyring)"
  fi
  if grep -qE '^E: |Failed to fetch|failed to download' "$STAGE/apt-update.log"; then
    die "apt-get update for ${SUITE} from ${MIRROR} failed (see above; is the Debian mirror reachable?)"
  fi
fi

echo "install-skopeo-trixie: downloading ${PACKAGES[*]}" >&2
if ! (cd "$STAGE/debs" && apt-get "${APT_OPTS[@]}" -q download "${PACKAGES[@]}") >"$STAGE/apt-download.log" 2>&1; then
  cat "$STAGE/apt-download.log" >&2
  die "apt-get download failed"
fi

for deb in "$STAGE"/debs/*.deb; do
  case "$(basename "$deb")" in
    skopeo_*) dpkg -x "$deb" "$STAGE/x" ;;
    *) dpkg -x "$deb" "$STAGE/rt" ;;
  esac
done

LOADER_REL="rt/usr/lib64/ld-linux-x86-64.so.2"
LIBS_REL="rt/usr/lib/x86_64-linux-gnu"
BIN_REL="x/usr/bin/skopeo"
[ -x "$STAGE/$BIN_REL" ] || die "skopeo binary missing from the ${SUITE} package"
[ -e "$STAGE/$LOADER_REL" ] || die "trixie loader missing ($LOADER_REL not in libc6)"

# every NEEDED library must resolve inside rt/ (no fallback to the host's older glibc)
if ! listing="$("$STAGE/$LOADER_REL" --library-path "$STAGE/$LIBS_REL" --list "$STAGE/$BIN_REL" 2>&1)"; then
  echo "$listing" >&2
  die "trixie loader cannot load skopeo"
fi
if echo "$listing" | grep -q 'not found'; then
  echo "$listing" >&2
  die "skopeo needs libraries not in the downloaded packages (see 'not found' above)"
fi

cat >"$STAGE/skopeo" <<'EOF'
#!/bin/sh
# skopeo from Debian trixie, run with trixie's glibc (written by scripts/install-skopeo-trixie.sh)
here="$(cd "$(dirname "$0")" && pwd)"
exec "$here/rt/usr/lib64/ld-linux-x86-64.so.2" --library-path "$here/rt/usr/lib/x86_64-linux-gnu" \
  "$here/x/usr/bin/skopeo" "$@"
EOF
chmod 755 "$STAGE/skopeo"
rm -rf "$APT_DIR" "$STAGE/debs" "$STAGE"/apt-*.log

version="$("$STAGE/skopeo" --version 2>&1)" || {
  echo "$version" >&2
  die "the unpacked skopeo does not run"
}
case "$version" in
  "skopeo version "*) ;;
  *) die "unexpected 'skopeo --version' output: $version" ;;
esac

chmod 755 "$STAGE"
rm -rf "$DEST"
mv "$STAGE" "$DEST"
trap - EXIT
echo "install-skopeo-trixie: $version in $DEST" >&2
echo "$DEST/skopeo"
