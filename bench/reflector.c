/* bench/reflector.c: the kernel's floor for scripts/bench.
 *
 * A UDP echo that does no DNS work: it receives up to 32 datagrams with
 * recvmmsg, sets the QR bit (byte 2, 0x80) of each so the load generator
 * counts it as an answer, and sends them back with sendmmsg. What it costs
 * per query is what the kernel costs a server on this machine; a DNS server
 * cannot use less CPU per answer with ordinary sockets.
 *
 * Build: cc -O2 -o reflector bench/reflector.c    Run: reflector PORT
 * It listens on 127.0.0.1:PORT until killed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define BATCH 32
#define SIZE 4096

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: reflector PORT\n");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int rcvbuf = 4 << 20; /* like the servers: room for a burst */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        perror("reflector: bind");
        return 1;
    }
    static char bufs[BATCH][SIZE];
    struct sockaddr_in peers[BATCH];
    struct iovec iov[BATCH];
    struct mmsghdr msgs[BATCH];
    for (;;) {
        memset(msgs, 0, sizeof msgs);
        for (int i = 0; i < BATCH; i++) {
            iov[i] = (struct iovec){bufs[i], SIZE};
            msgs[i].msg_hdr = (struct msghdr){
                .msg_name = &peers[i], .msg_namelen = sizeof peers[i], .msg_iov = &iov[i], .msg_iovlen = 1};
        }
        int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
        if (n <= 0)
            continue;
        for (int i = 0; i < n; i++) {
            iov[i].iov_len = msgs[i].msg_len;
            if (msgs[i].msg_len > 2)
                bufs[i][2] |= (char)0x80;
        }
        for (int sent = 0; sent < n;) {
            int r = sendmmsg(fd, msgs + sent, n - sent, 0);
            sent += r > 0 ? r : 1; /* skip a datagram that cannot be sent */
        }
    }
}
