#!/bin/sh
# make udp-loss-demo: the lab 06 client pings the server across a link that
# loses and delays datagrams, and shows its timeouts, retransmissions and
# statistics.
#
# The link: two network namespaces made for the demo, joined by a veth pair,
#   server side 10.200.0.1/24        client side 10.200.0.2/24
# (addresses that exist inside those namespaces only), with
# `tc qdisc add ... netem loss LOSS% delay DELAY ms` on both ends: each
# direction loses and delays. Everything is removed at exit (trap).
#
# It needs root, iproute2 (ip, tc) and a kernel with netem (sch_netem).
# Without netem the server plays the lossy link itself (--drop LOSS); without
# root or iproute2 the demo runs on loopback with --drop. It says which.
#
# Settings, from the environment: SERVER and CLIENT (default: ./server and
# ./client beside this script; SERVER=labs/06-udp/server-c
# CLIENT=labs/06-udp/client-c for the C twins), COUNT (30 datagrams),
# LOSS (20 %), DELAY (20 ms), INTERVAL (100 ms), TIMEOUT (250 ms), RETRIES (5).
#
# The server's count comes from its log, one line per datagram; but the
# server logs 100 datagrams at once, then 10 a second: past some 100
# datagrams in all (COUNT and the retransmissions), the count falls short
# (the server's `... N more datagrams not logged` lines say by how much).

set -u
here=$(cd "$(dirname "$0")" && pwd)
SERVER=${SERVER:-$here/server}
CLIENT=${CLIENT:-$here/client}
COUNT=${COUNT:-30}
LOSS=${LOSS:-20}
DELAY=${DELAY:-20}
INTERVAL=${INTERVAL:-100}
TIMEOUT=${TIMEOUT:-250}
RETRIES=${RETRIES:-5}

for prog in "$SERVER" "$CLIENT"; do
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
made_ns=

cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
  fi
  if [ -n "$made_ns" ]; then
    # Deleting a namespace deletes the veth end inside it, and with it the
    # pair; a pair that never left this namespace goes with `ip link del`.
    ip netns del "$ns_server" 2>/dev/null
    ip netns del "$ns_client" 2>/dev/null
    ip link del "$veth_server" 2>/dev/null
  fi
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

add_netem() {
  tc -n "$ns_server" qdisc add dev "$veth_server" root netem loss "$LOSS%" delay "${DELAY}ms" &&
    tc -n "$ns_client" qdisc add dev "$veth_client" root netem loss "$LOSS%" delay "${DELAY}ms"
}

# Which link: netem between namespaces, --drop between namespaces, or
# --drop on loopback.
mode=netem
drop=
if [ "$(id -u)" != 0 ]; then
  mode=loopback
  why="not root: network namespaces and tc need root (try: sudo make udp-loss-demo)"
elif ! command -v ip >/dev/null 2>&1 || ! command -v tc >/dev/null 2>&1; then
  mode=loopback
  why="iproute2 (ip, tc) is not installed"
else
  made_ns=yes
  if ! err=$(make_namespaces 2>&1); then
    mode=loopback
    why="cannot make network namespaces: $err"
  elif ! err=$(add_netem 2>&1); then
    mode=drop
    why="tc netem is not available here ($err): the kernel lacks sch_netem"
  fi
fi

echo "== UDP across a lossy link =="
case $mode in
  netem)
    echo "server 10.200.0.1 in network namespace $ns_server, client 10.200.0.2 in $ns_client,"
    echo "joined by a veth pair; tc netem on both ends: each direction loses $LOSS% and adds $DELAY ms."
    ;;
  drop)
    drop="--drop $LOSS"
    echo "$why."
    echo "Instead the server leaves $LOSS% of the datagrams unanswered ($drop), without delay;"
    echo "server 10.200.0.1 in network namespace $ns_server, client 10.200.0.2 in $ns_client."
    ;;
  loopback)
    drop="--drop $LOSS"
    echo "No network namespaces: $why."
    echo "Instead, on loopback, the server leaves $LOSS% of the datagrams unanswered ($drop)."
    ;;
esac

if [ $mode = loopback ]; then
  "$SERVER" 0 --bind 127.0.0.1 $drop >"$work/server.log" 2>&1 &
else
  ip netns exec "$ns_server" "$SERVER" 4242 --bind 10.200.0.1 $drop >"$work/server.log" 2>&1 &
fi
server_pid=$!
# The server's first line says it is ready, and on which port.
tries=0
until grep -q '^listening on ' "$work/server.log"; do
  tries=$((tries + 1))
  if [ $tries -gt 200 ] || ! kill -0 "$server_pid" 2>/dev/null; then
    echo "udp-loss-demo: the server did not start:" >&2
    cat "$work/server.log" >&2
    exit 1
  fi
  sleep 0.05
done
port=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' "$work/server.log")

set -- --count "$COUNT" --interval "$INTERVAL" --timeout "$TIMEOUT" --retries "$RETRIES"
echo
if [ $mode = loopback ]; then
  echo "\$ client 127.0.0.1 $port $*"
  { "$CLIENT" 127.0.0.1 "$port" "$@" 2>&1; echo $? >"$work/status"; } | tee "$work/client.out"
else
  echo "\$ client 10.200.0.1 $port $*"
  { ip netns exec "$ns_client" "$CLIENT" 10.200.0.1 "$port" "$@" 2>&1; echo $? >"$work/status"; } |
    tee "$work/client.out"
fi

received=$(grep -c '^datagram of' "$work/server.log")
dropped=$(grep -c '^datagram of.*dropped (--drop' "$work/server.log")
echo
echo "== what happened =="
echo "client: $(grep 'datagrams sent' "$work/client.out")"
echo "server: received $received datagrams for $COUNT sequence numbers ($dropped of them left unanswered by --drop)."
echo "Every datagram beyond $COUNT is a retransmission: of a request that was lost, or of one"
echo "whose echo was lost, which the server then answered twice (it cannot tell)."
echo "client exit status: $(cat "$work/status") (0: every datagram echoed; 1: some lost even after $RETRIES retransmissions)"
exit 0
