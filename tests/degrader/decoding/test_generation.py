import pytest
import torch
from PIL import Image

from degrader.decoding.generation import SamplingParams, encode, generate, prompt_texts, stop_token_ids, token_loop

PROMPTS = ["The capital of France is", "Once upon a time, in a small village by the sea, there lived", "1, 2, 3,"]


def test_greedy_decoding_matches_transformers_generate(embedded):
    ours = generate(embedded, PROMPTS, SamplingParams(max_new_tokens=16, do_sample=False), [0, 0, 0])
    batch = embedded.tokenizer(PROMPTS, return_tensors="pt", padding=True, padding_side="left")
    reference = embedded.model.generate(**batch, max_new_tokens=16, do_sample=False)
    new = reference[:, batch.input_ids.shape[1]:]
    assert [g.text for g in ours] == embedded.tokenizer.batch_decode(new, skip_special_tokens=True)


def test_returns_only_new_text_with_token_counts(embedded):
    results = generate(embedded, PROMPTS, SamplingParams(max_new_tokens=12), [1, 2, 3])
    for prompt, result in zip(PROMPTS, results, strict=True):
        assert not result.text.startswith(prompt) and result.text.strip()
        assert result.tokens_in == len(embedded.tokenizer(prompt).input_ids)
        assert 0 < result.tokens_out <= 12
        assert result.batch_size == 3 and result.duration > 0


def test_a_row_samples_the_same_whatever_its_batch(embedded):
    params = SamplingParams(max_new_tokens=12, temperature=1.0)
    together = generate(embedded, PROMPTS, params, [11, 22, 33])
    alone = generate(embedded, PROMPTS[1:2], params, [22])
    other_seed = generate(embedded, PROMPTS[1:2], params, [23])
    assert together[1].text == alone[0].text
    assert other_seed[0].text != alone[0].text


def test_stops_on_eos_and_end_of_turn(embedded):
    assert {1, 106} <= set(stop_token_ids(embedded))


def test_base_model_gets_raw_prompts(embedded):
    assert prompt_texts(embedded, ["Describe a dream."], with_image=False) == ["Describe a dream."]


def test_instruction_tuned_processor_gets_the_chat_template_and_the_image(tiny_multimodal):
    image = Image.new("RGB", (120, 90), (200, 30, 30))
    texts = prompt_texts(tiny_multimodal, ["Describe this picture."], with_image=True)
    assert texts[0].startswith("<bos><start_of_turn>user\n<start_of_image>Describe this picture.<end_of_turn>")
    assert texts[0].endswith("<start_of_turn>model\n")
    batch = encode(tiny_multimodal, ["Describe this picture.", "What do you see?"], image)
    image_token = tiny_multimodal.tokenizer.image_token_id
    assert batch["pixel_values"].shape[0] == 2
    assert (batch["input_ids"] == image_token).sum(dim=1).tolist() == [4, 4]
    results = generate(tiny_multimodal, ["Describe this picture.", "What do you see?"],
                       SamplingParams(max_new_tokens=5, ignore_eos=True), [1, 2], image)
    assert [r.tokens_out for r in results] == [5, 5]


def test_image_on_a_text_only_model_is_a_clear_error(embedded):
    with pytest.raises(ValueError, match="no vision tower"):
        encode(embedded, ["Describe this picture."], Image.new("RGB", (8, 8)))


def test_sampling_ignores_the_global_rng(embedded):
    params = SamplingParams(max_new_tokens=10)
    torch.manual_seed(0)
    first = generate(embedded, PROMPTS[:1], params, [5])[0].text
    torch.manual_seed(1)
    assert generate(embedded, PROMPTS[:1], params, [5])[0].text == first


def test_the_loop_pads_stopped_rows_and_tests_for_the_end_every_few_steps():
    steps = []

    def next_token(token, step):  # row 0 stops at step 1; row 1 stopped at step 0
        steps.append(step)
        return torch.tensor([1, 7])

    first = torch.tensor([5, 1])
    assert token_loop(first, next_token, 6, [1], 0, ignore_eos=False).tolist() == [[5, 1], [1, 0]]
    assert steps == [1]
    steps.clear()
    assert token_loop(first, next_token, 6, [1], 0, ignore_eos=False, check_every=4).tolist() == \
        [[5, 1, 0, 0], [1, 0, 0, 0]]  # the same tokens, the end seen at step 3
    assert steps == [1, 2, 3]
    assert token_loop(first, next_token, 3, [1], 0, ignore_eos=True).tolist() == [[5, 1, 1], [1, 7, 7]]
