#!/usr/bin/env bash
# Multi-host run of one stack: N `strata member` processes, one per network
# namespace host (netns.sh beside this file), through UDP loss on some hosts,
# a cut of one host and its healing, and a SIGKILL of another member that is
# then restarted as a new incarnation. Writes every member's trace, its output
# with timestamps, and a timeline; the caller judges the traces (see README.md;
# `stacks/tests/multihost_vsync.rs` does).
#
# Usage: multihost.sh --strata BIN --out DIR [options]   (--help lists them)
#
# Exit codes: 0 the scenario ran to its end, 1 a phase did not happen in time
# or a command failed, 2 usage error, 77 skip (not root, ip or nft missing,
# namespaces refused).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
readonly HERE
readonly NETNS=$HERE/netns.sh

STRATA=""
STACK=""
OUT=""
HOSTS=5
LOSS_HOSTS="2,4"
LOSS_PCT=10
CUT=""
KILL=3
RATE=100
SIZE=100
SEND_SECONDS=30
CUT_SECONDS=5
RESTART_DELAY=2
SETTLE=3
PHASE_TIMEOUT=30
TIMEOUT=150

usage() {
  cat <<'EOF'
usage: multihost.sh --strata BIN --out DIR [options]

  --strata BIN        the strata binary
  --out DIR           where to write (created; must be empty or absent):
                        stack-h<i>.ron   the descriptor each host runs
                        traces/          every member's trace (<member>.jsonl)
                        logs/h<i>.<inc>.log   incarnation <inc> of host i's
                                         stdout, each line "<ms>\t<line>"
                        events.tsv       the harness's actions, "<ms>\t<what>"
                        timeline.txt     both merged, in time order
  --stack FILE        descriptor with a one-line `transport: Udp(...)`
                      (default: stacks/vsync.ron of this repository)
  --hosts N           hosts (default 5)
  --loss I,J,...      hosts losing UDP packets (default 2,4; "" for none)
  --loss-pct PCT      their loss, in and out, percent (default 10)
  --cut I             host cut off then healed (default: the last; 0: none)
  --cut-seconds S     how long the cut lasts (default 5)
  --kill I            host whose member is SIGKILLed (default 3; 0: none)
  --restart-delay S   a member that ended unasked restarts after S seconds as
                      the next incarnation (default 2)
  --rate R            casts per second per member (default 100)
  --size B            payload bytes (default 100)
  --send-seconds S    every member casts until S seconds after the start
                      (default 30)
  --settle S          quiet time after the last cast and the last phase before
                      the members are stopped (default 3)
  --phase-timeout S   longest wait for one phase (default 30)
  --timeout S         longest whole run (default 150)

Host i is 10.213.0.<i>; its member is `--name h<i>`, incarnation 0, then 1,
2... at each restart. A member restarts when it exits by itself (excluded
from the group: "exit: exited") or is killed; at the end every member is
stopped with SIGTERM at once, so every live member writes `end` in its trace.
Exits 0 when every phase happened, 1 otherwise; 77 when the test bed cannot
run here.
EOF
}

die() {
  echo "multihost.sh: $*" >&2
  exit 1
}

usage_error() {
  echo "multihost.sh: $*" >&2
  exit 2
}

while [ $# -gt 0 ]; do
  case $1 in
    -h | --help)
      usage
      exit 0
      ;;
    --strata | --stack | --out | --hosts | --loss | --loss-pct | --cut | --cut-seconds | --kill | \
      --restart-delay | --rate | --size | --send-seconds | --settle | --phase-timeout | --timeout)
      [ $# -ge 2 ] || usage_error "$1 needs a value"
      case $1 in
        --strata) STRATA=$2 ;;
        --stack) STACK=$2 ;;
        --out) OUT=$2 ;;
        --hosts) HOSTS=$2 ;;
        --loss) LOSS_HOSTS=$2 ;;
        --loss-pct) LOSS_PCT=$2 ;;
        --cut) CUT=$2 ;;
        --cut-seconds) CUT_SECONDS=$2 ;;
        --kill) KILL=$2 ;;
        --restart-delay) RESTART_DELAY=$2 ;;
        --rate) RATE=$2 ;;
        --size) SIZE=$2 ;;
        --send-seconds) SEND_SECONDS=$2 ;;
        --settle) SETTLE=$2 ;;
        --phase-timeout) PHASE_TIMEOUT=$2 ;;
        --timeout) TIMEOUT=$2 ;;
      esac
      shift 2
      ;;
    *) usage_error "unknown argument '$1' (--help lists them)" ;;
  esac
done

[ -n "$STRATA" ] || usage_error "--strata is required"
[ -n "$OUT" ] || usage_error "--out is required"
[ -x "$STRATA" ] || usage_error "--strata $STRATA is not an executable"
[ -n "$STACK" ] || STACK=$HERE/../../stacks/vsync.ron
[ -f "$STACK" ] || usage_error "no descriptor $STACK"
[ -z "$CUT" ] && CUT=$HOSTS
for v in HOSTS LOSS_PCT CUT KILL RATE SIZE SEND_SECONDS CUT_SECONDS RESTART_DELAY SETTLE \
  PHASE_TIMEOUT TIMEOUT; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || usage_error "--${v,,} must be a whole number (got '${!v}')"
done
[[ "$LOSS_HOSTS" =~ ^([0-9]+(,[0-9]+)*)?$ ]] || usage_error "--loss takes host numbers I,J,..."
if [ "$HOSTS" -lt 1 ] || [ "$HOSTS" -gt 250 ]; then usage_error "--hosts must be 1-250"; fi
for i in ${LOSS_HOSTS//,/ } "$CUT" "$KILL"; do
  [ "$i" -le "$HOSTS" ] || usage_error "host $i is not one of 1-$HOSTS"
done
[ "$CUT" = 0 ] || [ "$CUT" != "$KILL" ] || usage_error "--cut and --kill must be different hosts"

# Skips (exit 77, "skip: <reason>") unless root with ip and nft.
"$NETNS" check

# --- Time and records -------------------------------------------------------

T0=${EPOCHREALTIME/./}
# NOW: milliseconds since the start.
now() { local t=${EPOCHREALTIME/./}; NOW=$(((10#$t - 10#$T0) / 1000)); }
event() {
  now
  printf '%d\t%s\n' "$NOW" "$*" >>"$OUT/events.tsv"
  printf '%8s  harness  %s\n' "$(bc_div "$NOW")" "$*"
}
bc_div() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); }
# Prefixes every line of standard input with the time.
stamp() {
  local line
  while IFS= read -r line; do
    now
    printf '%d\t%s\n' "$NOW" "$line"
  done
}

mkdir -p "$OUT"
[ -z "$(ls -A "$OUT")" ] || usage_error "--out $OUT is not empty"
OUT=$(cd "$OUT" && pwd)
mkdir -p "$OUT/traces" "$OUT/logs"
: >"$OUT/events.tsv"

PREFIX="mh$$"
SUPERVISORS=()
STOPPING=$OUT/.stopping

cleanup() {
  touch "$STOPPING" 2>/dev/null || true
  "$NETNS" down "$PREFIX" >/dev/null 2>&1 || true
  local p
  for p in "${SUPERVISORS[@]}"; do
    kill -TERM "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -f "$STOPPING" "$OUT"/inc-h* 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

deadline_ms=$((TIMEOUT * 1000))
overdue() {
  now
  [ "$NOW" -ge "$deadline_ms" ]
}

# --- The test bed and the descriptors ---------------------------------------

"$NETNS" up "$HOSTS" --prefix "$PREFIX" >/dev/null
event "up: $HOSTS hosts (prefix $PREFIX), 10.213.0.1-$HOSTS"

# A group and port unique to this run.
PORT=$((20000 + $$ % 20000))
GROUP="239.255.77.$((1 + $$ % 250)):$PORT"
grep -Eq '^[[:space:]]*transport: Udp\(.*\),[[:space:]]*$' "$STACK" ||
  die "$STACK: expected a one-line 'transport: Udp(...)' to rewrite"
for ((i = 1; i <= HOSTS; i++)); do
  sed -E "s|^([[:space:]]*transport: )Udp\(.*\),[[:space:]]*\$|\1Udp(group: \"$GROUP\", interface: \"10.213.0.$i\"),|" \
    "$STACK" >"$OUT/stack-h$i.ron"
done
event "stack $(basename "$STACK"): Udp(group: \"$GROUP\", interface: \"10.213.0.<i>\")"

for i in ${LOSS_HOSTS//,/ }; do
  "$NETNS" loss "$PREFIX" "$i" "$LOSS_PCT" both
  event "loss h$i: $LOSS_PCT% of UDP in and out"
done

# --- Members ----------------------------------------------------------------

SEND_END_MS=$((SEND_SECONDS * 1000))

# supervise I: runs host I's member, restarting it as the next incarnation
# whenever it ends before the harness stops the run.
supervise() {
  local i=$1 inc=0 status reason send_for log
  trap - EXIT INT TERM
  while [ ! -e "$STOPPING" ]; do
    log=$OUT/logs/h$i.$inc.log
    echo "$inc" >"$OUT/inc-h$i"
    now
    send_for=$(((SEND_END_MS - NOW) / 1000))
    local send=()
    [ "$send_for" -gt 0 ] && send=(--send-for "$send_for" --rate "$RATE" --size "$SIZE")
    event "start h$i incarnation $inc${send:+ (casting for ${send_for} s)}"
    status=0
    "$NETNS" exec "$PREFIX" "$i" "$STRATA" member --stack "$OUT/stack-h$i.ron" \
      --name "h$i" --incarnation "$inc" --trace "$OUT/traces" --duration "$TIMEOUT" \
      "${send[@]}" 2>"$OUT/logs/h$i.$inc.err" | stamp >"$log" || status=$?
    [ ! -e "$STOPPING" ] || break
    reason=$(sed -nE 's/.*; exit: ([a-z]+)$/\1/p' "$log" | tail -1)
    if [ -n "$reason" ]; then
      event "h$i incarnation $inc ended (exit: $reason, status $status)"
    else
      event "h$i incarnation $inc ended without a summary (status $status)"
    fi
    sleep "$RESTART_DELAY"
    inc=$((inc + 1))
  done
}

for ((i = 1; i <= HOSTS; i++)); do
  # (stderr: bash's notice of a member killed by a signal)
  supervise "$i" 2>>"$OUT/logs/supervisors.err" &
  SUPERVISORS+=($!)
done

# --- Reading the members' state from their output ---------------------------

# The current log of host I.
cur_log() { echo "$OUT/logs/h$1.$(cat "$OUT/inc-h$1" 2>/dev/null || echo 0).log"; }
# The member id of host I's current incarnation (empty before it printed it).
# A member excluded while alive rejoins in the same process as its next
# incarnation and logs "rejoin <id>": the latest of those names it.
member_of() {
  local log
  log=$(cur_log "$1")
  sed -nE -e 's/^[0-9]+\tmember [^ ]+ \((m[0-9]+\.[0-9]+)\).*/\1/p' \
    -e 's/^[0-9]+\trejoin (m[0-9]+\.[0-9]+).*/\1/p' "$log" 2>/dev/null | tail -1
}
# The last view of host I's current incarnation: "<id> <member>...".
view_of() {
  sed -nE 's/^[0-9]+\tview ([0-9]+) ([^(]*) \(.*/\1 \2/p' "$(cur_log "$1")" 2>/dev/null | tail -1
}

# agreed HOSTS...: those hosts' current members share their last view, and it
# holds exactly them. Sets VIEW to it.
agreed() {
  local h v members=()
  VIEW=""
  for h in "$@"; do
    v=$(view_of "$h")
    [ -n "$v" ] || return 1
    [ -z "$VIEW" ] || [ "$v" = "$VIEW" ] || return 1
    VIEW=$v
    members+=("$(member_of "$h")")
  done
  local list=" ${VIEW#* } "
  [ "$(wc -w <<<"${VIEW#* }")" -eq $# ] || return 1
  for h in "${members[@]}"; do
    [[ "$list" == *" $h "* ]] || return 1
  done
}

# wait_for WHAT COMMAND...: polls COMMAND until it succeeds, at most
# PHASE_TIMEOUT seconds (and within the whole run's limit).
wait_for() {
  local what=$1 limit
  shift
  now
  limit=$((NOW + PHASE_TIMEOUT * 1000))
  until "$@"; do
    now
    if [ "$NOW" -ge "$limit" ] || overdue; then
      event "TIMEOUT waiting for: $what"
      return 1
    fi
    sleep 0.05
  done
  event "$what"
}

all_hosts() { seq 1 "$HOSTS"; }
others() { all_hosts | grep -vx -e "$1" -e "${2:-0}" | tr '\n' ' '; }

# excluded OLD HOSTS...: HOSTS' current members share their last view, it holds
# them all and not OLD (it may already hold a restarted member of another host).
excluded() {
  local old=$1 h v
  shift
  VIEW=""
  for h in "$@"; do
    v=$(view_of "$h")
    [ -n "$v" ] || return 1
    [ -z "$VIEW" ] || [ "$v" = "$VIEW" ] || return 1
    VIEW=$v
    [[ " ${VIEW#* } " == *" $(member_of "$h") "* ]] || return 1
  done
  [[ " ${VIEW#* } " != *" $old "* ]]
}

# not_primary I: host I's current member reported it is not in the primary partition.
not_primary() { grep -q $'\tnot-primary$' "$(cur_log "$1")"; }

# rejoined I OLD HOSTS...: host I runs a member other than OLD, and all HOSTS agree
# on a view of exactly their members.
rejoined() {
  local i=$1 old=$2
  shift 2
  local m
  m=$(member_of "$i")
  [ -n "$m" ] && [ "$m" != "$old" ] && agreed "$@"
}

FAILED=0
phase() { wait_for "$@" || FAILED=1; }

# --- The scenario -----------------------------------------------------------

# shellcheck disable=SC2046 # one host per word
phase "all $HOSTS members in one view" agreed $(all_hosts)
[ "$FAILED" = 0 ] && event "view: $VIEW"

if [ "$FAILED" = 0 ] && [ "$CUT" != 0 ]; then
  sleep 2
  cut_member=$(member_of "$CUT")
  "$NETNS" cut "$PREFIX" "$CUT"
  event "cut h$CUT ($cut_member): all its IP traffic dropped"
  cut_at=$NOW
  # shellcheck disable=SC2046
  phase "majority installed a view without $cut_member" excluded "$cut_member" $(others "$CUT")
  [ "$FAILED" = 0 ] && event "view: $VIEW"
  phase "$cut_member reports not-primary" not_primary "$CUT"
  now
  cut_left=$((CUT_SECONDS * 1000 - (NOW - cut_at)))
  [ "$cut_left" -le 0 ] || sleep "$(bc_div "$cut_left")"
  "$NETNS" heal "$PREFIX" "$CUT"
  event "heal h$CUT"
  # shellcheck disable=SC2046
  phase "h$CUT rejoined as a new member; all $HOSTS in one view" \
    rejoined "$CUT" "$cut_member" $(all_hosts)
  [ "$FAILED" = 0 ] && event "view: $VIEW"
fi

if [ "$FAILED" = 0 ] && [ "$KILL" != 0 ]; then
  sleep 2
  kill_member=$(member_of "$KILL")
  "$NETNS" kill "$PREFIX" "$KILL"
  event "SIGKILL h$KILL ($kill_member)"
  # shellcheck disable=SC2046
  phase "survivors installed a view without $kill_member" \
    excluded "$kill_member" $(others "$KILL")
  [ "$FAILED" = 0 ] && event "view: $VIEW"
  # shellcheck disable=SC2046
  phase "h$KILL restarted as a new member; all $HOSTS in one view" \
    rejoined "$KILL" "$kill_member" $(all_hosts)
  [ "$FAILED" = 0 ] && event "view: $VIEW"
fi

# Quiet end: casting over (everyone's --send-for), then settle, then a
# last agreed view, then SIGTERM to every member at once.
now
[ "$NOW" -ge "$SEND_END_MS" ] || sleep "$(bc_div $((SEND_END_MS - NOW)))"
event "casting over"
sleep "$SETTLE"
# shellcheck disable=SC2046
[ "$FAILED" = 1 ] || phase "all $HOSTS members in one view at the end" agreed $(all_hosts)
[ "$FAILED" = 1 ] || event "view: $VIEW"

touch "$STOPPING"
pids=()
for ((i = 1; i <= HOSTS; i++)); do
  # shellcheck disable=SC2207
  pids+=($(ip netns pids "$PREFIX-h$i" 2>/dev/null || true))
done
event "SIGTERM to every member (${#pids[@]} processes)"
[ "${#pids[@]}" = 0 ] || kill -TERM "${pids[@]}" 2>/dev/null || true
for p in "${SUPERVISORS[@]}"; do
  for _ in $(seq 1 200); do
    kill -0 "$p" 2>/dev/null || break
    sleep 0.05
  done
done
event "members stopped"
"$NETNS" down "$PREFIX"
event "down: test bed removed"

# The timeline: the harness's actions and what the members printed about
# their membership, in time order, with member ids m<node>.<inc> written
# h<host>.<inc>.
names=()
for ((i = 1; i <= HOSTS; i++)); do
  node=$(sed -nE 's/^[0-9]+\tmember [^ ]+ \(m([0-9]+)\.[0-9]+\).*/\1/p' "$OUT/logs/h$i.0.log" 2>/dev/null | head -1)
  [ -z "$node" ] || names+=(-e "s/\bm$node\./h$i./g")
done
{
  printf '%s\n' "# time (s) since the start; members m<node>.<inc> are written h<host>.<inc>"
  sed -E 's/^([0-9]+)\t/\1\tharness\t/' "$OUT/events.tsv"
  for log in "$OUT"/logs/h*.log; do
    tag=$(basename "$log" .log)
    grep -P '\t(member |view |not-primary|suspect |exit$|sent |delivered )' "$log" |
      sed -E "s/^([0-9]+)\t/\1\t$tag\t/" || true
  done
} | sort -s -t $'\t' -k1,1n |
  awk -F'\t' '/^#/ { print; next } { printf "%4d.%03d  %-8s %s\n", $1 / 1000, $1 % 1000, $2, $3 }' |
  if [ "${#names[@]}" -gt 0 ]; then sed -E "${names[@]}"; else cat; fi >"$OUT/timeline.txt"

if [ "$FAILED" = 1 ]; then
  echo "multihost.sh: a phase did not happen in time (see $OUT/timeline.txt)" >&2
  exit 1
fi
