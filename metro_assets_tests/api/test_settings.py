"""The API's settings: defaults, and one clear line naming the variable for each bad value."""

from pathlib import Path

import pytest

from api.settings import ApiSettings, SettingError, load_api_settings


def test_defaults_and_overrides():
    assert load_api_settings({}) == ApiSettings(Path("data/serving.parquet"), 1000, 0.5, True)
    env = {"METRO_SERVING": " /srv/s.parquet ", "METRO_API_MAX_BATCH": "20", "METRO_API_RELOAD_SECONDS": "2",
           "METRO_API_FAST_PATH": "false"}
    assert load_api_settings(env) == ApiSettings(Path("/srv/s.parquet"), 20, 2.0, False)


def test_the_server_limits_default_to_what_docs_api_md_promises():
    limits = load_api_settings({})
    assert (limits.max_header_kb, limits.read_timeout_seconds, limits.max_connections) == (80, 10.0, 1000)
    env = {"METRO_API_MAX_HEADER_KB": "16", "METRO_API_READ_TIMEOUT_SECONDS": "2.5", "METRO_API_MAX_CONNECTIONS": "50"}
    limits = load_api_settings(env)
    assert (limits.max_header_kb, limits.read_timeout_seconds, limits.max_connections) == (16, 2.5, 50)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"METRO_API_MAX_BATCH": "0"}, "METRO_API_MAX_BATCH=0 must be between 1 and 100000"),
        ({"METRO_API_RELOAD_SECONDS": "soon"}, "METRO_API_RELOAD_SECONDS='soon' is not a number of seconds"),
        ({"METRO_API_RELOAD_SECONDS": "nan"}, "METRO_API_RELOAD_SECONDS=nan must be between 0.05 and 3600"),
        ({"METRO_API_RELOAD_SECONDS": "0"}, "METRO_API_RELOAD_SECONDS=0 must be between 0.05 and 3600"),
        ({"METRO_API_FAST_PATH": "maybe"}, "METRO_API_FAST_PATH='maybe' must be 1 or 0"),
        ({"METRO_API_MAX_HEADER_KB": "2048"}, "METRO_API_MAX_HEADER_KB=2048 must be between 1 and 1024"),
        ({"METRO_API_MAX_HEADER_KB": "8k"}, "METRO_API_MAX_HEADER_KB='8k' is not a whole number"),
        ({"METRO_API_READ_TIMEOUT_SECONDS": "inf"}, "METRO_API_READ_TIMEOUT_SECONDS=inf must be between 0.1 and 600"),
        ({"METRO_API_MAX_CONNECTIONS": "0"}, "METRO_API_MAX_CONNECTIONS=0 must be between 1 and 100000"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(env, message):
    with pytest.raises(SettingError) as caught:
        load_api_settings(env)
    assert str(caught.value) == message


def test_a_folder_is_not_a_snapshot(tmp_path):
    with pytest.raises(SettingError, match=f"METRO_SERVING={tmp_path} is a folder"):
        load_api_settings({"METRO_SERVING": str(tmp_path)})
