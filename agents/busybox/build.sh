#!/usr/bin/env bash
# Builds the base image `gantry/busybox` without any registry: Debian's statically linked
# busybox is laid into an empty root filesystem (with an applet symlink per command) and
# handed to `docker import`. Idempotent: an existing image is kept unless --force is given.
set -euo pipefail

image="${GANTRY_BUSYBOX_IMAGE:-gantry/busybox:latest}"
if [[ "${1:-}" != "--force" ]] && docker image inspect "$image" >/dev/null 2>&1; then
  echo "image $image already present"
  exit 0
fi

busybox=/bin/busybox
if ! [[ -x $busybox ]] || ! file -L "$busybox" 2>/dev/null | grep -q 'statically linked'; then
  if [[ -x /usr/bin/busybox ]] && file -L /usr/bin/busybox 2>/dev/null | grep -q 'statically linked'; then
    busybox=/usr/bin/busybox
  else
    echo "installing Debian's busybox-static (needs apt-get as root)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq busybox-static file >/dev/null 2>&1 || {
      apt-get update -qq >/dev/null && apt-get install -y -qq busybox-static file >/dev/null
    }
    busybox=/bin/busybox
  fi
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,tmp,etc,root,workspace,home/gantry}
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
# One symlink per applet, so `sh`, `echo`, `wget`... exist as commands.
for applet in $("$root/bin/busybox" --list); do
  [[ -e "$root/bin/$applet" ]] || ln -s busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\ngantry:x:1000:1000:gantry:/home/gantry:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\ngantry:x:1000:\nnogroup:x:65534:\n' >"$root/etc/group"
chown 1000:1000 "$root/home/gantry"

tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/bin' \
  --change 'CMD ["/bin/sh"]' \
  --change 'WORKDIR /workspace' \
  - "$image" >/dev/null
echo "built $image from $busybox ($("$busybox" 2>&1 | head -1 | cut -d' ' -f1-2))"
