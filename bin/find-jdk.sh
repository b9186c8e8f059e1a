# Sourced by ./jnbd and ./mvnw: point JAVA_HOME at a JDK 25 or newer.
# The machine's default java may be older (Debian 12 ships 17), so a JAVA_HOME that is too old,
# or none, is replaced by the newest JDK found under /usr/lib/jvm. Each JDK's version is read from
# its release file rather than by starting its java (a JVM per candidate cost ~0.1 s per call of
# ./jnbd); plain sh builtins, no subprocess, as ./mvnw runs under /bin/sh.
jnbd_java_feature() { # prints the feature release of the JDK at $1 (from $1/release), or 0
  jnbd_feature=0
  if [ -r "$1/release" ]; then
    while IFS= read -r jnbd_line; do
      case $jnbd_line in
        JAVA_VERSION=*)
          jnbd_feature=${jnbd_line#JAVA_VERSION=}
          jnbd_feature=${jnbd_feature#\"}
          jnbd_feature=${jnbd_feature%%[!0-9]*}
          break ;;
      esac
    done < "$1/release"
  fi
  echo "${jnbd_feature:-0}"
}
jnbd_find_jdk() {
  if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/javac" ] && [ "$(jnbd_java_feature "$JAVA_HOME")" -ge 25 ] 2>/dev/null; then
    return 0
  fi
  best= best_version=0
  for home in /usr/lib/jvm/*/; do
    home=${home%/}
    [ -x "$home/bin/javac" ] || continue
    version=$(jnbd_java_feature "$home")
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
