#!/bin/sh
# make udp-loss-demo: the lab 06 client pings the server across a link that
# loses, delays, duplicates and reorders datagrams, and shows its timeouts,
# retransmissions and statistics.
#
# The link, one of two:
# - netem, a real network (as root, on a kernel with sch_netem): two network
#   namespaces made for the demo, joined by a veth pair,
#     server side 10.200.0.1/24        client side 10.200.0.2/24
#   (addresses that exist inside those namespaces only), with
#   `tc qdisc add ... netem loss LOSS% delay DELAYms JITTERms duplicate DUP%
#   reorder REORDER%` on both ends: each direction suffers it. Everything is
#   removed at exit (trap).
# - the lab's lossy link (./link, link.rs), anywhere else: a UDP relay on
#   loopback between the client and the server that does the same to each
#   datagram, in each direction, with no root and no netem (containers, WSL,
#   most CI machines). NETEM=0 chooses it even where netem works.
# It says which, and why.
#
# Settings, from the environment: SERVER, CLIENT and LINK (default: ./server,
# ./client and ./link beside this script; SERVER=labs/06-udp/server-c
# CLIENT=labs/06-udp/client-c LINK=labs/06-udp/link-c for the C twins),
# COUNT (30 datagrams), LOSS (20 %), DELAY (50 ms), JITTER (20 ms), DUP
# (5 %), REORDER (10 %), INTERVAL (100 ms), TIMEOUT (250 ms), RETRIES (5),
# SEED (the link's draws; default: from the clock), NETEM (0: the link).
#
# The server's count comes from its log, one line per datagram; but the
# server logs 100 datagrams at once, then 10 a second: past some 100
# datagrams in all (COUNT and the retransmissions), the count falls short
# (the server's `... N more datagrams not logged` lines say by how much).

set -u
here=$(cd "$(dirname "$0")" && pwd)
SERVER=${SERVER:-$here/server}
CLIENT=${CLIENT:-$here/client}
LINK=${LINK:-$here/link}
COUNT=${COUNT:-30}
LOSS=${LOSS:-20}
DELAY=${DELAY:-50}
JITTER=${JITTER:-20}
DUP=${DUP:-5}
REORDER=${REORDER:-10}
INTERVAL=${INTERVAL:-100}
TIMEOUT=${TIMEOUT:-250}
RETRIES=${RETRIES:-5}
SEED=${SEED:-}
NETEM=${NETEM:-1}

for prog in "$SERVER" "$CLIENT" "$LINK"; do
  if [ ! -x "$prog" ]; then
    echo "udp-loss-demo: $prog is missing: run make first" >&2
    exit 1
  fi
done

# Names of our own, so that two demos at once do not meet (veth names: 15
# characters at most).
tag=$$
ns_server=udpdemo-$tag-server
ns_client=udpdemo-$tag-client
veth_server=udp$tag-s
veth_client=udp$tag-c
work=$(mktemp -d)
server_pid=
link_pid=
made_ns=

remove_namespaces() {
  if [ -n "$made_ns" ]; then
    # Deleting a namespace deletes the veth end inside it, and with it the
    # pair; a pair that never left this namespace goes with `ip link del`.
    ip netns del "$ns_server" 2>/dev/null
    ip netns del "$ns_client" 2>/dev/null
    ip link del "$veth_server" 2>/dev/null
    made_ns=
  fi
}

cleanup() {
  for pid in $server_pid $link_pid; do
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  remove_namespaces
  rm -rf "$work"
}
# On a signal too (a closed terminal, a closed pipe, Ctrl-C, kill): exit,
# and so clean up.
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 141' PIPE
trap 'exit 143' TERM

make_namespaces() {
  ip netns add "$ns_server" &&
    ip netns add "$ns_client" &&
    ip link add "$veth_server" type veth peer name "$veth_client" &&
    ip link set "$veth_server" netns "$ns_server" &&
    ip link set "$veth_client" netns "$ns_client" &&
    ip -n "$ns_server" addr add 10.200.0.1/24 dev "$veth_server" &&
    ip -n "$ns_client" addr add 10.200.0.2/24 dev "$veth_client" &&
    ip -n "$ns_server" link set "$veth_server" up &&
    ip -n "$ns_client" link set "$veth_client" up
}

# netem's delay takes its jitter after it; its reorder needs a delay.
netem_args() {
  echo "loss $LOSS% delay ${DELAY}ms ${JITTER}ms duplicate $DUP%" \
    "$([ "$REORDER" != 0 ] && [ "$DELAY" != 0 ] && echo "reorder $REORDER%")"
}

add_netem() {
  # shellcheck disable=SC2046 # the words of netem_args, split on purpose
  tc -n "$ns_server" qdisc add dev "$veth_server" root netem $(netem_args) &&
    tc -n "$ns_client" qdisc add dev "$veth_client" root netem $(netem_args)
}

# Waits for the first line of the log $1 (the program's pid $2): `listening
# on ADDR:PORT`, the readiness signal of every server; prints PORT.
port_of() {
  tries=0
  until grep -q '^listening on ' "$1"; do
    tries=$((tries + 1))
    if [ $tries -gt 200 ] || ! kill -0 "$2" 2>/dev/null; then
      echo "udp-loss-demo: $3 did not start:" >&2
      cat "$1" >&2
      exit 1
    fi
    sleep 0.05
  done
  sed -n '1s/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$1"
}

# Which link: netem between namespaces, or the lab's link on loopback.
mode=link
if [ "$NETEM" = 0 ]; then
  why="NETEM=0 asks for the lab's link"
elif [ "$(id -u)" != 0 ]; then
  why="not root: network namespaces and tc need root (try: sudo make udp-loss-demo)"
elif ! command -v ip >/dev/null 2>&1 || ! command -v tc >/dev/null 2>&1; then
  why="iproute2 (ip, tc) is not installed"
else
  made_ns=yes
  if ! err=$(make_namespaces 2>&1); then
    why="cannot make network namespaces: $err"
    remove_namespaces
  elif ! err=$(add_netem 2>&1); then
    why="tc netem is not available here ($err): the kernel lacks sch_netem"
    remove_namespaces
  else
    mode=netem
  fi
fi

echo "== UDP across a lossy link =="
faults="loss $LOSS%, delay $DELAY ms ± $JITTER ms, duplicate $DUP%, reorder $REORDER%"
case $mode in
  netem)
    echo "server 10.200.0.1 in network namespace $ns_server, client 10.200.0.2 in $ns_client,"
    echo "joined by a veth pair; tc netem on both ends, in each direction: $faults."
    ;;
  link)
    echo "No netem: $why."
    echo "Instead, on loopback, the lab's link relays the datagrams, in each direction: $faults."
    ;;
esac

if [ $mode = link ]; then
  "$SERVER" 0 --bind 127.0.0.1 >"$work/server.log" 2>&1 &
else
  ip netns exec "$ns_server" "$SERVER" 4242 --bind 10.200.0.1 >"$work/server.log" 2>&1 &
fi
server_pid=$!
port=$(port_of "$work/server.log" "$server_pid" "the server") || exit 1

if [ $mode = link ]; then
  set -- --loss "$LOSS" --delay "$DELAY" --jitter "$JITTER" --dup "$DUP"
  [ "$DELAY" = 0 ] || set -- "$@" --reorder "$REORDER"
  [ -z "$SEED" ] || set -- "$@" --seed "$SEED"
  echo "\$ link 0 --bind 127.0.0.1 --to 127.0.0.1:$port $*"
  "$LINK" 0 --bind 127.0.0.1 --to "127.0.0.1:$port" "$@" >"$work/link.log" 2>&1 &
  link_pid=$!
  port=$(port_of "$work/link.log" "$link_pid" "the link") || exit 1
  sed -n 2p "$work/link.log"
fi

set -- --count "$COUNT" --interval "$INTERVAL" --timeout "$TIMEOUT" --retries "$RETRIES"
echo
if [ $mode = link ]; then
  echo "\$ client 127.0.0.1 $port $*   (the link's port)"
  { "$CLIENT" 127.0.0.1 "$port" "$@" 2>&1; echo $? >"$work/status"; } | tee "$work/client.out"
else
  echo "\$ client 10.200.0.1 $port $*"
  { ip netns exec "$ns_client" "$CLIENT" 10.200.0.1 "$port" "$@" 2>&1; echo $? >"$work/status"; } |
    tee "$work/client.out"
fi

# The link says what it did when it ends (SIGTERM); it sees the signal
# within a second.
if [ -n "$link_pid" ]; then
  kill -TERM "$link_pid" 2>/dev/null
  wait "$link_pid" 2>/dev/null
  link_pid=
fi

received=$(grep -c '^datagram of' "$work/server.log")
echo
echo "== what happened =="
echo "client: $(grep 'datagrams sent' "$work/client.out")"
if [ $mode = link ]; then
  grep -e '^client -> server: ' -e '^server -> client: ' "$work/link.log" | sed 's/^/link:   /'
fi
echo "server: received $received datagrams for $COUNT sequence numbers."
echo "Every datagram beyond $COUNT is a retransmission (of a request that was lost, or of one"
echo "whose echo was lost or late, which the server then answered twice: it cannot tell),"
echo "or a copy the link made. Each echo the client ignored came late or twice."
echo "client exit status: $(cat "$work/status") (0: every datagram echoed; 1: some lost even after $RETRIES retransmissions)"
exit 0
