"""DockerEngine's label queries against the real engine."""

from __future__ import annotations

import uuid

from clonekit.runtime.docker import DockerEngine
from tests.support import PROXY_IMAGE


def test_containers_are_found_by_every_label_and_grouped_by_one(docker) -> None:
    project = f"ck-test-{uuid.uuid4().hex[:8]}"
    made = {
        name: docker.container.create(PROXY_IMAGE, name=f"{project}-{name}",
                                      labels={"test.project": project, "test.service": service})
        for name, service in (("a1", "app"), ("a2", "app"), ("d1", "db"))
    }
    other = docker.container.create(PROXY_IMAGE, name=f"{project}-x", labels={"test.project": "another"})
    try:
        engine = DockerEngine()
        found = engine.container_ids_by_label({"test.project": project}, "test.service")
        assert {service: sorted(ids) for service, ids in found.items()} == {
            "app": sorted([made["a1"].id, made["a2"].id]), "db": [made["d1"].id]}
        assert sorted(engine.ids("container", {"test.project": project, "test.service": "app"})) == sorted(found["app"])
        assert other.id in engine.ids("container", {"test.project": ""})  # an empty value: the label with any value
        assert engine.container_ids_by_label({"test.project": f"{project}-none"}, "test.service") == {}
    finally:
        docker.container.remove([*made.values(), other], force=True)
