/* sys_net: socket system calls on loopback whose decoding tests/test_syscall_decode.py compares with
 * strace. Usage: sys_net PORT1 PORT2 DIR: TCP and UDP on 127.0.0.1 (and ::1 when it exists) on the
 * two ports the test picked, so that no address in the trace is ephemeral; a unix socket in DIR. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static struct sockaddr_in loopback(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

int main(int argc, char **argv)
{
    if (argc != 4)
        return 2;
    int port1 = atoi(argv[1]), port2 = atoi(argv[2]);
    char buf[256];
    int one = 1;
    socklen_t len;

    int srv = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a1 = loopback(port1), a2 = loopback(port2), peer;
    bind(srv, (struct sockaddr *)&a1, sizeof a1);
    listen(srv, 4);
    len = sizeof peer;
    getsockname(srv, (struct sockaddr *)&peer, &len);

    int cli = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    setsockopt(cli, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(cli, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct linger lg = {1, 5};
    setsockopt(cli, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    bind(cli, (struct sockaddr *)&a2, sizeof a2);
    connect(cli, (struct sockaddr *)&a1, sizeof a1);
    len = 128;
    int conn = accept4(srv, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK);
    len = sizeof peer;
    getpeername(cli, (struct sockaddr *)&peer, &len);
    int type;
    len = sizeof type;
    getsockopt(cli, SOL_SOCKET, SO_TYPE, &type, &len);
    len = sizeof lg;
    getsockopt(cli, SOL_SOCKET, SO_LINGER, &lg, &len);

    struct pollfd pfd[2] = {{conn, POLLIN, 0}, {-1, POLLIN, 0}};
    poll(pfd, 2, 0);                                   /* nothing yet: Timeout */
    sendto(cli, "hello\n\t\"\\\001\377\0", 12, MSG_NOSIGNAL, NULL, 0);
    poll(pfd, 2, 1000);
    recvfrom(conn, buf, sizeof buf, 0, NULL, NULL);
    recvfrom(conn, buf, sizeof buf, MSG_DONTWAIT, NULL, NULL);  /* EAGAIN */
    write(cli, "a longer message than the string size of thirty-two bytes", 58);
    read(conn, buf, 10);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.u64 = 0x100000005ULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, conn, &ev);
    struct epoll_event evs[4];
    epoll_wait(ep, evs, 4, 1000);
    epoll_ctl(ep, EPOLL_CTL_DEL, conn, NULL);
    shutdown(cli, SHUT_WR);
    epoll_wait(ep, evs, 4, 0);

    int sp[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp);
    struct iovec iov[2] = {{"abc", 3}, {"defgh", 5}};
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &srv, sizeof(int));
    sendmsg(sp[0], &m, 0);
    char rb[4], rb2[64], rc[64];
    struct iovec riov[2] = {{rb, sizeof rb}, {rb2, sizeof rb2}};
    struct msghdr rm = {.msg_iov = riov, .msg_iovlen = 2, .msg_control = rc, .msg_controllen = sizeof rc};
    recvmsg(sp[1], &rm, MSG_CMSG_CLOEXEC);

    int u1 = socket(AF_INET, SOCK_DGRAM, 0), u2 = socket(AF_INET, SOCK_DGRAM, 0);
    bind(u1, (struct sockaddr *)&a1, sizeof a1);
    bind(u2, (struct sockaddr *)&a2, sizeof a2);
    struct iovec uiov = {"datagram", 8};
    struct msghdr um = {.msg_name = &a1, .msg_namelen = sizeof a1, .msg_iov = &uiov, .msg_iovlen = 1};
    sendmsg(u2, &um, 0);
    struct sockaddr_in from;
    struct iovec ruiov = {buf, sizeof buf};
    struct msghdr rum = {.msg_name = &from, .msg_namelen = sizeof from + 4, .msg_iov = &ruiov, .msg_iovlen = 1};
    recvmsg(u1, &rum, 0);

    int un = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un ua = {.sun_family = AF_UNIX};
    snprintf(ua.sun_path, sizeof ua.sun_path, "%s/sock", argv[3]);
    bind(un, (struct sockaddr *)&ua, sizeof ua);
    unlink(ua.sun_path);
    struct sockaddr_un abstract = {.sun_family = AF_UNIX, .sun_path = "\0utrace-test"};
    connect(un, (struct sockaddr *)&abstract, offsetof(struct sockaddr_un, sun_path) + 12);

    int s6 = socket(AF_INET6, SOCK_DGRAM, IPPROTO_UDP);
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(port1), .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bind(s6, (struct sockaddr *)&a6, sizeof a6);
    int raw = socket(AF_NETLINK, SOCK_RAW, 0);
    close(raw);
    return 0;
}
