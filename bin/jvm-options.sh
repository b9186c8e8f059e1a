# Sourced by ./jnbd (the checkout launcher) and by the installed launcher (bin/jnbd of the release
# tarball, which carries a copy of this file): the JVM options jnbd runs with, kept in one place.
# JAVA_OPTS, when set and not empty, replaces them all. POSIX sh, so either shell can source it.
#
#  --enable-native-access=ALL-UNNAMED  the file plugin calls fallocate/fsync through the FFM API;
#                            without this, JDK 24+ prints a warning on its first use.
#  -Xms16m                   start the heap small: the JVM's default initial heap is 1/64 of RAM
#                            (384 MiB on a 24 GiB host), and G1 touches all of its young space
#                            before it first collects, so RSS grew by that much under any load;
#                            measured in the soak benchmark: http target 625 -> 526 MiB peak.
#                            No MaxRAMPercentage: the memory and data plugins' pages are off the
#                            heap, so the JVM's default ceiling (a quarter of RAM) is plenty.
#                            The serial collector (below, for local servers only) was tried
#                            for all: in the 20 s http soak it peaked at 1263 MiB against G1's
#                            798 (same machine, same hour). Also measured, no gain beyond
#                            the +-5 MiB noise of idle RSS: -Xms8m, -Xms4m, ParallelGCThreads=1,
#                            -XX:+UseCompactObjectHeaders (its cache is 1.5 MiB larger). Where the
#                            idle RSS goes: docs/install.md, *Idle memory*.
#  -XX:TrimNativeHeapInterval=2000  returns the C heap the JIT's arenas and finished requests
#                            freed to the system every 2 s (idle RSS, memory 1G: -5 MiB).
#  -XX:CompileThresholdScaling=3  compile a method after 3x the usual number of calls (and loop
#                            turns): the JIT then skips many of the methods that a start, or a
#                            short copy, runs only a few hundred times (per connection, per
#                            request), and runs them in the interpreter instead, which costs less
#                            than compiling them (an untrained method: 600 calls instead of 200;
#                            one the AOT cache's training saw compiled: at the interpreter's first
#                            check of its count, after 256 calls instead of 128). A/B against
#                            none, alternated, 4-5 runs each, load 2-3 on 2 cores (2026-11-29):
#                            CPU to start 0.34 -> 0.26 s, --run true memory 1G 0.33 -> 0.28 s; a
#                            fresh server's 256 MiB from a local nginx over plain HTTP 0.58 ->
#                            0.51 s of CPU, over HTTPS 1.21 -> 1.18 (within the noise), from file
#                            and memory unchanged; 1 GiB from file and memory (bench/run core's
#                            copies) within the noise. 5 saved a little more at start (0.24 s, and
#                            idle RSS 72 -> 64 MiB) but cost those 1 GiB copies 2-10% in two A/B
#                            runs; 10 and 20 gained nothing more. docs/plugins/http.md, *Where a
#                            fresh server's first copy spends its CPU*. Not raised for the http
#                            plugin alone either (2026-11-30, 9 runs alternated, load 2-4): most
#                            of a first copy's compiles are of methods the AOT cache's training
#                            compiled, which the JIT takes at the interpreter's first report of
#                            their count, every 256 calls at 3; this scaling stretches that
#                            interval too (512 at 5, 1024 at 8), so a higher value moves those
#                            compiles into the next copies: at 5, first copy 0.40 -> 0.41 s of
#                            CPU over plain HTTP, 1.12 -> 1.08 over HTTPS, each later copy
#                            0.19 -> 0.23 and 0.40 -> 0.44 s; at 8 (7 runs, load 5-7) 0.46 ->
#                            0.39 and 0.19 -> 0.26. Nor C1's inlining limits, the report
#                            interval, OSR or compiler threads: docs/plugins/http.md, *JIT
#                            options for the http plugin alone*.
#  -XX:TieredStopAtLevel=1   C1 only. A server's Java code is a thin layer over copies the kernel
#                            does; C2 reaches the same steady speed but spends the first seconds
#                            compiling on cores the copies need (measured on 2 cores, 1 GiB read
#                            by nbdcopy from a fresh server: 2150 -> 2700 MiB/s; docs/cli.md).
#                            Not when the command line speaks TLS (an https:// URL, any --tls...
#                            option but --tls=off) or SSH (the ssh plugin): AES is fast only in C2's
#                            intrinsics; C1 decrypts AES-GCM at ~37 MiB/s of CPU, C2 at ~650
#                            (bench/run jit; docs/plugins/http.md, docs/plugins/ssh.md). Then
#                            the JDK's bulk ciphers and MACs (AES-GCM, AES-CTR, ChaCha20-Poly1305,
#                            HMAC) are compiled after 1% of the usual calls (3% with the scaling
#                            above, which multiplies; measured: no difference), so a fresh server
#                            reaches the intrinsics within its first MiBs: 256 MiB over HTTPS
#                            from a fresh server, 2.3-2.5 -> 1.6-1.9 s CPU (ssh was measured
#                            with C2 alone: 5.5 -> ~3.5 s CPU for 256 MiB; NBD over TLS at C1:
#                            1 GiB at 10 MiB/s and 29 s of CPU, docs/tls.md). Not the rest of
#                            their provider (the TLS key schedule's HKDF, key expansion, DH
#                            parameters), which runs a few times per handshake: at 1% it too went
#                            to C2, and a fresh server spent ~45 ms of CPU per NBD-over-TLS
#                            connection, most of it in the C2 compiler, for its 5th to 12th
#                            connections; ~30 ms with the bulk classes only (docs/tls.md).
#                            A server that speaks TLS (--tls...) but neither https nor ssh keeps
#                            C1 for all but the JDK's cipher and digest providers, which C2
#                            compiles (the compiler directives in c2-crypto.json, beside this
#                            file; the caller sets jnbd_options_dir to that directory): with C2
#                            for everything, a third of the CPU of the first GiB read over TLS
#                            went to the C2 compiler (1 GiB from a fresh server, nbdcopy: server
#                            CPU 1.35 -> 1.05 s; docs/tls.md). -XX:-DisplayVMOutput keeps the
#                            JVM's "2 compiler directives added" off stdout, which may be the
#                            NBD stream (-s): then a thread dump needs jcmd PID Thread.print,
#                            as kill -QUIT prints nothing. https:// gets the same: a fresh
#                            server's first 256 MiB from a local nginx over HTTPS (nbdcopy
#                            defaults) took 2.02 s of server CPU with C2 for everything and 1.30
#                            s with the directives (bench/run jit, one invocation, median of 3;
#                            the same speed once warm; docs/plugins/http.md). ssh keeps C2
#                            throughout: Apache MINA's own Java code was not measured at C1.
#  -XX:CompileCommand=exclude,...classfile.*  the JDK's class-file API is never compiled. The JDK
#                            runs it to generate classes at run time: the foreign function API's
#                            call stubs and the method handles around them (the file plugin at
#                            start, the buffer pool at the first connection), lambda forms. Each
#                            such class is made once, but the API's methods are called often
#                            enough while making one that C1 compiled ~400 of them during a file
#                            plugin's start, for nothing: the C1 compiler's arenas stayed for the
#                            next seconds. A file server 1 s after start, 3 runs each, alternated
#                            (2026-11-30): resident 70.9 -> 64.7 MiB, CPU the same (0.25-0.34 s);
#                            a memory server and a fresh http server's first copy unchanged.
# The launchers also pass -XX:AOTCache=FILE -Xlog:aot=off, outside JAVA_OPTS: the AOT cache holds
# the classes a training run loaded and linked and the profiles of the methods it ran
# (bin/aot-train.sh, docs/install.md). The JVM checks that the cache fits (same JDK build, same
# jar, compatible options) and otherwise runs without it; -Xlog:aot=off keeps that fallback, and
# a missing file, silent, as stderr may belong to a script. There are two caches, and this file
# names the one to use in jnbd_aot_cache:
#  jnbd.aot                  trained on everything, the http plugin's servers and https starts
#                            among them: for the plugins that reach another host (http, curl, nbd,
#                            ssh) and for any server that speaks TLS.
#  jnbd-local.aot            trained on the informational options and the local plugins (memory
#                            and file, with filters) alone: for the rest. The JVM loads every
#                            class of a cache at start, and the cache is resident whole (its
#                            pointers are relocated to where it is mapped), so the smaller cache
#                            is ~10 MiB less resident and a little less CPU to start (a memory
#                            server 1 s after start, 3 runs each, alternated, 2026-11-30: 66.3 ->
#                            55.6 MiB, 0.25 -> 0.20 s).
#  -Xmn4m                    for those same local servers: a young generation of 4 MiB, where G1
#                            would grow it to 8-12 MiB during a copy. Their requests allocate
#                            little (7-8 collections for 1 GiB written to the memory plugin and
#                            read back, either way, the same seconds), so the smaller young
#                            generation costs nothing and every page of it that a copy touches
#                            stays resident: the peak of an nbdcopy of 1 GiB from the file plugin
#                            66.2 -> 62.7 MiB (with the local cache; 2 runs each). Not for the
#                            http plugin and TLS, which allocate per request (HttpClient's objects,
#                            TLS records on the heap) and were not measured with it.
#  -XX:+UseSerialGC          for the local servers too: their heap holds little (the memory and
#                            data plugins' pages are off it), so one thread collecting a 4 MiB
#                            young generation pauses less than G1 does, and the JVM runs 6 fewer
#                            threads and smaller tables. memory 1G, 1 GiB written and read back
#                            by nbdcopy, 3 runs each, alternated, without the caches (2026-11-30):
#                            longest pause 4.5-6.3 -> 2.3-2.6 ms, peak 1103-1105 -> 1094 MiB,
#                            idle 55.4 -> 51.6 MiB, 22 -> 16 threads, the same seconds. G1 stays
#                            for the others: the http soak peaked at 1263 MiB with serial against
#                            G1's 798. bin/aot-train.sh trains each cache under its servers'
#                            options, this collector among them (JDK 25.0.3 also uses a cache
#                            trained under the other collector).
jnbd_jvm_options='--enable-native-access=ALL-UNNAMED -Xms16m -XX:TrimNativeHeapInterval=2000 -XX:CompileThresholdScaling=3'
jnbd_jvm_options="$jnbd_jvm_options -XX:CompileCommand=quiet -XX:CompileCommand=exclude,java.lang.classfile.*::*"
jnbd_jvm_options="$jnbd_jvm_options -XX:CompileCommand=exclude,jdk.internal.classfile.*::*"
# A sourced file sees its caller's arguments: the launcher's, which name the plugin and options.
jnbd_jit=-XX:TieredStopAtLevel=1
jnbd_crypto_early=
for jnbd_class in 'GaloisCounterMode*' GCTR GHASH CounterMode 'ChaCha20Cipher*' Poly1305 'HmacCore*'; do
  jnbd_crypto_early="${jnbd_crypto_early:+$jnbd_crypto_early }-XX:CompileCommand=CompileThresholdScaling,com.sun.crypto.provider.$jnbd_class::*,0.01"
done
jnbd_tls=
jnbd_remote=
jnbd_previous=
for jnbd_arg in "$@"; do
  # The built-in plugins that reach another host: a new one belongs here too.
  case $jnbd_arg in http|curl|nbd|ssh) jnbd_remote=1 ;; esac
  case "$jnbd_previous $jnbd_arg" in
    "--tls off"|"--tls no"|"--tls n"|"--tls false"|"--tls f"|"--tls 0") ;;
    *" --tls") ;;  # decided by the next word
    *" --tls=off"|*" --tls=no"|*" --tls=n"|*" --tls=false"|*" --tls=f"|*" --tls=0") ;;
    *" ssh") jnbd_jit=$jnbd_crypto_early ;;
    "--tls "*|*" --tls"*|*https://*) jnbd_tls=1 ;;
  esac
  jnbd_previous=$jnbd_arg
done
if [ -n "$jnbd_tls" ] && [ "$jnbd_jit" = -XX:TieredStopAtLevel=1 ]; then
  # The options are split at spaces: a directory with one in its name gets C2 throughout.
  case ${jnbd_options_dir:-} in *" "*) jnbd_directives= ;; *) jnbd_directives=${jnbd_options_dir:-}/c2-crypto.json ;; esac
  if [ -f "$jnbd_directives" ]; then
    jnbd_jit="$jnbd_crypto_early -XX:+UnlockDiagnosticVMOptions -XX:CompilerDirectivesFile=$jnbd_directives -XX:-DisplayVMOutput"
  else
    jnbd_jit=$jnbd_crypto_early
  fi
fi
jnbd_jvm_options="$jnbd_jvm_options $jnbd_jit"
if [ -n "$jnbd_remote$jnbd_tls" ]; then
  jnbd_aot_cache=jnbd.aot
else
  jnbd_aot_cache=jnbd-local.aot
  jnbd_jvm_options="$jnbd_jvm_options -Xmn4m -XX:+UseSerialGC"
fi
