"""The web UI driven through its API with gradio_client, as a script or another app would."""
import json
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

    from dreamer.ui.app import build_app
    root = tmp_path_factory.mktemp("ui-runs")
    port = free_port()
    app = build_app(root, overrides=TINY)
    app.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
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
    text, preview, glb, video, files = wait_until_finished(client, job_id)
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


def test_a_job_that_fails_in_the_worker_shows_its_error_and_the_next_runs(ui, tmp_path):
    """A prior folder that names a pipeline but holds no weights passes the up-front check and
    fails when the worker loads it, as a partial download would."""
    client, _ = ui
    broken = tmp_path / "partial-sd"
    broken.mkdir()
    (broken / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1",
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "PNDMScheduler"]}))
    bad, _ = client.predict("a hamburger", str(broken), "sds", "nerf", 4, 0, 0, api_name="/generate")
    good, _ = client.predict("a snowman", "toy", "sds", "nerf", 3, 0, 0, api_name="/generate")
    text = wait_until_finished(client, bad)[0]
    assert "failed" in text and "Traceback" not in text and len(text) < 400
    assert "done" in wait_until_finished(client, good)[0]
