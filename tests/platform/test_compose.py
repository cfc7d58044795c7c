"""The docker-compose topology users run: the wiring they rely on, checked statically.

No Docker engine is needed: the compose file is parsed with PyYAML, ``${VARIABLES}`` are
resolved the way Compose does from the values in ``.env.example``, and the result is
checked against kakin's own settings (``kakin.platform.settings.Settings``) and URL handling.
Prometheus's configuration and alerting rules and Grafana's provisioning (deploy/) are
parsed the same way and checked against the services and the agreed metric names.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from kakin.platform.settings import Settings
from models.db import normalize_url

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

SERVICES = {
    "postgresql",
    "temporal",
    "temporal-create-search-attributes",
    "temporal-ui",
    "migrate",
    "worker",
    "api",
    "codec",
    "prometheus",
    "grafana",
}
SEARCH_ATTRIBUTES = {
    "SubscriptionStatus": "Keyword",
    "CustomerId": "Keyword",
    "PlanId": "Keyword",
    "NextRenewalAt": "Datetime",
}
SETTINGS_VARIABLES = {f"KAKIN_{name.upper()}" for name in Settings.model_fields}

# $NAME, ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error};
# $$ is a literal $ (how a shell script in the compose file reads its own variables).
_INTERPOLATION = re.compile(
    r"\$\$"
    r"|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
    r"|\$(?P<invalid>)"  # Compose refuses any other $: write $$
)
_ENV_LINE = re.compile(r"^(?P<comment>#\s*)?(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")


# --- helpers -------------------------------------------------------------------------


def env_example() -> dict[str, str]:
    """Active ``NAME=value`` lines of .env.example (commented-out defaults excluded)."""
    values = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = _ENV_LINE.match(line.strip())
        if match and not match["comment"]:
            values[match["name"]] = match["value"].strip()
    return values


def env_example_documented() -> set[str]:
    """Every variable .env.example mentions, set or shown commented-out as a default."""
    names = set()
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = _ENV_LINE.match(line.strip())
        if match:
            names.add(match["name"])
    return names


def interpolate(text: str, env: dict[str, str]) -> str:
    """Resolve Compose variable syntax in ``text`` against ``env``."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        if match["invalid"] is not None:
            raise ValueError(f"invalid interpolation at {text[match.start() :][:20]!r}")
        name, op, arg = match["name"] or match["bare"], match["op"], match["arg"]
        value = env.get(name)
        if op in (":-", ":?") and not value:
            value = None
        if value is not None:
            return value
        if op in ("-", ":-"):
            return arg
        if op in ("?", ":?"):
            raise KeyError(f"{name} is required: {arg}")
        return ""

    return _INTERPOLATION.sub(replace, text)


def resolve(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [resolve(item, env) for item in node]
    if isinstance(node, dict):
        return {key: resolve(value, env) for key, value in node.items()}
    return node


def referenced_variables(text: str) -> set[str]:
    return {m["name"] or m["bare"] for m in _INTERPOLATION.finditer(text) if m["name"] or m["bare"]}


@pytest.fixture(scope="module")
def raw_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose(raw_compose: dict[str, Any]) -> dict[str, Any]:
    """The compose file as Compose sees it with the values from .env.example."""
    return resolve(raw_compose, env_example())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """Dependency -> condition (the list form means ``service_started``)."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def command_words(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    if isinstance(command, str):
        return shlex.split(command)
    return [str(word) for word in command or []]


def command_text(service: dict[str, Any]) -> str:
    parts = [*(service.get("entrypoint") or []), *(service.get("command") or [])]
    return "\n".join(str(part) for part in parts)


def published_ports(service: dict[str, Any]) -> dict[int, int]:
    """Published host port -> container port."""
    ports = {}
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            ports[int(port["published"])] = int(port["target"])
        else:
            *_, host, container = str(port).split(":")
            ports[int(host)] = int(container.split("/")[0])
    return ports


# --- services and the Temporal server -----------------------------------------------


def test_all_services_exist(services: dict[str, Any]) -> None:
    assert set(services) >= SERVICES, f"missing services: {SERVICES - set(services)}"


def test_postgresql_is_16_with_a_volume_and_a_readiness_healthcheck(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    postgresql = services["postgresql"]
    assert postgresql["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(postgresql["healthcheck"]["test"])
    data_volumes = [
        volume.split(":")[0]
        for volume in postgresql["volumes"]
        if volume.split(":")[1] == "/var/lib/postgresql/data"
    ]
    assert data_volumes, "PostgreSQL data must live on a volume"
    assert data_volumes[0] in (compose.get("volumes") or {}), "use a named volume"


def test_temporal_persists_to_the_postgresql_service(services: dict[str, Any]) -> None:
    temporal = services["temporal"]
    assert temporal["image"].startswith(("temporalio/auto-setup:", "temporalio/server:"))
    env = environment(temporal)
    postgres_env = environment(services["postgresql"])
    assert env["DB"] == "postgres12"
    assert env["POSTGRES_SEEDS"] == "postgresql"
    assert env["DB_PORT"] == "5432"
    assert env["POSTGRES_USER"] == postgres_env["POSTGRES_USER"]
    assert env["POSTGRES_PWD"] == postgres_env["POSTGRES_PASSWORD"]
    # Temporal's databases are its own, never kakin's.
    temporal_databases = {env.get("DBNAME", "temporal"), env.get("VISIBILITY_DBNAME")}
    assert postgres_env["POSTGRES_DB"] not in temporal_databases
    assert depends_on(temporal) == {"postgresql": "service_healthy"}


def test_temporal_frontend_is_published_for_starter_on_the_host(
    services: dict[str, Any],
) -> None:
    assert published_ports(services["temporal"]).get(7233) == 7233
    assert env_example()["KAKIN_TEMPORAL_ADDRESS"] == "localhost:7233"


def test_bind_mounted_files_exist(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_ui_points_at_temporal_and_publishes_8233(services: dict[str, Any]) -> None:
    ui = services["temporal-ui"]
    assert ui["image"].startswith("temporalio/ui:")
    assert environment(ui)["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert published_ports(ui).get(8233) == 8080
    assert env_example()["KAKIN_TEMPORAL_UI_URL"] == "http://localhost:8233"


# --- search attributes ----------------------------------------------------------------


def test_search_attribute_job_registers_all_four_with_their_types(
    services: dict[str, Any],
) -> None:
    job = services["temporal-create-search-attributes"]
    assert job["image"].startswith("temporalio/admin-tools:")
    assert "temporal" in depends_on(job)
    script = command_text(job)
    creates = [line for line in script.splitlines() if "search-attribute create" in line]
    assert all("temporal operator search-attribute create" in line for line in creates)
    registered: dict[str, str] = {}
    for line in creates:
        registered.update(re.findall(r"--name[ =](\w+) --type[ =](\w+)", line))
    assert registered == SEARCH_ATTRIBUTES


def test_search_attribute_job_waits_for_the_server_before_registering(
    services: dict[str, Any],
) -> None:
    script = command_text(services["temporal-create-search-attributes"])
    wait = re.search(r"^\s*(until|while)\b.*\btemporal\b.*$", script, re.MULTILINE)
    assert wait, "the job must retry until the Temporal server answers"
    assert wait.start() < script.index("search-attribute create")
    assert "sleep" in script


def test_one_namespace_for_server_job_ui_and_worker(services: dict[str, Any]) -> None:
    """Search attributes are per namespace: they must land where the worker runs."""
    namespace = env_example()["KAKIN_TEMPORAL_NAMESPACE"]
    assert environment(services["temporal"])["DEFAULT_NAMESPACE"] == namespace
    job_env = environment(services["temporal-create-search-attributes"])
    assert job_env["TEMPORAL_NAMESPACE"] == namespace
    assert "$TEMPORAL_NAMESPACE" in command_text(services["temporal-create-search-attributes"])
    assert environment(services["temporal-ui"])["TEMPORAL_DEFAULT_NAMESPACE"] == namespace


# --- the kakin image: migrate and worker ---------------------------------------------


def test_migrate_runs_alembic_upgrade_head_on_the_kakin_database(
    services: dict[str, Any],
) -> None:
    migrate = services["migrate"]
    assert command_words(migrate) == ["alembic", "upgrade", "head"]
    assert migrate.get("build"), "migrate runs the kakin image built from this repository"
    assert depends_on(migrate).get("postgresql") == "service_healthy"
    assert (ROOT / "alembic.ini").is_file()


@pytest.mark.parametrize("name", ["migrate", "worker"])
def test_kakin_database_url_reaches_the_postgresql_service(
    services: dict[str, Any], name: str
) -> None:
    url = make_url(normalize_url(environment(services[name])["KAKIN_DATABASE_URL"]))
    postgres_env = environment(services["postgresql"])
    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.port) == ("postgresql", 5432)
    assert url.username == postgres_env["POSTGRES_USER"]
    assert url.password == postgres_env["POSTGRES_PASSWORD"]
    assert url.database == postgres_env["POSTGRES_DB"]


def test_worker_runs_after_migrations_and_temporal(services: dict[str, Any]) -> None:
    worker = services["worker"]
    assert command_words(worker) == ["python", "worker.py"]
    deps = depends_on(worker)
    assert deps["migrate"] == "service_completed_successfully"
    assert "temporal" in deps
    assert (worker["build"], worker["image"]) == (
        services["migrate"]["build"],
        services["migrate"]["image"],
    )


def test_worker_is_configured_for_production(services: dict[str, Any]) -> None:
    worker = services["worker"]
    env = environment(worker)
    assert env["KAKIN_TEMPORAL_ADDRESS"] == "temporal:7233"
    assert env["KAKIN_EMAIL_BACKEND"] == "sendgrid"
    assert env["KAKIN_STRIPE_API_KEY"]
    env_files = worker["env_file"] if isinstance(worker["env_file"], list) else [worker["env_file"]]
    assert ".env" in [f if isinstance(f, str) else f["path"] for f in env_files]
    # What the worker ends up with is a valid configuration.
    values: dict[str, Any] = {
        key.removeprefix("KAKIN_").lower(): value
        for key, value in (env_example() | env).items()
        if key.startswith("KAKIN_")
    }
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    assert settings.temporal_address == "temporal:7233"
    assert settings.email_backend == "sendgrid"


def test_secrets_are_required_rather_than_defaulted(raw_compose: dict[str, Any]) -> None:
    """Without .env, compose stops with a message instead of starting with no password."""
    services = raw_compose["services"]
    for name in ("postgresql", "temporal", "migrate", "worker"):
        with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
            resolve(services[name], {})
    with pytest.raises(KeyError, match="KAKIN_STRIPE_API_KEY"):
        resolve(services["worker"]["environment"]["KAKIN_STRIPE_API_KEY"], {})
    # Every process that talks to Temporal needs the payload keys: none starts without.
    for name in ("worker", "api", "codec"):
        with pytest.raises(KeyError, match="KAKIN_ENCRYPTION_KEYS"):
            resolve(services[name]["environment"]["KAKIN_ENCRYPTION_KEYS"], {})


def test_api_and_codec_endpoint_run_the_kakin_image_beside_the_worker(
    services: dict[str, Any],
) -> None:
    api, codec, ui = services["api"], services["codec"], services["temporal-ui"]
    assert api["command"][:2] == ["kakin", "api"] and "127.0.0.1:8000:8000" in api["ports"]
    assert codec["command"][:2] == ["kakin", "codec-server"]
    assert "127.0.0.1:8081:8081" in codec["ports"]
    assert environment(ui)["TEMPORAL_CODEC_ENDPOINT"] == "http://localhost:8081"
    for service in (api, codec, services["worker"]):
        assert depends_on(service)["migrate"] == "service_completed_successfully"
        assert environment(service)["KAKIN_TEMPORAL_ADDRESS"] == "temporal:7233"
    # Charges go to their own rate-limited queue, polled by the worker.
    assert environment(services["worker"])["KAKIN_STRIPE_TASK_QUEUE"] == "billing-stripe"


# --- variables ------------------------------------------------------------------------


def test_every_kakin_variable_is_a_settings_field() -> None:
    """A misspelt KAKIN_* name is silently ignored by the settings: catch it here."""
    text = COMPOSE_FILE.read_text(encoding="utf-8") + ENV_EXAMPLE.read_text(encoding="utf-8")
    named = set(re.findall(r"\bKAKIN_[A-Z0-9_]+\b", text))
    assert named, "expected KAKIN_* variables in docker-compose.yml and .env.example"
    assert named <= SETTINGS_VARIABLES, f"not settings fields: {sorted(named - SETTINGS_VARIABLES)}"


def test_env_example_documents_every_compose_variable() -> None:
    used = referenced_variables(COMPOSE_FILE.read_text(encoding="utf-8"))
    missing = used - env_example_documented()
    assert not missing, f"document in .env.example: {sorted(missing)}"


def test_env_example_documents_every_setting() -> None:
    missing = SETTINGS_VARIABLES - env_example_documented()
    assert not missing, f"document in .env.example: {sorted(missing)}"


def test_env_example_is_a_valid_configuration_with_placeholder_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in SETTINGS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=ENV_EXAMPLE)  # type: ignore[call-arg]
    assert not settings.live_mode
    assert settings.stripe_api_key.startswith("sk_test_")
    assert "replace" in settings.sendgrid_api_key
    values = env_example()
    assert "change-me" in values["POSTGRES_PASSWORD"]
    # The password goes into a URL unencoded: keep the placeholder URL-safe.
    assert re.fullmatch(r"[A-Za-z0-9._-]+", values["POSTGRES_PASSWORD"])


# --- the image ------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = "\n".join(lines).replace("\\\n", " ")
    return [
        (parts[0].upper(), parts[1] if len(parts) > 1 else "")
        for parts in (line.strip().split(None, 1) for line in joined.splitlines())
        if parts
    ]


def copied_sources() -> set[str]:
    sources: set[str] = set()
    for instruction, args in dockerfile_instructions():
        if instruction == "COPY":
            words = [w for w in args.split() if not w.startswith("--")]
            sources.update(w.rstrip("/") for w in words[:-1])
    return sources


def test_dockerfile_builds_the_kakin_image() -> None:
    instructions = dockerfile_instructions()
    assert ("FROM", "python:3.11-slim") in instructions
    assert any(i == "RUN" and re.search(r"\bpip install\b.*(\s|^)\"?\.(\[[\w,]+\])?\"?(\s|$)", a)
               for i, a in instructions)  # fmt: skip
    sources = copied_sources()
    assert {"templates", "migrations", "alembic.ini", "worker.py", "starter.py"} <= sources
    # pyproject.toml's readme, and what `pip install .` packages.
    assert {"pyproject.toml", "README.md"} <= sources


def test_dockerfile_copies_only_what_exists_and_is_not_ignored() -> None:
    ignored = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for source in copied_sources():
        assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
        assert source not in ignored, f".dockerignore drops {source}, which the image needs"


def test_secrets_never_reach_the_image() -> None:
    ignored = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    assert ".env" in ignored
    assert not any(args.startswith(". ") or args == "." for i, args in
                   dockerfile_instructions() if i in ("COPY", "ADD"))  # fmt: skip


# --- monitoring: Prometheus, its alerts, Grafana ---------------------------------------

# The metric names agreed for kakin (README "Metrics"); histograms are queried through
# their _bucket/_count/_sum series. temporal_* are the Temporal SDK's own runtime metrics.
KAKIN_METRICS = {
    "kakin_renewals_started_total",
    "kakin_renewals_finished_total",
    "kakin_charges_total",
    "kakin_charge_declines_total",
    "kakin_stripe_request_seconds",
    "kakin_stripe_rate_limited_total",
    "kakin_stripe_limiter_wait_seconds",
    "kakin_invoices_finalized_total",
    "kakin_dunning_steps_total",
    "kakin_emails_total",
    "kakin_usage_events_total",
    "kakin_webhook_deliveries_total",
    "kakin_http_requests_total",
    "kakin_http_request_seconds",
    "kakin_renewal_charge_lag_seconds",
}
KAKIN_HISTOGRAMS = {
    "kakin_stripe_request_seconds",
    "kakin_http_request_seconds",
    "kakin_renewal_charge_lag_seconds",
    "kakin_stripe_limiter_wait_seconds",
}
# Series Prometheus makes itself for every target.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
RUNBOOK = ROOT / "docs" / "runbook.md"

_PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
_PROMQL_LABEL_LISTS = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE
)


def promql_series(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (functions, labels and keywords aside)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range selectors
    text = re.sub(r"\$\w+", " ", text)  # Grafana variables ($__rate_interval)
    text = _PROMQL_LABEL_LISTS.sub(" ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?", text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _PROMQL_WORDS:
            continue  # a function (rate, sum, histogram_quantile...) or a keyword
        names.add(name)
    return names


def agreed_series(name: str) -> bool:
    if name in KAKIN_METRICS or name in PROMETHEUS_SERIES or name.startswith("temporal_"):
        return True
    base, _, suffix = name.rpartition("_")
    return base in KAKIN_HISTOGRAMS and suffix in ("bucket", "count", "sum")


def metric_family(name: str) -> str:
    for suffix in ("_bucket", "_count", "_sum"):
        if name.removesuffix(suffix) in KAKIN_HISTOGRAMS:
            return name.removesuffix(suffix)
    return name


def host_path(service: dict[str, Any], container_path: str) -> Path:
    """The repository file that a bind mount of ``service`` shows at ``container_path``."""
    for volume in service.get("volumes") or []:
        source, target, *_ = volume.split(":")
        if source.startswith(".") and (
            container_path == target or container_path.startswith(target.rstrip("/") + "/")
        ):
            return ROOT / source / container_path[len(target) :].lstrip("/")
    raise AssertionError(f"{container_path} is not bind-mounted from the repository")


def command_option(service: dict[str, Any], option: str) -> str:
    words = command_words(service)
    for i, word in enumerate(words):
        if word == option:
            return words[i + 1]
        if word.startswith(option + "="):
            return word.split("=", 1)[1]
    raise AssertionError(f"no {option} in {words}")


@pytest.fixture(scope="module")
def prometheus_config(services: dict[str, Any]) -> dict[str, Any]:
    prometheus = services["prometheus"]
    path = host_path(prometheus, command_option(prometheus, "--config.file"))
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def alert_rules(
    services: dict[str, Any], prometheus_config: dict[str, Any]
) -> list[dict[str, Any]]:
    rules = []
    for rule_file in prometheus_config["rule_files"]:
        path = host_path(services["prometheus"], rule_file)
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            rules.extend(group["rules"])
    return rules


@pytest.fixture(scope="module")
def dashboards(services: dict[str, Any]) -> list[dict[str, Any]]:
    """The dashboard JSON files the provisioned dashboard providers load."""
    grafana = services["grafana"]
    found = []
    folder = host_path(grafana, "/etc/grafana/provisioning/dashboards")
    for provider_file in sorted(folder.glob("*.y*ml")):
        for provider in yaml.safe_load(provider_file.read_text(encoding="utf-8"))["providers"]:
            assert provider["type"] == "file"
            for path in sorted(host_path(grafana, provider["options"]["path"]).glob("*.json")):
                found.append(json.loads(path.read_text(encoding="utf-8")))
    assert found, "no dashboard is provisioned"
    return found


def scrape_jobs(prometheus_config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {job["job_name"]: job for job in prometheus_config["scrape_configs"]}


def test_the_promql_reader_finds_metric_names_only() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, route) (rate(kakin_http_request_seconds_bucket"
        '{route!="/v1/x", status=~"5.."}[5m]))) > 2 and on (job) up{job="a"} == 1 or vector(0)'
    )
    assert promql_series(expr) == {"kakin_http_request_seconds_bucket", "up"}
    assert not agreed_series("kakin_charges_declined_total")  # a misspelt name is caught
    assert not agreed_series("kakin_charges_total_bucket")


def test_the_worker_scales_without_a_change(services: dict[str, Any]) -> None:
    """`docker compose up --scale worker=3`: nothing in the service may be one of a kind."""
    worker = services["worker"]
    assert "container_name" not in worker and "hostname" not in worker
    assert not worker.get("ports"), "a published host port can be bound by one replica only"
    env = environment(worker)
    assert env["KAKIN_METRICS_HOST"] == "0.0.0.0"  # reachable from Prometheus's container
    ports = {int(env["KAKIN_METRICS_PORT"]), int(env["KAKIN_TEMPORAL_METRICS_PORT"])}
    assert len(ports) == 2 and all(port > 0 for port in ports)
    assert {int(port) for port in worker.get("expose") or []} == ports


def test_prometheus_scrapes_the_api_on_its_port(
    services: dict[str, Any], prometheus_config: dict[str, Any]
) -> None:
    api_port = command_option(services["api"], "--port")
    api_jobs = [
        job
        for job in prometheus_config["scrape_configs"]
        for static in job.get("static_configs") or []
        if f"api:{api_port}" in static["targets"]
    ]
    assert len(api_jobs) == 1, "one job scrapes the api service on the port kakin api listens on"
    assert api_jobs[0].get("metrics_path", "/metrics") == "/metrics"


def test_prometheus_finds_every_worker_by_dns_on_both_metrics_ports(
    services: dict[str, Any], prometheus_config: dict[str, Any]
) -> None:
    env = environment(services["worker"])
    scraped = {}
    for job in prometheus_config["scrape_configs"]:
        assert not any(
            target.startswith("worker")
            for static in job.get("static_configs") or []
            for target in static["targets"]
        ), "a static worker target finds one replica only: use dns_sd_configs"
        for sd in job.get("dns_sd_configs") or []:
            assert sd.get("type", "SRV") == "A", "Compose's DNS answers A records per replica"
            if "worker" in sd["names"]:  # the service name: one A record per container
                scraped[int(sd["port"])] = job
    assert set(scraped) == {
        int(env["KAKIN_METRICS_PORT"]),
        int(env["KAKIN_TEMPORAL_METRICS_PORT"]),
    }
    assert all(job.get("metrics_path", "/metrics") == "/metrics" for job in scraped.values())


def test_prometheus_and_grafana_publish_on_localhost_only_and_keep_their_data(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    prometheus, grafana = services["prometheus"], services["grafana"]
    assert prometheus["image"].startswith("prom/prometheus:")
    assert grafana["image"].startswith("grafana/grafana:")
    assert "127.0.0.1:9090:9090" in prometheus["ports"]
    assert "127.0.0.1:3000:3000" in grafana["ports"]
    for service, data in ((prometheus, command_option(prometheus, "--storage.tsdb.path")),
                          (grafana, "/var/lib/grafana")):  # fmt: skip
        named = [v.split(":")[0] for v in service["volumes"] if v.split(":")[1] == data]
        assert named and named[0] in compose["volumes"], f"{data} must be a named volume"
    env = environment(grafana)
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"


def test_grafana_admin_password_is_required(raw_compose: dict[str, Any]) -> None:
    grafana = raw_compose["services"]["grafana"]
    with pytest.raises(KeyError, match="GRAFANA_ADMIN_PASSWORD"):
        resolve(grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"], {})


def test_every_alert_reads_agreed_metrics_and_has_a_runbook_entry(
    alert_rules: list[dict[str, Any]],
) -> None:
    assert len(alert_rules) >= 6
    headings = {
        re.sub(r"[^\w\- ]", "", line.lstrip("#").strip()).lower().replace(" ", "-")
        for line in RUNBOOK.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    }
    names = [rule["alert"] for rule in alert_rules]
    assert len(names) == len(set(names)), "alert names are unique"
    for rule in alert_rules:
        series = promql_series(rule["expr"])
        assert series, f"{rule['alert']} reads no metric"
        unknown = {name for name in series if not agreed_series(name)}
        assert not unknown, f"{rule['alert']} reads metrics nobody exports: {unknown}"
        assert rule["labels"]["severity"] in ("page", "warning", "info")
        assert rule["annotations"]["summary"]
        anchor = rule["annotations"]["runbook"].split("#", 1)[1]
        assert anchor in headings, f"docs/runbook.md has no section for {rule['alert']}"
    read = {metric_family(n) for rule in alert_rules for n in promql_series(rule["expr"])}
    for watched in ("kakin_charges_total", "kakin_stripe_rate_limited_total",
                    "kakin_renewal_charge_lag_seconds", "kakin_emails_total",
                    "kakin_webhook_deliveries_total", "up"):  # fmt: skip
        assert watched in read, f"no alert watches {watched}"


def test_grafana_reads_the_prometheus_service(services: dict[str, Any]) -> None:
    grafana = services["grafana"]
    folder = host_path(grafana, "/etc/grafana/provisioning/datasources")
    sources = [
        source
        for path in sorted(folder.glob("*.y*ml"))
        for source in yaml.safe_load(path.read_text(encoding="utf-8"))["datasources"]
    ]
    (prometheus,) = [source for source in sources if source["type"] == "prometheus"]
    container_port = next(iter(published_ports(services["prometheus"]).values()))
    assert prometheus["url"] == f"http://prometheus:{container_port}"
    assert prometheus["uid"]
    assert "prometheus" in depends_on(grafana)


def test_the_dashboard_charts_every_agreed_metric_and_nothing_else(
    services: dict[str, Any], dashboards: list[dict[str, Any]]
) -> None:
    folder = host_path(services["grafana"], "/etc/grafana/provisioning/datasources")
    uids = {
        source["uid"]
        for path in folder.glob("*.y*ml")
        for source in yaml.safe_load(path.read_text(encoding="utf-8"))["datasources"]
    }
    charted: set[str] = set()
    for dashboard in dashboards:
        panels = [p for p in dashboard["panels"] if p["type"] != "row"]
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids)), "panel ids are unique"
        for panel in panels:
            assert panel["datasource"]["uid"] in uids, f"{panel['title']}: unknown data source"
            assert panel["targets"], f"{panel['title']} has no query"
            for target in panel["targets"]:
                series = promql_series(target["expr"])
                unknown = {name for name in series if not agreed_series(name)}
                assert not unknown, f"{panel['title']} queries unknown metrics: {unknown}"
                charted |= {metric_family(name) for name in series}
    assert charted >= KAKIN_METRICS, f"no panel for {sorted(KAKIN_METRICS - charted)}"
    assert any(name.startswith("temporal_") for name in charted), "no Temporal SDK panel"
