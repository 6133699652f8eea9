from __future__ import annotations

from pathlib import Path

import pytest

from switchboard.config import ConfigError, load_settings, read_env_file, redact_dsn


def test_defaults_without_file_or_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings(environ={})
    assert s.ami.port == 5038
    assert s.routing.region_after_s == 15.0
    assert s.log.format == "text"


def test_file_then_env_precedence(tmp_path: Path) -> None:
    f = tmp_path / "sb.toml"
    f.write_text('[ami]\nport = 6000\nhost = "10.0.0.5"\n[routing]\nnation_after_s = 200\n')
    s = load_settings(f, environ={"SWITCHBOARD_AMI_PORT": "7000"})
    assert s.ami.port == 7000          # env beats file
    assert s.ami.host == "10.0.0.5"    # file beats default
    assert s.routing.nation_after_s == 200.0


def test_dsn_alias_and_bool_env(tmp_path: Path) -> None:
    s = load_settings(tmp_path / "missing.toml" if False else None,
                      environ={"SWITCHBOARD_DSN": "postgresql://u@h/db", "SWITCHBOARD_AMI_TLS": "yes"})
    assert s.database.dsn == "postgresql://u@h/db"
    assert s.ami.tls is True


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[ami]\nprot = 1\n", "ami.prot"),
        ("[ami]\nport = \"x\"\n", "ami.port"),
        ("[ami]\nport = 70000\n", "ami.port"),
        ("[amii]\nport = 1\n", "amii"),
        ("[log]\nformat = \"xml\"\n", "log.format"),
        ("[routing]\nring_timeout_s = -1\n", "routing.ring_timeout_s"),
        ("[ami]\ntls = 1\n", "ami.tls"),
    ],
)
def test_bad_file_values_name_the_key(tmp_path: Path, toml: str, key: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(toml)
    with pytest.raises(ConfigError) as exc:
        load_settings(f, environ={})
    assert exc.value.key == key
    assert key in str(exc.value)


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"SWITCHBOARD_AMI_PORT": "abc"}, "SWITCHBOARD_AMI_PORT"),
        ({"SWITCHBOARD_NOPE_X": "1"}, "SWITCHBOARD_NOPE_X"),
        ({"SWITCHBOARD_AMI_NOSUCH": "1"}, "SWITCHBOARD_AMI_NOSUCH"),
        ({"SWITCHBOARD_AMI_TLS": "maybe"}, "SWITCHBOARD_AMI_TLS"),
    ],
)
def test_bad_env_values_name_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          env: dict[str, str], key: str) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as exc:
        load_settings(environ=env)
    assert exc.value.key == key


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    f = tmp_path / "broken.toml"
    f.write_text("[ami\nport=1")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_settings(f, environ={})


def test_secret_file_and_repr_hides_secrets(tmp_path: Path) -> None:
    sf = tmp_path / "ami.secret"
    sf.write_text("s3cr3t-value\n")
    s = load_settings(environ={"SWITCHBOARD_AMI_SECRET_FILE": str(sf),
                               "SWITCHBOARD_DSN": "postgresql://u:pw123@h:5432/db"})
    assert s.ami.resolved_secret() == "s3cr3t-value"
    text = repr(s)
    assert "s3cr3t" not in text and "pw123" not in text
    assert redact_dsn("postgresql://u:pw123@h:5432/db") == "postgresql://u:***@h:5432/db"


def test_config_env_var_selects_file(tmp_path: Path) -> None:
    f = tmp_path / "x.toml"
    f.write_text("[http]\nport = 9999\n")
    s = load_settings(environ={"SWITCHBOARD_CONFIG": str(f), "SWITCHBOARD_NO_EXTENSIONS": "1"})
    assert s.http.port == 9999  # and SWITCHBOARD_NO_EXTENSIONS (not a setting) is no error


def test_read_env_file_reads_a_stack_env_as_source_would(tmp_path: Path) -> None:
    f = tmp_path / "stack.env"
    f.write_text("# written by stack-up\n\nSWITCHBOARD_AMI_PORT=5038\n  STACK_SIP_PORT = 5690 \n"
                 "QUOTED='a b'\nDOUBLE=\"x=y\"\nnot a setting\n")
    assert read_env_file(f) == {"SWITCHBOARD_AMI_PORT": "5038", "STACK_SIP_PORT": "5690",
                                "QUOTED": "a b", "DOUBLE": "x=y"}
