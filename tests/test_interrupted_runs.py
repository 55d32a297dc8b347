"""After an interrupted run: a killed job's hidden temporary file is removed when the job
reruns (issue 12, case 17), and README.md says how to resume (case 18)."""

import os
import signal
import subprocess
import sys

import pandas as pd
import yaml

from conftest import REPO
from opsembed.io.atomic import atomic_path, remove_stale_temps, temp_path

_WRITER = """
import sys, time
sys.path.insert(0, sys.argv[2])
from opsembed.io.atomic import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"x" * 100_000)   # a crop file half written
    print(tmp, flush=True)
    time.sleep(600)                    # ... when the job is killed
"""


def _writer(target):
    """A process inside atomic_path(target), its temp file written; returns (process, temp)."""
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(target), str(REPO / "workflow" / "scripts")],
                            stdout=subprocess.PIPE, text=True)
    tmp = proc.stdout.readline().strip()
    assert tmp, "the writer did not start"
    return proc, tmp


def test_a_killed_writers_temp_file_is_removed_when_the_job_reruns(tmp_path):
    target = tmp_path / "crops" / "P1" / "A1.h5"
    proc, tmp = _writer(target)
    assert os.path.basename(tmp) == f".A1.tmp-{proc.pid}.h5"
    proc.send_signal(signal.SIGKILL)  # kill -9: no finally clause runs
    proc.wait()
    assert os.path.exists(tmp) and not target.exists()  # what the issue found: the temp file stays
    other = target.with_name(f".A2.tmp-{proc.pid}.h5")  # another well's file is not this job's
    other.write_bytes(b"y")
    with atomic_path(target) as out:  # the rerun
        out.write_bytes(b"done")
    assert target.read_bytes() == b"done"
    assert not os.path.exists(tmp)
    assert other.exists()
    assert sorted(p.name for p in target.parent.iterdir()) == [".A2.tmp-%d.h5" % proc.pid, "A1.h5"]


def test_a_running_writers_temp_file_is_kept(tmp_path):
    target = tmp_path / "cells.h5"
    proc, tmp = _writer(target)
    try:
        assert remove_stale_temps(target) == []
        with atomic_path(target) as out:
            out.write_bytes(b"mine")
        assert os.path.exists(tmp)  # still being written by a live process
    finally:
        proc.kill()
        proc.wait()
    assert remove_stale_temps(target) == [temp_path(target, proc.pid)]


def test_every_atomic_writer_cleans_up_after_a_dead_process(tmp_path):
    """write_table (like every writer) goes through atomic_path."""
    from opsembed.io.tables import write_table

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    target = tmp_path / "summary.tsv"
    stale = temp_path(target, dead.pid)
    stale.write_text("half a table")
    write_table(pd.DataFrame({"a": [1]}), target)
    assert not stale.exists()
    assert pd.read_csv(target, sep="\t")["a"].tolist() == [1]


def test_readme_says_how_to_resume_an_interrupted_run():
    text = (REPO / "README.md").read_text()
    section = text.split("## Running your own screen", 1)[1].split("\n## ", 1)[0]
    assert "snakemake --unlock" in section and "--rerun-incomplete" in section
    # the README's claim that the default profile reruns incomplete jobs holds
    profile = yaml.safe_load((REPO / "profiles" / "default" / "config.yaml").read_text())
    assert profile["rerun-incomplete"] is True
