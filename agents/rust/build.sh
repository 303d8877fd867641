#!/usr/bin/env bash
# Builds the Rust builder image `gantry/rust:latest` without any registry:
#   1. a minimal Debian bookworm root filesystem (debootstrap minbase + gcc, libc6-dev,
#      ca-certificates; libc6-dev brings libc.a, so `-C target-feature=+crt-static` works),
#   2. the host's `stable` rustup toolchain (bin/, lib/, libexec/, etc/; no share/) copied
#      to /usr/local/rust, used standalone with /usr/local/rust/bin on PATH,
#   3. `docker import`ed with PATH, CARGO_HOME=/usr/local/cargo and WORKDIR /src.
# Idempotent: an existing gantry/rust:latest is kept unless --force is given.
# Usage: agents/rust/build.sh [--force]
# Env: DEBIAN_MIRROR (default http://deb.debian.org/debian), RUST_TOOLCHAIN (default stable)
set -euo pipefail

image=gantry/rust:latest
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
toolchain=${RUST_TOOLCHAIN:-stable}
force=0
for arg in "$@"; do
  case $arg in
    --force) force=1 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg (usage: $0 [--force])" >&2; exit 2 ;;
  esac
done

if ((!force)) && docker image inspect "$image" >/dev/null 2>&1; then
  echo "$image already exists ($(docker image inspect -f '{{.Size}}' "$image" | numfmt --to=iec)); use --force to rebuild"
  exit 0
fi
[[ $(id -u) == 0 ]] || { echo "must run as root (debootstrap, chroot)" >&2; exit 1; }

start=$SECONDS
sysroot=$(rustc +"$toolchain" --print sysroot 2>/dev/null || rustc --print sysroot)
[[ -x $sysroot/bin/cargo && -x $sysroot/bin/rustc ]] || { echo "no cargo/rustc in $sysroot" >&2; exit 1; }

if ! command -v debootstrap >/dev/null; then
  echo "installing debootstrap"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

work=$(mktemp -d /var/tmp/gantry-rust.XXXXXX)
rootfs=$work/rootfs
cleanup() {
  # debootstrap mounts proc/sys inside the target; never rm -rf through a live mount
  for m in $(awk -v p="$rootfs" 'index($2, p) == 1 {print $2}' /proc/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

echo "debootstrap bookworm -> $rootfs"
debootstrap --variant=minbase --include=gcc,libc6-dev,ca-certificates \
  bookworm "$rootfs" "$mirror" > "$work/debootstrap.log" 2>&1 \
  || { tail -n 30 "$work/debootstrap.log" >&2; echo "debootstrap failed" >&2; exit 1; }

echo "copying toolchain $sysroot -> /usr/local/rust"
mkdir -p "$rootfs/usr/local/rust" "$rootfs/usr/local/cargo" "$rootfs/src"
for d in bin lib libexec etc; do
  [[ -e $sysroot/$d ]] && cp -a "$sysroot/$d" "$rootfs/usr/local/rust/"
done

echo "trimming rootfs"
rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/debconf/*-old \
  "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/var/tmp/* \
  "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
  "$rootfs"/usr/share/lintian "$rootfs"/usr/share/linda "$rootfs"/usr/share/groff \
  "$rootfs"/usr/share/bug "$rootfs"/usr/share/common-licenses "$rootfs"/usr/share/zoneinfo
find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} + 2>/dev/null || true
# keep it that way if someone apt-get installs into the image later
mkdir -p "$rootfs/etc/dpkg/dpkg.cfg.d"
printf '%s\n' 'path-exclude=/usr/share/doc/*' 'path-exclude=/usr/share/man/*' \
  'path-exclude=/usr/share/info/*' 'path-exclude=/usr/share/locale/*' \
  'path-include=/usr/share/locale/locale.alias' > "$rootfs/etc/dpkg/dpkg.cfg.d/01-gantry-nodoc"

echo "checking the toolchain inside the rootfs"
# rustc finds librustc_driver through RUNPATH $ORIGIN/../lib, which needs /proc/self/exe
mount -t proc proc "$rootfs/proc"
env -i PATH=/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  CARGO_HOME=/usr/local/cargo HOME=/root chroot "$rootfs" sh -ec '
    cargo --version; rustc --version
    cd /tmp && printf "fn main() { println!(\"hello\"); }\n" > hello.rs
    rustc -O -C target-feature=+crt-static --target x86_64-unknown-linux-gnu hello.rs -o hello
    test "$(./hello)" = hello
    rm -f hello hello.rs'
umount "$rootfs/proc"
rm -rf "$rootfs"/tmp/* "$rootfs"/root/.cargo "$rootfs"/usr/local/cargo/*

echo "importing $image"
tar -C "$rootfs" --numeric-owner -c . | docker import \
  --change 'ENV PATH=/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV CARGO_HOME=/usr/local/cargo' \
  --change 'WORKDIR /src' \
  --change 'CMD ["bash"]' \
  --message "gantry/rust: debian bookworm minbase + $(basename "$sysroot")" \
  - "$image" >/dev/null

docker run --rm --network none "$image" cargo --version >/dev/null \
  || { echo "cargo does not run in $image" >&2; exit 1; }
size=$(docker image inspect -f '{{.Size}}' "$image")
echo "built $image in $((SECONDS - start))s, size $(numfmt --to=iec "$size") ($size bytes)"
