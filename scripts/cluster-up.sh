#!/usr/bin/env bash
# Starts a one-node Slurm cluster (munged, slurmctld, slurmd) and an S3 server (s3s-fs) on loopback,
# for the tests of `--executor slurm` and `--store s3://`. No systemd: every daemon is started by hand
# and its PID written under $PIPE_CLUSTER_DIR; scripts/cluster-down.sh stops them by PID.
# Writes $PIPE_CLUSTER_DIR/env, to be sourced: SLURM_CONF, the AWS_* variables, PIPE_TEST_S3_BUCKET.
#
# Needs (scripts/install-cluster-tools.sh installs them): Debian's slurm-wlm and munge, and s3s-fs.
set -euo pipefail
DIR=${PIPE_CLUSTER_DIR:-/tmp/pipe-cluster}
S3S=${S3S_FS:-$(command -v s3s-fs || echo "$HOME/.cache/pipe/tools/bin/s3s-fs")}
[ -x "$S3S" ] || { echo "cluster-up: s3s-fs not found (run scripts/install-cluster-tools.sh)" >&2; exit 1; }
command -v slurmctld >/dev/null || { echo "cluster-up: slurmctld not found (run scripts/install-cluster-tools.sh)" >&2; exit 1; }

[ -f "$DIR/pids" ] && "$(dirname "$0")/cluster-down.sh" || true
rm -rf "$DIR"
mkdir -p "$DIR"/{state,spool,munge,s3/pipe-test}
: > "$DIR/pids"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # what, seconds, command...
  local what=$1 secs=$2; shift 2
  for _ in $(seq 1 $((secs * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "cluster-up: $what did not come up; logs in $DIR" >&2; tail -n 20 "$DIR"/*.log >&2 || true; exit 1
}

# munge: its own key and socket, so a system munged (if any) is left alone.
dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
chmod 755 "$DIR/munge"; chmod 400 "$DIR/munge/munge.key"
MUNGE_SOCKET="$DIR/munge/munge.socket"
munged --force --key-file="$DIR/munge/munge.key" --socket="$MUNGE_SOCKET" \
  --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munged.log" --seed-file="$DIR/munge/seed"
wait_for munged 10 test -S "$MUNGE_SOCKET"
cat "$DIR/munge/munged.pid" >> "$DIR/pids"

CTLD_PORT=$(free_port); SLURMD_PORT=$(free_port)
CPUS=$(nproc); MEM=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
cat > "$DIR/slurm.conf" <<CONF
ClusterName=pipe-test
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
SchedulerParameters=sched_min_interval=0,batch_sched_delay=0
ReturnToService=2
MpiDefault=none
NodeName=localnode NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
export SLURM_CONF="$DIR/slurm.conf"
slurmctld -i
wait_for slurmctld 20 scontrol ping
cat "$DIR/slurmctld.pid" >> "$DIR/pids"
slurmd -N localnode
wait_for slurmd 20 bash -c 'sinfo -h -N -o %T | grep -qE "^(idle|mixed|allocated)"'
cat "$DIR/slurmd.pid" >> "$DIR/pids"

# S3: s3s-fs serves $DIR/s3 (one folder per bucket) with one access key.
S3_PORT=$(free_port)
"$S3S" --host 127.0.0.1 --port "$S3_PORT" --access-key pipe-test-key --secret-key pipe-test-secret \
  "$DIR/s3" > "$DIR/s3s-fs.log" 2>&1 &
echo $! >> "$DIR/pids"
wait_for s3s-fs 20 bash -c "exec 3<>/dev/tcp/127.0.0.1/$S3_PORT"

cat > "$DIR/env" <<ENV
export SLURM_CONF=$DIR/slurm.conf
export AWS_ENDPOINT_URL=http://127.0.0.1:$S3_PORT
export AWS_ACCESS_KEY_ID=pipe-test-key
export AWS_SECRET_ACCESS_KEY=pipe-test-secret
export AWS_REGION=us-east-1
export PIPE_TEST_S3_BUCKET=pipe-test
export PIPE_TEST_S3_ROOT=$DIR/s3
ENV
echo "cluster-up: slurmctld :$CTLD_PORT, slurmd :$SLURMD_PORT, s3s-fs http://127.0.0.1:$S3_PORT (bucket pipe-test); source $DIR/env"
