"""Pure parts of working on a clone: slugs, --build/--image flags, previews.services/hooks config,
the compose document of a preview with overridden services, and the commands' help."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from clonekit.cli import cli, main
from clonekit.config import load_config
from clonekit.errors import ConfigError, UsageError
from clonekit.previews import code as pc
from clonekit.previews.slug import slugify
from clonekit.runtime.build import BuildInputs, check_inputs, preview_image_tag

BASE = """
project: news
sources:
  prod:
    database: {engine: mariadb, host: 127.0.0.1, port: 3306, name: news, user: ro, password_env: PW}
previews:
"""


@pytest.mark.parametrize(("branch", "slug"), [
    ("feature/Élan_42", "feature-elan-42"),
    ("Fix--Bug #12", "fix-bug-12"),
    ("--main--", "main"),
    ("release/2026.11", "release-2026-11"),
])
def test_slug(branch: str, slug: str) -> None:
    assert slugify(branch) == slug


def test_long_slugs_stay_dns_labels_and_differ() -> None:
    a, b = slugify("feature/" + "x" * 80 + "-one"), slugify("feature/" + "x" * 80 + "-two")
    assert len(a) <= 63 and len(b) <= 63 and a != b
    with pytest.raises(UsageError):
        slugify("///")


def test_slug_command() -> None:
    result = CliRunner().invoke(cli, ["slug", "feature/Élan_42"])
    assert result.exit_code == 0 and result.output.strip() == "feature-elan-42"
    result = CliRunner().invoke(cli, ["--json", "slug", "feature/Élan_42"])
    assert '"slug": "feature-elan-42"' in result.output


def test_build_and_image_flags(tmp_path: Path) -> None:
    request = pc.parse_build_flag("app=branch:docker/app.Dockerfile", cwd=tmp_path)
    assert request.build == BuildInputs(str(tmp_path / "branch"), "docker/app.Dockerfile")
    assert pc.parse_build_flag("app=.", cwd=tmp_path).build == BuildInputs(str(tmp_path), None)
    assert pc.parse_image_flag("worker=registry.example.com/news/worker:main").image == "registry.example.com/news/worker:main"
    for bad in ("app", "=.", "app="):
        with pytest.raises(UsageError):
            pc.parse_build_flag(bad)
        with pytest.raises(UsageError):
            pc.parse_image_flag(bad)


def test_requests_are_checked_together_before_anything(tmp_path: Path) -> None:
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "Dockerfile").write_text("FROM scratch\n")
    requests = [pc.CodeRequest("app", build=BuildInputs(str(tmp_path / "missing"))),
                pc.CodeRequest("nope", image="x"), pc.CodeRequest("db", image="y"),
                pc.CodeRequest("web", build=BuildInputs(str(tmp_path / "ok"), "other.Dockerfile"))]
    with pytest.raises(UsageError) as err:
        pc.check_requests(requests, {"app": {}, "db": {}, "web": {}}, db_service="db")
    text = str(err.value)
    assert "does not exist" in text and "no service 'nope'" in text and "database service" in text
    assert "no Dockerfile at" in text and err.value.exit_code == 2
    assert check_inputs(BuildInputs(str(tmp_path / "ok")), "x") == []


def test_flags_replace_the_configured_override_of_their_service() -> None:
    configured = [pc.CodeRequest("app", image="a"), pc.CodeRequest("worker", image="w")]
    merged = pc.merge_requests(configured, [pc.CodeRequest("app", image="b")])
    assert [(r.service, r.image) for r in merged] == [("app", "b"), ("worker", "w")]
    with pytest.raises(UsageError):
        pc.merge_requests([], [pc.CodeRequest("app", image="b"), pc.CodeRequest("app", image="c")])


def test_config_services_and_hooks(tmp_path: Path) -> None:
    path = tmp_path / "clonekit.yml"
    path.write_text(BASE + """  services:
    app: {build: {context: site, dockerfile: docker/Dockerfile, args: {PHP: "8.2"}, target: prod}}
    cron: {build: .}
    worker: {image: registry.example.com/w:main}
  hooks:
    after_restore:
      - {service: app, run: "drush deploy -y"}
""")
    cfg = load_config(path).previews
    assert cfg.services["app"].build is not None and cfg.services["app"].build.context == str(tmp_path / "site")
    assert cfg.services["app"].build.args == {"PHP": "8.2"} and cfg.services["app"].build.target == "prod"
    assert cfg.services["cron"].build is not None and cfg.services["cron"].build.context == str(tmp_path)
    assert cfg.services["worker"].image == "registry.example.com/w:main"
    assert [(h.service, h.run) for h in cfg.hooks["after_restore"]] == [("app", "drush deploy -y")]
    assert [r.service for r in pc.from_config(cfg.services)] == ["app", "cron", "worker"]


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "clonekit.yml"
    path.write_text(BASE + """  services:
    app: {build: ., image: x}
    web: {}
  hooks:
    after_restore: [{service: app}]
    before_coffee: []
""")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    for expected in ("previews.services.app", "previews.services.web", "previews.hooks.after_restore[0].run",
                     "previews.hooks.before_coffee"):
        assert expected in text


def test_overridden_services_run_their_image_and_skip_golden_files_images() -> None:
    document = {"services": {"app": {"image": "prod/app:1", "volumes": ["files-x:/srv/files"]},
                             "db": {"image": "mariadb"}}, "volumes": {"files-x": {}}}
    code = [pc.CodeOverride("app", "build", preview_image_tag("news", "pr-7", "app"), context="/src")]
    view = pc.without_overridden(document, code)
    assert set(view["services"]) == {"db"} and view["volumes"] is document["volumes"]
    pc.apply(document, code)
    assert document["services"]["app"]["image"] == "clonekit-preview/news-pr-7-app:latest"
    assert code[0].describe() == "app=/src"
    with pytest.raises(Exception, match="not in the preview"):
        pc.apply(document, [pc.CodeOverride("ghost", "image", "x")])


def test_code_record_round_trip(tmp_path: Path) -> None:
    code = (pc.CodeOverride("app", "build", "t:latest", "/src", None, {"A": "1"}, None, "a" * 40, "sha256:1"),
            pc.CodeOverride("worker", "image", "r/w:main"))
    pc.save(tmp_path, code)
    assert pc.load(tmp_path) == code
    assert pc.load(tmp_path / "none") == ()
    (tmp_path / pc.CODE_FILE).write_text("{not json")
    with pytest.raises(Exception, match="cannot read"):
        pc.load(tmp_path)


@pytest.mark.parametrize("name", ["exec", "logs", "db", "slug"])
def test_new_commands_have_an_example(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0 and "Example:" in result.output and f"clonekit {name}" in result.output


def test_code_flags_in_help() -> None:
    for name in ("clone", "restore", "refresh"):
        output = CliRunner().invoke(cli, [name, "--help"]).output
        assert "--build SERVICE=PATH[:DOCKERFILE]" in output and "--image SERVICE=REF" in output
    assert "--code" in CliRunner().invoke(cli, ["refresh", "--help"]).output


def test_refresh_all_refuses_code_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["refresh", "--all", "--code"])
    assert exit_.value.code == 2
    assert "give its NAME" in capsys.readouterr().err


def test_mount_config_flags_and_compose(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    path = tmp_path / "clonekit.yml"
    path.write_text(BASE + """  services:
    app: {mount: {".": /var/www/html/}}
    web: {image: nginx:1, mount: {site: /srv}}
""")
    config = load_config(path)
    assert config.previews.services["app"].mounts == {str(tmp_path): "/var/www/html"}
    requests = pc.from_config(config.previews.services)
    assert [(r.service, r.image, dict(r.mounts)) for r in requests] == [
        ("app", None, {str(tmp_path): "/var/www/html"}), ("web", "nginx:1", {str(tmp_path / "site"): "/srv"})]
    # a flag: relative to the working folder; --mount and --build of one service go together
    flag = pc.parse_mount_flag("app=site:/var/www/html", cwd=tmp_path)
    assert flag.mounts == {str(tmp_path / "site"): "/var/www/html"}
    merged = pc.merge_requests(requests, [flag, pc.CodeRequest("app", image="app:branch")])
    assert [(r.service, r.image, dict(r.mounts)) for r in merged][0] == (
        "app", "app:branch", {str(tmp_path / "site"): "/var/www/html"})
    for bad in ("app=/x", "app=.:relative", "=.:/x"):
        with pytest.raises(UsageError, match="--mount"):
            pc.parse_mount_flag(bad)
    # the project folder holds the store and the state folder: they exist, are not mountable, and are covered
    assert pc.check_mounts(config, requests[0]) == []
    assert pc.check_mounts(config, pc.CodeRequest("app", mounts={str(tmp_path / "nope"): "/x"}))[0].endswith("no such folder")
    (tmp_path / ".clonekit" / "store").mkdir(parents=True)
    inside = pc.check_mounts(config, pc.CodeRequest("app", mounts={str(tmp_path / ".clonekit" / "store"): "/x"}))
    assert any("inside clonekit's store" in p for p in inside)
    override = pc.CodeOverride("app", "mount", "", mounts={str(tmp_path): "/var/www/html"})
    document = {"services": {"app": {"image": "prod/app:1", "volumes": ["files-x:/var/www/html", "up:/srv/up"]}}}
    pc.apply(document, [override], config)
    app = document["services"]["app"]
    assert app["image"] == "prod/app:1"  # production's image, the live tree over its code
    assert app["volumes"] == ["up:/srv/up", f"{tmp_path}:/var/www/html:rw"]
    assert app["tmpfs"] == ["/var/www/html/.clonekit:ro,size=4k"]  # (the store is inside .clonekit here)
    pc.apply(document, [override], config)  # refresh --code applies it to the written document again
    assert app["volumes"] == ["up:/srv/up", f"{tmp_path}:/var/www/html:rw"]
    assert app["tmpfs"] == ["/var/www/html/.clonekit:ro,size=4k"]
    assert override.describe() == f"app={tmp_path} mounted at /var/www/html"


def test_mount_needs_the_local_engine(tmp_path: Path) -> None:
    path = tmp_path / "clonekit.yml"
    path.write_text(BASE + """  docker_host: ssh://deploy@previews.example.net
  services:
    app: {mount: {".": /var/www/html}}
""")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "previews.services.app.mount" in str(err.value) and "local Docker engine" in str(err.value)
    path.write_text(BASE + "  docker_host: ssh://deploy@previews.example.net\n")
    config = load_config(path)
    problems = pc.check_mounts(config, pc.CodeRequest("app", mounts={str(tmp_path): "/var/www/html"}))
    assert len(problems) == 1 and "local Docker engine" in problems[0]


def test_after_materialize_hooks_must_name_a_service_of_the_snapshot(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from clonekit.golden import check_hooks

    path = tmp_path / "clonekit.yml"
    path.write_text(BASE + """  hooks:
    after_materialize:
      - {service: web, run: "true"}
      - {service: app, run: "drush cr"}
""")
    config = load_config(path)
    assert [h.run for h in config.previews.hooks["after_materialize"]] == ["true", "drush cr"]
    manifest = SimpleNamespace(id="prod-1", services={"services": {"web": {}, "db": {}}})
    with pytest.raises(ConfigError) as err:
        check_hooks(config, manifest)
    assert err.value.problems == ["previews.hooks.after_materialize[1].service: snapshot prod-1 has no service "
                                  "'app' (services: db, web)"]
    check_hooks(config, SimpleNamespace(id="prod-2", services={"services": {"web": {}, "app": {}}}))
