"""The dry run's plans: each variant printed, the model's architecture read once per launch."""

from __future__ import annotations

from configs.experiments import apply_overrides, get_config
from degrader.run import dry_run
from degrader.run.options import LaunchRequest


def test_a_sweeps_plans_read_the_architecture_once(tmp_path, monkeypatch, capsys):
    """Three variants of one model: one read of its config (offline, a Hub model's read probes the Hub, up to
    5 s each), and each variant's plan printed with its own lesion and records."""
    reads = []
    real = dry_run.model_config
    monkeypatch.setattr(dry_run, "model_config", lambda spec: reads.append(spec) or real(spec))
    base = apply_overrides(get_config("dreams_it"), ["model_name=random:gemma-3-4b-it", "n_rep=2",
                                                    "degradation_method=mult_gauss", "min_deg=0", "max_deg=0.5"])
    configs = [base.replace(param_group_name=group, name_suffix=group) for group in ("attn_only", "mlp_only")]
    configs.append(base.replace(degradation_method="ablation", min_deg=0.0, max_deg=0.4, name_suffix="ablation"))
    request = LaunchRequest(results_dir=tmp_path / "results", logs_dir=tmp_path / "logs", dry_run=True, gpus=1)
    assert dry_run.print_plans(configs, request) == 0
    output = capsys.readouterr().out
    assert reads == ["random:gemma-3-4b-it"]
    assert output.count("memory / actor") == 3
    assert "mult_gauss on attn_only" in output and "mult_gauss on mlp_only" in output and "ablation on" in output
    # mlp_only's copies (4.98 GiB a unit) leave room for fewer units per batch than attn_only's (0.17 GiB)
    assert "adds 0.17 GiB of copies" in output and "adds 4.98 GiB of copies" in output


def test_the_prefill_is_the_prompt_rounded_as_the_decoder_rounds_it():
    config = get_config("dreams_it")
    assert dry_run.prefill_tokens(config, config.max_new_tokens + 17) == 32
    assert dry_run.prefill_tokens(config, config.max_new_tokens + 32) == 32
