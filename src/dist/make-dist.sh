#!/bin/sh
# Builds the release tarball: make-dist.sh JDK TARGET VERSION ROOT (run by Maven: the dist
# execution in pom.xml). Layout, under jnbd-VERSION/ (docs/install.md):
#   bin/jnbd              the installed launcher (src/dist/jnbd)
#   nbdkit-shim/nbdkit    runs jnbd as nbdkit, for PATH (src/dist/nbdkit)
#   lib/jnbd.jar          the shaded jar
#   lib/jnbd.aot          the AOT caches, trained here with lib/runtime, in place: the whole one
#   lib/jnbd-local.aot    and the one for servers that reach no other host (lib/jvm-options.sh)
#   lib/jvm-options.sh    the JVM options (bin/jvm-options.sh)
#   lib/c2-crypto.json    the JIT directives those options name for TLS (bin/c2-crypto.json)
#   lib/runtime/          a Java runtime made by jlink with the modules jdeps finds in the jar
#   share/man/man1/       jnbd(1), jnbd-NAME-plugin(1), jnbd-NAME-filter(1): the --help texts
#   share/doc/jnbd/       README.md and docs/
set -eu
jdk=$1 target=$2 version=$3 root=$4
name=jnbd-$version
work=$target/dist
home=$work/$name
rm -rf "$work"
mkdir -p "$home/bin" "$home/lib" "$home/nbdkit-shim" "$home/share/man/man1" "$home/share/doc/jnbd"
modules=$("$jdk/bin/jdeps" --multi-release base --ignore-missing-deps --print-module-deps "$target/jnbd.jar")
# Debug symbols, headers and the JDK's man pages are of no use to a server's runtime.
"$jdk/bin/jlink" --add-modules "$modules" --strip-debug --no-header-files --no-man-pages \
  --output "$home/lib/runtime"
cp "$target/jnbd.jar" "$home/lib/"
cp "$root/bin/jvm-options.sh" "$root/bin/c2-crypto.json" "$home/lib/"
cp "$root/src/dist/jnbd" "$home/bin/"
cp "$root/src/dist/nbdkit" "$home/nbdkit-shim/"
chmod 755 "$home/bin/jnbd" "$home/nbdkit-shim/nbdkit"
cp "$root/README.md" "$home/share/doc/jnbd/"
cp -R "$root/docs" "$home/share/doc/jnbd/"
"$home/lib/runtime/bin/java" -cp "$home/lib/jnbd.jar" io.jnbd.cli.ManPages "$home/share/man/man1"
"$root/bin/aot-train.sh" "$home/lib/runtime/bin/java" "$home/lib/jnbd.jar" "$home/lib/jnbd.aot"
"$root/bin/aot-train.sh" "$home/lib/runtime/bin/java" "$home/lib/jnbd.jar" "$home/lib/jnbd-local.aot" local
rm -f "$home/lib/jnbd.aot.log" "$home/lib/jnbd-local.aot.log"
tar -C "$work" -czf "$target/$name-linux-x64.tar.gz" "$name"
