"""`posekit models`: JSON numbers equal the published parameter counts and the manifests' FLOPs."""

from __future__ import annotations

import json

import pytest

from posekit.cli import main

PUBLISHED = {  # name: (manifest, params in the papers)
    "simplebaseline_res50_256x192": ("pose_resnet_50_256x192", 33_999_697),
    "simplebaseline_res101_256x192": ("pose_resnet_101_256x192", 52_991_825),
    "simplebaseline_res152_256x192": ("pose_resnet_152_256x192", 68_635_473),
    "hrnet_w32_256x192": ("pose_hrnet_w32_256x192", 28_536_113),
    "hrnet_w48_256x192": ("pose_hrnet_w48_256x192", 63_595_745),
}


def test_models_json_matches_papers_and_manifests(reference_dir, capsys):
    assert main(["models", "--json", *PUBLISHED]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(PUBLISHED)
    for name, (manifest, params) in PUBLISHED.items():
        man = json.loads((reference_dir / f"manifests/{manifest}.json").read_text())
        r = rows[name]
        assert r["params"] == params, name
        assert r["gmacs"] == pytest.approx(man["flops"]["GMACs"], rel=0.01), name
        assert r["paper_gflops"] == pytest.approx(man["official_get_model_summary"]["reported_GFLOPs"], rel=0.01)
        assert r["input_size"] == [192, 256] and r["codec"] == "msra"
    assert rows["simplebaseline_res50_256x192"]["paper_gflops"] == pytest.approx(8.99, abs=0.005)
    assert rows["hrnet_w32_256x192"]["paper_gflops"] == pytest.approx(7.12, abs=0.005)


def test_models_table_and_unknown_name(capsys):
    assert main(["models", "hrnet_w16_tiny_128x96", "simplebaseline_res18_128x96"]) == 0
    out = capsys.readouterr().out
    assert "hrnet_w16_tiny_128x96" in out and "128x96" in out and "paper GFLOPs" in out
    assert main(["models", "no_such_model"]) == 1
    assert "no_such_model" in capsys.readouterr().err
