# tools/trace.awk: the rules that turn one process's strace output into the
# lesson's system calls, in a form that can be compared between the Rust
# program and its C twin. tools/trace runs it on each process's file
# (strace -ff -yy -o PREFIX: one file per process, descriptors decorated with
# what they are, e.g. 3<TCP:[127.0.0.1:4242]>). These are the only rules:
# what they drop or rewrite is all that may differ between the two programs.
#
# Input variables: port = the server's port (its `listening on` line);
# inherit = the descriptor names of the parent at the fork (a file written
# by this program for the parent, see descriptors()), empty for the first
# process; maps = the folder where to write, for each child, that file.
# Plain POSIX awk (Debian's mawk does): no gawk extensions.

BEGIN {
    if (inherit != "") {
        while ((getline entry < inherit) > 0) {
            split(entry, kv, " ")
            if (kv[1] == "next") fds = kv[2]
            else fd_name[kv[1]] = kv[2]
        }
        close(inherit)
    }
    # Calls whose first argument is a descriptor: kept only when that
    # descriptor is a socket. read/write/close on files, pipes and the
    # terminal are the runtime's business, not the lesson: the Rust runtime
    # reads /proc/self/maps at start-up, the log goes to stdout, and so on.
    split("setsockopt getsockopt bind listen accept accept4 connect getsockname " \
          "getpeername shutdown read readv recv recvfrom recvmsg recvmmsg write " \
          "writev send sendto sendmsg sendmmsg close ioctl fcntl", list, " ")
    for (i in list) on_socket[list[i]] = 1
    # Waits over several descriptors: kept when any of them is a socket. The
    # Rust runtime's poll() of descriptors 0-2 at start-up (is stdio open?)
    # has none, so it falls away here.
    split("select pselect6 poll ppoll", list, " ")
    for (i in list) on_any_socket[list[i]] = 1
    # Calls that are the lesson whatever their arguments: a socket is born,
    # epoll (only the lab itself makes an epoll instance), processes are
    # made and reaped.
    split("socket socketpair epoll_create epoll_create1 epoll_ctl epoll_wait " \
          "epoll_pwait epoll_pwait2 fork vfork clone clone3 wait4 waitid", list, " ")
    for (i in list) always[list[i]] = 1
    # Everything else is dropped: memory (mmap, brk), loading (openat,
    # execve), signal set-up (rt_sigaction, sigaltstack: the Rust runtime
    # installs its stack-overflow handler), prctl, getpid, exit_group (the
    # +++ line below says how the process ended).
}

# A signal delivered: `--- SIGCHLD {si_signo=..., si_pid=...} ---`. Which
# signal arrives is the lesson (lab 02: SIGCHLD interrupts accept); the
# details are the sender's pid and CPU times: kept is the name alone.
/^--- SIG/ {
    print $1, $2, "---"
    next
}

# How the process ended: `+++ exited with 0 +++`, `+++ killed by SIGTERM +++`.
/^\+\+\+ / {
    print
    next
}

{
    paren = index($0, "(")
    if (paren < 2) next
    name = substr($0, 1, paren - 1)
    args = substr($0, paren + 1)
    if (name in always) keep = 1
    else if (name in on_socket) keep = is_socket_fd(args)
    else if (name in on_any_socket) keep = has_socket_fd($0)
    else keep = 0
    # fcntl(2) on a socket matters when it changes the descriptor's flags
    # (F_SETFL, O_NONBLOCK: lab 03). Reading flags is not the lesson, and a
    # Rust debug build reads F_GETFD before each close(2) of an OwnedFd
    # (std checks that the descriptor is still open).
    if (name == "fcntl" && args !~ /^[^,]*, F_SETFL/) keep = 0
    if (!keep) next

    # accept(2) and accept4(2) may fill in the peer's address, as the C
    # twins write it (UNP, Beej), or leave it NULL and ask getpeername(2)
    # at once, as the Rust programs must (nix 0.31's accept returns only the
    # descriptor). Both learn the same address: kept is accept without it,
    # and getpeername is not compared.
    if (name == "getpeername") next

    line = descriptors($0)
    line = ports(line)
    # (When accept fails, strace shows the unfilled buffer's pointer.)
    if (name == "accept" || name == "accept4") {
        sub(/, \{sa_family=[^}]*\}, \[[0-9]+( => [0-9]+)?\]/, ", NULL, NULL", line)
        sub(/, 0x[0-9a-f]+, \[[0-9]+\]/, ", NULL, NULL", line)
    }

    # strace pads short calls so that ` = result` starts in column 40: the
    # padding depends on the raw text's length (a 4- or 5-digit port).
    sub(/\)  +=/, ") =", line)

    # bind(2), connect(2) and sendto(2) take the address and its length.
    # nix passes sizeof(struct sockaddr_storage) = 128 for every address,
    # C the size of the address itself (16 for sockaddr_in, 28 for
    # sockaddr_in6): the kernel needs at least the latter, both are right.
    if (match(line, /\{sa_family=[^}]*\}, [0-9]+\)/)) {
        tok = substr(line, RSTART, RLENGTH)
        sub(/, [0-9]+\)$/, ", ADDRLEN)", tok)
        line = substr(line, 1, RSTART - 1) tok substr(line, RSTART + RLENGTH)
    }

    # select(2)'s first argument is the highest descriptor + 1: it follows
    # the descriptors' numbers, which are renamed (see descriptors()).
    if (name == "select" || name == "pselect6") sub(/^[a-z0-9]+\([0-9]+,/, name "(nfds,", line)

    # Timing: select and ppoll report the time left (`left {tv_sec=0,
    # tv_nsec=999997236}`), which depends on how fast the machine was.
    sub(/, left \{[^}]*\}/, "", line)

    # Timing too: poll's timeout when a program computes it from a clock,
    # the time left until its next deadline (lab 07: the next PING is due
    # in 119998 ms, or 120000, as fast as the machine went since). Kept is
    # whether it waits for ever (-1), not at all (0), or for a while (MS).
    if (name == "poll") sub(/, [1-9][0-9]*\) = /, ", MS) = ", line)

    # Memory addresses (child_tidptr=0x7f..., a status pointer waitpid
    # did not fill) differ from run to run: address space randomisation.
    gsub(/0x[0-9a-f]+/, "ADDR", line)

    # Process ids differ from run to run: a child is named by its order of
    # birth, as fork(2) (clone here: glibc's fork is clone(2)) returned it,
    # and waitpid(2) (wait4 here) reports it under that name.
    if (match(line, / = [0-9]+$/)) {
        pid = substr(line, RSTART + 3)
        if (name == "fork" || name == "vfork" || name == "clone" || name == "clone3") {
            child[pid] = "<child " (++children) ">"
            # The child starts with the parent's descriptors, and so with
            # their names.
            if (maps != "") {
                file = maps "/" pid
                print "next", fds + 0 > file
                for (n in fd_name) print n, fd_name[n] > file
                close(file)
            }
        }
        if (pid in child) line = substr(line, 1, RSTART + 2) child[pid]
        else if (name == "wait4" || name == "waitid") line = substr(line, 1, RSTART + 2) "<pid>"
    }
    print line
}

# Whether the first argument is a socket: strace -yy writes a socket as
# N<TCP:[...]>, N<TCPv6:[...]>, N<UDP:[...]>, N<UNIX:[...]>, or N<socket:[inode]>
# when it cannot say more; files are N</path>, pipes N<pipe:[inode]>.
function is_socket_fd(args) {
    return args ~ /^[0-9]+<(socket|[A-Z][A-Za-z0-9]*):\[/
}

function has_socket_fd(s) {
    return s ~ /[0-9]+<(socket|[A-Z][A-Za-z0-9]*):\[/
}

# Descriptor numbers: each program gets the lowest free number (open(2)),
# so the numbers depend on what else it has open, which is not the lesson.
# Each descriptor is renamed by its order of first appearance (#1, #2, ...)
# in the process, and a child keeps the names of the descriptors it
# inherited: the same descriptor keeps its name, so a leaked descriptor or
# a reused one still shows. Decorations: a socket's inode number (an
# unbound socket is TCP:[28491257]) differs from run to run.
function descriptors(s,    out, tok, lt, deco) {
    out = ""
    while (match(s, /[0-9]+<([A-Za-z0-9_]+:\[[^]]*\]|\/[^>]*)>/)) {
        tok = substr(s, RSTART, RLENGTH)
        lt = index(tok, "<")
        deco = substr(tok, lt)
        if (deco ~ /^<[A-Za-z0-9_]+:\[[0-9]+\]>$/) sub(/\[[0-9]+\]/, "[ino]", deco)
        out = out substr(s, 1, RSTART - 1) fd(substr(tok, 1, lt - 1)) deco
        s = substr(s, RSTART + RLENGTH)
    }
    s = out s
    # The same descriptors where strace writes them bare: poll's results
    # ([{fd=4, revents=POLLIN}]) and select's ((in [4 5], out [])).
    out = ""
    while (match(s, /fd=[0-9]+[,}]/)) {
        out = out substr(s, 1, RSTART + 2) fd(substr(s, RSTART + 3, RLENGTH - 4)) \
              substr(s, RSTART + RLENGTH - 1, 1)
        s = substr(s, RSTART + RLENGTH)
    }
    s = out s
    out = ""
    while (match(s, /(in|out|except) \[[0-9 ]+\]/)) {
        tok = substr(s, RSTART, RLENGTH)
        lt = index(tok, "[")
        out = out substr(s, 1, RSTART - 1) substr(tok, 1, lt) fd_list(substr(tok, lt + 1, length(tok) - lt - 1)) "]"
        s = substr(s, RSTART + RLENGTH)
    }
    return out s
}

function fd(n) {
    if (!(n in fd_name)) fd_name[n] = "#" (++fds)
    return fd_name[n]
}

function fd_list(s,    n, i, parts, out) {
    n = split(s, parts, " ")
    out = ""
    for (i = 1; i <= n; i++) out = out (i > 1 ? " " : "") fd(parts[i])
    return out
}

# Ports: the server's port (chosen by the kernel: the session listens on
# port 0) is PORT; any other port but 0 is a client's ephemeral port, which
# connect(2) picked, and is EPH. They appear in decorations
# (TCP:[127.0.0.1:41234->127.0.0.1:4242], TCPv6:[[::1]:4242]) and in socket
# addresses (sin_port=htons(41234)).
function ports(s,    out, tok, colon) {
    out = ""
    while (match(s, /(\.[0-9]+|\]):[0-9]+/)) {
        tok = substr(s, RSTART, RLENGTH)
        colon = index(tok, ":")
        out = out substr(s, 1, RSTART - 1) substr(tok, 1, colon) port_name(substr(tok, colon + 1))
        s = substr(s, RSTART + RLENGTH)
    }
    s = out s
    out = ""
    while (match(s, /htons\([0-9]+\)/)) {
        out = out substr(s, 1, RSTART - 1) "htons(" port_name(substr(s, RSTART + 6, RLENGTH - 7)) ")"
        s = substr(s, RSTART + RLENGTH)
    }
    return out s
}

function port_name(p) {
    if (p + 0 == port + 0) return "PORT"
    if (p + 0 == 0) return "0"
    return "EPH"
}
