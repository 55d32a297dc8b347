#!/usr/bin/env bash
# A one-node SLURM with accounting on this machine, and a tiny simulated screen run
# through profiles/slurm on it (README: "Running on a SLURM cluster").
#
#   sudo tests/slurm/run.sh            # as root, on a Debian/Ubuntu machine with apt-get
#
# Installs slurm-wlm, slurmdbd, munge and mariadb-server, starts munged, MariaDB,
# slurmdbd, slurmctld and slurmd (no systemd needed), writes a profile derived from
# profiles/slurm that overrides only what a CPU-only single node needs, runs the screen
# to results/evaluation/metrics.tsv, checks the outputs and that every job of the run was
# a SLURM job that completed (sacct). The daemons it started are stopped on exit.
# Environment: PYTHON (default .venv/bin/python; it needs the project installed with the
# slurm extra, `pip install -e ".[slurm]"`), OPSEMBED_SLURM_WORK (default: a new folder
# under /tmp). Exits non-zero when anything fails.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
WORK="${OPSEMBED_SLURM_WORK:-$(mktemp -d /tmp/opsembed-slurm.XXXXXX)}"
ACCOUNT=opsembed
CLUSTER=opsembed
NODE="$(hostname -s)"
say() { echo "slurm-test: $*"; }
fail() { echo "slurm-test: FAILED: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "run as root (it installs packages and starts the SLURM daemons)"
command -v apt-get >/dev/null || fail "needs apt-get (Debian/Ubuntu)"
"$PYTHON" -c "import snakemake_executor_plugin_slurm" 2>/dev/null \
  || fail "$PYTHON lacks the SLURM executor plugin; install the project with it: pip install -e \".[slurm]\""
mkdir -p "$WORK"
START="$(date +%Y-%m-%dT%H:%M:%S)"
T0=$SECONDS

##### packages #####
if ! command -v slurmctld >/dev/null || ! command -v slurmdbd >/dev/null || ! command -v mysqld_safe >/dev/null; then
  say "installing slurm-wlm slurmdbd munge mariadb-server"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends slurm-wlm slurmdbd munge mariadb-server >"$WORK/apt.log" 2>&1 \
    || { tail -20 "$WORK/apt.log"; fail "apt-get install (log: $WORK/apt.log)"; }
fi
say "packages ready ($((SECONDS - T0)) s): $(slurmctld -V)"

STARTED=()  # pid files of the daemons this script started, stopped on exit
stop_daemons() {
  for pidfile in "${STARTED[@]:-}"; do
    [ -n "$pidfile" ] && [ -s "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
}
trap stop_daemons EXIT

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  for _ in $(seq "$limit"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  fail "$what did not come up within $limit s"
}

##### munge #####
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  mkdir -p /etc/munge /run/munge /var/log/munge /var/lib/munge
  [ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  chown -R munge: /etc/munge /run/munge /var/log/munge /var/lib/munge
  chmod 400 /etc/munge/munge.key
  runuser -u munge -- munged --force
  STARTED+=(/run/munge/munged.pid)
  wait_for 20 munged sh -c "munge -n | unmunge"
fi

##### MariaDB and slurmdbd #####
DB_PASS="opsembed-ci"
if ! mysqladmin ping >/dev/null 2>&1; then
  mkdir -p /run/mysqld && chown mysql: /run/mysqld
  mysqld_safe --user=mysql --pid-file=/run/mysqld/mysqld.pid >"$WORK/mysqld.log" 2>&1 &
  STARTED+=(/run/mysqld/mysqld.pid)
  wait_for 60 MariaDB mysqladmin ping
fi
mysql -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
          CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
          GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"

mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm
cat >/etc/slurm/slurmdbd.conf <<CONF
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
PidFile=/run/slurm/slurmdbd.pid
LogFile=/var/log/slurm/slurmdbd.log
CONF
chmod 600 /etc/slurm/slurmdbd.conf

##### slurm.conf: one node with this machine's CPUs and memory, one partition "cpu" #####
write_slurm_conf() {  # $1: the node's RealMemory (MB)
  cat >/etc/slurm/slurm.conf <<CONF
ClusterName=$CLUSTER
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
NodeName=$NODE CPUs=$(nproc) RealMemory=$1 State=UNKNOWN
PartitionName=cpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
}
write_slurm_conf 1000  # slurmd -C needs a config to read; the real figure follows
REAL_MEM="$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')"
REAL_MEM=$((REAL_MEM * 95 / 100))  # a margin, so that the node is never drained for memory
write_slurm_conf "$REAL_MEM"

if ! sacctmgr -n list cluster >/dev/null 2>&1; then
  slurmdbd
  STARTED+=(/run/slurm/slurmdbd.pid)
  wait_for 60 slurmdbd sacctmgr -n list cluster
fi
sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true
sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" >/dev/null 2>&1 || true
sacctmgr -i add user root Account="$ACCOUNT" Cluster="$CLUSTER" >/dev/null 2>&1 || true
sacctmgr -n -P list assoc user=root account="$ACCOUNT" | grep -q . || fail "no association of root with account $ACCOUNT"

if ! scontrol ping 2>/dev/null | grep -q UP; then
  slurmctld
  STARTED+=(/run/slurm/slurmctld.pid)
  wait_for 60 slurmctld sh -c "scontrol ping | grep -q UP"
fi
if ! pgrep -x slurmd >/dev/null; then
  slurmd
  STARTED+=(/run/slurm/slurmd.pid)
fi
scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
wait_for 60 "node $NODE (idle)" sh -c "sinfo -h -N -o %t | grep -qE '^(idle|mix|alloc)'"
say "SLURM up ($((SECONDS - T0)) s): $(sinfo -h -N -o '%N %c CPUs %m MB %t')"

##### the derived profile: profiles/slurm less what a CPU-only single node cannot give #####
mkdir -p "$WORK/profile"
"$PYTHON" - "$REPO" "$WORK/profile/config.yaml" "$ACCOUNT" "$REAL_MEM" "$(nproc)" <<'PY'
import re, sys
from pathlib import Path
import yaml

repo, out, account, real_mem, cpus = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
profile = yaml.safe_load((repo / "profiles" / "slurm" / "config.yaml").read_text())
profile.pop("use-conda", None)          # no conda channels on the test machine: the driver's env runs the jobs
profile["slurm-init-seconds-before-status-checks"] = 5   # a tiny screen: poll sacct often
cap = real_mem // 2                     # two jobs side by side fit the node
profile["default-resources"].update(slurm_account=account, slurm_partition="cpu",
                                     mem_mb=min(profile["default-resources"]["mem_mb"], cap))
rules = {m for p in (repo / "rules").rglob("*.smk") for m in re.findall(r"^rule (\w+):", p.read_text(), re.M)}
resources = profile.setdefault("set-resources", {})
for rule in sorted(rules):              # every rule: memory and CPUs within the node, no GPU
    res = resources.setdefault(rule, {})
    res["mem_mb"] = min(int(res.get("mem_mb", cap)), cap)
    res["cpus_per_task"] = min(int(res.get("cpus_per_task", 1)), cpus)
    if res.get("slurm_partition") == "gpu":
        res["slurm_partition"] = "cpu"
    res.pop("gpu", None)
Path(out).write_text(yaml.safe_dump(profile, sort_keys=False))
PY

##### the tiny screen #####
cat >"$WORK/tiny.yaml" <<'YAML'
simulate: {n_plates: 2, wells_per_plate: 2, tiles_per_well: 2, tile_size: 256, cells_per_tile: 30,
           plate_gene_fraction: 0.8}
preprocess: {flatfield: {n_tiles: 4}, rescale: {n_tiles: 4}}
evaluation: {ground_truth: {min_genes: 3}, map: {null_size: 100}, kmeans: {n_runs: 10, k_max: 8}}
methods:
  random: {enabled: true}
  engineered: {enabled: true}
  gene2vec: {enabled: false}
  grape: {enabled: false}
  impa: {enabled: false}
  vae: {enabled: false}
ood: {enabled: false}
YAML
TARGET=results/evaluation/metrics.tsv
SMK=("$PYTHON" -m snakemake --snakefile "$REPO/Snakefile" --directory "$WORK"
     --configfile "$REPO/config/config.yaml" "$WORK/tiny.yaml")
"${SMK[@]}" -n --profile "$WORK/profile" "$TARGET" >"$WORK/dryrun.log" 2>&1 \
  || { tail -30 "$WORK/dryrun.log"; fail "dry run"; }
say "running the tiny screen through SLURM (work dir $WORK)"
if ! "${SMK[@]}" --profile "$WORK/profile" "$TARGET" >"$WORK/snakemake.log" 2>&1; then
  tail -40 "$WORK/snakemake.log"; fail "snakemake --profile (log: $WORK/snakemake.log)"
fi
say "run finished ($((SECONDS - T0)) s)"

##### checks: the outputs, and every job a completed SLURM job #####
sacct -X -n -P --starttime "$START" --format=JobID,Comment,State >"$WORK/sacct.tsv"
"$PYTHON" - "$WORK" <<'PY'
import re, sys
from collections import Counter
from pathlib import Path
import pandas as pd

work = Path(sys.argv[1])
dry = (work / "dryrun.log").read_text()
stats = dry.split("Job stats:")[1]
expected = Counter({m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", stats, re.M)
                    if m.group(1) != "total"})
completed, other = Counter(), []
for line in (work / "sacct.tsv").read_text().splitlines():
    jobid, comment, state = line.split("|")
    rule = re.match(r"rule_(\w+?)(_wildcards_.*)?$", comment)
    if state == "COMPLETED" and rule:
        completed[rule.group(1)] += 1
    else:
        other.append(line)
assert expected and sum(expected.values()) >= 10, f"dry run lists too few jobs: {expected}"
missing = {r: n - completed[r] for r, n in expected.items() if completed[r] < n}
assert not missing, f"jobs without a completed SLURM job (sacct): {missing}; other sacct rows: {other}"
assert not other, f"sacct rows not completed or not of this workflow: {other}"
metrics = pd.read_csv(work / "results" / "evaluation" / "metrics.tsv", sep="\t")
pairs = set(zip(metrics["method"], metrics["ground_truth"]))
assert pairs == {(m, g) for m in ("random", "engineered") for g in ("complexes", "processes")}, pairs
assert metrics["mAP"].between(0, 1).all() and metrics["n_genes_evaluated"].gt(0).all()
for rule in expected:
    assert list((work / "results" / "logs").rglob(f"{rule}*")), f"no log of rule {rule}"
print(f"slurm-test: {sum(completed.values())} SLURM jobs completed, as the dry run listed: "
      + ", ".join(f"{r} x{n}" for r, n in sorted(expected.items())))
print(metrics[["method", "ground_truth", "mAP", "recall_10_90"]].to_string(index=False))
PY
say "PASSED in $((SECONDS - T0)) s"
