import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import RunsCode, raw_dict, write_raw

from codi_sae.atomic import atomic_path, save_torch, write_json
from codi_sae.checkpoint import load_sae
from codi_sae.codes import load_codes
from codi_sae.data import load_split
from codi_sae.errors import InputError


def test_torch_archive_carries_the_final_name(tmp_path):
    save_torch(tmp_path / "pos3_layer8.pt", {"w": torch.ones(2)})
    names = zipfile.ZipFile(tmp_path / "pos3_layer8.pt").namelist()
    assert names and all(n.startswith("pos3_layer8/") for n in names), names
    assert list(tmp_path.iterdir()) == [tmp_path / "pos3_layer8.pt"]


def test_failed_write_leaves_nothing_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"old": 1})
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == [target] and target.read_text() == '{\n  "old": 1\n}\n'


def test_json_is_never_written_with_nan(tmp_path):
    with pytest.raises(ValueError):
        write_json(tmp_path / "m.json", {"fvu": float("nan")})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("loader", ["split", "checkpoint", "codes"])
def test_a_file_whose_pickle_would_run_code_is_refused_unrun(tmp_path, loader):
    marker, path = tmp_path / "code-ran", tmp_path / "evil.pt"
    torch.save({"activations": RunsCode(marker), "config": RunsCode(marker), "model_state_dict": {}}, path)
    load = {"split": load_split, "checkpoint": load_sae, "codes": load_codes}[loader]
    with pytest.raises(InputError, match=rf"{path}: not a readable .* \(UnpicklingError: it holds posix.system, "
                                         r"which loading could run or build: refused, nothing was run\)"):
        load(path)
    assert not marker.exists()


@pytest.mark.parametrize("content, message", [
    (b"", "not a readable SAE checkpoint"),
    (b"PK\x03\x04 torn zip", "not a readable SAE checkpoint"),
    ({"config": {"input_dim": 4, "latent_dim": 8, "k": 2}, "model_state_dict": {"encoder.weight": torch.ones(3, 3)}},
     "not an SAE checkpoint of this workflow"),
    ({"weights": torch.ones(2)}, r"not an SAE checkpoint of this workflow \(KeyError: 'config'\)"),
], ids=["empty", "torn", "other shape", "not ours"])
def test_a_checkpoint_that_is_not_one_is_refused(tmp_path, content, message):
    path = tmp_path / "ckpt.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(InputError, match=f"{path}: {message}"):
        load_sae(path)


def test_a_full_disk_leaves_no_partial_output_and_names_the_file(tmp_path):
    """The splits of a conversion written under a file-size limit (what a full disk does to a
    writer): the job fails naming the file, and nothing is left at the outputs or beside them."""
    raw = write_raw(tmp_path / "raw.json", raw_dict(n=40, H=64))
    out = tmp_path / "out"
    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))\n"
        "from codi_sae.convert import convert_raw_json\n"
        f"convert_raw_json({str(raw)!r}, {str(out / 'train.pt')!r}, {str(out / 'val.pt')!r}, {str(out / 'd.json')!r})\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")})
    assert proc.returncode != 0
    assert f"could not write {out / 'train.pt'}: torch.save failed" in proc.stderr and "disk full" in proc.stderr
    assert [p.name for p in out.iterdir()] == []
