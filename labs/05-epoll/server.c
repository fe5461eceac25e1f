/*
 * Lab 05: the echo server on epoll(7), optionally in several worker
 * processes that share the port (SO_REUSEPORT).
 *
 * UNP (3rd ed.) has no epoll: the closest is tcpservpoll01 (figures
 * 6.25-6.26), whose client[] array the kernel keeps here instead; the loop
 * is the one in epoll(7)'s example. The workers are UNP's preforked server
 * (section 30.6), each with a listening socket of its own.
 *
 * socket -> setsockopt(SO_REUSEADDR [, SO_REUSEPORT]) -> bind -> listen,
 * once per worker -> fork the workers, each keeping one listening socket ->
 * epoll_create1 -> epoll_ctl(ADD listenfd) -> loop { epoll_wait -> accept
 * the new clients, epoll_ctl(ADD) each -> read/write the ready ones,
 * epoll_ctl(MOD) when what a client waits for changes }.
 *
 * Build: make, or by hand in this folder:
 *     cc -Wall -Wextra -O2 -I../common -o server-c server.c ../common/labs.c
 * Run:   ./server-c [PORT] [--bind ADDR] [--workers N]
 */
#include "labs.h"

#include <stdint.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>

static const char usage[] =
    "usage: server [PORT] [--bind ADDR] [--workers N]\n"
    "\n"
    "Lab 05: echo server on epoll. One process serves tens of thousands of\n"
    "clients; with --workers, N processes share the port (SO_REUSEPORT).\n"
    "\n"
    "  PORT         port to listen on (default 4242; 0 = any free port)\n"
    "  --bind ADDR  address to listen on (default 0.0.0.0; IPv6 such as :: or ::1 works)\n"
    "  --workers N  worker processes, each with its own listening socket and epoll\n"
    "               (default 1, at most 4 per CPU)\n"
    "  --help       print this help\n";

/* One busy worker keeps a CPU busy: more per CPU only take turns. */
#define WORKERS_PER_CPU 4
/* While this much waits to be sent to a client, stop reading from it. */
#define MAX_PENDING (64 * 1024)
#define MAXEVENTS 1024
/* epoll's tokens: a client's is its descriptor. */
#define LISTENER UINT64_MAX          /* the listening socket */
#define WORKER_DIED (UINT64_MAX - 1) /* worker 0's signalfd */

struct client {
    int fd; /* -1: a free entry */
    char peer[ADDR_TEXT];
    char *pending; /* the echo not yet written: len bytes, room for cap */
    size_t len, cap;
    int eof;           /* the client shut down its side */
    uint32_t interest; /* what epoll watches for it now */
};

/* Indexed by descriptor, as tcpservpoll01's client[] by slot: the token
 * epoll hands back is the index. Grown as the descriptors grow. */
static struct client *client;
static size_t nclient;
static char tag[32]; /* "[worker N] " before each line, with workers */

/* Proves that nobody holds the port before the workers share it, and
 * returns the port (the one the kernel chose, if servaddr's is 0).
 * SO_REUSEPORT lets any socket of the same user that sets it join the port
 * (socket(7)): a second server started by mistake would quietly take a
 * share of the connections. A socket without it gets EADDRINUSE from
 * bind(2) if anyone holds the port; closed at once, it leaves the port to
 * the workers' sockets. */
static unsigned short prove_port_free(const struct sockaddr_storage *servaddr, socklen_t servlen,
                                      const char *addr)
{
    struct sockaddr_storage bound;
    socklen_t len = sizeof bound;
    int probe, on = 1;

    if ((probe = socket(servaddr->ss_family, SOCK_STREAM, 0)) < 0)
        die("socket", addr);
    /* As the listeners will: connections left in TIME_WAIT do not hold the port. */
    if (setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0)
        die("setsockopt", addr);
    if (bind(probe, (const struct sockaddr *)servaddr, servlen) < 0)
        die("bind", addr);
    if (getsockname(probe, (struct sockaddr *)&bound, &len) < 0)
        die("getsockname", addr);
    if (close(probe) < 0)
        fprintf(stderr, "close %s: %s\n", addr, strerror(errno));
    return port_of((struct sockaddr *)&bound);
}

/* What a forked worker does first. It must not outlive worker 0, which
 * reaps it and which Ctrl-C or kill stops: PR_SET_PDEATHSIG has the kernel
 * send it SIGTERM when its parent dies (prctl(2)). */
static void become_worker(unsigned long n, pid_t parent)
{
    char name[32]; /* the kernel keeps 15 bytes of it */

    if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) < 0)
        fprintf(stderr, "prctl: %s\n", strerror(errno));
    /* The parent died before that line: no signal will come. */
    if (getppid() != parent)
        exit(0);
    snprintf(name, sizeof name, "server:w%lu", n); /* ps -o comm */
    prctl(PR_SET_NAME, name, 0, 0, 0);
}

/* Worker 0's signalfd(2): the blocked SIGCHLD as a descriptor readable
 * while one is pending, added to epoll. The same epoll_wait(2) that waits
 * for clients wakes up when a worker dies: no handler, and no race between
 * testing a flag and going to sleep (lab 02's way). */
static int watch_deaths(int epfd, const sigset_t *sigchld, const char *local)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = WORKER_DIED };
    int deaths;

    if ((deaths = signalfd(-1, sigchld, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
        die("signalfd", "SIGCHLD");
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, deaths, &ev) < 0)
        die("epoll_ctl", local);
    return deaths;
}

/* Collects every worker that has died, and says which and how. children
 * holds worker n's pid at n - 1. */
static void reap_workers(int deaths, const pid_t *children, unsigned long nchildren)
{
    struct signalfd_siginfo info;
    unsigned long i, n;
    int status;
    pid_t pid;

    /* read(2) takes the SIGCHLD off the pending signals. */
    if (read(deaths, &info, sizeof info) < 0 && errno != EAGAIN)
        fprintf(stderr, "read SIGCHLD: %s\n", strerror(errno));
    /* Signals do not queue: one SIGCHLD may stand for several dead workers. */
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0 || (pid < 0 && errno == EINTR)) {
        if (pid < 0)
            continue;
        for (i = 0, n = 0; i < nchildren; i++)
            if (children[i] == pid)
                n = i + 1;
        if (WIFEXITED(status))
            printf("worker %lu (pid %d) exited (status %d)\n", n, (int)pid, WEXITSTATUS(status));
        else if (WIFSIGNALED(status))
            printf("worker %lu (pid %d) killed by signal %d (%s)\n", n, (int)pid,
                   WTERMSIG(status), strsignal(WTERMSIG(status)));
    }
    if (pid < 0 && errno != ECHILD)
        fprintf(stderr, "waitpid: %s\n", strerror(errno));
}

/* Makes client[fd] exist, as a free entry if new; -1 when out of memory. */
static int make_room(size_t fd)
{
    size_t i, n = nclient * 2 > fd + 1 ? nclient * 2 : fd + 1;
    struct client *more;

    if (fd < nclient)
        return 0;
    if ((more = realloc(client, n * sizeof *more)) == NULL)
        return -1;
    for (i = nclient; i < n; i++)
        more[i].fd = -1;
    client = more;
    nclient = n;
    return 0;
}

/* Appends n bytes to the client's pending echo; -1 when out of memory. */
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

/* Reads and writes what epoll reported for one client. Returns 0 when the
 * client is gone and must be removed. */
static int echo(struct client *c, uint32_t events, char *buf, size_t size)
{
    ssize_t n;

    /* EPOLLHUP and EPOLLERR come whether asked for or not (epoll_ctl(2)). */
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !c->eof && c->len < MAX_PENDING) {
        if ((n = read(c->fd, buf, size)) == 0) {
            c->eof = 1; /* it may still read its echo */
        } else if (n > 0 && append(c, buf, (size_t)n) < 0) {
            fprintf(stderr, "read %s: %s\n", c->peer, strerror(ENOMEM));
            return 0;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            fprintf(stderr, "read %s: %s\n", c->peer, strerror(errno));
            return 0;
        }
    }
    /* Write at once: the socket buffer almost always has room, and if not,
     * the interest switches to EPOLLOUT. */
    if (c->len > 0) {
        if ((n = write(c->fd, c->pending, c->len)) >= 0) {
            c->len -= (size_t)n;
            memmove(c->pending, c->pending + n, c->len);
        } else if (errno != EAGAIN && errno != EINTR) {
            fprintf(stderr, "write %s: %s\n", c->peer, strerror(errno));
            return 0;
        }
    }
    return !(c->eof && c->len == 0);
}

/* What epoll reported for client[fd]: echo(), then what epoll watches for
 * the client follows its state, or the client is gone and leaves the
 * interest list and the table. */
static void serve(int epfd, uint64_t fd, uint32_t events, char *buf, size_t size)
{
    struct client *c;

    if (fd >= nclient || client[fd].fd < 0)
        return; /* removed earlier in the same batch of events */
    c = &client[fd];
    if (echo(c, events, buf, size)) {
        /* Backpressure: stop reading a client whose echo piles up; wait
         * for room to write only while something waits to be sent. */
        uint32_t wanted = (!c->eof && c->len < MAX_PENDING ? EPOLLIN : 0) |
                          (c->len > 0 ? EPOLLOUT : 0);
        struct epoll_event ev = { .events = wanted, .data.u64 = fd };
        if (wanted == c->interest)
            return;
        if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
            c->interest = wanted;
        else
            fprintf(stderr, "%sepoll_ctl %s: %s\n", tag, c->peer, strerror(errno));
        return;
    }
    /* close(2) would drop it from the interest list too, but only once no
     * other descriptor refers to the socket (epoll(7)). */
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

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "bind", required_argument, NULL, 'b' },
        { "workers", required_argument, NULL, 'w' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    static struct epoll_event events[MAXEVENTS];
    static char buf[16384];
    const char *bind_ip = "0.0.0.0";
    unsigned short port = DEFAULT_PORT;
    unsigned long n, worker = 0, workers = 1;
    int c, i;

    /* Each worker is a process: unbounded, a typo (--workers 100000)
     * would fork until fork(2) fails. CPUs as sysconf(3) counts them. */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned long max_workers = WORKERS_PER_CPU * (unsigned long)(cpus > 0 ? cpus : 1);

    set_usage(usage);
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'b': bind_ip = optarg; break;
        case 'w': workers = parse_number(optarg, "N", 1, max_workers); break;
        case 'h': help();
        default: bad_usage(); /* getopt_long(3) said what was wrong */
        }
    }
    if (optind < argc)
        port = parse_port(argv[optind++]);
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);

    struct sockaddr_storage servaddr, cliaddr;
    socklen_t servlen = parse_addr(bind_ip, port, &servaddr), clilen;
    char addr[ADDR_TEXT], local[ADDR_TEXT], peer[ADDR_TEXT];
    sock_ntop((struct sockaddr *)&servaddr, addr);

    /* Line-buffered even into a pipe: each event is seen as it happens, and
     * fork(2) never copies unprinted lines into the child (setvbuf(3)). */
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* A write(2) to a reset peer raises SIGPIPE, which kills (signal(7));
     * ignored, write fails with EPIPE. Rust's runtime does this too. */
    signal(SIGPIPE, SIG_IGN);

    /* Every client costs a descriptor: up to the hard limit. */
    unsigned long long limit = raise_nofile_limit();
    if (workers > 1) { /* SO_REUSEPORT would let a second server in */
        port = prove_port_free(&servaddr, servlen, addr);
        servlen = parse_addr(bind_ip, port, &servaddr);
        sock_ntop((struct sockaddr *)&servaddr, addr);
    }

    /* One listening socket per worker, all bound to the same port, which
     * SO_REUSEPORT allows: the kernel then hashes each new connection to
     * one of them (socket(7)). Non-blocking: we accept until EAGAIN. */
    int *listeners = calloc(workers, sizeof *listeners), on = 1;
    if (listeners == NULL)
        die("calloc", addr);
    for (n = 0; n < workers; n++) {
        if ((listeners[n] = socket(servaddr.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0)) < 0)
            die("socket", addr);
        if (setsockopt(listeners[n], SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0)
            die("setsockopt", addr);
        if (workers > 1 && setsockopt(listeners[n], SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) < 0)
            die("setsockopt", addr);
        if (bind(listeners[n], (struct sockaddr *)&servaddr, servlen) < 0)
            die("bind", addr);
        if (listen(listeners[n], SOMAXCONN) < 0)
            die("listen", addr);
    }
    servlen = sizeof servaddr;
    if (getsockname(listeners[0], (struct sockaddr *)&servaddr, &servlen) < 0)
        die("getsockname", addr);
    printf("listening on %s\n", sock_ntop((struct sockaddr *)&servaddr, local));
    printf("descriptor limit %llu (RLIMIT_NOFILE)\n", limit);

    /* Worker 0 is this process; it forks workers 1..N. SIGCHLD is blocked
     * first: a worker that dies early leaves it pending for worker 0's
     * signalfd instead of discarded (signalfd(2)). */
    sigset_t sigchld;
    sigemptyset(&sigchld);
    sigaddset(&sigchld, SIGCHLD);
    if (workers > 1 && sigprocmask(SIG_BLOCK, &sigchld, NULL) < 0)
        die("sigprocmask", "SIGCHLD");
    pid_t parent = getpid(), *children = calloc(workers, sizeof *children);
    if (children == NULL)
        die("calloc", local);
    for (n = 1; n < workers; n++) {
        pid_t pid = fork();
        if (pid < 0)
            die("fork", local);
        if (pid == 0) {
            worker = n;
            become_worker(n, parent);
            break;
        }
        children[n - 1] = pid;
    }
    /* Each worker keeps its own socket and closes the others': left open in
     * another process, a socket would outlive its worker, and connections
     * the kernel hands it would wait for nobody. */
    for (n = 0; n < workers; n++)
        if (n != worker && close(listeners[n]) < 0)
            fprintf(stderr, "close %s: %s\n", local, strerror(errno));
    int listenfd = listeners[worker];
    if (workers > 1) {
        printf("worker %lu (pid %d) accepting on %s\n", worker, (int)getpid(), local);
        snprintf(tag, sizeof tag, "[worker %lu] ", worker);
    }

    /* epoll_create1(2): the kernel object that holds our interest list. */
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1", local);
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = LISTENER };
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, listenfd, &ev) < 0)
        die("epoll_ctl", local);
    int deaths = worker == 0 && workers > 1 ? watch_deaths(epfd, &sigchld, local) : -1;

    /* As in lab 04: the spare descriptor for EMFILE (labs.c). */
    int spare = reserve_spare(limit), out_of_descriptors = 0;
    for (;;) {
        /* Level-triggered (the default): a descriptor is reported as long
         * as it is ready, so we may leave data unread and hear of it again. */
        int nready = epoll_wait(epfd, events, MAXEVENTS, -1);
        if (nready < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait", local);
        }
        for (i = 0; i < nready; i++) {
            uint64_t token = events[i].data.u64;
            if (token == WORKER_DIED) {
                reap_workers(deaths, children, workers - 1);
                continue;
            }
            if (token != LISTENER) {
                serve(epfd, token, events[i].events, buf, sizeof buf);
                continue;
            }
            /* Accept all that wait: one readiness may stand for many. */
            for (;;) {
                clilen = sizeof cliaddr;
                int connfd = accept4(listenfd, (struct sockaddr *)&cliaddr, &clilen, SOCK_NONBLOCK);
                if (connfd < 0) {
                    if (errno == EAGAIN) /* EWOULDBLOCK is EAGAIN on Linux */
                        break;
                    if (errno == EINTR || errno == ECONNABORTED)
                        continue;
                    if (errno != EMFILE && errno != ENFILE)
                        die("accept", local);
                    if (!out_of_descriptors) {
                        fprintf(stderr, "%saccept %s: %s; closing new connections until one frees\n",
                                tag, local, strerror(errno));
                        out_of_descriptors = 1;
                    }
                    if (refuse_one(listenfd, &spare, local))
                        continue;
                    break; /* nobody was waiting */
                }
                out_of_descriptors = 0;
                sock_ntop((struct sockaddr *)&cliaddr, peer);
                if (make_room((size_t)connfd) < 0) {
                    fprintf(stderr, "%smalloc %s: %s\n", tag, peer, strerror(ENOMEM));
                    close(connfd);
                    continue;
                }
                ev.events = EPOLLIN;
                ev.data.u64 = (uint64_t)connfd;
                if (epoll_ctl(epfd, EPOLL_CTL_ADD, connfd, &ev) < 0) {
                    fprintf(stderr, "%sepoll_ctl %s: %s\n", tag, peer, strerror(errno));
                    close(connfd);
                    continue;
                }
                printf("%sconnection from %s\n", tag, peer);
                client[connfd] = (struct client){ .fd = connfd, .interest = EPOLLIN };
                memcpy(client[connfd].peer, peer, sizeof peer);
            }
        }
    }
}
