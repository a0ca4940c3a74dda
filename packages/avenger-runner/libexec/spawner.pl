# spawner.pl — the avenger runner's forker: fork, become the user, exec; relay output and status.
#
# SUMMARY
#   Started once by the runner (root) as `perl spawner.pl` with an empty environment. A small
#   perl process forks much faster than Node, and in the forked child it can do what Node's
#   spawn cannot: setgroups(LIST) + setgid + setuid, then exec the program directly (no extra
#   exec of setpriv). Timing (timeouts, grace periods) is the runner's job, not this one's.
#
#   runner → spawner, on stdin:  LENGTH "\n" PAYLOAD, PAYLOAD = NUL-separated fields:
#     "run", TOKEN, UID, GID, GROUPS ("g1 g2…", may be empty), CWD, STDIN ("" = /dev/null),
#     SCRIPT ("" = none; a /proc/PID/fd/N path, opened O_PATH and put on fd 4),
#     DECISION ("1" = a pipe on fd 3), MAXBYTES, ARGC, ARGV…, then "NAME=VALUE" environment
#     "abandon", TOKEN   — stop waiting for the child's pipes (it is reported once reaped)
#   When the program exits, the rest of its process group is killed; pipes still held open
#   (by something that left the group) are given up 1-2 s later.
#   spawner → runner, on stdout:
#     "S TOKEN PID\n"                          started (the runner may close its descriptors)
#     "E TOKEN MESSAGE\n"                      nothing was started
#     "R TOKEN STATUS TRUNC OUTLEN ERRLEN DECLEN\n" OUT ERR DEC    finished; STATUS = raw wait status
#
# SECURITY
#   Uses only perl-base (POSIX, IO::Select). Refuses uid 0. The child gets fds 0-2, the
#   decision pipe on 3 and the script's O_PATH handle on 4; everything else perl opened is
#   close-on-exec ($^F = 2) and fds 3..9 are parked on /dev/null in the parent, so the child's
#   dup2 targets never collide with a live pipe. The child checks its real, effective and saved
#   ids after switching and dies (126) rather than exec with the wrong ones.
use strict;
use warnings;
use POSIX ();
use IO::Select;

my $O_PATH = 010000000;
$| = 1;
binmode STDIN;
binmode STDOUT;
$SIG{PIPE} = 'IGNORE';
$SIG{CHLD} = sub { };    # only to interrupt select()

# Park fds 3..9 so every pipe we create is >= 10.
my @parked;
for (3 .. 9) { open(my $fh, '<', '/dev/null') or die "spawner: /dev/null: $!"; push @parked, $fh; }

my $select = IO::Select->new(\*STDIN);
my %kids;        # token => { pid, status (undef until reaped), pipes => {fileno => [fh, which]}, buf => {out,err,dec}, trunc, max }
my %by_fd;       # fileno => token
my %by_pid;      # pid => token
my $inbuf = '';

sub reply { print STDOUT @_; }

sub open_pipes {
    my ($decision) = @_;
    my %p;
    for my $which ('out', 'err', ($decision ? 'dec' : ())) {
        pipe(my $r, my $w) or return;
        binmode $r;
        $p{$which} = [$r, $w];
    }
    return \%p;
}

sub start {
    my ($token, $uid, $gid, $groups, $cwd, $stdin, $script, $decision, $max, $argc, @rest) = @_;
    my @argv = splice(@rest, 0, $argc);
    my @env  = @rest;
    return reply("E $token refusing uid 0\n") if $uid == 0;
    return reply("E $token no program\n") unless @argv;
    my ($in, $scriptfh);
    if ($stdin ne '') { open($in, '<', $stdin) or return reply("E $token cannot open stdin: $!\n"); }
    else              { open($in, '<', '/dev/null') or return reply("E $token /dev/null: $!\n"); }
    if ($script ne '') { sysopen($scriptfh, $script, $O_PATH) or return reply("E $token cannot open script: $!\n"); }
    my $p = open_pipes($decision eq '1') or return reply("E $token pipe: $!\n");
    my @groups = split / /, $groups;
    @groups = ($gid) unless @groups;

    my $pid = fork();
    return reply("E $token fork: $!\n") unless defined $pid;
    if ($pid == 0) {
        # Child: new session, descriptors, credentials, exec. Errors go to the stderr pipe.
        POSIX::setsid();
        POSIX::dup2(fileno($in), 0);
        POSIX::dup2(fileno($p->{out}[1]), 1);
        POSIX::dup2(fileno($p->{err}[1]), 2);
        POSIX::dup2(fileno($p->{dec}[1]), 3) if $p->{dec};
        POSIX::dup2(fileno($scriptfh), 4) if $scriptfh;
        chdir($cwd) or do { print STDERR "spawner: cannot chdir to $cwd: $!\n"; POSIX::_exit(126); };
        $) = join(' ', $gid, @groups);
        POSIX::setgid($gid);
        POSIX::setuid($uid);
        my @rgids = split / /, "$(";
        my @egids = split / /, "$)";
        if ($< != $uid || $> != $uid || $rgids[0] != $gid || $egids[0] != $gid || POSIX::getuid() == 0) {
            print STDERR "spawner: cannot switch to uid $uid gid $gid\n";
            POSIX::_exit(126);
        }
        %ENV = ();
        for (@env) { my ($k, $v) = split /=/, $_, 2; $ENV{$k} = $v; }
        { no warnings 'exec'; exec { $argv[0] } @argv; }
        print STDERR "$argv[0]: $!\n";
        POSIX::_exit(127);
    }
    close($_->[1]) for values %$p;
    close($in);
    close($scriptfh) if $scriptfh;
    my %pipes;
    for my $which (keys %$p) {
        my $fh = $p->{$which}[0];
        $pipes{fileno $fh} = [$fh, $which];
        $by_fd{fileno $fh} = $token;
        $select->add($fh);
    }
    $kids{$token} = { pid => $pid, status => undef, pipes => \%pipes, buf => { out => '', err => '', dec => '' }, trunc => 0, max => $max };
    $by_pid{$pid} = $token;
    reply("S $token $pid\n");
}

sub drop_pipe {
    my ($kid, $fd) = @_;
    my $entry = delete $kid->{pipes}{$fd} or return;
    $select->remove($entry->[0]);
    close($entry->[0]);
    delete $by_fd{$fd};
}

sub finish_if_done {
    my ($token) = @_;
    my $kid = $kids{$token} or return;
    return if !defined $kid->{status} || %{ $kid->{pipes} };
    delete $kids{$token};
    my $b = $kid->{buf};
    reply(join(' ', 'R', $token, $kid->{status}, $kid->{trunc}, length $b->{out}, length $b->{err}, length $b->{dec}) . "\n", $b->{out}, $b->{err}, $b->{dec});
}

sub handle_frame {
    my @f = split /\0/, $_[0], -1;
    my $verb = shift @f;
    if ($verb eq 'run') { start(@f); }
    elsif ($verb eq 'abandon') {
        my $kid = $kids{ $f[0] } or return;
        drop_pipe($kid, $_) for keys %{ $kid->{pipes} };
        finish_if_done($f[0]);
    }
}

sub read_requests {
    my $n = sysread(STDIN, $inbuf, 65536, length $inbuf);
    if (!$n) {    # the runner is gone: take every child down with us
        kill('KILL', -$_->{pid}) for values %kids;
        exit 0;
    }
    while ($inbuf =~ /^(\d+)\n/) {
        my $need = length($1) + 1 + $1;
        last if length $inbuf < $need;
        my $frame = substr($inbuf, length($1) + 1, $1);
        substr($inbuf, 0, $need, '');
        handle_frame($frame);
    }
}

sub read_child {
    my ($fh) = @_;
    my $fd    = fileno $fh;
    my $token = $by_fd{$fd};
    my $kid   = $kids{$token};
    my $which = $kid->{pipes}{$fd}[1];
    my $n     = sysread($fh, my $chunk, 65536);
    if (!$n) {
        drop_pipe($kid, $fd);
        # The last pipe usually closes a few microseconds before the child becomes reapable.
        if (!%{ $kid->{pipes} } && !defined $kid->{status}) {
            for (1 .. 40) { reap(); last unless $kids{$token}; select(undef, undef, undef, 0.00005); }
        }
        finish_if_done($token);
        return;
    }
    my $room = $kid->{max} - length $kid->{buf}{$which};
    if ($room < $n) { $kid->{trunc} = 1 if $which ne 'dec'; $chunk = substr($chunk, 0, $room > 0 ? $room : 0); }
    $kid->{buf}{$which} .= $chunk;
}

sub reap {
    while ((my $pid = waitpid(-1, POSIX::WNOHANG())) > 0) {
        my $token = delete $by_pid{$pid} or next;
        my $kid = $kids{$token} or next;
        $kid->{status}    = $?;
        $kid->{reaped_at} = time;
        kill('KILL', -$pid);    # the script's background jobs do not outlive it
        finish_if_done($token);
    }
}

while (1) {
    # A child's exit can race with select(): poll briefly while one is unreaped.
    my $timeout = %kids ? (grep({ !%{ $_->{pipes} } } values %kids) ? 0.005 : 0.25) : undef;
    my @ready = $select->can_read($timeout);
    for my $fh (@ready) {
        if (fileno($fh) == fileno(STDIN)) { read_requests(); }
        elsif (defined $by_fd{ fileno $fh }) { read_child($fh); }
    }
    reap();
    # Pipes held open by something that left the group: give up on them after a second or two.
    for my $token (keys %kids) {
        my $kid = $kids{$token};
        next unless defined $kid->{reaped_at} && time - $kid->{reaped_at} >= 2;
        drop_pipe($kid, $_) for keys %{ $kid->{pipes} };
        finish_if_done($token);
    }
}
