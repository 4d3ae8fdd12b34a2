"""The pure parts of previews on a swarm: the stack file made from a preview's compose document,
and the choice of a node."""

from __future__ import annotations

import pytest

from clonekit.errors import PreviewError
from clonekit.runtime.compose import env_file_text, env_file_values
from clonekit.runtime.swarm import SwarmNode, choose_node, parse_memory, stack_document

DOCUMENT = {
    "name": "ck-shop-pr1",
    "services": {
        "db": {"image": "clonekit-golden/shop-db:prod-1", "restart": "unless-stopped",
               "labels": {"clonekit.preview": "pr1", "team": "web"}, "volumes": ["dbdata:/var/lib/mysql"]},
        "web": {"image": "clonekit-preview/shop-pr1-web:latest", "ports": ["127.0.0.1:8080:80"],
                "depends_on": {"db": {"condition": "service_started"}}, "env_file": ["web.env"],
                "labels": {"clonekit.preview": "pr1"}},
        "mailsink": {"image": "clonekit/busybox:latest", "labels": {}},
    },
    "networks": {"default": {"name": "ck-shop-pr1", "labels": {"clonekit.preview": "pr1"}}},
    "volumes": {"dbdata": {"name": "ck-shop-pr1-dbdata", "labels": {"clonekit.preview": "pr1"}}},
}


def test_stack_document_pins_every_service_and_names_own_images_in_the_registry() -> None:
    stack = stack_document(DOCUMENT, node="node-2", registry="reg.example:5000/")
    assert stack["version"] == "3.8" and set(stack["services"]) == {"db", "web", "mailsink"}
    db, web, mail = (stack["services"][n] for n in ("db", "web", "mailsink"))
    assert db["image"] == "reg.example:5000/clonekit-golden/shop-db:prod-1"
    assert web["image"] == "reg.example:5000/clonekit-preview/shop-pr1-web:latest"
    assert mail["image"] == "clonekit/busybox:latest"  # not clonekit's: pulled from where it comes from
    for spec in (db, web, mail):
        assert spec["deploy"]["placement"]["constraints"] == ["node.hostname == node-2"]
        assert spec["deploy"]["endpoint_mode"] == "dnsrr"  # no routing mesh (no IPVS needed)
        assert not {"restart", "depends_on", "ports", "build"} & set(spec)
    assert web["labels"]["com.docker.compose.project"] == "ck-shop-pr1" and web["labels"]["clonekit.node"] == "node-2"
    assert db["labels"]["team"] == "web" and db["deploy"]["labels"] == {"clonekit.preview": "pr1"}
    assert web["env_file"] == ["web.env"]
    assert stack["networks"]["default"] == {"name": "ck-shop-pr1", "labels": {"clonekit.preview": "pr1"},
                                            "driver": "overlay", "attachable": True}
    assert stack["volumes"] == DOCUMENT["volumes"]
    assert DOCUMENT["services"]["web"]["ports"] == ["127.0.0.1:8080:80"]  # the input is not changed


def test_stack_document_of_some_services() -> None:
    stack = stack_document(DOCUMENT, node="n", registry="r:5000", services=["db", "mailsink"])
    assert set(stack["services"]) == {"db", "mailsink"}


def test_the_node_with_most_free_memory_is_chosen() -> None:
    nodes = [SwarmNode("a", True, True, 8 << 30, 3 << 30), SwarmNode("b", True, True, 8 << 30, 1 << 30),
             SwarmNode("c", True, False, 64 << 30), SwarmNode("d", False, True, 64 << 30),
             SwarmNode("e", True, True, 64 << 30)]
    assert choose_node(nodes, "most-free-memory", ["a", "b", "c", "d"]).hostname == "b"  # e is not in previews.nodes
    assert choose_node(nodes, "a", ["a", "b"]).hostname == "a"
    assert choose_node([SwarmNode("y", True, True, 1), SwarmNode("x", True, True, 1)], "most-free-memory",
                       ["x", "y"]).hostname == "x"  # ties: by hostname
    with pytest.raises(PreviewError, match=r"c \(ready, not active\)"):
        choose_node(nodes, "c", ["a", "b", "c"])


def test_parse_memory() -> None:
    assert parse_memory("12.5MiB") == int(12.5 * (1 << 20))
    assert parse_memory(" 1GB ") == 10 ** 9
    assert parse_memory("0B") == 0 and parse_memory("--") == 0


def test_env_files_for_a_stack_are_unquoted() -> None:
    """compose strips an env file's quotes; a stack (as `docker run --env-file`) would keep them."""
    values = {"DB_PASSWORD": "p w$rd", "EMPTY": "", "URL": "https://x.test/?a=b"}
    quoted = env_file_text(values)
    assert "DB_PASSWORD='p w$rd'" in quoted.splitlines()
    assert env_file_values(quoted) == values
    assert env_file_text(values, quoted=False).splitlines() == ["DB_PASSWORD=p w$rd", "EMPTY=", "URL=https://x.test/?a=b"]
