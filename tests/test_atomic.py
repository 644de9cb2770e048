import zipfile

import pytest
import torch

from codi_sae.atomic import atomic_path, save_torch, write_json


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
