"""Accounts imitating another with homoglyphs are flagged in the admin table (issue 11, "Also")."""

from __future__ import annotations

import pytest

from rubin_app.admin.lookalikes import lookalikes, skeleton


@pytest.mark.parametrize(
    ("fake", "real"),
    [
        ("аdmin@example.com", "admin@example.com"),  # Cyrillic а
        ("admin@exаmple.com", "admin@example.com"),
        ("ΑDMIN", "ADMIN"),  # Greek capital alpha
        ("paypaI@example.com", "paypal@example.com"),  # capital I for l
        ("r\u200boot@example.com", "root@example.com"),  # zero-width space
        ("ｒｏｏｔ@example.com", "root@example.com"),  # full-width (NFKC)
        ("Аlicе Smith", "Alice Smith"),
        ("rnallory", "mallory"),
    ],
)
def test_lookalikes_share_a_skeleton(fake: str, real: str) -> None:
    assert fake != real and skeleton(fake) == skeleton(real)


@pytest.mark.parametrize(("a", "b"), [("Ada", "Ида"), ("alice@example.com", "alicia@example.com"), ("Иван", "Ivan")])
def test_different_names_stay_different(a: str, b: str) -> None:
    assert skeleton(a) != skeleton(b)


def test_the_admin_table_flags_both_sides_and_nobody_else() -> None:
    accounts = [
        (1, "admin@example.com", "Admin"),
        (2, "аdmin@example.com", "Helper"),  # imitates 1 by email
        (3, "bob@example.com", "Bob"),
        (4, "b0b@example.com", "Bоb"),  # imitates 3 by email (0 for o) and by name (Cyrillic о)
        (5, "ann@example.com", "Анна"),
        (6, "anna@example.com", "Анна"),  # the same real name twice is not an imitation
    ]
    assert lookalikes(accounts) == {
        1: "аdmin@example.com", 2: "admin@example.com", 3: "b0b@example.com", 4: "bob@example.com"
    }  # fmt: skip
