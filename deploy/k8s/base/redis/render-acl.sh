#!/bin/sh
# Renders users.acl.in into the ACL file Redis loads (redis-server --aclfile).
#
#   printf '%s\n' "$api_url" "$scheduler_url" "$runner_url" | render-acl.sh users.acl.in OUT_DIR
#
# stdin: the services' Redis URLs (redis://<user>:<password>@host:port), one a line; each gives its user's
# password, so a password lives only in the service's secret. OUT_DIR gets users.acl (passwords as SHA-256 hashes)
# and healthcheck-password (generated once, kept across runs: the probe's password). DROVER_PREFIX (default
# drover) is the key prefix the users may touch.
#
# Passwords must be URL-safe as they are (letters, digits, . _ ~ -, at least 16): `openssl rand -hex 32`. That way
# the URL needs no percent-encoding and the hash is taken over exactly what the service sends.
# Used by Kubernetes (the Redis pod's init container) and by docker-compose (the secrets service).
set -eu
umask 077

die() {
  echo "render-acl: $*" >&2
  exit 1
}

[ $# -eq 2 ] || die "usage: render-acl.sh TEMPLATE OUT_DIR < urls"
template=$1
out=$2
[ -r "$template" ] || die "cannot read the template $template"
[ -d "$out" ] || die "no directory $out"

prefix=${DROVER_PREFIX:-drover}
case $prefix in
  '' | *[!A-Za-z0-9_.:-]*) die "DROVER_PREFIX may only hold letters, digits and _.:- (got \"$prefix\")" ;;
esac

valid_password() {
  case $1 in
    '' | *[!A-Za-z0-9._~-]*) return 1 ;;
  esac
  [ ${#1} -ge 16 ]
}

# "user password" pairs, one a line, from the URLs on stdin.
pairs=''
n=0
while IFS= read -r url || [ -n "$url" ]; do
  [ -n "$url" ] || continue
  n=$((n + 1))
  case $url in
    redis://* | rediss://*) ;;
    *) die "URL $n is not redis:// or rediss://" ;;
  esac
  rest=${url#*://}
  auth=${rest%%@*}
  [ "$auth" != "$rest" ] || die "URL $n has no user:password@"
  case $auth in
    *:*) ;;
    *) die "URL $n has no password (redis://<user>:<password>@...)" ;;
  esac
  user=${auth%%:*}
  password=${auth#*:}
  [ -n "$user" ] || die "URL $n has no user name (redis://<user>:<password>@...)"
  case $user in
    *[!a-z0-9-]*) die "URL $n: user name \"$user\" may only hold a-z, 0-9 and -" ;;
  esac
  valid_password "$password" || die "URL $n ($user): the password must be at least 16 URL-safe characters (letters, digits, . _ ~ -); generate one with: openssl rand -hex 32"
  if printf '%s' "$pairs" | cut -d' ' -f1 | grep -qxF -e "$user"; then die "user $user has two URLs"; fi
  pairs="$pairs$user $password
"
done

# The probe's password: generated here, never configured, kept so a re-render does not break a running probe.
probe="$out/healthcheck-password"
if [ ! -s "$probe" ]; then
  od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$probe.tmp"
  chmod 0400 "$probe.tmp"
  mv -f "$probe.tmp" "$probe"
fi
pairs="${pairs}drover-healthcheck $(cat "$probe")
"

password_of() {
  printf '%s' "$pairs" | while read -r u p; do
    if [ "$u" = "$1" ]; then
      printf '%s' "$p"
      break
    fi
  done
}

# A URL for a user the template does not know is a typo that would otherwise surface as a failed login.
users=$(grep '^user ' "$template" | cut -d' ' -f2)
printf '%s' "$pairs" | while read -r u _; do
  printf '%s\n' "$users" | grep -qxF -e "$u" || die "the template has no user $u (a URL names it)"
done

tmp="$out/users.acl.tmp"
: >"$tmp"
while IFS= read -r line || [ -n "$line" ]; do
  case $line in
    '' | '#'*) continue ;;
    'user '*) ;;
    *) die "template line is not a user: $line" ;;
  esac
  name=$(printf '%s\n' "$line" | cut -d' ' -f2)
  case $line in
    *@PASSWORD@*)
      password=$(password_of "$name")
      [ -n "$password" ] || die "no Redis URL gives a password for user $name"
      hash=$(printf '%s' "$password" | sha256sum | cut -d' ' -f1)
      line=$(printf '%s\n' "$line" | sed "s/@PASSWORD@/#$hash/")
      ;;
  esac
  printf '%s\n' "$line" | sed "s/@PREFIX@/{$prefix}/g" >>"$tmp"
done <"$template"

grep -q '^user default ' "$tmp" || die "the template must configure the default user (else Redis creates it without a password)"
chmod 0400 "$tmp"
mv -f "$tmp" "$out/users.acl"
