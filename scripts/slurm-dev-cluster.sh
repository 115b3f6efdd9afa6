#!/usr/bin/env bash
# A local Slurm cluster for development, tests and benchmarks: N emulated
# nodes (multiple slurmd on this host), munge, and slurmrestd with JWT.
#
#   scripts/slurm-dev-cluster.sh install      install the Debian packages only
#   scripts/slurm-dev-cluster.sh up [NODES]   install (Debian packages) and start; default 2 nodes
#   scripts/slurm-dev-cluster.sh down         stop what `up` started, by PID
#   scripts/slurm-dev-cluster.sh env          print the environment for the Slurm commands
#   scripts/slurm-dev-cluster.sh status       sinfo
#
# Everything lives in $HPCML_SLURM_DIR (default /tmp/hpcml-slurm); the
# commands need SLURM_CONF=$HPCML_SLURM_DIR/slurm.conf (see `env`).
# Ports: $HPCML_SLURMCTLD_PORT (16817), $HPCML_SLURMD_PORT (17001, one
# per node from there) and $HPCML_SLURMRESTD_PORT (16820), so that a test
# cluster can run beside a development one.
# It runs without systemd or cgroups (proctrack/linuxproc, task/none),
# as root, and needs no accounting daemon (sacct does not work: use
# scontrol, which keeps ended jobs for an hour).
set -euo pipefail

state=${HPCML_SLURM_DIR:-/tmp/hpcml-slurm}
conf=$state/slurm.conf
restd_port=${HPCML_SLURMRESTD_PORT:-16820}
ctld_port=${HPCML_SLURMCTLD_PORT:-16817}
slurmd_port=${HPCML_SLURMD_PORT:-17001}

log() { printf 'slurm-dev-cluster: %s\n' "$*" >&2; }

install() {
  local need=()
  for pair in slurmctld:slurm-wlm slurmd:slurm-wlm slurmrestd:slurmrestd munged:munge mpirun:openmpi-bin mpicc:libopenmpi-dev; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
  done
  [ -e /usr/lib/x86_64-linux-gnu/slurm-wlm/auth_jwt.so ] || need+=(slurm-wlm-jwt-plugin)
  [ ${#need[@]} -eq 0 ] && return
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_munge() {
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
  fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    return # a munged is already serving
  fi
  # munged runs as munge and cannot write into $state: its pid file goes
  # to /run/munge and is copied, so that `down` stops only this munged.
  runuser -u munge -- munged --pid-file=/run/munge/hpcml-munged.pid
  for _ in $(seq 50); do
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
      cp /run/munge/hpcml-munged.pid "$state/munged.pid"
      return
    fi
    sleep 0.1
  done
  log "munged did not come up"; exit 1
}

write_conf() {
  local nodes=$1 host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / nodes / 2 ))
  mkdir -p "$state/ctld" "$state/spool" "$state/tmp"
  for i in $(seq 1 "$nodes"); do mkdir -p "$state/spool/n$i" "$state/tmp/n$i"; done
  [ -s "$state/jwt.key" ] || { dd if=/dev/urandom of="$state/jwt.key" bs=32 count=1 status=none; chmod 0600 "$state/jwt.key"; }
  cat > "$conf" <<CONF
ClusterName=hpcml-dev
SlurmctldHost=$host
SlurmctldPort=$ctld_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$state/jwt.key
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool/%n
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd-%n.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$state/jobcomp.txt
MinJobAge=3600
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
MailProg=/bin/true
ReturnToService=2
MpiDefault=none
TmpFS=$state/tmp/%n
NodeName=n[1-$nodes] NodeHostname=localhost NodeAddr=127.0.0.1 Port=$slurmd_port-$((slurmd_port + nodes - 1)) CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
}

up() {
  local nodes=${1:-2}
  install
  mkdir -p "$state"
  start_munge
  if alive "$state/slurmctld.pid"; then
    log "already up ($state)"; return
  fi
  write_conf "$nodes"
  slurmctld -f "$conf"
  for i in $(seq 1 "$nodes"); do slurmd -f "$conf" -N "n$i"; done
  export SLURM_CONF=$conf
  for _ in $(seq 100); do
    if [ "$(sinfo -h -o '%T' 2>/dev/null | grep -c idle || true)" -ge 1 ] && \
       [ "$(sinfo -h -N -o '%T' 2>/dev/null | grep -c idle || true)" -eq "$nodes" ]; then
      break
    fi
    sleep 0.2
  done
  # slurmrestd refuses root; JWT over TCP on loopback.
  # setpriv execs slurmrestd itself, so the recorded PID is slurmrestd's.
  SLURM_CONF="$conf" SLURM_JWT=daemon setpriv --reuid=nobody --regid=nogroup --clear-groups \
    slurmrestd -s openapi/v0.0.38,openapi/v0.0.37,openapi/v0.0.36 "127.0.0.1:$restd_port" \
    > "$state/slurmrestd.log" 2>&1 &
  echo $! > "$state/slurmrestd.pid"
  sinfo -N
  log "up: $nodes nodes; run: eval \"\$($0 env)\""
}

down() {
  for f in "$state"/slurmrestd.pid "$state"/slurmd-*.pid "$state"/slurmctld.pid "$state"/munged.pid; do
    [ -f "$f" ] || continue
    if alive "$f"; then kill "$(cat "$f")" 2>/dev/null || true; fi
    rm -f "$f"
  done
  log "down"
}

case "${1:-}" in
  install) install ;;
  up) up "${2:-2}" ;;
  down) down ;;
  env) echo "export SLURM_CONF=$conf" ;;
  status) SLURM_CONF=$conf sinfo -N ;;
  *) echo "usage: $0 install | up [NODES] | down | env | status" >&2; exit 2 ;;
esac
