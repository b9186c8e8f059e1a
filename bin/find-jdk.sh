# Sourced by ./jnbd and ./mvnw: point JAVA_HOME at a JDK 25 or newer.
# The machine's default java may be older (Debian 12 ships 17), so a JAVA_HOME that is too old,
# or none, is replaced by the newest JDK found under /usr/lib/jvm.
jnbd_java_feature() { # prints the feature release of the java binary in $1, or 0
  "$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p' | head -n 1
}
jnbd_find_jdk() {
  if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/javac" ] && [ "$(jnbd_java_feature "$JAVA_HOME/bin/java")" -ge 25 ] 2>/dev/null; then
    return 0
  fi
  best= best_version=0
  for home in /usr/lib/jvm/*/; do
    home=${home%/}
    [ -x "$home/bin/javac" ] || continue
    version=$(jnbd_java_feature "$home/bin/java")
    if [ "${version:-0}" -gt "$best_version" ] 2>/dev/null; then best=$home best_version=$version; fi
  done
  if [ "$best_version" -ge 25 ]; then
    export JAVA_HOME="$best"
    return 0
  fi
  echo "jnbd: needs a JDK 25 or newer; set JAVA_HOME (none found under /usr/lib/jvm)" >&2
  return 1
}
jnbd_find_jdk || exit 1
