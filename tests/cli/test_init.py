"""`funnel init`: a new project that validates clean, simulates sensibly, runs, and wires the schema."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
import jsonschema
import pytest
import yaml
from click.testing import CliRunner, Result

from engine.cli import main
from engine.config import Settings, load_settings
from engine.project.scaffold import BROADCAST_SCHEMA_FILE, SCHEMA_FILE, starter_files
from engine.sequences.broadcast_model import json_schema as broadcast_json_schema
from engine.sequences.model import json_schema

REPO = Path(__file__).resolve().parents[2]
STARTER = REPO / "engine" / "project" / "starter"


def _funnel(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def new_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`funnel init my-funnels` run in an empty folder."""
    monkeypatch.chdir(tmp_path)
    result = _funnel("init", "my-funnels")
    assert result.exit_code == 0, result.output
    return tmp_path / "my-funnels"


def test_init_in_a_fresh_folder_writes_the_project_and_says_what_to_run_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = _funnel("init", "my-funnels")
    assert result.exit_code == 0, result.output
    root = tmp_path / "my-funnels"
    written = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert written == sorted(str(p) for p in starter_files())
    for name in (".gitignore", "funnel.toml", ".vscode/settings.json", SCHEMA_FILE, BROADCAST_SCHEMA_FILE,
                 "sequences/home-bakery.yaml", "templates/layout.html", "templates/home-bakery/confirm.html"):
        assert f"  {name}\n" in result.output
    assert result.output.endswith(
        "Next:\n"
        "  cd my-funnels\n"
        "  funnel validate                              # check the funnel and its templates\n"
        "  funnel simulate home-bakery --answer baked=never   # the emails one subscriber gets\n"
        "  funnel run                                   # the daemon: emails go to outbox/\n"
    )


def test_init_without_a_folder_uses_the_project_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = _funnel("--project", "elsewhere", "init")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "elsewhere" / "sequences" / "home-bakery.yaml").is_file()


def test_init_in_the_current_folder_prints_no_cd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = _funnel("init")
    assert result.exit_code == 0, result.output
    assert "cd " not in result.output and (tmp_path / "funnel.toml").is_file()
    assert _funnel("init", "other").exit_code == 0
    again = _funnel("init", str(tmp_path / "other"))  # a folder is named as the working folder sees it
    assert again.exit_code == 1 and again.output.startswith("Error: other already has .gitignore, ")


def test_init_refuses_to_overwrite_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "funnel.toml").write_text('transport = "smtp"  # mine\n')
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "layout.html").write_text("my layout")
    result = _funnel("init")
    assert result.exit_code == 1
    assert result.output == (
        "Error: this folder already has funnel.toml, templates/layout.html; nothing was written. "
        "Pick an empty folder (funnel init DIR), move those files away, or add --force to overwrite them\n"
    )
    assert (tmp_path / "funnel.toml").read_text() == 'transport = "smtp"  # mine\n'
    assert (tmp_path / "templates" / "layout.html").read_text() == "my layout"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["funnel.toml", "layout.html", "templates"]


def test_init_force_overwrites_and_says_which(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "funnel.toml").write_text("mine\n")
    (tmp_path / "notes.txt").write_text("kept")
    result = _funnel("init", "--force")
    assert result.exit_code == 0, result.output
    assert "  funnel.toml  (overwritten)\n" in result.output
    assert "  .gitignore\n" in result.output  # new, so not marked
    assert (tmp_path / "funnel.toml").read_bytes() == (STARTER / "funnel.toml").read_bytes()
    assert (tmp_path / "notes.txt").read_text() == "kept"


def test_the_starter_validates_with_no_error_and_no_warning(new_project: Path) -> None:
    result = _funnel("--project", str(new_project), "validate")
    assert result.exit_code == 0, result.output
    assert result.output == (
        "my-funnels/sequences/home-bakery.yaml: ok, funnel 'home-bakery': 1 magnet, 2 segments; "
        "beginner: nurture 5 (4 education : 1 sale), sales 2 (0 education : 2 sale), "
        "customer 1 (1 education : 0 sale); "
        "baker: nurture 5 (4 education : 1 sale), sales 2 (0 education : 2 sale), "
        "customer 1 (1 education : 0 sale)\n"
    )


def _steps(output: str) -> list[tuple[str, str, str]]:
    """(segment, path, step) of each email line of a simulate table."""
    when = re.compile(r"\w{3} \d{4}-\d\d-\d\d \d\d:\d\d  \S")
    rows = [line.split() for line in output.splitlines() if when.match(line)]
    return [(row[3], row[4], row[5]) for row in rows if row[3] != "->"]


def test_simulate_walks_a_beginner_through_nurture_and_sales(new_project: Path) -> None:
    result = _funnel("--project", str(new_project), "simulate", "home-bakery", "--answer", "baked=never",
                     "--start", "2026-03-02T09:00")
    assert result.exit_code == 0, result.output
    assert _steps(result.output) == [
        ("-", "confirm", "confirm"), ("-", "magnet", "guide"), ("-", "survey", "survey"),
        ("beginner", "nurture", "b-starter"), ("beginner", "nurture", "b-flour"),
        ("beginner", "nurture", "b-first-loaf"), ("beginner", "nurture", "b-mistakes"),
        ("beginner", "nurture", "b-course"),
        ("beginner", "sales", "b-offer"), ("beginner", "sales", "b-last-chance"),
    ]
    assert "Tue 2026-03-03 11:02  beginner  nurture  b-starter" in result.output
    assert "-> ends: sales path finished without a purchase" in result.output


def test_simulate_a_purchase_ends_sales_and_starts_the_welcome(new_project: Path) -> None:
    result = _funnel("--project", str(new_project), "simulate", "home-bakery", "--answer", "baked=often",
                     "--event", "purchase@10d", "--start", "2026-03-02T09:00")
    assert result.exit_code == 0, result.output
    assert [step for _, _, step in _steps(result.output)] == [
        "confirm", "guide", "survey", "k-hydration", "k-cold-proof", "k-scoring", "k-steam", "k-course",
        "k-welcome",  # bought before the first sales email: no offer, no last chance
    ]
    assert "Thu 2026-03-12 10:00  baker    customer  k-welcome" in result.output


def test_editor_wiring_names_the_schema_file_that_init_wrote(new_project: Path) -> None:
    sequence = new_project / "sequences" / "home-bakery.yaml"
    modeline = sequence.read_text().splitlines()[0]
    match = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", modeline)
    assert match, modeline
    from_modeline = (sequence.parent / match.group(1)).resolve()
    vscode = json.loads((new_project / ".vscode" / "settings.json").read_text())
    schemas = vscode["yaml.schemas"]

    def schema_of(name: str) -> Path:
        [path] = [p for p, globs in schemas.items() if any(fnmatch.fnmatch(name, g) for g in globs)]
        return (new_project / path).resolve()  # VS Code reads it from the workspace folder

    from_vscode = schema_of("sequences/home-bakery.yaml")
    assert from_modeline == from_vscode == (new_project / SCHEMA_FILE).resolve()
    assert json.loads(from_vscode.read_text()) == json_schema()
    broadcasts = schema_of("broadcasts/2026-12-10-winter-sale.yaml")
    assert broadcasts == (new_project / BROADCAST_SCHEMA_FILE).resolve()
    assert json.loads(broadcasts.read_text()) == broadcast_json_schema()
    assert len(schemas) == 2


def test_the_broadcast_schema_passes_the_shipped_broadcast_and_flags_a_misspelt_key(
        new_project: Path) -> None:
    schema = json.loads((new_project / BROADCAST_SCHEMA_FILE).read_text())
    shipped = REPO / "broadcasts" / "2026-12-10-winter-sale.yaml"
    broadcast = yaml.safe_load(shipped.read_text(encoding="utf-8"))
    jsonschema.validate(broadcast, schema)
    broadcast["email"]["tempalte"] = broadcast["email"].pop("template")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broadcast, schema)


def test_the_schema_passes_the_starter_and_flags_a_misspelt_key(new_project: Path) -> None:
    schema = json.loads((new_project / SCHEMA_FILE).read_text())
    funnel = yaml.safe_load((new_project / "sequences" / "home-bakery.yaml").read_text())
    jsonschema.validate(funnel, schema)  # no squiggle on a valid file
    first = funnel["segments"][0]["nurture"]["emails"][0]
    first["tempalte"] = first.pop("template")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(funnel, schema)


def test_gitignore_keeps_the_database_outbox_secret_and_schema_out(new_project: Path) -> None:
    patterns = [line for line in (new_project / ".gitignore").read_text().splitlines()
                if line and not line.startswith("#")]

    def ignored(name: str) -> bool:
        bare = [p.strip("/") for p in patterns]
        return any(fnmatch.fnmatch(name, p) or name.startswith(p + "/") for p in bare)

    for name in ("funnel.db", "funnel.db-wal", "funnel.db-shm", "funnel-demo.db", "outbox/x.eml",
                 ".funnel-secret", SCHEMA_FILE, BROADCAST_SCHEMA_FILE):
        assert ignored(name), name
    for name in ("funnel.toml", "sequences/home-bakery.yaml", "broadcasts/sale.yaml",
                 "templates/layout.html"):
        assert not ignored(name), name


def test_funnel_toml_loads_and_names_only_real_settings(new_project: Path) -> None:
    assert load_settings(new_project, environ={}) == Settings()
    text = (new_project / "funnel.toml").read_text()
    commented = re.findall(r"^# ([a-z_]+) = ", text, re.MULTILINE)
    assert commented and set(commented) <= set(Settings.model_fields)
    for line in commented:  # each example, uncommented, is a valid setting
        value = re.search(rf"^# {line} = (.*?)(?:\s+#.*)?$", text, re.MULTILINE)
        assert value, line
        Settings.model_validate(tomllib.loads(f"{line} = {value.group(1)}"))
    production = [line for line in text.splitlines() if "[PRODUCTION" in line]
    for name in ("base_url", "transport", "smtp_password", "secret_key", "api_key", "admin_password",
                 "database_url"):
        assert any(name in line for line in production), name


def test_every_starter_file_is_package_data() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["engine"]
    for path in STARTER.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            relative = str(path.relative_to(REPO / "engine"))
            assert any(_glob(relative, p) for p in patterns), relative


def _glob(path: str, pattern: str) -> bool:
    """setuptools' package-data match: '*' stays within one folder."""
    parts, wanted = path.split("/"), pattern.split("/")
    return len(parts) == len(wanted) and all(
        fnmatch.fnmatch(part, glob) for part, glob in zip(parts, wanted, strict=True)
    )


def _ticked(health: httpx.Response) -> bool:
    """Healthy, with a first tick done (a SIGTERM during the first tick is another matter)."""
    return health.status_code == 200 and health.json()["checks"]["scheduler"] == "ok"


def _wait_ticked(process: subprocess.Popen[str], port: int) -> None:
    """Wait until the daemon `process` started answers /healthz with a tick done; fail if it ends."""
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, process.communicate()
        try:
            if _ticked(httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)):
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the daemon never became healthy"
        time.sleep(0.1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_funnel_run_starts_on_the_starter_and_a_signup_gets_its_confirmation(new_project: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNEL_")}  # nothing set, as a new user
    process = subprocess.Popen(
        [sys.executable, "-m", "engine", "--project", str(new_project), "run", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        _wait_ticked(process, port)
        answer = httpx.post(f"http://127.0.0.1:{port}/subscribe",
                            json={"email": "ann@example.com", "funnel": "home-bakery"}, timeout=10)
        assert answer.status_code == 201, answer.text
        outbox = new_project / "outbox"
        deadline = time.monotonic() + 30
        while not list(outbox.glob("*.eml")) and time.monotonic() < deadline:
            time.sleep(0.1)
        [message] = outbox.glob("*.eml")
        assert "Subject: Please confirm your email to get the starter guide" in message.read_text()
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
        assert process.returncode == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)


def _readme_init_block() -> list[str]:
    """The README's `funnel init` quick start, line by line, as a user types it."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- quick start: funnel init .*?-->.*?```sh\n(.*?)```", text, re.S)
    assert block, "the README lost its funnel init quick start"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_the_readme_quick_start_runs_as_written(tmp_path: Path) -> None:
    """Each line in a shell, with HOME in a temporary folder; `funnel run` answers and stops with 0."""
    lines = _readme_init_block()
    assert lines[0] == "funnel init ~/my-funnels" and lines[-1].endswith("funnel run")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNEL_")}
    env.update(HOME=str(tmp_path), PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
               FUNNEL_PORT=str(port))  # the README's port 8000 may be taken on a shared machine
    for line in lines[:-1]:
        done = subprocess.run(["bash", "-c", line], env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0 and "Traceback" not in done.stderr, (line, done.stdout, done.stderr)
    assert "b-last-chance" in done.stdout  # the simulate line showed the whole timeline
    daemon = subprocess.Popen(["bash", "-c", lines[-1]], env=env, cwd=tmp_path, start_new_session=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_ticked(daemon, port)
        os.killpg(daemon.pid, signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=30)
        assert daemon.returncode == 0 and "Traceback" not in stderr, stderr
        assert (tmp_path / "my-funnels" / "funnel.db").is_file()
    finally:
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.communicate(timeout=10)
