from __future__ import annotations

import pytest

from diagnostics.facts import Image
from diagnostics.parsers.runtime import parse_images


def test_it_reads_crictl_images_json(fixture_bytes) -> None:
    images = parse_images(fixture_bytes("crictl-images.json"))
    assert images[0].ref == "registry.k8s.io/pause:3.9"
    assert images[0].id.startswith("sha256:")


def test_it_reads_the_crictl_images_table(fixture_bytes) -> None:
    images = parse_images(fixture_bytes("crictl-images.txt"))
    assert Image("registry.k8s.io/pause", "3.9", "e6f1816883972", "107MB") in images
    assert images[3].tag == "v1.29.4-nanoserver"


def test_it_reads_docker_images_with_spaces_in_created(fixture_bytes) -> None:
    images = parse_images(fixture_bytes("docker-images.txt"))
    assert images[0] == Image("mcr.microsoft.com/k8s/core/pause", "1.2.0", "a74b3a5a7f1e", "253MB")
    assert images[3].repository == "<none>" and images[3].tag == ""


def test_it_keeps_a_registry_port_in_the_repository() -> None:
    text = '{"images": [{"id": "sha256:1", "repoTags": ["registry.local:5000/pause:3.9"], "size": "1"}]}'
    assert parse_images(text)[0].repository == "registry.local:5000/pause"


def test_empty_output_means_no_images() -> None:
    assert parse_images("") == ()


def test_it_raises_value_error_on_other_text() -> None:
    with pytest.raises(ValueError, match="images"):
        parse_images('time=2025 level=fatal msg="connect: connection refused"\n')
