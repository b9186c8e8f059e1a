#!/bin/sh
# Makes one of jnbd's AOT caches: aot-train.sh JAVA JAR CACHE [local] runs io.jnbd.cli.AotTraining
# from JAR once under JAVA with jnbd's JVM options and -XX:AOTCacheOutput=CACHE (JDK 25's one-step
# training); with "local", the training of the cache for servers that reach no other host
# (jnbd-local.aot; bin/jvm-options.sh says which server uses which).
# The cache only serves a JVM of the same build, with the jar at the same path relative to it and
# compatible options: the build runs this for target/ (with the JDK that runs Maven) and again for
# the release tarball (with its bundled runtime, in place). Its output goes to CACHE.log, shown
# only when training fails.
set -eu
java=$1 jar=$2 cache=$3 training=${4:-}
# Trained under the options of the servers that will use the cache (their collector among them),
# so that what the training records is what those servers run.
if [ "$training" = local ]; then set -- memory; else set -- http; fi
. "$(dirname "$0")/jvm-options.sh"
rm -f "$cache"
# shellcheck disable=SC2086 # the options are words
if ! "$java" $jnbd_jvm_options -XX:AOTCacheOutput="$cache" -Xlog:aot=error \
    -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$jar" io.jnbd.cli.AotTraining $training >"$cache.log" 2>&1 \
    || [ ! -s "$cache" ]; then
  cat "$cache.log" >&2
  echo "aot-train.sh: training failed; see above" >&2
  exit 1
fi
