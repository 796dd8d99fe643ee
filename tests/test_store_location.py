"""One store wherever you stand (issue 9): every command finds the same data by default,
and a command about to create a new store where one was expected says so."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from mtasts.config import default_data_dir, load_settings

ROOT = Path(__file__).resolve().parents[1]


def mtasts(*args: str, cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "mtasts", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
    )


def test_the_default_store_does_not_depend_on_the_working_directory(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    here = load_settings(env=env).data_dir
    assert here == default_data_dir(env) and here.is_absolute()
    assert load_settings(env={"XDG_DATA_HOME": str(tmp_path / "xdg")}).data_dir == (
        tmp_path / "xdg" / "mtasts"
    )
    # precedence: option > MTASTS_DATA_DIR > file > default
    config = tmp_path / "mtasts.toml"
    config.write_text(f'data_dir = "{tmp_path / "from-file"}"\n')
    assert load_settings(config, env).data_dir == tmp_path / "from-file"
    env_dir = {**env, "MTASTS_DATA_DIR": str(tmp_path / "from-env")}
    assert load_settings(config, env_dir).data_dir == tmp_path / "from-env"
    assert load_settings(config, env_dir, data_dir=tmp_path / "opt").data_dir == tmp_path / "opt"


def test_tokens_created_from_two_directories_land_in_one_store(tmp_path: Path) -> None:
    home, a, b = tmp_path / "home", tmp_path / "a", tmp_path / "b"
    for d in (home, a, b):
        d.mkdir()
    first = mtasts("tokens", "create", "--email", "one@example.org", cwd=a, home=home)
    assert first.returncode == 0, first.stderr
    assert "creating a new, empty one" in first.stderr  # said, not silent
    second = mtasts("tokens", "create", "--email", "two@example.org", cwd=b, home=home)
    assert second.returncode == 0, second.stderr
    assert "warning" not in second.stderr  # the same store, found again
    assert not (a / "mtasts-data").exists() and not (b / "mtasts-data").exists()
    store = home / ".local" / "share" / "mtasts" / "mtasts.db"
    with sqlite3.connect(store) as db:
        emails = {row[0] for row in db.execute("SELECT email FROM users")}
    assert {"one@example.org", "two@example.org"} <= emails


def test_a_store_of_the_former_default_is_named(tmp_path: Path) -> None:
    home, old = tmp_path / "home", tmp_path / "old"
    home.mkdir()
    (old / "mtasts-data").mkdir(parents=True)
    (old / "mtasts-data" / "mtasts.db").write_bytes(b"")
    r = mtasts("reports", "summary", "example.com", cwd=old, home=home)
    assert "There is a store in" in r.stderr and "--data-dir" in r.stderr


def test_the_default_data_directory_is_ignored_by_git() -> None:
    lines = (ROOT / ".gitignore").read_text().splitlines()
    assert "mtasts-data/" in lines
