"""Presets: the rules a Drupal or WordPress site needs, in the same shape as ``sanitize.tables``.

Presets apply to what exists: a preset rule for a missing table or column is skipped, where a
user's rule would be an error. WordPress tables carry a prefix (``wp_`` or any other) and
multisite adds ``<prefix><N>_`` tables per site: the prefix is detected from the live tables.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .rules import TableRule, parse_table_rules

PRESET_VERSION = 4  # part of the rules digest: bump when a preset's output changes

_USER_DATA_KEYS = {
    "*mail*": "email",
    "*phone*": "phone",
    "*mobile*": "phone",
    "*first*name*": "first_name",
    "*last*name*": "last_name",
    "*name*": "name",
    "*address*": "address",
    "*street*": "address",
    "ip": "ip",
    "*_ip": "ip",
}

def _like(columns: tuple[str, ...], *patterns: str) -> str:
    return " OR ".join(f"{c} LIKE '{p}'" for p in patterns for c in columns)


# Form keys that say what a value is, in English, French, German, Spanish, Italian, Dutch,
# Portuguese and Polish. Order matters: "cognome" holds "nome", "prenom" holds "nom".
_LAST_NAME_KEYS = ("%last%name%", "%lastname%", "%surname%", "%family%name%", "%nachname%", "%familienname%",
                   "%apellido%", "%cognome%", "%achternaam%", "%sobrenome%", "%nazwisko%", "%nom\\_de\\_famille%")
_FIRST_NAME_KEYS = ("%first%name%", "%firstname%", "%given%name%", "%forename%", "%prenom%", "%prénom%", "%vorname%",
                    "%nombre%", "%nome%", "%voornaam%", "%imie%", "%imię%")
_NAME_KEYS = ("%name%", "nom", "nom\\_%", "%\\_nom", "%naam%", "%full%name%", "%author%", "%contact%person%")
_ADDRESS_KEYS = ("%address%", "%adres%", "%street%", "%strasse%", "%straße%", "%calle%", "%direcci%", "%indirizzo%",
                 "%endere%", "%ulica%")
_CITY_KEYS = ("%city%", "%ville%", "%stadt%", "%ciudad%", "%citta%", "%città%", "%locality%", "%town%", "%miasto%")


def _form_value_rules(*key_columns: str) -> list[dict[str, Any]]:
    """Branches for a form submission's value column, chosen by the element key(s) in
    ``key_columns``; the default guesses from the value itself."""
    return [
        {"when": _like(key_columns, *_LAST_NAME_KEYS), "use": {"guess": "last_name"}},
        {"when": _like(key_columns, *_FIRST_NAME_KEYS), "use": {"guess": "first_name"}},
        {"when": _like(key_columns, *_NAME_KEYS), "use": {"guess": "name"}},
        {"when": _like(key_columns, *_ADDRESS_KEYS), "use": {"guess": "address"}},
        {"when": _like(key_columns, *_CITY_KEYS), "use": {"set": "Springfield"}},
        {"use": "guess"},
    ]


# watchdog messages are templates ("Session opened for %name."); the values are in variables
_WATCHDOG_PLACEHOLDERS = {
    "?name": "username",
    "?user": "username",
    "?username": "username",
    "?account": "username",
    "?mail": "email",
    "?email": "email",
    "?ip": "ip",
    "?hostname": "ip",
}

_ADDRESS_FIELD_COLUMNS = {  # the Address module's columns, on any field
    "*_given_name": "first_name", "*_additional_name": "first_name", "*_family_name": "last_name",
    "*_address_line1": "address", "*_address_line2": "address", "*_address_line3": "address",
    "*_organization": {"set": "Example Ltd"}, "*_locality": {"set": "Springfield"}, "*_dependent_locality": {"set": ""},
    "*_postal_code": "guess", "*_sorting_code": {"set": ""},
}


def _person_fields(*entity_tables: str) -> dict[str, Any]:
    """Fields on people (user accounts, Profile module profiles): a field's table is named after
    its machine name (``user__field_telephone``), its value column ``field_<name>_value``. Every
    text value by what it looks like; names and addresses by the field's name."""
    out: dict[str, Any] = {}
    for entity in entity_tables:
        base = f"{entity}__field_"
        out[f"{base}*"] = {"columns": {"*_value": "guess", **_ADDRESS_FIELD_COLUMNS}}
        for keys, hint in ((_NAME_KEYS, "name"), (_FIRST_NAME_KEYS, "first_name"), (_LAST_NAME_KEYS, "last_name"),
                           (_ADDRESS_KEYS, "address")):
            for key in keys:
                if "\\" not in key:
                    out[base + key.replace("%", "*")] = {"columns": {"*_value": {"guess": hint}}}
        for key in _CITY_KEYS:
            out[base + key.replace("%", "*")] = {"columns": {"*_value": {"set": "Springfield"}}}
    return out


DRUPAL: dict[str, Any] = {
    "users_field_data": {
        "columns": {
            "mail": "email",
            "init": "email",
            "name": "username",
            "pass": {"password": "auto"},
        },
        "accounts": {"login": "name", "email": "mail"},
    },
    # per-module user settings, serialized: strings by key, anything else scrubbed
    "users_data": {"columns": {"value": {"php": {"keys": _USER_DATA_KEYS, "values": "scrub"}}}},
    "comment_field_data": {
        "columns": {
            "name": "username",  # a registered commenter's name is their user name: same pseudonym
            "mail": "email",
            "homepage": "url",
            "hostname": "ip",
        }
    },
    # comment bodies: keep the text, replace the addresses and phone numbers people leave in them
    "comment__comment_body": {"columns": {"comment_body_value": "scrub"}},
    "watchdog": {
        "columns": {
            "hostname": "ip",
            "message": "scrub",
            "variables": {"php": {"keys": _WATCHDOG_PLACEHOLDERS, "values": "scrub"}},
            "location": "scrub",
            "referer": "scrub",
        }
    },
    "sessions": {"rows": "none"},
    "cache_*": {"rows": "none"},
    # Webform: one row per element value; element keys are the site builder's (`name`, `email`,
    # `nom`, `contact` with properties...). Names and addresses by key (name or composite property,
    # in the languages agencies serve); everything else by what the value looks like (guess):
    # e-mails, phones, IPs, URLs, dates and numbers by their pseudonyms, other text replaced.
    "webform_submission_data": {"columns": {"value": _form_value_rules("name", "property")}},
    "webform_submission": {"columns": {"remote_addr": "ip", "uri": "scrub", "notes": "text"}},
    "webform_submission_log": {"columns": {"message": "scrub", "variables": {"php": {"values": "guess"}},
                                           "data": {"php": {"values": "guess"}}}},
    # Drupal 7 Webform: values by component id (the key lives in another table)
    "webform_submitted_data": {"columns": {"data": "guess"}},
    "webform_submissions": {"columns": {"remote_addr": "ip"}},
    # expiring key/value pairs: private tempstore (forms being filled, drafts), update state
    "key_value_expire": {"rows": "none"},
    "contact_message": {
        "columns": {
            "name": "name",
            "mail": "email",
            "subject": "text",
            "message": "text",
            "ip_address": "ip",
        }
    },
    "flood": {"rows": "none"},
    # every site with comments: the last commenter's name per entity (same pseudonym as users)
    "comment_entity_statistics": {"columns": {"last_comment_name": "username"}},
    "ban_ip": {"columns": {"ip": "ip"}},
    # Drupal 7 names of the same data
    "users": {
        "columns": {"mail": "email", "init": "email", "name": "username", "pass": {"password": "auto"},
                    "data": {"php": {"keys": _USER_DATA_KEYS, "values": "scrub"}}},
        "accounts": {"login": "name", "email": "mail"},
    },
    "comment": {"columns": {"name": "username", "mail": "email", "homepage": "url", "hostname": "ip"}},
    "cache": {"rows": "none"},
    # search indexes copy every page's text (comments, profiles...): rebuilt in the preview by
    # cron / `drush search-api:index`, so they travel empty
    "search_index": {"rows": "none"},
    "search_dataset": {"rows": "none"},
    "search_total": {"rows": "none"},
    "search_api_db_*": {"rows": "none"},
    "accesslog": {"columns": {"hostname": "ip", "url": "scrub"}},
    # fields people fill in about themselves: user__field_*, profile__field_* (and revisions)
    **_person_fields("user", "profile", "profile_revision"),
    # site configuration (serialized): the site's and notification addresses become fake ones,
    # so a preview mails no one; staff addresses in keep_accounts stay
    "config": {"columns": {"data": {"php": {"keys": {"*mail*": "email"}, "values": "keep"}}}},
}

_SERIALIZED_PERSONAL = {
    "php": {
        "keys": {
            "*first*name*": "first_name", "*last*name*": "last_name", "*name*": "name",
            "*mail*": "email", "*phone*": "phone", "*mobile*": "phone", "*tel": "phone",
            "*address*": "address", "*street*": "address", "ip": "ip", "*_ip": "ip",
        },
        "values": "scrub",
    }
}


_SERIALIZED = "(meta_value LIKE 'a:%' OR meta_value LIKE 'O:%')"
_CONTACT_KEYS = ("%mail%", "%phone%", "%mobile%", "tel", "%\\_tel", "tel\\_%", "%\\_tel\\_%")


def _plugin_meta_rules(*, scrub_the_rest: bool) -> list[dict[str, Any]]:
    """Plain meta values under plugin keys (a profile plugin's `phone`, `nom`, `adresse`): names
    and addresses by key name; then either every other value scrubbed (e-mails, phones and IPs
    inside replaced, settings kept: user meta) or only those under e-mail/phone keys (post meta,
    where the rest is the site's content). Serialized values are rewritten as PHP, never cut."""
    key = ("meta_key",)
    personal_keys = _like(key, *_LAST_NAME_KEYS, *_FIRST_NAME_KEYS, *_ADDRESS_KEYS, *_CONTACT_KEYS,
                          "%full%name%", "%real%name%", "%display%name%", "nom", "nom\\_%", "%\\_nom")
    rules: list[dict[str, Any]] = [
        {"when": f"({personal_keys}) AND {_SERIALIZED}", "use": _SERIALIZED_PERSONAL},
        {"when": _like(key, *_LAST_NAME_KEYS), "use": {"guess": "last_name"}},
        {"when": _like(key, *_FIRST_NAME_KEYS), "use": {"guess": "first_name"}},
        {"when": _like(key, "%full%name%", "%real%name%", "%display%name%", "nom", "nom\\_%", "%\\_nom"), "use": {"guess": "name"}},
        {"when": _like(key, *_ADDRESS_KEYS), "use": {"guess": "address"}},
    ]
    if scrub_the_rest:
        return [*rules, {"use": "scrub"}]
    return [*rules, {"when": _like(key, *_CONTACT_KEYS), "use": "scrub"}]


def _woocommerce_meta(p: str) -> list[dict[str, Any]]:
    """Branches for WooCommerce's customer keys: ``billing_email`` in usermeta, ``_billing_email``
    in postmeta (orders before HPOS); ``p`` is that key prefix ('' or '_')."""

    def keys(*names: str) -> str:
        return ",".join(f"'{p}{n}'" for n in names)

    like = p.replace("_", "\\_")
    return [
        {"when": f"meta_key IN ({keys('billing_first_name', 'shipping_first_name')})", "use": "first_name"},
        {"when": f"meta_key IN ({keys('billing_last_name', 'shipping_last_name')})", "use": "last_name"},
        {"when": f"meta_key IN ({keys('billing_email')})", "use": "email"},
        {"when": f"meta_key IN ({keys('billing_phone', 'shipping_phone')})", "use": "phone"},
        {"when": f"meta_key IN ({keys('billing_address_1', 'billing_address_2', 'shipping_address_1', 'shipping_address_2')})",
         "use": "address"},
        {"when": f"meta_key IN ({keys('billing_company', 'shipping_company')})", "use": {"set": "Example Ltd"}},
        {"when": f"meta_key IN ({keys('billing_city', 'shipping_city')})", "use": {"set": "Springfield"}},
        {"when": f"meta_key IN ({keys('billing_postcode', 'shipping_postcode')})", "use": {"set": "00000"}},
        {"when": f"meta_key IN ({keys('billing_state', 'shipping_state')})", "use": {"set": ""}},
        {"when": f"meta_key LIKE '{like}billing\\_%' OR meta_key LIKE '{like}shipping\\_%'", "use": "redact"},
    ]


_WORDPRESS_USERMETA_VALUE = [
    {"when": "meta_key = 'first_name'", "use": "first_name"},
    {"when": "meta_key = 'last_name'", "use": "last_name"},
    {"when": "meta_key = 'nickname'", "use": "username"},
    *_woocommerce_meta(""),
    {"when": "meta_key = 'description'", "use": "text"},
    {"when": "meta_key = 'session_tokens'", "use": {"set": "a:0:{}"}},
    {"when": "meta_key = 'community-events-location'", "use": {"php": {"values": "scrub"}}},
    {"when": "meta_key LIKE '%\\_ip' OR meta_key LIKE '%\\_ip\\_%' OR meta_key LIKE 'ip\\_%'", "use": "ip"},
    # Plugins keep personal data in serialized arrays under keys of their own (an emergency
    # contact, a saved address): pseudonymize by key name, scrub emails/phones/IPs elsewhere.
    {"when": "meta_value LIKE 'a:%' OR meta_value LIKE 'O:%'", "use": _SERIALIZED_PERSONAL},
    # ... and in plain values under keys of their own: names and addresses by key; e-mails, phones
    # and IPs wherever they are, while WordPress' settings (rich_editing, locale...) stay as they are.
    *_plugin_meta_rules(scrub_the_rest=True),
]

_CONTACT_POST_TYPES = "'flamingo_inbound','flamingo_contact','feedback','nf_sub'"
_CONTACT_META_KEYS = (
    "meta_key LIKE '\\_field\\_%' OR meta_key IN ('_meta','_props','_fields','_feedback_extra_fields',"
    "'_feedback_email','_feedback_all_fields','_from_email','_email','_feedback_author_email','_from_name','_name',"
    "'_feedback_author','_from')"
)
_WORDPRESS_POSTMETA_VALUE = [
    *_woocommerce_meta("_"),
    {"when": "meta_key = '_customer_ip_address'", "use": "ip"},
    # Contact Form 7's Flamingo, Ninja Forms, Jetpack feedback: one meta row per form field, some
    # serialized (checkboxes, the request's metadata), all of them what a visitor typed
    {"when": f"({_CONTACT_META_KEYS}) AND {_SERIALIZED}",
     "use": {"php": {"keys": _SERIALIZED_PERSONAL["php"]["keys"], "values": "guess"}}},
    {"when": "meta_key LIKE '\\_field\\_%'", "use": "guess"},
    {"when": "meta_key IN ('_from_email','_email','_feedback_author_email')", "use": "email"},
    {"when": "meta_key IN ('_from_name','_name','_feedback_author','_from')", "use": {"guess": "name"}},
    *_plugin_meta_rules(scrub_the_rest=False),
]

# a private post type's text is the message someone sent (its title the subject or the sender)
_CONTACT_POSTS = {
    "post_title": [{"when": f"post_type IN ({_CONTACT_POST_TYPES})", "use": "guess"}],
    "post_content": [{"when": f"post_type IN ({_CONTACT_POST_TYPES})", "use": "text"}],
    "post_excerpt": [{"when": f"post_type IN ({_CONTACT_POST_TYPES})", "use": "text"}],
    "post_name": [{"when": f"post_type IN ({_CONTACT_POST_TYPES})", "use": {"hash": 16}}],
}


def _wordpress_site(prefix: str) -> dict[str, Any]:
    """Per-site tables: ``wp_`` for the main site, ``wp_2_`` for a multisite sub-site."""
    return {
        f"{prefix}comments": {
            "columns": {
                "comment_author": "name",  # registered commenters: their display_name, same pseudonym
                "comment_author_email": "email",
                "comment_author_IP": "ip",
                "comment_author_url": "url",
                "comment_content": "scrub",
            }
        },
        f"{prefix}options": {
            "columns": {
                "option_value": [
                    {"when": "option_name IN ('admin_email','new_admin_email')", "use": "email"},
                ]
            }
        },
        f"{prefix}posts": {"columns": {"post_password": "keep", **_CONTACT_POSTS}},  # post_password: a page's, not personal
        f"{prefix}postmeta": {"columns": {"meta_value": _WORDPRESS_POSTMETA_VALUE}},
        # WPForms (Pro keeps entries), Gravity Forms, Contact Form 7 Database (CFDB7)
        f"{prefix}wpforms_entries": {
            "columns": {"fields": {"json": {"$..value": "guess", "$..value_raw": "guess", "$..first": "first_name",
                                            "$..middle": "first_name", "$..last": "last_name", "$..address1": "address",
                                            "$..address2": "address", "$..city": {"set": "Springfield"},
                                            "$..postal": "guess"}},
                        "meta": "scrub", "ip_address": "ip"}
        },
        f"{prefix}wpforms_entry_fields": {"columns": {"value": "guess"}},
        f"{prefix}wpforms_entry_meta": {"columns": {"data": "text"}},
        f"{prefix}gf_entry": {"columns": {"ip": "ip", "source_url": "scrub"}},
        f"{prefix}gf_entry_meta": {"columns": {"meta_value": [
            {"when": _SERIALIZED, "use": {"php": {"keys": _SERIALIZED_PERSONAL["php"]["keys"], "values": "guess"}}},
            {"use": "guess"}]}},
        f"{prefix}gf_entry_notes": {"columns": {"user_name": "name", "value": "text"}},
        f"{prefix}gf_draft_submissions": {"rows": "none"},
        f"{prefix}gf_form_view": {"columns": {"ip": "ip"}},
        f"{prefix}db7_forms": {"columns": {"form_value": {"php": {"keys": _SERIALIZED_PERSONAL["php"]["keys"], "values": "guess"}}}},
        f"{prefix}woocommerce_downloadable_product_permissions": {"columns": {"user_email": "email"}},
        f"{prefix}wc_download_log": {"columns": {"user_ip_address": "ip"}},
        f"{prefix}wc_orders_meta": {"columns": {"meta_value": _WORDPRESS_POSTMETA_VALUE}},
        # WooCommerce, per site: customers, orders (HPOS) and their addresses
        f"{prefix}wc_customer_lookup": {
            "columns": {"username": "username", "first_name": "first_name", "last_name": "last_name", "email": "email",
                        "postcode": {"set": "00000"}, "city": {"set": "Springfield"}}
        },
        f"{prefix}wc_orders": {
            "columns": {"billing_email": "email", "ip_address": "ip", "user_agent": "keep", "customer_note": "text"}
        },
        f"{prefix}wc_order_addresses": {
            "columns": {"address_type": "keep", "first_name": "first_name", "last_name": "last_name", "company": {"set": "Example Ltd"},
                        "address_1": "address", "address_2": "address", "city": {"set": "Springfield"},
                        "state": {"set": ""}, "postcode": {"set": "00000"}, "email": "email", "phone": "phone"}
        },
        f"{prefix}woocommerce_sessions": {"rows": "none"},
    }


def _wordpress_network(prefix: str) -> dict[str, Any]:
    """Tables shared by every site of an install (one set per base prefix)."""
    return {
        f"{prefix}users": {
            "columns": {
                "user_login": "username",
                "user_nicename": "username",
                "user_email": "email",
                "user_url": "url",
                "user_pass": {"password": "auto"},
                "user_activation_key": {"set": ""},
                "display_name": "name",
            },
            "accounts": {"login": "user_login", "email": "user_email"},
        },
        f"{prefix}usermeta": {"columns": {"meta_value": _WORDPRESS_USERMETA_VALUE}},
        f"{prefix}sitemeta": {
            "columns": {"meta_value": [{"when": "meta_key IN ('admin_email','new_admin_email')", "use": "email"}]}
        },
        f"{prefix}signups": {"columns": {"user_login": "username", "user_email": "email", "meta": {"php": {"values": "scrub"}}}},
        f"{prefix}registration_log": {"columns": {"email": "email", "IP": "ip"}},
    }


def wordpress_prefixes(table_names: Iterable[str]) -> tuple[list[str], list[str]]:
    """(base prefixes, sub-site prefixes) found among the live tables.

    A base prefix P has ``P users`` and ``P usermeta`` (or ``P options`` and ``P posts``);
    a sub-site prefix is ``P<N>_`` with a ``P<N>_options`` table."""
    names = set(table_names)
    bases = set()
    for name in names:
        if name.endswith("usermeta") and name[: -len("usermeta")] + "users" in names:
            bases.add(name[: -len("usermeta")])
        if name.endswith("options") and name[: -len("options")] + "posts" in names:
            prefix = name[: -len("options")]
            if not re.search(r"\d+_$", prefix) or prefix + "users" in names:
                bases.add(prefix)
    sites = set()
    for base in bases:
        pattern = re.compile(re.escape(base) + r"(\d+)_options$")
        for name in names:
            match = pattern.match(name)
            if match:
                sites.add(f"{base}{match.group(1)}_")
    bases -= sites
    return sorted(bases), sorted(sites)


def preset_rules(preset: str, table_names: Iterable[str]) -> tuple[TableRule, ...]:
    """The preset's rules for the tables that exist (an unknown preset or ``none``: no rules)."""
    if preset == "drupal":
        raw = DRUPAL
    elif preset == "wordpress":
        bases, sites = wordpress_prefixes(table_names)
        raw = {}
        for base in bases:
            raw.update(_wordpress_network(base))
            raw.update(_wordpress_site(base))
        for site in sites:
            raw.update(_wordpress_site(site))
    else:
        return ()
    return parse_table_rules(raw, key=f"preset {preset}", origin=f"preset {preset}")


def preset_document(preset: str) -> dict[str, Any]:
    """The preset's raw rules for a canonical schema (``wp_`` and one sub-site ``wp_2_``): what
    the rules digest hashes, so any change to a preset changes the digest."""
    if preset == "drupal":
        return DRUPAL
    if preset == "wordpress":
        return {**_wordpress_network("wp_"), **_wordpress_site("wp_"), **_wordpress_site("wp_2_")}
    return {}

