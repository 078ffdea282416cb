#!/usr/bin/env bash
# Multi-host test bed made of Linux network namespaces.
#
# N hosts P-h1..P-hN, each a network namespace with one veth (eth0,
# 10.213.0.<i>/24) plugged into a bridge that lives in a switch namespace
# P-sw. Nothing is added to the root namespace. See README.md beside this file.
#
# Usage: netns.sh COMMAND ARGS...   (netns.sh help lists the commands)
#
# Exit codes: 0 ok, 1 failure, 2 usage error, 77 skip (not root, a tool is
# missing, or the kernel refuses to create namespaces).
set -euo pipefail

readonly SKIP=77
readonly SUBNET=10.213.0
readonly MCAST_ROUTE=224.0.0.0/4
readonly MAX_HOSTS=250
readonly LOSS_TABLE=strata_loss
readonly CUT_TABLE=strata_cut
readonly HOST_IF=eth0
readonly BRIDGE=br0
UP_PREFIX=""

usage() {
  cat <<'EOF'
usage: netns.sh COMMAND ARGS...

  check                       exit 0 if the test bed can run here, else print
                              "skip: <reason>" and exit 77
  up N [--prefix P]           create hosts P-h1..P-hN and switch P-sw; prints P
                              (default P: snt<pid of the caller>)
  down P                      kill every process in P's namespaces, delete them
                              (idempotent)
  with N [--prefix P] -- CMD...
                              up, run CMD with NETNS_PREFIX=P and NETNS_SH set,
                              then down (also on failure, Ctrl-C or SIGTERM)
  exec P I CMD...             run CMD in host I in the foreground (exec: the
                              process keeps this PID; exit status is CMD's)
  spawn P I LOG CMD...        run CMD in host I in the background, stdout and
                              stderr to LOG; prints its PID
  kill P I                    SIGKILL every process in host I
  loss P I PCT [in|out|both]  drop PCT% of UDP packets arriving on (in, the
                              default) and/or leaving (out) host I's eth0;
                              PCT 0 removes the rule
  cut P I                     drop all IP traffic in and out of host I's eth0
  heal P I                    undo cut
  addr I                      print host I's address (10.213.0.I)
  list                        print the prefixes of existing test beds
  gc                          down every test bed with a default prefix whose
                              creating process is gone
EOF
}

die() {
  echo "netns.sh: $*" >&2
  exit 1
}

usage_error() {
  echo "netns.sh: $*" >&2
  usage >&2
  exit 2
}

skip() {
  echo "skip: $*"
  exit "$SKIP"
}

# check: root, ip and nft present. Prints the reason and exits 77 otherwise.
check() {
  [ "$(id -u)" = 0 ] || skip "network namespaces need root (uid is $(id -u))"
  command -v ip >/dev/null 2>&1 || skip "'ip' (iproute2) not installed"
  command -v nft >/dev/null 2>&1 || skip "'nft' (nftables) not installed"
}

valid_prefix() {
  [[ "$1" =~ ^[A-Za-z0-9_]{1,24}$ ]] || usage_error "bad prefix '$1' (1-24 of [A-Za-z0-9_])"
}

# in_range VALUE LO HI: VALUE is a decimal integer in [LO, HI].
in_range() {
  [[ "$1" =~ ^[0-9]{1,4}$ ]] && [ "$((10#$1))" -ge "$2" ] && [ "$((10#$1))" -le "$3" ]
}

valid_count() {
  in_range "$1" 1 "$MAX_HOSTS" || usage_error "bad host count '$1' (1-$MAX_HOSTS)"
}

host_ns() { echo "$1-h$2"; }
switch_ns() { echo "$1-sw"; }

ns_exists() {
  ip netns list | awk -v name="$1" '$1 == name { found = 1 } END { exit !found }'
}

# The namespaces belonging to prefix P, one per line.
namespaces_of() {
  ip netns list | awk '{print $1}' | grep -E -- "^$1-(sw|h[0-9]+)\$" || true
}

# require_host P I: validate and check that host I of P exists.
require_host() {
  valid_prefix "$1"
  in_range "$2" 1 "$MAX_HOSTS" || usage_error "bad host index '$2'"
  ns_exists "$(host_ns "$1" "$2")" || die "no host $2 in test bed $1"
}

kill_ns_processes() {
  local ns=$1 pids
  pids=$(ip netns pids "$ns" 2>/dev/null || true)
  if [ -n "$pids" ]; then
    # shellcheck disable=SC2086 # one PID per word
    kill -KILL $pids 2>/dev/null || true
  fi
}

cmd_down() {
  [ $# -eq 1 ] || usage_error "down takes one argument: P"
  valid_prefix "$1"
  local ns
  for ns in $(namespaces_of "$1"); do
    kill_ns_processes "$ns"
  done
  for ns in $(namespaces_of "$1"); do
    # Deleting a namespace deletes its veth ends and the bridge with it.
    ip netns del "$ns" 2>/dev/null || true
  done
  [ -z "$(namespaces_of "$1")" ] || die "could not delete all namespaces of $1"
}

cmd_up() {
  local n="" prefix="snt$PPID"
  while [ $# -gt 0 ]; do
    case $1 in
      --prefix)
        [ $# -ge 2 ] || usage_error "--prefix needs a value"
        prefix=$2
        shift 2
        ;;
      *)
        [ -z "$n" ] || usage_error "unexpected argument '$1'"
        n=$1
        shift
        ;;
    esac
  done
  [ -n "$n" ] || usage_error "up needs N"
  valid_count "$n"
  valid_prefix "$prefix"
  check
  [ -z "$(namespaces_of "$prefix")" ] || die "test bed $prefix already exists (netns.sh down $prefix)"

  local sw
  sw=$(switch_ns "$prefix")
  if ! ip netns add "$sw" 2>/dev/null; then
    skip "cannot create network namespaces here (ip netns add failed)"
  fi
  # From here on, any failure removes what was made.
  trap 'cmd_down "$prefix" >/dev/null 2>&1 || true' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  ip -n "$sw" link set lo up
  if ! ip -n "$sw" link add "$BRIDGE" type bridge stp_state 0 forward_delay 0 mcast_snooping 0 2>/dev/null; then
    skip "kernel cannot create a bridge (bridge module missing?)"
  fi
  ip -n "$sw" link set "$BRIDGE" up

  local i ns
  for ((i = 1; i <= n; i++)); do
    ns=$(host_ns "$prefix" "$i")
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # Both veth ends are created directly in their namespaces: nothing ever
    # appears in the root namespace.
    ip -n "$sw" link add "h$i" type veth peer name "$HOST_IF" netns "$ns"
    ip -n "$sw" link set "h$i" master "$BRIDGE"
    ip -n "$sw" link set "h$i" up
    ip -n "$ns" addr add "$SUBNET.$i/24" dev "$HOST_IF"
    ip -n "$ns" link set "$HOST_IF" up
    ip -n "$ns" route add "$MCAST_ROUTE" dev "$HOST_IF"
  done
  if ! ip netns exec "$(host_ns "$prefix" 1)" nft list tables >/dev/null 2>&1; then
    skip "nftables does not work in a namespace here (nf_tables module missing?)"
  fi
  trap - EXIT INT TERM
  UP_PREFIX=$prefix
}

# State of `with`, global because the EXIT trap runs after cmd_with returns.
WITH_PREFIX=""
WITH_CHILD=""

with_cleanup() {
  if [ -n "$WITH_CHILD" ]; then
    kill -TERM "$WITH_CHILD" 2>/dev/null || true
  fi
  if [ -n "$WITH_PREFIX" ]; then
    cmd_down "$WITH_PREFIX" || true
  fi
}

cmd_with() {
  local args=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    args+=("$1")
    shift
  done
  [ $# -ge 2 ] || usage_error "with needs -- CMD..."
  shift
  cmd_up --prefix "snt$$" "${args[@]}"
  WITH_PREFIX=$UP_PREFIX
  trap with_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  # In the background so that a signal to this script is handled at once
  # (bash runs traps only between commands); stdin stays the caller's.
  NETNS_PREFIX=$WITH_PREFIX NETNS_SH=$(realpath "$0") "$@" <&0 &
  WITH_CHILD=$!
  local status=0
  wait "$WITH_CHILD" || status=$?
  WITH_CHILD=""
  return "$status"
}

cmd_exec() {
  [ $# -ge 3 ] || usage_error "exec takes P I CMD..."
  require_host "$1" "$2"
  local ns
  ns=$(host_ns "$1" "$2")
  shift 2
  exec ip netns exec "$ns" "$@"
}

cmd_spawn() {
  [ $# -ge 4 ] || usage_error "spawn takes P I LOG CMD..."
  require_host "$1" "$2"
  local ns log=$3
  ns=$(host_ns "$1" "$2")
  shift 3
  ip netns exec "$ns" "$@" </dev/null >"$log" 2>&1 &
  echo "$!"
}

cmd_kill() {
  [ $# -eq 2 ] || usage_error "kill takes P I"
  require_host "$1" "$2"
  kill_ns_processes "$(host_ns "$1" "$2")"
}

# nft_replace NS TABLE BODY: atomically replace (or with empty BODY, remove)
# an inet table in namespace NS.
nft_replace() {
  local ns=$1 table=$2 body=$3
  {
    echo "table inet $table {}"
    echo "delete table inet $table"
    if [ -n "$body" ]; then
      echo "table inet $table {"
      echo "$body"
      echo "}"
    fi
  } | ip netns exec "$ns" nft -f -
}

cmd_loss() {
  in_range $# 3 4 || usage_error "loss takes P I PCT [in|out|both]"
  require_host "$1" "$2"
  local ns pct=$3 dir=${4:-in}
  ns=$(host_ns "$1" "$2")
  in_range "$pct" 0 100 || usage_error "bad percentage '$pct' (0-100)"
  pct=$((10#$pct))
  local drop="meta l4proto udp numgen random mod 100 < $pct drop"
  local in_chain="chain input { type filter hook input priority 0; policy accept; iifname \"$HOST_IF\" $drop; }"
  local out_chain="chain output { type filter hook output priority 0; policy accept; oifname \"$HOST_IF\" $drop; }"
  local body
  case $dir in
    in) body=$in_chain ;;
    out) body=$out_chain ;;
    both) body="$in_chain"$'\n'"$out_chain" ;;
    *) usage_error "bad direction '$dir' (in, out or both)" ;;
  esac
  [ "$pct" -gt 0 ] || body=""
  nft_replace "$ns" "$LOSS_TABLE" "$body"
}

cmd_cut() {
  [ $# -eq 2 ] || usage_error "cut takes P I"
  require_host "$1" "$2"
  nft_replace "$(host_ns "$1" "$2")" "$CUT_TABLE" \
    "chain input { type filter hook input priority -10; policy accept; iifname \"$HOST_IF\" drop; }
chain output { type filter hook output priority -10; policy accept; oifname \"$HOST_IF\" drop; }"
}

cmd_heal() {
  [ $# -eq 2 ] || usage_error "heal takes P I"
  require_host "$1" "$2"
  nft_replace "$(host_ns "$1" "$2")" "$CUT_TABLE" ""
}

cmd_addr() {
  [ $# -eq 1 ] || usage_error "addr takes I"
  in_range "$1" 1 "$MAX_HOSTS" || usage_error "bad host index '$1'"
  echo "$SUBNET.$1"
}

cmd_list() {
  ip netns list | awk '{print $1}' | sed -nE 's/^([A-Za-z0-9_]+)-sw$/\1/p' | sort -u
}

cmd_gc() {
  local prefix pid
  for prefix in $(cmd_list); do
    if [[ "$prefix" =~ ^snt([0-9]+) ]]; then
      pid=${BASH_REMATCH[1]}
      if ! kill -0 "$pid" 2>/dev/null; then
        echo "removing $prefix"
        cmd_down "$prefix"
      fi
    fi
  done
}

main() {
  [ $# -ge 1 ] || usage_error "missing command"
  local cmd=$1
  shift
  case $cmd in
    help | -h | --help) usage ;;
    check) check ;;
    up)
      cmd_up "$@"
      echo "$UP_PREFIX"
      ;;
    down) check && cmd_down "$@" ;;
    with) cmd_with "$@" ;;
    exec) check && cmd_exec "$@" ;;
    spawn) check && cmd_spawn "$@" ;;
    kill) check && cmd_kill "$@" ;;
    loss) check && cmd_loss "$@" ;;
    cut) check && cmd_cut "$@" ;;
    heal) check && cmd_heal "$@" ;;
    addr) cmd_addr "$@" ;;
    list) check && cmd_list ;;
    gc) check && cmd_gc ;;
    *) usage_error "unknown command '$cmd'" ;;
  esac
}

main "$@"
