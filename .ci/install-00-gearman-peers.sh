#!/usr/bin/env bash
# The real Gearman peers the interop tests talk to: Debian's gearmand 1.1.20, the
# gearman/gearadmin tools, libgearman headers (gcc links them in build scripts), PHP pecl
# gearman, Perl Gearman::Client/Worker. Skipped when already there.
set -euo pipefail
need_apt=0
for bin in /usr/sbin/gearmand /usr/bin/gearman /usr/bin/gearadmin /usr/bin/php /usr/bin/gcc; do
  [ -x "$bin" ] || need_apt=1
done
[ -e /usr/include/libgearman-1.0/gearman.h ] || need_apt=1
php -m 2>/dev/null | grep -qi '^gearman$' || need_apt=1
perl -MGearman::Client -MGearman::Worker -e1 2>/dev/null || need_apt=1
if [ "$need_apt" = 1 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    gearman-job-server gearman-tools libgearman-dev php8.2-cli php8.2-gearman \
    libgearman-client-perl gcc >/dev/null
fi
