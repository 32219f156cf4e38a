#!/usr/bin/env bash
# Assembles the runtime files of the sre-agent image: the one list of what the image holds.
#
#   deploy/image/assemble.sh [--trivy TRIVY] BINARY OUT
#
# Both builds of the image use it: deploy/Dockerfile's builder stage (on the official Rust image)
# and .ci/image.sh (on the binary CI built). Whatever the image should hold is changed here, once.
#
# OUT/rootfs, copied to / as it is (root owns it all, read-only to the agent):
#   /usr/local/bin/sre-agent         BINARY, debug info stripped (symbols kept for backtraces)
#   /usr/local/bin/trivy             with --trivy: a statically linked trivy
#   /lib…, /lib64/…                  the shared libraries BINARY links, as `ldd` resolves them
#   /etc/ssl/certs/ca-certificates.crt   the CA bundle (TLS to providers, registries, Vault…)
#   /etc/passwd, /etc/group          root and the non-root user sre-agent (65532:65532)
#   /etc/nsswitch.conf               files, then DNS (what glibc's resolver reads)
#   /tmp                             1777, a mount point for a writable tmpfs / emptyDir
# OUT/data, copied to the data dir /var/lib/sre-agent owned by 65532 (WORKDIR and HOME; the only
# place the agent writes: serve's sqlite store, audit logs). It is apart because an image build
# cannot change the owner of a directory an earlier COPY made: the data dir must come from its own
# `COPY --chown`.
set -Eeuo pipefail

UID_GID=65532
DATA_DIR=/var/lib/sre-agent
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

die() { printf 'assemble.sh: %s\n' "$*" >&2; exit 1; }

trivy=""
while [ $# -gt 0 ]; do
  case "$1" in
    --trivy) [ $# -ge 2 ] || die "--trivy needs a path"; trivy="$2"; shift 2 ;;
    -h | --help) sed -n '2,/^set -Eeuo/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    --) shift; break ;;
    -*) die "unknown option $1 (usage: assemble.sh [--trivy TRIVY] BINARY OUT)" ;;
    *) break ;;
  esac
done
[ $# -eq 2 ] || die "usage: assemble.sh [--trivy TRIVY] BINARY OUT"
binary="$1"
out="$2"

{ [ -f "$binary" ] && [ -x "$binary" ]; } || die "$binary is not an executable file (build it first: cargo install --locked --path examples --bin sre-agent)"
[ -z "$trivy" ] || { [ -f "$trivy" ] && [ -x "$trivy" ]; } || die "--trivy $trivy is not an executable file"
[ -f "$CA_BUNDLE" ] || die "$CA_BUNDLE is missing: install Debian's ca-certificates"
command -v ldd >/dev/null || die "ldd is missing (Debian: libc-bin)"
command -v objcopy >/dev/null || die "objcopy is missing (Debian: binutils)"
# Never deletes: a typo'd OUT must not cost a directory.
if [ -e "$out" ] && [ -n "$(ls -A "$out")" ]; then
  die "$out exists and is not empty: give a new or empty directory"
fi

# The shared libraries an executable links, as absolute paths (the dynamic loader included).
# Fails on a library ldd cannot find; prints nothing for a statically linked executable.
libraries_of() {
  local out
  if ! out=$(LC_ALL=C ldd "$1" 2>&1); then
    case "$out" in
      *"not a dynamic executable"* | *"statically linked"*) return 0 ;;
      *) die "ldd $1 failed: $out" ;;
    esac
  fi
  case "$out" in *"statically linked"*) return 0 ;; esac
  if grep -q 'not found' <<<"$out"; then
    die "$1 links libraries this system does not have: $(grep 'not found' <<<"$out" | tr -s ' \t' ' ')"
  fi
  # "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" and "/lib64/ld-linux-x86-64.so.2 (0x…)";
  # the vDSO has no file.
  awk '$2 == "=>" && $3 ~ /^\// { print $3; next } $1 ~ /^\// { print $1 }' <<<"$out"
}

mkdir -p "$out"
out=$(cd "$out" && pwd)
rootfs="$out/rootfs"
umask 022
install -d -m 0755 "$rootfs/usr/local/bin" "$rootfs/etc/ssl/certs" "$rootfs/$(dirname "$DATA_DIR")"
install -d -m 1777 "$rootfs/tmp"
install -d -m 0755 "$out/data"

objcopy --strip-debug "$binary" "$rootfs/usr/local/bin/sre-agent"
chmod 0755 "$rootfs/usr/local/bin/sre-agent"
executables=("$binary")
if [ -n "$trivy" ]; then
  install -m 0755 "$trivy" "$rootfs/usr/local/bin/trivy"
  executables+=("$trivy")
fi

for exe in "${executables[@]}"; do
  libs=$(libraries_of "$exe") # (not a pipe: a failure here must stop the script)
  while IFS= read -r lib; do
    [ -n "$lib" ] || continue
    [ -e "$rootfs$lib" ] && continue
    install -d -m 0755 "$rootfs$(dirname "$lib")"
    # The file itself, not the symlink chain to it: the loader asks for exactly this path.
    cp -L "$lib" "$rootfs$lib"
  done <<<"$libs"
done

install -m 0644 "$CA_BUNDLE" "$rootfs$CA_BUNDLE"
cat >"$rootfs/etc/passwd" <<EOF
root:x:0:0:root:/root:/sbin/nologin
sre-agent:x:$UID_GID:$UID_GID:sre-agent:$DATA_DIR:/sbin/nologin
EOF
cat >"$rootfs/etc/group" <<EOF
root:x:0:
sre-agent:x:$UID_GID:
EOF
cat >"$rootfs/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
hosts: files dns
EOF
chmod 0644 "$rootfs/etc/passwd" "$rootfs/etc/group" "$rootfs/etc/nsswitch.conf"

# Root owns the files (an image build resets owners anyway; Dockerfile's --chown gives the data
# dir to the agent).
if [ "$(id -u)" -eq 0 ]; then
  chown -R 0:0 "$rootfs"
  chown "$UID_GID:$UID_GID" "$out/data"
fi

printf 'assembled %s (%s): rootfs/ for /, data/ for %s\n' "$out" "$(du -sh "$out" | cut -f1)" "$DATA_DIR"
(cd "$rootfs" && find . -mindepth 1 -printf '  /%-40P %M %U:%G %s\n' | sort)
