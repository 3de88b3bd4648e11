#!/usr/bin/env bash
# Build the two images of a deployment with buildah (README: Deployment):
#   server   deploy/server/Containerfile  (web, ws, Celery worker and beat; context: the repository)
#   builder  builder/Containerfile        (the build worker with buildah; context: builder/)
#
#   deploy/build-images.sh [--local-base] [--prune]
#
# Both start FROM docker.io/library/debian:bookworm-slim, pulled only when missing from the store.
# --local-base makes that image here instead, when missing, from Debian's packages (mmdebstrap
# from the apt mirror, imported into buildah's store under the same name): for machines that reach
# a Debian mirror but no container registry, like CI. --prune drops images no name points at any
# more (the previous builds' layers), keeping the layer cache of the current ones.
#
# Layers are cached (--layers): buildah reuses a step when its instruction and the content hash of
# what it copies are unchanged, so a second run with the same sources takes seconds, and a code
# change rebuilds only the steps after `COPY . /opt/quay/app`.
#
# Environment:
#   SERVER_IMAGE       default localhost/quay-server:latest
#   BUILDER_IMAGE      default localhost/quay-builder:latest
#   QUAY_IMAGE_STORE   a directory for buildah's storage instead of /var/lib/containers/storage:
#                      <dir>/<driver>/{root,run}, with the driver written to <dir>/driver (for
#                      podman to use the same); runs on one store are serialized
#   STORAGE_DRIVER     buildah's storage driver; with QUAY_IMAGE_STORE the default is overlay
#                      where the kernel allows it here, else vfs (slow: every layer a full copy)
#   BUILDAH_ISOLATION  default chroot (needs no user namespaces; RUN steps use the host network)
#   DEBIAN_MIRROR      for --local-base, default http://deb.debian.org/debian
#   BUILD_CA_FILE      a CA bundle pip trusts inside the builds (PyPI behind a TLS-inspecting
#                      proxy); default: the host's PIP_CERT when that is set
set -euo pipefail

cd "$(dirname "$0")/.."

BASE_IMAGE=docker.io/library/debian:bookworm-slim
SERVER_IMAGE=${SERVER_IMAGE:-localhost/quay-server:latest}
BUILDER_IMAGE=${BUILDER_IMAGE:-localhost/quay-builder:latest}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
export BUILDAH_ISOLATION=${BUILDAH_ISOLATION:-chroot}

local_base=0 prune=0
for arg in "$@"; do
    case $arg in
    --local-base) local_base=1 ;;
    --prune) prune=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-images.sh: unknown argument $arg (see --help)" >&2; exit 2 ;;
    esac
done

storage=()
if [[ -n ${QUAY_IMAGE_STORE:-} ]]; then
    mkdir -p "$QUAY_IMAGE_STORE"
    # Two runs on one store (two test processes) would build the same layers twice at once.
    exec 9>"$QUAY_IMAGE_STORE/lock"
    flock 9
    driver=${STORAGE_DRIVER:-}
    if [[ -z $driver ]]; then
        # overlay's driver refuses to start where the kernel cannot mount it (some containers).
        driver=vfs
        probe=$QUAY_IMAGE_STORE/overlay
        if buildah --storage-driver overlay --root "$probe/root" --runroot "$probe/run" info >/dev/null 2>&1; then
            driver=overlay
        fi
    fi
    storage=(--storage-driver "$driver" --root "$QUAY_IMAGE_STORE/$driver/root" --runroot "$QUAY_IMAGE_STORE/$driver/run")
    echo "$driver" >"$QUAY_IMAGE_STORE/driver"
elif [[ -n ${STORAGE_DRIVER:-} ]]; then
    storage=(--storage-driver "$STORAGE_DRIVER")
fi
bah() { buildah "${storage[@]}" "$@"; }

step() { printf '== %s (%ss)\n' "$*" "$SECONDS"; }

if ! bah inspect --type image "$BASE_IMAGE" >/dev/null 2>&1 && [[ $local_base -eq 1 ]]; then
    step "making $BASE_IMAGE from Debian packages ($DEBIAN_MIRROR)"
    command -v mmdebstrap >/dev/null || { echo "build-images.sh: --local-base needs mmdebstrap (apt-get install mmdebstrap)" >&2; exit 1; }
    work=$(mktemp -d /var/tmp/quay-base.XXXXXX)
    trap 'rm -rf "$work"' EXIT
    security=${DEBIAN_MIRROR%/debian}/debian-security
    # minbase: essential packages and apt, like the slim image; documentation left out as there.
    mmdebstrap --quiet --variant=minbase --skip=output/dev \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
        bookworm "$work/rootfs.tar" \
        "deb $DEBIAN_MIRROR bookworm main" "deb $DEBIAN_MIRROR bookworm-updates main" \
        "deb $security bookworm-security main"
    ctr=$(bah from scratch)
    bah add --quiet "$ctr" "$work/rootfs.tar" /
    bah config --cmd '["bash"]' --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --os linux --arch "$(dpkg --print-architecture)" "$ctr"
    bah commit --quiet --rm "$ctr" "$BASE_IMAGE" >/dev/null
    rm -rf "$work"
fi

# --pull=false: pull the base only when it is not in the store (the "missing" policy).
bud=(bud --quiet --layers --pull=false --isolation "$BUILDAH_ISOLATION")
ca_file=${BUILD_CA_FILE:-${PIP_CERT:-}}
if [[ -n $ca_file ]]; then
    # Mounted for the RUN steps only: the CA file is not part of any layer.
    bud+=(--volume "$(realpath "$ca_file"):/run/quay-build-ca.crt:ro" --build-arg PIP_CERT=/run/quay-build-ca.crt)
fi

step "server image $SERVER_IMAGE"
bah "${bud[@]}" --ignorefile deploy/server/Containerfile.dockerignore \
    -f deploy/server/Containerfile -t "$SERVER_IMAGE" .

step "builder image $BUILDER_IMAGE"
bah "${bud[@]}" -f builder/Containerfile -t "$BUILDER_IMAGE" builder/

if [[ $prune -eq 1 ]]; then
    bah rmi --prune >/dev/null 2>&1 || true
fi
step "done"
bah images --format '{{.Name}}:{{.Tag}} {{.ID}} {{.Size}}' | grep -E "quay-(server|builder)|debian" || true
