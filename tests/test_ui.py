"""The web UI driven through its API with gradio_client, as a script or another app would."""
import json
import os
import socket
import time
import zipfile

import pytest
from conftest import validate_gltf

pytest.importorskip("gradio")
pytestmark = pytest.mark.slow

TINY = ["export.turntable_frames=8", "export.resolution=48", "export.faces=2000", "export.texture_size=64",
        "trainer.val_every=2"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    from gradio_client import Client

    from dreamer.ui.app import build_app, serve
    root = tmp_path_factory.mktemp("ui-runs")
    port = free_port()
    app = build_app(root, overrides=TINY)
    serve(app, root, port=port, prevent_thread_lock=True, quiet=True)
    yield Client(f"http://127.0.0.1:{port}/", verbose=False), root
    app.close()


def wait_until_finished(client, job_id, timeout=600):
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = client.predict(job_id, api_name="/status")
        if any(word in out[0] for word in ("done", "failed", "cancelled")):
            return out
        time.sleep(1)
    raise AssertionError("the job did not finish in time")


def test_a_tiny_job_runs_to_a_glb(ui):
    client, root = ui
    job_id, message = client.predict("a rubber duck", "toy", "sds", "nerf", 4, 0, 0, api_name="/generate")
    assert job_id and "queued" in message
    text, _, glb, video, files = wait_until_finished(client, job_id)
    assert "done" in text and "4/4" in text
    assert glb and glb.endswith("model.glb") and validate_gltf(glb)["issues"]["numErrors"] == 0
    assert video and video.endswith("turntable.mp4")
    zipped = [f for f in files if f.endswith("model-obj.zip")]
    assert zipped and sorted(zipfile.ZipFile(zipped[0]).namelist()) == ["model.mtl", "model.obj", "model.png"]
    runs = [p for p in root.iterdir() if (p / "run.json").is_file()]
    assert any(json.loads((p / "run.json").read_text())["status"] == "done" for p in runs)


def test_bad_input_is_refused_before_it_queues(ui):
    client, _ = ui
    job_id, message = client.predict("", "toy", "sds", "nerf", 4, 0, 0, api_name="/generate")
    assert not job_id and "the prompt is empty" in message
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError, match="greater than maximum value 5000"):  # the slider's own bound
        client.predict("a rubber duck", "toy", "sds", "nerf", 99999, 0, 0, api_name="/generate")
    job_id, message = client.predict("x" * 300, "toy", "sds", "nerf", 4, 0, 0, api_name="/generate")
    assert not job_id and "keep it under 200" in message


def test_a_failing_job_and_a_cancelled_one_leave_the_queue_moving(ui, tmp_path):
    """A prior folder that names a pipeline and has its part folders but no weights passes the up-front check and
    fails when the worker loads it, as a partial download would; a long job is cancelled while it
    runs; the job queued behind both still finishes."""
    client, root = ui
    broken = tmp_path / "partial-sd"
    broken.mkdir()
    (broken / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1",
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "PNDMScheduler"]}))
    for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):  # configs, no weights
        (broken / part).mkdir()
        (broken / part / "config.json").write_text("{}")
    bad, _ = client.predict("a hamburger", str(broken), "sds", "nerf", 4, 0, 0, api_name="/generate")
    long_job, _ = client.predict("a toy car", "toy", "sds", "nerf", 5000, 0, 0, api_name="/generate")
    good, _ = client.predict("a snowman", "toy", "sds", "nerf", 3, 0, 0, api_name="/generate")
    assert "position 2" in client.predict(good, api_name="/status")[0]
    text = wait_until_finished(client, bad)[0]
    assert "failed" in text and "Traceback" not in text and len(text) < 400
    deadline = time.time() + 300
    def toy_car_running():  # the worker is past start-up: its run folder says "running"
        return any(json.loads(p.read_text()).get("status") == "running" for p in root.glob("a-toy-car-*/run.json"))
    while "steps" not in client.predict(long_job, api_name="/status")[0] or not toy_car_running():
        assert time.time() < deadline
        time.sleep(0.5)
    assert "position 1" in client.predict(good, api_name="/status")[0]
    client.predict(long_job, api_name="/cancel")
    assert "cancelled" in wait_until_finished(client, long_job)[0]
    assert "done" in wait_until_finished(client, good)[0]
    status = {p.name.split("-2")[0]: json.loads((p / "run.json").read_text())["status"]
              for p in root.iterdir() if (p / "run.json").is_file()}
    assert status["a-hamburger"] == "failed" and status["a-toy-car"] == "cancelled"  # the folders say so too


def test_only_run_folders_are_served(ui, tmp_path):
    import httpx
    client, root = ui
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the web")
    for path in (secret, "/etc/passwd"):
        response = httpx.get(f"{client.src.rstrip('/')}/gradio_api/file={path}")
        assert response.status_code in (403, 404) and "not for the web" not in response.text
    run = next(p for p in root.iterdir() if (p / "model.glb").is_file())
    served = httpx.get(f"{client.src.rstrip('/')}/gradio_api/file={run / 'model.glb'}")
    assert served.status_code == 200 and served.content == (run / "model.glb").read_bytes()
    (root / "notes.txt").write_text("top of --out, not in a run folder")  # only run folders are served
    assert httpx.get(f"{client.src.rstrip('/')}/gradio_api/file={root / 'notes.txt'}").status_code == 403
    (run / "page.html").write_text("<script>alert(1)</script>")  # never as a page of this origin
    page = httpx.get(f"{client.src.rstrip('/')}/gradio_api/file={run / 'page.html'}")
    assert page.headers["content-type"] == "application/octet-stream"
    assert page.headers["content-disposition"].startswith("attachment")


def test_stopping_the_server_stops_its_worker_and_user_text_stays_literal(tmp_path):
    """`dreamer ui` as users start it, with a secret in its environment: a prompt that tries to
    read it stays literal; SIGTERM to the server ends the running worker and marks its run."""
    import signal
    import subprocess
    import sys

    from gradio_client import Client

    from conftest import ROOT
    port = free_port()
    env = {**os.environ, "SECRET_TOKEN": "hunter2"}
    server = subprocess.Popen([sys.executable, "-m", "dreamer.cli", "ui", "--port", str(port), "--out",
                               str(tmp_path), *TINY], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while True:
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:  # noqa: BLE001 - not listening yet
                assert time.time() < deadline and server.poll() is None
                time.sleep(1)
        job, message = client.predict("${oc.env:SECRET_TOKEN}", "toy", "sds", "nerf", 4, 0, 0, api_name="/generate")
        assert not job and "${oc.env:SECRET_TOKEN}" in message and "hunter2" not in message
        job, _ = client.predict("a rubber duck ${oc.env:SECRET_TOKEN}", "toy", "sds", "nerf", 5000, 0, 0,
                                api_name="/generate")
        while not any(json.loads(p.read_text()).get("status") == "running" for p in tmp_path.glob("*/run.json")):
            assert time.time() < deadline + 180, client.predict(job, api_name="/status")[0]
            time.sleep(0.5)
        (run,) = [p for p in tmp_path.iterdir() if (p / "run.json").is_file()]
        assert "hunter2" not in run.name and "a rubber duck ${oc.env:SECRET_TOKEN}" in (run / "config.yaml").read_text()
        worker = json.loads((run / "run.json").read_text())["pid"]
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        finally:
            server.kill()
    deadline = time.time() + 20
    while not _gone(worker):
        assert time.time() < deadline, "the worker outlived the server"
        time.sleep(0.2)
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "zombie" in f.read().lower()
    except FileNotFoundError:
        return True


def test_in_a_real_browser_a_prompt_becomes_a_model_on_screen(ui):
    """Debian's Chromium driven by Playwright: type a prompt, start a tiny job, wait for the 3D
    viewer to draw the model, save a screenshot; no request may leave 127.0.0.1."""
    import shutil
    from urllib.parse import urlparse

    from conftest import ARTIFACTS
    from PIL import Image
    from playwright.sync_api import sync_playwright
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs it with apt-get")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does it)")
    client, _ = ui
    hosts = set()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium,
                                    args=["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"])
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.on("request", lambda r: hosts.add(urlparse(r.url).hostname or urlparse(r.url).scheme))
        page.goto(client.src, wait_until="networkidle")
        page.locator("#prompt textarea").fill("a penguin")
        steps = page.locator("#steps input[type=number]")
        steps.fill("3")
        steps.press("Enter")
        page.locator("#generate").click()
        page.locator("#model3d canvas").wait_for(state="visible", timeout=600_000)
        page.wait_for_timeout(3000)  # let the viewer load the GLB and draw a few frames
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "ui-screenshot.png"), full_page=True)
        page.locator("#model3d canvas").screenshot(path=str(ARTIFACTS / "ui-model3d.png"))
        status = page.locator("#status").inner_text()
        browser.close()
    assert "done" in status and "3/3" in status
    pixels = Image.open(ARTIFACTS / "ui-model3d.png").convert("RGB")
    colours = pixels.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # a shaded model, not an empty canvas
    assert hosts <= {"127.0.0.1", "data", "blob"}, hosts
