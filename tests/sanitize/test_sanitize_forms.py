"""Form submissions (issue 13): whatever keys a site builder chose, no value a visitor typed
survives the drupal and wordpress presets. Each test seeds the real MariaDB, captures it with
clonekit.db (the snapshot path), searches the stored chunks, restores into a second database
and searches that, then checks the site's own data and structures are still usable."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clonekit.config import StoreConfig
from clonekit.db import capture_database, restore_database
from clonekit.repository import Repository
from clonekit.sanitize import build_planner, phpserialize
from clonekit.sanitize.actions import ActionEnv, ActionSpec, Keyed, Target, build_action
from tests.fixtures.drupal_fixture import PEOPLE

from .conftest import read_rows, read_tables, sanitize_config
from .test_sanitize_capture import endpoint

# people of a French/Breton user base, and what they typed
ERWAN = ("Erwan", "Le Gall", "erwan.legall@orange-breizh.example.fr", "06 98 76 54 32", "5 hent Kerzu, Plougastell")
SANDRINE = ("Sandrine", "Riou", "sandrine.riou@wanadoo-breizh.example.fr", "+33 2 98 44 55 66", "12 rue de Siam")
GWEN = ("Gwenaëlle", "Kerboriou", "gwen.kerboriou@laposte-breizh.example.fr", "0298112233", "3 impasse Ar Men")


def php(pairs: list[tuple[str, object]]) -> str:
    def one(v: object) -> str:
        if isinstance(v, list):
            return f"a:{len(v)}:{{" + "".join(f"i:{i};{one(x)}" for i, x in enumerate(v)) + "}"
        b = str(v).encode()
        return f's:{len(b)}:"{v}";'
    return f"a:{len(pairs)}:{{" + "".join(f'{one(k)}{one(v)}' for k, v in pairs) + "}"


def capture_and_restore(source, target, cfg, tmp_path) -> tuple[str, str]:  # noqa: ANN001
    """The stored chunks and the restored database, each as one case-folded searchable text."""
    repo = Repository.open(StoreConfig(url=str(tmp_path / "store")))
    with repo.writer() as writer:
        section = capture_database(endpoint(source), build_planner(cfg), writer, workers=2)
    ids = [c["id"] for t in section["tables"] for c in t["chunks"]]
    stored = b"".join(repo.iter_chunks(ids)).decode("utf-8", "replace")
    restore_database(repo, section, endpoint(target), workers=2)
    restored = []
    for table in read_tables(target):
        for row in read_rows(target, table):
            restored.extend(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in row)
    return stored.casefold(), "\n".join(restored).casefold()


def leaked(values, *texts: str) -> list[str]:  # noqa: ANN001
    return [v for v in values if any(v.casefold() in t for t in texts)]


# --- Drupal: Webform -------------------------------------------------------------------------

DRUPAL_FORM_PERSONAL = [v for person in (ERWAN, SANDRINE, GWEN) for v in person] + [
    "Erwan Le Gall", "Sandrine Riou", "Gwenaëlle Kerboriou", "86.246.12.3", "2a01:e35:2f0c:ab80::17", "29200",
    "https://erwan-legall.example.bzh", "1979-04-23", "Plougastel", "29470",
]


def test_drupal_webform_values_whatever_the_keys(drupal_db, mysql_target_db, tmp_path) -> None:  # noqa: ANN001
    first, last, mail, phone, street = ERWAN
    s_first, s_last, s_mail, s_phone, s_street = SANDRINE
    g_first, g_last, g_mail, g_phone, g_street = GWEN
    registered = PEOPLE[0]  # a site user who also sent the form: same pseudonym in both tables
    rows = [
        # Webform's default `contact` form: name, email, subject, message
        ("contact", 101, "name", "", 0, f"{first} {last}"),
        ("contact", 101, "email", "", 0, mail),
        ("contact", 101, "subject", "", 0, f"Rappel pour {first} {last}"),
        ("contact", 101, "message", "", 0, f"Bonjour, c'est {first} {last}, joignable au {phone}, {street}."),
        ("contact", 102, "name", "", 0, registered.full_name),
        ("contact", 102, "email", "", 0, registered.email),
        # a site builder's French keys, a composite `coordonnees` element, options and numbers
        ("inscription", 103, "prenom", "", 0, s_first),
        ("inscription", 103, "nom", "", 0, s_last),
        ("inscription", 103, "courriel", "", 0, s_mail),
        ("inscription", 103, "telephone_portable", "", 0, s_phone),
        ("inscription", 103, "adresse", "", 0, s_street),
        ("inscription", 103, "ville", "", 0, "Brest"),
        ("inscription", 103, "code_postal", "", 0, "29200"),
        ("inscription", 103, "date_de_naissance", "", 0, "1979-04-23"),
        ("inscription", 103, "accepte_cgu", "", 0, "1"),
        ("inscription", 103, "nombre_enfants", "", 0, "3"),
        ("inscription", 103, "site_perso", "", 0, "https://erwan-legall.example.bzh"),
        ("inscription", 103, "coordonnees", "name", 0, f"{g_first} {g_last}"),
        ("inscription", 103, "coordonnees", "email", 0, g_mail),
        ("inscription", 103, "coordonnees", "phone", 0, g_phone),
        ("inscription", 103, "coordonnees", "address", 0, g_street),
        ("inscription", 103, "champ_7", "", 0, f"{g_first} {g_last}"),  # a key that says nothing
        ("inscription", 103, "champ_8", "", 0, "86.246.12.3"),
        ("inscription", 103, "champ_9", "", 1, "2a01:e35:2f0c:ab80::17"),
    ]
    conn = drupal_db.connect()
    try:
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO webform_submission_data (webform_id, sid, name, property, delta, value) VALUES (%s,%s,%s,%s,%s,%s)", rows)
            cur.execute("ALTER TABLE webform_submission ADD COLUMN notes text")
            cur.execute("INSERT INTO webform_submission (webform_id, uri, created, remote_addr, uid, notes) VALUES "
                        "('contact', '/contact', 1, '86.246.12.3', 0, %s)", (f"Rappeler {first} {last} au {phone}",))
            cur.execute("CREATE TABLE webform_submission_log (lid int PRIMARY KEY AUTO_INCREMENT, webform_id varchar(32), sid int, "
                        "operation varchar(64), message longtext, variables longblob, data longblob)")
            cur.execute("INSERT INTO webform_submission_log (webform_id, sid, operation, message, variables, data) VALUES "
                        "('contact', 101, 'email', %s, %s, %s)",
                        (f"Sent email to {mail}", php([("@to", mail)]),
                         php([("to_mail", mail), ("from_name", f"{first} {last}"), ("body", f"Message de {first} {last}")])))
            cur.execute("CREATE TABLE webform_submitted_data (nid int, sid int, cid int, no varchar(128), data mediumtext, "
                        "PRIMARY KEY (nid, sid, cid, no))")  # Drupal 7
            cur.executemany("INSERT INTO webform_submitted_data VALUES (1, 7, %s, '0', %s)",
                            [(1, f"{s_first} {s_last}"), (2, s_mail), (3, s_phone), (4, "2")])
            # fields on user accounts, named by the site builder; the Address module's columns
            field = "(entity_id int, bundle varchar(128), deleted tinyint, revision_id int, langcode varchar(32), delta int, {} " \
                    ", PRIMARY KEY (entity_id, deleted, delta, langcode))"
            cur.execute("CREATE TABLE user__field_telephone " + field.format("field_telephone_value varchar(255)"))
            cur.execute("CREATE TABLE user__field_prenom " + field.format("field_prenom_value varchar(255)"))
            cur.execute("CREATE TABLE user__field_newsletter " + field.format("field_newsletter_value tinyint"))
            cur.execute("CREATE TABLE user__field_adresse " + field.format(
                "field_adresse_country_code varchar(2), field_adresse_given_name varchar(255), field_adresse_family_name varchar(255), "
                "field_adresse_address_line1 varchar(255), field_adresse_locality varchar(255), field_adresse_postal_code varchar(255)"))
            cur.execute("INSERT INTO user__field_telephone VALUES (2, 'user', 0, 2, 'fr', 0, %s)", (g_phone,))
            cur.execute("INSERT INTO user__field_prenom VALUES (2, 'user', 0, 2, 'fr', 0, %s)", (g_first,))
            cur.execute("INSERT INTO user__field_newsletter VALUES (2, 'user', 0, 2, 'fr', 0, 1)")
            cur.execute("INSERT INTO user__field_adresse VALUES (2, 'user', 0, 2, 'fr', 0, 'FR', %s, %s, %s, 'Plougastel', '29470')",
                        (g_first, g_last, g_street))
            cur.execute("CREATE TABLE key_value_expire (collection varchar(128), name varchar(128), value longblob, expire int, "
                        "PRIMARY KEY (collection, name))")
            cur.execute("INSERT INTO key_value_expire VALUES ('tempstore.private.webform', 'draft', %s, 2000000000)",
                        (php([("email", g_mail), ("name", g_last)]),))
        conn.commit()
    finally:
        conn.close()

    stored, restored = capture_and_restore(drupal_db, mysql_target_db, sanitize_config(preset="drupal"), tmp_path)
    source_dump = "\n".join(str(r) for t in read_tables(drupal_db) for r in read_rows(drupal_db, t)).casefold()
    assert leaked(DRUPAL_FORM_PERSONAL, source_dump) == DRUPAL_FORM_PERSONAL  # the search finds them at the source
    assert leaked(DRUPAL_FORM_PERSONAL, stored, restored) == []

    values = {(sid, name, prop): value for sid, name, prop, value in
              mysql_target_db.query("SELECT sid, name, property, value FROM webform_submission_data WHERE sid > 100")}
    user_mail = mysql_target_db.query("SELECT mail FROM users_field_data WHERE uid = %s", (registered.uid,))[0][0]
    assert values[(102, "email", "")] == user_mail  # the same person, the same pseudonym
    assert values[(101, "email", "")].endswith("@example.com") and values[(103, "courriel", "")].endswith("@example.com")
    assert values[(103, "coordonnees", "email")].endswith("@example.com")
    assert len(values[(101, "name", "")].split()) == 2  # a full name for a full name
    assert values[(103, "accepte_cgu", "")] == "1" and values[(103, "nombre_enfants", "")] == "3"  # options kept
    assert values[(103, "ville", "")] == "Springfield"
    assert values[(103, "code_postal", "")].isdigit() and len(values[(103, "code_postal", "")]) == 5
    assert values[(103, "date_de_naissance", "")][:2] == "19" and values[(103, "date_de_naissance", "")][4] == "-"
    assert "example.com" in values[(103, "site_perso", "")]
    (log_data,) = mysql_target_db.query("SELECT data FROM webform_submission_log")[0]
    assert phpserialize.loads(log_data)  # still a PHP array Drupal can read
    assert mysql_target_db.query("SELECT COUNT(*) FROM key_value_expire")[0][0] == 0
    assert mysql_target_db.query("SELECT data FROM webform_submitted_data WHERE cid = 4")[0][0] == "2"
    address = mysql_target_db.query("SELECT field_adresse_country_code, field_adresse_locality, field_adresse_postal_code "
                                    "FROM user__field_adresse")[0]
    assert address[0] == "FR" and address[1] == "Springfield" and address[2] != "29470" and len(address[2]) == 5
    assert mysql_target_db.query("SELECT field_newsletter_value FROM user__field_newsletter")[0][0] == 1


# --- WordPress: usermeta, contact-form plugins ------------------------------------------------

P = "wp_"
WP_DDL = {
    "users": "(ID bigint unsigned PRIMARY KEY AUTO_INCREMENT, user_login varchar(60) NOT NULL UNIQUE, user_pass varchar(255), "
             "user_nicename varchar(50), user_email varchar(100), user_url varchar(100), user_activation_key varchar(255), "
             "display_name varchar(250))",
    "usermeta": "(umeta_id bigint unsigned PRIMARY KEY AUTO_INCREMENT, user_id bigint unsigned, meta_key varchar(255), meta_value longtext)",
    "options": "(option_id bigint unsigned PRIMARY KEY AUTO_INCREMENT, option_name varchar(191) UNIQUE, option_value longtext)",
    "posts": "(ID bigint unsigned PRIMARY KEY AUTO_INCREMENT, post_author bigint unsigned, post_content longtext, post_title text, "
             "post_excerpt text, post_status varchar(20), post_password varchar(255), post_name varchar(200), post_type varchar(20))",
    "postmeta": "(meta_id bigint unsigned PRIMARY KEY AUTO_INCREMENT, post_id bigint unsigned, meta_key varchar(255), meta_value longtext)",
    "comments": "(comment_ID bigint unsigned PRIMARY KEY AUTO_INCREMENT, comment_author tinytext, comment_author_email varchar(100), "
                "comment_author_url varchar(200), comment_author_IP varchar(100), comment_content text)",
    "wpforms_entries": "(entry_id bigint PRIMARY KEY AUTO_INCREMENT, form_id bigint, fields longtext, meta longtext, "
                       "ip_address varchar(128), user_agent varchar(256))",
    "wpforms_entry_fields": "(id bigint PRIMARY KEY AUTO_INCREMENT, entry_id bigint, form_id bigint, field_id int, value longtext)",
    "gf_entry": "(id int PRIMARY KEY AUTO_INCREMENT, form_id int, ip varchar(45), source_url varchar(200), user_agent varchar(250))",
    "gf_entry_meta": "(id bigint PRIMARY KEY AUTO_INCREMENT, form_id int, entry_id int, meta_key varchar(255), meta_value longtext)",
    "gf_entry_notes": "(id int PRIMARY KEY AUTO_INCREMENT, entry_id int, user_name varchar(250), value longtext)",
    "gf_draft_submissions": "(uuid char(32) PRIMARY KEY, email varchar(255), ip varchar(45), submission longtext)",
    "db7_forms": "(form_id bigint PRIMARY KEY AUTO_INCREMENT, form_post_id bigint, form_value longtext)",
}

WP_PERSONAL = DRUPAL_FORM_PERSONAL[:15] + ["Erwan Le Gall", "Sandrine Riou", "Gwenaëlle Kerboriou", "86.246.12.3",
                                           "2a01:e35:2f0c:ab80::17"]


def test_wordpress_contact_plugins_and_profile_meta(mysql_db, mysql_target_db, tmp_path) -> None:  # noqa: ANN001
    first, last, mail, phone, street = ERWAN
    s_first, s_last, s_mail, s_phone, s_street = SANDRINE
    g_first, g_last, g_mail, g_phone, g_street = GWEN
    wpforms_fields = json.dumps({
        "1": {"name": "Nom", "value": f"{first} {last}", "id": 1, "type": "name", "first": first, "middle": "", "last": last},
        "2": {"name": "E-mail", "value": mail, "id": 2, "type": "email"},
        "3": {"name": "Adresse", "value": street, "id": 3, "type": "address", "address1": street, "city": "Plougastel", "postal": "29470"},
        "4": {"name": "Message", "value": f"Merci, {first}, tél. {phone}", "id": 4, "type": "textarea"},
    }, ensure_ascii=False)
    seed = [
        *(f"CREATE TABLE `{P}{name}` {ddl} DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci" for name, ddl in WP_DDL.items()),
    ]
    mysql_db.execute(*seed)
    conn = mysql_db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f"INSERT INTO {P}users VALUES (1, 'sriou', '$P$Bxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx', 'sriou', %s, '', '', %s)",
                        (s_mail, f"{s_first} {s_last}"))
            cur.executemany(f"INSERT INTO {P}usermeta (user_id, meta_key, meta_value) VALUES (1, %s, %s)", [
                ("first_name", s_first), ("last_name", s_last), ("nickname", "sriou"),
                ("billing_phone", s_phone), ("billing_address_1", s_street),
                # a profile plugin's keys, in French, and WordPress' own settings
                ("telephone_fixe", g_phone), ("prenom_conjoint", g_first), ("nom_conjoint", g_last),
                ("adresse_livraison", g_street), ("contact_secours", f"{g_first} {g_last} <{g_mail}>"),
                ("last_login_ip", "86.246.12.3"), ("ip_inscription", "2a01:e35:2f0c:ab80::17"),
                ("rich_editing", "true"), ("locale", "fr_FR"), ("admin_color", "fresh"),
                ("wp_capabilities", 'a:1:{s:10:"subscriber";b:1;}'),
            ])
            cur.execute(f"INSERT INTO {P}options (option_name, option_value) VALUES ('blogname', 'Ti Coz')")
            cur.executemany(f"INSERT INTO {P}posts (ID, post_author, post_content, post_title, post_excerpt, post_status, "
                            "post_password, post_name, post_type) VALUES (%s, 1, %s, %s, '', 'publish', '', %s, %s)", [
                                (10, "Bienvenue sur notre site.", "Accueil", "accueil", "page"),
                                (11, f"your-name: {first} {last}\nyour-email: {mail}\nyour-message: appelez le {phone}",
                                 f"Demande de {first} {last}", "demande-erwan-le-gall", "flamingo_inbound"),
                                (12, "", mail, "erwan-legall-orange-breizh", "flamingo_contact"),
                                (13, f"AUTHOR: {g_first} {g_last}\nAUTHOR EMAIL: {g_mail}\nIP: 86.246.12.3", f"{g_first} {g_last} - 2024",
                                 "gwenaelle-kerboriou-2024", "feedback"),
                            ])
            cur.executemany(f"INSERT INTO {P}postmeta (post_id, meta_key, meta_value) VALUES (%s, %s, %s)", [
                (11, "_field_your-name", f"{first} {last}"), (11, "_field_your-email", mail), (11, "_field_your-tel", phone),
                (11, "_field_menu-choix", php([("0", "Option A"), ("1", street)])),
                (11, "_from", f"{first} {last} <{mail}>"), (11, "_from_name", f"{first} {last}"), (11, "_from_email", mail),
                (11, "_meta", php([("remote_ip", "86.246.12.3"), ("user_agent", "Mozilla/5.0"), ("url", "https://ti-coz.example/contact")])),
                (12, "_email", mail), (12, "_name", f"{first} {last}"), (12, "_props", php([("first_name", first), ("last_name", last)])),
                (13, "_feedback_author_email", g_mail), (13, "_feedback_author", f"{g_first} {g_last}"),
                (20, "_field_5", s_phone),  # Ninja Forms
                (10, "_wp_page_template", "default"), (10, "_edit_lock", "1700000000:1"),
            ])
            cur.execute(f"INSERT INTO {P}comments (comment_author, comment_author_email, comment_author_url, comment_author_IP, "
                        f"comment_content) VALUES (%s, %s, '', '86.246.12.3', %s)", (f"{s_first} {s_last}", s_mail, f"Écrivez-moi: {s_mail}"))
            cur.execute(f"INSERT INTO {P}wpforms_entries (form_id, fields, meta, ip_address, user_agent) VALUES (5, %s, '', "
                        "'2a01:e35:2f0c:ab80::17', 'Mozilla/5.0')", (wpforms_fields,))
            cur.executemany(f"INSERT INTO {P}wpforms_entry_fields (entry_id, form_id, field_id, value) VALUES (1, 5, %s, %s)",
                            [(1, f"{first} {last}"), (2, mail), (4, phone)])
            cur.execute(f"INSERT INTO {P}gf_entry (form_id, ip, source_url, user_agent) VALUES (2, '86.246.12.3', %s, 'x')",
                        (f"https://ti-coz.example/contact?email={s_mail}",))
            cur.executemany(f"INSERT INTO {P}gf_entry_meta (form_id, entry_id, meta_key, meta_value) VALUES (2, 1, %s, %s)",
                            [("1.3", s_first), ("1.6", s_last), ("2", s_mail), ("3", s_phone), ("4.1", s_street), ("5", "1"),
                             ("6", php([("0", s_first), ("1", s_mail)]))])
            cur.execute(f"INSERT INTO {P}gf_entry_notes (entry_id, user_name, value) VALUES (1, %s, %s)",
                        (f"{g_first} {g_last}", f"Rappelée par {g_first}, {g_phone}"))
            cur.execute(f"INSERT INTO {P}gf_draft_submissions VALUES ('abc', %s, '86.246.12.3', %s)", (g_mail, json.dumps({"1": g_last})))
            cur.execute(f"INSERT INTO {P}db7_forms (form_post_id, form_value) VALUES (42, %s)",
                        (php([("cfdb7_status", "unread"), ("your-name", f"{first} {last}"), ("your-email", mail), ("your-message", f"Je suis {last}")]),))
        conn.commit()
    finally:
        conn.close()

    stored, restored = capture_and_restore(mysql_db, mysql_target_db, sanitize_config(preset="wordpress"), tmp_path)
    source_dump = "\n".join(str(r) for t in read_tables(mysql_db) for r in read_rows(mysql_db, t)).casefold()
    assert leaked(WP_PERSONAL, source_dump) == WP_PERSONAL
    assert leaked(WP_PERSONAL, stored, restored) == []

    meta = dict(mysql_target_db.query(f"SELECT meta_key, meta_value FROM {P}usermeta"))
    assert (meta["rich_editing"], meta["locale"], meta["admin_color"]) == ("true", "fr_FR", "fresh")  # settings kept
    assert meta["wp_capabilities"] == 'a:1:{s:10:"subscriber";b:1;}'
    assert meta["contact_secours"].endswith("@example.com>")  # scrubbed: the address inside replaced
    posts = {r[0]: r[1:] for r in mysql_target_db.query(f"SELECT ID, post_content, post_title, post_name FROM {P}posts")}
    assert posts[10] == ("Bienvenue sur notre site.", "Accueil", "accueil")  # the site's content untouched
    assert posts[12][1].endswith("@example.com")  # a Flamingo contact's title is its address
    postmeta = {(r[0], r[1]): r[2] for r in mysql_target_db.query(f"SELECT post_id, meta_key, meta_value FROM {P}postmeta")}
    for key in ((11, "_field_menu-choix"), (11, "_meta"), (12, "_props")):
        assert phpserialize.loads(postmeta[key].encode()), key  # still PHP arrays the plugins can read
    assert postmeta[(10, "_edit_lock")] == "1700000000:1" and postmeta[(10, "_wp_page_template")] == "default"
    fields = json.loads(mysql_target_db.query(f"SELECT fields FROM {P}wpforms_entries")[0][0])
    assert fields["2"]["value"].endswith("@example.com") and fields["1"]["name"] == "Nom" and fields["3"]["city"] == "Springfield"
    gf = dict(mysql_target_db.query(f"SELECT meta_key, meta_value FROM {P}gf_entry_meta"))
    assert gf["5"] == "1" and gf["2"].endswith("@example.com") and phpserialize.loads(gf["6"].encode())
    assert mysql_target_db.query(f"SELECT COUNT(*) FROM {P}gf_draft_submissions")[0][0] == 0
    form_value = mysql_target_db.query(f"SELECT form_value FROM {P}db7_forms")[0][0]
    assert phpserialize.loads(form_value.encode())


# --- guess, value by value --------------------------------------------------------------------

GUESS = build_action(ActionSpec("guess"), Target(kind="text"), ActionEnv(Keyed(b"guess-secret")))


@settings(max_examples=300, deadline=None)
@given(st.emails() | st.ip_addresses().map(str) | st.from_regex(r"\+?[1-9][0-9]{1,2}( [0-9]{2,4}){3,4}", fullmatch=True)
       | st.text(alphabet=st.characters(categories=("L", "Zs")), min_size=4, max_size=60).filter(lambda t: t.strip()))
def test_guess_lets_no_typed_value_through(value: str) -> None:
    out = GUESS(value)
    assert out.strip() != value.strip()
    assert value.strip().casefold() not in out.casefold() or len(value.strip()) < 4


@pytest.mark.parametrize(("value", "shape"), [
    ("erwan.legall@orange.fr", r"[a-z]+\.[a-z]+\.[0-9a-f]{15}@example\.com"),
    ("2a01:e35::17", r"2001:db8:[0-9a-f:]+"), ("86.246.12.3", r"(192\.0\.2|198\.51\.100|203\.0\.113)\.\d+"),
    ("06 98 76 54 32", r"0\d \d\d \d\d \d\d \d\d"), ("29200", r"\d{5}"), ("1979-04-23", r"19\d\d-\d\d-\d\d"),
    ("https://erwan.example.bzh/", r"https://www\.example\.com/.+"), ("1", "1"), ("", ""),
])
def test_guess_keeps_the_shape(value: str, shape: str) -> None:
    assert re.fullmatch(shape, GUESS(value)), GUESS(value)


def test_branches_remembered_per_key_only_when_the_keys_decide() -> None:
    from clonekit.schema import Column, Table

    table = Table("form_data", (Column("id", "int", "int(11)", nullable=False, unique=True),
                                Column("field", "varchar", "varchar(64)", max_chars=64),
                                Column("value", "longtext", "longtext")), primary_key=("id",))
    rules = {"form_data": {"columns": {"value": [
        {"when": "field LIKE '%courriel%' AND value LIKE '%@%'", "use": "email"},  # reads the value: never remembered
        {"when": "field LIKE '%nom%'", "use": {"guess": "last_name"}},
        {"use": "keep"},
    ]}}}
    transform = build_planner(sanitize_config(tables=rules, strict=False)).plan([table])["form_data"].transform
    assert transform is not None
    rows = [(1, "courriel", "sandrine.riou@wanadoo-breizh.example.fr"), (2, "courriel", "pas d'adresse"),
            (3, "nom", "Riou"), (4, "nom", "Kerboriou"), (5, "ville", "Brest"), (6, "courriel", "gwen@laposte-breizh.example.fr")]
    out = [transform(r)[2] for r in rows * 2]  # twice: the second pass comes from the remembered branches
    assert out[:6] == out[6:]
    assert out[0].endswith("@example.com") and out[5].endswith("@example.com") and out[1] == "pas d'adresse"
    assert out[2] != "Riou" and out[3] != "Kerboriou" and out[4] == "Brest"


@settings(max_examples=300, deadline=None)
@given(
    patterns=st.lists(st.text(alphabet="ab%_\\", min_size=1, max_size=5), min_size=2, max_size=6),
    a=st.none() | st.text(alphabet="abAB_%\\", max_size=6), b=st.none() | st.integers(0, 2),
)
def test_or_of_likes_is_one_scan_with_the_same_answers(patterns: list[str], a, b) -> None:  # noqa: ANN001
    from clonekit.sanitize import when as when_lang

    quoted = [p.replace("'", "''") for p in patterns]
    expr = " OR ".join([f"a LIKE '{p}'" for p in quoted] + ["b = 1"])
    try:
        node = when_lang.parse(expr)
    except when_lang.WhenSyntaxError:
        return
    index = {"a": 0, "b": 1}
    merged = when_lang.compile_predicate(node, index)((a, b))
    singles = [when_lang.compile_predicate(when_lang.parse(f"a LIKE '{p}'"), index)((a, b)) for p in quoted]
    singles.append(when_lang.compile_predicate(when_lang.parse("b = 1"), index)((a, b)))
    expected = True if True in singles else None if None in singles else False
    assert merged is expected


def test_column_globs_in_rules_and_a_column_name_wins() -> None:
    from clonekit.schema import Column, Table

    table = Table("crm_contacts", (Column("id", "int", "int(11)", nullable=False, unique=True),
                                   Column("work_email", "varchar", "varchar(200)", max_chars=200),
                                   Column("home_email", "varchar", "varchar(200)", max_chars=200),
                                   Column("email_count", "int", "int(11)")), primary_key=("id",))
    rules = {"crm_*": {"columns": {"*email*": "email", "home_email": "redact"}}}
    policy = build_planner(sanitize_config(tables=rules)).plan([table])["crm_contacts"]  # strict: all covered
    assert policy.transform is not None
    out = policy.transform((1, "erwan@orange-breizh.example.fr", "erwan@home-breizh.example.fr", 3))
    assert out[1].endswith("@example.com") and out[2] == "redacted" and out[3] == 3  # the int is not an address
