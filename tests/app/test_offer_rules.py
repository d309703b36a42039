"""The offer rules as a merchant reads them, at their edges: precedence, ties, windows, thresholds, no history.
Pure functions over facts: no database."""

from datetime import datetime, timedelta, timezone

import pytest

from app.domain.offers import (
    DEFAULT,
    DEFAULT_PRIORITY,
    NEXT_TIER,
    TOP_CATEGORY,
    WE_MISS_YOU,
    Facts,
    assess,
    choose,
    describe,
    render,
)
from app.models import OfferTemplate

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
_ids = iter(range(1, 1000))


def template(kind: str, priority: int | None = None, active: bool = True, **settings) -> OfferTemplate:
    return OfferTemplate(id=next(_ids), program_id=1, name=kind, kind=kind, active=active, settings=settings,
                         priority=DEFAULT_PRIORITY[kind] if priority is None else priority,
                         texts={"en": "text"}, labels={})


def facts(counts=None, last=None, next_tier=None, window=90) -> Facts:
    return Facts(NOW, {window: counts or {}}, last, next_tier)


def test_the_most_bought_category_wins_and_the_reason_says_how_many_of_how_many():
    fit = assess(template(TOP_CATEGORY), facts({"coffee": 7, "tea": 3, "cake": 1, None: 1}))
    assert fit.fits and fit.shown == {"category": "coffee"}
    assert fit.why == "most-bought category: coffee, 7 of 12 items in 90 days"


def test_equal_counts_go_to_the_alphabetically_first_category_whatever_the_order():
    for counts in ({"tea": 4, "coffee": 4}, {"coffee": 4, "tea": 4}):
        assert assess(template(TOP_CATEGORY), facts(counts)).shown == {"category": "coffee"}


def test_min_purchases_is_inclusive():
    assert assess(template(TOP_CATEGORY, min_purchases=3), facts({"coffee": 3})).fits
    fit = assess(template(TOP_CATEGORY, min_purchases=4), facts({"coffee": 3}))
    assert not fit.fits and fit.why.endswith("the offer needs 4")


def test_a_category_list_limits_the_offer_to_those_categories():
    fit = assess(template(TOP_CATEGORY, categories=["tea", "cake"]), facts({"coffee": 9, "tea": 2, "cake": 1}))
    assert fit.shown == {"category": "tea"}
    assert not assess(template(TOP_CATEGORY, categories=["juice"]), facts({"coffee": 9})).fits


def test_uncategorised_items_count_in_the_total_but_are_never_the_top_category():
    fit = assess(template(TOP_CATEGORY), facts({None: 10}))
    assert not fit.fits and fit.why == "no purchase in any category in the last 90 days"


def test_no_history_no_offer_unless_the_merchant_has_a_default():
    empty = facts()
    assert choose([template(TOP_CATEGORY), template(WE_MISS_YOU), template(NEXT_TIER)], empty)[0] is None
    fallback = template(DEFAULT)
    assert choose([template(TOP_CATEGORY), fallback], empty)[0].template is fallback


@pytest.mark.parametrize("days_ago, fits", [(29, False), (30, True), (31, True)])
def test_we_miss_you_from_exactly_n_days_without_a_purchase(days_ago, fits):
    fit = assess(template(WE_MISS_YOU, days=30), facts(last=NOW - timedelta(days=days_ago)))
    assert fit.fits is fits
    assert fit.why == f"last purchase {days_ago} days ago (the offer is for 30 days or more without one)"


def test_we_miss_you_one_second_short_of_n_days_does_not_fit():
    assert not assess(template(WE_MISS_YOU, days=30), facts(last=NOW - timedelta(days=30) + timedelta(seconds=1))).fits


def test_a_member_who_never_bought_is_not_missed():
    assert assess(template(WE_MISS_YOU), facts()).why == "no purchase yet"


@pytest.mark.parametrize("needed, fits", [(100, True), (101, False), (1, True)])
def test_next_tier_within_the_points_given(needed, fits):
    fit = assess(template(NEXT_TIER, within_points=100), facts(next_tier=("Gold", needed)))
    assert fit.fits is fits
    assert fit.shown == {"tier": "Gold", "points": needed}


def test_no_higher_tier_no_top_up_offer():
    assert not assess(template(NEXT_TIER), facts()).fits


def test_lower_priority_number_goes_first_then_the_older_template():
    lapsed = facts({"coffee": 5}, last=NOW - timedelta(days=60))
    category, missed = template(TOP_CATEGORY, priority=5), template(WE_MISS_YOU, priority=5)
    assert choose([missed, category], lapsed)[0].template is category  # same priority: the lower id
    assert choose([template(TOP_CATEGORY), template(WE_MISS_YOU)], lapsed)[0].template.kind == WE_MISS_YOU


def test_an_inactive_template_is_never_chosen_nor_listed():
    fallback = template(DEFAULT, active=False)
    chosen, evaluated = choose([fallback], facts())
    assert chosen is None and evaluated == []


def test_every_template_gets_a_verdict_in_precedence_order():
    templates = [template(DEFAULT), template(TOP_CATEGORY), template(WE_MISS_YOU)]
    chosen, evaluated = choose(templates, facts({"tea": 1}))
    assert [fit.template.kind for fit in evaluated] == [WE_MISS_YOU, TOP_CATEGORY, DEFAULT]
    assert [fit.fits for fit in evaluated] == [False, True, True] and chosen.template.kind == TOP_CATEGORY


def test_the_card_text_is_in_the_members_language_with_the_placeholders_filled():
    offer = template(TOP_CATEGORY)
    offer.texts = {"en": "10% off your next {category}", "ja": "次回の{category}が10%オフ"}
    assert render(offer, {"category": "coffee"}, "ja", ["en", "ja"]) == ("あなたへの特典", "次回のcoffeeが10%オフ")
    assert render(offer, {"category": "coffee"}, "ko", ["en", "ja"]) == ("회원님을 위한 혜택",
                                                                         "10% off your next coffee")
    offer.labels = {"en": "Just for you"}
    assert render(offer, {"category": "tea"}, "en", ["en"])[0] == "Just for you"


def test_rules_read_plainly():
    assert describe(template(TOP_CATEGORY, window_days=60, min_purchases=3, categories=["coffee"])) == (
        "the member's most-bought category among coffee in the last 60 days, at least 3 items")
    assert describe(template(WE_MISS_YOU, days=45)) == "no purchase for 45 days or more"
