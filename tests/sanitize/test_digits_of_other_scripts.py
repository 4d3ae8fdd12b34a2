"""Phone numbers typed in full-width (０３０ １２３４ ５６７８) or Arabic-Indic digits are replaced
like their ASCII twins, by ``phone``, ``scrub`` and ``guess``, in the compiled path and in pure
Python, and the scanner reports them.

Before, every one of these passed through unchanged: the digit loops took only "0"-"9", scrub
counted only ASCII digits towards a phone's eight, PHONE_RE's national form wanted an ASCII "0",
and the compiled gate, which mirrors scrub, kept the text without calling it."""

from __future__ import annotations

import pytest

from clonekit.sanitize import actions, phpserialize
from clonekit.sanitize.actions import ActionEnv, ActionSpec, Keyed, Target, build_action
from clonekit.sanitize.detect import ascii_digits, value_kinds

from .test_phpserialize_compiled import speedups

SECRET = b"digits-of-other-scripts-secret"
SCRIPTS = {
    "full-width": str.maketrans("0123456789", "０１２３４５６７８９"),
    "arabic-indic": str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"),
    "devanagari": str.maketrans("0123456789", "०१२३४५६७८९"),
}
IN_TEXT = ["call 030 1234 5678 now", "ruf mich an: 0590529992, danke", "(04549) 24780 9 ab 18 Uhr",
           "Tel. +33 6 12 34 56 78"]
ALONE = ["030 1234 5678", "0590529992", "+33 6 12 34 56 78"]
MODES = ["compiled", "python"] if speedups is not None else ["python"]


TEXT = Target("text")


def _action(monkeypatch: pytest.MonkeyPatch, mode: str, name: str, target: Target = TEXT):  # noqa: ANN202
    module = speedups if mode == "compiled" else None
    monkeypatch.setattr(actions, "compiled", module)
    monkeypatch.setattr(phpserialize, "compiled", module)
    return build_action(ActionSpec(name, {}), target, ActionEnv(keyed=Keyed(SECRET)))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_scrub_replaces_a_phone_in_any_script_like_its_ascii_twin(monkeypatch: pytest.MonkeyPatch, mode: str,
                                                                   script: str) -> None:
    scrub = _action(monkeypatch, mode, "scrub")
    for text in IN_TEXT:
        twin = scrub(text)
        assert twin != text  # the ASCII phone is replaced (the reference)
        written = text.translate(SCRIPTS[script])
        out = scrub(written)
        assert out != written, written
        assert ascii_digits(out) == twin  # the same new digits, each in the script it replaced
        assert len(out) == len(written)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_phone_and_guess_replace_every_digit_of_any_script(monkeypatch: pytest.MonkeyPatch, mode: str,
                                                            script: str) -> None:
    phone = _action(monkeypatch, mode, "phone")
    guess = _action(monkeypatch, mode, "guess")
    for text in ALONE:
        written = text.translate(SCRIPTS[script])
        assert ascii_digits(phone(written)) == phone(text) != text
        assert ascii_digits(guess(written)) == guess(text) != text


@pytest.mark.parametrize("mode", MODES)
def test_scrub_inside_a_php_value_reaches_digits_of_other_scripts(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    php = _action(monkeypatch, mode, "php", Target("binary"))  # every string value scrubbed (the default)
    message = "call ０３０ １２３４ ５６７８ now".encode()
    value = b'a:1:{s:4:"note";s:%d:"%s";}' % (len(message), message)
    out = php(value)
    assert "０３０ １２３４ ５６７８".encode() not in out


@pytest.mark.skipif(speedups is None, reason="the compiled module did not build")
def test_the_compiled_gate_opens_on_eight_digits_of_any_script() -> None:
    for script in SCRIPTS.values():
        written = "call 030 1234 5678 now".translate(script)
        assert not speedups.scrub_keeps_text(written)
        assert not speedups.scrub_keeps_text(written.encode())  # raw PHP bytes: the sequences decoded
    assert speedups.scrub_keeps_text("seven ０１２３４５６ digits")  # fewer than a phone's eight: kept
    assert speedups.scrub_keeps_text("Grüße aus Köln, à bientôt, ça va très bien".encode())  # no digit at all


def test_the_scanner_reports_phones_in_any_script() -> None:
    for script in SCRIPTS.values():
        assert "phone" in value_kinds("030 1234 5678".translate(script))
        assert "phone in text" in value_kinds("Bitte rufen Sie mich unter 030 1234 5678 an".translate(script))


# German numbers with a long subscriber part, or a slash after the area code, were not phones
# for PHONE_RE (groups of at most 6 digits, no slash): scrub left them in the text.
LONG_GROUPS = ["Tel. 030 12345678", "tel +49 30 12345678", "Handy: 0171 1234567", "(030) 12345678 ab 9 Uhr",
               "0171/1234567"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("text", LONG_GROUPS)
def test_scrub_replaces_numbers_with_long_subscriber_parts(monkeypatch: pytest.MonkeyPatch, mode: str, text: str) -> None:
    scrub = _action(monkeypatch, mode, "scrub")
    out = scrub(text)
    assert [ch.isdigit() for ch in out] == [ch.isdigit() for ch in text]  # the shape kept
    assert "".join(filter(str.isdigit, out))[1:] != "".join(filter(str.isdigit, text))[1:]  # the digits not


def test_dates_and_paths_with_slashes_are_not_phones() -> None:
    for text in ["am 12/05/2024 um 10:30", "https://example.org/node/12345678/edit", "v 1.2.3 build 20241130"]:
        assert "phone in text" not in value_kinds(text + " " * 20) and "phone" not in value_kinds(text)
