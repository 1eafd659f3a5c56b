#!/usr/bin/env bash
# A nightly `myspool copy` for cron: one working directory and one log per
# night (UTC date), both removed after MYSPOOL_KEEP_DAYS days (default 7).
#
#   MYSPOOL_FROM=mysql://app@db1 MYSPOOL_TO=mysql://app@db2 MYSPOOL_TABLES='shop.* logs.events' \
#   MYSPOOL_SPOOL=/srv/myspool scripts/nightly-copy.sh [more copy options, e.g. --truncate]
#
# Writes SPOOL/NIGHT/ (the copy's export/, processed/ and journals),
# SPOOL/logs/NIGHT.log (timestamped progress, warnings, the error if any) and
# SPOOL/logs/NIGHT.json (the --json summary). Prints nothing when the copy
# succeeds, one line naming the log when it fails (cron mails it), and exits
# with myspool's status (README "Unattended runs"). MYSPOOL_NIGHT=YYYY-MM-DD
# reruns that night's copy: it continues where that run stopped. Passwords:
# MYSQL_PWD or ~/.my.cnf of the cron user, never the crontab.
set -uo pipefail

myspool=${MYSPOOL_BIN:-myspool}
spool=${MYSPOOL_SPOOL:?set MYSPOOL_SPOOL to the directory for the nights\' work and logs}
night=${MYSPOOL_NIGHT:-$(date -u +%F)}
tables=()
for t in ${MYSPOOL_TABLES:?set MYSPOOL_TABLES, e.g. \'shop.*\'}; do
  tables+=(--table "$t")
done
mkdir -p "$spool/logs" || exit 1
log=$spool/logs/$night.log
stamp() { date -u +%FT%TZ; }

{
  echo "$(stamp) myspool nightly copy $night: starting"
  "$myspool" copy --from "${MYSPOOL_FROM:?}" --to "${MYSPOOL_TO:?}" "${tables[@]}" \
    --dir "$spool/$night" --progress plain --json "$@" >"$spool/logs/$night.json"
  status=$?
  echo "$(stamp) myspool nightly copy $night: exit status $status"
} >>"$log" 2>&1
status=$(tail -n 1 "$log" | sed -n 's/.*exit status \([0-9]*\)$/\1/p')

# Old nights: their work directories and logs.
find "$spool" -mindepth 1 -maxdepth 1 -name '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]' \
  -mtime +"${MYSPOOL_KEEP_DAYS:-7}" -exec rm -rf {} +
find "$spool/logs" -mindepth 1 -maxdepth 1 -mtime +"${MYSPOOL_KEEP_DAYS:-7}" -delete

if [ "${status:-1}" != 0 ]; then
  echo "myspool nightly copy $night failed (exit status ${status:-unknown}): see $log"
  exit "${status:-1}"
fi
