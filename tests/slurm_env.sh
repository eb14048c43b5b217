# tests/slurm_env.sh — a private single-node Slurm for the tests labelled `slurm`.
#
# Sourced after tests/lib.sh. `ts_slurm_start` brings up, all under $WORK/slurm (or a temp dir
# of its own when $WORK is unset):
#   munged     with its own key (dd from /dev/urandom), socket, pid, log and seed files, so that
#              no system-wide munge (/etc/munge, /run/munge) is read or touched;
#   slurmctld  and slurmd, in the foreground (-D) as children of this shell, with a slurm.conf
#              that points them at that munge socket (AuthInfo=socket=...), keeps state and spool
#              in the temp dir and listens on two free ports picked at random;
# and exports SLURM_CONF, which every client (sbatch, squeue, scontrol, scancel, srun) reads.
# The EXIT trap stops all three (by the pids this shell started, never by name) before lib.sh's
# rm -rf of $WORK.
#
# Settings known to work in a container without systemd or cgroups: proctrack/linuxproc,
# task/none (no binding, see scripts/env.sh for why tessera wants none), MpiDefault=pmix,
# SlurmUser=root, no accounting database (so no sacct: poll with squeue and scontrol).
#
# Helpers after start: ts_slurm_wait_job ID TIMEOUT_S (until the job leaves the queue; prints
# its final state), ts_slurm_job_state ID, ts_slurm_logs (the daemons' logs, for failures).

TS_SLURM_PIDS=()

ts_slurm_stop() {
  local p
  # Jobs first: slurmstepd (one per job step) outlives slurmd, so cancel every job of this
  # private cluster and wait for the steps to go; then slurmd, the controller, munge.
  if [ -n "${SLURM_CONF:-}" ] && [ "${#TS_SLURM_PIDS[@]}" -gt 0 ]; then
    scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
    for _ in $(seq 100); do
      [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
  for p in "${TS_SLURM_PIDS[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  for p in "${TS_SLURM_PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  TS_SLURM_PIDS=()
  # munged daemonises: its pid is in its pid file, not in $!.
  if [ -n "${TS_SLURM_DIR:-}" ] && [ -s "$TS_SLURM_DIR/munged.pid" ]; then
    p=$(cat "$TS_SLURM_DIR/munged.pid")
    kill "$p" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    rm -f "$TS_SLURM_DIR/munged.pid"
  fi
}

ts_slurm_logs() {
  local f
  for f in "$TS_SLURM_DIR"/munged.log "$TS_SLURM_DIR"/slurmctld.log "$TS_SLURM_DIR"/slurmd.log; do
    [ -f "$f" ] || continue
    echo "---- $f (last 30 lines)"
    tail -30 "$f"
  done
}

# A free TCP port above 20000 (bash's /dev/tcp connect fails when nobody listens).
ts_slurm_free_port() {
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}

ts_slurm_start() {
  local d cpus ctl_port d_port
  for b in munged slurmctld slurmd sbatch squeue scontrol scancel srun; do
    command -v "$b" >/dev/null || { echo "slurm_env: $b not found (apt-get install slurm-wlm munge)" >&2; return 1; }
  done
  if [ -n "${WORK:-}" ]; then d="$WORK/slurm"; mkdir -p "$d"; else d=$(mktemp -d /tmp/ts_slurm.XXXXXX); fi
  chmod 700 "$d"
  TS_SLURM_DIR=$d
  mkdir -p "$d/state" "$d/spool"
  # Stop the daemons, then (as lib.sh would) remove $WORK.
  trap 'ts_slurm_stop; rm -rf "${WORK:-}"' EXIT

  # munge: 1024 random bytes as key (what mungekey --bits 8192 makes), readable by root only.
  dd if=/dev/urandom of="$d/munge.key" bs=1024 count=1 status=none
  chmod 400 "$d/munge.key"
  # --force: the socket lives under /tmp, whose world-writable parents munged would refuse.
  munged --force --socket="$d/munge.sock" --key-file="$d/munge.key" --pid-file="$d/munged.pid" \
    --log-file="$d/munged.log" --seed-file="$d/munged.seed" || { ts_slurm_logs >&2; return 1; }

  cpus=$(nproc)
  ctl_port=$(ts_slurm_free_port)
  d_port=$(ts_slurm_free_port)
  while [ "$d_port" = "$ctl_port" ]; do d_port=$(ts_slurm_free_port); done
  cat >"$d/slurm.conf" <<EOF
ClusterName=tstest
SlurmctldHost=localhost
SlurmctldPort=$ctl_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$d/munge.sock
CredType=cred/munge
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool
SlurmctldPidFile=$d/slurmctld.pid
SlurmdPidFile=$d/slurmd.pid
SlurmctldLogFile=$d/slurmctld.log
SlurmdLogFile=$d/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=pmix
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
# A requeued job may start again at once (default 10 s between attempts is fine too).
KillWait=10
MinJobAge=600
NodeName=localhost CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
  export SLURM_CONF="$d/slurm.conf"
  slurmctld -D -c -f "$SLURM_CONF" >>"$d/slurmctld.out" 2>&1 &
  TS_SLURM_PIDS+=($!)
  slurmd -D -N localhost -f "$SLURM_CONF" >>"$d/slurmd.out" 2>&1 &
  TS_SLURM_PIDS=($! "${TS_SLURM_PIDS[@]}")

  # Ready when the node is idle.
  local state=""
  for _ in $(seq 150); do
    state=$(sinfo -h -N -o '%t' 2>/dev/null | head -1 || true)
    [ "$state" = idle ] && return 0
    sleep 0.2
  done
  echo "slurm_env: node not idle after 30 s (state '$state')" >&2
  ts_slurm_logs >&2
  return 1
}

# Final or current state of a job ("" when Slurm has forgotten it).
ts_slurm_job_state() {
  scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | head -1
}

# Wait until job $1 leaves the queue (at most $2 seconds); print its last state.
ts_slurm_wait_job() {
  local id=$1 limit=$2 t0=$SECONDS st
  while [ $((SECONDS - t0)) -lt "$limit" ]; do
    st=$(ts_slurm_job_state "$id")
    case "$st" in
      COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE | PREEMPTED)
        echo "$st"; return 0 ;;
    esac
    sleep 1
  done
  echo "TIMEOUT_WAITING($(ts_slurm_job_state "$id"))"
  return 1
}
