#!/bin/sh
# The CPU and memory limits this container sees (cgroup v2, else v1).
echo "Content-Type: text/plain"
echo
g=/sys/fs/cgroup
echo "cpu $(cat $g/cpu.max 2>/dev/null || echo $(cat $g/cpu/cpu.cfs_quota_us $g/cpu/cpu.cfs_period_us))"
echo "memory $(cat $g/memory.max 2>/dev/null || cat $g/memory/memory.limit_in_bytes)"
