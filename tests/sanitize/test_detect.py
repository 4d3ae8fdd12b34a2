"""Recognising personal data without a database: person names across languages, column names in
several languages, IP addresses stored encoded, values clonekit cannot read, cache-like tables."""

from __future__ import annotations

import base64
import os
import uuid
import zlib

import pytest
from faker import Faker

from clonekit.sanitize.detect import (
    decoded_ip,
    is_person_name,
    opaque_kind,
    personal_name_reason,
    sensitive_table_reason,
)

LOCALES = ("fr_FR", "de_DE", "es_ES", "it_IT", "nl_NL", "pt_PT", "pl_PL", "en_US")


@pytest.mark.parametrize("locale", LOCALES)
def test_generated_names_of_each_language_are_recognised(locale: str) -> None:
    fake = Faker(locale)
    fake.seed_instance(13)
    names = [f"{fake.first_name()} {fake.last_name()}" for _ in range(300)]
    rate = sum(is_person_name(n) for n in names) / len(names)
    assert rate >= 0.9, f"{locale}: {rate:.0%} recognised"


def test_breton_and_compound_names() -> None:
    for name in ("Erwan Le Gall", "Sandrine Riou", "Riou, Sandrine", "Jean-Pierre Martin", "Anne-Sophie Le Goff",
                 "Maria van Dijk", "José de la Fuente", "O'Brien"):
        assert is_person_name(name), name


def test_page_titles_and_machine_words_are_not_names() -> None:
    for text in ("Sample Page", "Hello world!", "Privacy Policy", "comment", "publish", "Terms And Conditions",
                 "Blue widget model 3", "Coca-Cola Zero", "SKU-00012"):
        assert not is_person_name(text), text


@pytest.mark.parametrize("column, reason", [
    ("user_real_name", "person name"), ("realname", "person name"), ("full_name", "person name"),
    ("fullname", "person name"), ("nom", "last name"), ("prenom", "first name"), ("prénom", "first name"),
    ("Vorname", "first name"), ("nachname", "last name"), ("nombre", "first name"), ("apellido", "last name"),
    ("apellidos", "last name"), ("cognome", "last name"), ("voornaam", "first name"), ("achternaam", "last name"),
    ("nazwisko", "last name"), ("imie", "first name"), ("customer_name", "person name"), ("nom_client", "last name"),
    ("nombre_usuario", "first name"), ("user_name", "login"),
])
def test_column_names_in_several_languages(column: str, reason: str) -> None:
    assert personal_name_reason(column, "text") == reason


@pytest.mark.parametrize("column", ["nom_produit", "nombre_categoria", "name", "term_name", "option_name", "post_name",
                                    "blogname", "description"])
def test_names_of_things_are_not_people(column: str) -> None:
    assert personal_name_reason(column, "text") is None


def test_encoded_ip_addresses_are_decoded_where_the_type_says_so() -> None:
    assert decoded_ip(bytes([81, 56, 1, 7]), 16) == "81.56.1.7"  # INET6_ATON of an IPv4 in VARBINARY(16)
    assert decoded_ip(bytes.fromhex("2a010e0a000000000000000000000007"), 16) == "2a01:e0a::7"
    assert decoded_ip(bytes.fromhex("00000000000000000000ffff51380107"), 16) == "81.56.1.7"
    assert decoded_ip("51380107") == "81.56.1.7"  # MediaWiki IPUtils::toHex
    assert decoded_ip("v6-2A010E0A000000000000000000000007") == "2a01:e0a::7"
    assert decoded_ip(b"51380107", 35) == "81.56.1.7"  # the same hex form in a VARBINARY(35) column
    assert decoded_ip(bytes([81, 56, 1, 7]), None) is None  # a BLOB of 4 bytes says nothing
    uuids = [uuid.uuid4().bytes for _ in range(200)]
    assert not any(decoded_ip(u, 16) for u in uuids)  # UUIDs in BINARY(16) are not addresses
    assert decoded_ip("deadbeef") is None  # lower-case hex: a checksum, not MediaWiki's form


def test_values_clonekit_cannot_read() -> None:
    assert opaque_kind(zlib.compress(b"<p>Sandrine Riou</p>" * 50)) == "compressed"
    assert opaque_kind(os.urandom(400)) == "binary"
    assert opaque_kind(base64.b64encode(os.urandom(300)).decode()) == "encoded"
    assert opaque_kind('a:2:{s:4:"name";s:13:"Sandrine Riou";s:4:"mail";s:12:"s@riou.example";}') is None
    assert opaque_kind("Plain text with an address, 12 rue de Brest, Quimper") is None


@pytest.mark.parametrize("table, reason", [
    ("cache_page", "a cache"), ("wp_cache_pages", "a cache"), ("objectcache", "a cache"), ("l10n_cache", "a cache"),
    ("sessions", "a session store"), ("wp_woocommerce_sessions", "a session store"),
    ("searchindex", "a search index"), ("search_index", "a search index"), ("search_api_db_default_index", "a search index"),
    ("users", None), ("research_projects", None), ("cachetags", None),
])
def test_tables_that_copy_other_data(table: str, reason: str | None) -> None:
    assert sensitive_table_reason(table) == reason
