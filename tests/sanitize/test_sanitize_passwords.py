"""The `password` action's formats: chosen by `format: auto` from the values seen, and each one
checked by an implementation that is not ours: PHP 8.2 (Debian's, in the clonekit/wordpress
image) with `password_verify`, `hash_pbkdf2`, `hash` and WordPress' own class-phpass.php."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess

import pytest

from clonekit.sanitize import passwords
from clonekit.sanitize.actions import PASSWORD_FORMATS, ActionEnv, ActionSpec, Keyed, Target, build_action
from clonekit.sanitize.passwords import check_password, format_of

DEV_PASSWORD = "letmein-Ünï"  # not ASCII: every format must hash the UTF-8 bytes, as PHP does
PHP_IMAGE = "clonekit/wordpress:6.1"

# one value each application writes (made up, in the application's layout) -> the format auto picks
SEEN = {
    "$P$BCbhHQ0o0N7F6yWHnvlV1L2YbR9tqD.": "wordpress",
    "$wp$2y$10$Kx1pHc6yqkVfVdN0mY8vmeJ9Wc6w0Qm3v1vQJ0x0m2lZ3e0xk0YtW": "wordpress",
    "$S$E6nKb0Oq8ZcVg8oGz0dYcT3m1p0kC1p0kC1p0kC1p0kC1p0kC1p0k": "drupal",
    "$2y$10$XDdOXA1CwvjK.TUE5.b4m.Ehw0GsKKb4jBbR04pRvLSd7cIvOxT.i": "bcrypt",  # Laravel, Symfony, Joomla 3.2+
    "$2y$12$abcdefghijklmnopqrstuuC9a2t1o6B7dL8bTn6bQe0aX3oYzZ5bW": "bcrypt",
    "$argon2id$v=19$m=65536,t=4,p=1$c2FsdHNhbHRzYWx0$0123456789abcdefghijklmnopqrstuvwxyzABCDEFG": "argon2id",
    "$argon2i$v=19$m=65536,t=4,p=1$c2FsdHNhbHRzYWx0$0123456789abcdefghijklmnopqrstuvwxyzABCDEFG": "argon2i",
    ":pbkdf2:sha512:30000:64:K9V4cQmVxvBj3yCg9qgGdA==:bm90IGEgcmVhbCBoYXNo": "mediawiki",
    ":pbkdf2-legacyB:!sha256:10000:128!:B:9e1a2b3c:0123456789abcdef0123456789abcdef": "mediawiki",
    ":B:9e1a2b3c:0123456789abcdef0123456789abcdef": "mediawiki",
    ":A:0123456789abcdef0123456789abcdef": "mediawiki",
    "0123456789abcdef0123456789abcdef:aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF": "joomla",  # Joomla <= 3.1
    "a" * 64 + ":kD8fT2pL9xQ4mN7vB1cR6zW3yH5jG0sA:1": "magento2",
    "b" * 64 + ":kD8fT2pL9xQ4mN7v:3_32_2_67108864": "magento2",  # argon2id generation
    "c" * 64 + ":kD8fT2pL9xQ4mN7vB1cR6zW3yH5jG0sA:1:2": "magento2",  # upgraded: sha256 then argon2id
    "5f4dcc3b5aa765d61d8327deb882cf99": "md5",
    "": "wordpress",
}


def env(secret: bytes = b"project-secret-for-tests") -> ActionEnv:
    return ActionEnv(Keyed(secret), dev_password=DEV_PASSWORD)


def password_fn(fmt: str = "auto", e: ActionEnv | None = None):  # noqa: ANN201
    return build_action(ActionSpec("password", {"format": fmt}), Target(kind="text", max_chars=255), e or env())


@pytest.mark.parametrize(("seen", "expected"), SEEN.items())
def test_auto_picks_the_format_of_the_values_it_sees(seen: str, expected: str) -> None:
    assert format_of(seen) == expected


@pytest.mark.parametrize("fmt", [f for f in PASSWORD_FORMATS if f != "auto"])
def test_every_format_verifies_and_is_stable(fmt: str) -> None:
    out = password_fn(fmt)("old value")
    assert (out == DEV_PASSWORD) if fmt == "plain" else check_password(DEV_PASSWORD, out)
    assert not check_password(DEV_PASSWORD + "x", out)
    assert password_fn(fmt)("another old value") == out  # the same bytes every night: rows deduplicate
    if fmt not in ("md5", "plain"):
        assert password_fn(fmt, env(b"another-project"))("old value") != out  # salted per project


def test_auto_writes_the_format_each_value_was_in() -> None:
    fn = password_fn()
    for seen, fmt in SEEN.items():
        if not seen:
            assert fn(seen) == ""  # no password stays no password
            continue
        out = fn(seen)
        assert format_of(out) == ("mediawiki" if fmt == "mediawiki" else fmt), seen
        assert check_password(DEV_PASSWORD, out)
    # bytes in (MediaWiki's user_password is VARBINARY), bytes out
    out = fn(b":B:9e1a2b3c:0123456789abcdef0123456789abcdef")
    assert isinstance(out, bytes) and out.startswith(b":pbkdf2:sha512:30000:64:")


def test_mediawiki_layout_matches_rfc6070_pbkdf2() -> None:
    # RFC 6070 test vector 1 in MediaWiki's layout: PBKDF2-HMAC-SHA1("password", "salt", 1, 20)
    expected = base64.b64encode(bytes.fromhex("0c60c80f961f0e71f3a9b524af6012062fe037a6")).decode()
    assert check_password("password", f":pbkdf2:sha1:1:20:{base64.b64encode(b'salt').decode()}:{expected}")
    # MediaWiki's old forms: :A: is md5(password), :B: is md5(salt-md5(password))
    md5 = hashlib.md5(b"password").hexdigest()  # noqa: S324
    assert check_password("password", f":A:{md5}")
    assert check_password("password", ":B:abc123:" + hashlib.md5(f"abc123-{md5}".encode()).hexdigest())  # noqa: S324


def test_slow_hashes_are_computed_once_per_password_and_format() -> None:
    passwords.hash_for.cache_clear()
    fn = password_fn("auto", env(b"cache-test"))
    for i in range(200):
        fn(f"$argon2id$v=19$m=65536,t=4,p=1$c2FsdHNhbHQ{i}$x")
        fn(f":pbkdf2:sha512:30000:64:salt{i}:x")
    info = passwords.hash_for.cache_info()
    assert info.misses == 2 and info.hits == 398


# --- checked by PHP ---------------------------------------------------------------------------

PHP_CHECKER = r"""
require '/usr/share/wordpress/wp-includes/class-phpass.php';
$cases = json_decode(stream_get_contents(STDIN), true);
$out = [];
foreach ($cases as [$format, $password, $hash]) {
    switch ($format) {
        case 'bcrypt': case 'argon2id': case 'argon2i':  // Laravel, Symfony, Joomla 4+: password_verify
            $ok = password_verify($password, $hash)
                && password_get_info($hash)['algoName'] === ['bcrypt' => 'bcrypt', 'argon2id' => 'argon2id', 'argon2i' => 'argon2i'][$format];
            break;
        case 'wordpress':  // WordPress' own phpass
            $ok = (new PasswordHash(8, true))->CheckPassword($password, $hash);
            break;
        case 'mediawiki':  // ':pbkdf2:' . algo:rounds:length:base64(salt):base64(hash_pbkdf2(raw))
            [, $type, $algo, $rounds, $length, $salt, $b64] = explode(':', $hash);
            $ok = $type === 'pbkdf2' && hash_equals($b64, base64_encode(
                hash_pbkdf2($algo, $password, base64_decode($salt), (int)$rounds, (int)$length, true)));
            break;
        case 'joomla':  // md5(password . salt) . ':' . salt
            [$md5, $salt] = explode(':', $hash);
            $ok = hash_equals($hash, md5($password . $salt) . ':' . $salt);
            break;
        case 'magento2':  // hash(sha256, salt . password) . ':' . salt . ':1'
            [$sha, $salt, $version] = explode(':', $hash, 3);
            $ok = $version === '1' && hash_equals($sha, hash('sha256', $salt . $password));
            break;
        case 'md5':
            $ok = hash_equals($hash, md5($password));
            break;
        default:
            $ok = null;
    }
    $out[] = $ok;
}
echo json_encode(['php' => PHP_VERSION, 'argon2' => defined('PASSWORD_ARGON2ID'), 'ok' => $out]);
"""


@pytest.mark.docker
def test_php_verifies_every_format(docker) -> None:  # noqa: ANN001 - the engine must answer
    cases = []
    for fmt in ("wordpress", "bcrypt", "argon2id", "argon2i", "mediawiki", "joomla", "magento2", "md5"):
        hashed = password_fn(fmt)("old value")
        cases += [[fmt, DEV_PASSWORD, hashed], [fmt, DEV_PASSWORD[:-1], hashed]]  # and a wrong password
    done = subprocess.run(
        ["docker", "run", "--rm", "-i", "--network", "none", "--entrypoint", "php", PHP_IMAGE, "-r", PHP_CHECKER],
        input=json.dumps(cases), capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    result = json.loads(done.stdout)
    assert result["argon2"] is True
    assert result["ok"] == [True, False] * (len(cases) // 2), list(zip([c[0] for c in cases], result["ok"], strict=True))
