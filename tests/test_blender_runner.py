"""The runner's argv, environment and failure handling; the scripts here need no Blender."""

import argparse
import json
import sys
from pathlib import Path

import pytest

from tilefarm.blender.runner import KEEP_HEAP, MAIN_SCRIPT, BlenderRunner
from tilefarm.errors import BlenderError, BlenderTimeout, SceneError


def test_bpy_module_argv_is_isolated_python(tmp_path: Path) -> None:
    inv = BlenderRunner(executable=None).invocation(
        MAIN_SCRIPT, tmp_path / "req.json", tmp_path / "res.json", tmp_path / "home",
        base_env={"PATH": "/bin", "PYTHONPATH": "/evil", "BLENDER_USER_SCRIPTS": "/evil"})
    assert inv.argv == [sys.executable, "-I", str(MAIN_SCRIPT), "--",
                        str(tmp_path / "req.json"), str(tmp_path / "res.json")]
    assert inv.env == {
        "PATH": "/bin", "HOME": str(tmp_path / "home"),
        "BLENDER_USER_CONFIG": str(tmp_path / "home" / "config"),
        "BLENDER_USER_SCRIPTS": str(tmp_path / "home" / "scripts"),
        "BLENDER_USER_DATAFILES": str(tmp_path / "home" / "datafiles"),
        "BLENDER_USER_EXTENSIONS": str(tmp_path / "home" / "extensions"),
        "PYTHONNOUSERSITE": "1", "PYTHONUNBUFFERED": "1"}


# Secrets, agents and code-changing variables a parent may carry, and what GPU, colour and
# locale set-ups need. Only the second kind reaches a Blender child.
WITHHELD = {"AWS_SECRET_ACCESS_KEY": "s3cr3t", "AWS_ACCESS_KEY_ID": "AKIA", "GITHUB_TOKEN": "ghp_x",
            "SSH_AUTH_SOCK": "/tmp/ssh-agent.sock", "PYTHONPATH": "/evil", "PYTHONHOME": "/evil",
            "LD_PRELOAD": "/evil.so", "BLENDER_SYSTEM_SCRIPTS": "/evil", "FOO": "bar",
            "XDG_RUNTIME_DIR": "/run/user/0", "DISPLAY": ":0", "PWD": "/somewhere/else",
            "KUBECONFIG": "/root/.kube/config", "HOME": "/root"}
PASSED = {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "Europe/Paris", "TMPDIR": "/scratch",
          "OCIO": "/studio/ocio/config.ocio", "LD_LIBRARY_PATH": "/usr/local/nvidia/lib64",
          "CUDA_VISIBLE_DEVICES": "1", "NVIDIA_VISIBLE_DEVICES": "GPU-1",
          "HIP_VISIBLE_DEVICES": "0",
          "HSA_OVERRIDE_GFX_VERSION": "10.3.0", "ROCR_VISIBLE_DEVICES": "0",
          "GPU_DEVICE_ORDINAL": "0", "ONEAPI_DEVICE_SELECTOR": "level_zero:0",
          "SYCL_CACHE_PERSISTENT": "1", "OMP_NUM_THREADS": "4", "OPENBLAS_CORETYPE": "Haswell",
          "MKL_CBWR": "AVX2", "OIDN_DEFAULT_DEVICE": "cpu"}


def test_environment_is_an_allow_list(tmp_path: Path) -> None:
    inv = BlenderRunner(executable=None, extra_env={"MALLOC_TRIM_THRESHOLD_": "1"}).invocation(
        MAIN_SCRIPT, tmp_path / "req.json", tmp_path / "res.json", tmp_path / "home",
        base_env={"PATH": "/bin", **WITHHELD, **PASSED})
    assert not (set(WITHHELD) - {"HOME"}) & set(inv.env)
    assert {k: inv.env[k] for k in PASSED} == PASSED
    assert inv.env["HOME"] == str(tmp_path / "home")
    assert inv.env["MALLOC_TRIM_THRESHOLD_"] == "1"  # what the runner sets itself


def test_child_sees_only_the_allow_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**WITHHELD, **PASSED}.items():
        if name not in ("LD_PRELOAD", "LD_LIBRARY_PATH", "TMPDIR", "HOME", "PWD"):
            monkeypatch.setenv(name, value)  # (those four would change this test's own run)
    child = script(tmp_path, "json.dump({'ok': True, 'result': {'env': dict(os.environ), "
                   "'home_files': os.listdir(os.path.expanduser('~'))}}, open(res, 'w'))\n")
    result = BlenderRunner(log_dir=tmp_path / "logs").run_script(child, {})
    env = result["env"]
    for name in ("AWS_SECRET_ACCESS_KEY", "SSH_AUTH_SOCK", "GITHUB_TOKEN", "PYTHONPATH", "FOO",
                 "XDG_RUNTIME_DIR", "KUBECONFIG"):
        assert name not in env, name
    for name in ("LANG", "OCIO", "CUDA_VISIBLE_DEVICES", "OPENBLAS_CORETYPE", "OMP_NUM_THREADS"):
        assert env[name] == PASSED[name], name
    assert env["HOME"] != str(Path.home()) and sorted(result["home_files"]) == [
        "config", "datafiles", "extensions", "scripts"]


def test_executable_argv_disables_autoexec(tmp_path: Path) -> None:
    inv = BlenderRunner(executable="/opt/blender/blender").invocation(
        MAIN_SCRIPT, tmp_path / "req.json", tmp_path / "res.json", tmp_path / "home", base_env={})
    assert inv.argv == ["/opt/blender/blender", "--background", "--factory-startup",
                        "--disable-autoexec", "--python-exit-code", "3", "--python",
                        str(MAIN_SCRIPT), "--", str(tmp_path / "req.json"),
                        str(tmp_path / "res.json")]


def script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "child.py"
    path.write_text("import json, os, sys, time\n"
                    "req, res = sys.argv[sys.argv.index('--') + 1:]\n" + body)
    return path


def test_result_comes_back_through_the_json_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", "/somewhere/evil")
    child = script(tmp_path, "print('console noise: ok false')\n"
                   "json.dump({'ok': True, 'result': {'pythonpath': os.environ.get('PYTHONPATH'),"
                   " 'sys_path_has_evil': any('evil' in p for p in sys.path),"
                   " 'config': os.environ['BLENDER_USER_CONFIG'],"
                   " 'request': json.load(open(req))}}, open(res, 'w'))\n")
    runner = BlenderRunner(log_dir=tmp_path / "logs")
    result = runner.run_script(child, {"x": 1})
    assert result["pythonpath"] is None and not result["sys_path_has_evil"]
    assert result["request"] == {"x": 1}
    assert not Path(result["config"]).exists()  # private, and gone after the run
    assert runner.last_log is not None and "console noise" in runner.last_log.read_text()


def test_reported_errors_become_typed_exceptions(tmp_path: Path) -> None:
    child = script(tmp_path, "json.dump({'ok': False, 'error': {'kind': 'SceneError', "
                   "'message': 'no scene named X', 'path': '/a/b.blend'}}, open(res, 'w'))\n")
    with pytest.raises(SceneError, match=r"^/a/b.blend: no scene named X$"):
        BlenderRunner(log_dir=tmp_path).run_script(child, {})


def test_crash_without_result_keeps_the_log(tmp_path: Path) -> None:
    child = script(tmp_path, "print('segfault-ish last words'); sys.exit(139)\n")
    with pytest.raises(BlenderError) as err:
        BlenderRunner(log_dir=tmp_path).run_script(child, {"blend": "/x/y.blend"}, label="crash")
    text = str(err.value)
    assert "exited with code 139 without a result" in text and "segfault-ish last words" in text
    assert err.value.log is not None and err.value.log.exists()


def test_timeout_kills_a_silent_child(tmp_path: Path) -> None:
    child = script(tmp_path, "time.sleep(60)\n")
    with pytest.raises(BlenderTimeout, match="did not finish within 1 s"):
        BlenderRunner(log_dir=tmp_path).run_script(child, {}, timeout=1)


def test_progress_lines_are_streamed(tmp_path: Path) -> None:
    child = script(tmp_path, "print('Fra:1 Mem:1M | Sample 1/8'); print('done')\n"
                   "json.dump({'ok': True, 'result': None}, open(res, 'w'))\n")
    lines: list[str] = []
    BlenderRunner(log_dir=tmp_path).run_script(child, {}, on_line=lines.append)
    assert lines == ["Fra:1 Mem:1M | Sample 1/8", "done"]


def test_request_is_json(tmp_path: Path) -> None:
    child = script(tmp_path, "json.dump({'ok': True, 'result': open(req).read()}, open(res, 'w'))\n")
    assert json.loads(BlenderRunner(log_dir=tmp_path).run_script(child, {"a": [1]})) == {"a": [1]}


def test_extra_env_reaches_the_child(tmp_path: Path) -> None:
    child = script(tmp_path, "json.dump({'ok': True, 'result': {k: os.environ.get(k) for k in "
                   "('MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_')}}, open(res, 'w'))\n")
    assert BlenderRunner(log_dir=tmp_path).run_script(child, {}) == {
        "MALLOC_MMAP_THRESHOLD_": None, "MALLOC_TRIM_THRESHOLD_": None}
    assert BlenderRunner(log_dir=tmp_path, extra_env=KEEP_HEAP).run_script(child, {}) == KEEP_HEAP


def test_merger_session_keeps_its_heap(monkeypatch: pytest.MonkeyPatch) -> None:
    """The merger composes frame after frame: its Blender keeps freed memory (KEEP_HEAP),
    in the session of whichever runtime the job renders with."""
    import tilefarm.merger.__main__ as merger_main
    from tilefarm.blender.runtimes import Sessions, own_runtime

    seen = []

    class Recorder:
        def __init__(self, label: str, **kwargs: object) -> None:
            seen.append(kwargs)

        def __enter__(self) -> "Recorder":
            return self

        def __exit__(self, *exc: object) -> None:
            pass

    monkeypatch.setattr(merger_main, "Sessions", Recorder)
    monkeypatch.setattr(merger_main, "serve_datums", lambda prog, datum: 0)
    assert merger_main.run(argparse.Namespace()) == 0
    assert seen == [{"extra_env": KEEP_HEAP}]
    own = own_runtime()
    assert own is not None
    with Sessions("merger", extra_env=KEEP_HEAP) as sessions:
        assert sessions.get(own.series).runner.extra_env == KEEP_HEAP
