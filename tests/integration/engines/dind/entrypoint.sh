#!/bin/sh
# The node runs unprivileged with every capability but CAP_SYS_RESOURCE (see the test for
# why), in a cgroup namespace of its own, where Docker mounts the cgroup controllers
# read-only: made writable here, so that the inner engine can set its containers' limits.
set -e
for d in /sys/fs/cgroup /sys/fs/cgroup/*/; do
    if mountpoint -q "$d"; then mount -o remount,bind,rw "$d"; fi
done
exec dockerd "$@"
