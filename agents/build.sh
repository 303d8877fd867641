#!/usr/bin/env bash
# Builds Gantry's own stage agents as images without any registry: each agent is a
# statically linked binary of this crate (src/bin/gantry-<name>.rs, glibc with crt-static)
# copied into a `FROM scratch` image `gantry/<name>` by the classic builder.
# Each built image's id goes into the agent record (GANTRY_AGENT_RECORD, default
# ${XDG_DATA_HOME:-~/.local/share}/gantry/agent-images): Gantry runs an agent only from the
# image of that id, so a `docker tag` over gantry/<name> is refused, not run.
# Usage: agents/build.sh [name...]   (default: every agents/<name>/Dockerfile)
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-gnu
if (($#)); then names=("$@"); else
  names=()
  for f in agents/*/Dockerfile; do
    n=$(basename "$(dirname "$f")")
    [[ -f src/bin/gantry-$n.rs ]] && names+=("$n")
  done
fi
((${#names[@]})) || { echo "no agents to build"; exit 0; }

bins=()
for n in "${names[@]}"; do bins+=(--bin "gantry-$n"); done
# A separate --target keeps these RUSTFLAGS away from the host build (build scripts,
# proc macros) and gives the static binaries their own directory.
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --target "$target" "${bins[@]}"

record=${GANTRY_AGENT_RECORD:-${XDG_DATA_HOME:-$HOME/.local/share}/gantry/agent-images}
mkdir -p "$(dirname "$record")"
for n in "${names[@]}"; do
  ctx=$(mktemp -d)
  cp "target/$target/release/gantry-$n" "$ctx/gantry-$n"
  cp "agents/$n/Dockerfile" "$ctx/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q -t "gantry/$n:latest" "$ctx" >/dev/null
  rm -rf "$ctx"
  id=$(docker image inspect -f '{{.Id}}' "gantry/$n:latest")
  # One line per agent: this one's replaced, the others' kept (a rename is atomic).
  { grep -v -E "^$n " "$record" 2>/dev/null || true; echo "$n $id"; } >"$record.tmp"
  mv "$record.tmp" "$record"
  echo "built gantry/$n ($(du -h "target/$target/release/gantry-$n" | cut -f1) static binary, $id, recorded in $record)"
done
