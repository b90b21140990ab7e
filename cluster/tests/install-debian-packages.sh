#!/usr/bin/env bash
# What `make test-cluster` needs from Debian: a one-node Slurm (slurmctld, slurmd, munge), an SSH
# server and rsync for `ray up` with the local provider (its file_mounts), and the namespace and
# virtual-ethernet tools that give each test "machine" its own network. Needs root; installs only
# what is missing.
set -euo pipefail
packages=(slurmctld slurmd slurm-client munge openssh-server openssh-client rsync iproute2 util-linux)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "make test-cluster needs root to install: ${missing[*]}" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    echo "installed: ${missing[*]}"
fi
