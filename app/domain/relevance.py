"""A program's shops and iBeacons: where its cards surface on the lock screen (Apple `locations` and `beacons`
with their relevant text) and the Google class's `merchantLocations`. Replaced as a whole; a change is a design
change (every Apple card re-issued through the program fan-out, the Google class patched). Store cards take no
`relevantDate`: Wallet ignores it on them (passes/storecard.py)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.domain.errors import InvalidInput
from app.domain.passupdates import design_changed
from app.domain.programs import lock_program
from app.models import Program
from passes.relevance import MAX_BEACONS, MAX_LOCATIONS, Beacon, Location, check_counts
from passes.strings import LOCALES


def set_relevance(session: Session, program: Program, locations: list[dict], beacons: list[dict]) -> Program:
    """Replace the program's locations and beacons; the cards change only when something did."""
    stored_locations = [_location(n, place) for n, place in enumerate(locations)]
    stored_beacons = [_beacon(n, beacon) for n, beacon in enumerate(beacons)]
    try:
        check_counts(tuple(stored_locations), tuple(stored_beacons))
    except ValueError as error:
        raise InvalidInput("locations" if len(locations) > MAX_LOCATIONS else "beacons", str(error)) from None
    program = lock_program(session, program)
    if (program.locations or []) == stored_locations and (program.beacons or []) == stored_beacons:
        return program
    program.locations, program.beacons = stored_locations, stored_beacons
    design_changed(session, program)
    session.flush()
    return program


def _location(n: int, place: dict) -> dict:
    stored = {"name": place["name"], "latitude": place["latitude"], "longitude": place["longitude"],
              "relevant_text": _texts(f"locations.{n}", place.get("relevant_text"))}
    _check(f"locations.{n}", Location, stored["latitude"], stored["longitude"])
    return stored


def _beacon(n: int, beacon: dict) -> dict:
    stored = {"proximity_uuid": beacon["proximity_uuid"].upper(), "major": beacon.get("major"),
              "minor": beacon.get("minor"), "relevant_text": _texts(f"beacons.{n}", beacon.get("relevant_text"))}
    _check(f"beacons.{n}", Beacon, stored["proximity_uuid"], stored["major"], stored["minor"])
    return stored


def _check(where: str, kind: type, *values) -> None:
    """The library's own checks (ranges, UUID), named after the field for the API's problem answer."""
    try:
        kind(*values)
    except ValueError as error:
        field = str(error).split(" ", 1)[0]
        raise InvalidInput(f"{where}.{field}", str(error)) from None


def _texts(where: str, texts: dict | None) -> dict:
    texts = dict(texts or {})
    for locale, text in texts.items():
        if locale not in LOCALES:
            raise InvalidInput(f"{where}.relevant_text", f"Unknown locale {locale!r}: one of {', '.join(LOCALES)}.")
        _check(where, Location, 0, 0, text)
    return texts


def text_for(texts: dict, locale: str, program_locales: list) -> str | None:
    """The member's language, else the program's first language that has one, else none."""
    for candidate in (locale, *program_locales, *sorted(texts)):
        if texts.get(candidate):
            return texts[candidate]
    return None


def card_locations(program: Program, locale: str) -> tuple[tuple[Location, ...], tuple[Beacon, ...]]:
    """What the member's Apple card carries, its texts in the member's language (at most 10 of each)."""
    locales = list(program.locales or ())
    places = tuple(Location(place["latitude"], place["longitude"], text_for(place["relevant_text"], locale, locales))
                   for place in (program.locations or [])[:MAX_LOCATIONS])
    beacons = tuple(Beacon(beacon["proximity_uuid"], beacon.get("major"), beacon.get("minor"),
                           text_for(beacon["relevant_text"], locale, locales))
                    for beacon in (program.beacons or [])[:MAX_BEACONS])
    return places, beacons


def merchant_locations(program: Program) -> tuple[tuple[float, float], ...]:
    """The Google class's merchantLocations: the same shops, without texts (Google has none there)."""
    return tuple((place["latitude"], place["longitude"]) for place in (program.locations or [])[:MAX_LOCATIONS])
