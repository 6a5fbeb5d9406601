"""The one writer (hwspecs.write_atomic / write_all) and the commands that use it (issue 14, "Writes")."""

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import hwspecs
from faces.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _temps(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.tmp"))


@pytest.mark.parametrize("make", ["fifo", "folder"])
def test_refuses_anything_but_a_regular_file(tmp_path, make):
    target = tmp_path / "out.csv"
    os.mkfifo(target) if make == "fifo" else target.mkdir()
    with pytest.raises(hwspecs.UnsafeWriteError, match="not a regular file"):
        hwspecs.write_atomic(target, lambda fh: fh.write("x"))
    assert (stat.S_ISFIFO if make == "fifo" else stat.S_ISDIR)(os.stat(target).st_mode)
    assert _temps(tmp_path) == []


def test_dev_null_is_refused_and_stays_a_device():
    with pytest.raises(hwspecs.UnsafeWriteError, match="character device"):
        hwspecs.write_atomic("/dev/null", lambda fh: fh.write("x"))
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_cli_csv_to_a_device_node_is_one_line_exit_2():
    res = runner.invoke(app, ["sweep", "--batch", "1", "--csv", "/dev/null"])
    assert res.exit_code == 2, res.output
    assert "character device" in res.output and "Traceback" not in res.output
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_existing_mode_is_kept(tmp_path):
    target = tmp_path / "private.csv"
    target.write_text("old")
    target.chmod(0o600)
    hwspecs.write_atomic(target, lambda fh: fh.write("new"))
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_new_file_gets_umask_mode_without_touching_the_umask(tmp_path, monkeypatch):
    old = os.umask(0o027)
    try:
        def no_umask(*_):
            raise AssertionError("write_atomic must not change the process umask")
        monkeypatch.setattr(os, "umask", no_umask)
        path = hwspecs.write_atomic(tmp_path / "new.csv", lambda fh: fh.write("x"))
    finally:
        monkeypatch.undo()
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_symlink_target_replaced_link_kept(tmp_path):
    real = tmp_path / "real.csv"
    real.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    hwspecs.write_atomic(link, lambda fh: fh.write("new"))
    assert link.is_symlink() and real.read_text() == "new"


def test_failure_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "a.csv"
    target.write_text("old")

    def boom(fh):
        fh.write("half")
        raise RuntimeError("while computing")
    with pytest.raises(RuntimeError):
        hwspecs.write_atomic(target, boom)
    assert target.read_text() == "old" and _temps(tmp_path) == []


def test_write_all_commits_nothing_when_one_output_fails(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("old a")

    def boom(fh):
        raise ValueError("bad value in the second output")
    with pytest.raises(ValueError):
        hwspecs.write_all([(a, lambda fh: fh.write("new a"), False), (b, boom, False)])
    assert a.read_text() == "old a" and not b.exists() and _temps(tmp_path) == []


def test_write_all_refuses_before_writing_any(tmp_path):
    a = tmp_path / "a.csv"
    a.write_text("old a")
    fifo = tmp_path / "b.csv"
    os.mkfifo(fifo)
    with pytest.raises(hwspecs.UnsafeWriteError):
        hwspecs.write_all([(a, lambda fh: fh.write("new a"), False), (fifo, lambda fh: fh.write("b"), False)])
    assert a.read_text() == "old a"


_SLOW_WRITER = textwrap.dedent("""
    import sys, time
    import hwspecs
    def slow(fh):
        fh.write("partial")
        fh.flush()
        print("writing", flush=True)
        time.sleep(60)
    hwspecs.write_atomic(sys.argv[1], slow)
""")


def _start_slow_writer(target: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(target)], stdout=subprocess.PIPE, env=env,
                            text=True)
    assert proc.stdout.readline().strip() == "writing"
    assert len(_temps(target.parent)) == 1
    return proc


def test_sigterm_mid_write_removes_the_temp(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old")
    proc = _start_slow_writer(target)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == -signal.SIGTERM  # still dies of the signal
    assert _temps(tmp_path) == [] and target.read_text() == "old"


def test_sigkill_orphan_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "out.csv"
    proc = _start_slow_writer(target)
    proc.kill()
    proc.wait(timeout=30)
    time.sleep(0.05)
    assert len(_temps(tmp_path)) == 1  # SIGKILL cannot be caught
    hwspecs.write_atomic(target, lambda fh: fh.write("whole"))
    assert _temps(tmp_path) == [] and target.read_text() == "whole"


def test_calibrate_out_to_a_device_is_refused():
    res = runner.invoke(app, ["calibrate", "-H", "h100-sxm5-80gb", "--out", "/dev/null"])
    assert res.exit_code == 2 and "character device" in res.output, res.output


def test_compare_with_a_missing_rerun_folder_writes_nothing(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "compare_summary.csv").write_text("old")
    res = runner.invoke(app, ["compare", "-H", "h100-sxm5-80gb", "--out", str(out),
                              "--rerun-of", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert sorted(p.name for p in out.iterdir()) == ["compare_summary.csv"]
    assert (out / "compare_summary.csv").read_text() == "old"


def test_concurrent_writers_leave_one_whole_file(tmp_path):
    import threading

    target = tmp_path / "same.csv"
    bodies = [f"writer {i}\n" * 2000 for i in range(8)]
    threads = [threading.Thread(target=hwspecs.write_atomic, args=(target, lambda fh, b=b: fh.write(b)))
               for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert target.read_text() in bodies and _temps(tmp_path) == []
