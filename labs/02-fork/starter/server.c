/*
 * Lab 02: the echo server that forks one process per client (UNP's
 * tcpserv01 with sig_chld; Beej's server.c).
 *
 * socket -> setsockopt(SO_REUSEADDR) -> bind -> listen -> loop { accept ->
 * fork: the child closes the listening socket, serves its client and exits;
 * the parent closes the connected socket and accepts again }. Children that
 * exit are reaped with waitpid(2) when SIGCHLD interrupts accept(2).
 *
 * Build: make, or by hand in this folder:
 *     cc -Wall -Wextra -O2 -I../common -o server-c server.c ../common/labs.c
 * Run:   ./server-c [PORT] [--bind ADDR] [--no-reap]
 */
/* The starter: write each TODO (the lesson's calls), then `make` and
 * `make check LAB=02-fork`. The answer is the lab's server.c. */
#include "labs.h"

#include <sys/prctl.h>
#include <sys/wait.h>

static const char usage[] =
    "usage: server [PORT] [--bind ADDR] [--no-reap]\n"
    "\n"
    "Lab 02: echo server with one process per client (fork). Every client is\n"
    "served by a child process of its own, so clients no longer wait for each other.\n"
    "\n"
    "  PORT         port to listen on (default 4242; 0 = any free port)\n"
    "  --bind ADDR  address to listen on (default 0.0.0.0; IPv6 such as :: or ::1 works)\n"
    "  --no-reap    no waitpid(2) while serving: children that exit stay zombies\n"
    "               (Z in ps) until the server stops\n"
    "  --help       print this help\n";

static volatile sig_atomic_t child_exited; /* SIGCHLD came: reap */
static volatile sig_atomic_t stop;         /* SIGINT or SIGTERM came: stop */

/* A handler may only do async-signal-safe work (signal-safety(7)): setting
 * a flag is; printing and waitpid(2) happen in the main loop. */
static void sig_chld(int signo)
{
    (void)signo;
    child_exited = 1;
}

static void sig_stop(int signo)
{
    (void)signo;
    stop = 1;
}

/* sigaction(2) without SA_RESTART: a signal makes accept(2) fail with EINTR,
 * so that the loop can reap or stop at once. */
static void handle(int signo, void (*handler)(int))
{
    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_handler = handler;
    sigemptyset(&act.sa_mask);
    if (sigaction(signo, &act, NULL) < 0)
        die("sigaction", strsignal(signo));
}

/* The child serves its client to the end: Ctrl-C in the terminal (SIGINT to
 * the whole process group) is meant for the parent; `kill PID` (SIGTERM)
 * still ends one child. */
static void child_signals(void)
{
    handle(SIGINT, SIG_IGN);
    handle(SIGTERM, SIG_DFL);
    handle(SIGCHLD, SIG_DFL);
}

/* Collects every child that has exited; returns how many. Signals do not
 * queue: one SIGCHLD may stand for several children, so waitpid(2) is
 * called until none is left (WNOHANG: never block). */
static int reap_children(void)
{
    int reaped = 0, status;
    pid_t pid;
    /* TODO waitpid(2) WNOHANG until no exited child is left: log each, count them */
    todo("waitpid(2)");
    return reaped;
}

/* The child's whole life: echo until the client closes, as in lab 01. */
static void str_echo(int connfd, const struct sockaddr_storage *cliaddr, const char *peer)
{
    int pid = (int)getpid();
    char name[16], buf[16384];
    ssize_t n;

    /* What ps -o comm and htop show; at most 15 bytes (prctl(2)). */
    snprintf(name, sizeof name, "server:%u", port_of((const struct sockaddr *)cliaddr));
    prctl(PR_SET_NAME, name, 0, 0, 0);
    printf("[pid %d] serving %s\n", pid, peer);
    for (;;) {
        if ((n = read(connfd, buf, sizeof buf)) == 0)
            break; /* the client closed */
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "[pid %d] read %s: %s\n", pid, peer, strerror(errno));
            break;
        }
        /* A client that never reads blocks only this child's write(2). */
        if (writen(connfd, buf, (size_t)n) < 0) {
            fprintf(stderr, "[pid %d] write %s: %s\n", pid, peer, strerror(errno));
            break;
        }
    }
    printf("[pid %d] %s disconnected\n", pid, peer);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "bind", required_argument, NULL, 'b' },
        { "no-reap", no_argument, NULL, 'n' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *bind_ip = "0.0.0.0";
    unsigned short port = DEFAULT_PORT;
    int no_reap = 0, c;

    set_usage(usage);
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'b': bind_ip = optarg; break;
        case 'n': no_reap = 1; break;
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
    handle(SIGCHLD, sig_chld);
    handle(SIGINT, sig_stop);
    handle(SIGTERM, sig_stop);

    /* TODO socket(2), setsockopt(2) SO_REUSEADDR, bind(2), listen(2), getsockname(2) */
    int listenfd = -1;
    todo("socket(2), bind(2), listen(2)");
    printf("listening on %s\n", sock_ntop((struct sockaddr *)&servaddr, local));

    int children = 0;
    for (;;) {
        /* The flag is cleared before reaping: a child that exits meanwhile sets it anew. */
        while (!no_reap && child_exited) {
            child_exited = 0;
            children -= reap_children();
        }
        if (stop)
            break;
        /* TODO accept(2) (EINTR: go round to reap or stop), the address in cliaddr */
        int connfd = -1;
        todo("accept(2)");
        printf("connection from %s\n", sock_ntop((struct sockaddr *)&cliaddr, peer));

        /* TODO fork(2); child: close(2) listenfd, serve, exit; parent: close(2) connfd */
        todo("fork(2)");
    }
    /* Count what is true: a child that has exited is not serving, even if
     * nobody reaped it yet (--no-reap, or one that exited as we stopped).
     * The flag says some did: reap them now, then count. */
    if (child_exited) {
        child_exited = 0;
        children -= reap_children();
    }
    /* Children still serving finish with their client; init(1) reaps them. */
    printf("shutting down; %d children still serving\n", children);
    close(listenfd);
    return 0;
}
