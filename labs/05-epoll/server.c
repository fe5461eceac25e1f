/*
 * Lab 05: the echo server on epoll, optionally in several worker processes,
 * in C (the twin of server.rs).
 *
 * socket -> setsockopt(SO_REUSEADDR [, SO_REUSEPORT]) -> bind -> listen ->
 * epoll_create1 -> epoll_ctl(ADD listener) -> loop { epoll_wait -> accept
 * the new clients and add them -> read/write the ready ones, switching each
 * one's interest between readable and writable }. The kernel keeps the list
 * of descriptors we watch; each wait returns only the ready ones. With
 * workers, worker 0 (the parent) also watches a signalfd for SIGCHLD, and
 * reaps and names a worker that dies.
 *
 * Build: make (or: cc -Wall -Wextra -O2 -o server-c server.c)
 * Run:   ./server-c [PORT] [--bind ADDR] [--workers N]
 *
 * Same arguments, messages and system calls as ./server (server.rs):
 * `make trace LAB=05-epoll` shows the two side by side.
 */

#define _GNU_SOURCE /* accept4(2) */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define SYNOPSIS "usage: server [PORT] [--bind ADDR] [--workers N]"

static const char usage[] =
    SYNOPSIS "\n"
    "\n"
    "Lab 05: echo server on epoll. One process serves tens of thousands of\n"
    "clients; with --workers, N processes share the port (SO_REUSEPORT).\n"
    "\n"
    "  PORT         port to listen on (default 4242; 0 = any free port)\n"
    "  --bind ADDR  address to listen on (default 0.0.0.0; IPv6 such as :: or ::1 works)\n"
    "  --workers N  worker processes, each with its own listening socket and epoll\n"
    "               (default 1, at most 4 per CPU)\n"
    "  --help       print this help\n";

#define DEFAULT_PORT 4242
#define ADDR_TEXT 80 /* room for "[" IPv6 "%" scope "]:" port */

/* The most workers per CPU online: one busy worker can keep a CPU busy on
 * its own, so more only take turns; a few per CPU still let a one-CPU
 * machine show the kernel spreading connections over several. */
#define WORKERS_PER_CPU 4
/* While more than this waits to be sent to a client, the server stops
 * reading from it (backpressure, as in labs 03 and 04). */
#define MAX_PENDING (64 * 1024)
/* The token of the listening socket; a client's token is its descriptor. */
#define LISTENER UINT64_MAX
/* The token of worker 0's signalfd, readable when a worker has died. */
#define WORKER_DIED (UINT64_MAX - 1)

struct client {
    int fd; /* -1: no client at this index */
    char peer[ADDR_TEXT];
    char *pending; /* the echo not yet sent: len bytes, room for cap */
    size_t len, cap;
    int eof;
    /* What epoll watches for this client now: changed only when needed,
     * each change being one epoll_ctl(2) call. */
    uint32_t interest;
};

/* Clients indexed by descriptor number: the token epoll hands back is the
 * index. Grown as descriptors grow; an entry with fd -1 is free. */
static struct client *clients;
static size_t nclients;

static unsigned long free_port(const struct sockaddr_storage *addr, socklen_t addrlen);
static int open_listener(const struct sockaddr_storage *addr, socklen_t addrlen,
                         int reuse_port, struct sockaddr_storage *local);
static int serve(struct client *c, uint32_t events, char *buf, size_t size);
static void reap_workers(int deaths, const pid_t *children, unsigned long nchildren);
static const char *signal_name(int sig);
static int make_room(size_t index);
static int append(struct client *c, const char *data, size_t n);
static int reserve_spare(unsigned long long limit);
static int refuse_one(int listener, int *spare, const char *local);
static _Noreturn void die(const char *call, const char *what);
static const char *addr_text(const struct sockaddr_storage *ss, char *out);
static void read_args(int argc, char **argv);
static const char *take_value(const char *name, const char *what);
static unsigned long take_port(void);
static void finish_args(void);
static _Noreturn void usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static int parse_number(const char *text, unsigned long max, unsigned long *value,
                        const char **why);
static socklen_t parse_ip(const char *text, struct sockaddr_storage *ss);
static void set_port(struct sockaddr_storage *ss, unsigned long port);

int main(int argc, char **argv)
{
    /* stdout is a pipe when a test or a script reads our log: flush each
     * line as it is printed (setvbuf(3)). It also matters for fork(2): a
     * line still in stdio's buffer would be printed by both processes. */
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* Each option is checked as it is taken, in this order, as server.rs
     * does: the same mistakes get the same message. */
    read_args(argc, argv);
    const char *bind_text = take_value("--bind", "ADDR");
    struct sockaddr_storage addr;
    socklen_t addrlen = parse_ip(bind_text ? bind_text : "0.0.0.0", &addr);
    const char *workers_text = take_value("--workers", "N");
    unsigned long workers = 1;
    const char *why;
    if (workers_text && parse_number(workers_text, 4294967295UL, &workers, &why) < 0)
        usage_error("invalid N '%s': %s", workers_text, why);
    set_port(&addr, take_port());
    /* Each worker is a process: unbounded, a typo (--workers 100000) would
     * fork until fork(2) fails or the process table is full. The CPUs
     * online as sysconf(3) counts them, as server.rs asks too. */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned long max_workers = WORKERS_PER_CPU * (unsigned long)(cpus > 0 ? cpus : 1);
    if (workers < 1 || workers > max_workers)
        usage_error("invalid N '%lu': from 1 to %lu workers (%d per CPU)", workers, max_workers,
                    WORKERS_PER_CPU);
    finish_args();

    /* A write(2) to a connection the client has reset raises SIGPIPE, whose
     * default action kills the whole server (signal(7)). Ignored, write(2)
     * fails with EPIPE instead; Rust's runtime does this before main. */
    signal(SIGPIPE, SIG_IGN);

    /* Every client costs a descriptor: raise the soft limit to the hard one. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        die("getrlimit", "RLIMIT_NOFILE");
    rlim_t limit = rl.rlim_max;
    struct rlimit raised = { .rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max };
    if (setrlimit(RLIMIT_NOFILE, &raised) < 0) {
        fprintf(stderr, "setrlimit RLIMIT_NOFILE: %s\n", strerror(errno));
        limit = rl.rlim_cur;
    }

    if (workers > 1)
        set_port(&addr, free_port(&addr, addrlen));
    struct sockaddr_storage local;
    int listener = open_listener(&addr, addrlen, workers > 1, &local);
    char local_str[ADDR_TEXT];
    addr_text(&local, local_str);
    printf("listening on %s\n", local_str);
    printf("descriptor limit %llu (RLIMIT_NOFILE)\n", (unsigned long long)limit);

    /* Workers 1..N are children; the parent is worker 0. Each child opens a
     * listening socket of its own on the same port: with SO_REUSEPORT the
     * kernel hashes each new connection to one of them (socket(7)). */
    unsigned long worker = 0;
    pid_t parent = getpid();
    /* The workers' pids, worker n at n - 1: to say which one died. */
    pid_t *children = calloc(workers, sizeof *children);
    if (children == NULL)
        die("calloc", local_str);
    sigset_t sigchld;
    sigemptyset(&sigchld);
    sigaddset(&sigchld, SIGCHLD);
    /* Worker 0 learns of a death through epoll (the signalfd below).
     * SIGCHLD is blocked from before the first fork(2): one that comes
     * early stays pending for it instead of being discarded (signalfd(2)).
     * The children inherit the mask; they have no children, so it changes
     * nothing for them. */
    if (workers > 1 && sigprocmask(SIG_BLOCK, &sigchld, NULL) < 0)
        die("sigprocmask", "SIGCHLD");
    for (unsigned long n = 1; n < workers; n++) {
        pid_t pid = fork();
        if (pid < 0)
            die("fork", local_str);
        if (pid > 0) {
            children[n - 1] = pid;
            continue;
        }
        worker = n;
        /* The parent's socket is worker 0's: connections the kernel hands
         * to it must not wait for us. */
        if (close(listener) < 0)
            fprintf(stderr, "close %s: %s\n", local_str, strerror(errno));
        struct sockaddr_storage mine;
        listener = open_listener(&addr, addrlen, 1, &mine);
        /* A worker must not outlive the parent (prctl(2), PR_SET_PDEATHSIG). */
        if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) < 0)
            fprintf(stderr, "prctl: %s\n", strerror(errno));
        /* The parent may have died before the line above: then no signal
         * will come, and we have been adopted by another. */
        if (getppid() != parent)
            exit(0);
        /* Cosmetic (`ps -o comm`); the kernel keeps 15 bytes of it. */
        char name[32];
        snprintf(name, sizeof name, "server:w%lu", n);
        prctl(PR_SET_NAME, name, 0, 0, 0);
        break;
    }
    char tag[32] = "";
    if (workers > 1) {
        printf("worker %lu (pid %d) accepting on %s\n", worker, (int)getpid(), local_str);
        snprintf(tag, sizeof tag, "[worker %lu] ", worker);
    }

    /* epoll_create1(2): the kernel object that holds our interest list. */
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1", local_str);
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = LISTENER };
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, listener, &ev) < 0)
        die("epoll_ctl", local_str);
    /* signalfd(2) turns the pending SIGCHLD into a readable descriptor: the
     * same epoll_wait(2) that waits for clients wakes up when a worker dies,
     * with no handler, and no race between testing a flag and going to
     * sleep. The dead worker is then reaped, not left a zombie. */
    int deaths = -1;
    if (worker == 0 && workers > 1) {
        deaths = signalfd(-1, &sigchld, SFD_NONBLOCK | SFD_CLOEXEC);
        if (deaths < 0)
            die("signalfd", "SIGCHLD");
        struct epoll_event died = { .events = EPOLLIN, .data.u64 = WORKER_DIED };
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, deaths, &died) < 0)
            die("epoll_ctl", local_str);
    }

    /* See lab 04: a spare descriptor to close a connection when out of
     * them, or a clear exit if the limit leaves no room for one client. */
    int spare = reserve_spare((unsigned long long)limit);
    int out_of_descriptors = 0;

    static struct epoll_event events[1024];
    static char buf[16 * 1024];
    for (;;) {
        /* Level-triggered (the default): a descriptor is reported as long as
         * it is ready, so we may leave data unread and hear of it again. */
        int ready = epoll_wait(epfd, events, 1024, -1);
        if (ready < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait", local_str);
        }
        for (int i = 0; i < ready; i++) {
            if (events[i].data.u64 == WORKER_DIED) {
                reap_workers(deaths, children, workers - 1);
                continue;
            }
            if (events[i].data.u64 == LISTENER) {
                /* Accept all that wait: one readiness may stand for many. */
                for (;;) {
                    int conn = accept4(listener, NULL, NULL, SOCK_NONBLOCK);
                    if (conn < 0) {
                        if (errno == EAGAIN) /* EWOULDBLOCK is EAGAIN on Linux */
                            break;
                        if (errno == EINTR || errno == ECONNABORTED)
                            continue;
                        if (errno == EMFILE || errno == ENFILE) {
                            if (!out_of_descriptors) {
                                fprintf(stderr,
                                        "%saccept %s: %s; closing new connections until one frees\n",
                                        tag, local_str, strerror(errno));
                                out_of_descriptors = 1;
                            }
                            if (!refuse_one(listener, &spare, local_str))
                                break; /* nobody was waiting */
                            continue;
                        }
                        die("accept", local_str);
                    }
                    out_of_descriptors = 0;
                    struct sockaddr_storage peer;
                    socklen_t len = sizeof peer;
                    if (getpeername(conn, (struct sockaddr *)&peer, &len) < 0) {
                        fprintf(stderr, "%sgetpeername %s: %s\n", tag, local_str,
                                strerror(errno));
                        close(conn);
                        continue;
                    }
                    char peer_str[ADDR_TEXT];
                    addr_text(&peer, peer_str);
                    if (make_room((size_t)conn) < 0) {
                        fprintf(stderr, "%smalloc %s: %s\n", tag, peer_str, strerror(ENOMEM));
                        close(conn);
                        continue;
                    }
                    struct epoll_event add = { .events = EPOLLIN, .data.u64 = (uint64_t)conn };
                    if (epoll_ctl(epfd, EPOLL_CTL_ADD, conn, &add) < 0) {
                        fprintf(stderr, "%sepoll_ctl %s: %s\n", tag, peer_str, strerror(errno));
                        close(conn);
                        continue;
                    }
                    printf("%sconnection from %s\n", tag, peer_str);
                    struct client *c = &clients[conn];
                    c->fd = conn;
                    memcpy(c->peer, peer_str, sizeof peer_str);
                    c->pending = NULL;
                    c->len = c->cap = 0;
                    c->eof = 0;
                    c->interest = EPOLLIN;
                }
                continue;
            }

            uint64_t index = events[i].data.u64;
            if (index >= nclients || clients[index].fd < 0)
                continue;
            struct client *c = &clients[index];
            if (serve(c, events[i].events, buf, sizeof buf)) {
                uint32_t wanted = 0;
                if (!c->eof && c->len < MAX_PENDING)
                    wanted |= EPOLLIN;
                if (c->len > 0)
                    wanted |= EPOLLOUT;
                if (wanted != c->interest) {
                    struct epoll_event mod = { .events = wanted, .data.u64 = index };
                    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &mod) == 0)
                        c->interest = wanted;
                    else
                        fprintf(stderr, "%sepoll_ctl %s: %s\n", tag, c->peer, strerror(errno));
                }
            } else {
                /* close(2) would drop it from the interest list too, but only
                 * once no other descriptor refers to the socket (epoll(7)). */
                if (epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL) < 0)
                    fprintf(stderr, "%sepoll_ctl %s: %s\n", tag, c->peer, strerror(errno));
                printf("%s%s disconnected\n", tag, c->peer);
                if (close(c->fd) < 0)
                    fprintf(stderr, "%sclose %s: %s\n", tag, c->peer, strerror(errno));
                free(c->pending);
                c->pending = NULL;
                c->len = c->cap = 0;
                c->fd = -1;
            }
        }
    }
}

/* Collects every worker that has died, and says which and how (worker 0
 * does it, as in lab 02). */
static void reap_workers(int deaths, const pid_t *children, unsigned long nchildren)
{
    /* read(2) takes the SIGCHLD off the pending signals: the descriptor
     * stays readable until then, and becomes so again at the next one. */
    struct signalfd_siginfo info;
    if (read(deaths, &info, sizeof info) < 0 && errno != EAGAIN)
        fprintf(stderr, "read SIGCHLD: %s\n", strerror(errno));
    /* Signals do not queue: one SIGCHLD may stand for several dead workers,
     * so call waitpid(2) until none is left (WNOHANG: never block). */
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid == 0 || (pid < 0 && errno == ECHILD))
            return; /* 0: workers left, none dead; ECHILD: none left */
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "waitpid: %s\n", strerror(errno));
            return;
        }
        unsigned long n = 0;
        for (unsigned long i = 0; i < nchildren; i++)
            if (children[i] == pid)
                n = i + 1;
        if (WIFEXITED(status))
            printf("worker %lu (pid %d) exited (status %d)\n", n, (int)pid, WEXITSTATUS(status));
        else if (WIFSIGNALED(status))
            printf("worker %lu (pid %d) killed by %s\n", n, (int)pid,
                   signal_name(WTERMSIG(status)));
        /* else stopped or continued: still a worker of ours */
    }
}

/* SIGKILL for 9: the name as the Rust server prints it (as in lab 02). */
static const char *signal_name(int sig)
{
    static const char *const names[] = {
        "0",         "SIGHUP",  "SIGINT",    "SIGQUIT", "SIGILL",    "SIGTRAP", "SIGABRT",
        "SIGBUS",    "SIGFPE",  "SIGKILL",   "SIGUSR1", "SIGSEGV",   "SIGUSR2", "SIGPIPE",
        "SIGALRM",   "SIGTERM", "SIGSTKFLT", "SIGCHLD", "SIGCONT",   "SIGSTOP", "SIGTSTP",
        "SIGTTIN",   "SIGTTOU", "SIGURG",    "SIGXCPU", "SIGXFSZ",   "SIGVTALRM",
        "SIGPROF",   "SIGWINCH", "SIGIO",    "SIGPWR",  "SIGSYS",
    };
    static char other[16];
    if (sig > 0 && sig < (int)(sizeof names / sizeof names[0]))
        return names[sig];
    snprintf(other, sizeof other, "signal %d", sig);
    return other;
}

/* Proves that nobody holds the port of addr before the workers share it,
 * and returns the port (the one the kernel chose, if addr's is 0).
 *
 * SO_REUSEPORT lets any socket that sets it join the port, if its owner is
 * the same user (socket(7)): a second `server --workers 2` started by
 * mistake would not fail, it would quietly take a share of the connections.
 * A socket without SO_REUSEPORT gets EADDRINUSE from bind(2) if anyone
 * holds the port, as in every lab; closed at once, it leaves the port to
 * the workers' sockets. A server started in the instant between that
 * close(2) and their bind(2) could still slip in. */
static unsigned long free_port(const struct sockaddr_storage *addr, socklen_t addrlen)
{
    char addr_str[ADDR_TEXT];
    addr_text(addr, addr_str);
    int probe = socket(addr->ss_family, SOCK_STREAM, 0);
    if (probe < 0)
        die("socket", addr_str);
    /* As the listeners will: a previous run's connections left in
     * TIME_WAIT do not hold the port. */
    int one = 1;
    if (setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        die("setsockopt", addr_str);
    if (bind(probe, (const struct sockaddr *)addr, addrlen) < 0)
        die("bind", addr_str);
    struct sockaddr_storage bound;
    socklen_t len = sizeof bound;
    if (getsockname(probe, (struct sockaddr *)&bound, &len) < 0)
        die("getsockname", addr_str);
    if (close(probe) < 0)
        fprintf(stderr, "close %s: %s\n", addr_str, strerror(errno));
    return ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                             : ((struct sockaddr_in *)&bound)->sin_port);
}

/* socket -> setsockopt -> bind -> listen, as in every lab; with workers, plus
 * SO_REUSEPORT so that each may bind a socket of its own to the same port.
 * Returns the listening socket; *local is the address it got. */
static int open_listener(const struct sockaddr_storage *addr, socklen_t addrlen,
                         int reuse_port, struct sockaddr_storage *local)
{
    char addr_str[ADDR_TEXT];
    addr_text(addr, addr_str);
    /* Non-blocking: we accept until EAGAIN, never waiting in accept(2). */
    int listener = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (listener < 0)
        die("socket", addr_str);
    int one = 1;
    if (setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        die("setsockopt", addr_str);
    /* Only with workers: SO_REUSEPORT would also let a second server,
     * started by mistake, share the port instead of failing with EADDRINUSE
     * (with workers, free_port has checked that nobody holds it). */
    if (reuse_port && setsockopt(listener, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
        die("setsockopt", addr_str);
    if (bind(listener, (const struct sockaddr *)addr, addrlen) < 0)
        die("bind", addr_str);
    if (listen(listener, SOMAXCONN) < 0)
        die("listen", addr_str);
    socklen_t len = sizeof *local;
    if (getsockname(listener, (struct sockaddr *)local, &len) < 0)
        die("getsockname", addr_str);
    return listener;
}

/* Reads and writes what epoll reported for one client. Returns 0 when the
 * client is gone and must be removed. */
static int serve(struct client *c, uint32_t events, char *buf, size_t size)
{
    /* EPOLLHUP and EPOLLERR come whether asked for or not (epoll_ctl(2)). */
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !c->eof && c->len < MAX_PENDING) {
        ssize_t n = read(c->fd, buf, size);
        if (n == 0) {
            c->eof = 1;
        } else if (n > 0) {
            if (append(c, buf, (size_t)n) < 0) {
                fprintf(stderr, "read %s: %s\n", c->peer, strerror(ENOMEM));
                return 0;
            }
        } else if (errno != EAGAIN && errno != EINTR) {
            fprintf(stderr, "read %s: %s\n", c->peer, strerror(errno));
            return 0;
        }
    }
    /* Write at once: the socket buffer almost always has room, and if not,
     * the interest switches to EPOLLOUT. */
    if (c->len > 0) {
        ssize_t n = write(c->fd, c->pending, c->len);
        if (n >= 0) {
            c->len -= (size_t)n;
            memmove(c->pending, c->pending + n, c->len);
        } else if (errno != EAGAIN && errno != EINTR) {
            fprintf(stderr, "write %s: %s\n", c->peer, strerror(errno));
            return 0;
        }
    }
    return !(c->eof && c->len == 0);
}

/* Makes clients[index] exist (a free entry if new): the table grows by
 * doubling, like a Rust Vec. Returns -1 when out of memory. */
static int make_room(size_t index)
{
    if (index < nclients)
        return 0;
    size_t n = nclients * 2 > index + 1 ? nclients * 2 : index + 1;
    struct client *more = realloc(clients, n * sizeof *more);
    if (more == NULL)
        return -1;
    for (size_t i = nclients; i < n; i++)
        more[i].fd = -1;
    clients = more;
    nclients = n;
    return 0;
}

/* Appends n bytes to the client's pending echo; its buffer grows by
 * doubling and is kept for the next echo. Returns -1 when out of memory. */
static int append(struct client *c, const char *data, size_t n)
{
    if (c->len + n > c->cap) {
        size_t cap = c->cap * 2 > c->len + n ? c->cap * 2 : c->len + n;
        char *more = realloc(c->pending, cap);
        if (more == NULL)
            return -1;
        c->pending = more;
        c->cap = cap;
    }
    memcpy(c->pending + c->len, data, n);
    c->len += n;
    return 0;
}

/* `call ADDR: reason` on stderr and exit 1, as perror(3) would say it. */
/* Opens the spare descriptor (on /dev/null) and checks that one more is
 * left for a client: dup(2) takes the lowest free descriptor, as accept(2)
 * will. If not, says so and exits 1: a server that could accept nobody
 * would close every connection for ever. */
static int reserve_spare(unsigned long long limit)
{
    int spare = open("/dev/null", O_RDONLY);
    if (spare < 0 && errno != EMFILE)
        die("open", "/dev/null");
    int probe = spare < 0 ? -1 : dup(spare);
    if (probe < 0) {
        if (errno != EMFILE)
            die("dup", "/dev/null");
        fprintf(stderr, "descriptor limit %llu (RLIMIT_NOFILE) leaves no room for a client\n",
                limit);
        exit(1);
    }
    close(probe);
    return spare;
}

/* After accept(2) on the (non-blocking) listener failed with EMFILE or
 * ENFILE: close the spare, accept the first waiting connection and close it
 * at once, open the spare again. Returns 0 when nobody was waiting (EMFILE
 * comes even with an empty backlog). If nothing can be opened even with the
 * spare closed, the whole system is out of files: say so and exit. */
static int refuse_one(int listener, int *spare, const char *local)
{
    int refused = 1;
    close(*spare);
    int fd = accept4(listener, NULL, NULL, 0);
    if (fd >= 0)
        close(fd);
    else if (errno == EAGAIN || errno == EWOULDBLOCK)
        refused = 0; /* nobody waits */
    else if (errno != ECONNABORTED && errno != EINTR)
        die("accept", local);
    *spare = open("/dev/null", O_RDONLY);
    if (*spare < 0)
        die("open", "/dev/null");
    return refused;
}

static _Noreturn void die(const char *call, const char *what)
{
    int err = errno; /* fprintf may change errno */
    fprintf(stderr, "%s %s: %s\n", call, what, strerror(err));
    exit(1);
}

/* ADDR as every lab prints it: 127.0.0.1:4242, [::1]:4242 (inet_ntop(3)). */
static const char *addr_text(const struct sockaddr_storage *ss, char *out)
{
    char ip[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        if (in6->sin6_scope_id != 0)
            snprintf(out, ADDR_TEXT, "[%s%%%u]:%u", ip, (unsigned)in6->sin6_scope_id,
                     ntohs(in6->sin6_port));
        else
            snprintf(out, ADDR_TEXT, "[%s]:%u", ip, ntohs(in6->sin6_port));
    } else {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf(out, ADDR_TEXT, "%s:%u", ip, ntohs(in->sin_port));
    }
    return out;
}

/*
 * The command line, read as every lab reads it (src/cli.rs): --help anywhere
 * prints the usage; options are taken out first, wherever they stand; then
 * the positional arguments in order; anything left over is an error. A bad
 * argument prints what is wrong and the synopsis on stderr, and exits 2.
 */
static char **args; /* the arguments not taken yet */
static int nargs;

static void read_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            exit(0);
        }
    }
    args = argv + 1;
    nargs = argc - 1;
}

static void take(int i)
{
    memmove(&args[i], &args[i + 1], (size_t)(nargs - i - 1) * sizeof *args);
    nargs--;
}

/* `--name VALUE` or `--name=VALUE`: the value, or NULL when absent. */
static const char *take_value(const char *name, const char *what)
{
    size_t len = strlen(name);
    for (int i = 0; i < nargs; i++) {
        const char *arg = args[i];
        if (strncmp(arg, name, len) == 0 && arg[len] == '=') {
            take(i);
            return arg + len + 1;
        }
        if (strcmp(arg, name) == 0) {
            take(i);
            if (i == nargs)
                usage_error("%s needs a value (%s)", name, what);
            const char *value = args[i];
            take(i);
            return value;
        }
    }
    return NULL;
}

static unsigned long take_port(void)
{
    if (nargs == 0)
        return DEFAULT_PORT;
    const char *text = args[0];
    if (strlen(text) > 1 && text[0] == '-')
        usage_error("unknown option '%s'", text);
    take(0);
    unsigned long port;
    const char *why;
    if (parse_number(text, 65535, &port, &why) < 0)
        usage_error("invalid PORT '%s': a port is a number from 0 to 65535", text);
    return port;
}

static void finish_args(void)
{
    if (nargs == 0)
        return;
    if (strlen(args[0]) > 1 && args[0][0] == '-')
        usage_error("unknown option '%s'", args[0]);
    usage_error("unexpected argument '%s'", args[0]);
}

static _Noreturn void usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n" SYNOPSIS "\n(--help for details)\n", stderr);
    exit(2);
}

/* A decimal number from 0 to max, read as Rust's str::parse reads one: an
 * optional '+', then digits only. On error *why says why, in Rust's words. */
static int parse_number(const char *text, unsigned long max, unsigned long *value,
                        const char **why)
{
    const char *p = text;
    unsigned long n = 0;
    if (*p == '\0') {
        *why = "cannot parse integer from empty string";
        return -1;
    }
    if (p[0] == '+' && p[1] != '\0')
        p++;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') {
            *why = "invalid digit found in string";
            return -1;
        }
        n = n * 10 + (unsigned long)(*p - '0');
        if (n > max) {
            *why = "number too large to fit in target type";
            return -1;
        }
    }
    *value = n;
    return 0;
}

/* An IPv4 or IPv6 literal into a socket address, its port still 0
 * (inet_pton(3)); returns the address's length, or exits 2 if TEXT is no
 * address. */
static socklen_t parse_ip(const char *text, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        return sizeof *in;
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        return sizeof *in6;
    }
    usage_error("invalid ADDR '%s': invalid IP address syntax", text);
}

/* The port, in network byte order (htons(3)), where the family keeps it. */
static void set_port(struct sockaddr_storage *ss, unsigned long port)
{
    if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
}
