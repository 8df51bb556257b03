"""Reads iCalendar files in the order given, as a subscribed calendar
program would fetch them over time, and prints the events it would then
show, as JSON.

Each file is parsed with Python's `icalendar`. An event replaces the one
with the same UID only when its SEQUENCE is higher, or equal with a later
DTSTAMP (RFC 5546 section 2.1.5); an older copy fetched late changes
nothing. The output maps each UID to its start, end (UTC, RFC 3339),
STATUS and SEQUENCE. Used by tests/maintenance.rs.
"""

import json
import sys
from datetime import timezone

import icalendar


def utc(value):
    return value.dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def main(paths):
    shown = {}
    for path in paths:
        with open(path, "rb") as file:
            calendar = icalendar.Calendar.from_ical(file.read())
        for event in calendar.walk("VEVENT"):
            uid = str(event["UID"])
            sequence = int(event.get("SEQUENCE", 0))
            stamp = event["DTSTAMP"].dt
            known = shown.get(uid)
            if known is not None and (sequence, stamp) <= (
                known["sequence"],
                known["stamp"],
            ):
                continue
            shown[uid] = {
                "start": utc(event["DTSTART"]),
                "end": utc(event["DTEND"]),
                "status": str(event.get("STATUS", "")),
                "sequence": sequence,
                "stamp": stamp,
                "summary": str(event["SUMMARY"]),
            }
    for event in shown.values():
        del event["stamp"]
    json.dump(shown, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
