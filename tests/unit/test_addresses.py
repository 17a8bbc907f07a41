"""Server addresses as users type them: normalised, or refused in one line naming the value."""

from __future__ import annotations

import pytest

from streams.addresses import elasticsearch_url, host_port


@pytest.mark.parametrize("given, url", [
    ("127.0.0.1:9200", "http://127.0.0.1:9200"),      # as Logstash's hosts: no scheme is http
    ("localhost", "http://localhost:9200"),
    ("http://es.example:9201/prefix", "http://es.example:9201/prefix"),
    ("https://es.example", "https://es.example"),     # the client's default for https: 443
    ("http://elastic:s3cret@es:9200", "http://elastic:s3cret@es:9200"),
    ("[::1]:9200", "http://[::1]:9200"),
    (" http://es ", "http://es:9200"),
])
def test_elasticsearch_urls_that_work(given, url):
    assert elasticsearch_url(given) == url


@pytest.mark.parametrize("given, said", [
    ("ftp://es:9200", "scheme"), ("http://", "no host"), ("http://es:99999", "(?i)port"), ("es:port", "port"),
    ("http://es:0", "port"), ("http://es:", "port"), ("", "empty"), ("http://es:9200/?pretty", "query"),
    ("http://a b:9200", "host"),
])
def test_elasticsearch_urls_that_cannot_work(given, said):
    with pytest.raises(ValueError, match=said):
        elasticsearch_url(given)


def test_a_password_is_not_repeated_in_the_error():
    with pytest.raises(ValueError) as e:
        elasticsearch_url("ftp://elastic:s3cret@es:9200")
    assert "s3cret" not in str(e.value) and "elastic:***@es" in str(e.value)


@pytest.mark.parametrize("given, hp", [("carbon:2003", ("carbon", 2003)), (":2003", ("127.0.0.1", 2003)),
                                       ("[::1]:2003", ("::1", 2003)), ("10.0.0.1:2004", ("10.0.0.1", 2004))])
def test_carbon_addresses(given, hp):
    assert host_port(given) == hp


@pytest.mark.parametrize("given", ["carbon", "carbon:99999", "carbon:0", "http://carbon:2003", "carbon:x",
                                   "car bon:2003"])
def test_carbon_addresses_that_cannot_work(given):
    with pytest.raises(ValueError, match="bon|HOST:PORT"):
        host_port(given)


def test_config_keys_are_checked_and_normalised_when_loaded(tmp_path):
    from streams.config import ConfigError, load_config
    p = tmp_path / "c.toml"
    p.write_text('[output.elasticsearch]\nurl = "es1:9200"\n[output.graphite]\naddress = "carbon:2003"\n')
    assert load_config(p).output.elasticsearch.url == "http://es1:9200"
    for text, key in (('[output.elasticsearch]\nurl = "ftp://es1"\n', "[output.elasticsearch] url"),
                      ('[output.graphite]\naddress = "carbon"\n', "[output.graphite] address"),
                      ('[listeners.relp]\nport = 70000\n', "[listeners.relp] port")):
        p.write_text(text)
        with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
            load_config(p)


def test_the_elasticsearch_sink_never_logs_or_reports_a_password(tmp_path, caplog):
    """A URL with credentials (`http://user:secret@host:9200`) is said without the password
    in every log line and in /health's problem."""
    from streams.sinks.elasticsearch import ElasticsearchSettings, ElasticsearchSink

    class Down:
        def bulk(self, body):
            raise ConnectionError("refused")

    s = ElasticsearchSettings(url="http://elastic:s3cret@127.0.0.1:9", backoff_initial=0.01, backoff_max=0.02,
                              close_timeout=0.2)
    with caplog.at_level("INFO", logger="streams"):
        sink = ElasticsearchSink(s, tmp_path / "spool", tmp_path / "dlq.ndjson", client=Down())
        sink.write({"@timestamp": "2026-11-24T00:00:00.000Z", "event": {"dataset": "x"}}, "id1")
        sink.flush()
        import time
        deadline = time.monotonic() + 5
        while sink.problem() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        problem = sink.problem()
        sink.close()
    text = caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    assert problem and "s3cret" not in problem and "elastic:***@" in problem
    assert "s3cret" not in text
