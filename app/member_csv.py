"""`punchpass import-members` and `export-members`: CSV files streamed a batch at a time, with a progress bar on
stderr. The rows' meaning (checks, idempotency on external_id, opening balances) is app/domain/member_import.py;
this module reads and writes the files and commits once per batch, so a crash loses at most the batch in
flight, and re-running the file picks up where it stopped."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.domain.errors import InvalidInput
from app.domain.member_import import (
    EXPORT_COLUMNS,
    BadLine,
    ImportResult,
    NewMember,
    check_header,
    export_rows,
    import_members,
    parse_row,
)
from app.models import Member, Program, utcnow

BATCH_SIZE = 1000
ATTEMPTS = 3  # a batch meeting a unique constraint (a random code taken, a parallel import) is tried again


def import_file(session: Session, program: Program, path: Path, *, batch_size: int = BATCH_SIZE,
                on_bad_line: Callable[[BadLine], None] = lambda bad: None, console: Console | None = None
                ) -> ImportResult:
    """Import every row of the UTF-8 CSV at `path` into `program`, committing each batch. Bad lines are passed
    to `on_bad_line` as they are found, and the import goes on."""
    total = ImportResult()
    with path.open("rb") as raw, _progress(console) as progress:
        task = progress.add_task("importing", total=path.stat().st_size)
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")
        reader = csv.DictReader(text)
        check_header(reader.fieldnames)
        for rows, bad in _batches(program, reader, batch_size):
            result = _import_batch(session, program, rows)
            result.bad = sorted(bad + result.bad)
            for line in result.bad:
                on_bad_line(line)
            total.add(result)
            progress.update(task, completed=raw.tell())
    return total


def export_file(session: Session, program: Program, out: TextIO, console: Console | None = None) -> int:
    """Write the program's members to `out` as CSV (EXPORT_COLUMNS); returns how many."""
    count = session.scalar(select(func.count()).where(Member.program_id == program.id, Member.deleted_at.is_(None)))
    writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    written = 0
    with _progress(console) as progress:
        task = progress.add_task("exporting", total=count)
        for row in export_rows(session, program):
            writer.writerow(row)
            written += 1
            if written % 1000 == 0:
                progress.update(task, completed=written)
        progress.update(task, completed=written)
    session.rollback()  # ends the read (and its server-side cursor)
    return written


def _batches(program: Program, reader: csv.DictReader, size: int) -> Iterator[tuple[list[NewMember], list[BadLine]]]:
    """Checked rows `size` at a time, with the bad lines among them (line numbers as an editor shows them; a
    quoted cell may span lines, and a row is numbered by its first)."""
    rows, bad = [], []
    line = reader.line_num + 1
    for raw in reader:
        try:
            if any("\ufffd" in value for value in raw.values() if isinstance(value, str)):
                raise InvalidInput("line", "Not valid UTF-8.")
            rows.append(parse_row(program, line, raw))
        except InvalidInput as error:
            bad.append(BadLine(line, f"{error.field}: {error}"))
        line = reader.line_num + 1
        if len(rows) + len(bad) >= size:
            yield rows, bad
            rows, bad = [], []
    if rows or bad:
        yield rows, bad


def _import_batch(session: Session, program: Program, rows: list[NewMember]) -> ImportResult:
    for attempt in range(ATTEMPTS):
        try:
            result = import_members(session, program, rows, utcnow())
            session.commit()
            return result
        except IntegrityError:
            session.rollback()
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _progress(console: Console | None) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeRemainingColumn(),
                    console=console or Console(stderr=True), transient=False)
