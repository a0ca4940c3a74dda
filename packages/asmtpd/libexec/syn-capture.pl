# syn-capture.pl — asmtpd's SYN capture: the kernel hands it the TCP SYNs to our ports, it prints them.
#
# SUMMARY
#   perl syn-capture.pl PORTS [IFACE...]
#     PORTS   comma-separated destination ports (1-65535, at most 64)
#     IFACE   capture only on these interfaces (default: every interface)
#   Opens one AF_PACKET/SOCK_DGRAM socket per family (ETH_P_IP, ETH_P_IPV6) and interface, with a
#   classic BPF filter attached, so the kernel passes on nothing but incoming TCP SYNs (SYN set, ACK
#   clear) to one of PORTS: IPv4 (first fragments only, any IP options) and IPv6 (TCP right after
#   the fixed header; SYNs behind extension headers are not captured). Started by facts/synfp/capture.ts
#   (the network facts process, or `asmtpd --synfp`) with an empty environment.
#   stdout, one line each:
#     "ready"              every socket is open and filtered
#     "P HEX"              one SYN: the IP packet from its IP header on (at most 256 bytes), in hex
#     "E MESSAGE"          fatal (e.g. no CAP_NET_RAW: "socket: Operation not permitted"); exit 1
#   stdin: nothing is read; its end (the parent is gone) ends the helper.
#
# WHY NOT A RAW TCP SOCKET (raw-socket)
#   A raw IPPROTO_TCP socket gets a copy of every TCP segment the host receives, and on IPv6 only
#   the TCP header (no hop limit, no destination address): under bulk traffic its queue overflows
#   and SYNs are lost, and the IPv6 TTL would be unknown. AF_PACKET with a socket filter gets only
#   the SYNs, with their whole IP header, for both families. See docs/facts.md "SYN fingerprint".
#
# SECURITY
#   Needs CAP_NET_RAW (AF_PACKET). Reads no file but /sys/class/net/IFACE/ifindex, writes only to
#   stdout, and parses nothing from the network: packets are printed as hex for the caller to parse.
#   Uses only perl-base (IO::Select).
use strict;
use warnings;
use IO::Select;

$| = 1;
$SIG{PIPE} = sub { exit 0 };
$SIG{$_} = 'IGNORE' for qw(USR1 USR2);    # a stray signal must not end the capture

my $AF_PACKET  = 17;
my $SOCK_DGRAM = 2;
my $SOL_SOCKET = 1;
my $SO_ATTACH_FILTER = 26;
my $SO_RCVBUF  = 8;
my $MSG_DONTWAIT = 0x40;
my $ETH_P_IP   = 0x0800;
my $ETH_P_IPV6 = 0x86DD;
my $SNAPLEN    = 256;
my $AD_PKTTYPE = 0xfffff004;    # SKF_AD_OFF + SKF_AD_PKTTYPE; PACKET_HOST = 0

sub fail { print "E @_\n"; exit 1; }

my ($ports_arg, @ifaces) = @ARGV;
fail('usage: syn-capture.pl PORTS [IFACE...]') unless defined $ports_arg && $ports_arg =~ /^\d+(,\d+)*$/;
my @ports = split /,/, $ports_arg;
fail('at most 64 ports') if @ports > 64;
for (@ports) { fail("bad port $_") if $_ < 1 || $_ > 65535; }

# Classic BPF, built from [code, jt, jf, k] with 'DROP'/'ACCEPT' as jump targets.
sub program {
    my @insns = (@_, map({ [0x15, 'ACCEPT', 0, $_] } @ports), ['DROP'], ['ACCEPT']);
    my ($drop, $accept) = ($#insns - 1, $#insns);
    my $bytes = '';
    for my $i (0 .. $#insns) {
        my $x = $insns[$i];
        if ($x->[0] eq 'DROP')   { $bytes .= pack('S C C L', 0x06, 0, 0, 0); next; }
        if ($x->[0] eq 'ACCEPT') { $bytes .= pack('S C C L', 0x06, 0, 0, $SNAPLEN); next; }
        my ($code, $jt, $jf, $k) = @$x;
        my @j = map { $_ eq 'DROP' ? $drop - $i - 1 : $_ eq 'ACCEPT' ? $accept - $i - 1 : $_ } ($jt, $jf);
        $bytes .= pack('S C C L', $code, @j, $k);
    }
    return ($bytes, scalar @insns);
}

my @common = ([0x20, 0, 0, $AD_PKTTYPE], [0x15, 0, 'DROP', 0]);    # ld pkttype; incoming to this host only
my %filters = (
    $ETH_P_IP => [program(@common,
        [0x30, 0, 0, 9],  [0x15, 0, 'DROP', 6],                        # ldb [9]: protocol TCP
        [0x28, 0, 0, 6],  [0x45, 'DROP', 0, 0x1fff],                   # ldh [6]: a later fragment
        [0xb1, 0, 0, 0],                                               # ldxb 4*([0]&0xf): X = IP header length
        [0x50, 0, 0, 13], [0x54, 0, 0, 0x12], [0x15, 0, 'DROP', 0x02], # ldb [x+13] & (SYN|ACK) == SYN
        [0x48, 0, 0, 2])],                                             # ldh [x+2]: destination port
    $ETH_P_IPV6 => [program(@common,
        [0x30, 0, 0, 6],  [0x15, 0, 'DROP', 6],                        # ldb [6]: next header TCP
        [0x30, 0, 0, 53], [0x54, 0, 0, 0x12], [0x15, 0, 'DROP', 0x02], # ldb [53] & (SYN|ACK) == SYN
        [0x28, 0, 0, 42])],                                            # ldh [42]: destination port
);

sub ifindex {
    my ($name) = @_;
    fail("bad interface name $name") unless $name =~ /^[A-Za-z0-9_.:\@-]{1,15}$/;
    open(my $fh, '<', "/sys/class/net/$name/ifindex") or fail("no interface $name");
    my $index = <$fh>;
    close $fh;
    chomp $index;
    return $index;
}

my @sockets;
my @indexes = @ifaces ? map({ ifindex($_) } @ifaces) : (0);
for my $proto ($ETH_P_IP, $ETH_P_IPV6) {
    my ($prog, $count) = @{ $filters{$proto} };
    for my $index (@indexes) {
        socket(my $s, $AF_PACKET, $SOCK_DGRAM, unpack('S', pack('n', $proto))) or fail("socket: $!");
        my $fprog = pack('S x![P] P', $count, $prog);
        setsockopt($s, $SOL_SOCKET, $SO_ATTACH_FILTER, $fprog) or fail("attaching the filter: $!");
        setsockopt($s, $SOL_SOCKET, $SO_RCVBUF, pack('i', 1 << 20));
        if ($index) {
            bind($s, pack('S n i S C C a8', $AF_PACKET, $proto, $index, 0, 0, 0, '')) or fail("bind: $!");
        }
        # what arrived between socket() and the filter was not filtered: throw it away
        1 while defined recv($s, my $junk, $SNAPLEN, $MSG_DONTWAIT);
        push @sockets, $s;
    }
}

my $select = IO::Select->new(\*STDIN, @sockets);
print "ready\n";
while (1) {
    for my $fh ($select->can_read) {
        if (fileno($fh) == fileno(STDIN)) {
            my $n = sysread(STDIN, my $buf, 4096);
            exit 0 unless $n;
            next;
        }
        while (defined recv($fh, my $packet, $SNAPLEN, $MSG_DONTWAIT)) {
            print 'P ', unpack('H*', $packet), "\n";
        }
    }
}
