"""Accessibility checks in the browser: axe-core (vendored in tests/pages/assets, see its README) run on the
page as it is; serious and critical violations fail the test, with what and where."""

from __future__ import annotations

from pathlib import Path

AXE_VERSION = "4.10.2"
AXE_SOURCE = (Path(__file__).parent / "assets" / "axe.min.js").read_text()
FAILING_IMPACTS = ("serious", "critical")


def assert_accessible(page, exclude: tuple[str, ...] = ()) -> None:
    """Injected through the DevTools protocol (page.evaluate), so the page's own Content-Security-Policy, which
    allows no inline script, stays as it is for the test. `exclude`: selectors of parts that are not the page's
    own design (the card preview shows the merchant's colours as the wallet will)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate("source => { (0, eval)(source); }", AXE_SOURCE)
    assert page.evaluate("() => axe.version") == AXE_VERSION
    result = page.evaluate("async exclude => await axe.run({exclude: exclude.map(s => [s])}, "
                           "{resultTypes: ['violations']})", list(exclude))
    failing = [violation for violation in result["violations"] if violation["impact"] in FAILING_IMPACTS]
    assert not failing, "\n".join(
        f"{violation['id']} ({violation['impact']}): {violation['help']} at "
        + ", ".join(str(node["target"]) for node in violation["nodes"][:3]) for violation in failing)
