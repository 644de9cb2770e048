#!/usr/bin/env bash
# Stop the daemons tests/cluster/start.sh DIR started (by their pid files), and nothing else.
DIR=$(realpath -m "${1:?usage: stop.sh STATE_DIR}")
for daemon in slurmd slurmctld slurmdbd mariadbd munged; do
  pidfile="$DIR/run/$daemon.pid"
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || continue
  for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -9 "$pid" 2>/dev/null || true
done
for conf in slurm.conf gres.conf slurmdbd.conf; do  # the links start.sh made, not a real config
  [ "$(readlink "/etc/slurm/$conf")" = "$DIR/etc/$conf" ] && rm -f "/etc/slurm/$conf"
done
exit 0
