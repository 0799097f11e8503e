"""The double's server: routing by host and path, the proxy role, the request log, env()."""

import pytest
import requests

from cloudbuild.double import Double
from tests.gcp_double_fixture import call

pytest_plugins = ["tests.gcp_double_fixture"]


def test_env_points_every_client_at_the_double(double: Double):
    env = double.env()
    assert env["STORAGE_EMULATOR_HOST"] == double.url
    assert env["HTTP_PROXY"] == env["http_proxy"] == double.url
    assert env["HTTPS_PROXY"] == env["https_proxy"] == double.url
    assert env["NO_PROXY"] == env["no_proxy"] == ""
    assert env["VERTEX_API_ENDPOINT"] == "http://aiplatform.googleapis.test"
    assert double.url.startswith("http://127.0.0.1:")


def test_made_up_hosts_are_routed_by_their_api_name(double: Double):
    double.storage.create_bucket("routed")
    for host in ("storage.googleapis.test", "europe-west1-storage.googleapis.test"):
        response = call(double, "GET", f"http://{host}/storage/v1/b/routed")
        assert response.status_code == 200, host
        assert response.json()["name"] == "routed"
    assert double.requests()[-1]["host"] == "europe-west1-storage.googleapis.test"


def test_an_api_the_double_lacks_is_a_google_style_404(double: Double):
    response = call(double, "GET", "http://nothing.googleapis.test/v1/things")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["status"] == "NOT_FOUND"
    assert "nothing.googleapis.test/v1/things" in error["message"]


def test_the_vertex_api_is_not_reachable_by_path_alone(double: Double):
    # Many Google APIs share /v1/projects/...; only the host can tell them apart.
    response = requests.get(f"{double.url}/v1/projects/p/locations/r/customJobs/1", timeout=5)
    assert response.status_code == 404


def test_https_is_refused_so_nothing_leaves_the_machine(double: Double):
    with pytest.raises(requests.exceptions.ProxyError):
        call(double, "GET", "https://storage.googleapis.com/")
    entry = double.requests()[-1]
    assert (entry["method"], entry["host"], entry["status"]) == (
        "CONNECT",
        "storage.googleapis.com:443",
        403,
    )


def test_the_request_log_survives_a_restart(double: Double):
    requests.get(f"{double.url}/storage/v1/b/before", timeout=5)
    with Double(double.state_dir) as again:
        requests.get(f"{again.url}/storage/v1/b/after", timeout=5)
        paths = [entry["path"] for entry in again.requests()]
    assert paths == ["/storage/v1/b/before", "/storage/v1/b/after"]


def test_url_outside_the_with_block_is_an_error(tmp_path):
    with pytest.raises(RuntimeError, match="not running"):
        _ = Double(tmp_path).url
