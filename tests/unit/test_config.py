"""The TOML configuration: a value of the wrong type is an error naming its key, at load."""

import pytest

from streams.cli import main
from streams.config import ConfigError, load_config


@pytest.mark.parametrize("toml,key", [
    ('[parse]\nyear = "2024"', "year"),            # was: every line tagged _parser_error, exit 0
    ('[parse]\nmax_line = "big"', "max_line"),     # same
    ('[parse]\ntimezone = 5', "timezone"),         # was: a traceback
    ('[parse]\npatterns_dirs = "/tmp"', "patterns_dirs"),  # was: a traceback
    ('[output]\ndir = 5', "dir"),                  # was: a traceback
    ('[geoip]\nenabled = "no"', "enabled"),        # was: "no" taken as true
    ('[run]\nqueue_size = 1.5', "queue_size"),
    ('[index]\nsources = ["riemann", 3]', "sources"),
    ('[listeners.relp]\nport = "2514"', "port"),
])
def test_wrong_type_names_the_key(tmp_path, toml, key):
    conf = tmp_path / "streams.toml"
    conf.write_text(toml + "\n")
    with pytest.raises(ConfigError, match=rf"streams\.toml .*\b{key} must be "):
        load_config(conf)


def test_a_section_that_is_not_a_table_is_named_as_such(tmp_path):
    conf = tmp_path / "streams.toml"
    conf.write_text("parse = 5\n")  # was: "unknown section [parse]", a section it knows
    with pytest.raises(ConfigError, match=r"parse must be a table"):
        load_config(conf)


def test_right_types_load(tmp_path):
    conf = tmp_path / "streams.toml"
    conf.write_text('[parse]\nyear = 2024\npatterns_dirs = ["/tmp"]\n[index]\ndefault_ttl = 30\n'
                    '[listeners.relp]\nmax_message = 1024\n[geoip.fields]\n"source.ip" = "source"\n')
    cfg = load_config(conf)
    assert cfg.parse.year == 2024 and [str(p) for p in cfg.parse.patterns_dirs] == ["/tmp"]
    assert cfg.index.default_ttl == 30 and cfg.listeners.relp.max_message == 1024


def test_wrong_type_is_a_configuration_error_exit_2(tmp_path, capsysbinary):
    conf = tmp_path / "streams.toml"
    conf.write_text('[parse]\nyear = "2024"\n')
    log = tmp_path / "a.log"
    log.write_text("Jan  1 00:00:00 h sshd[1]: x\n")
    assert main(["replay", "-q", "--no-geoip", "--no-progress", "--config", str(conf), "-o", str(tmp_path / "o"),
                 str(log)]) == 2
    _, err = capsysbinary.readouterr()
    assert b"year must be an integer" in err
