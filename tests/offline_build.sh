#!/usr/bin/env bash
# Proves the build needs no network: clones the committed tree into a scratch directory
# and runs `cargo build --offline --locked` with an empty CARGO_HOME inside a network
# namespace that has no interfaces up (`unshare -n`, or `unshare -rn` in an unprivileged
# user namespace). Where no such namespace can be made the script fails: a build that
# could reach the network proves nothing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

# Cut the network first, before anything is copied or built: as root, in an unprivileged
# user namespace, or through passwordless sudo (the build itself then runs as this user).
me=$(id -un)
if unshare -n true 2>/dev/null; then
    offline=(unshare -n)
elif unshare -r -n true 2>/dev/null; then
    offline=(unshare -r -n)
elif sudo -n unshare -n true 2>/dev/null; then
    offline=(sudo -n unshare -n sudo -n -u "$me" env "PATH=$PATH" "HOME=$HOME")
else
    echo "error: cannot create a network namespace here (unshare -n needs root, unshare -rn" \
         "user namespaces, or passwordless sudo); refusing to build with the network in reach" >&2
    exit 1
fi
# And check it is cut: inside, no interface but loopback.
if ! "${offline[@]}" sh -c '! tail -n +3 /proc/self/net/dev | grep -qv "^ *lo:"'; then
    echo "error: the network namespace (${offline[*]}) still has interfaces besides" \
         "loopback; refusing to build with the network in reach" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone -q --no-local "$root" "$work/airlock"
mkdir "$work/cargo-home"
# Cargo reads .cargo/config.toml from the working directory: build from inside the clone,
# so its own vendor/ is the registry (not the checkout this script was started from).
cd "$work/airlock"
"${offline[@]}" env CARGO_HOME="$work/cargo-home" CARGO_TARGET_DIR="$work/target" \
    cargo build --offline --locked --manifest-path "$work/airlock/Cargo.toml"
test -x "$work/target/debug/airlock"
"$work/target/debug/airlock" version
echo "offline build: ok, without a network (${offline[*]}); vendor/ is $(du -sh "$root/vendor" | cut -f1)"
