"""Application factory. Config is read by `load_config`, never at import time; tests build a fresh app."""

from __future__ import annotations

import logging

from apiflask import APIFlask
from flask import current_app, g
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm import Session

from app.config import Config, ConfigError, load_config
from app.db import make_engine, make_session_factory
from app.errors import apiflask_error_processor, register_error_handlers


def create_app(config: Config | None = None, **overrides) -> APIFlask:
    config = config or load_config()
    if overrides:
        config = config.with_overrides(**overrides)
    app = APIFlask(__name__, title="Punchpass API", version="1", spec_path="/openapi.json", docs_path="/docs")
    app.config.update(
        SECRET_KEY=config.secret_key or "dev-not-secret",
        TESTING=config.testing,
        MAX_CONTENT_LENGTH=12 * 1024 * 1024,
        AUTO_404_RESPONSE=False,
        VALIDATION_ERROR_STATUS_CODE=422,
        DOCS_FAVICON=None,
        SPEC_FORMAT="json",
        INFO={"description": "Merchant API of Punchpass: programs, members, earn, redeem, checkout. "
                             "Errors are application/problem+json (RFC 9457)."},
    )
    from app.cards import PackagerCache, signer_id
    from workers.relay import RQDispatcher, watch_outbox
    engine = make_engine(config.database_url)
    sessions = make_session_factory(engine)
    signer = _signer(config)
    state = {"config": config, "engine": engine, "sessions": sessions, "signer": signer,
             "signer_id": signer_id(signer), "packagers": PackagerCache(), "dispatch": RQDispatcher(config.redis_url) if config.redis_url else None}
    app.extensions["punchpass"] = state
    watch_outbox(sessions, state)
    _reissue_cards_after_a_settings_change(sessions, config)
    app.json.sort_keys = False
    app.error_processor(apiflask_error_processor)
    register_error_handlers(app)
    app.teardown_appcontext(_close_session)
    _register_blueprints(app)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return app


def check_settings(config: Config | None = None) -> None:
    """Everything `create_app` checks before it touches the database: settings and certificates. Raises
    ConfigError naming the setting."""
    _signer(config or load_config())


def _register_blueprints(app: APIFlask) -> None:
    from app.api import blueprints
    from app.pages import bp as pages_bp
    from app.wallet import bp as wallet_bp
    for blueprint in [*blueprints, wallet_bp, pages_bp]:
        app.register_blueprint(blueprint)


def _signer(config: Config):
    """The dev chain is (re)made when missing, expired or for other ids; real credentials are only read and checked."""
    from app.cards import load_signer
    from passes import CertificateError, make_test_chain
    apple = config.apple
    if apple.dev_chain:
        make_test_chain(apple.pass_cert.parent, pass_type_id=apple.pass_type_id, team_id=apple.team_id)
    try:
        return load_signer(apple)
    except CertificateError as error:
        raise ConfigError(str(error)) from None


def _reissue_cards_after_a_settings_change(sessions, config: Config) -> None:
    """Cards carry PUBLIC_BASE_URL, the pass type id, NFC and personalization settings: when these changed
    since the last start, every card gets a new version and every registered device a push."""
    from app.cards import card_settings_fingerprint
    from app.domain.passupdates import card_settings_changed
    with sessions() as session:
        try:
            changed = card_settings_changed(session, card_settings_fingerprint(config))
            session.commit()
        except IntegrityError:  # another process starting at the same moment did it
            session.rollback()
            return
        except (OperationalError, ProgrammingError) as error:
            raise ConfigError(f"DATABASE_URL: the database is not ready ({type(error).__name__}); "
                              "run `punchpass db upgrade`") from None
    if changed:
        logging.getLogger(__name__).info("card settings changed since the last start: every card is re-issued")


def app_config() -> Config:
    return current_app.extensions["punchpass"]["config"]


def db_session() -> Session:
    """One session per request or app context; closed (and rolled back if uncommitted) at teardown."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["punchpass"]["sessions"]()
    return g.db_session


def _close_session(_exc) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()
