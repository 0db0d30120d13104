"""`make test` runs the Ray tests one after another on one xdist worker (conftest's `ray` group)."""

import pytest


@pytest.mark.ray
def test_ray_tests_run_in_one_xdist_group(request):
    """Under `--dist loadgroup` a grouped test's id carries its group: when a pytest/xdist pair drops it (pytest 9.2,
    pytest-xdist #1386) the Ray tests spread over both workers, each starting its own Ray and repeating module
    fixtures such as the demo run, and the suite slows by a minute or more without failing."""
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("not an xdist worker under --dist loadgroup")
    assert request.node.nodeid.endswith("@ray")
