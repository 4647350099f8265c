"""State and semantics of Keap's contacts: tags, sequences, action sets, goals, email opt-outs; no HTTP.

The XML-RPC surface (responses.py) and the REST v2 surface (rest.py) both drive this one model.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from keap_emulator.exceptions import LIBRARY, KeapFault
from keap_emulator.world import Action, Sequence, World, load_world

# The Contact table (facts §5). Strings unless listed in _TYPED_FIELDS.
_STRING_FIELDS = (  # noqa: SIM905 - a word list reads better than 67 quoted names
    "FirstName MiddleName LastName Nickname Suffix Title Company JobTitle Email EmailAddress2 EmailAddress3 "
    "Phone1 Phone1Ext Phone1Type Phone2 Phone2Ext Phone2Type Phone3 Phone3Ext Phone3Type "
    "Phone4 Phone4Ext Phone4Type Phone5 Phone5Ext Phone5Type Fax1 Fax1Type Fax2 Fax2Type "
    "StreetAddress1 StreetAddress2 City State PostalCode ZipFour1 Country Address1Type "
    "Address2Street1 Address2Street2 City2 State2 PostalCode2 ZipFour2 Country2 Address2Type "
    "Address3Street1 Address3Street2 City3 State3 PostalCode3 ZipFour3 Country3 Address3Type "
    "Website ContactType ContactNotes ReferralCode SpouseName AssistantName AssistantPhone "
    "BillingInformation Username Password Leadsource TimeZone Language"
).split()
_TYPED_FIELDS = {
    "Birthday": "date",
    "Anniversary": "date",
    "OwnerID": "int",
    "CompanyID": "int",
    "AccountId": "int",
    "LeadSourceId": "int",
}
STANDARD_FIELDS: dict[str, str] = {**dict.fromkeys(_STRING_FIELDS, "string"), **_TYPED_FIELDS}

# Readable but never writable through the API; the model maintains them.
READ_ONLY_FIELDS: dict[str, str] = {
    "Id": "int",
    "Groups": "string",
    "DateCreated": "date",
    "LastUpdated": "date",
    "CreatedBy": "int",
    "LastUpdatedBy": "int",
    "Validated": "string",
}

# The columns kept lower-cased beside the JSON so that email look-ups are indexed and case-insensitive.
_EMAIL_COLUMNS = {"Email": "email_lc", "EmailAddress2": "email2_lc", "EmailAddress3": "email3_lc"}

# Documented length limits; Keap truncates rather than refuses (facts §4: ContactNotes > 10,000 characters).
TRUNCATED_FIELDS: dict[str, int] = {"ContactNotes": 10_000}

DUP_CHECK_TYPES: dict[str, tuple[str, ...]] = {
    "Email": ("Email",),
    "EmailAndName": ("Email", "FirstName", "LastName"),
    "EmailAndNameAndCompany": ("Email", "FirstName", "LastName", "Company"),
}

_DATE_FORMATS = ("%Y%m%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d")

_JAVA_CLASS = "com.infusionsoft.api.xmlrpc.XmlRpcContactService"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS contacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    fields TEXT NOT NULL,
    email_lc TEXT, email2_lc TEXT, email3_lc TEXT,
    date_created TEXT NOT NULL,
    last_updated TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS contacts_email ON contacts(email_lc);
CREATE INDEX IF NOT EXISTS contacts_email2 ON contacts(email2_lc);
CREATE INDEX IF NOT EXISTS contacts_email3 ON contacts(email3_lc);
CREATE TABLE IF NOT EXISTS contact_tags (
    contact_id INTEGER NOT NULL, tag_id INTEGER NOT NULL, applied_at TEXT NOT NULL,
    PRIMARY KEY (contact_id, tag_id)
);
CREATE TABLE IF NOT EXISTS tag_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    contact_id INTEGER NOT NULL, tag_id INTEGER NOT NULL,
    op TEXT NOT NULL, via TEXT NOT NULL, at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS enrolments (
    contact_id INTEGER NOT NULL, sequence_id INTEGER NOT NULL, state TEXT NOT NULL,
    next_step_id INTEGER, started_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (contact_id, sequence_id)
);
CREATE TABLE IF NOT EXISTS sequence_starts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    contact_id INTEGER NOT NULL, sequence_id INTEGER NOT NULL, outcome TEXT NOT NULL, via TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS step_runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    contact_id INTEGER NOT NULL, sequence_id INTEGER NOT NULL, step_id INTEGER NOT NULL, at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS action_set_runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    contact_id INTEGER NOT NULL, action_set_id INTEGER NOT NULL, params TEXT, results TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS goal_runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    contact_id INTEGER NOT NULL, goal_id INTEGER, integration TEXT NOT NULL, call_name TEXT NOT NULL,
    via TEXT NOT NULL, at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS email_status (
    email_lc TEXT PRIMARY KEY, status TEXT NOT NULL, reason TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS email_status_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    email_lc TEXT NOT NULL, status TEXT NOT NULL, reason TEXT, via TEXT NOT NULL, at TEXT NOT NULL
);
"""
_TABLES = (
    "contacts",
    "contact_tags",
    "tag_events",
    "enrolments",
    "sequence_starts",
    "step_runs",
    "action_set_runs",
    "goal_runs",
    "email_status",
    "email_status_events",
)

# Email statuses (REST v2's names). An address on a contact that never opted in or out is non-marketable
# (facts §6: "assigned ... when a person is added ... but you did not indicate that you have permission").
DEFAULT_EMAIL_STATUS = "NON_MARKETABLE"
# What an opt-out through the API records (UNVERIFIED: Keap's UI calls it "Opted Out - Admin").
API_OPT_OUT_STATUS = "ADMIN"
OPT_IN_STATUS = "SINGLE_OPT_IN"
OPTED_IN_STATUSES = frozenset({"SINGLE_OPT_IN", "DOUBLE_OPT_IN", "CONFIRMED", "UNENGAGED_MARKETABLE"})
OPTED_OUT_STATUSES = frozenset(
    {
        "LOCKDOWN",
        "BOUNCE",
        "HARD_BOUNCE",
        "MANUAL",
        "ADMIN",
        "SYSTEM",
        "LIST_UNSUBSCRIBE",
        "FEEDBACK",
        "SPAM",
        "INVALID",
        "DEACTIVATED",
        "UNENGAGED_NON_MARKETABLE",
    }
)

# Per-contact outcomes of REST v2's many-contacts calls (keap-core-v2-sdk response enums).
SUCCESS = "SUCCESS"
ALREADY_IN_SEQUENCE = "ALREADY_IN_SEQUENCE"
CONTACT_DOES_NOT_EXIST = "CONTACT_DOES_NOT_EXIST"


class _BadValue(Exception):
    """A value that cannot be stored in a field of that type."""


def _to_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise _BadValue


def _to_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise _BadValue


def _to_double(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise _BadValue from None
    raise _BadValue


def _to_date(value: Any) -> str:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None, microsecond=0).isoformat()
    if isinstance(value, str):
        for fmt in _DATE_FORMATS:
            try:
                return datetime.strptime(value.strip(), fmt).isoformat()
            except ValueError:
                continue
    raise _BadValue


# Field type -> (value as sent -> value as stored in the JSON column).
_COERCE: dict[str, Callable[[Any], Any]] = {
    "string": _to_string,
    "int": _to_int,
    "double": _to_double,
    "date": _to_date,
}
# Field type -> (value as stored -> value as returned). Only dates differ.
_DECODE: dict[str, Callable[[Any], Any]] = {"date": datetime.fromisoformat}


def _java_type(value: Any) -> str:
    return type(value).__name__


class ContactServiceModel:
    """Keap's ContactService semantics over SQLite; raises KeapFault with Keap's codes and strings."""

    def __init__(
        self,
        db: str | Path = ":memory:",
        world: World | str | Path | dict[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
        timezone: str = "America/New_York",
    ) -> None:
        self.world = world if isinstance(world, World) else load_world(world)
        self._clock = clock
        try:
            # Keap answers in app-local (US Eastern) wall time without an offset (facts §4).
            self._tz: ZoneInfo | None = ZoneInfo(timezone)
        except ZoneInfoNotFoundError:
            self._tz = None
        self.fields: dict[str, str] = {**STANDARD_FIELDS, **self.world.custom_fields}
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(str(db), check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        with self._lock, self._conn:
            self._conn.executescript(_SCHEMA)
            if self._conn.execute("SELECT COUNT(*) FROM contacts").fetchone()[0] == 0:
                self._seed_contacts()

    # ---------------------------------------------------------------- plumbing

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        # One lock and one transaction per API call: a fault part-way leaves no trace.
        with self._lock, self._conn:
            yield self._conn

    def _now(self) -> str:
        moment = datetime.fromtimestamp(self._clock(), self._tz)
        return moment.replace(tzinfo=None, microsecond=0).isoformat()

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()

    def reset(self) -> None:
        """Forget every contact and log; reseed the world's contacts."""
        with self._tx() as conn:
            for table in _TABLES:
                conn.execute(f"DELETE FROM {table}")  # noqa: S608 - table names are constants
            conn.execute("DELETE FROM sqlite_sequence")
            self._seed_contacts()

    def _seed_contacts(self) -> None:
        for seeded in self.world.contacts:
            stored = self._coerce_fields(seeded.get("fields", {}), "add")
            cid = self._insert_contact(stored, seeded.get("id"))
            for tag in seeded.get("tags", []):
                self._apply_tag(cid, self._require_tag(tag, "add"), "seed")
            for seq in seeded.get("sequences", []):
                self._start_sequence(cid, self._require_sequence(seq), "seed")

    # ---------------------------------------------------------------- checks

    def _coerce_fields(self, data: dict[str, Any], verb: str) -> dict[str, Any]:
        """Check names and types of a data struct; return the values in storage form."""
        stored: dict[str, Any] = {}
        for name, value in data.items():
            if name in READ_ONLY_FIELDS:
                raise KeapFault.of(8, f"No field access: Contact.{name}")
            kind = self.fields.get(name)
            if kind is None:
                raise KeapFault.of(10, f"No field found: Contact.{name}")
            if value == "":
                # An empty string clears a field of any type.
                stored[name] = None
                continue
            try:
                stored[name] = _COERCE[kind](value)
                if name in TRUNCATED_FIELDS:
                    stored[name] = stored[name][: TRUNCATED_FIELDS[name]]
            except _BadValue:
                raise KeapFault.of(
                    12, f"Invalid value for Contact.{name} in {verb}: a {_java_type(value)} is not a {kind}"
                ) from None
        return stored

    def _check_selected(self, selected: list[str]) -> None:
        for name in selected:
            if name not in self.fields and name not in READ_ONLY_FIELDS:
                raise KeapFault.of(10, f"No field found: Contact.{name}")

    @staticmethod
    def _check_id(contact_id: int, verb: str) -> None:
        if contact_id <= 0:
            raise KeapFault(
                LIBRARY,
                f"Failed to invoke method {verb} in class {_JAVA_CLASS}: contactId must be a valid id",
            )

    def _require_contact(self, contact_id: int, verb: str) -> sqlite3.Row:
        self._check_id(contact_id, verb)
        row = self._conn.execute("SELECT * FROM contacts WHERE id = ?", (contact_id,)).fetchone()
        if row is None:
            raise KeapFault.of(5, f"Unable to perform {verb}. Record not found for Id:{contact_id}")
        return row

    def _require_tag(self, tag_id: int, verb: str) -> int:
        if tag_id not in self.world.tags:
            raise KeapFault.of(5, f"Unable to perform {verb}. Tag (ContactGroup) not found for Id:{tag_id}")
        return tag_id

    def _require_sequence(self, sequence_id: int) -> Sequence:
        sequence = self.world.sequences.get(sequence_id)
        if sequence is None:
            raise KeapFault.of(6, "Error loading follow-up sequence")
        return sequence

    # ---------------------------------------------------------------- contact rows

    def _decode_fields(self, raw: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in json.loads(raw).items():
            decode = _DECODE.get(self.fields.get(name, "string"))
            out[name] = decode(value) if decode else value
        return out

    def _record(self, row: sqlite3.Row) -> dict[str, Any]:
        record = self._decode_fields(row["fields"])
        record["Id"] = row["id"]
        record["Groups"] = ",".join(str(t) for t in self._tags_of(row["id"]))
        record["DateCreated"] = datetime.fromisoformat(row["date_created"])
        record["LastUpdated"] = datetime.fromisoformat(row["last_updated"])
        return dict(sorted(record.items()))

    def _tags_of(self, contact_id: int) -> list[int]:
        rows = self._conn.execute("SELECT tag_id FROM contact_tags WHERE contact_id = ? ORDER BY tag_id", (contact_id,))
        return [r[0] for r in rows]

    @staticmethod
    def _email_columns(fields: dict[str, Any]) -> dict[str, str | None]:
        return {col: (fields[name].lower() if fields.get(name) else None) for name, col in _EMAIL_COLUMNS.items()}

    def _insert_contact(self, stored: dict[str, Any], contact_id: int | None = None) -> int:
        fields = {k: v for k, v in stored.items() if v is not None}
        now = self._now()
        emails = self._email_columns(fields)
        cur = self._conn.execute(
            "INSERT INTO contacts (id, fields, email_lc, email2_lc, email3_lc, date_created, last_updated)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                contact_id,
                json.dumps(fields),
                emails["email_lc"],
                emails["email2_lc"],
                emails["email3_lc"],
                now,
                now,
            ),
        )
        return int(cur.lastrowid or 0)

    def _write_fields(self, row: sqlite3.Row, stored: dict[str, Any]) -> None:
        fields = json.loads(row["fields"])
        for name, value in stored.items():
            if value is None:
                fields.pop(name, None)
            else:
                fields[name] = value
        emails = self._email_columns(fields)
        self._conn.execute(
            "UPDATE contacts SET fields = ?, email_lc = ?, email2_lc = ?, email3_lc = ?, last_updated = ? WHERE id = ?",
            (
                json.dumps(fields),
                emails["email_lc"],
                emails["email2_lc"],
                emails["email3_lc"],
                self._now(),
                row["id"],
            ),
        )

    # ---------------------------------------------------------------- tags and sequences (internal)

    def _apply_tag(self, contact_id: int, tag_id: int, via: str) -> None:
        now = self._now()
        self._conn.execute(
            "INSERT OR IGNORE INTO contact_tags (contact_id, tag_id, applied_at) VALUES (?, ?, ?)",
            (contact_id, tag_id, now),
        )
        self._conn.execute(
            "INSERT INTO tag_events (contact_id, tag_id, op, via, at) VALUES (?, ?, 'apply', ?, ?)",
            (contact_id, tag_id, via, now),
        )

    def _remove_tag(self, contact_id: int, tag_id: int, via: str) -> None:
        self._conn.execute("DELETE FROM contact_tags WHERE contact_id = ? AND tag_id = ?", (contact_id, tag_id))
        self._conn.execute(
            "INSERT INTO tag_events (contact_id, tag_id, op, via, at) VALUES (?, ?, 'remove', ?, ?)",
            (contact_id, tag_id, via, self._now()),
        )

    def _enrolment(self, contact_id: int, sequence_id: int) -> sqlite3.Row | None:
        return self._conn.execute(
            "SELECT * FROM enrolments WHERE contact_id = ? AND sequence_id = ?", (contact_id, sequence_id)
        ).fetchone()

    def _start_sequence(self, contact_id: int, sequence: Sequence, via: str) -> str:
        """Start (or keep) an enrolment; log the start. Returns what happened to the enrolment."""
        now = self._now()
        current = self._enrolment(contact_id, sequence.id)
        if current is None or current["state"] == "removed":
            outcome = "started" if current is None else "restarted"
            self._conn.execute(
                "INSERT OR REPLACE INTO enrolments"
                " (contact_id, sequence_id, state, next_step_id, started_at, updated_at)"
                " VALUES (?, ?, 'active', ?, ?, ?)",
                (contact_id, sequence.id, sequence.steps[0], now, now),
            )
        elif current["state"] == "paused":
            # UNVERIFIED: re-adding a paused contact resumes it where it stopped.
            outcome = "resumed"
            self._set_state(contact_id, sequence.id, "active")
        else:
            outcome = "already_active"
        self._conn.execute(
            "INSERT INTO sequence_starts (contact_id, sequence_id, outcome, via, at) VALUES (?, ?, ?, ?, ?)",
            (contact_id, sequence.id, outcome, via, now),
        )
        return outcome

    def _set_state(self, contact_id: int, sequence_id: int, state: str) -> bool:
        cur = self._conn.execute(
            "UPDATE enrolments SET state = ?, updated_at = ? WHERE contact_id = ? AND sequence_id = ?",
            (state, self._now(), contact_id, sequence_id),
        )
        return cur.rowcount > 0

    # ---------------------------------------------------------------- action sets

    def _tag_names(self, tags: tuple[int, ...]) -> str:
        return ", ".join(self.world.tags[t].name for t in tags)

    def _act_tags(self, contact_id: int, action: Action, via: str) -> dict[str, Any]:
        applying = action.type == "apply_tags"
        for tag in action.tags:
            (self._apply_tag if applying else self._remove_tag)(contact_id, tag, via)
        done = "applied to" if applying else "removed from"
        return {"Action": "Apply/Remove Tag", "Message": f"tags {done} Contact: {self._tag_names(action.tags)}"}

    def _act_start_sequence(self, contact_id: int, action: Action, via: str) -> dict[str, Any]:
        sequence = self.world.sequences[action.sequence or 0]
        self._start_sequence(contact_id, sequence, via)
        return {"Action": "Start/Stop Follow-up Sequence", "Message": f"sequence started: {sequence.name}"}

    def _act_stop_sequence(self, contact_id: int, action: Action, via: str) -> dict[str, Any]:
        sequence = self.world.sequences[action.sequence or 0]
        self._set_state(contact_id, sequence.id, "removed")
        return {"Action": "Start/Stop Follow-up Sequence", "Message": f"sequence stopped: {sequence.name}"}

    _ACTIONS: dict[str, Callable[[ContactServiceModel, int, Action, str], dict[str, Any]]] = {
        "apply_tags": _act_tags,
        "remove_tags": _act_tags,
        "start_sequence": _act_start_sequence,
        "stop_sequence": _act_stop_sequence,
    }

    # ================================================================ the API (ContactService.*)

    def add(self, data: dict[str, Any]) -> int:
        """ContactService.add: create a contact, no duplicate checking; returns its Id."""
        with self._tx():
            return self._insert_contact(self._coerce_fields(data, "add"))

    def add_with_dup_check(self, data: dict[str, Any], dup_check_type: str) -> int:
        """ContactService.addWithDupCheck: update the first (lowest Id) match, else create; returns the Id."""
        return self.upsert(data, dup_check_type)[0]

    def upsert(self, data: dict[str, Any], dup_check_type: str) -> tuple[int, bool]:
        """addWithDupCheck's semantics; returns (Id, whether a new contact was created)."""
        keys = DUP_CHECK_TYPES.get(dup_check_type)
        if keys is None:
            raise KeapFault.of(
                12, f"Invalid dupCheckType: {dup_check_type} (expected one of {', '.join(DUP_CHECK_TYPES)})"
            )
        with self._tx() as conn:
            stored = self._coerce_fields(data, "addWithDupCheck")
            email = stored.get("Email")
            if email:
                wanted = {k: (stored.get(k) or "").lower() for k in keys}
                rows = conn.execute(
                    "SELECT * FROM contacts WHERE email_lc = ? ORDER BY id", (email.lower(),)
                ).fetchall()
                for row in rows:
                    fields = json.loads(row["fields"])
                    if all((fields.get(k) or "").lower() == v for k, v in wanted.items()):
                        self._write_fields(row, stored)
                        return int(row["id"]), False
            return self._insert_contact(stored), True

    def update(self, contact_id: int, data: dict[str, Any]) -> int:
        """ContactService.update: change the given fields; returns the Id."""
        with self._tx():
            if not data:
                raise KeapFault.of(11, "No fields sent for update")
            row = self._require_contact(contact_id, "update")
            self._write_fields(row, self._coerce_fields(data, "update"))
            return contact_id

    def load(self, contact_id: int, selected_fields: list[str]) -> dict[str, Any]:
        """ContactService.load: the asked fields that have a value."""
        with self._tx():
            self._check_selected(selected_fields)
            record = self._record(self._require_contact(contact_id, "load"))
        return {k: record[k] for k in sorted(set(selected_fields)) if record.get(k) not in (None, "")}

    def find_by_email(self, email: str, selected_fields: list[str]) -> list[dict[str, Any]]:
        """ContactService.findByEmail: contacts whose Email, EmailAddress2 or EmailAddress3 match."""
        with self._tx() as conn:
            self._check_selected(selected_fields)
            if not email:
                return []
            needle = email.lower()
            rows = conn.execute(
                "SELECT * FROM contacts WHERE email_lc = ? OR email2_lc = ? OR email3_lc = ? ORDER BY id",
                (needle, needle, needle),
            ).fetchall()
            records = [self._record(r) for r in rows]
        wanted = sorted(set(selected_fields))
        return [{k: r[k] for k in wanted if r.get(k) not in (None, "")} for r in records]

    def merge(self, contact_id: int, duplicate_contact_id: int) -> bool:
        """ContactService.merge: fold the duplicate into the contact, then delete the duplicate."""
        with self._tx() as conn:
            keep = self._require_contact(contact_id, "merge")
            dup = self._require_contact(duplicate_contact_id, "merge")
            if contact_id == duplicate_contact_id:
                raise KeapFault.of(12, "Cannot merge a contact into itself")
            kept_fields = json.loads(keep["fields"])
            filled = {k: v for k, v in json.loads(dup["fields"]).items() if kept_fields.get(k) in (None, "")}
            self._write_fields(keep, filled)
            have = set(self._tags_of(contact_id))
            for tag in self._tags_of(duplicate_contact_id):
                if tag not in have:
                    self._apply_tag(contact_id, tag, "merge")
            for enrolment in conn.execute(
                "SELECT * FROM enrolments WHERE contact_id = ?", (duplicate_contact_id,)
            ).fetchall():
                mine = self._enrolment(contact_id, enrolment["sequence_id"])
                # The surviving contact's own enrolment wins unless it was already removed.
                if mine is None or (mine["state"] == "removed" and enrolment["state"] != "removed"):
                    conn.execute(
                        "INSERT OR REPLACE INTO enrolments"
                        " (contact_id, sequence_id, state, next_step_id, started_at, updated_at)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            contact_id,
                            enrolment["sequence_id"],
                            enrolment["state"],
                            enrolment["next_step_id"],
                            enrolment["started_at"],
                            self._now(),
                        ),
                    )
            conn.execute("DELETE FROM enrolments WHERE contact_id = ?", (duplicate_contact_id,))
            conn.execute("DELETE FROM contact_tags WHERE contact_id = ?", (duplicate_contact_id,))
            conn.execute("DELETE FROM contacts WHERE id = ?", (duplicate_contact_id,))
            return True

    def add_to_group(self, contact_id: int, tag_id: int) -> bool:
        """ContactService.addToGroup: apply a tag (every application is logged; the state is a set)."""
        with self._tx():
            self._require_contact(contact_id, "addToGroup")
            self._apply_tag(contact_id, self._require_tag(tag_id, "addToGroup"), "addToGroup")
            return True

    def remove_from_group(self, contact_id: int, tag_id: int) -> bool:
        """ContactService.removeFromGroup: remove a tag (no error when it was not applied)."""
        with self._tx():
            self._require_contact(contact_id, "removeFromGroup")
            self._remove_tag(contact_id, self._require_tag(tag_id, "removeFromGroup"), "removeFromGroup")
            return True

    def add_to_campaign(self, contact_id: int, campaign_id: int) -> bool:
        """ContactService.addToCampaign: start a follow-up sequence (an active one is kept as it is)."""
        with self._tx():
            self._require_contact(contact_id, "addToCampaign")
            self._start_sequence(contact_id, self._require_sequence(campaign_id), "addToCampaign")
            return True

    def pause_campaign(self, contact_id: int, sequence_id: int) -> bool:
        """ContactService.pauseCampaign: true when the contact is enrolled (now paused), false otherwise."""
        return self._change_state(contact_id, sequence_id, "pauseCampaign", "paused", {"active", "paused"})

    def resume_campaign_for_contact(self, contact_id: int, sequence_id: int) -> bool:
        """ContactService.resumeCampaignForContact: paused -> active; false when not enrolled."""
        return self._change_state(contact_id, sequence_id, "resumeCampaignForContact", "active", {"active", "paused"})

    def remove_from_campaign(self, contact_id: int, sequence_id: int) -> bool:
        """ContactService.removeFromCampaign: any enrolment -> removed; false when never enrolled."""
        return self._change_state(
            contact_id, sequence_id, "removeFromCampaign", "removed", {"active", "paused", "removed"}
        )

    def _change_state(self, contact_id: int, sequence_id: int, verb: str, state: str, allowed: set[str]) -> bool:
        with self._tx():
            self._require_contact(contact_id, verb)
            self._require_sequence(sequence_id)
            current = self._enrolment(contact_id, sequence_id)
            if current is None or current["state"] not in allowed:
                return False
            return self._set_state(contact_id, sequence_id, state)

    def get_next_campaign_step(self, contact_id: int, follow_up_sequence_id: int) -> int:
        """ContactService.getNextCampaignStep: the next step's Id, 0 when finished or not enrolled."""
        with self._tx():
            self._require_contact(contact_id, "getNextCampaignStep")
            self._require_sequence(follow_up_sequence_id)
            current = self._enrolment(contact_id, follow_up_sequence_id)
            if current is None or current["state"] == "removed" or current["next_step_id"] is None:
                return 0
            return int(current["next_step_id"])

    def reschedule_campaign_step(self, contact_ids: list[int], sequence_step_id: int) -> int:
        """ContactService.rescheduleCampaignStep: run the step now for active enrolled contacts; the count."""
        with self._tx() as conn:
            sequence = self.world.sequence_of_step(sequence_step_id)
            if sequence is None:
                raise KeapFault.of(6, "Error loading follow-up sequence step")
            now = self._now()
            ran = 0
            for contact_id in dict.fromkeys(contact_ids):
                current = self._enrolment(contact_id, sequence.id)
                if current is None or current["state"] != "active":
                    continue
                conn.execute(
                    "INSERT INTO step_runs (contact_id, sequence_id, step_id, at) VALUES (?, ?, ?, ?)",
                    (contact_id, sequence.id, sequence_step_id, now),
                )
                conn.execute(
                    "UPDATE enrolments SET next_step_id = ?, updated_at = ? WHERE contact_id = ? AND sequence_id = ?",
                    (sequence.step_after(sequence_step_id), now, contact_id, sequence.id),
                )
                ran += 1
            return ran

    def run_action_sequence(
        self, contact_id: int, action_set_id: int, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """ContactService.runActionSequence: run the world's action set; one result struct per action."""
        with self._tx() as conn:
            self._require_contact(contact_id, "runActionSequence")
            action_set = self.world.action_sets.get(action_set_id)
            if action_set is None:
                raise KeapFault.of(
                    5, f"Unable to perform runActionSequence. Action set not found for Id:{action_set_id}"
                )
            via = f"runActionSequence:{action_set_id}"
            results = [
                {**self._ACTIONS[action.type](self, contact_id, action, via), "IsError": False}
                for action in action_set.actions
            ]
            conn.execute(
                "INSERT INTO action_set_runs (contact_id, action_set_id, params, results, at) VALUES (?, ?, ?, ?, ?)",
                (
                    contact_id,
                    action_set_id,
                    json.dumps(params, default=str) if params else None,
                    json.dumps(results),
                    self._now(),
                ),
            )
            return results

    # ======================================================== goals and email status (FunnelService, APIEmailService)

    def achieve_goal(
        self, integration: str, call_name: str, contact_id: int, via: str = "FunnelService.achieveGoal"
    ) -> list[dict[str, Any]]:
        """FunnelService.achieveGoal: run every goal with that integration and call name; one result each.

        No such goal: one result with success false (Keap answers rather than faults; its wording is a choice).
        """
        with self._tx() as conn:
            self._require_contact(contact_id, "achieveGoal")
            goals = self.world.goals_for(integration, call_name)
            now = self._now()
            results = []
            for goal in goals:
                for action in goal.actions:
                    self._ACTIONS[action.type](self, contact_id, action, f"goal:{goal.id}")
                results.append(
                    {
                        "success": True,
                        "message": f"goal {goal.id} achieved",
                        "automation_id": goal.automation_id,
                        "goal_id": goal.id,
                    }
                )
            for goal_id in [g.id for g in goals] or [None]:
                conn.execute(
                    "INSERT INTO goal_runs (contact_id, goal_id, integration, call_name, via, at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (contact_id, goal_id, integration, call_name, via, now),
                )
            return results or [{"success": False, "message": f"no goal for {integration}/{call_name}"}]

    def _email_row(self, email: str) -> sqlite3.Row | None:
        return self._conn.execute("SELECT * FROM email_status WHERE email_lc = ?", (email.lower(),)).fetchone()

    def _email_known(self, email: str) -> bool:
        needle = email.lower()
        return (
            self._conn.execute(
                "SELECT 1 FROM contacts WHERE email_lc = ? OR email2_lc = ? OR email3_lc = ? LIMIT 1",
                (needle, needle, needle),
            ).fetchone()
            is not None
            or self._email_row(email) is not None
        )

    def _set_email_status(self, email: str, status: str, reason: str, via: str) -> None:
        now = self._now()
        row = self._email_row(email)
        self._conn.execute(
            "INSERT OR REPLACE INTO email_status (email_lc, status, reason, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (email.lower(), status, reason, row["created_at"] if row else now, now),
        )
        self._conn.execute(
            "INSERT INTO email_status_events (email_lc, status, reason, via, at) VALUES (?, ?, ?, ?, ?)",
            (email.lower(), status, reason, via, now),
        )

    def opt_out(self, email: str, reason: str, via: str = "APIEmailService.optOut") -> bool:
        """APIEmailService.optOut: the address is no longer marketable; false when no contact has it."""
        with self._tx():
            if not email or not self._email_known(email):
                return False
            current = self.email_status(email)
            if current is None or current["status"] not in OPTED_OUT_STATUSES:
                self._set_email_status(email, API_OPT_OUT_STATUS, reason, via)
            return True

    def set_email_opt_in(self, email: str, opted_in: bool, reason: str, via: str) -> dict[str, Any] | None:
        """Opt an address in or out; its status afterwards, or None when no contact has it.

        An address that opted out cannot be opted back in through the API (facts §6): fault 12.
        """
        with self._tx():
            if not self._email_known(email):
                return None
            current = self.email_status(email) or {}
            if opted_in:
                if current.get("status") in OPTED_OUT_STATUSES:
                    raise KeapFault.of(12, f"Cannot opt in {email}: the address has opted out")
                if current.get("status") not in OPTED_IN_STATUSES:
                    self._set_email_status(email, OPT_IN_STATUS, reason, via)
            elif current.get("status") not in OPTED_OUT_STATUSES:
                self._set_email_status(email, API_OPT_OUT_STATUS, reason, via)
            return self.email_status(email)

    def email_status(self, email: str) -> dict[str, Any] | None:
        """email, status, opted_in, reason, created_at, updated_at; None when no contact has the address."""
        with self._tx():
            row = self._email_row(email)
            if row is None:
                if not self._email_known(email):
                    return None
                return {
                    "email": email.lower(),
                    "status": DEFAULT_EMAIL_STATUS,
                    "opted_in": False,
                    "reason": None,
                    "created_at": None,
                    "updated_at": None,
                }
            return {
                "email": row["email_lc"],
                "status": row["status"],
                "opted_in": row["status"] in OPTED_IN_STATUSES,
                "reason": row["reason"],
                "created_at": row["created_at"],
                "updated_at": row["updated_at"],
            }

    # ================================================================ many contacts per call (REST v2)

    def _known_contacts(self, contact_ids: list[int]) -> set[int]:
        marks = ",".join("?" * len(contact_ids))
        rows = self._conn.execute(f"SELECT id FROM contacts WHERE id IN ({marks})", contact_ids)  # noqa: S608
        return {r[0] for r in rows}

    def apply_tag_many(self, tag_id: int, contact_ids: list[int], via: str) -> dict[int, str]:
        """Apply a tag to each listed contact; contact id -> SUCCESS | CONTACT_DOES_NOT_EXIST."""
        return self._tag_many(self._apply_tag, tag_id, contact_ids, via)

    def remove_tag_many(self, tag_id: int, contact_ids: list[int], via: str) -> dict[int, str]:
        """Remove a tag from each listed contact; contact id -> SUCCESS | CONTACT_DOES_NOT_EXIST."""
        return self._tag_many(self._remove_tag, tag_id, contact_ids, via)

    def _tag_many(
        self, change: Callable[[int, int, str], None], tag_id: int, contact_ids: list[int], via: str
    ) -> dict[int, str]:
        with self._tx():
            self._require_tag(tag_id, via)
            known = self._known_contacts(contact_ids)
            for cid in contact_ids:
                if cid in known:
                    change(cid, tag_id, via)
            return {cid: SUCCESS if cid in known else CONTACT_DOES_NOT_EXIST for cid in contact_ids}

    def _campaign_sequence(self, campaign_id: int, sequence_id: int) -> Sequence:
        sequence = self.world.sequences.get(sequence_id)
        if sequence is None or sequence.campaign != campaign_id:
            raise KeapFault.of(6, f"Error loading sequence {sequence_id} of campaign {campaign_id}")
        return sequence

    def start_sequence_many(
        self, campaign_id: int, sequence_id: int, contact_ids: list[int], via: str
    ) -> dict[int, str]:
        """Start a campaign's sequence; contact id -> SUCCESS | ALREADY_IN_SEQUENCE | CONTACT_DOES_NOT_EXIST."""
        with self._tx():
            sequence = self._campaign_sequence(campaign_id, sequence_id)
            known = self._known_contacts(contact_ids)
            out = {}
            for cid in contact_ids:
                if cid not in known:
                    out[cid] = CONTACT_DOES_NOT_EXIST
                    continue
                outcome = self._start_sequence(cid, sequence, via)
                out[cid] = ALREADY_IN_SEQUENCE if outcome == "already_active" else SUCCESS
            return out

    def stop_sequence_many(
        self, campaign_id: int, sequence_id: int, contact_ids: list[int], via: str
    ) -> dict[int, str]:
        """Take contacts out of a campaign's sequence (none enrolled is no error); id -> SUCCESS | ..."""
        with self._tx():
            self._campaign_sequence(campaign_id, sequence_id)
            known = self._known_contacts(contact_ids)
            for cid in contact_ids:
                if cid in known:
                    self._set_state(cid, sequence_id, "removed")
            return {cid: SUCCESS if cid in known else CONTACT_DOES_NOT_EXIST for cid in contact_ids}

    # ================================================================ inspection (read-only, plain values)

    def get_contact(self, contact_id: int) -> dict[str, Any] | None:
        """Every stored field of a contact, with Id, Groups, DateCreated and LastUpdated; None if absent."""
        with self._tx() as conn:
            row = conn.execute("SELECT * FROM contacts WHERE id = ?", (contact_id,)).fetchone()
            return self._record(row) if row else None

    def contact_ids(self) -> list[int]:
        """Ids of all contacts, ascending."""
        with self._tx() as conn:
            return [r[0] for r in conn.execute("SELECT id FROM contacts ORDER BY id")]

    def contact_tags(self, contact_id: int) -> set[int]:
        """The tags a contact has now."""
        with self._tx():
            return set(self._tags_of(contact_id))

    def find_ids_by_email(self, email: str, prefix: bool = False) -> list[int]:
        """Ids of contacts with that address (or, with `prefix`, one starting so) in any email field."""
        needle = email.lower()
        if prefix:
            needle = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where = " OR ".join(f"{col} LIKE ? ESCAPE '\\'" for col in _EMAIL_COLUMNS.values())
        else:
            where = " OR ".join(f"{col} = ?" for col in _EMAIL_COLUMNS.values())
        with self._tx() as conn:
            rows = conn.execute(f"SELECT id FROM contacts WHERE {where} ORDER BY id", (needle,) * 3)  # noqa: S608
            return [r[0] for r in rows]

    def _rows(self, sql: str, contact_id: int | None, order: str = "seq") -> list[dict[str, Any]]:
        where = " WHERE contact_id = ?" if contact_id is not None else ""
        with self._tx() as conn:
            cur = conn.execute(f"{sql}{where} ORDER BY {order}", () if contact_id is None else (contact_id,))
            return [dict(r) for r in cur]

    def enrolments(self, contact_id: int | None = None) -> list[dict[str, Any]]:
        """Sequence enrolments: contact_id, sequence_id, state (active|paused|removed), next_step_id."""
        return self._rows(
            "SELECT contact_id, sequence_id, state, next_step_id, started_at, updated_at FROM enrolments",
            contact_id,
            order="contact_id, sequence_id",
        )

    def sequence_starts(self, contact_id: int | None = None) -> list[dict[str, Any]]:
        """One row per time a sequence was started for a contact.

        outcome: started | restarted (after removal) | resumed (was paused) | already_active.
        """
        return self._rows("SELECT seq, contact_id, sequence_id, outcome, via, at FROM sequence_starts", contact_id)

    def step_runs(self, contact_id: int | None = None) -> list[dict[str, Any]]:
        """One row per sequence step run by rescheduleCampaignStep."""
        return self._rows("SELECT seq, contact_id, sequence_id, step_id, at FROM step_runs", contact_id)

    def tag_applications(self, contact_id: int | None = None) -> list[dict[str, Any]]:
        """Every tag application and removal (op: apply|remove; via: the API method or action set)."""
        return self._rows("SELECT seq, contact_id, tag_id, op, via, at FROM tag_events", contact_id)

    def action_set_runs(self, contact_id: int | None = None) -> list[dict[str, Any]]:
        """One row per runActionSequence: contact_id, action_set_id, params, results, at."""
        rows = self._rows("SELECT seq, contact_id, action_set_id, params, results, at FROM action_set_runs", contact_id)
        for row in rows:
            row["params"] = json.loads(row["params"]) if row["params"] else None
            row["results"] = json.loads(row["results"])
        return rows

    def goal_runs(self, contact_id: int | None = None) -> list[dict[str, Any]]:
        """One row per goal achieved (goal_id None when the pair matched no goal): integration, call_name, via."""
        return self._rows("SELECT seq, contact_id, goal_id, integration, call_name, via, at FROM goal_runs", contact_id)

    def email_status_events(self) -> list[dict[str, Any]]:
        """Every opt-in / opt-out recorded: email (lower-cased), status, reason, via, at."""
        with self._tx() as conn:
            cur = conn.execute(
                "SELECT seq, email_lc AS email, status, reason, via, at FROM email_status_events ORDER BY seq"
            )
            return [dict(r) for r in cur]

    def snapshot(self) -> dict[str, Any]:
        """Everything, JSON-serialisable: world, contacts (with tags), enrolments and the logs."""
        with self._lock:
            contacts = []
            for cid in self.contact_ids():
                record = self.get_contact(cid) or {}
                plain = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in record.items()}
                contacts.append({**plain, "tags": sorted(self.contact_tags(cid))})
            return {
                "world": self.world.source,
                "contacts": contacts,
                "enrolments": self.enrolments(),
                "sequence_starts": self.sequence_starts(),
                "step_runs": self.step_runs(),
                "tag_events": self.tag_applications(),
                "action_set_runs": self.action_set_runs(),
                "goal_runs": self.goal_runs(),
                "email_status_events": self.email_status_events(),
            }
