#!/bin/sh
# Runs inside the Linux guest (guest.linux.perf_lbr, /bin/lbr-record in its initramfs):
#   lbr-record PERIOD
# perf record -b of /bin/lfsr_branches with user-mode instructions as the sampling event,
# one sample every PERIOD of them, then `perf script -F brstack` aggregated by BusyBox awk
# into one "perf-lbr: pair FROM TO COUNT" line per from->to pair (fewer bytes through the
# serial port than the samples themselves). /init's softkvm.run= cannot hold a pipe.
perf record -q -B -b -e instructions:u -c "$1" -o /perf.data /bin/lfsr_branches
echo "perf-lbr: recorded, status $?"
perf script -i /perf.data -F brstack | awk '
    { for (i = 1; i <= NF; i++) { split($i, f, "/"); n[f[1] " " f[2]]++ } s++ }
    END { print "perf-lbr: samples " s; for (k in n) print "perf-lbr: pair " k " " n[k] }'
