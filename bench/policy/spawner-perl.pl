# bench/policy/spawner-perl.pl — NOT USED BY asmtpd: the perl spawner the runner used until issue 21,
# kept as the baseline bench/policy compares libexec/spawner (C, the same frames) with.
#
# spawner.pl — the avenger runner's forker: fork, become the user, exec; relay output and status.
#
# SUMMARY
#   Started once by the runner as `perl spawner.pl --limits=NPROC,CPU,DATA,FSIZE,NOFILE` with an
#   empty environment. A small perl process forks much faster than Node, and in the forked child
#   it can do what Node's spawn cannot: setgroups(LIST) + setgid + setuid, then exec the program
#   directly (no extra exec of setpriv). Timing (timeouts, grace periods) is the runner's job.
#
#   runner → spawner, on stdin:  LENGTH "\n" PAYLOAD, PAYLOAD = NUL-separated fields:
#     "run", TOKEN, UID, GID, GROUPS ("g1 g2…", may be empty), CWD, STDIN ("" = /dev/null, else a
#     /proc/RUNNER/fd/N path), DECISION ("1" = a pipe on fd 3), MAXBYTES,
#     NLOOKUP, LOOKUP… (NLOOKUP fields; none for a body test), ARGC, ARGV…, "NAME=VALUE" environment
#       LOOKUP = AS ("1": look with the child's uid, gid and groups; "0": as root), DIR, then per
#       candidate file: NAME, NEXTRA, NEXTRA × "NAME=VALUE" added to the environment if it is found
#     "abandon", TOKEN   — stop waiting for the child's pipes (it is reported once reaped)
#   With a LOOKUP, the first candidate that exists in DIR is checked (see find_script) and, if
#   safe, opened O_PATH on fd 4 of the child and its path appended to ARGV.
#   After the fork an otherwise idle parent waits (at most EXEC_WAIT_S) for the child's exec, so that it does not
#   write to pages the child still shares (each such write costs a page copy). A child's end is
#   seen on its pidfd (pidfd_open; a poll where the kernel has none), not by polling waitpid.
#   When the program exits, the rest of its process group is killed; pipes still held open
#   (by something that left the group) are given up 1-2 s later.
#   spawner → runner, on stdout:
#     "S TOKEN PID FOUND\n"                    started; FOUND = index of the script among the candidates (-1: none asked).
#                                              Sent with the R of a child that ends within a tick or two (one write),
#                                              else on its own after that (at most ~70 ms after the fork)
#     "X TOKEN KIND TRIED REASON\n"            no script to run: KIND none|refused|error; TRIED = candidates looked at
#     "E TOKEN MESSAGE\n"                      nothing was started
#     "R TOKEN STATUS TRUNC OUTLEN ERRLEN DECLEN\n" OUT ERR DEC    finished; STATUS = raw wait status
#
#   The child, in this order: new session; descriptors 0-4; signal dispositions and mask back to
#   the defaults (this process ignores SIGPIPE: a child must not inherit that); groups, gid, uid
#   (only when root; otherwise the ids must already be the requested ones); a check of real,
#   effective, saved and filesystem uid and gid and of the supplementary groups, read back from
#   /proc/self/status; resource limits (RLIMIT_NPROC, CPU, DATA, FSIZE, NOFILE as given at start,
#   0 = left as inherited; RLIMIT_CORE 0); chdir to CWD as the user; environment; exec.
#   A failure at any step ends the child with 126 and a line on its stderr; nothing runs.
#
# SECURITY
#   The script lookup runs with the user's effective ids and groups (seteuid in this process, back
#   to root before anything else happens): a directory the user points anywhere is opened with the
#   user's rights, and refusals tell the runner nothing the user could not see. Checks, on the
#   descriptors: DIR is a directory, the script a regular file, both owned by UID or root and
#   neither group- nor world-writable; a symlinked script's real directory must pass the same.
#   The first candidate that exists decides: an unsafe one is refused, never skipped.
#   Uses only perl-base (POSIX, Fcntl, Errno, IO::Select; setrlimit and prctl through syscall(), whose numbers
#   are known for x86_64 and aarch64: elsewhere the spawner refuses to start). Refuses uid 0. The child gets
#   fds 0-2, the decision pipe on 3 and the script's O_PATH handle on 4; everything else perl
#   opened is close-on-exec ($^F = 2) and fds 3..9 are parked on /dev/null in the parent, so the
#   child's dup2 targets never collide with a live pipe. The working directory is entered after
#   the switch, with the user's own rights.
use strict;
use warnings;
use POSIX ();
use Fcntl qw(O_DIRECTORY S_ISREG S_ISDIR);
use Errno ();
use IO::Select;

my $O_PATH = 010000000;
my %SYS_SETRLIMIT = (x86_64 => 160, aarch64 => 164);
my %SYS_PRCTL = (x86_64 => 157, aarch64 => 167);
my $PR_SET_CHILD_SUBREAPER = 36;
my ($RLIMIT_CPU, $RLIMIT_FSIZE, $RLIMIT_DATA, $RLIMIT_CORE, $RLIMIT_NPROC, $RLIMIT_NOFILE) = (0, 1, 2, 4, 6, 7);
my $setrlimit = $SYS_SETRLIMIT{ (POSIX::uname())[4] } // die "spawner: no setrlimit syscall number for this machine\n";
my @limits = (@ARGV == 1 && $ARGV[0] =~ /^--limits=(\d+),(\d+),(\d+),(\d+),(\d+)$/) ? ($1, $2, $3, $4, $5)
    : die "spawner: usage: spawner.pl --limits=NPROC,CPU,DATA,FSIZE,NOFILE\n";
$| = 1;
binmode STDIN;
binmode STDOUT;
$SIG{PIPE} = 'IGNORE';
$SIG{$_} = 'IGNORE' for qw(USR1 USR2);    # a stray signal must not end it (children get the defaults back)
$SIG{CHLD} = sub { };    # only to interrupt select()

# Orphans of a script (a killed group's children, daemonized leftovers) come back to us, not to
# pid 1: reap() collects them, so their zombies never count against the user's RLIMIT_NPROC even
# where pid 1 does not reap (containers, minimal inits).
syscall($SYS_PRCTL{ (POSIX::uname())[4] }, $PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    or die "spawner: cannot become the child subreaper: $!\n";

# Park fds 3..9 so every pipe we create is >= 10.
my @parked;
for (3 .. 9) { open(my $fh, '<', '/dev/null') or die "spawner: /dev/null: $!"; push @parked, $fh; }

my $select = IO::Select->new(\*STDIN);
my %kids;        # token => { pid, status (undef until reaped), pipes => {fileno => [fh, which]}, buf => {out,err,dec}, trunc, max }
my %by_fd;       # fileno => token
my %by_pid;      # pid => token
my %by_pidfd;    # fileno of a pidfd => pid
my $inbuf = '';
my $SYS_PIDFD_OPEN = 434;    # the same number on x86_64 and aarch64
my $pidfd_ok = 1;
my $EXEC_WAIT_S = 0.05;
my $S_DELAY_TICKS = 2;
my $TICK_S = 1 / (POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100);
sub ticks { return (POSIX::times())[0]; }

# Send the S lines that have waited long enough; how long until the next one is due (undef: none).
sub flush_started {
    my $now = ticks();
    my $next;
    for my $kid (values %kids) {
        next unless defined $kid->{started};
        if ($kid->{started_due} <= $now) { reply(delete $kid->{started}); next; }
        my $wait = ($kid->{started_due} - $now) * $TICK_S;
        $next = $wait if !defined $next || $wait < $next;
    }
    return $next;
}

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

sub child_fail { print STDERR "spawner: $_[0]\n"; POSIX::_exit(126); }

# Why the process does not have exactly these ids and groups (from the kernel's own view), or ''.
sub credentials_problem {
    my ($uid, $gid, $groups) = @_;
    open(my $st, '<', '/proc/self/status') or return "/proc/self/status: $!";
    my %f;
    while (<$st>) { $f{$1} = $2 if /^(Uid|Gid|Groups):\s*(.*?)\s*$/; }
    close($st);
    my @u = split /\s+/, $f{Uid} // '';
    my @g = split /\s+/, $f{Gid} // '';
    return "uids @u" unless @u == 4 && !grep { $_ != $uid } @u;
    return "gids @g" unless @g == 4 && !grep { $_ != $gid } @g;
    my %want = map { $_ => 1 } @$groups;
    my %have = map { $_ => 1 } split /\s+/, $f{Groups} // '';
    my $w = join(' ', sort { $a <=> $b } keys %want);
    my $h = join(' ', sort { $a <=> $b } keys %have);
    return "groups $h, not $w" unless $w eq $h;
    return '';
}

sub errname { my $e = $_[0] + 0; local $! = $e; my ($n) = grep { $!{$_} } keys %!; return $n // "errno $e"; }

# Why PATH (with stat list ST) is unsafe to run as UID, or undef.
sub unsafe {
    my ($path, $st, $uid, $want) = @_;
    my ($mode, $owner) = ($st->[2], $st->[4]);
    return "$path is not a regular file" if $want eq 'file' && !S_ISREG($mode);
    return "$path is not a directory"    if $want eq 'directory' && !S_ISDIR($mode);
    return "$path is owned by uid $owner, not $uid or root" if $owner != $uid && $owner != 0;
    return "$path is group-writable" if $mode & 020;
    return "$path is world-writable" if $mode & 002;
    return undef;
}

# The first of NAMES that exists in DIR, checked for UID: ('found', TRIED, FH, INDEX) or (KIND, TRIED, REASON).
sub find_script {
    my ($dir, $uid, @names) = @_;
    $dir =~ s{/+$}{} if length($dir) > 1;
    my $dh;
    unless (sysopen($dh, $dir, $O_PATH | O_DIRECTORY)) {
        return ('none', scalar(@names), '') if $!{ENOENT} || $!{ENOTDIR};
        return ('error', 0, "cannot open $dir: " . errname($!));
    }
    my $dfd = fileno($dh);
    for my $i (0 .. $#names) {
        my $script = "$dir/$names[$i]";
        my $fh;
        unless (sysopen($fh, "/proc/self/fd/$dfd/$names[$i]", $O_PATH)) {
            next if $!{ENOENT};
            return ('refused', $i + 1, "cannot open $script: " . errname($!));
        }
        my $why = unsafe($dir, [stat $dh], $uid, 'directory') // unsafe($script, [stat $fh], $uid, 'file');
        if (!defined $why) {
            # a symlinked script sits in another directory: that one must be safe too
            my $target = readlink('/proc/self/fd/' . fileno($fh)) // '';
            (my $parent = $target) =~ s{/[^/]*$}{};
            $parent = '/' if $parent eq '';
            if ($target ne $script && $parent ne $dir) {
                my @st = stat($parent);
                $why = @st ? unsafe($parent, \@st, $uid, 'directory') : "cannot stat $parent: " . errname($!);
            }
        }
        return ('refused', $i + 1, $why) if defined $why;
        return ('found', $i + 1, $fh, $i);
    }
    return ('none', scalar(@names), '');
}

# Run WORK with the effective ids of UID, GID and GROUPS (when root), then return to root.
sub as_user {
    my ($uid, $gid, $groups, $work) = @_;
    return $work->() if $> != 0 || $uid == 0;
    $) = join(' ', $gid, @$groups);
    $> = $uid;
    my @r = $> == $uid ? $work->() : ('error', 0, "cannot take the ids of uid $uid");
    $> = 0;
    $) = '0 0';
    die "spawner: cannot return to root ids\n" if $> != 0 || (split / /, $))[0] != 0;
    return @r;
}

sub start {
    my ($token, $uid, $gid, $groups, $cwd, $stdin, $decision, $max, $nlookup, @rest) = @_;
    my @lookup = splice(@rest, 0, $nlookup);
    my $argc = shift @rest;
    my @argv = splice(@rest, 0, $argc);
    my @env  = @rest;
    return reply("E $token refusing uid 0\n") if $uid == 0;
    return reply("E $token no program\n") unless @argv;
    my @groups = split / /, $groups;
    @groups = ($gid) if !@groups && $> == 0;    # as root, an empty list means just the gid
    my ($scriptfh, $found) = (undef, -1);
    if (@lookup) {
        my ($as, $dir, @cands) = @lookup;
        my (@names, @extra);
        while (@cands) {
            my ($name, $n) = splice(@cands, 0, 2);
            push @names, $name;
            push @extra, [splice(@cands, 0, $n)];
        }
        my @r = $as eq '1' ? as_user($uid, $gid, \@groups, sub { find_script($dir, $uid, @names) }) : find_script($dir, $uid, @names);
        if ($r[0] ne 'found') {
            (my $reason = $r[2] // '') =~ s/[\r\n]/ /g;
            return reply("X $token $r[0] $r[1] $reason\n");
        }
        ($scriptfh, $found) = ($r[2], $r[3]);
        push @argv, "$dir/$names[$found]" =~ s{//+}{/}gr;
        push @env, @{ $extra[$found] };
    }
    my $in;
    if ($stdin ne '') { open($in, '<', $stdin) or return reply("E $token cannot open stdin: $!\n"); }
    else              { open($in, '<', '/dev/null') or return reply("E $token /dev/null: $!\n"); }
    my $p = open_pipes($decision eq '1') or return reply("E $token pipe: $!\n");

    # closed by the child's exec (close-on-exec): the parent waits for that before it writes to
    # its memory again, so its pages are the child's no longer and need no copy on write
    pipe(my $execr, my $execw) or return reply("E $token pipe: $!\n");
    my $pid = fork();
    return reply("E $token fork: $!\n") unless defined $pid;
    if ($pid == 0) {
        # Child: new session, descriptors, signals, credentials, limits, cwd, exec. Errors go to the stderr pipe.
        POSIX::setsid();
        POSIX::dup2(fileno($in), 0);
        POSIX::dup2(fileno($p->{out}[1]), 1);
        POSIX::dup2(fileno($p->{err}[1]), 2);
        POSIX::dup2(fileno($p->{dec}[1]), 3) if $p->{dec};
        POSIX::dup2(fileno($scriptfh), 4) if $scriptfh;
        $SIG{$_} = 'DEFAULT' for qw(PIPE CHLD HUP INT QUIT TERM USR1 USR2 ALRM);
        POSIX::sigprocmask(POSIX::SIG_SETMASK(), POSIX::SigSet->new());
        if ($> == 0) {
            $) = join(' ', $gid, @groups);
            POSIX::setgid($gid);
            POSIX::setuid($uid);
        }
        my $who = credentials_problem($uid, $gid, \@groups);
        child_fail("cannot switch to uid $uid gid $gid: $who") if $who;
        my @rlimits = ([$RLIMIT_NPROC, $limits[0]], [$RLIMIT_CPU, $limits[1]], [$RLIMIT_DATA, $limits[2]], [$RLIMIT_FSIZE, $limits[3]], [$RLIMIT_NOFILE, $limits[4]]);
        for my $l (@rlimits, [$RLIMIT_CORE, -1]) {
            next if $l->[1] == 0;
            my $v = $l->[1] < 0 ? 0 : $l->[1];
            syscall($setrlimit, $l->[0], pack('QQ', $v, $v)) == 0 or child_fail("cannot set resource limit $l->[0]: $!");
        }
        chdir($cwd) or child_fail("cannot chdir to $cwd: $!");
        %ENV = ();
        for (@env) { my ($k, $v) = split /=/, $_, 2; $ENV{$k} = $v; }
        { no warnings 'exec'; exec { $argv[0] } @argv; }
        print STDERR "$argv[0]: $!\n";
        POSIX::_exit(127);
    }
    close($execw);
    # only when idle: with other children running, their pipes and exits must not wait on this exec
    if (%kids) { close($execr); } else { wait_for_exec($execr); }
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
    $kids{$token} = { pid => $pid, status => undef, pipes => \%pipes, buf => { out => '', err => '', dec => '' }, trunc => 0, max => $max,
        # the S line waits a tick or two: a quick child's S and R then go out in one write (one
        # wake-up of the runner less); a slower one's S goes out by S_DELAY_TICKS, long before
        # any deadline of the runner's (which kills the group once it has the pid)
        started => "S $token $pid $found\n", started_due => ticks() + $S_DELAY_TICKS };
    $by_pid{$pid} = $token;
    watch_exit($kids{$token});
}

# Wait (a little) until the child has exec'd: EOF on a close-on-exec pipe. Until then parent and
# child share their pages copy-on-write; a parent that waits writes to pages that are its own
# again (no copy: measured ~1 ms less CPU per run on this VM, where each copy costs a fault and a
# TLB flush). Bounded, so a child stuck before exec (a hung chdir) cannot stall every other run.
sub wait_for_exec {
    my ($r) = @_;
    my $v = '';
    vec($v, fileno($r), 1) = 1;
    select(my $ready = $v, undef, undef, $EXEC_WAIT_S);
    close($r);
}

# Readable once the child has exited (pidfd_open: no polling for the exit status, no race with
# SIGCHLD); without it (kernel < 5.3) the main loop polls as before.
sub watch_exit {
    my ($kid) = @_;
    return unless $pidfd_ok;
    my $fd = syscall($SYS_PIDFD_OPEN, $kid->{pid}, 0);
    if ($fd < 0) { $pidfd_ok = 0 if $!{ENOSYS}; return; }
    open(my $fh, '<&=', $fd) or do { POSIX::close($fd); return; };
    $kid->{pidfd} = $fh;
    $by_pidfd{$fd} = $kid->{pid};
    $select->add($fh);
}

sub drop_pidfd {
    my ($kid) = @_;
    my $fh = delete $kid->{pidfd} or return;
    delete $by_pidfd{ fileno $fh };
    $select->remove($fh);
    close($fh);
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
    reply($kid->{started} // '', join(' ', 'R', $token, $kid->{status}, $kid->{trunc}, length $b->{out}, length $b->{err}, length $b->{dec}) . "\n", $b->{out}, $b->{err}, $b->{dec});
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
        if (!%{ $kid->{pipes} } && !defined $kid->{status} && !$kid->{pidfd}) {
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
    while ((my $pid = waitpid(-1, POSIX::WNOHANG())) > 0) { reaped($pid, $?); }
}

sub reap_one {
    my ($pid) = @_;
    my $r = waitpid($pid, POSIX::WNOHANG());
    if ($r == $pid) { reaped($pid, $?); }
    elsif ($r < 0) { my $t = $by_pid{$pid}; drop_pidfd($kids{$t}) if defined $t && $kids{$t}; }    # reaped elsewhere
}

# PID was reaped with STATUS: if it is one of ours, record it and kill what is left of its group.
sub reaped {
    my ($pid, $status) = @_;
    my $token = delete $by_pid{$pid} or return;
    my $kid = $kids{$token} or return;
    $kid->{status}    = $status;
    $kid->{reaped_at} = time;
    drop_pidfd($kid);
    kill('KILL', -$pid);    # the script's background jobs do not outlive it
    finish_if_done($token);
}

while (1) {
    # A child's exit can race with select(): poll briefly while one is unreaped.
    my $timeout = %kids ? (grep({ !%{ $_->{pipes} } && !$_->{pidfd} } values %kids) ? 0.005 : 0.25) : undef;
    my $started = flush_started();
    $timeout = $started if defined $started && (!defined $timeout || $started < $timeout);
    my @ready = $select->can_read($timeout);
    for my $fh (@ready) {
        if (fileno($fh) == fileno(STDIN)) { read_requests(); }
        elsif (defined $by_fd{ fileno $fh }) { read_child($fh); }
        elsif (defined $by_pidfd{ fileno $fh }) { reap_one($by_pidfd{ fileno $fh }); }
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
