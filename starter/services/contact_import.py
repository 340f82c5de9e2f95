"""Contact import: CSV or NDJSON rows become contacts, checked like a `PUT`, idempotently.

The rules, in the order they apply:

1. **Mapping.** Each column (CSV header, NDJSON key) maps to a field (`id`, `email`,
   `phone`, `first_name`, `company`, `timezone`), an attribute (`attr:<name>`), the
   tags (`tags`, split on `;`), a consent part (`email_consent`,
   `email_consent_source`, `email_consent_at`, `email_consent_text`, the same for
   `sms_`) or nothing (`-`). A column named like a field maps to it; others need
   `--map COLUMN=TARGET`. A column left unmapped refuses the whole file before any row
   is read (a typo must not drop data silently). `--tag` adds constant tags to every row.
2. **Validation.** A row is validated as `PUT /v1/contacts/{id}` validates a body
   (`models.contacts.ContactFields`: email syntax and IDN, valid phone numbers in
   E.164, IANA time zones). With a default region, a national phone number is read
   as a number of that country. Consent (`yes`/`no`, `true`/`false`, `1`/`0`; empty:
   no change) is taken only with its source and time: a row giving consent without
   both is refused, never assumed. A refused row is reported with its line and
   reason, and the other rows go on.
3. **Duplicates in the file.** Rows with the same id, or the same email address, are
   one contact: the first row's id, its fields, later rows filling what it left empty,
   every row's tags, the first value of each attribute, and per channel the consent
   with the latest time. The later rows are reported `merged` (into the first's line);
   one with an id of its own makes that id an alias of the contact (as a merge does).
4. **Entry.** Each contact enters as a `PUT` does (`starter.services.dedupe.enter_in`,
   in batches of `BATCH_ROWS` per transaction): an erased id (tombstone) is refused,
   a new id whose email address an existing contact has is merged into it (`merged`),
   an id merged before (an alias) fills the empty fields of its contact (so a second run
   changes nothing). A contact whose fields, tags, attributes or consent did not change
   is `unchanged` (not even its `updated_at` moves); a created or changed one gets
   `segments_due_at = now` (the segment sweep re-evaluates it). Suppressions stay as
   they are: an address suppressed before is not mailed, whatever consent the file gives.
   The merges are then told to the contact workflows (`dedupe.finish_merges`), as after
   a `PUT`.
5. **Journeys.** None start unless asked: `trigger="subscribed"` hands one
   `subscribed` event per *created* contact to the intake, with the event id
   `import-subscribed-<contact id>`, so a second run starts nothing twice.

`run_import` does it; `dry_run` validates and counts without writing.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.contacts import ConsentUpdate, ContactProfile, normalise_phone
from models.db import lock_contact, lock_contacts, session_factory
from models.events import BehaviorEvent
from models.settings import Settings
from models.tables import Contact, ContactAlias, ErasedContact, utc_now
from starter.services.dedupe import enter_in, fold_in_lead
from starter.services.operations import (
    InvalidRequest,
    OperationError,
    contact_in,
    erased_contact,
    upsert_in,
)

if TYPE_CHECKING:  # Temporal loads only for imports that trigger journeys or merge
    from temporalio.client import Client

ImportFormat = Literal["csv", "ndjson"]
Outcome = Literal["created", "updated", "unchanged", "merged", "refused"]
OUTCOMES: tuple[Outcome, ...] = ("created", "updated", "unchanged", "merged", "refused")
"""Each row is counted under one of these, in the report's order."""
BATCH_ROWS = 500
"""Contacts entered per transaction."""
TRIGGERS = ("subscribed",)
"""Events an import may hand to the intake for each contact it creates."""
FIELDS = ("id", "email", "phone", "first_name", "company", "timezone", "tags")
CONSENT_PARTS = ("", "_source", "_at", "_text")
CHANNELS = ("email", "sms")
SKIP = "-"
ATTRIBUTE_PREFIX = "attr:"
TAG_SEPARATOR = ";"
_PROOF = (("source", "source"), ("at", "time"))
"""What consent is imported with: the column suffix, and what it is called in a refusal."""
_TRUE = frozenset({"yes", "y", "true", "1", "granted"})
_FALSE = frozenset({"no", "n", "false", "0", "withdrawn"})


class ImportRefused(InvalidRequest):
    """The file as a whole cannot be imported (unreadable, unmapped columns, bad options)."""


def consent_targets() -> list[str]:
    """`email_consent`, `email_consent_source`, … `sms_consent_text`."""
    return [f"{channel}_consent{part}" for channel in CHANNELS for part in CONSENT_PARTS]


KNOWN_TARGETS = (*FIELDS, *consent_targets())


@dataclass(frozen=True)
class Refusal:
    """A row not imported: its line in the file and why."""

    line: int
    reason: str


@dataclass(frozen=True)
class Merge:
    """A row folded into another contact: its line, its id, and where it went."""

    line: int
    contact_id: str
    into: str
    into_line: int | None = None
    """The line of the file's row it was folded into (None: an existing contact)."""


@dataclass
class ImportReport:
    """What an import did, per row (each row is counted once).

    Attributes:
        rows: Data rows read (the header is not a row).
        created: Rows that created a contact.
        updated: Rows that changed an existing contact.
        unchanged: Rows that changed nothing (a second run of the same file).
        merged: Rows folded into another row of the file (same id or email) or into an
            existing contact with their email address.
        refused: Rows not imported (see `refusals`).
        refusals: Each refused row's line and reason.
        merges: Each merged row's line and the contact it went to.
        triggered: `subscribed` events accepted for created contacts.
        dry_run: Nothing was written.
    """

    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    merged: int = 0
    refused: int = 0
    refusals: list[Refusal] = field(default_factory=list)
    merges: list[Merge] = field(default_factory=list)
    triggered: int = 0
    dry_run: bool = False

    def count(self, outcome: Outcome, number: int = 1) -> None:
        """Add `number` rows to `outcome`'s count."""
        setattr(self, outcome, getattr(self, outcome) + number)

    def refuse(self, line: int, reason: str) -> None:
        """Count a refused row and keep its reason."""
        self.count("refused")
        self.refusals.append(Refusal(line, reason))

    def refuse_merged(self, line: int, reason: str) -> None:
        """A row counted `merged` into another that the database refused after all."""
        self.count("merged", -1)
        self.merges = [merge for merge in self.merges if merge.line != line]
        self.refuse(line, reason)

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (refusals and merges sorted by line)."""
        return {
            "rows": self.rows,
            **{name: getattr(self, name) for name in OUTCOMES},
            "triggered": self.triggered,
            "dry_run": self.dry_run,
            "refusals": [vars(r) for r in sorted(self.refusals, key=lambda r: r.line)],
            "merges": [vars(m) for m in sorted(self.merges, key=lambda m: m.line)],
        }


@dataclass(frozen=True)
class ColumnMap:
    """Which column fills which target (see the module docstring).

    Attributes:
        targets: Column → `id`, `email`, …, `attr:<name>`, `tags`, a consent part, or `-`.
        tags: Tags added to every row (`--tag`).
        default_region: ISO country code national phone numbers are read in (`FR`).
    """

    targets: dict[str, str]
    tags: tuple[str, ...] = ()
    default_region: str | None = None

    @classmethod
    def build(
        cls,
        columns: Sequence[str],
        overrides: dict[str, str],
        *,
        tags: Iterable[str] = (),
        default_region: str | None = None,
    ) -> ColumnMap:
        """The mapping of a file's `columns`: `overrides` first, else a column's own name.

        Raises:
            ImportRefused: an unknown target, a column without one, no `id` column, or an
                unknown region.
        """
        bad = sorted(t for t in overrides.values() if not _is_target(t))
        if bad:
            raise ImportRefused(
                f"unknown mapping target(s) {', '.join(map(repr, bad))}: map a column to one "
                f"of {', '.join(KNOWN_TARGETS)}, attr:<name> or - (skip)"
            )
        targets = {c: overrides.get(c, c.strip()) for c in columns}
        unmapped = [c for c, target in targets.items() if not _is_target(target)]
        if unmapped:
            raise ImportRefused(
                f"column(s) {', '.join(map(repr, unmapped))} map to nothing: name them after a "
                "field, or give --map COLUMN=TARGET (attr:<name> for an attribute, - to skip)"
            )
        if "id" not in targets.values():
            raise ImportRefused("no column maps to id: every row needs the contact's id")
        region = default_region.upper() if default_region else None
        if region is not None:
            _check_region(region)
        return cls(targets=targets, tags=tuple(tags), default_region=region)


def _is_target(target: str) -> bool:
    return (
        target in KNOWN_TARGETS
        or target == SKIP
        or (target.startswith(ATTRIBUTE_PREFIX) and len(target) > len(ATTRIBUTE_PREFIX))
    )


def _check_region(region: str) -> None:
    import phonenumbers

    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ImportRefused(
            f"default region {region!r} is not a country code phonenumbers knows "
            "(ISO 3166 alpha-2, e.g. FR, US, GB)"
        )


def parse_mapping(items: Iterable[str]) -> dict[str, str]:
    """`COLUMN=TARGET` options as a dict.

    Raises:
        ImportRefused: an item without `=`.
    """
    mapping: dict[str, str] = {}
    for item in items:
        column, equals, target = item.rpartition("=")
        if not equals or not column:
            raise ImportRefused(f"--map takes COLUMN=TARGET, got {item!r}")
        mapping[column] = target.strip()
    return mapping


Row = tuple[int, dict[str, Any]]
"""A data row: its line number in the file, and its values by column."""


def read_rows(text: str, file_format: ImportFormat) -> tuple[list[str], Iterator[Row]]:
    """The columns and the rows of a CSV (header line first) or NDJSON text.

    An NDJSON line that is not a JSON object is a row of its own with no values
    but `__error__`, which the import refuses with that reason.

    Raises:
        ImportRefused: a CSV file without a header, or an NDJSON file without an object.
    """
    if file_format == "csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if not reader.fieldnames:
            raise ImportRefused("the CSV file has no header line naming its columns")
        columns = list(reader.fieldnames)
        return columns, ((reader.line_num, row) for row in reader)
    rows = list(_ndjson_rows(text))
    columns = sorted({key for _, row in rows for key in row if key != "__error__"})
    if not columns:
        raise ImportRefused("the NDJSON file has no JSON object with fields")
    return columns, iter(rows)


def _ndjson_rows(text: str) -> Iterator[Row]:
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as error:
            yield line, {"__error__": f"not JSON ({error.msg})"}
            continue
        if not isinstance(value, dict):
            yield line, {"__error__": "not a JSON object"}
        else:
            yield line, value


def _text(value: Any) -> str:
    """A cell as text (NDJSON values may be numbers, booleans or lists of tags)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return TAG_SEPARATOR.join(_text(item) for item in value)
    return str(value).strip()


def profile_of(row: dict[str, Any], mapping: ColumnMap) -> ContactProfile:
    """The contact a row gives (see the module docstring, rules 1 and 2).

    Raises:
        ValueError: a value the model refuses (a `ValidationError`), or consent without
            its source and time.
    """
    if "__error__" in row:
        raise ValueError(row["__error__"])
    values: dict[str, str] = {}
    attributes: dict[str, str] = {}
    for column, target in mapping.targets.items():
        cell = _text(row.get(column))
        if target == SKIP or not cell:
            continue
        if target.startswith(ATTRIBUTE_PREFIX):
            attributes[target.removeprefix(ATTRIBUTE_PREFIX)] = cell
        else:
            values[target] = cell
    plain = ("id", "email", "first_name", "company", "timezone")
    fields: dict[str, Any] = {name: values[name] for name in plain if name in values}
    if "phone" in values:
        fields["phone"] = _phone(values["phone"], mapping.default_region)
    tags = [t.strip() for t in values.get("tags", "").split(TAG_SEPARATOR) if t.strip()]
    fields["tags"] = sorted({*tags, *mapping.tags})
    fields["attributes"] = attributes
    for channel in CHANNELS:
        consent = _consent(values, channel)
        if consent is not None:
            fields[f"{channel}_consent"] = consent
    return ContactProfile.model_validate(fields)


def _phone(value: str, region: str | None) -> str:
    """The phone in E.164 (a national number read in `region`); refused as the model would."""
    try:
        return normalise_phone(value, region=region)
    except ValueError as error:
        raise ValueError(f"phone: {error}") from None


def _consent(values: dict[str, str], channel: str) -> dict[str, Any] | None:
    """The channel's consent change, if the row gives one: only with its source and time."""
    name = f"{channel}_consent"
    given = values.get(name)
    if given is None:
        return None
    if given.lower() not in _TRUE | _FALSE:
        raise ValueError(f"{name}: {given!r} is neither yes nor no (yes/no, true/false, 1/0)")
    missing = [what for part, what in _PROOF if not values.get(f"{name}_{part}")]
    if missing:
        raise ValueError(
            f"{name} is given without its {' and '.join(missing)}: consent is imported only "
            f"with where and when it was given ({name}_source, {name}_at)"
        )
    return {
        "granted": given.lower() in _TRUE,
        "source": values[f"{name}_source"],
        "at": values[f"{name}_at"],
        "text": values.get(f"{name}_text"),
    }


def reason_of(error: ValueError) -> str:
    """A refusal reason in one line: `field: what is wrong`, per issue."""
    if isinstance(error, ValidationError):
        parts = []
        for issue in error.errors(include_url=False):
            where = ".".join(str(part) for part in issue["loc"])
            message = str(issue["msg"]).removeprefix("Value error, ")
            parts.append(f"{where}: {message}" if where else message)
        return "; ".join(parts)
    return str(error)


@dataclass
class Group:
    """Rows of the file that are one contact (rule 3): the first row's id and line, the
    profile folded from all of them, and the later rows (line, id)."""

    line: int
    profile: ContactProfile
    later: list[tuple[int, str]] = field(default_factory=list)

    @property
    def lines(self) -> list[int]:
        """Every line of the group."""
        return [self.line, *(line for line, _ in self.later)]

    def other_ids(self) -> list[tuple[int, str]]:
        """The later rows whose id is not the contact's (each becomes an alias)."""
        seen = {self.profile.id}
        others = []
        for line, contact_id in self.later:
            if contact_id not in seen:
                seen.add(contact_id)
                others.append((line, contact_id))
        return others


def fold_rows(lead: ContactProfile, later: ContactProfile) -> ContactProfile:
    """Two rows of one contact as one profile: `lead`'s fields, `later`'s where `lead` has
    none; both rows' tags; `lead`'s value of an attribute; per channel the later consent."""
    update: dict[str, Any] = {
        name: getattr(later, name)
        for name in ("email", "phone", "first_name", "company", "timezone")
        if getattr(lead, name) is None
    }
    update["tags"] = sorted({*lead.tags, *later.tags})
    update["attributes"] = {**later.attributes, **lead.attributes}
    for channel in CHANNELS:
        name = f"{channel}_consent"
        ours: ConsentUpdate | None = getattr(lead, name)
        theirs: ConsentUpdate | None = getattr(later, name)
        if theirs is not None and (ours is None or _consent_time(theirs) > _consent_time(ours)):
            update[name] = theirs
    return lead.model_copy(update=update)


def _consent_time(consent: ConsentUpdate) -> datetime:
    assert consent.at is not None  # the import takes consent only with its time
    return consent.at


def group_rows(rows: Iterable[Row], mapping: ColumnMap, report: ImportReport) -> list[Group]:
    """The file's contacts (rules 1–3): rows validated, duplicates folded, refusals reported."""
    groups: list[Group] = []
    by_id: dict[str, Group] = {}
    by_email: dict[str, Group] = {}
    for line, row in rows:
        report.rows += 1
        try:
            profile = profile_of(row, mapping)
        except ValueError as error:
            report.refuse(line, reason_of(error))
            continue
        same_id = by_id.get(profile.id)
        same_email = by_email.get(profile.email) if profile.email else None
        if same_id and same_email and same_id is not same_email:
            report.refuse(
                line,
                f"its id is the contact of line {same_id.line} and its email address that of "
                f"line {same_email.line}: fix one of them",
            )
            continue
        group = same_id or same_email
        if group is None:
            group = Group(line, profile)
            groups.append(group)
        else:
            group.profile = fold_rows(group.profile, profile)
            group.later.append((line, profile.id))
            report.count("merged")
            report.merges.append(Merge(line, profile.id, group.profile.id, group.line))
        by_id.setdefault(profile.id, group)
        if group.profile.email:
            by_email.setdefault(group.profile.email, group)
    return groups


_TRACKED = (
    "email", "phone", "first_name", "company", "timezone", "tags", "attributes",
    *(f"{channel}_consent{part}" for channel in CHANNELS for part in ("", "_at", "_source")),
)  # fmt: skip
"""What an import may change of a contact: a contact whose values of these are the same
after the row is `unchanged`."""


def _snapshot(contact: Contact | None) -> tuple[Any, ...] | None:
    if contact is None:
        return None
    return tuple(json.dumps(getattr(contact, name), default=str) for name in _TRACKED)


@dataclass(frozen=True)
class Batch:
    """What the database holds about a batch's ids and email addresses, read in four queries.

    Attributes:
        contacts: The existing contacts of the ids (loaded in the batch's session).
        tombstones: The erased ids, with when.
        aliases: The ids merged into another contact, with that contact.
        owners: The email addresses existing contacts have, with their id.
    """

    contacts: dict[str, Contact]
    tombstones: dict[str, datetime]
    aliases: dict[str, str]
    owners: dict[str, str]

    @classmethod
    async def load(cls, session: AsyncSession, ids: set[str], emails: set[str]) -> Batch:
        """Read what the batch's `ids` and `emails` have in the database."""
        contacts = await session.exec(select(Contact).where(col(Contact.id).in_(ids)))
        erased = await session.exec(
            select(ErasedContact).where(col(ErasedContact.contact_id).in_(ids))
        )
        aliases = await session.exec(select(ContactAlias).where(col(ContactAlias.alias).in_(ids)))
        owners = await session.exec(
            select(Contact.id, Contact.email).where(col(Contact.email).in_(emails))
        )
        return cls(
            contacts={contact.id: contact for contact in contacts.all()},
            tombstones={row.contact_id: row.erased_at for row in erased.all()},
            aliases={row.alias: row.contact_id for row in aliases.all()},
            owners={email: contact_id for contact_id, email in owners.all() if email},
        )

    def may_merge(self, profile: ContactProfile, *, by_domain_name: bool) -> bool:
        """Whether a new id's entry may merge it into an existing contact (`enter_in`)."""
        if profile.email is None:
            return False
        return profile.email in self.owners or (by_domain_name and bool(profile.first_name))


@dataclass(frozen=True)
class Entered:
    """What entering one group did: its outcome, and the contact it landed on."""

    outcome: Outcome
    contact_id: str


@dataclass(frozen=True)
class EntryOptions:
    """How contacts enter: the suppression key, dedupe by domain and name, the audit actor."""

    key: bytes
    match_domain_name: bool
    actor: str


async def _enter_group(
    session: AsyncSession, group: Group, batch: Batch, options: EntryOptions
) -> Entered:
    """Rule 4 for one group.

    A new id whose email address (or domain and name) may match a contact enters through
    `enter_in` (which merges it), in a savepoint: a refused merge leaves nothing behind.
    Any other goes straight to `upsert_in`, where `enter_in` would lead it (the batch's
    reads showed there is no alias and no match), which refuses before it changes anything.

    Raises:
        OperationError: the contact (or the one its id is an alias of) was erased, or its
            email address is another contact's, or it would hold too many tags.
    """
    profile = group.profile
    if profile.id in batch.tombstones:
        raise erased_contact(profile.id, batch.tombstones[profile.id])
    survivor_id = batch.aliases.get(profile.id)
    if survivor_id is not None:
        async with session.begin_nested():
            return await _fill_alias(session, survivor_id, profile)
    existing = batch.contacts.get(profile.id)
    before, updated_at = _snapshot(existing), existing.updated_at if existing else None
    if existing is None and batch.may_merge(profile, by_domain_name=options.match_domain_name):
        async with session.begin_nested():
            entry = await enter_in(
                session,
                profile,
                key=options.key,
                by_domain_name=options.match_domain_name,
                actor=options.actor,
            )
        contact, merged = entry.contact, entry.merged_from is not None
    else:
        contact, merged = await upsert_in(session, profile, key=options.key), False
    if merged:
        outcome: Outcome = "merged"
    elif existing is None:
        outcome = "created"
    else:
        outcome = "updated" if _snapshot(contact) != before else "unchanged"
    _mark(contact, outcome, updated_at)
    return Entered(outcome, contact.id)


async def _fill_alias(session: AsyncSession, survivor_id: str, profile: ContactProfile) -> Entered:
    """A row under an id merged before fills its contact's empty fields (as the merge did)."""
    await lock_contact(session, survivor_id)
    survivor = await contact_in(session, survivor_id)
    before, updated_at = _snapshot(survivor), survivor.updated_at
    await fold_in_lead(session, survivor, profile)
    outcome: Outcome = "updated" if _snapshot(survivor) != before else "unchanged"
    _mark(survivor, outcome, updated_at)
    return Entered(outcome, survivor_id)


def _mark(contact: Contact, outcome: Outcome, updated_at: datetime | None) -> None:
    """A contact written is due for its segments; one unchanged keeps its `updated_at`."""
    if outcome == "unchanged":
        contact.updated_at = updated_at or contact.updated_at
    else:
        contact.segments_due_at = utc_now()


async def _alias_others(
    session: AsyncSession, group: Group, contact_id: str, batch: Batch, options: EntryOptions
) -> list[tuple[int, str]]:
    """Make the later rows' own ids aliases of the group's contact (a merge on entry, as a
    `PUT` of each would do); returns the rows refused, with why."""
    refused = []
    for line, other in group.other_ids():
        if batch.aliases.get(other) == contact_id:
            continue  # merged by an earlier run
        lead = ContactProfile(id=other, email=group.profile.email)
        try:
            if other in batch.tombstones:
                raise erased_contact(other, batch.tombstones[other])
            async with session.begin_nested():
                entry = await enter_in(
                    session,
                    lead,
                    key=options.key,
                    by_domain_name=options.match_domain_name,
                    actor=options.actor,
                )
                if entry.contact.id != contact_id:
                    raise OperationError(
                        f"contact {other!r} is another contact than line {group.line}'s"
                    )
        except OperationError as error:
            refused.append((line, str(error)))
    return refused


Progress = Callable[[int, int], None]
"""Told (rows done, rows in all) after each batch."""
TemporalConnector = Callable[[], Awaitable["Client"]]


@dataclass(frozen=True)
class ImportOptions:
    """How a file is imported.

    Attributes:
        mapping: Columns to fields, attributes and tags.
        entry: Suppression key, dedupe by domain and name, who imports (audit rows).
        trigger: `subscribed`: one such event per created contact (None: no journey).
        dry_run: Validate and count, write nothing.
        task_queue: Where the contact workflows run (for triggers and merges).
        day_seconds: Journey clock of the contact workflows started.
        scoring_file: The scoring model (a merge's moved events are re-scored).
    """

    mapping: ColumnMap
    entry: EntryOptions
    task_queue: str
    day_seconds: int
    scoring_file: Path
    trigger: str | None = None
    dry_run: bool = False

    def __post_init__(self) -> None:
        if self.trigger is not None and self.trigger not in TRIGGERS:
            raise ImportRefused(f"trigger takes {', '.join(TRIGGERS)}, not {self.trigger!r}")

    @classmethod
    def of(
        cls,
        settings: Settings,
        columns: Sequence[str],
        *,
        mapping: Sequence[str],
        tags: Sequence[str],
        default_region: str | None,
        actor: str,
        trigger: str | None,
        dry_run: bool,
    ) -> ImportOptions:
        """The options of an import asked for by the CLI or the API, under `settings`.

        Raises:
            ImportRefused: a mapping names no field, or a column is mapped to nothing.
        """
        return cls(
            mapping=ColumnMap.build(
                columns, parse_mapping(mapping), tags=tags, default_region=default_region
            ),
            entry=EntryOptions(
                key=settings.suppression_key(),
                match_domain_name=settings.dedupe_match_domain_name,
                actor=actor[:100],
            ),
            task_queue=settings.task_queue,
            day_seconds=settings.day_seconds,
            scoring_file=settings.scoring_file,
            trigger=trigger,
            dry_run=dry_run,
        )


async def run_import(
    engine: AsyncEngine,
    rows: Iterable[Row],
    options: ImportOptions,
    *,
    temporal: TemporalConnector | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import the rows (see the module docstring); a bad row never stops the others.

    Args:
        engine: The database.
        rows: The file's rows (`read_rows`).
        options: Mapping, trigger, dry run…
        temporal: Connects to Temporal, when a trigger or a merge needs it.
        progress: Told the rows done after each batch.

    Raises:
        ImportRefused: merges or a trigger without a way to reach Temporal.
        TemporalUnavailable: Temporal could not be reached for the triggers or merges
            (the contacts are imported; running the file again finishes them).
    """
    report = ImportReport(dry_run=options.dry_run)
    groups = group_rows(rows, options.mapping, report)
    created: list[str] = []
    survivors: set[str] = set()
    done = report.rows - len(groups)
    for start in range(0, len(groups), BATCH_ROWS):
        batch = groups[start : start + BATCH_ROWS]
        for group, entered in await _enter_batch(engine, batch, options, report):
            if entered.outcome == "created":
                created.append(entered.contact_id)
            if entered.outcome == "merged" or group.other_ids():
                survivors.add(entered.contact_id)
        done += sum(len(group.lines) for group in batch)
        if progress is not None:
            progress(min(done, report.rows), report.rows)
    if progress is not None and not groups:
        progress(report.rows, report.rows)
    if not options.dry_run:
        await _finish(engine, options, report, created, survivors, temporal)
    return report


async def _enter_batch(
    engine: AsyncEngine, groups: list[Group], options: ImportOptions, report: ImportReport
) -> list[tuple[Group, Entered]]:
    """Enter a batch of groups in one transaction (rolled back for a dry run)."""
    ids = {group.profile.id for group in groups} | {
        other for group in groups for _, other in group.other_ids()
    }
    emails = {group.profile.email for group in groups if group.profile.email}
    entered = []
    async with session_factory(engine)() as session:
        await lock_contacts(session, ids)  # before reading: an erasure is seen, or waits
        batch = await Batch.load(session, ids, emails)
        with session.no_autoflush:  # the batch's rows are written together, at its end
            for group in groups:
                result = await _enter_one(session, group, batch, options.entry, report)
                if result is not None:
                    entered.append((group, result))
        if options.dry_run:
            await session.rollback()
        else:
            await session.commit()
    return entered


async def _enter_one(
    session: AsyncSession,
    group: Group,
    batch: Batch,
    options: EntryOptions,
    report: ImportReport,
) -> Entered | None:
    """Enter a group and its rows' other ids, and report it (None: refused)."""
    try:
        result = await _enter_group(session, group, batch, options)
    except OperationError as error:
        _refuse_group(report, group, str(error))
        return None
    report.count(result.outcome)
    if result.outcome == "merged":
        report.merges.append(Merge(group.line, group.profile.id, result.contact_id))
    if group.other_ids():
        await session.flush()  # the merges find the contact by its email address
        for line, reason in await _alias_others(session, group, result.contact_id, batch, options):
            report.refuse_merged(line, reason)
    return result


def _refuse_group(report: ImportReport, group: Group, reason: str) -> None:
    report.refuse(group.line, reason)
    for line, _ in group.later:
        report.refuse_merged(line, f"folded into line {group.line}, refused: {reason}")


async def _finish(
    engine: AsyncEngine,
    options: ImportOptions,
    report: ImportReport,
    created: list[str],
    survivors: set[str],
    temporal: TemporalConnector | None,
) -> None:
    """Tell the contact workflows of the merges, and trigger the created contacts' journeys."""
    if not (survivors or (options.trigger and created)):
        return
    if temporal is None:
        raise ImportRefused("this import needs Temporal (merges or --trigger), and has none")
    client = await temporal()
    if survivors:
        from rules.scoring import ScoringModel
        from starter.services.dedupe import finish_merges

        scoring = ScoringModel.load(options.scoring_file)
        for survivor in sorted(survivors):
            await finish_merges(
                client,
                engine,
                survivor,
                scoring=scoring,
                task_queue=options.task_queue,
                day_seconds=options.day_seconds,
            )
    if options.trigger and created:
        report.triggered = await _trigger(client, engine, created, options)


async def _trigger(
    client: Client, engine: AsyncEngine, contact_ids: list[str], options: ImportOptions
) -> int:
    """Hand one `<trigger>` event per created contact to the intake (deterministic ids)."""
    from starter.services.intake import accept_events

    now = utc_now()
    accepted = 0
    for start in range(0, len(contact_ids), BATCH_ROWS):
        events = [
            BehaviorEvent(
                event_id=f"import-{options.trigger}-{contact_id}",
                contact_id=contact_id,
                type=str(options.trigger),
                occurred_at=now,
                properties={"source": "import"},
            )
            for contact_id in contact_ids[start : start + BATCH_ROWS]
        ]
        results = await accept_events(
            client,
            engine,
            events,
            task_queue=options.task_queue,
            day_seconds=options.day_seconds,
            suppression_key=options.entry.key,
        )
        accepted += sum(result.status == "accepted" for result in results)
    return accepted
