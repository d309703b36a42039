"""The `punchpass` command. Every command reads settings through `load_config`; a bad setting is one line on
stderr naming it, and exit status 2.

An entry point, like wsgi.py: it wires app/ and workers/ together, so it may import both. Each command imports
what it needs inside its function, so `punchpass dev-certs` does not load Flask, rq and the models first."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from app.config import ConfigError, load_config


def main() -> None:
    try:
        cli(standalone_mode=True)
    except ConfigError as error:
        click.echo(f"punchpass: configuration error: {error}", err=True)
        sys.exit(2)


@click.group()
def cli() -> None:
    """Punchpass: loyalty cards in Apple Wallet and Google Wallet."""


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply the migrations to DATABASE_URL (idempotent)."""
    from app.migrate import upgrade_database
    upgrade_database(load_config().database_url)
    click.echo("database is up to date")


@cli.command("dev-certs")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the chain (default: instance/dev-certs).")
@click.option("--force", is_flag=True, help="Make a new chain even if a valid one exists.")
def dev_certs(out_dir: Path | None, force: bool) -> None:
    """Write a local test chain shaped like Apple's for APPLE_PASS_TYPE_ID / APPLE_TEAM_ID."""
    from passes import make_test_chain
    config = load_config()
    if out_dir is None and not config.apple.dev_chain:
        raise click.UsageError("APPLE_PASS_CERT points at real credentials; give --out for a test chain")
    out_dir = out_dir or config.apple.pass_cert.parent
    paths = make_test_chain(out_dir, pass_type_id=config.apple.pass_type_id, team_id=config.apple.team_id,
                            force=force)
    click.echo(json.dumps({name: str(path) for name, path in paths.items()}, indent=2))


@cli.command("create-merchant")
@click.option("--name", required=True)
def create_merchant(name: str) -> None:
    """Create a merchant and print its id and an admin API key (shown only this once)."""
    from app.auth import issue_api_key
    from app.models import Merchant
    with _session() as session:
        merchant = Merchant(name=name)
        session.add(merchant)
        session.flush()
        key = issue_api_key(session, merchant.id, "admin")
        session.commit()
        click.echo(json.dumps({"merchant_id": merchant.id, "api_key": key}))


@cli.command("create-api-key")
@click.option("--merchant", "merchant_id", required=True, type=int)
@click.option("--scope", type=click.Choice(["admin", "pos"]), default="pos", show_default=True)
@click.option("--store", default=None, help="Which shop's till gets the key (a label, printed back).")
def create_api_key(merchant_id: int, scope: str, store: str | None) -> None:
    """Print a new API key for a merchant (shown only this once) and its id (for `revoke-api-key`)."""
    from app.auth import new_api_key
    from app.models import Merchant
    with _session() as session:
        if session.get(Merchant, merchant_id) is None:
            raise click.ClickException(f"no merchant {merchant_id}")
        key, row = new_api_key(session, merchant_id, scope, store)
        session.commit()
        click.echo(json.dumps({"api_key": key, "id": row.id, **({"store": store} if store else {})}))


@cli.command("create-user")
@click.option("--merchant", "merchant_id", required=True, type=int)
@click.option("--email", required=True)
@click.option("--role", type=click.Choice(["owner", "staff"]), default="owner", show_default=True)
def create_user_command(merchant_id: int, email: str, role: str) -> None:
    """Print a dashboard login with a one-time password (changed at first sign-in on /dashboard)."""
    from app.domain.errors import DomainError
    from app.domain.users import create_user
    with _session() as session:
        try:
            user, password = create_user(session, merchant_id, email, role)
        except DomainError as error:
            raise click.ClickException(str(error)) from None
        session.commit()
        click.echo(json.dumps({"user_id": user.id, "email": user.email, "password": password}))


@cli.command("revoke-api-key")
@click.option("--id", "key_id", required=True, type=int, help="The key's id, as create-api-key printed it.")
def revoke_api_key_command(key_id: int) -> None:
    """Revoke an API key: every process refuses it from now on (401)."""
    from app.api_key_cache import NOT_ANNOUNCED
    from app.auth import revoke_api_key
    with _session() as session:
        key = revoke_api_key(session, key_id)
        if key is None:
            raise click.ClickException(f"no API key {key_id}")
        session.commit()
        if NOT_ANNOUNCED in session.info:
            raise click.ClickException(session.info.pop(NOT_ANNOUNCED))
        click.echo(json.dumps({"id": key.id, "merchant_id": key.merchant_id, "revoked_at": key.revoked_at.isoformat()}))


@cli.command("rotate-card-link")
@click.option("--member", "member_id", required=True, type=int)
def rotate_card_link_command(member_id: int) -> None:
    """Give a member a new card link and checkout code (the old ones stop working; the card updates itself)."""
    from app.api.present import card_link
    from app.domain.errors import NotFound
    from app.domain.members import rotate_card_link
    with _session() as session:
        try:
            member = rotate_card_link(session, member_id)
        except NotFound:
            raise click.ClickException(f"no member {member_id}") from None
        session.commit()
        link = card_link(load_config().public_base_url, member)
        click.echo(json.dumps({"member_id": member.id, "apple_pass_url": link, "barcode_value": member.barcode_token}))


@cli.group()
def ledger() -> None:
    """Ledger checks."""


@ledger.command("verify")
def ledger_verify() -> None:
    """Recompute every balance (and held points) from the ledger and from the open lots; exit 1 on a mismatch."""
    from app.domain.ledger import verify_balances
    with _session() as session:
        mismatches = verify_balances(session)
    for row in mismatches:
        click.echo(f"member {row['member_id']}: {row['problem']}")
    if mismatches:
        click.echo(f"{len(mismatches)} balance(s) do not match the ledger or the open lots", err=True)
        sys.exit(1)
    click.echo("every balance matches the ledger and the open lots")


@cli.group()
def outbox() -> None:
    """Deliveries waiting, retrying or dead."""


@outbox.command("status")
@click.option("--limit", default=20, show_default=True, help="Dead letters to list.")
def outbox_status(limit: int) -> None:
    """Counts of pending, retrying and dead events, and the most recent dead letters with their errors."""
    from app.domain.outbox import outbox_summary
    with _session() as session:
        summary = outbox_summary(session, limit)
    click.echo(json.dumps(summary, indent=2, default=str))


@cli.command("doctor")
def doctor() -> None:
    """A short health report: settings (without secrets), certificate expiry, outbox counts. Certificates that
    expire within 30 days get a WARNING line."""
    from app import check_settings
    from app.domain.outbox import outbox_summary
    from app.health import certificate_expiries, expiry_warnings, settings_summary
    from app.models import utcnow
    config, now = load_config(), utcnow()
    signer = check_settings(config)
    click.echo("settings")
    for name, value in settings_summary(config).items():
        click.echo(f"  {name:<24}{value}")
    click.echo("certificates")
    for cert in certificate_expiries(signer):
        click.echo(f"  {cert.name:<24}expires {cert.not_valid_after:%Y-%m-%d} UTC ({cert.days_left(now)} days)")
    with _session() as session:
        counts = outbox_summary(session, dead_limit=0, lease_limit=0)
    click.echo("outbox")
    click.echo("  " + ", ".join(f"{name} {counts[name]}" for name in ("waiting", "leased", "retrying", "dead")))
    for warning in expiry_warnings(signer, now):
        click.echo(f"WARNING: {warning}")


@outbox.command("retry-dead")
def outbox_retry_dead() -> None:
    """Give every dead letter a fresh set of attempts (after fixing what killed them)."""
    from app.domain.outbox import revive_dead_events
    with _session() as session:
        count = revive_dead_events(session)
        session.commit()
    click.echo(f"{count} dead event(s) will be delivered again")


@cli.command("seed-demo")
def seed_demo() -> None:
    """Create a demo merchant, program and member once; print their ids (and a key when newly made)."""
    from app.seed import seed_demo_program
    with _session() as session:
        click.echo(json.dumps(seed_demo_program(session, load_config().public_base_url)))


@cli.command("serve")
@click.option("--embedded-worker/--no-embedded-worker", default=None,
              help="Deliver background jobs in-process (default: on when REDIS_URL is unset).")
def serve(embedded_worker: bool | None) -> None:
    """The development server on HOST:PORT. Production: gunicorn wsgi:app."""
    from app import create_app
    from workers.embedded import start_embedded_worker
    from workers.queue import connect_rq
    config = load_config()
    app = create_app(config)
    if embedded_worker if embedded_worker is not None else not config.redis_url:
        start_embedded_worker(app)
    else:
        connect_rq(app)
    app.run(host=config.host, port=config.port, threaded=True, use_reloader=False)


@cli.command("worker")
def worker() -> None:
    """An rq worker on REDIS_URL for every Punchpass queue."""
    from workers.queue import run_worker
    run_worker(load_config())


# --- scheduled jobs, bulk import and export (issue 11) ---

@cli.group()
def jobs() -> None:
    """Scheduled jobs (retention, and the loyalty engine's sweeps)."""


@jobs.command("run-due")
@click.option("--as-of", "as_of", default=None, metavar="ISO-8601",
              help="Run what is due at this instant (default now); a time without a zone is UTC.")
def jobs_run_due(as_of: str | None) -> None:
    """Run every scheduled job due at that instant, once (a job another worker holds is skipped). Jobs are
    idempotent: running them again changes nothing. Exit 1 when a job failed."""
    from app import create_app
    from app.services import services
    from workers.scheduled import run_due
    instant, app = _instant(as_of), create_app(load_config())
    try:
        results = run_due(app, instant)
    finally:
        services(app).engine.dispose()
    failed = [name for name, result in results.items() if isinstance(result, Exception)]
    click.echo(json.dumps({name: str(result) if name in failed else result for name, result in results.items()},
                          default=str))
    if failed:
        click.echo(f"failed: {', '.join(failed)}", err=True)
        sys.exit(1)


@jobs.command("status")
def jobs_status() -> None:
    """Every scheduled job: next run, last run (and the instant it ran as of), who holds it, its last error."""
    from app.domain.schedule import schedule_summary
    with _session() as session:
        click.echo(json.dumps(schedule_summary(session), indent=2, default=str))


@cli.command("import-members")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--program", "program_id", required=True, type=int)
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(1, 10_000))
def import_members_command(file: Path, program_id: int, batch_size: int) -> None:
    """Import members from a UTF-8 CSV with a header row: external_id,name,email,phone,locale,points,tier_override
    (only name required). Streams the file with a progress bar; points become opening balances (`adjust`,
    reason "import"). Re-running is safe: rows whose external_id the program has are skipped. A bad line is
    reported (line number and reason) and the import goes on; exit 1 if there was any."""
    from app.domain.errors import InvalidInput
    from app.member_csv import import_file
    with _session() as session:
        program = _program(session, program_id)
        try:
            result = import_file(session, program, file, batch_size=batch_size,
                                 on_bad_line=lambda bad: click.echo(f"line {bad.line}: {bad.reason}", err=True))
        except InvalidInput as error:
            raise click.ClickException(f"{file}: {error}") from None
    click.echo(json.dumps({"created": result.created, "skipped": result.skipped, "bad_lines": len(result.bad)}))
    if result.bad:
        sys.exit(1)


@cli.command("export-members")
@click.option("--program", "program_id", required=True, type=int)
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CSV file to write (default: standard output).")
def export_members_command(program_id: int, out_file: Path | None) -> None:
    """Write the program's members as CSV: the import columns plus id,points_balance,tier,serial_number,
    created_at (streamed; progress on stderr)."""
    from app.member_csv import export_file
    with _session() as session:
        program = _program(session, program_id)
        if out_file is None:
            export_file(session, program, sys.stdout)
            return
        with out_file.open("w", encoding="utf-8", newline="") as out:
            count = export_file(session, program, out)
    click.echo(json.dumps({"exported": count, "file": str(out_file)}), err=True)


def _program(session, program_id: int):
    from app.models import Program
    program = session.get(Program, program_id)
    if program is None:
        raise click.ClickException(f"no program {program_id}")
    return program


def _instant(text: str | None):
    from datetime import datetime, timezone
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO-8601 date and time", param_hint="--as-of") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


class _session:
    """A session on DATABASE_URL for one command, without a web app."""

    def __enter__(self):
        from app.api_key_cache import announce_revocations
        from app.db import make_engine, make_session_factory
        config = load_config()
        self.engine = make_engine(config.database_url)
        sessions = make_session_factory(self.engine)
        announce_revocations(sessions, config.redis_url)
        self.session = sessions()
        return self.session

    def __exit__(self, *exc):
        self.session.close()
        self.engine.dispose()
