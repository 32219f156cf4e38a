#!/usr/bin/env bash
# CI: the container image of deploy/Dockerfile, proven without pulling a base image.
#
# 1. The CLI, built by the README's install command (`cargo install --locked --path examples
#    --bin sre-agent`, the release build .ci/install_paths.sh already made when it ran first).
# 2. The image's files, by deploy/image/assemble.sh: the same script the Dockerfile's builder
#    stage runs, so the file list is written once.
# 3. deploy/Dockerfile's final stage, built by buildah with TREE_FROM=prebuilt: the same COPY,
#    USER, WORKDIR, ENV and ENTRYPOINT lines, fed the files from 2 instead of the Rust image.
# 4. Checks: the image's config (a non-root numeric USER that /etc/passwd names, the entrypoint,
#    the data dir as WORKDIR), and its files are exactly assemble.sh's rootfs plus the data dir
#    owned by that USER (names, types, modes, owners, contents).
# 5. Inside the image: `sre-agent --version`, `demo --approve auto` (exit 0, writing its audit log
#    to the data dir) and `serve --help`. With podman: read-only root, no network, no capabilities,
#    no new privileges, the image's own user. Where the sandbox refuses containers, the same
#    commands run in a chroot of the image's file tree (read-only bind mount, a tmpfs /tmp, the
#    data dir mounted, the image's user, WORKDIR and environment). SRE_IMAGE_RUN=podman|chroot
#    forces one way (default auto: podman, else chroot); the log says which way it ran.
#    SRE_IMAGE_RUNTIME picks podman's OCI runtime (default runc).
# 6. The image size.
#
# Installs buildah, podman and runc with apt-get when they are missing. Everything it writes stays
# under target/ci-image (buildah's and podman's storage too) or in a private mount namespace that
# dies with it; the images and containers are removed at the end (SRE_IMAGE_KEEP=1 keeps them in
# target/ci-image/storage). Idempotent; runs as root; needs no stdin.
set -Eeuo pipefail

cd "$(dirname "$0")/.."
ROOT="$PWD"
WORK="$ROOT/target/ci-image"
IMAGE=localhost/sre-agent:ci
MODE="${SRE_IMAGE_RUN:-auto}"
# runc: crun (podman's default on Debian) refuses hybrid cgroup hierarchies such as this sandbox's.
RUNTIME="${SRE_IMAGE_RUNTIME:-runc}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

fail() { printf 'image.sh: %s\n' "$*" >&2; exit 1; }
timer() { printf '%s: %ss\n' "$1" "$((SECONDS - $2))"; }

case "$MODE" in auto | podman | chroot) ;; *) fail "SRE_IMAGE_RUN=$MODE: use podman, chroot or auto" ;; esac
[ "$(id -u)" -eq 0 ] || fail "run as root (buildah's storage, chroot and mounts need it)"

if [ -z "${SRE_IMAGE_PRIVATE_NS:-}" ]; then
  start=$SECONDS
  missing=()
  for tool in buildah podman "${SRE_IMAGE_RUNTIME:-runc}"; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  command -v objcopy >/dev/null || missing+=(binutils)
  [ -f /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing ${missing[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq </dev/null
    apt-get install -y -qq "${missing[@]}" </dev/null >/dev/null
    timer "apt-get install ${missing[*]}" "$start"
  fi
  # podman and buildah keep runtime state in /run and a cache in /var/lib/containers: give them
  # tmpfs there, in a mount namespace of this script's own.
  created=()
  if [ ! -d /var/lib/containers ]; then mkdir -p /var/lib/containers; created+=(/var/lib/containers); fi
  if unshare --mount --propagation private true 2>/dev/null; then
    code=0
    SRE_IMAGE_PRIVATE_NS=1 unshare --mount --propagation private bash "$0" "$@" || code=$?
    for d in "${created[@]}"; do rmdir "$d" 2>/dev/null || true; done
    exit "$code"
  fi
  echo "note: no private mount namespace here: podman's runtime state goes to /run and /var/lib/containers"
else
  mount -t tmpfs -o mode=0755 tmpfs /run
  mount -t tmpfs -o mode=0700 tmpfs /var/lib/containers
fi

# --- 1. the CLI -----------------------------------------------------------------------------------
start=$SECONDS
cargo install --locked --path examples --bin sre-agent --root target/ci-install --target-dir target
BIN="$ROOT/target/ci-install/bin/sre-agent"
timer "cargo install (release)" "$start"

# --- 2. the image's files -------------------------------------------------------------------------
rm -rf "$WORK/context" "$WORK/data" "$WORK/storage" "$WORK/tmp"
mkdir -p "$WORK/tmp"
deploy/image/assemble.sh "$BIN" "$WORK/context"
TREE="$WORK/context/rootfs"

# --- 3. the Dockerfile's final stage --------------------------------------------------------------
RT=$(mktemp -d) # runroot and podman's tmpdir: short paths (sockets live there)
export TMPDIR="$WORK/tmp"
BUILDAH=(buildah --root "$WORK/storage" --runroot "$RT/runroot" --storage-driver vfs)
PODMAN=(podman --root "$WORK/storage" --runroot "$RT/runroot" --tmpdir "$RT/libpod"
  --storage-driver vfs --cgroup-manager cgroupfs --events-backend file --runtime "$RUNTIME")
MNT=""
cleanup() {
  if [ -z "${SRE_IMAGE_KEEP:-}" ]; then
    "${PODMAN[@]}" rm --all --force >/dev/null 2>&1 || true
    "${BUILDAH[@]}" rm --all >/dev/null 2>&1 || true
    "${BUILDAH[@]}" rmi --all --force >/dev/null 2>&1 || true
    rm -rf "$WORK/storage"
  fi
  rm -rf "$RT" "$WORK/tmp"
}
trap cleanup EXIT

start=$SECONDS
"${BUILDAH[@]}" bud --build-arg TREE_FROM=prebuilt --file deploy/Dockerfile --tag "$IMAGE" "$WORK/context"
timer "buildah bud (final stage)" "$start"

# --- 4. config and files --------------------------------------------------------------------------
config() { "${BUILDAH[@]}" inspect --type image --format "$1" "$IMAGE"; }
USER_SPEC=$(config '{{.OCIv1.Config.User}}')
WORKDIR=$(config '{{.OCIv1.Config.WorkingDir}}')
ENTRYPOINT=$(config '{{range .OCIv1.Config.Entrypoint}}{{.}} {{end}}')
mapfile -t IMAGE_ENV < <(config '{{range .OCIv1.Config.Env}}{{println .}}{{end}}' | sed '/^$/d')
[[ "$USER_SPEC" =~ ^([1-9][0-9]*):([1-9][0-9]*)$ ]] || fail "the image's USER is '$USER_SPEC', expected a non-root numeric uid:gid"
RUN_UID="${BASH_REMATCH[1]}"
RUN_GID="${BASH_REMATCH[2]}"
grep -q "^[^:]*:x:$RUN_UID:$RUN_GID:[^:]*:$WORKDIR:" "$TREE/etc/passwd" || fail "/etc/passwd in the image has no user $USER_SPEC with home $WORKDIR"
[ "$ENTRYPOINT" = "/usr/local/bin/sre-agent " ] || fail "the image's entrypoint is '$ENTRYPOINT', expected /usr/local/bin/sre-agent"
[ "$WORKDIR" = /var/lib/sre-agent ] || fail "the image's WORKDIR is '$WORKDIR', expected the data dir /var/lib/sre-agent"
echo "image config: user $USER_SPEC, workdir $WORKDIR, entrypoint $ENTRYPOINT, env ${IMAGE_ENV[*]}"

CTR=$("${BUILDAH[@]}" from "$IMAGE")
MNT=$("${BUILDAH[@]}" mount "$CTR")
listing() { (cd "$1" && find . -mindepth 1 -printf '%p %y %m %U:%G\n' | sort); }
sums() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
expected() {
  listing "$TREE"
  echo ".$WORKDIR d $(stat -c %a "$WORK/context/data") $USER_SPEC"
  listing "$WORK/context/data" | sed "s|^\./|.$WORKDIR/|; s| [0-9]*:[0-9]*\$| $USER_SPEC|"
}
if ! diff <(expected | sort) <(listing "$MNT"); then
  fail "the image's files differ from assemble.sh's (the lines above: < expected, > image)"
fi
if ! diff <(sums "$TREE") <(sums "$MNT"); then
  fail "the contents of the image's files differ from assemble.sh's"
fi
echo "image files: exactly assemble.sh's rootfs and the data dir $WORKDIR owned by $USER_SPEC ($(listing "$MNT" | wc -l) entries)"

# --- 5. inside the image --------------------------------------------------------------------------
DATA="$WORK/data" # the data dir's volume
mkdir -p "$DATA"
chown "$RUN_UID:$RUN_GID" "$DATA"
chmod 0700 "$DATA"

podman_run() {
  "${PODMAN[@]}" run --rm --read-only --network none --cap-drop all \
    --security-opt no-new-privileges --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 \
    --volume "$DATA:$WORKDIR" "$IMAGE" "$@"
}
# The image's file tree, read-only, as the image's user, in its WORKDIR with its environment only.
chroot_run() {
  # shellcheck disable=SC2016 # the script's variables are its own, expanded inside
  env -i "${IMAGE_ENV[@]}" /usr/bin/unshare --mount --propagation private /bin/bash -c '
    set -e
    root=$1 data=$2 wd=$3 uid=$4 gid=$5
    shift 5
    /bin/mount --bind "$root" "$root"
    /bin/mount -o remount,bind,ro "$root"
    /bin/mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
    /bin/mount --bind "$data" "$root$wd"
    exec /usr/bin/unshare --root="$root" --wd="$wd" --setgid="$gid" --setuid="$uid" -- "$@"
  ' bash "$MNT" "$DATA" "$WORKDIR" "$RUN_UID" "$RUN_GID" /usr/local/bin/sre-agent "$@"
}

if [ "$MODE" = auto ]; then
  if probe=$(podman_run --version 2>&1); then
    MODE=podman
  else
    printf 'podman cannot run a container here:\n%s\nfalling back to a chroot of the image'"'"'s file tree\n' "$probe"
    MODE=chroot
  fi
fi
case "$MODE" in
  podman) HOW="podman run ($RUNTIME; --read-only, --network none, --cap-drop all, no-new-privileges, user $USER_SPEC from the image)" ;;
  chroot) HOW="chroot of the image's file tree (read-only bind mount, tmpfs /tmp, user $USER_SPEC, WORKDIR and Env from the image)" ;;
esac
in_image() { "${MODE}_run" "$@"; }
echo "running inside the image by: $HOW"

start=$SECONDS
out=$(in_image --version)
want=$("$BIN" --version)
[ "$out" = "$want" ] || fail "sre-agent --version in the image printed '$out', expected '$want'"
echo "in the image: $out"

code=0
in_image demo --approve auto --audit audit.jsonl >"$WORK/demo.txt" 2>&1 || code=$?
if [ "$code" -ne 0 ] || ! grep -q '^exit code 0: resolved' "$WORK/demo.txt"; then
  cat "$WORK/demo.txt" >&2
  fail "demo --approve auto in the image exited $code, expected 0 (resolved)"
fi
[ -f "$DATA/audit.jsonl" ] || fail "the demo's audit log did not reach the data dir ($WORKDIR/audit.jsonl)"
owner=$(stat -c %u:%g "$DATA/audit.jsonl")
[ "$owner" = "$RUN_UID:$RUN_GID" ] || fail "the audit log was written by $owner, expected the image's user $USER_SPEC"
"$BIN" audit verify "$DATA/audit.jsonl" >/dev/null || fail "the audit log the demo wrote in the image does not verify"
echo "in the image: demo --approve auto: exit 0, resolved; audit log written by $owner to the data dir, verified"

code=0
in_image serve --help >"$WORK/serve-help.txt" 2>&1 || code=$?
if [ "$code" -ne 0 ] || ! grep -q '^Usage: sre-agent serve' "$WORK/serve-help.txt"; then
  cat "$WORK/serve-help.txt" >&2
  fail "serve --help in the image exited $code"
fi
echo "in the image: serve --help: exit 0"
timer "runs inside the image" "$start"

# --- 6. size --------------------------------------------------------------------------------------
bytes=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE")
gz=$(tar -C "$MNT" --numeric-owner -cf - . | gzip -6 | wc -c)
printf 'image %s: %s bytes (%s MiB) uncompressed, %s MiB as a gzip layer; ran by %s\n' \
  "$IMAGE" "$bytes" "$((bytes / 1048576))" "$((gz / 1048576))" "$MODE"
