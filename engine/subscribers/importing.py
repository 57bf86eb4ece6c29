"""`funnel subscribers import`: people from a CSV file into a funnel, through the same add_lead as a signup.

Decisions (docs/subscribers.md):
- Imported people count as confirmed by default: the importer vouches for the consent
  they gave elsewhere, so a `confirmed` event is recorded with the enrollment and no
  confirmation email goes out. With `double_opt_in` they get the confirmation email.
- A re-import changes nothing twice: an address already in the funnel only has its
  details updated from the file's non-empty cells; no second consent record, confirmed
  event or answer is written for it.
- Rows are committed 500 to a transaction: one transaction per row costs an fsync each
  (SQLite: ~20x slower), one for the whole file would hold the write lock for minutes
  and lose everything on one failure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from engine.sequences.plan import Plan
from engine.store import queries, reports, subscribers, tallies
from engine.store.db import DbConnection, DbEngine
from engine.store.rows import email_hash, normalize_email
from engine.subscribers.csvleads import CsvLeads, Row
from engine.subscribers.leads import Lead, Proof, add_lead, name_columns

BATCH = 500


@dataclass
class ImportCounts:
    """What an import did, row by row."""

    added: int = 0  # enrolled in the funnel now (new subscribers, or known ones new to it)
    already: int = 0  # already in the funnel (or earlier in the same file): details updated
    suppressed: int = 0  # on the suppression list, or marked unsubscribed/bounced in the file
    bad: int = 0  # skipped for a problem that was reported

    def summary(self) -> str:
        """'N added, M already in the funnel, K suppressed, B bad rows'."""
        return (f"{self.added:,} added, {self.already:,} already in the funnel, "
                f"{self.suppressed:,} suppressed, {self.bad:,} bad row{'s' if self.bad != 1 else ''}")


@dataclass
class Importer:
    """Imports one checked file into `plan`'s funnel on `db_engine`."""

    db_engine: DbEngine
    plan: Plan
    source: CsvLeads
    confirmed: bool = True  # False: the funnel's confirmation email goes out (--double-opt-in)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    on_problem: Callable[[str], None] = lambda line: None
    on_progress: Callable[[int], None] = lambda line: None  # the last physical line handled

    def run(self) -> ImportCounts:
        """Import every row; bad rows are reported through `on_problem` and skipped."""
        counts = ImportCounts()
        seen: set[str] = set()
        batch: list[Row] = []
        for row in self.source.rows():
            if row.problems:
                counts.bad += 1
                for problem in row.problems:
                    self.on_problem(problem)
            elif row.skipped:
                counts.suppressed += 1
            else:
                batch.append(row)
            if len(batch) >= BATCH:
                self._write(batch, counts, seen)
                self.on_progress(row.line)
                batch = []
        self._write(batch, counts, seen)
        self.on_progress(self.source.lines)
        return counts

    def _write(self, batch: list[Row], counts: ImportCounts, seen: set[str]) -> None:
        if not batch:
            return
        leads = [row.lead for row in batch if row.lead is not None]
        now = self.clock()
        proof = Proof(kind="import", form=self.source.path.name)
        with self.db_engine.begin() as conn:
            blocked = queries.suppressed_hashes(conn, (email_hash(lead.email) for lead in leads))
            keys = {lead.email: normalize_email(lead.email)[1] for lead in leads}
            enrolled = reports.enrolled_keys(conn, self.plan.funnel, keys.values())
            for lead in leads:
                key = keys[lead.email]
                if email_hash(lead.email) in blocked:
                    counts.suppressed += 1
                elif key in enrolled or key in seen:
                    subscribers.upsert_subscriber(conn, _values(lead), now)
                    counts.already += 1
                else:
                    outcome = self._add(conn, lead, proof, now)
                    setattr(counts, outcome, getattr(counts, outcome) + 1)
                seen.add(key)
            # The batch's stats changes summed at once: an import of a million, with no daemon
            # running to fold them, would leave millions of rows for every read to add up.
            tallies.fold(conn)

    def _add(self, conn: DbConnection, lead: Lead, proof: Proof, now: datetime) -> str:
        """Enroll one new lead: 'added', or 'already'/'suppressed' when a signup got there first."""
        added = add_lead(conn, self.plan, replace(lead, answers={}), proof, now)
        if added.subscriber_id is None:
            return "suppressed"
        if not added.new_enrollment:
            return "already"
        funnel = self.plan.funnel
        # Answers and the confirmation belong to this new enrollment only: an enrollment
        # that existed already keeps its own history, so a re-import adds nothing to it.
        for question, answer in lead.answers.items():
            queries.record_event(conn, added.subscriber_id, "answer", now, funnel=funnel,
                                 question=question, answer=answer)
        if self.confirmed and self.plan.double_opt_in:
            queries.record_event(conn, added.subscriber_id, "confirmed", now, funnel=funnel,
                                 data={"by": "import", "file": self.source.path.name})
        return "added"


def _values(lead: Lead) -> dict[str, object]:
    return {"email": lead.email, "name": lead.name, **name_columns(lead), "locale": lead.locale,
            "timezone": lead.timezone,
            "source": lead.source, "fields": dict(lead.fields), **lead.utm}

