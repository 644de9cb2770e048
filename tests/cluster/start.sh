#!/usr/bin/env bash
# Start a one-node Slurm test cluster on 127.0.0.1 with 2 fake GPUs and accounting (MariaDB,
# slurmdbd), as root and without systemd, its state under DIR; tests/cluster/stop.sh DIR stops
# exactly these daemons. Needs Debian's slurmctld slurmd slurm-client munge slurmdbd
# slurm-wlm-mysql-plugin mariadb-server (installed with services blocked, see .ci/run).
# Its config is linked from /etc/slurm, where every Slurm command (and job step) looks.
set -euo pipefail
DIR=$(realpath -m "${1:?usage: start.sh STATE_DIR}")
MARK="codi-sae test cluster (tests/cluster/start.sh)"
HOST=$(hostname)
"$(dirname "$0")/stop.sh" "$DIR"  # a cluster left from an earlier start in DIR
OLD=$(readlink /etc/slurm/slurm.conf || true)  # one left in another DIR by a killed run
if [ -n "$OLD" ] && grep -qsxF "# $MARK" "$OLD"; then
  "$(dirname "$0")/stop.sh" "$(dirname "$(dirname "$OLD")")"
fi
rm -rf "$DIR"
mkdir -p "$DIR"/{etc,spool/ctld,spool/d,log,run,mysql,dev,munge}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: until COMMAND succeeds
  local end=$((SECONDS + $1)) what=$2; shift 2
  while ((SECONDS < end)); do timeout 10 "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  echo "start.sh: $what did not come up in time; logs in $DIR/log" >&2
  return 1
}

# munge: its own key under DIR, on the default socket that every Slurm command looks for
dd if=/dev/urandom bs=1 count=1024 of="$DIR/munge/munge.key" 2>/dev/null
chmod 400 "$DIR/munge/munge.key"
mkdir -p /run/munge
munged --force --key-file="$DIR/munge/munge.key" --pid-file="$DIR/run/munged.pid" \
  --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/seed"
wait_for 10 munged munge -n

# MariaDB for slurmdbd, on 127.0.0.1:3306
mariadb-install-db --datadir="$DIR/mysql" --user=root --auth-root-authentication-method=normal >"$DIR/log/mysql-install.log" 2>&1
mariadbd --datadir="$DIR/mysql" --user=root --bind-address=127.0.0.1 --port=3306 \
  --socket="$DIR/run/mysql.sock" --pid-file="$DIR/run/mariadbd.pid" --log-error="$DIR/log/mariadbd.log" &
wait_for 30 mariadbd mariadb --socket="$DIR/run/mysql.sock" -e "select 1"
mariadb --socket="$DIR/run/mysql.sock" -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
  CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"

# two fake GPUs: character devices (Slurm refuses plain files), kept out of /dev
mknod "$DIR/dev/fakegpu0" c 1 3
mknod "$DIR/dev/fakegpu1" c 1 3

NODE=$(slurmd -C | head -1 | sed -E 's/ RealMemory=[0-9]+//')
MEMORY=$(( $(free -m | awk '/^Mem:/ {print $2}') * 3 / 4 ))
cat >"$DIR/etc/slurm.conf" <<CONF
# $MARK
ClusterName=codisae
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
StateSaveLocation=$DIR/spool/ctld
SlurmdSpoolDir=$DIR/spool/d
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
MinJobAge=600
ReturnToService=2
MpiDefault=none
GresTypes=gpu
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
$NODE RealMemory=$MEMORY Gres=gpu:2 State=UNKNOWN
PartitionName=cpu Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$HOST MaxTime=INFINITE State=UP
CONF
cat >"$DIR/etc/gres.conf" <<CONF
AutoDetect=off
Name=gpu File=$DIR/dev/fakegpu[0-1]
CONF
cat >"$DIR/etc/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdAddr=127.0.0.1
DbdHost=$HOST
DbdPort=6819
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3306
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/run/slurmdbd.pid
CONF
chmod 600 "$DIR/etc/slurmdbd.conf"
# Job steps (srun inside a job) read the default /etc/slurm: link it to DIR, never over a real
# config; links left by another test cluster (stopped above) are taken over.
mkdir -p /etc/slurm
for conf in slurm.conf gres.conf slurmdbd.conf; do
  target=$(readlink "/etc/slurm/$conf" || true)
  if [ -e "/etc/slurm/$conf" ] && [ "$target" != "$DIR/etc/$conf" ] \
    && ! grep -qsxF "# $MARK" "$(dirname "$target")/slurm.conf"; then
    echo "start.sh: /etc/slurm/$conf exists and is not a test cluster's: not touching it" >&2
    exit 1
  fi
  ln -sfn "$DIR/etc/$conf" "/etc/slurm/$conf"
done
export SLURM_CONF="$DIR/etc/slurm.conf"

slurmdbd
wait_for 30 slurmdbd sacctmgr -n list cluster
sacctmgr -i add cluster codisae >/dev/null
sacctmgr -i add account codisae >/dev/null
sacctmgr -i add user root account=codisae >/dev/null
slurmctld -f "$SLURM_CONF"
wait_for 30 slurmctld scontrol ping
slurmd -f "$SLURM_CONF"
wait_for 60 "the node" bash -c "sinfo -h -N -o %t | grep -qx idle"
echo "start.sh: one-node Slurm up, config in $DIR/etc, linked from /etc/slurm"
