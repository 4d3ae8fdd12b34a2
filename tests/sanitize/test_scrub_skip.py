"""A column's ``scrub`` is skipped only for values it would return unchanged.

The ``scrub`` action (and ``text: scrub``) does not call the scrubber for ASCII text without
``@``, ``:`` or digit within the column's length: checked against the scrubber itself on values
built from addresses, IPv4 and digit-free IPv6, phones, multibyte and Unicode digits, lone
surrogates, tabs, for text and blob columns, with and without a length limit.
"""

from __future__ import annotations

from clonekit.sanitize.actions import Keyed


def test_scrub_skips_only_values_it_would_return_unchanged() -> None:
    """A column's scrub is not called for ASCII text without @, : or digit within its limit: the
    output is what scrub itself gives, for text and bytes, with and without a length limit."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from clonekit.sanitize.actions import ActionEnv, ActionSpec, Target, build_action, scrub_builder, text_action

    env = ActionEnv(keyed=Keyed(b"s"))
    pieces = st.sampled_from(["plain words", " ", "dead:beef::cafe", "fe80::1", "jane@example.org", "04 32 01 69 97",
                              "192.0.2.1", "Aimé", "١٩٢.١٦٨.١.١", "\t", "x" * 40, ":", "@", "7", "\udcff"])
    values = st.lists(pieces, max_size=6).map("".join)

    @settings(max_examples=300, deadline=None)
    @given(value=values, limit=st.sampled_from([None, 5, 30, 200]), binary=st.booleans())
    def check(value: str, limit: int | None, binary: bool) -> None:
        target = Target("binary" if binary else "text", max_chars=limit)
        skipping = build_action(ActionSpec("scrub"), target, env)
        plain = text_action(scrub_builder(env), target, env, unique_safe=True)
        given_value = value.encode("utf-8", "surrogateescape") if binary else value
        assert skipping(given_value) == plain(given_value)

    check()
