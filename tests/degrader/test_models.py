import pytest

from degrader.models import check_spec, hf_token, load_model, model_name, model_name_clean


def test_records_name_the_model_that_ran(embedded, tiny_multimodal):
    assert embedded.name == "embedded:gemma-3-270m"
    assert embedded.description["architecture"] == "Gemma3ForCausalLM"
    assert embedded.description["n_parameters"] == 268_098_176
    assert tiny_multimodal.name == "random:tiny-gemma3" and tiny_multimodal.has_vision


@pytest.mark.parametrize("spec,clean", [("google/gemma-3-4b-it", "gemma-3-4b-it"),
                                        ("embedded", "embedded-gemma-3-270m"),
                                        ("random:gemma-3-4b-it", "random-gemma-3-4b-it")])
def test_output_file_model_names(spec, clean):
    assert model_name_clean(spec) == clean


def test_local_folder_spec(tmp_path):
    assert model_name(str(tmp_path)) == str(tmp_path.resolve())
    assert model_name_clean(str(tmp_path)) == tmp_path.name


@pytest.mark.parametrize("spec,message", [("random:gemma-9", "random:gemma-3-4b-it"),
                                          ("./no/such/folder", "does not exist")])
def test_bad_specs_fail_before_loading(spec, message):
    with pytest.raises(ValueError, match=message):
        check_spec(spec)


def test_4bit_on_cpu_is_a_clear_error():
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        load_model("embedded", device="cpu", load_in_4bit=True)


def test_random_weights_are_the_same_every_time(tiny_multimodal):
    again = load_model("random:tiny-gemma3", dtype="float32", device="cpu")
    for (name, first), (_, second) in zip(tiny_multimodal.model.named_parameters(), again.model.named_parameters(),
                                          strict=True):
        assert first.equal(second), name


def test_token_comes_from_env_or_dotenv(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    assert hf_token() is None
    (tmp_path / ".env").write_text("HF_TOKEN=hf_secret_from_dotenv\n")
    assert hf_token() == "hf_secret_from_dotenv"
    monkeypatch.setenv("HF_TOKEN", "hf_secret_from_env")
    assert hf_token() == "hf_secret_from_env"
