"""Application factory. Config is read by `load_config`, never at import time; tests build a fresh app.

The app never imports `workers/`: the entry points (`wsgi.py`, `app/cli.py`) connect the outbox relay to rq or
to the embedded worker (`services(app).relay.connect(...)`)."""

from __future__ import annotations

import logging
import re

from apiflask import APIFlask
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.middleware.proxy_fix import ProxyFix

from app.api import blueprints as api_blueprints
from app.api.docs import bp as docs_bp
from app.api.openapi import document_api
from app.api_key_cache import ApiKeyCache, announce_revocations
from app.card_assets import CardAssetsCache
from app.cards import card_settings_fingerprint, load_signer, signer_id
from app.config import DEV_SECRET_KEY, Config, ConfigError, load_config
from app.dashboard import access as _dashboard_access  # noqa: F401  (each module adds its /dashboard routes)
from app.dashboard import bp as dashboard_bp
from app.dashboard import campaigns as _dashboard_campaigns  # noqa: F401
from app.dashboard import challenges as _dashboard_challenges  # noqa: F401
from app.dashboard import members as _dashboard_members  # noqa: F401
from app.dashboard import offers as _dashboard_offers  # noqa: F401
from app.dashboard import overview as _dashboard_overview  # noqa: F401
from app.dashboard import programs as _dashboard_programs  # noqa: F401
from app.dashboard import sign_in as _dashboard_sign_in  # noqa: F401
from app.db import make_engine, make_session_factory
from app.domain.fcm import unreadable_credentials
from app.domain.passupdates import card_settings_changed, catch_up_update_tags
from app.errors import apiflask_error_processor, register_error_handlers
from app.google.routes import bp as google_bp
from app.headers import add_security_headers
from app.health import warn_about_expiring_certificates
from app.logs import mask_dev_server_access_log
from app.metrics import install_metrics
from app.models import utcnow
from app.pages import checkout as _checkout_page  # noqa: F401  (adds /checkout to the pages blueprint)
from app.pages import join as _join_page  # noqa: F401  (adds /join/<slug>, /cards/<token>, the badges)
from app.pages import member as _member_page  # noqa: F401  (adds lost-card recovery and /member)
from app.pages import survey as _survey_page  # noqa: F401  (adds /join/<slug>/survey/<token>)
from app.pages.routes import bp as pages_bp
from app.ratelimits import install_rate_limits
from app.relay import OutboxRelay
from app.services import EXTENSION, Services, close_db_session
from app.untrusted import URL_CONVERTERS
from app.wallet.routes import bp as wallet_bp
from passes import CertificateError, PassSigner, make_test_chain

log = logging.getLogger(__name__)
# The pass library names its arguments; the operator knows them as these settings.
_SETTINGS = {"cert": "APPLE_PASS_CERT", "key": "APPLE_PASS_KEY", "wwdr": "APPLE_WWDR_CERT",
             "password": "APPLE_PASS_KEY_PASSWORD", "pass_type_id": "APPLE_PASS_TYPE_ID", "team_id": "APPLE_TEAM_ID"}
_SETTING_NAMES = re.compile(r"`(%s)`" % "|".join(_SETTINGS))


def create_app(config: Config | None = None, **overrides) -> APIFlask:
    config = config or load_config()
    if overrides:
        config = config.with_overrides(**overrides)
    app = APIFlask(__name__, title="Punchpass API", version="1", spec_path="/openapi.json", docs_path=None)
    app.config.update(
        SECRET_KEY=config.secret_key or DEV_SECRET_KEY,
        TESTING=config.testing,
        MAX_CONTENT_LENGTH=12 * 1024 * 1024,
        AUTO_404_RESPONSE=False,  # routes list their errors themselves (app/api/openapi.py)
        AUTO_VALIDATION_ERROR_RESPONSE=False,
        AUTO_AUTH_ERROR_RESPONSE=False,
        VALIDATION_ERROR_STATUS_CODE=422,
        DOCS_FAVICON=None,
        SPEC_FORMAT="json",
        INFO={"description": "Merchant API of Punchpass: programs, members, earn, redeem, checkout. "
                             "Errors are application/problem+json (RFC 9457)."},
    )
    if config.trusted_proxies:  # request.remote_addr (logs, rate limits) becomes the client behind them
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=config.trusted_proxies)
    signer = _signer(config)
    install_metrics(app)  # first of the request hooks, so the rate limiter's early answers are timed too
    engine = make_engine(config.database_url, hide_parameters=not config.testing, pool_size=config.database_pool_size)
    sessions = make_session_factory(engine)
    announce_revocations(sessions, config.redis_url)
    api_keys = ApiKeyCache(config.redis_url)
    limiter = install_rate_limits(app, config, api_keys)
    app.extensions[EXTENSION] = Services(config=config, engine=engine, sessions=sessions, signer=signer,
                                         signer_id=signer_id(signer), card_assets=CardAssetsCache(),
                                         relay=OutboxRelay(sessions), limiter=limiter, api_keys=api_keys)
    _reissue_cards_after_a_settings_change(sessions, config)
    _warn_about_unreadable_fcm_credentials(sessions, config)
    app.json.sort_keys = False
    app.error_processor(apiflask_error_processor)
    app.spec_processor(document_api)
    register_error_handlers(app)
    app.teardown_appcontext(close_db_session)
    app.after_request(add_security_headers)
    app.url_map.converters.update(URL_CONVERTERS)  # before any route is added: rules bind converters then
    for blueprint in [*api_blueprints, docs_bp, wallet_bp, pages_bp, dashboard_bp, google_bp]:
        app.register_blueprint(blueprint)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    mask_dev_server_access_log()
    warn_about_expiring_certificates(signer, utcnow())
    return app


def check_settings(config: Config | None = None) -> PassSigner:
    """Everything `create_app` checks before it touches the database: settings and certificates. Raises
    ConfigError naming the setting; returns the signer the certificates make."""
    return _signer(config or load_config())


def _signer(config: Config) -> PassSigner:
    """The dev chain is (re)made when missing, expired or for other ids; real credentials are only read and checked."""
    apple = config.apple
    if apple.dev_chain:
        make_test_chain(apple.pass_cert.parent, pass_type_id=apple.pass_type_id, team_id=apple.team_id)
    try:
        return load_signer(apple)
    except CertificateError as error:
        raise ConfigError(_SETTING_NAMES.sub(lambda name: _SETTINGS[name[1]], str(error))) from None


def _reissue_cards_after_a_settings_change(sessions: sessionmaker[Session], config: Config) -> None:
    """Cards carry PUBLIC_BASE_URL, the pass type id, NFC and personalization settings: when these changed
    since the last start, every card gets a new version and every registered device a push."""
    with sessions() as session:
        try:
            catch_up_update_tags(session)  # after a restore, new update tags must start above the stored ones
            session.commit()
            changed = card_settings_changed(session, card_settings_fingerprint(config))
            session.commit()
        except IntegrityError:  # another process starting at the same moment did it
            session.rollback()
            return
        except (OperationalError, ProgrammingError) as error:
            first_line = str(error.orig).strip().splitlines()[0] if error.orig else type(error).__name__
            raise ConfigError(f"DATABASE_URL: the database is not ready ({first_line}); is it running, and "
                              "did `punchpass db upgrade` run?") from None
    if changed:
        log.info("card settings changed since the last start: every card is re-issued")


def _warn_about_unreadable_fcm_credentials(sessions: sessionmaker[Session], config: Config) -> None:
    """Merchants' Firebase keys are sealed with FCM_CREDENTIALS_KEY (or SECRET_KEY): after that setting changed,
    their app notifications fail until they upload again. Said at start, not at the first notification."""
    with sessions() as session:
        merchants = unreadable_credentials(session, config.fcm.credentials_secret)
    if merchants:
        log.error("FCM_CREDENTIALS_KEY: the FCM credentials of %d merchant(s) (ids %s) do not open with the current "
                  "key (FCM_CREDENTIALS_KEY, or SECRET_KEY when unset, changed since they were uploaded); restore "
                  "the old value or have them upload again (PUT /api/v1/fcm/credentials)", len(merchants),
                  ", ".join(map(str, merchants[:20])))
