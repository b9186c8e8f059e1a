# Sourced by ./jnbd (the checkout launcher) and by the installed launcher (bin/jnbd of the release
# tarball, which carries a copy of this file): the JVM options jnbd runs with, kept in one place.
# JAVA_OPTS, when set and not empty, replaces them all. POSIX sh, so either shell can source it.
#
#  --enable-native-access=ALL-UNNAMED  the file plugin calls fallocate/fsync through the FFM API;
#                            without this, JDK 24+ prints a warning on its first use.
#  -XX:MaxRAMPercentage=50   the memory and data plugins keep their pages on the Java heap, so
#                            let it grow to half of RAM (default 25%); it is a ceiling, the heap
#                            is committed only as pages are written.
#  -Xms16m                   start the heap small: the JVM's default initial heap is 1/64 of RAM
#                            (384 MiB on a 24 GiB host), and G1 touches all of its young space
#                            before it first collects, so RSS grew by that much under any load;
#                            measured in the soak benchmark: http target 625 -> 526 MiB peak.
#  -XX:TieredStopAtLevel=1   C1 only. A server's Java code is a thin layer over copies the kernel
#                            does; C2 reaches the same steady speed but spends the first seconds
#                            compiling on cores the copies need (measured on 2 cores, 1 GiB read
#                            by nbdcopy from a fresh server: 2150 -> 2700 MiB/s; docs/cli.md).
#                            Except for the ssh plugin: every byte it serves goes through the
#                            JDK's AES code, whose use of the CPU's AES instructions only C2
#                            compiles (measured, 256 MiB from OpenSSH: see docs/plugins/ssh.md).
#                            And not with TLS (any --tls... option but --tls=off): the AES-GCM
#                            and GHASH intrinsics are C2's, and at C1 the encryption is plain
#                            Java (measured: 1 GiB over TLS at 10 MiB/s and 29 s of CPU, against
#                            nbdkit's 463 MiB/s; docs/tls.md).
# The launchers also pass -XX:AOTCache=FILE -Xlog:aot=off, outside JAVA_OPTS: the AOT cache holds
# the classes a training run loaded and linked and the profiles of the methods it ran
# (bin/aot-train.sh, docs/install.md). The JVM checks that the cache fits (same JDK build, same
# jar, compatible options) and otherwise runs without it; -Xlog:aot=off keeps that fallback, and
# a missing file, silent, as stderr may belong to a script.
jnbd_jvm_options='--enable-native-access=ALL-UNNAMED -XX:MaxRAMPercentage=50 -Xms16m -XX:TieredStopAtLevel=1'
# A sourced file sees its caller's arguments: the launcher's, which name the plugin.
for jnbd_arg in "$@"; do
  case "$jnbd_arg" in
    --tls=off|--tls=no|--tls=n|--tls=false|--tls=f|--tls=0) ;;
    ssh|--tls*) jnbd_jvm_options='--enable-native-access=ALL-UNNAMED -XX:MaxRAMPercentage=50 -Xms16m' ;;
  esac
done
