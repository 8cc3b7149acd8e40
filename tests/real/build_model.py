"""Build the tiny Llama model and tokenizer the real-engine tests serve, with no hub access.

    .real-engine/venv/bin/python tests/real/build_model.py .real-engine/model

Random weights (6.5 M parameters, 13 MB) and a byte-level BPE tokenizer trained on the
Python standard library's sources: output text is noise, but vLLM runs the real engine on it
(paged KV cache, prefix caching, scheduler), which is what the tests look at. Runs with the
vLLM environment's torch, transformers and tokenizers; about 6 s.
"""

from __future__ import annotations

import pathlib
import sys
import sysconfig

BOS, EOS, PAD = "<|begin_of_text|>", "<|end_of_text|>", "<|pad|>"
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


def build_tokenizer(out: pathlib.Path) -> object:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    stdlib = pathlib.Path(sysconfig.get_paths()["stdlib"])
    files = sorted(str(p) for p in stdlib.glob("*.py"))[:150]
    trainer = trainers.BpeTrainer(
        vocab_size=8000,
        special_tokens=[BOS, EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train(files, trainer)
    tok.save(str(out / "tokenizer.json"))
    fast = PreTrainedTokenizerFast(
        tokenizer_file=str(out / "tokenizer.json"), bos_token=BOS, eos_token=EOS, pad_token=PAD
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)
    return fast


def build_model(out: pathlib.Path, tokenizer: object) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),  # type: ignore[arg-type]
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,  # type: ignore[attr-defined]
        eos_token_id=tokenizer.eos_token_id,  # type: ignore[attr-defined]
        pad_token_id=tokenizer.pad_token_id,  # type: ignore[attr-defined]
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(out)


def main(argv: list[str]) -> int:
    out = pathlib.Path(argv[1] if len(argv) > 1 else ".real-engine/model")
    if (out / "config.json").is_file() and (out / "tokenizer.json").is_file():
        print(f"model already built in {out}")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    build_model(out, build_tokenizer(out))
    print(f"built tiny model and tokenizer in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
