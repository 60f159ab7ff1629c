#!/usr/bin/env bash
# Make sure the real servers the tests talk to are up: use running ones, else install
# (Debian packages, as root) and start our own. Safe to run repeatedly.
set -uo pipefail

port_open() { (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }

need_apt_update=1
apt_install() {
  if [ "$need_apt_update" = 1 ]; then apt-get update -qq || true; need_apt_update=0; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# PostgreSQL on 5432 with trust auth and a database `test`.
if ! port_open 5432; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then apt_install postgresql; fi
  v=$(ls /etc/postgresql | head -1)
  hba=/etc/postgresql/$v/main/pg_hba.conf
  if ! grep -q "lineguard-trust" "$hba"; then
    printf '# lineguard-trust\nlocal all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n' | cat - "$hba" > "$hba.new" && mv "$hba.new" "$hba"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
  for _ in $(seq 30); do port_open 5432 && break; sleep 1; done
fi
if port_open 5432 && command -v psql >/dev/null; then
  psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" 2>/dev/null | grep -q 1 ||
    psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" >/dev/null 2>&1 || true
fi

# Mosquitto on 1883; the outbox tests also start their own brokers, so the binary is needed
# even where another broker already serves 1883.
command -v mosquitto >/dev/null || apt_install mosquitto
if ! port_open 1883; then
  mosquitto -d -c /etc/mosquitto/mosquitto.conf 2>/dev/null || mosquitto -d -p 1883
  for _ in $(seq 20); do port_open 1883 && break; sleep 0.5; done
fi

# Debian's chromium for the browser tests (tests/browser: Playwright drives it headless; a
# browser download by `playwright install` is never used). Fonts so pages render text.
if [ ! -x /usr/bin/chromium ]; then
  apt_install --no-install-recommends chromium fonts-liberation || echo "services: chromium NOT installed (browser tests will be skipped)"
fi

for p in 5432 1883; do
  port_open $p && echo "services: port $p up" || echo "services: port $p NOT up (tests that need it will fail)"
done
exit 0
