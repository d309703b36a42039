"""Request and response shapes of a program's locations and iBeacons (app/api/locations.py)."""

from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Dict, Float, List, Nested, String
from apiflask.validators import Length, OneOf, Range, Regexp

from app.api.schemas import WholeNumber
from passes.relevance import MAX_BEACON_NUMBER, MAX_BEACONS, MAX_LOCATIONS, MAX_RELEVANT_TEXT
from passes.strings import LOCALES

UUID_PATTERN = r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"


def _relevant_text():
    return Dict(keys=String(validate=OneOf(LOCALES)), values=String(validate=Length(1, MAX_RELEVANT_TEXT)),
                load_default=dict, metadata={"description": "Locale -> the lock-screen text near it",
                                             "example": {"en": "Coffee time? Show your card.",
                                                         "ja": "カードを見せてポイントをためましょう"}})


class LocationIn(Schema):
    name = String(required=True, validate=Length(1, 120), metadata={"description": "For the merchant's own use"})
    latitude = Float(required=True, allow_nan=False, validate=Range(min=-90, max=90))
    longitude = Float(required=True, allow_nan=False, validate=Range(min=-180, max=180))
    relevant_text = _relevant_text()


class BeaconIn(Schema):
    proximity_uuid = String(required=True, validate=Regexp(UUID_PATTERN, error="Must be a UUID like "
                                                           "E2C56DB5-DFFB-48D2-B060-D0F5A71096E0."))
    major = WholeNumber(validate=Range(min=0, max=MAX_BEACON_NUMBER), allow_none=True)
    minor = WholeNumber(validate=Range(min=0, max=MAX_BEACON_NUMBER), allow_none=True)
    relevant_text = _relevant_text()


class RelevanceIn(Schema):
    locations = List(Nested(LocationIn), load_default=list, validate=Length(max=MAX_LOCATIONS, error=(
        f"At most {MAX_LOCATIONS} locations (Apple Wallet and Google Wallet read no more).")))
    beacons = List(Nested(BeaconIn), load_default=list, validate=Length(max=MAX_BEACONS, error=(
        f"At most {MAX_BEACONS} beacons (Apple Wallet reads no more).")))


class LocationOut(Schema):
    name = String()
    latitude = Float()
    longitude = Float()
    relevant_text = Dict(keys=String(), values=String())


class BeaconOut(Schema):
    proximity_uuid = String()
    major = WholeNumber(allow_none=True)
    minor = WholeNumber(allow_none=True)
    relevant_text = Dict(keys=String(), values=String())


class RelevanceOut(Schema):
    locations = List(Nested(LocationOut))
    beacons = List(Nested(BeaconOut))
